"""Write a synthetic dataset of a model family, so training and evaluation run out of the box.

    python -m training.make_dataset --family brn --out data/brn --seed 0

The family decides the layout, the images and their labels; the same seed
writes the same bytes, and the dataset appears all at once (it is built in a
temporary folder next to ``--out`` and renamed into place). ``--help`` after
``--family NAME`` lists that family's own flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from runtime.core import InvalidInputError, SdkError
from training._family import TrainingFamily, family_from_argv, get_training_family, list_training_families

__all__ = ["main", "make_synthetic_dataset"]


def make_synthetic_dataset(family: str, out: str | Path, *, variant: str | None = None, seed: int = 0,
                           options: Any = None, overwrite: bool = False, progress: bool = False) -> Path:
    """Write a synthetic dataset of ``family`` into ``out``.

    Args:
        family: the model family.
        out: the dataset folder to create.
        variant: the family's input geometry (None: its default).
        seed: the same seed gives byte-identical files.
        options: the family's dataset options (None: its defaults).
        overwrite: replace an existing non-empty ``out``.
        progress: show a progress bar on stderr.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ModelLoadError: an unknown family.
        InvalidInputError: an unknown variant, bad options, or an existing
            non-empty ``out`` without ``overwrite``.

    Example:
        >>> make_synthetic_dataset("brn", "data/brn", seed=0)
        PosixPath('data/brn')
    """
    part = get_training_family(family)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInputError(f"--seed must be an integer >= 0, got {seed!r}")
    return part.synthetic_dataset(Path(out), part.check_variant(variant), seed, options, overwrite=overwrite,
                                  progress=progress)


def _parser(family: TrainingFamily) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.make_dataset", description=__doc__.splitlines()[0])
    p.add_argument("--family", default=family.name, choices=list_training_families(),
                   help="model family (default brn); its own flags are listed below")
    p.add_argument("--out", required=True, type=Path, help="dataset folder to create")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.add_argument("--variant", *family.variant_flags, dest="variant", default=None, choices=family.variants(),
                   help=f"input geometry of {family.name} (default {family.variants()[0]})")
    p.add_argument("--force", action="store_true", help="replace an existing non-empty --out folder")
    family.add_dataset_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line front end of :func:`make_synthetic_dataset`; returns the exit status (2 on bad usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        family = family_from_argv(argv)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = _parser(family).parse_args(argv)
    try:
        variant = family.check_variant(args.variant)
        options = family.dataset_options_from_args(args)
        out = make_synthetic_dataset(family.name, args.out, variant=variant, seed=args.seed, options=options,
                                     overwrite=args.force, progress=True)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the dataset is published only when complete: nothing was written
        print(f"interrupted: nothing written to {args.out}", file=sys.stderr)
        return 130
    print(f"wrote {out}: {family.describe_dataset(options)}, {variant} images, seed {args.seed}")
    variant_flag = "" if variant == family.variants()[0] else f" --variant {variant}"
    print(f"next: python -m training.train --family {family.name} --data {out} --out runs/{family.name}{variant_flag}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
