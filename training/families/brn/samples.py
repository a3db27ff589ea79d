"""Labelled synthetic brn images in memory: what the export verifies parity and calibrates INT8 on."""

from __future__ import annotations

import numpy as np

from runtime.core import InvalidInputError
from runtime.families.brn import image_type
from training.families.brn.backgrounds import synthesize_background
from training.families.brn.defects import DefectConfig, synthesize_sample

__all__ = ["synthetic_samples"]

# Keeps these images' random streams apart from the dataset writer's.
_STREAM = 7919


def synthetic_samples(variant: str, count: int, seed: int, *, defect_fraction: float = 0.5
                      ) -> tuple[np.ndarray, list[np.ndarray]]:
    """``count`` synthetic images of an image type with their ground truth; the first part is defective.

    Image ``i`` is a pure function of ``(seed, i)``: asking for more images
    keeps the first ones unchanged.

    Args:
        variant: the image type (``"strip"``, ``"square"``, ``"mvtec"``).
        count: how many images.
        seed: the random seed.
        defect_fraction: the share of images (rounded) that get Target-only defects.

    Returns:
        ``(images, masks)``: (N, 3, H, W) float32 Target, Ref1, Ref2 in 0..255 and
        N (H, W) bool masks (True on a defect), as ``runtime``'s ``read_label`` returns them.

    Raises:
        InvalidInputError: an unknown image type, a negative count or a fraction outside 0..1.

    Example:
        >>> images, masks = synthetic_samples("strip", 4, seed=0)
        >>> images.shape, sum(m.any() for m in masks)
        ((4, 3, 976, 176), 2)
    """
    geometry = image_type(variant)
    if count < 0:
        raise InvalidInputError(f"sample count must be >= 0, got {count}")
    if not 0.0 <= defect_fraction <= 1.0:
        raise InvalidInputError(f"defect_fraction must be in 0..1, got {defect_fraction}")
    n_defect = int(round(count * defect_fraction))
    images = np.empty((count, 3, geometry.height, geometry.width), np.float32)
    masks = []
    for i in range(count):
        rng = np.random.default_rng([seed, _STREAM, i])
        images[i] = synthesize_background(rng, geometry.height, geometry.width)
        mask = np.zeros((geometry.height, geometry.width), np.float32)
        if i < n_defect:
            images[i], mask, _ = synthesize_sample(images[i], rng, DefectConfig(), force_defect=True)
        masks.append(mask > 0)
    return images, masks
