"""``brn``, export part: the layered graphs of the defect segmentation UNet and how they are checked.

Layer 1 is the network itself: (B, 3, h, w) -> (B, 2, h, w) logits on a patch.
Layer 2 (:class:`PatchHeatmap`) turns logits into the production contract
(B, 3, h, w) = [heatmap, 0, 0]. Layer 3 wraps layer 2 so that one call takes a
whole strip: :class:`StitchedFullImage` runs it on the overlapping patches of
the image type's tiling and keeps each patch's centre;
:class:`FullyConvolutionalFullImage` runs the network once over the
reflect-padded image. INT8 is guarded by pixel AUROC and, at the manifest's threshold, by image
decisions and pixel F1 against PyTorch FP32; the two zero channels
must be exactly zero in every graph.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from export._family import EXPORT_FAMILIES, ExportFamily, LayerSpec, Quality
from runtime.core import ExportError, TensorSpec, TilingPlan, segmentation_aurocs
from runtime.families.brn import FAMILY as RUNTIME, OUTPUT, image_type

INPUT = "input"
LOGITS = "logits"
STITCHED, FCN = "stitched", "fcn"


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
        self.pad = self.padding(height, width, multiple)

    @staticmethod
    def padding(height: int, width: int, multiple: int = 32) -> tuple[int, int, int, int]:
        """(left, right, top, bottom) that make both sides multiples of ``multiple``."""
        pad_h, pad_w = -height % multiple, -width % multiple
        return pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        left, _, top, _ = self.pad
        padded = nn.functional.pad(x, self.pad, mode="reflect")
        out = _heatmap_contract(self.network(padded))
        return out[:, :, top:top + self.height, left:left + self.width]


class BrnExport(ExportFamily):
    name = RUNTIME.name
    modes = (STITCHED, FCN)
    lower_layers = ("base", "patch")

    def layer(self, network: nn.Module, layer: str, mode: str, variant: str) -> LayerSpec:
        t = image_type(variant)
        plan = t.tiling()
        if layer == "full":
            h, w = t.height, t.width
            module = (FullyConvolutionalFullImage(network, h, w) if mode == FCN
                      else StitchedFullImage(PatchHeatmap(network), plan))
        else:
            h, w = t.patch_height, t.patch_width
            module = network if layer == "base" else PatchHeatmap(network)
        out = (TensorSpec(LOGITS, ("batch", 2, h, w), "float32", "logits") if layer == "base"
               else TensorSpec(OUTPUT, ("batch", 3, h, w), "float32", "heatmap"))
        return LayerSpec(module.eval(), (TensorSpec(INPUT, ("batch", 3, h, w), "float32", "image"),), (out,))

    def layer_inputs(self, layer: str, tensors: np.ndarray, variant: str, per_image: int) -> np.ndarray:
        if layer == "full":
            return tensors
        patches = image_type(variant).tiling().extract(tensors)  # (N, P, 3, h, w)
        picks = np.linspace(0, patches.shape[1] - 1, per_image).round().astype(int)
        return np.ascontiguousarray(patches[:, picks].reshape(-1, *patches.shape[2:]))

    def quality(self) -> tuple[Quality, ...]:
        # What users act on, besides the ranking: no image may change its verdict at the manifest's
        # threshold, and the defect pixels found must stay close to FP32's (pixel F1 >= 0.9).
        return (Quality("pixel_auroc", "max", 0.005), Quality("decision_agreement", "max", 0.0),
                Quality("pixel_f1", "max", 0.1))

    def metrics(self, outputs: dict[str, np.ndarray], labels: Sequence[Any], variant: str) -> dict[str, float]:
        return segmentation_aurocs(np.stack(labels), outputs[OUTPUT][:, 0])

    def check_outputs(self, layer: str, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if layer == "base":
            return {}
        exact = bool((outputs[OUTPUT][:, 1:] == 0).all())
        if not exact:
            raise ExportError(f"the {layer} graph's channels 1-2 must be exactly zero (the [heatmap, 0, 0] contract)")
        return {"zero_channels_exact": exact}

    def tiling(self, variant: str, mode: str) -> dict[str, Any] | None:
        t = image_type(variant)
        out = {"mode": mode, **t.tiling().to_manifest()}
        if mode == FCN:
            out.update(pad=list(FullyConvolutionalFullImage.padding(t.height, t.width)), pad_mode="reflect")
        return out

    def mode_report(self, network: nn.Module, tensors: np.ndarray, labels: Sequence[Any], variant: str,
                    mode: str, reference: dict[str, np.ndarray]) -> dict[str, Any] | None:
        if mode == STITCHED:
            return None
        stitched = self.layer(network, "full", STITCHED, variant).module
        with torch.no_grad():
            other = np.concatenate([stitched(torch.from_numpy(x[None])).numpy() for x in tensors])
        ours, theirs = self.metrics(reference, labels, variant), self.metrics({OUTPUT: other}, labels, variant)
        diff = np.abs(other - reference[OUTPUT])
        return {"title": f"{mode} vs {STITCHED} (PyTorch FP32)", "max_abs_diff": float(diff.max()),
                "mean_abs_diff": float(diff.mean()),
                **{f"{k}_delta": ours[k] - theirs[k] for k in ours}}


FAMILY = EXPORT_FAMILIES.register(RUNTIME.name)(BrnExport())
