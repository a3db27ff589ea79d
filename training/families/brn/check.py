"""brn dataset check: every image and mask of the layout read once, as training and evaluation read them.

Errors (training would stop or learn from wrong data): no ``train/good`` images,
no ``test`` split, an image that is unreadable or has the wrong size, channel
count, range (e.g. a float TIFF in 0..1 rather than 0..255) or NaN/Inf; a defect
image without its mask (``ground_truth/<category>/<stem>_mask.tiff``, paired as
the runtime pairs them: :func:`runtime.families.brn.mask_path`); a mask that is
unreadable, of the wrong size or not binary; an evaluated split (``test``, and
``valid`` when present) without both good and defect images, which AUROC needs.

Warnings: masks without an image, empty masks, files and folders brn ignores,
few images, and a strong imbalance between good and defect images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

from runtime.core import InvalidInputError, list_images
from runtime.families.brn import FAMILY, NAME, image_type, mask_path, read_mask
from training._dataset_check import (IGNORED, MISSING, NOT_FINITE, UNREADABLE, WRONG_SIZE, DatasetReport,
                                     read_checked, unread_files, with_progress)

__all__ = ["check_dataset"]

GOOD = "good"
GROUND_TRUTH = "ground_truth"
#: the splits in the order they are reported; train and test are required, valid is optional
SPLITS = ("train", "valid", "test")
#: fewer training images than this are worth a warning (the patches of a few images repeat quickly)
FEW_TRAINING_IMAGES = 10
#: fewer good or defect images than this in an evaluated split give a coarse AUROC
FEW_EVALUATION_IMAGES = 5
#: more of one class than this many times the other in an evaluated split is worth a warning
IMBALANCE_RATIO = 10
_NOT_AN_IMAGE = "not an image file the SDK reads (.tif, .tiff, .png, .jpg, .jpeg)"


def check_dataset(root: Path, variant: str, *, progress: bool = False) -> DatasetReport:
    """Check a brn dataset for ``variant``'s image type (see the module notes for what is checked).

    Args:
        root: the dataset root (``train/good``, ``test/<category>``, ``ground_truth/<category>``, ``valid``).
        variant: the image type the images must have (``strip``, ``square``, ``mvtec``).
        progress: a progress bar on a terminal.

    Returns:
        The report; ``splits`` counts ``good`` and each defect category per split.

    Example:
        >>> check_dataset(Path("data/brn"), "strip").ok
        True
    """
    root = Path(root)
    geometry = image_type(variant)
    report = DatasetReport(root, NAME, variant)
    images = _layout(root, report)
    pre = FAMILY.input_spec(variant)
    what = f"image type {variant!r}"
    # per evaluated split: images usable as negatives (good, or an empty mask) and as positives
    classes: dict[str, list[int]] = {}
    used_masks: set[Path] = set()
    for split, category, path in with_progress(images, f"checking {root.name or root}", progress):
        read_checked(report, path, pre, what=what)
        if category == GOOD:
            classes.setdefault(split, [0, 0])[0] += 1
            continue
        mask = mask_path(path)
        used_masks.add(mask)
        defect = _check_mask(report, path, mask, geometry.height, geometry.width)
        if defect is not None:
            classes.setdefault(split, [0, 0])[1 if defect else 0] += 1
    _orphan_masks(root, report, used_masks)
    _balance(report, classes)
    return report


def _layout(root: Path, report: DatasetReport) -> list[tuple[str, str, Path]]:
    """(split, category, image) of every image training or evaluation reads; layout problems recorded."""
    for entry in sorted(root.iterdir()):
        if entry.is_dir() and not entry.name.startswith(".") and entry.name not in (*SPLITS, GROUND_TRUTH):
            report.warn(entry, IGNORED, f"folder {entry.name}/ is not part of the brn layout and is not read; "
                                        f"expected {', '.join(SPLITS)} and {GROUND_TRUTH}")
    train_good = root / "train" / GOOD
    if not train_good.is_dir():
        report.error(train_good, MISSING, f"no {report.relative(train_good)}/ folder; brn trains on the "
                                          f"defect-free images in <dataset>/train/good")
    if not (root / "test").is_dir():
        report.error(root / "test", MISSING, "no test/ split; brn evaluates on test/good and test/<category> "
                                             "(with masks in ground_truth/<category>)")
    images = []
    for split in SPLITS:
        folder = root / split
        if not folder.is_dir():
            continue
        unread_files(report, folder, (), why=f"brn reads the images in {split}/<category>/ folders only")
        counts = report.split(split)
        for category in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if split == "train" and category.name != GOOD:
                report.warn(category, IGNORED, f"train/{category.name}/ is not read: brn trains on train/good "
                                               f"only and makes its defects itself")
                continue
            found = list_images(category)
            unread_files(report, category, found, why=_NOT_AN_IMAGE)
            counts.images += len(found)
            counts.add(category.name, len(found))
            images += [(split, category.name, path) for path in found]
    if train_good.is_dir() and not report.split("train").classes.get(GOOD):
        report.error(train_good, MISSING, f"no images in {report.relative(train_good)}/; expected the "
                                          f"defect-free images brn trains on (TIFF, PNG or JPEG)")
    return images


def _check_mask(report: DatasetReport, image: Path, mask: Path, height: int, width: int) -> bool | None:
    """Whether the defect ``image``'s mask marks any pixel; None when the mask is missing or bad (recorded)."""
    if not mask.is_file():
        report.error(image, "image-without-mask", f"defect image has no mask; expected "
                                                  f"{report.relative(mask)} (ground_truth/<category>/<stem>_mask.tiff)")
        return None
    report.files_read += 1
    try:
        read_mask(mask, height, width)  # the runtime's reader: what evaluation sees
        values = np.squeeze(tifffile.imread(mask))
    except InvalidInputError as exc:
        kind = WRONG_SIZE if "has shape" in str(exc) else UNREADABLE
        report.error(mask, f"mask-{kind}", str(exc))
        return None
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        report.error(mask, f"mask-{NOT_FINITE}", "mask holds NaN or infinite values; expected 0 and one value "
                                                 "above 0 (0/1 or 0/255)")
        return None
    distinct = np.unique(values.astype(np.float64))
    if len(distinct) > 2 or distinct.min() < 0 or (len(distinct) == 2 and distinct[0] != 0):
        shown = ", ".join(f"{v:g}" for v in distinct[:6]) + (", ..." if len(distinct) > 6 else "")
        report.error(mask, "mask-not-binary", f"mask is not binary: {len(distinct)} distinct values ({shown}); "
                                              f"expected 0 and one value above 0 (0/1 or 0/255): every value above 0 "
                                              f"counts as defect")
        return None
    if not distinct.max() > 0:
        report.warn(mask, "empty-mask", f"the mask of {report.relative(image)} marks no pixel: the image counts "
                                        f"as good when scoring")
        return False
    return True


def _orphan_masks(root: Path, report: DatasetReport, used: set[Path]) -> None:
    folder = root / GROUND_TRUTH
    if not folder.is_dir():
        return
    unread_files(report, folder, (), why="masks live in ground_truth/<category>/ folders")
    for category in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in sorted(p for p in category.iterdir() if p.is_file() and not p.name.startswith(".")):
            if path in used:
                continue
            if path.name.endswith("_mask.tiff"):
                stem = path.name[:-len("_mask.tiff")]
                report.warn(path, "mask-without-image", f"no image {stem}.* in test/{category.name}/ or "
                                                        f"valid/{category.name}/ for this mask")
            else:
                report.warn(path, IGNORED, f"{path.name} is not read; brn's masks are named "
                                           f"ground_truth/<category>/<stem>_mask.tiff")


def _balance(report: DatasetReport, classes: dict[str, list[int]]) -> None:
    """Errors for evaluated splits missing a class (AUROC needs both), warnings for few or imbalanced images."""
    train = report.split("train").classes.get(GOOD, 0) if "train" in report.splits else 0
    if 0 < train < FEW_TRAINING_IMAGES:
        report.warn(Path(report.root, "train", GOOD), "few-images",
                    f"only {train} training image(s); brn's patches repeat quickly with fewer than "
                    f"{FEW_TRAINING_IMAGES}")
    for split in ("valid", "test"):
        if split not in report.splits:
            continue
        good, defect = classes.get(split, [0, 0])
        folder = Path(report.root, split)
        if good == 0 or defect == 0:
            missing = (f"good image ({split}/good, or a defect image with an empty mask)" if good == 0
                       else "defect image with a non-empty mask")
            report.error(folder, "one-class", f"{split}/ has {good} good and {defect} defect image(s) with usable "
                                              f"labels; AUROC needs at least one {missing}")
            continue
        if min(good, defect) < FEW_EVALUATION_IMAGES:
            report.warn(folder, "few-images", f"{split}/ has {good} good and {defect} defect image(s); AUROC on "
                                              f"fewer than {FEW_EVALUATION_IMAGES} of each is coarse")
        if max(good, defect) > IMBALANCE_RATIO * min(good, defect):
            report.warn(folder, "imbalance", f"{split}/ has {good} good and {defect} defect image(s): more than "
                                             f"{IMBALANCE_RATIO}:1, so image-level AUROC rests on few images of "
                                             f"one class")
