"""``python -m runtime.infer``: run a bundle over files and folders, write the family's outputs and a summary.

    python -m runtime.infer bundles/brn images/ extra.tiff --out predictions --visualize

Per image, the files the model's family writes (a heatmap family: ``<stem>_heatmap.tiff``
and ``<stem>_overlay.png``; with ``--visualize`` its figure too); then ``summary.csv``
for all, with the family's columns. A file that cannot be processed is reported on
stderr and listed in the summary; the others are still processed and the exit code is 1.
"""

from __future__ import annotations

import argparse
import csv
import logging
import sys
import time
from pathlib import Path

from tqdm import tqdm

from runtime._errors import InvalidInputError, SdkError
from runtime._imageio import IMAGE_SUFFIXES, atomic_write, list_images
from runtime._options import SessionOptions
from runtime._preprocess import read_source
from runtime._session import Session

SUMMARY_HEAD = ("file",)
SUMMARY_TAIL = ("latency_ms", "outputs", "status", "error")


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


def _unique_stem(path: Path, used: set[str]) -> str:
    stem, n = path.stem, 1
    while stem in used:  # same name from two folders: keep both
        stem, n = f"{path.stem}_{n}", n + 1
    used.add(stem)
    return stem


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        options = SessionOptions(threads=args.threads)
        session = Session(args.model, backend=args.backend, device=args.device, precision=args.precision,
                          threshold=args.threshold, options=options)
    except (SdkError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    files, problems = _collect(args.inputs)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [{"file": str(p), "status": "error", "error": why} for p, why in problems]
    for p, why in problems:
        print(f"error: {p}: {why}", file=sys.stderr)
    used: set[str] = set()
    written = 0
    with session:
        family, pre = session.family, session.manifest.preprocess
        what = f"{session.manifest.family} {session.manifest.variant}"
        for path in tqdm(files, desc="infer", unit="image", disable=True if args.no_progress else None):
            try:
                image = read_source(path, pre, what=what)
                started = time.perf_counter()
                result = session.run(image)
                latency = (time.perf_counter() - started) * 1e3
                stem = _unique_stem(path, used)
                outputs = family.write_outputs(result, image, args.out, stem, visualize=args.visualize)
            except (InvalidInputError, SdkError, OSError) as exc:
                tqdm.write(f"error: {path}: {exc}", file=sys.stderr)
                rows.append({"file": str(path), "status": "error", "error": str(exc)})
                continue
            written += 1
            rows.append({"file": str(path), **result.summary(), "latency_ms": f"{latency:.2f}",
                         "outputs": " ".join(p.name for p in outputs), "status": "ok", "error": ""})
        description = f"{family.name} {session.backend} {session.precision} on {session.device}"
        fields = (*SUMMARY_HEAD, *family.summary_fields, *SUMMARY_TAIL)
    summary = args.out / "summary.csv"
    atomic_write(summary, lambda tmp: _write_csv(tmp, fields, rows))
    failed = len(rows) - written
    described = family.describe([row for row in rows if row["status"] == "ok"])
    print(f"{description}: {written} image(s) processed{', ' + described if described else ''}, {failed} failed")
    print(f"wrote the outputs of {written} image(s) and {summary} to {args.out}")
    if failed:
        print(f"{failed} input(s) failed; see the 'error' column of {summary}", file=sys.stderr)
    return 1 if failed or not files else 0


def _write_csv(path: str, fields: tuple[str, ...], rows: list[dict]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
