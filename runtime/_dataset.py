"""Reading datasets in the SDK layout (torch-free: evaluation runs on edge boxes too).

Layout::

    <root>/train/good/*.tiff
    <root>/test/good/*.tiff
    <root>/test/<defect>/*.tiff            e.g. test/bright_spots/007.tiff
    <root>/ground_truth/<defect>/<stem>_mask.tiff
    <root>/valid/...                        optional, same shape as test/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from runtime._errors import InvalidInputError
from runtime._imageio import list_images


@dataclass(frozen=True)
class LabelledImage:
    """One evaluation image and its ground-truth mask (None for a good image)."""

    image: Path
    mask: Path | None


def training_images(root: str | Path) -> list[Path]:
    """The defect-free images under ``<root>/train/good``.

    Raises:
        InvalidInputError: when the folder is missing or holds no image.
    """
    folder = Path(root) / "train" / "good"
    paths = list_images(folder) if folder.is_dir() else []
    if not paths:
        raise InvalidInputError(f"no training images in {folder}; expected <dataset>/train/good/*.tiff")
    return paths


def labelled_split(root: str | Path, split: str = "test") -> list[LabelledImage]:
    """Every image of ``<root>/<split>`` with the mask that belongs to it.

    Raises:
        InvalidInputError: when the split is missing or a defect image has no mask.
    """
    root = Path(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise InvalidInputError(f"no {split!r} split in {root}; expected {split_dir}/good and {split_dir}/<defect>")
    items: list[LabelledImage] = []
    for category in sorted(p for p in split_dir.iterdir() if p.is_dir()):
        for image in list_images(category):
            if category.name == "good":
                items.append(LabelledImage(image, None))
                continue
            mask = root / "ground_truth" / category.name / f"{image.stem}_mask.tiff"
            if not mask.is_file():
                raise InvalidInputError(f"defect image {image} has no mask; expected {mask}")
            items.append(LabelledImage(image, mask))
    if not items:
        raise InvalidInputError(f"no images under {split_dir}")
    return items


def read_mask(item: LabelledImage, height: int, width: int) -> np.ndarray:
    """The (H, W) boolean ground truth of ``item`` (all False for a good image)."""
    if item.mask is None:
        return np.zeros((height, width), dtype=bool)
    try:
        mask = np.squeeze(tifffile.imread(item.mask))
    except Exception as exc:  # tifffile raises many types for a corrupt file
        raise InvalidInputError(f"cannot read mask {item.mask}: {exc}") from exc
    if mask.shape != (height, width):
        raise InvalidInputError(f"mask {item.mask} has shape {mask.shape}, expected ({height}, {width})")
    return mask > 0
