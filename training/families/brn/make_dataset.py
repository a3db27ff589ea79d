"""Write a synthetic brn dataset in the SDK layout, so training and evaluation run out of the box.

Layout (``NNN`` = zero-padded index, at least three digits)::

    <out>/dataset.json                          what was generated, and from which seed
    <out>/train/good/NNN.tiff                   defect-free backgrounds
    <out>/test/good/NNN.tiff                    defect-free backgrounds
    <out>/test/bright_spots/NNN.tiff            backgrounds with Gaussian point defects
    <out>/ground_truth/bright_spots/NNN_mask.tiff

Images are float32 CHW TIFFs of shape (4, H, W), values 0..255: channels
Target, Ref1, Ref2 and the production mask channel (the defect mask in 0/1 for
``bright_spots``, zeros for ``good``; readers drop it). The mask of
``test/bright_spots/007.tiff`` is ``ground_truth/bright_spots/007_mask.tiff``,
an (H, W) float32 TIFF with values 0 and 1 (foreground = Target-only defects).

Defect images use the training defect generator over the whole image with at
least one Target-only defect each. Every image draws from its own random
stream seeded by (seed, split, index), so the same seed gives the same bytes,
and changing one split's count leaves the other splits' images unchanged.

The dataset is built in a temporary folder next to ``out`` and renamed into
place at the end, under a lock (``runtime.core.publish_folder``, shared with the
export): an interrupted run (SIGTERM included) leaves no half-written dataset,
and two runs writing the same folder do not overwrite each other.

Usage::

    python -m training.make_dataset --family brn --out data/synthetic --seed 0
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from runtime.core import InvalidInputError, publish_folder, write_tiff
from runtime.families.brn import DEFECT_CATEGORY, NAME, ImageType, image_type as lookup_image_type
from training.families.brn.backgrounds import synthesize_background
from training.families.brn.defects import DefectConfig, synthesize_sample

__all__ = ["DEFECT_CATEGORY", "make_dataset"]

logger = logging.getLogger(__name__)

# Bump when the generator changes what a seed produces.
_GENERATOR_VERSION = 1


@dataclass(frozen=True)
class _Split:
    folder: str
    count: int
    defective: bool
    stream: int  # keeps the random streams of the splits apart


def make_dataset(out_dir: str | os.PathLike[str], *, seed: int = 0, n_train: int = 40, n_test_good: int = 10,
                 n_test_defect: int = 20, image_type: str = "strip", overwrite: bool = False,
                 defects: DefectConfig | None = None, progress: bool = False) -> Path:
    """Generate a synthetic brn dataset (backgrounds, defect images, masks).

    Args:
        out_dir: the dataset folder to create.
        seed: the same seed gives byte-identical files.
        n_train: defect-free images in ``train/good``.
        n_test_good: defect-free images in ``test/good``.
        n_test_defect: defect images in ``test/bright_spots`` (each with a mask).
        image_type: a brn image type (``"strip"`` 976x176, ``"square"``
            256x256, ``"mvtec"`` 1024x1024).
        overwrite: replace an existing non-empty ``out_dir``.
        defects: defect settings of the test images (rates do not apply: every
            test defect image gets Target-only defects).
        progress: show a tqdm progress bar on stderr.

    Returns:
        ``out_dir`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: for negative counts, no images at all, an unknown
            image type, or an existing non-empty ``out_dir`` without ``overwrite``.

    Example:
        >>> make_dataset("data/synthetic", seed=0, n_train=8, n_test_good=2, n_test_defect=4)
        PosixPath('data/synthetic')
    """
    out_dir = Path(out_dir)
    geometry = lookup_image_type(image_type)
    splits = [
        _Split("train/good", n_train, defective=False, stream=0),
        _Split("test/good", n_test_good, defective=False, stream=1),
        _Split(f"test/{DEFECT_CATEGORY}", n_test_defect, defective=True, stream=2),
    ]
    _check_counts(splits)
    defects = defects or DefectConfig()
    total = sum(split.count for split in splits)
    with publish_folder(out_dir, overwrite=overwrite) as staging:
        with tqdm(total=total, desc=f"dataset {out_dir.name}", unit="img", disable=None if progress else True) as bar:
            for split in splits:
                _write_split(staging, split, geometry, seed, defects, bar)
        _write_metadata(staging, geometry, seed, splits, defects)
    logger.info("wrote %d images to %s", total, out_dir)
    return out_dir


def _check_counts(splits: list[_Split]) -> None:
    for split in splits:
        if split.count < 0:
            raise InvalidInputError(f"image count of {split.folder} must be >= 0, got {split.count}")
    if not any(split.count for split in splits):
        raise InvalidInputError("all image counts are 0; nothing to write")


def _write_split(root: Path, split: _Split, geometry: ImageType, seed: int, defects: DefectConfig,
                 bar: tqdm) -> None:
    folder = root / split.folder
    folder.mkdir(parents=True)
    mask_folder = root / "ground_truth" / DEFECT_CATEGORY
    if split.defective:
        mask_folder.mkdir(parents=True)
    digits = max(3, len(str(max(split.count - 1, 0))))
    for index in range(split.count):
        rng = np.random.default_rng([seed, split.stream, index])
        image = synthesize_background(rng, geometry.height, geometry.width)
        mask = np.zeros(image.shape[1:], dtype=np.float32)
        if split.defective:
            image, mask, _ = synthesize_sample(image, rng, defects, force_defect=True)
        name = f"{index:0{digits}d}"
        write_tiff(folder / f"{name}.tiff", np.concatenate([image, mask[None]]))
        if split.defective:
            write_tiff(mask_folder / f"{name}_mask.tiff", mask)
        bar.update()


def _write_metadata(root: Path, geometry: ImageType, seed: int, splits: list[_Split],
                    defects: DefectConfig) -> None:
    metadata = {
        "family": NAME,
        "image_type": geometry.name,
        "height": geometry.height,
        "width": geometry.width,
        "seed": seed,
        "generator_version": _GENERATOR_VERSION,
        "counts": {split.folder: split.count for split in splits},
        "defects": asdict(defects),
        "format": "float32 CHW TIFF (4, H, W): Target, Ref1, Ref2, mask; values 0..255",
    }
    (root / "dataset.json").write_text(json.dumps(metadata, indent=2) + "\n")
