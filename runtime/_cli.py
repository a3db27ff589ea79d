"""``python -m runtime.infer``: run a bundle over files and folders, write the family's outputs and a summary.

    python -m runtime.infer bundles/brn images/ extra.tiff --out predictions --visualize

Per image, the files the model's family writes (a heatmap family: ``<stem>_heatmap.tiff``
and ``<stem>_overlay.png``; a keypoints family: ``<stem>_points.png``; with ``--visualize``
its figure too); then ``summary.csv`` for all, with the family's columns (a keypoints
family: ``<name>_x``, ``<name>_y``, ``<name>_score`` per point, then ``angle``), whose
``outputs`` column names the files written for each input. Two inputs with the same stem (``a/x.tiff``, ``b/x.tiff``) get distinct stems
(``x``, ``x_1``), decided from the whole input list before any image runs, so a name does
not depend on which images fail.

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
from glob import escape as glob_escape
from pathlib import Path

from tqdm import tqdm

from runtime._errors import InvalidInputError, SdkError
from runtime._imageio import IMAGE_SUFFIXES, atomic_write, check_output_dir, list_images
from runtime._options import SessionOptions
from runtime._preprocess import read_source
from runtime._session import Session

SUMMARY_HEAD = ("file",)
SUMMARY_TAIL = ("latency_ms", "outputs", "status", "error")
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


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
    files, problems = _collect(args.inputs)
    rows = [{"file": str(p), "status": "error", "error": why} for p, why in problems]
    for p, why in problems:
        print(f"error: {p}: {why}", file=sys.stderr)
    interrupted, current, started = False, None, 0.0
    claimed: set[str] = set()  # the output names listed in the summary so far
    with session:
        family = session.family
        what = f"{session.manifest.family} {session.manifest.variant}"
        try:
            for path, stem in tqdm(list(zip(files, _unique_stems(files))), desc="infer", unit="image",
                                   disable=True if args.no_progress else None):
                current, started = stem, math.floor(time.time()) - 1  # see _process for the second early
                rows.append(_process(session, path, stem, args, what, claimed))
                current = None
        except KeyboardInterrupt:
            # Ctrl-C: keep what is done. atomic_write has removed a half-written file, but an image
            # interrupted between two of its files (heatmap written, overlay not) left the first:
            # the summary does not list that image, so none of its files may stay.
            interrupted = True
            if current is not None:
                listed = {name for row in rows for name in row.get("outputs", "").split()}
                _remove_partial_outputs(args.out, current, started, listed)
        written = sum(row["status"] == "ok" for row in rows)
        description = f"{family.name} {session.backend} {session.precision} on {session.device}"
        fields = (*SUMMARY_HEAD, *family.summary_fields, *SUMMARY_TAIL)
    summary = args.out / "summary.csv"
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
    print(f"{description}: {written} image(s) processed{', ' + described if described else ''}, {failed} failed")
    print(f"wrote the outputs of {written} image(s) and {summary} to {args.out}")
    if failed:
        print(f"{failed} input(s) failed; see the 'error' column of {summary}", file=sys.stderr)
    return EXIT_FAILED if failed or not files else EXIT_OK


def _process(session: Session, path: Path, stem: str, args: argparse.Namespace, what: str,
             claimed: set[str]) -> dict:
    """One input -> its summary row; a failure is a row with status ``error`` and no outputs."""
    try:
        image = read_source(path, session.manifest.preprocess, what=what)
        started = time.perf_counter()
        result = session.run(image)
        latency = (time.perf_counter() - started) * 1e3
    except (InvalidInputError, SdkError, OSError) as exc:
        return _failed(path, exc)
    # A second early: some file systems keep whole-second mtimes, and a file written from
    # now on must not look older than the attempt that wrote it.
    since = math.floor(time.time()) - 1
    try:
        outputs = session.family.write_outputs(result, image, args.out, stem, visualize=args.visualize)
    except (InvalidInputError, SdkError, OSError) as exc:
        _remove_partial_outputs(args.out, stem, since, claimed)
        return _failed(path, exc)
    claimed.update(p.name for p in outputs)
    return {"file": str(path), **result.summary(), "latency_ms": f"{latency:.2f}",
            "outputs": " ".join(p.name for p in outputs), "status": "ok", "error": ""}


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
