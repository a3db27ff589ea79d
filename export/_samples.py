"""Images the export calibrates and verifies on: synthetic strips by default, a user folder on request."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from runtime._errors import InvalidInputError
from runtime._imageio import list_images, read_image
from runtime._registry import ImageType
from training.backgrounds import synthesize_background
from training.defects import DefectConfig, synthesize_sample


def synthetic_images(count: int, image_type: ImageType, *, seed: int, defect_fraction: float = 0.5
                     ) -> tuple[np.ndarray, np.ndarray]:
    """``count`` labelled images (N, 3, H, W) in 0..255 and masks (N, H, W); the first part is defective."""
    n_defect = int(round(count * defect_fraction))
    images = np.empty((count, 3, image_type.height, image_type.width), np.float32)
    masks = np.zeros((count, image_type.height, image_type.width), np.float32)
    for i in range(count):
        rng = np.random.default_rng([seed, 7919, i])
        images[i] = synthesize_background(rng, image_type.height, image_type.width)
        if i < n_defect:
            images[i], masks[i], _ = synthesize_sample(images[i], rng, DefectConfig(), force_defect=True)
    return images, masks


def folder_images(folder: Path, image_type: ImageType, limit: int) -> np.ndarray:
    """Up to ``limit`` images of a user folder as (N, 3, H, W) in 0..255.

    Raises:
        InvalidInputError: a missing or empty folder, or an image that does not fit the image type.
    """
    if not folder.is_dir():
        raise InvalidInputError(f"calibration folder not found: {folder}")
    paths = list_images(folder)[:limit]
    if not paths:
        raise InvalidInputError(f"no images (.tiff/.png/.jpg) in calibration folder {folder}")
    return np.stack([read_image(p, expected_hw=(image_type.height, image_type.width)) for p in paths])
