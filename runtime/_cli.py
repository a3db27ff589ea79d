"""``python -m runtime.infer``: run a bundle over files and folders, write heatmaps, overlays and a summary.

    python -m runtime.infer bundles/brn images/ extra.tiff --out predictions --visualize

Per image: ``<stem>_heatmap.tiff`` (float32), ``<stem>_overlay.png`` and, with
``--visualize``, ``<stem>_panels.png``; then ``summary.csv`` for all. A file that
cannot be processed is reported on stderr and listed in the summary; the others
are still processed and the exit code is 1.
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
from runtime._imageio import IMAGE_SUFFIXES, list_images, read_image, write_png, write_tiff
from runtime._options import SessionOptions
from runtime._session import Session
from runtime._visualize import overlay, panels

SUMMARY_FIELDS = ("file", "score", "defect_pixels", "latency_ms", "status", "error")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.infer", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", type=Path, help="bundle directory or model.<precision>.onnx")
    p.add_argument("inputs", type=Path, nargs="+", help="image files and/or folders of images")
    p.add_argument("--out", type=Path, required=True, help="output folder (created if missing)")
    p.add_argument("--backend", default="auto", help="auto, onnxruntime, openvino or native (libruntime)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N], tensorrt")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or int8")
    p.add_argument("--threshold", type=float, default=None, help="defect threshold (default: the manifest's)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--visualize", action="store_true", help="also write the 7-panel figure per image")
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
        height, width = session.image_size
        for path in tqdm(files, desc="infer", unit="image", disable=True if args.no_progress else None):
            try:
                image = read_image(path, expected_hw=(height, width), image_type=session.manifest.image_type)
                started = time.perf_counter()
                result = session.run(image)
                latency = (time.perf_counter() - started) * 1e3
                stem = _unique_stem(path, used)
                write_tiff(args.out / f"{stem}_heatmap.tiff", result.heatmap)
                write_png(args.out / f"{stem}_overlay.png", overlay(image[0], result.heatmap, result.threshold))
                if args.visualize:
                    write_png(args.out / f"{stem}_panels.png", panels(image, result.heatmap))
            except (InvalidInputError, SdkError, OSError) as exc:
                tqdm.write(f"error: {path}: {exc}", file=sys.stderr)
                rows.append({"file": str(path), "status": "error", "error": str(exc)})
                continue
            written += 1
            rows.append({"file": str(path), "score": f"{result.score:.6f}", "defect_pixels": result.defect_pixels,
                         "latency_ms": f"{latency:.2f}", "status": "ok", "error": ""})
        threshold, description = session.threshold, f"{session.backend} {session.precision} on {session.device}"
    summary = args.out / "summary.csv"
    with open(summary, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    failed = len(rows) - written
    defective = sum(1 for r in rows if r["status"] == "ok" and r["defect_pixels"] > 0)
    per_image = "heatmap TIFF, overlay PNG" + (", panels PNG" if args.visualize else "")
    print(f"{description}, threshold {threshold:g}: {written} image(s) processed, {defective} with defects, "
          f"{failed} failed")
    print(f"wrote {written} x ({per_image}) and {summary} to {args.out}")
    if failed:
        print(f"{failed} input(s) failed; see the 'error' column of {summary}", file=sys.stderr)
    return 1 if failed or not files else 0
