"""brn's typed options and their command-line flags (training and synthetic datasets)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from runtime.core import InvalidInputError
from runtime.families.brn import DEFECT_CATEGORY

__all__ = ["BrnDatasetOptions", "BrnOptions", "add_dataset_arguments", "add_training_arguments",
           "dataset_options_from_args", "options_from_args"]


@dataclass
class BrnOptions:
    """brn's training recipe (the reference training's defaults).

    Attributes:
        base_width: UNet base width (64 full size, 16 a light variant).
        alpha: focal-loss weight of the defect class (background: 1 - alpha).
        gamma_start: focal gamma at the start of training.
        gamma_end: focal gamma at the end (cosine schedule in between).
        lr_milestones: fractions of the epochs at which the learning rate drops.
        lr_factor: what the learning rate is multiplied by at each milestone.
        num_defects_range: inclusive (min, max) defects per defective patch.
        cache_size: decoded training images kept in an LRU cache (0: none).
    """

    base_width: int = 64
    alpha: float = 0.75
    gamma_start: float = 1.0
    gamma_end: float = 3.0
    lr_milestones: tuple[float, ...] = (0.8, 0.9)
    lr_factor: float = 0.2
    num_defects_range: tuple[int, int] = (3, 8)
    cache_size: int = 0

    def validate(self) -> None:
        """Raises InvalidInputError naming the flag for a value out of range."""
        if self.base_width < 1:
            raise InvalidInputError(f"--base-width must be at least 1, got {self.base_width}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidInputError(f"--alpha must be in 0..1, got {self.alpha}")
        if min(self.gamma_start, self.gamma_end) < 0:
            raise InvalidInputError(f"--gamma-start and --gamma-end must be >= 0, "
                                    f"got {self.gamma_start} {self.gamma_end}")
        if not self.lr_milestones or not all(0.0 < m <= 1.0 for m in self.lr_milestones):
            raise InvalidInputError(f"--lr-milestones must be fractions of the epochs in (0, 1], "
                                    f"got {list(self.lr_milestones)}")
        if not self.lr_factor > 0:
            raise InvalidInputError(f"--lr-factor must be positive, got {self.lr_factor}")
        lo, hi = self.num_defects_range
        if not 2 <= lo <= hi:  # one Target-only defect plus at least one that tells Ref1 from Ref2
            raise InvalidInputError(f"--num-defects-range must be 2 <= MIN <= MAX, got {lo} {hi}")
        if self.cache_size < 0:
            raise InvalidInputError(f"--cache-size must be >= 0, got {self.cache_size}")


@dataclass
class BrnDatasetOptions:
    """How many images a synthetic brn dataset holds.

    Attributes:
        n_train: defect-free images in ``train/good``.
        n_test_good: defect-free images in ``test/good``.
        n_test_defect: defect images in ``test/bright_spots`` (each with a mask).
    """

    n_train: int = 40
    n_test_good: int = 10
    n_test_defect: int = 20

    def describe(self) -> str:
        return (f"{self.n_train} train/good, {self.n_test_good} test/good, {self.n_test_defect} "
                f"test/{DEFECT_CATEGORY} (+ masks in ground_truth/{DEFECT_CATEGORY})")


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """brn's ``python -m training.train`` flags (the underscore spellings are the reference script's)."""
    d = BrnOptions()
    g = parser.add_argument_group("brn")
    g.add_argument("--base-width", type=int, default=d.base_width,
                   help=f"UNet base width (default {d.base_width}; 16 for a light variant)")
    g.add_argument("--alpha", type=float, default=d.alpha, help=f"focal alpha on defects (default {d.alpha})")
    g.add_argument("--gamma-start", type=float, default=d.gamma_start,
                   help=f"focal gamma at the start (default {d.gamma_start})")
    g.add_argument("--gamma-end", type=float, default=d.gamma_end,
                   help=f"focal gamma at the end, cosine schedule in between (default {d.gamma_end})")
    g.add_argument("--lr-milestones", type=float, nargs="+", default=list(d.lr_milestones), metavar="FRACTION",
                   help="fractions of the epochs where the learning rate drops (default 0.8 0.9)")
    g.add_argument("--lr-factor", type=float, default=d.lr_factor,
                   help=f"learning-rate factor at each milestone (default {d.lr_factor})")
    g.add_argument("--num-defects-range", "--num_defects_range", dest="num_defects_range", type=int, nargs=2,
                   default=list(d.num_defects_range), metavar=("MIN", "MAX"),
                   help="defects per defective patch (default 3 8)")
    g.add_argument("--cache-size", "--cache_size", dest="cache_size", type=int, default=d.cache_size,
                   help="decoded images kept in an LRU cache")


def options_from_args(args: argparse.Namespace) -> BrnOptions:
    """The :class:`BrnOptions` of parsed :func:`add_training_arguments` flags."""
    return BrnOptions(base_width=args.base_width, alpha=args.alpha, gamma_start=args.gamma_start,
                      gamma_end=args.gamma_end, lr_milestones=tuple(args.lr_milestones), lr_factor=args.lr_factor,
                      num_defects_range=tuple(args.num_defects_range), cache_size=args.cache_size)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """brn's ``python -m training.make_dataset`` flags."""
    d = BrnDatasetOptions()
    g = parser.add_argument_group("brn")
    g.add_argument("--train", type=int, default=d.n_train, help=f"images in train/good (default {d.n_train})")
    g.add_argument("--test-good", type=int, default=d.n_test_good,
                   help=f"images in test/good (default {d.n_test_good})")
    g.add_argument("--test-defect", type=int, default=d.n_test_defect,
                   help=f"images in test/{DEFECT_CATEGORY} (default {d.n_test_defect})")


def dataset_options_from_args(args: argparse.Namespace) -> BrnDatasetOptions:
    """The :class:`BrnDatasetOptions` of parsed :func:`add_dataset_arguments` flags."""
    return BrnDatasetOptions(n_train=args.train, n_test_good=args.test_good, n_test_defect=args.test_defect)
