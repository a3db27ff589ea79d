"""The ``brn`` network: a UNet of 6 encoder blocks and 5 skip-connected upsamplings.

Layout after DRAEM's discriminative sub-network, which the reference project
started from: each block is two (3x3 conv, BatchNorm, ReLU); channels
3 -> w -> 2w -> 4w -> 8w -> 8w -> 8w for base width w (64 by default).
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from runtime.core import InvalidInputError, ModelLoadError

__all__ = ["DEFAULT_ARCH", "SegmentationNetwork", "build_network", "check_arch"]


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


#: the full-size network's architecture settings (a checkpoint stores the ones it was trained with)
DEFAULT_ARCH: dict[str, int] = {"in_channels": 3, "out_channels": 2, "base_width": 64}


def check_arch(arch: Mapping[str, Any]) -> dict[str, int]:
    """``arch`` completed with the defaults, every value a positive integer.

    Raises:
        ModelLoadError: for a key the network does not have (e.g. a checkpoint of another family).
        InvalidInputError: for a value that is not a positive integer.
    """
    if not isinstance(arch, Mapping):
        raise InvalidInputError(f"brn arch must be a dict, got {type(arch).__name__}")
    unknown = sorted(set(arch) - set(DEFAULT_ARCH))
    if unknown:
        raise ModelLoadError(f"brn arch has unknown keys {unknown}; expected some of {sorted(DEFAULT_ARCH)}")
    merged = {**DEFAULT_ARCH, **arch}
    for key, value in merged.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidInputError(f"brn arch {key} must be a positive integer, got {value!r}")
    return merged


def build_network(arch: Mapping[str, Any] | None = None) -> SegmentationNetwork:
    """A freshly initialised brn UNet of ``arch`` (missing keys: :data:`DEFAULT_ARCH`).

    Args:
        arch: ``in_channels``, ``out_channels`` and ``base_width`` (64 full size, 16 light, 4 for tests).

    Returns:
        The network, in training mode.

    Raises:
        ModelLoadError: for a key the network does not have.
        InvalidInputError: for a value that is not a positive integer.

    Example:
        >>> build_network({"base_width": 16})(torch.zeros(1, 3, 128, 128)).shape
        torch.Size([1, 2, 128, 128])
    """
    merged = check_arch(arch or {})
    return SegmentationNetwork(merged["in_channels"], merged["out_channels"], merged["base_width"])
