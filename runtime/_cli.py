"""``python -m runtime.infer``: run a bundle over files and folders, write the family's outputs and a summary.

    python -m runtime.infer bundles/brn images/ extra.tiff --out predictions --visualize

Per image, the files the model's family writes (a heatmap family: ``<stem>_heatmap.tiff``
and ``<stem>_overlay.png``; a keypoints family: ``<stem>_points.png``; with ``--visualize``
its figure too); then ``summary.csv`` for all, with the family's columns (a keypoints
family: ``<name>_x``, ``<name>_y``, ``<name>_score`` per point, then ``angle``), whose
``outputs`` column names the files written for each input. Two inputs with the same stem
(``a/x.tiff``, ``b/x.tiff``) get distinct stems (``x``, ``x_1``), decided from the whole input
list before any image runs, so a name does not depend on which images fail. An image that
lies in a labelled dataset of the family's layout has its ground truth drawn on the figure.

The loop is :func:`infer_files`, over any :class:`Predictor`: ``python -m training.predict``
runs it on a checkpoint's PyTorch network, so both write the same files.

Exit codes: 0 every input processed; 1 some inputs failed (each reported on stderr and
listed in the summary; the others are still processed); 2 bad usage, a model that cannot
be loaded or an output folder that cannot be written, detected before any image runs;
130 interrupted (Ctrl-C): the summary of the images done so far is still written (nothing
when the model was still loading), and no file of an image the summary does not list stays.
"""

from __future__ import annotations

import argparse
import csv
import logging
import math
import sys
import time
from dataclasses import dataclass
from glob import escape as glob_escape
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
from tqdm import tqdm

from runtime._errors import InvalidInputError, SdkError
from runtime._family import RuntimeFamily
from runtime._imageio import IMAGE_SUFFIXES, atomic_write, check_output_dir, list_images
from runtime._manifest import Preprocess
from runtime._options import SessionOptions
from runtime._preprocess import read_source
from runtime._results import Result
from runtime._session import Session

SUMMARY_HEAD = ("file",)
SUMMARY_TAIL = ("latency_ms", "outputs", "status", "error")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


@dataclass(frozen=True)
class Predictor:
    """What :func:`infer_files` needs of a model: how files are read, how one image runs, who writes the outputs.

    Attributes:
        family: the model family's runtime part (summary columns, per-image files, figure, labels).
        preprocess: how a file becomes the checked source channels (the manifest's ``preprocess``).
        run: the source channels (C, h, w) of one image, as :func:`read_source` returns them -> its result.
        what: what the expected image size belongs to, for messages (``"<family> <variant>"``).
        description: what runs, for the closing line (``"brn onnxruntime fp32 on cpu"``).

    Example:
        >>> with Session("bundles/brn") as session:
        ...     infer_files(Predictor.of_session(session), [Path("images")], Path("predictions"))
        0
    """

    family: RuntimeFamily
    preprocess: Preprocess
    run: Callable[[np.ndarray], Result]
    what: str
    description: str

    @classmethod
    def of_session(cls, session: Session) -> "Predictor":
        """A :class:`~runtime.Session`'s graph as a predictor."""
        manifest = session.manifest
        return cls(session.family, manifest.preprocess, session.run, f"{manifest.family} {manifest.variant}",
                   f"{session.family.name} {session.backend} {session.precision} on {session.device}")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.infer", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="bundle directory or model.<precision>.onnx")
    p.add_argument("inputs", type=Path, nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino or native (libruntime)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N], tensorrt")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or int8")
    p.add_argument("--threshold", type=float, default=None, help="decision threshold (default: the manifest's)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--visualize", action="store_true", help="also write the family's figure per image")
    p.add_argument("--no-progress", action="store_true")
    return p


def _collect(inputs: list[Path]) -> tuple[list[Path], list[tuple[Path, str]]]:
    files, problems = [], []
    for item in inputs:
        if item.is_dir():
            found = list_images(item)
            if not found:
                problems.append((item, f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder"))
            files += found
        else:
            files.append(item)  # a missing or unsupported file fails in read_image, with its reason
    return files, problems


def _unique_stems(files: list[Path]) -> list[str]:
    """One output stem per input, unique in the output folder and independent of which inputs fail.

    A file keeps its own stem when it is the first with it; a later one with the same
    stem gets ``<stem>_<n>`` with the smallest n that is nobody's stem, its own or
    given (so ``a/x``, ``b/x`` and ``c/x_1`` become ``x``, ``x_2`` and ``x_1``).
    Names are compared case-folded: ``X.tiff`` and ``x.tiff`` would write the same
    files on a case-insensitive file system.
    """
    own = {p.stem.casefold() for p in files}
    used: set[str] = set()
    stems = []
    for path in files:
        stem, n = path.stem, 1
        if stem.casefold() in used:
            while (candidate := f"{path.stem}_{n}").casefold() in used | own:
                n += 1
            stem = candidate
        used.add(stem.casefold())
        stems.append(stem)
    return stems


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        # The output folder first: a bad --out must not cost a model load and a run over every image.
        check_output_dir(args.out)
        options = SessionOptions(threads=args.threads)
        session = Session(args.model, backend=args.backend, device=args.device, precision=args.precision,
                          threshold=args.threshold, options=options)
    except (SdkError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # Loading takes seconds (hashing, engine set-up); no image has run, so there is nothing to summarise.
        print("interrupted while loading the model: no image processed, nothing written", file=sys.stderr)
        return EXIT_INTERRUPTED
    with session:
        return infer_files(Predictor.of_session(session), args.inputs, args.out, visualize=args.visualize,
                           progress=not args.no_progress)


def infer_files(predictor: Predictor, inputs: Sequence[Path], out: Path, *, visualize: bool = False,
                progress: bool = True) -> int:
    """Run ``predictor`` over files and folders, write each image's files and ``summary.csv`` into ``out``.

    Per image the family's :meth:`~runtime.RuntimeFamily.write_outputs` (with ``visualize`` its
    figure, the ground truth outlined when :meth:`~runtime.RuntimeFamily.find_label` finds one),
    then ``summary.csv`` for all. A failing image is reported on stderr and listed in the
    summary; the others still run. Ctrl-C keeps what is done (see the module's docstring).

    Args:
        predictor: the model (:meth:`Predictor.of_session` for a bundle).
        inputs: image files and folders of images.
        out: the output folder, already checked (``check_output_dir``).
        visualize: also write the family's figure per image.
        progress: show a progress bar on a terminal.

    Returns:
        The exit code: 0 every input processed, 1 some failed (or none given), 130 interrupted.

    Example:
        >>> infer_files(Predictor.of_session(session), [Path("images")], Path("predictions"), visualize=True)
        0
    """
    out = Path(out)
    files, problems = _collect(list(inputs))
    rows = [{"file": str(p), "status": "error", "error": why} for p, why in problems]
    for p, why in problems:
        print(f"error: {p}: {why}", file=sys.stderr)
    interrupted, current, started = False, None, 0.0
    claimed: set[str] = set()  # the output names listed in the summary so far
    family = predictor.family
    try:
        for path, stem in tqdm(list(zip(files, _unique_stems(files))), desc="infer", unit="image",
                               disable=None if progress else True):
            current, started = stem, math.floor(time.time()) - 1  # see _process for the second early
            rows.append(_process(predictor, path, stem, out, visualize, claimed))
            current = None
    except KeyboardInterrupt:
        # Ctrl-C: keep what is done. atomic_write has removed a half-written file, but an image
        # interrupted between two of its files (heatmap written, overlay not) left the first:
        # the summary does not list that image, so none of its files may stay.
        interrupted = True
        if current is not None:
            listed = {name for row in rows for name in row.get("outputs", "").split()}
            _remove_partial_outputs(out, current, started, listed)
    written = sum(row["status"] == "ok" for row in rows)
    fields = (*SUMMARY_HEAD, *family.summary_fields, *SUMMARY_TAIL)
    summary = out / "summary.csv"
    try:
        atomic_write(summary, lambda tmp: _write_csv(tmp, fields, rows))
    except OSError as exc:  # the folder was removed or filled up during the run: say so, no traceback
        print(f"error: cannot write {summary}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_INTERRUPTED if interrupted else EXIT_FAILED
    except KeyboardInterrupt:  # a second Ctrl-C; atomic_write has removed its temporary file
        print(f"interrupted again: {summary} not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    failed = len(rows) - written
    if interrupted:
        print(f"interrupted: {written} image(s) processed, {failed} failed, "
              f"{len(files) + len(problems) - len(rows)} not started; wrote {summary}", file=sys.stderr)
        return EXIT_INTERRUPTED
    described = family.describe([row for row in rows if row["status"] == "ok"])
    print(f"{predictor.description}: {written} image(s) processed{', ' + described if described else ''}, "
          f"{failed} failed")
    print(f"wrote the outputs of {written} image(s) and {summary} to {out}")
    if failed:
        print(f"{failed} input(s) failed; see the 'error' column of {summary}", file=sys.stderr)
    return EXIT_FAILED if failed or not files else EXIT_OK


def _process(predictor: Predictor, path: Path, stem: str, out: Path, visualize: bool, claimed: set[str]) -> dict:
    """One input -> its summary row; a failure is a row with status ``error`` and no outputs."""
    try:
        image = read_source(path, predictor.preprocess, what=predictor.what)
        started = time.perf_counter()
        result = predictor.run(image)
        latency = (time.perf_counter() - started) * 1e3
    except (InvalidInputError, SdkError, OSError) as exc:
        return _failed(path, exc)
    label = _label(predictor.family, path, image) if visualize else None
    extra = {} if label is None else {"label": label}  # only then: a family without labels need not take it
    # A second early: some file systems keep whole-second mtimes, and a file written from
    # now on must not look older than the attempt that wrote it.
    since = math.floor(time.time()) - 1
    try:
        outputs = predictor.family.write_outputs(result, image, out, stem, visualize=visualize, **extra)
    except (InvalidInputError, SdkError, OSError) as exc:
        _remove_partial_outputs(out, stem, since, claimed)
        return _failed(path, exc)
    claimed.update(p.name for p in outputs)
    return {"file": str(path), **result.summary(), "latency_ms": f"{latency:.2f}",
            "outputs": " ".join(p.name for p in outputs), "status": "ok", "error": ""}


def _label(family: RuntimeFamily, path: Path, image: np.ndarray) -> Any:
    """The ground truth of a dataset image for its figure, or None; one that cannot be read is skipped with a word."""
    try:
        item = family.find_label(path)
        return None if item is None else family.read_label(item, tuple(image.shape[1:]))
    except (InvalidInputError, OSError) as exc:
        tqdm.write(f"warning: {path}: ground truth not drawn: {exc}", file=sys.stderr)
        return None


def _failed(path: Path, exc: Exception) -> dict:
    tqdm.write(f"error: {path}: {exc}", file=sys.stderr)
    return {"file": str(path), "outputs": "", "status": "error", "error": str(exc)}


def _remove_partial_outputs(out: Path, stem: str, since: float, claimed: set[str]) -> None:
    """Remove what a failed ``write_outputs`` wrote before failing: the summary lists no output for a
    failed input, so no file may look like one. Only ``<stem>_*`` files modified since ``since`` go,
    never one listed for another input of this run (``<stem>_1_*`` of an input just before)."""
    for item in out.glob(f"{glob_escape(stem)}_*"):
        try:
            if item.name not in claimed and item.is_file() and item.stat().st_mtime >= since:
                item.unlink()
        except OSError:
            pass  # best effort: the error row already says this input failed


def _write_csv(path: str, fields: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
