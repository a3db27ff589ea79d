"""Write a synthetic lhrnet dataset (assembly scenes with exact labels), so training and evaluation run out of the box.

Layout::

    <out>/images/000000.png ...     RGB scenes of several sizes and aspect ratios (8-bit PNG)
    <out>/train.json                the training split (about 9 images in 10)
    <out>/valid.json                the validation split (the rest)
    <out>/dataset.json              what was generated: seed, generator settings, counts per kind
    <out>/contact_sheet.png         up to 12 scenes letterboxed to 256x512 with their labels drawn

Split files (format ``"lhrnet-keypoints/1"``, the one :mod:`runtime.families.lhrnet`
reads; a user's own dataset in this format trains and evaluates the same way)::

    {"format": "lhrnet-keypoints/1", "points": ["slot", "part"],
     "images": [{"file": "images/000123.png", "width": 640, "height": 480,
                 "slot": [x, y], "part": [x, y], "angle": 12.5,
                 "symmetry": 1, "kinds": ["decoys"]}, ...]}

* ``file``: the image, relative to the dataset folder (PNG, JPEG or TIFF, RGB).
* ``width``, ``height``: the image's size in pixels.
* ``slot``, ``part``: the centres (centroid of the outline's area) in the
  image's pixels, continuous: 0 is the left/top edge of the first pixel, a
  pixel centre is at ``i + 0.5``; inside the image (0 <= x <= width, 0 <= y <= height).
* ``angle``: the part's rotation relative to the slot, degrees,
  counter-clockwise as the image is displayed (y down); turning the part by
  ``-angle`` about its centre aligns it with the slot.
* ``symmetry`` (optional, default 1): the order n of the outline's rotational
  symmetry (2 for a rectangle); its angle is only defined modulo 360/n, so the
  generator writes it reduced into (-180/n, 180/n] and :func:`read_split`
  reduces a user's angle the same way.
* ``kinds`` (optional, default []): tags for per-kind error reports; the
  generator writes ``plain``, ``decoys``, ``rotated_part``, ``noise``,
  ``highlighted_edge`` (see :mod:`training.families.lhrnet.scenes`).

Generated numbers are rounded to 1e-4 (pixels, degrees). Image ``i`` is drawn
from its own random stream seeded by (seed, i), so the same seed gives the same
bytes and a larger dataset starts with the same images. The split is a
permutation by a generator seeded with 42 (independent of ``seed``): n/10 images
(rounded half up, at least one) go to ``valid.json``. The defaults (200 scenes,
240..1080 pixels high) take about a minute on one core and about 0.3 GB.

The dataset is built in a temporary folder next to ``out`` and renamed into
place at the end, under a lock (``runtime.core.publish_folder``): an interrupted
run (SIGTERM included) leaves no half-written dataset, and two runs writing the
same folder do not overwrite each other.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from runtime.core import InvalidInputError, atomic_write, letterbox, publish_folder, read_image, write_png
from runtime.families.lhrnet import FORMAT, HEIGHT, NAME, PAD_VALUE, POINTS, WIDTH, draw_keypoints
from runtime.families.lhrnet import read_split as _read_split
from training.families.lhrnet.scenes import SceneKind, SceneOptions, relative_angle, render_scene

__all__ = ["SPLIT_SEED", "make_dataset", "read_split", "split_indices"]

logger = logging.getLogger(__name__)

# Bump when the generator changes what a seed produces.
_GENERATOR_VERSION = 1
#: the seed of the train/valid split, whatever the images' seed
SPLIT_SEED = 42
_VALID_FRACTION = 0.1
_SHEET_SCENES = 12
_SHEET_COLUMNS = 3
_CAPTION = 14
_GAP = 4
_DECIMALS = 4


def make_dataset(out: str | os.PathLike[str], *, seed: int = 0, n_images: int = 200,
                 options: SceneOptions | None = None, overwrite: bool = False, progress: bool = False) -> Path:
    """Generate a synthetic lhrnet dataset: scenes, split files, metadata and a contact sheet.

    Args:
        out: the dataset folder to create.
        seed: the same seed gives byte-identical files.
        n_images: scenes to draw (at least 2: each split needs one).
        options: how scenes are drawn (None: the SPEC's rates, sizes 240..1080 high).
        overwrite: replace an existing non-empty ``out``.
        progress: show a tqdm progress bar on stderr.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: for fewer than 2 images, a negative seed, options
            that are not :class:`SceneOptions`, or an existing non-empty ``out``
            without ``overwrite``.

    Example:
        >>> make_dataset("data/lhrnet", seed=0, n_images=20)
        PosixPath('data/lhrnet')
    """
    out = Path(out)
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 2:
        raise InvalidInputError(f"n_images must be an integer >= 2 (train and valid need one each), got {n_images!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"seed must be an integer >= 0, got {seed!r}")
    if options is not None and not isinstance(options, SceneOptions):
        raise InvalidInputError(f"options must be a SceneOptions, got {type(options).__name__}")
    options = options or SceneOptions()
    with publish_folder(out, overwrite=overwrite) as staging:
        entries, details = _write_images(staging, seed, n_images, options, out.name, progress)
        valid = split_indices(n_images)
        _write_split(staging / "train.json", [e for i, e in enumerate(entries) if i not in valid])
        _write_split(staging / "valid.json", [e for i, e in enumerate(entries) if i in valid])
        _write_contact_sheet(staging, entries)
        _write_metadata(staging, seed, options, entries, details, len(valid))
    logger.info("wrote %d scenes to %s", n_images, out)
    return out


def split_indices(n_images: int) -> set[int]:
    """The indices of the validation images among ``n_images`` (a permutation seeded with :data:`SPLIT_SEED`)."""
    n_valid = max(1, math.floor(n_images * _VALID_FRACTION + 0.5))
    order = np.random.default_rng(SPLIT_SEED).permutation(n_images)
    return {int(i) for i in order[:n_valid]}


def read_split(root: str | os.PathLike[str], split: str) -> list[dict[str, Any]]:
    """The entries of ``<root>/<split>.json``, validated: the user-facing contract of the dataset format.

    Validation is :func:`runtime.families.lhrnet.read_split`'s, the one the
    runtime evaluates with, so a dataset that trains also evaluates.

    Args:
        root: the dataset folder.
        split: ``"train"`` or ``"valid"`` (any ``<split>.json`` in ``root``).

    Returns:
        One dict per image, in file order: ``file``, ``path`` (``root / file``),
        ``width``, ``height``, ``slot`` and ``part`` ([x, y] floats), ``angle``
        (reduced into (-180/n, 180/n] for symmetry n), ``symmetry`` (default 1)
        and ``kinds`` (default []).

    Raises:
        InvalidInputError: naming the file, the entry and the field: a missing
            split file, bad JSON, a wrong format tag or point list, an empty
            image list, missing or unknown fields, non-finite numbers, points
            outside their image, a path leaving ``root``, a missing image file.

    Example:
        >>> [entry["slot"] for entry in read_split("data/lhrnet", "valid")][:1]
        [[312.5, 140.25]]
    """
    root = Path(root)
    entries = []
    for path, label in _read_split(root, split):
        entries.append({
            "file": path.relative_to(root).as_posix(), "path": path, "width": label.width, "height": label.height,
            **{name: [float(x), float(y)] for name, (x, y) in zip(POINTS, label.points)},
            "angle": relative_angle(label.angle, label.symmetry), "symmetry": label.symmetry,
            "kinds": list(label.kinds),
        })
    return entries


def _write_images(root: Path, seed: int, n_images: int, options: SceneOptions, name: str,
                  progress: bool) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    from PIL import Image

    folder = root / "images"
    folder.mkdir()
    digits = max(6, len(str(n_images - 1)))
    entries, details = [], []
    with tqdm(total=n_images, desc=f"dataset {name}", unit="img", disable=None if progress else True) as bar:
        for index in range(n_images):
            scene = render_scene(np.random.default_rng([seed, index]), options)
            file = f"images/{index:0{digits}d}.png"
            # zlib level 1: noisy scenes barely compress, and level 6 took three times as long as rendering.
            atomic_write(root / file, lambda tmp, image=scene.image: Image.fromarray(image).save(
                tmp, format="PNG", compress_level=1))
            label = scene.label()
            entries.append({"file": file, "width": label["width"], "height": label["height"],
                            **{p: [round(v, _DECIMALS) for v in label[p]] for p in POINTS},
                            "angle": round(label["angle"], _DECIMALS), "symmetry": label["symmetry"],
                            "kinds": label["kinds"]})
            details.append({"outline": scene.slot.shape.outline.value, "background": scene.background.value})
            bar.update()
    return entries, details


def _write_split(path: Path, entries: list[dict[str, Any]]) -> None:
    # One entry per line: readable, and a diff of two datasets shows which images changed.
    head = json.dumps({"format": FORMAT, "points": list(POINTS)})[:-1]
    lines = ",\n  ".join(json.dumps(entry) for entry in entries)
    path.write_text(f'{head}, "images": [\n  {lines}\n]}}\n', encoding="utf-8")


def _write_metadata(root: Path, seed: int, options: SceneOptions, entries: list[dict[str, Any]],
                    details: list[dict[str, str]], n_valid: int) -> None:
    kinds = Counter(kind for entry in entries for kind in entry["kinds"])
    metadata = {
        "family": NAME,
        "format": FORMAT,
        "seed": seed,
        "split_seed": SPLIT_SEED,
        "generator_version": _GENERATOR_VERSION,
        "counts": {"images": len(entries), "train": len(entries) - n_valid, "valid": n_valid},
        "kinds": {kind.value: kinds.get(kind.value, 0) for kind in SceneKind},
        "outlines": dict(sorted(Counter(d["outline"] for d in details).items())),
        "backgrounds": dict(sorted(Counter(d["background"] for d in details).items())),
        "symmetries": {str(k): v for k, v in sorted(Counter(e["symmetry"] for e in entries).items())},
        "options": options.to_dict(),
    }
    (root / "dataset.json").write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")


def _sheet_choice(entries: list[dict[str, Any]]) -> list[int]:
    # Every kind present in the dataset at least once (its first image), then the first images.
    chosen: list[int] = []
    for kind in SceneKind:
        first = next((i for i, e in enumerate(entries) if kind.value in e["kinds"]), None)
        if first is not None and first not in chosen and len(chosen) < _SHEET_SCENES:
            chosen.append(first)
    chosen += [i for i in range(len(entries)) if i not in chosen][:_SHEET_SCENES - len(chosen)]
    return sorted(chosen)


def _write_contact_sheet(root: Path, entries: list[dict[str, Any]]) -> None:
    from PIL import Image, ImageDraw, ImageFont

    chosen = _sheet_choice(entries)
    rows = -(-len(chosen) // _SHEET_COLUMNS)
    columns = min(_SHEET_COLUMNS, len(chosen))
    legend = _CAPTION + _GAP
    tile_h = HEIGHT + _CAPTION
    sheet = Image.new("RGB", (columns * WIDTH + (columns - 1) * _GAP, legend + rows * tile_h + (rows - 1) * _GAP),
                      (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default()
    draw.text((2, 1), "green: slot   orange: part   line: angle of the part relative to the slot "
                      "(counter-clockwise +)", fill=(0, 0, 0), font=font)
    for k, index in enumerate(chosen):
        entry = entries[index]
        canvas, _, transform = letterbox(read_image(root / entry["file"]), HEIGHT, WIDTH, PAD_VALUE)
        tile = np.clip(np.moveaxis(canvas, 0, -1) + 0.5, 0, 255).astype(np.uint8)
        points = {name: tuple(transform.to_input(np.array(entry[name]))) for name in POINTS}
        tile = draw_keypoints(tile, points, angle=entry["angle"])
        x = (k % _SHEET_COLUMNS) * (WIDTH + _GAP)
        y = legend + (k // _SHEET_COLUMNS) * (tile_h + _GAP)
        sheet.paste(Image.fromarray(tile), (x, y))
        caption = (f"{Path(entry['file']).stem}  {entry['width']}x{entry['height']}  angle {entry['angle']:+.1f} "
                   f"(n={entry['symmetry']})  {', '.join(entry['kinds'])}")
        draw.text((x + 2, y + HEIGHT + 1), caption, fill=(0, 0, 0), font=font)
    write_png(root / "contact_sheet.png", np.asarray(sheet))
