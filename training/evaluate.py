"""Full-image prediction with PyTorch and the AUROC evaluation of a checkpointed network."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from runtime._dataset import labelled_split, read_mask
from runtime._imageio import read_image
from runtime._metrics import segmentation_aurocs
from runtime._tiling import TilingPlan


@torch.no_grad()
def predict_heatmaps(network: nn.Module, images: np.ndarray, plan: TilingPlan, *,
                     batch_size: int = 18) -> np.ndarray:
    """Defect probability per pixel of (N, 3, H, W) images in 0..255, by patches stitched at their centres.

    This is the PyTorch reference of the exported full-image graph.
    """
    network.eval()
    patches = plan.extract(np.ascontiguousarray(images, dtype=np.float32) / np.float32(255.0))
    n, p = patches.shape[:2]
    flat = torch.from_numpy(patches.reshape(n * p, *patches.shape[2:]))
    probs = [torch.softmax(network(chunk), dim=1)[:, 1:2] for chunk in flat.split(batch_size)]
    heat = torch.cat(probs).numpy().reshape(n, p, 1, plan.patch_height, plan.patch_width)
    return plan.stitch(heat)[:, 0]


def evaluate_network(network: nn.Module, data_root: str | Path, plan: TilingPlan, *,
                     split: str = "test") -> dict[str, float]:
    """Image- and pixel-level AUROC of ``network`` on a dataset split."""
    items = labelled_split(data_root, split)
    heatmaps, masks = [], []
    for item in items:
        image = read_image(item.image, expected_hw=(plan.height, plan.width))
        heatmaps.append(predict_heatmaps(network, image[None], plan)[0])
        masks.append(read_mask(item, plan.height, plan.width))
    return segmentation_aurocs(np.stack(masks), np.stack(heatmaps))
