"""``python -m runtime.tune BUNDLE``: time every backend x precision of a bundle on this machine, and keep the fastest.

    python -m runtime.tune bundles/brn [--backends all] [--precisions all] [--threads N] [--rounds 7]

Times every combination that passed the bundle's accuracy guard side by side
(one image, batch 1, pre-processing included), prints the table, and writes
``BUNDLE/tune.json``: from then on ``backend="auto"``/``precision="auto"`` run
the fastest one on this machine (``runtime/_choice.py``). Re-run it after
changing the machine, the engines or the bundle: a record that no longer fits
is ignored with a warning.

Exit codes: 0 measured and written; 1 nothing could be measured, or the record
could not be written; 2 bad usage (a missing bundle, a lone .onnx file, an
unknown backend or precision), found before anything runs; 130 interrupted, with
nothing written.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from runtime._backends import is_available
from runtime._choice import guard_verdict
from runtime._errors import InvalidInputError, SdkError
from runtime._imageio import check_output_file
from runtime._manifest import read_manifest
from runtime._options import Backend, Precision, SessionOptions, parse_enum, trim
from runtime._tune import TUNE_FILE, Tuning, measure, save_tuning

ENGINES = [b.value for b in Backend if b is not Backend.AUTO]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.tune", description=__doc__.splitlines()[0])
    p.add_argument("bundle", type=Path, help="bundle directory (written by export.build)")
    p.add_argument("--backends", default="all", help=f"comma list of {', '.join(ENGINES)}, or 'all' installed "
                                                      f"(default)")
    p.add_argument("--precisions", default="all", help="comma list of fp32, fp16, int8, or 'all' in the bundle "
                                                       "(default)")
    p.add_argument("--device", default="cpu", help="device to time on (default cpu)")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--rounds", type=int, default=7, help="timed runs per combination, interleaved (default 7)")
    p.add_argument("--out", type=Path, default=None,
                   help=f"write the record here instead of BUNDLE/{TUNE_FILE} (a copy to keep: 'auto' reads only "
                        f"BUNDLE/{TUNE_FILE})")
    p.add_argument("--no-progress", action="store_true")
    return p


def _names(text: str, kind: type, allowed: list[str], what: str) -> list[str]:
    if trim(text).lower() == "all":
        return allowed
    names = [parse_enum(kind, item, what).value for item in text.split(",") if trim(item)]
    if not names or "auto" in names:
        raise InvalidInputError(f"--{what}s needs names from {allowed} or 'all', got {text!r}")
    return list(dict.fromkeys(names))


def _table(tuning: Tuning, bundle: Path) -> str:
    manifest = read_manifest(bundle)
    base = tuning.fastest(backend="onnxruntime", precision="fp32")
    rows = [("backend", "precision", "median ms", "p90 ms", "vs onnxruntime fp32", "accuracy guard")]
    for m in sorted(tuning.measurements, key=lambda m: m.ms_median):
        passed, _ = guard_verdict(manifest.graph(precision=m.precision))
        verdict = {True: "passed" if m.precision != "fp32" else "reference", None: "no record"}[passed]
        rows.append((m.backend, m.precision, f"{m.ms_median:.1f}", f"{m.ms_p90:.1f}",
                     f"{base.ms_median / m.ms_median:.2f}x" if base else "-", verdict))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        if not args.bundle.exists():
            raise InvalidInputError(f"no such bundle: {args.bundle}")
        if not args.bundle.is_dir():
            raise InvalidInputError(f"{args.bundle} is not a bundle directory; tuning is per bundle (a lone .onnx "
                                    f"file has no place for {TUNE_FILE}): pass the directory export.build wrote")
        manifest = read_manifest(args.bundle)
        backends = _names(args.backends, Backend, [b for b in ENGINES if is_available(Backend(b))], "backend")
        precisions = _names(args.precisions, Precision, manifest.precisions("full"), "precision")
        if args.rounds < 1:
            raise InvalidInputError(f"--rounds must be at least 1, got {args.rounds}")
        SessionOptions(threads=args.threads)  # checks the thread count
        out = args.out or args.bundle / TUNE_FILE
        check_output_file(out, "--out")
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        tuning, notes = measure(args.bundle, backends=backends, precisions=precisions, device=args.device,
                                threads=args.threads, rounds=args.rounds, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("interrupted: nothing written", file=sys.stderr)
        return 130
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"note: {note}")
    if not tuning.measurements:
        print("error: no combination could be measured; nothing written", file=sys.stderr)
        return 1
    threads = tuning.measurements[0].threads
    print(f"{args.bundle} on {tuning.machine['model']} ({threads} threads, batch 1, one image, median of "
          f"{args.rounds} interleaved runs)")
    print(_table(tuning, args.bundle))
    try:
        save_tuning(tuning, out)
    except OSError as exc:
        print(f"error: cannot write {out}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {out} not written", file=sys.stderr)
        return 130
    best = tuning.fastest(allowed=lambda m: guard_verdict(manifest.graph(precision=m.precision))[0] is True)
    if best is not None and out == args.bundle / TUNE_FILE:
        print(f"backend='auto', precision='auto' will now run {best.backend} {best.precision} on this machine")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
