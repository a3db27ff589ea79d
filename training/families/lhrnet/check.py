"""lhrnet dataset check: every label of ``train.json`` and ``valid.json`` and every image they name, read once.

The layout and label format are the runtime part's (:mod:`runtime.families.lhrnet`):
``<root>/images/...`` and one ``lhrnet-keypoints/1`` file per split. Each entry
is validated by the runtime's own reader (:func:`~runtime.families.lhrnet.read_entry`),
so every bad entry is listed rather than the first; each image is read with
the family's input contract (3 or 4 channels, 0..255, at least 8 pixels a side)
and its size compared with the label's ``width`` and ``height``.

Errors: a missing split or unreadable split file; an entry naming a missing
file, with a point outside its image, a value that is not a finite number
(NaN) or another malformed field; an image that is unreadable or refused by
the input contract; an image whose size differs from its label's. Warnings:
images under ``images/`` that no split names, an image in both splits, few
images in a split.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from runtime.core import InvalidInputError, LabelledImage
from runtime.families.lhrnet import FAMILY, FORMAT, NAME, POINTS, KeypointLabel, read_entry, read_split
from training._dataset_check import IGNORED, MISSING, NOT_FINITE, DatasetReport, read_checked, with_progress

__all__ = ["check_dataset"]

#: the label files, in the order they are reported; both are required (training selects on valid)
SPLITS = ("train", "valid")
IMAGES = "images"
#: fewer labelled images than this in a split are worth a warning
FEW_IMAGES = {"train": 50, "valid": 10}
#: what the runtime's label reader says for each kind (runtime/families/lhrnet.py); the rest is "bad-label"
_LABEL_KINDS = (("image file not found", "missing-image"), ("lies outside", "point-outside"),
                ("finite number", f"label-{NOT_FINITE}"))


def check_dataset(root: Path, variant: str, *, progress: bool = False) -> DatasetReport:
    """Check an lhrnet dataset (see the module notes for what is checked).

    Args:
        root: the dataset root (``images/``, ``train.json``, ``valid.json``).
        variant: the family's input geometry (its letterbox; any image size is accepted).
        progress: a progress bar on a terminal.

    Returns:
        The report; ``splits`` counts the labelled images per split and, as classes, the scene kinds
        the labels name (``kinds``; an image may have several, ``untagged`` when it has none).

    Example:
        >>> check_dataset(Path("data/lhrnet"), "256x512").ok
        True
    """
    root = Path(root)
    report = DatasetReport(root, NAME, variant)
    named: set[Path] = set()  # every file an entry names, its label valid or not
    entries = [(split, image, label) for split in SPLITS for image, label in _labels(root, split, report, named)]
    pre = FAMILY.input_spec(variant)
    for split, image, label in with_progress(entries, f"checking {root.name or root}", progress):
        chw = read_checked(report, image, pre)
        if chw is None:
            continue
        try:
            FAMILY.read_label(LabelledImage(image, label), chw.shape[1:])
        except InvalidInputError as exc:
            report.error(image, "size-mismatch", str(exc))
    _unlabelled(root, report, named | {image for _, image, _ in entries})
    _shared(report, entries)
    _few(report)
    return report


def _labels(root: Path, split: str, report: DatasetReport, named: set[Path]) -> list[tuple[Path, KeypointLabel]]:
    """The valid entries of ``<split>.json``, every bad one recorded (its file added to ``named``); the split's
    counts filled in."""
    path = root / f"{split}.json"
    counts = report.split(split)
    if not path.is_file():
        report.error(path, MISSING, f"no {split}.json; lhrnet needs train.json and valid.json (format {FORMAT}, "
                                    f"see runtime.families.lhrnet)")
        return []
    report.files_read += 1
    try:
        labels = read_split(root, split)
        counts.images = len(labels)
    except InvalidInputError as exc:
        raw = _entries(path)
        if raw is None:  # the file itself is broken: its JSON, its header or its list of images
            report.error(path, "bad-label-file", str(exc))
            return []
        labels = _valid_entries(root, split, raw, report, named)
        counts.images = len(raw)
    for kind, n in Counter(k for _, label in labels for k in (label.kinds or ("untagged",))).items():
        counts.add(kind, n)
    return labels


def _valid_entries(root: Path, split: str, raw: list[Any], report: DatasetReport,
                   named: set[Path]) -> list[tuple[Path, KeypointLabel]]:
    """The entries the runtime's reader accepts; each refused one recorded at its image (or its split file)."""
    labels = []
    for index, entry in enumerate(raw):
        try:
            labels.append(read_entry(root, split, index, entry))
        except InvalidInputError as exc:
            file = entry.get("file") if isinstance(entry, dict) else None
            where = root / file if isinstance(file, str) and file else root / f"{split}.json"
            named.add(where)
            report.error(where, next((k for text, k in _LABEL_KINDS if text in str(exc)), "bad-label"), str(exc))
    return labels


def _entries(path: Path) -> list[Any] | None:
    """The entries of a split file whose header is sound (format, points, a list of images); else None."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    ok = (isinstance(data, dict) and data.get("format") == FORMAT and data.get("points") == list(POINTS)
          and isinstance(data.get("images"), list) and data["images"])
    return data["images"] if ok else None


def _unlabelled(root: Path, report: DatasetReport, labelled: set[Path]) -> None:
    folder = root / IMAGES
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path not in labelled:
            report.warn(path, IGNORED, f"no split names {report.relative(path)}: it is not used "
                                       f"(add it to train.json or valid.json)")


def _shared(report: DatasetReport, entries: list[tuple[str, Path, KeypointLabel]]) -> None:
    splits: dict[Path, set[str]] = {}
    for split, image, _ in entries:
        splits.setdefault(image, set()).add(split)
    for image, named in splits.items():
        if len(named) > 1:
            report.warn(image, "in-both-splits", f"{report.relative(image)} is in both train.json and valid.json: "
                                                 f"validation on a training image overstates the accuracy")


def _few(report: DatasetReport) -> None:
    for split, least in FEW_IMAGES.items():
        count = report.splits[split].images if split in report.splits else 0
        if 0 < count < least:
            report.warn(Path(report.root, f"{split}.json"), "few-images",
                        f"{split}.json labels {count} image(s); with fewer than {least} "
                        + ("the network over-fits quickly" if split == "train" else "the hit rates are coarse"))
