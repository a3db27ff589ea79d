"""Check a dataset before training on it, reading every image and label as training does.

    python -m training.check_dataset DIR [--family NAME] [--variant V] [--json FILE]

Reads every image and label of the family's layout once, as training reads
them, and lists what would stop or mislead training (unreadable files, wrong
sizes, channel counts or value ranges, NaN, labels without images or images
without labels...) with paths relative to DIR, then the images per split and
class. Training runs the same check first (``--no-check-dataset`` skips it).

Exit status: 0 no errors (warnings allowed), 1 errors found, 2 bad usage (no
such DIR, an unknown family or variant, an unwritable ``--json`` file).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from runtime.core import InvalidInputError, SdkError, atomic_write, check_output_file
from training._dataset_check import DatasetReport
from training._family import (DEFAULT_FAMILY, TrainingFamily, family_from_argv, get_training_family,
                              list_training_families)

__all__ = ["check_dataset", "main"]


def check_dataset(root: str | Path, family: str = DEFAULT_FAMILY, *, variant: str | None = None,
                  progress: bool = False) -> DatasetReport:
    """Check the dataset at ``root`` for training ``family`` on ``variant``.

    Args:
        root: the dataset root, in the family's layout.
        family: the model family (default brn).
        variant: the family's input geometry (None: its default).
        progress: a progress bar on a terminal.

    Returns:
        Every problem found (``report.ok`` is False when one is an error) and the images per split and class.

    Raises:
        InvalidInputError: ``root`` is not a folder, or an unknown variant.
        ModelLoadError: an unknown family.

    Example:
        >>> report = check_dataset("data/brn")
        >>> report.ok, [p.path for p in report.errors]
        (False, ['test/good/003.tiff'])
    """
    part = get_training_family(family)
    variant = part.check_variant(variant)
    root = Path(root)
    if not root.is_dir():
        state = "does not exist" if not root.exists() else "is not a folder"
        raise InvalidInputError(f"dataset {root} {state}; expected a dataset root in the {part.name} layout")
    return part.check_dataset(root, variant, progress=progress)


def _parser(family: TrainingFamily) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.check_dataset", description=__doc__.splitlines()[0])
    p.add_argument("root", type=Path, metavar="DIR", help="the dataset root")
    p.add_argument("--family", default=family.name, choices=list_training_families(),
                   help=f"model family whose layout DIR holds (default {DEFAULT_FAMILY})")
    p.add_argument("--variant", *family.variant_flags, dest="variant", default=None, choices=family.variants(),
                   help=f"input geometry of {family.name} the images must fit (default {family.variants()[0]})")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write the whole report as JSON to FILE")
    p.add_argument("--max-problems", type=int, default=50, metavar="N",
                   help="list at most N problems (default 50; 0: none, the counts only; --json holds all)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="a progress bar on a terminal (default on)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line front end of :func:`check_dataset`; returns the exit status (0 clean, 1 errors, 2 bad usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        family = family_from_argv(argv)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = _parser(family).parse_args(argv)
    logging.getLogger("tifffile").setLevel(logging.ERROR)  # its notes on a corrupt file repeat the report's line
    try:
        if args.max_problems < 0:
            raise InvalidInputError(f"--max-problems must be >= 0, got {args.max_problems}")
        if args.json is not None:
            check_output_file(args.json, "--json")
        report = check_dataset(args.root, family.name, variant=args.variant, progress=args.progress)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print(report.format(limit=args.max_problems))
    if args.json is not None:
        text = json.dumps(report.to_dict(), indent=2) + "\n"
        try:
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        except OSError as exc:
            print(f"error: cannot write --json {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 2
        print(f"wrote {args.json}")
    if not report.ok:
        return 1
    variant = "" if report.variant == family.variants()[0] else f" --variant {report.variant}"
    print(f"next: python -m training.train --family {family.name} --data {args.root} --out runs/{family.name}"
          f"{variant}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
