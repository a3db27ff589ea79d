"""``lhrnet``, export part: the keypoint network with its decoding inside the full-image graph.

Layer 1 (``base``) is the network itself: (B, 4, 256, 512) -> its five stride-4
maps (two heatmaps, two offset fields, the angle field). The full graph
(:class:`DecodedKeypoints`) adds the decoding, so that one call returns per
image what the runtime needs and nothing more:

- ``points`` (B, 2, 2): x, y of the slot and the part in input (letterboxed) pixels,
- ``scores`` (B, 2): their heatmap peak values,
- ``angle`` (B,): the part's rotation in degrees.

Decoding masks the cells that are mostly letterbox padding (read from the input's
fourth, validity channel), takes each heatmap's argmax, adds the offset read at
that cell and multiplies by the stride. It runs in float in every precision,
and so does the head's squashing that feeds it (:meth:`LhrnetExport.int8_float_nodes`).

INT8 is guarded by hit@5px and the mean error in source pixels on held-back
synthetic scenes (SPEC: keypoint models can lose their accuracy under INT8 while
their tensors look close). The heatmaps are a diagnostic output of every graph
built here, compared with PyTorch for the parity report and removed from the
graphs that are written.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
import torch
from torch import nn

from export._family import EXPORT_FAMILIES, ExportFamily, LayerSpec, Quality
from runtime.core import TensorSpec, keypoint_metrics, letterbox_fit
from runtime.families.lhrnet import HEIGHT, NAME, POINTS, WIDTH, KeypointLabel
from training.families.lhrnet.network import OUTPUT_NAMES, OUTPUT_STRIDE
from training.families.lhrnet.targets import decode

INPUT = "input"
HEATMAPS = "heatmaps"
DECODED = "decoded"
#: node-name prefix of the decoding in the exported graphs (a module scope), kept in float under INT8
DECODE_SCOPE = "/decode/"
#: node-name prefix of the head: its squashing (sigmoid, tanh, normalisation) stays in float under INT8
HEAD_SCOPE = "/network/head/"
#: two heatmap values closer than this are a tie: which cell the argmax picks is then arbitrary
_TIE = 1e-5

_K = len(POINTS)
_GRID = (HEIGHT // OUTPUT_STRIDE, WIDTH // OUTPUT_STRIDE)


class RawOutputs(nn.Module):
    """Layer 1: the network's five maps as a tuple in :data:`OUTPUT_NAMES` order."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.network(x)
        return tuple(outputs[name] for name in OUTPUT_NAMES)


class KeypointDecoder(nn.Module):
    """:func:`training.families.lhrnet.targets.decode` of the network's maps as a module (its own node scope).

    Returns points, scores, angle and the stacked heatmaps (the diagnostic output).
    """

    def forward(self, outputs: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        heatmaps = torch.cat([outputs[f"heatmap_{name}"] for name in POINTS], dim=1)
        offsets = torch.stack([outputs[f"offset_{name}"] for name in POINTS], dim=1)
        decoded = decode(heatmaps, offsets, outputs["angle"], x[:, -1:])
        return decoded.points, decoded.scores, decoded.angle, heatmaps


class DecodedKeypoints(nn.Module):
    """The full graph: network, then decoding; returns points, scores, angle and (diagnostic) the heatmaps."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.decode = KeypointDecoder()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.decode(self.network(x), x)


def _base_outputs() -> tuple[TensorSpec, ...]:
    h, w = _GRID
    channels = {"heatmap": 1, "offset": 2, "angle": 2}
    return tuple(TensorSpec(name, ("batch", channels[name.split("_")[0]], h, w), "float32", name.split("_")[0])
                 for name in OUTPUT_NAMES)


class LhrnetExport(ExportFamily):
    name = NAME
    modes = (DECODED,)
    lower_layers = ("base",)
    # Points and the angle are compared in pixels and degrees; the maps as values.
    fp32_tolerance = {"*": 1e-4, "points": 1e-2, "angle": 1e-2}
    # hit@5px moves in steps of 1/N: 64 scenes make a step of 1.6 %.
    parity_images = 64
    reference_mib = {"fp32": 12.53, "fp16": 6.27, "int8": 3.13}  # SPEC: raw weights

    def layer(self, network: nn.Module, layer: str, mode: str, variant: str) -> LayerSpec:
        image = (TensorSpec(INPUT, ("batch", 4, HEIGHT, WIDTH), "float32", "image"),)
        if layer == "base":
            return LayerSpec(RawOutputs(network).eval(), image, _base_outputs())
        outputs = (TensorSpec("points", ("batch", _K, 2), "float32", "points"),
                   TensorSpec("scores", ("batch", _K), "float32", "scores"),
                   TensorSpec("angle", ("batch",), "float32", "angle"))
        diagnostics = (TensorSpec(HEATMAPS, ("batch", _K, *_GRID), "float32", "heatmap"),)
        return LayerSpec(DecodedKeypoints(network).eval(), image, outputs, diagnostics)

    def layer_inputs(self, layer: str, tensors: np.ndarray, variant: str, per_image: int) -> np.ndarray:
        return tensors  # every layer takes the whole letterboxed image

    def quality(self) -> tuple[Quality, ...]:
        # 64 scenes: 0.05 is three of them leaving the 5 px circle; MAE in source pixels.
        # Every point found (score at the manifest's threshold) by FP32 is found by the graph, and no other.
        return Quality("hit@5px", "max", 0.05), Quality("mae", "min", 0.5), Quality("decision_agreement", "max", 0.0)

    def metrics(self, outputs: dict[str, np.ndarray], labels: Sequence[Any], variant: str) -> dict[str, float]:
        located = []
        for points, label in zip(outputs["points"], labels):
            assert isinstance(label, KeypointLabel)
            located.append(letterbox_fit(label.height, label.width, HEIGHT, WIDTH).to_source(points))
        return keypoint_metrics(np.stack(located), np.stack([label.points for label in labels]), POINTS,
                                predicted_angle=np.asarray(outputs["angle"], np.float64).reshape(-1),
                                true_angle=np.array([label.angle for label in labels]),
                                symmetry=np.array([label.symmetry for label in labels]))

    def int8_float_nodes(self, model: onnx.ModelProto) -> list[str]:
        """The decoding, and the head's squashing after its last convolutions.

        Quantized heatmaps would have 256 levels, and cells tied on the top level
        move the argmax by whole cells; the offsets would lose their sub-pixel part.
        The convolutions stay quantized; their outputs go through float sigmoid/tanh.
        """
        return [n.name for n in model.graph.node
                if n.name.startswith(DECODE_SCOPE) or (n.name.startswith(HEAD_SCOPE)
                                                       and n.op_type not in ("Conv", "Relu"))]

    def differences(self, layer: str, outputs: dict[str, np.ndarray],
                    reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """As the base class, except that a point whose cell ties the reference's peak is compared at its own cell.

        A tie (two cells within 1e-5 of the peak) is a coin toss for any argmax,
        PyTorch's included; the point then moves by whole cells without being wrong.
        """
        diffs = super().differences(layer, outputs, reference)
        if layer != "full" or HEATMAPS not in reference:
            return diffs
        heat = reference[HEATMAPS]  # (N, K, h, w)
        h, w = heat.shape[2:]
        cells = np.floor(outputs["points"] / OUTPUT_STRIDE).astype(np.int64)  # (N, K, 2) col, row
        cols, rows = np.clip(cells[..., 0], 0, w - 1), np.clip(cells[..., 1], 0, h - 1)
        at_cell = np.take_along_axis(heat.reshape(*heat.shape[:2], -1), (rows * w + cols)[..., None], 2)[..., 0]
        peak = reference["scores"]
        same_cell = (np.floor(reference["points"] / OUTPUT_STRIDE) == cells).all(axis=2)
        tie = ~same_cell & (at_cell >= peak - _TIE)
        # Within a cell the offset bounds the point to +-2 px of the cell centre either way.
        diffs["points"] = np.where(tie[..., None], 0.0, diffs["points"])
        return diffs

    def check_outputs(self, layer: str, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        if layer != "full":
            return {}
        points, scores = outputs["points"], outputs["scores"]
        inside = bool(((points >= 0) & (points <= np.array([WIDTH, HEIGHT]))).all())
        return {"points_inside_input": inside, "min_score": float(scores.min()), "max_score": float(scores.max())}


FAMILY = EXPORT_FAMILIES.register(NAME)(LhrnetExport())
