"""The ``brn`` network: a UNet of 6 encoder blocks and 5 skip-connected upsamplings.

Layout after DRAEM's discriminative sub-network, which the reference project
started from: each block is two (3x3 conv, BatchNorm, ReLU); channels
3 -> w -> 2w -> 4w -> 8w -> 8w -> 8w for base width w (64 by default).
"""

from __future__ import annotations

import torch
from torch import nn


def _double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
    )


def _up(in_ch: int, out_ch: int) -> nn.Sequential:
    # Bilinear x2 then a 3x3 conv: no checkerboard artefacts and it exports to
    # a single Resize node that every backend supports.
    return nn.Sequential(
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True),
        nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True),
    )


class Encoder(nn.Module):
    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__()
        widths = [width, 2 * width, 4 * width, 8 * width, 8 * width, 8 * width]
        self.blocks = nn.ModuleList()
        prev = in_channels
        for w in widths:
            self.blocks.append(_double_conv(prev, w))
            prev = w
        self.pool = nn.MaxPool2d(2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        features = []
        for i, block in enumerate(self.blocks):
            x = block(x if i == 0 else self.pool(x))
            features.append(x)
        return features


class Decoder(nn.Module):
    def __init__(self, width: int, out_channels: int) -> None:
        super().__init__()
        # (channels coming up, skip channels, channels out) per level, deepest first.
        levels = [(8 * width, 8 * width, 8 * width), (8 * width, 8 * width, 4 * width),
                  (4 * width, 4 * width, 2 * width), (2 * width, 2 * width, width), (width, width, width)]
        self.ups = nn.ModuleList(_up(c_in, c_out) for c_in, _, c_out in levels)
        self.merges = nn.ModuleList(_double_conv(c_out + skip, c_out) for _, skip, c_out in levels)
        self.head = nn.Conv2d(width, out_channels, 3, padding=1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = features[-1]
        for up, merge, skip in zip(self.ups, self.merges, reversed(features[:-1])):
            x = merge(torch.cat([up(x), skip], dim=1))
        return self.head(x)


class SegmentationNetwork(nn.Module):
    """(B, 3, H, W) in 0..1 -> (B, 2, H, W) logits (background, defect); H, W multiples of 32."""

    def __init__(self, in_channels: int = 3, out_channels: int = 2, base_width: int = 64) -> None:
        super().__init__()
        self.encoder = Encoder(in_channels, base_width)
        self.decoder = Decoder(base_width, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


def build_network(in_channels: int = 3, out_channels: int = 2, base_width: int = 64) -> SegmentationNetwork:
    if base_width < 1:
        raise ValueError(f"base_width must be a positive integer, got {base_width}")
    return SegmentationNetwork(in_channels, out_channels, base_width)
