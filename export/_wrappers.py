"""The torch modules behind layers 2 and 3 of an exported segmentation family.

Layer 1 is the family's network itself: (B, 3, h, w) -> (B, 2, h, w) logits.
Layer 2 (:class:`PatchHeatmap`) turns logits into the production contract
(B, 3, h, w) = [heatmap, 0, 0]. Layer 3 wraps layer 2 so that one call takes a
whole image: :class:`StitchedFullImage` runs it on overlapping patches and keeps
each patch's centre; :class:`FullyConvolutionalFullImage` runs the network once
over the reflect-padded image.
"""

from __future__ import annotations

import torch
from torch import nn

from runtime._tiling import TilingPlan


def _heatmap_contract(logits: torch.Tensor) -> torch.Tensor:
    heat = torch.softmax(logits, dim=1)[:, 1:2]
    # Exact zeros whatever the heatmap holds (heat * 0 would turn NaN into NaN).
    zeros = torch.zeros_like(heat)
    return torch.cat([heat, zeros, zeros], dim=1)


class PatchHeatmap(nn.Module):
    """Layer 2: softmax, keep the defect probability, emit [heatmap, 0, 0]."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _heatmap_contract(self.network(x))


class StitchedFullImage(nn.Module):
    """Layer 3: cut the image into the plan's patches, run layer 2 on all of them, stitch centres.

    The patches of a batch are stacked along the batch axis so that the graph
    holds one copy of layer 2 evaluated on 18 * B patches: 18 calls' worth of
    work in a single batched call, which is what makes it fast.
    """

    def __init__(self, patch_model: nn.Module, plan: TilingPlan) -> None:
        super().__init__()
        self.patch_model = patch_model
        self.plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.plan
        patches = [x[:, :, r.position:r.position + p.patch_height, c.position:c.position + p.patch_width]
                   for r in p.rows for c in p.cols]
        out = self.patch_model(torch.cat(patches, dim=0))
        per_patch = out.reshape(p.num_patches, x.shape[0], out.shape[1], p.patch_height, p.patch_width)
        rows = []
        for i, r in enumerate(p.rows):
            cols = [per_patch[i * len(p.cols) + j, :, :, r.local, c.local] for j, c in enumerate(p.cols)]
            rows.append(torch.cat(cols, dim=3))
        return torch.cat(rows, dim=2)


class FullyConvolutionalFullImage(nn.Module):
    """Layer 3, alternative: one pass of the network over the reflect-padded image.

    The UNet needs sides divisible by 2**5; the strip (976 x 176) is padded to
    992 x 192, about 35 % fewer MACs than 18 overlapping 128 x 128 patches. The
    receptive field now sees real neighbours instead of patch borders, so the
    output differs slightly from the stitched contract.
    """

    def __init__(self, network: nn.Module, height: int, width: int, multiple: int = 32) -> None:
        super().__init__()
        self.network = network
        self.height, self.width = height, width
        pad_h, pad_w = -height % multiple, -width % multiple
        self.pad = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)  # left, right, top, bottom

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, _, top, _ = self.pad
        padded = nn.functional.pad(x, self.pad, mode="reflect")
        out = _heatmap_contract(self.network(padded))
        return out[:, :, top:top + self.height, left:left + self.width]
