"""brn evaluation with PyTorch: full-image heatmaps by stitched patches, and the runtime family's metrics.

:func:`predict_heatmaps` is the PyTorch reference of the exported full-image
graph (the export compares its graphs against it). Labels are read and metrics
computed by the runtime part (``runtime.get_family("brn")``), so training,
export and ``runtime.evaluate`` score a model the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime.core import HeatmapPost, HeatmapResult, TilingPlan, get_family, read_image
from runtime.families.brn import COLOR_ORDER, NAME, image_type, panels

__all__ = ["evaluate_network", "predict_heatmaps", "prediction_pictures"]


@torch.no_grad()
def predict_heatmaps(network: nn.Module, images: np.ndarray, plan: TilingPlan, batch_size: int = 18) -> np.ndarray:
    """Defect probability per pixel of full images, by patches stitched at their centres.

    This is the PyTorch reference of the exported full-image graph. It puts
    ``network`` in eval mode.

    Args:
        network: the brn network, (B, 3, h, w) in 0..1 -> (B, 2, h, w) logits, on any device.
        images: (N, 3, H, W) Target, Ref1, Ref2 in 0..255, H x W the plan's image size.
        plan: where the patches are and how they are stitched.
        batch_size: patches per forward pass.

    Returns:
        (N, H, W) float32 defect probabilities in 0..1.

    Example:
        >>> plan = image_type("strip").tiling()
        >>> predict_heatmaps(network, np.zeros((1, 3, 976, 176), np.float32), plan).shape
        (1, 976, 176)
    """
    network.eval()
    device = next(network.parameters()).device
    patches = plan.extract(np.ascontiguousarray(images, dtype=np.float32) / np.float32(255.0))
    n, p = patches.shape[:2]
    flat = torch.from_numpy(patches.reshape(n * p, *patches.shape[2:]))
    probs = [torch.softmax(network(chunk.to(device)).float(), dim=1)[:, 1:2].cpu() for chunk in flat.split(batch_size)]
    heat = torch.cat(probs).numpy().reshape(n, p, 1, plan.patch_height, plan.patch_width)
    return plan.stitch(heat)[:, 0]


def evaluate_network(network: nn.Module, root: str | Path, split: str, variant: str) -> dict[str, float]:
    """Image- and pixel-level AUROC of ``network`` on a labelled split of a brn dataset.

    Args:
        network: the brn network.
        root: the dataset root (``<root>/<split>/good``, ``<root>/<split>/<defect>``, ``ground_truth``).
        split: ``"test"`` or ``"valid"``.
        variant: the image type of the dataset's images.

    Returns:
        ``{"image_auroc": ..., "pixel_auroc": ...}``.

    Raises:
        InvalidInputError: a missing split, image or mask, or an image of another size.

    Example:
        >>> evaluate_network(network, "data/synthetic", "test", "strip")["pixel_auroc"]
        0.97...
    """
    runtime_family = get_family(NAME)
    geometry = image_type(variant)
    plan = geometry.tiling()
    post = runtime_family.postprocess_spec(variant)
    assert isinstance(post, HeatmapPost)
    results, labels = [], []
    for item in runtime_family.labelled_images(Path(root), split):
        image = read_image(item.image, expected_hw=(plan.height, plan.width), what=f"image type {variant!r}",
                           color_order=COLOR_ORDER)
        heatmap = predict_heatmaps(network, image[None], plan)[0]
        results.append(HeatmapResult.from_heatmap(heatmap, post.threshold, str(item.image)))
        labels.append(runtime_family.read_label(item, (plan.height, plan.width)))
    return runtime_family.metrics(results, labels)


def prediction_pictures(network: nn.Module, root: str | Path, split: str, variant: str,
                        count: int) -> list[tuple[str, np.ndarray]]:
    """The 8-panel figures of up to ``count`` images of a split with their ground-truth outline.

    The figures are :func:`runtime.families.brn.panels`, as ``runtime.infer --visualize`` writes them.
    Defect images come first (they show what the network learnt), then good ones.

    Returns:
        ``(image stem, (H, W, 3) uint8 figure)`` pairs.

    Raises:
        InvalidInputError: a missing split, image or mask.
    """
    runtime_family = get_family(NAME)
    plan = image_type(variant).tiling()
    items = runtime_family.labelled_images(Path(root), split)
    chosen = sorted(items, key=lambda item: item.label is None)[:count]
    figures = []
    for item in chosen:
        image = read_image(item.image, expected_hw=(plan.height, plan.width), what=f"image type {variant!r}",
                           color_order=COLOR_ORDER)
        heatmap = predict_heatmaps(network, image[None], plan)[0]
        truth = runtime_family.read_label(item, (plan.height, plan.width))
        figures.append((item.image.stem, panels(image, heatmap, truth)))
    return figures
