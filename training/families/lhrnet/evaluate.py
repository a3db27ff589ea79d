"""lhrnet evaluation with PyTorch: keypoints of whole images through the runtime's own pre-processing.

:func:`predict_keypoints` is the PyTorch reference of the exported full graph
(points in input pixels, peak scores, angle); :func:`evaluate_network` maps
them back through the letterbox and scores them with the runtime part's
metrics, so training, export and ``runtime.evaluate`` agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime.core import KeypointsResult, LabelledImage, Transform, prepare
from runtime.families.lhrnet import FAMILY as RUNTIME, POINTS, draw_keypoints
from training.families.lhrnet.losses import KEYPOINTS
from training.families.lhrnet.targets import decode

__all__ = ["Prediction", "evaluate_network", "predict_keypoints", "predict_split", "prediction_pictures"]



@torch.no_grad()
def predict_keypoints(network: nn.Module, tensors: np.ndarray, batch_size: int = 8) -> dict[str, np.ndarray]:
    """The full graph's outputs for (N, 4, 256, 512) input tensors: ``points`` (N, 2, 2), ``scores`` (N, 2), ``angle`` (N,).

    Puts ``network`` in eval mode; works on any device.
    """
    network.eval()
    device = next(network.parameters()).device
    parts = []
    for chunk in torch.from_numpy(np.ascontiguousarray(tensors, np.float32)).split(batch_size):
        chunk = chunk.to(device)
        outputs = network(chunk)
        heatmaps = torch.cat([outputs[f"heatmap_{name}"] for name in KEYPOINTS], dim=1)
        offsets = torch.stack([outputs[f"offset_{name}"] for name in KEYPOINTS], dim=1)
        decoded = decode(heatmaps, offsets, outputs["angle"], chunk[:, -1:])
        parts.append({"points": decoded.points.cpu(), "scores": decoded.scores.cpu(), "angle": decoded.angle.cpu()})
    return {key: torch.cat([p[key] for p in parts]).numpy() for key in parts[0]}


def predict_split(network: nn.Module, root: str | Path, split: str, variant: str) -> list[Prediction]:
    """Every labelled image of ``split`` with the network's result in source pixels, its input and letterbox.

    Raises:
        InvalidInputError: a missing or malformed split or image.
    """
    pre = RUNTIME.input_spec(variant)
    items = RUNTIME.labelled_images(Path(root), split)
    prepared = [prepare(item.image, pre, source=str(item.image)) for item in items]
    outputs = predict_keypoints(network, np.stack([tensor for tensor, _ in prepared]))
    results = RUNTIME.decode(outputs, [t for _, t in prepared], RUNTIME.postprocess_spec(variant),
                             sources=[str(item.image) for item in items])
    return [Prediction(item, result, tensor, transform)
            for item, result, (tensor, transform) in zip(items, results, prepared)]


@dataclass
class Prediction:
    """One image of a split: its truth, the network's result (source pixels), its input tensor and letterbox."""

    item: LabelledImage
    result: KeypointsResult
    tensor: np.ndarray  # the network's input
    transform: Transform  # source -> input pixels

    @property
    def error(self) -> float:
        """The larger of the two keypoints' errors, in source pixels."""
        predicted = np.array([self.result.points[name] for name in POINTS])
        return float(np.linalg.norm(predicted - self.item.label.points, axis=1).max())


def evaluate_network(network: nn.Module, root: str | Path, split: str, variant: str) -> dict[str, float]:
    """MAE, RMSE, hit@1/2/5 px, per-keypoint MAE and angle error of ``network`` on a labelled split.

    Raises:
        InvalidInputError: a missing or malformed split or image.
    """
    predictions = predict_split(network, root, split, variant)
    labels = [RUNTIME.read_label(p.item, (p.transform.source_height, p.transform.source_width)) for p in predictions]
    return RUNTIME.metrics([p.result for p in predictions], labels)


def prediction_pictures(network: nn.Module, root: str | Path, split: str, variant: str,
                        count: int) -> list[tuple[str, np.ndarray]]:
    """The ``count`` worst images of a split on the network's 256x512 input: truth (white rings) vs prediction."""
    predictions = sorted(predict_split(network, root, split, variant), key=lambda p: p.error, reverse=True)
    scale = RUNTIME.input_spec(variant).scale
    pictures = []
    for p in predictions[:count]:
        canvas = np.clip(np.round(np.moveaxis(p.tensor[:3], 0, -1) / scale), 0, 255).astype(np.uint8)
        predicted = {name: tuple(p.transform.to_input(np.array(p.result.points[name]))) for name in POINTS}
        truth = {name: tuple(p.transform.to_input(p.item.label.points[k])) for k, name in enumerate(POINTS)}
        caption = f"error {p.error:.1f} px, angle {p.result.angle:.1f} (truth {p.item.label.angle:.1f})"
        pictures.append((Path(p.item.image).stem, draw_keypoints(canvas, predicted, angle=p.result.angle,
                                                                 truth=truth, caption=caption)))
    return pictures
