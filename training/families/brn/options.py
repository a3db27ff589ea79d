"""brn's typed options and their command-line flags (training and synthetic datasets).

Next to the network and optimiser settings, the training options carry what
lets a user train for their plant's contrast; all of them are stored in the
checkpoint (``train_args``) and in ``config.yaml``:

* the focal loss: ``--alpha``, ``--gamma-start``, ``--gamma-end`` and
  ``--gamma-schedule`` (cosine, linear or exponential; see
  :mod:`training.families.brn.losses`);
* the defect synthesis (see :mod:`training.families.brn.defects`):
  ``--amplitudes``, ``--defect-kernels``, ``--num-defects-range``,
  ``--defect-rate``, ``--hard-normal-rate`` and ``--line-negatives``;
* which training images are read: ``--img-format``.
"""

from __future__ import annotations

import argparse
import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.core import InvalidInputError
from runtime.families.brn import DEFECT_CATEGORY, IMAGE_TYPES
from training.families.brn.defects import (
    DEFAULT_AMPLITUDES,
    DEFAULT_KERNELS,
    MAX_AMPLITUDE,
    DefectConfig,
    DefectKernel,
)
from training.families.brn.losses import ScheduleShape

__all__ = ["BrnDatasetOptions", "BrnOptions", "ImageFormat", "add_dataset_arguments", "add_training_arguments",
           "dataset_options_from_args", "options_from_args"]


class ImageFormat(str, enum.Enum):
    """Which files of ``train/good`` training reads (the reference script's ``--img_format``)."""

    TIFF = "tiff"
    PNG_JPG = "png_jpg"
    ANY = "any"

    @property
    def suffixes(self) -> tuple[str, ...]:
        """The file extensions (lower case) of this format."""
        return _SUFFIXES[self]

    def select(self, paths: list[Path], folder: Path | str) -> list[Path]:
        """The ``paths`` of this format (extensions in any case), in their order.

        Args:
            paths: image files, e.g. :func:`runtime.families.brn.training_images`.
            folder: where they lie, for the message.

        Raises:
            InvalidInputError: when none is of this format, naming the folder and the format.

        Example:
            >>> ImageFormat.TIFF.select([Path("a.TIF"), Path("b.png")], "train/good")
            [PosixPath('a.TIF')]
        """
        chosen = [p for p in paths if p.suffix.lower() in self.suffixes]
        if not chosen:
            found = sorted({p.suffix.lower() for p in paths}) or ["no image"]
            raise InvalidInputError(f"--img-format {self.value}: no {'/'.join(self.suffixes)} image in {folder} "
                                    f"(it holds {', '.join(found)}); expected such files there, or another "
                                    f"--img-format ({', '.join(f.value for f in ImageFormat)})")
        return chosen


_SUFFIXES = {ImageFormat.TIFF: (".tif", ".tiff"), ImageFormat.PNG_JPG: (".png", ".jpg", ".jpeg"),
             ImageFormat.ANY: (".tif", ".tiff", ".png", ".jpg", ".jpeg")}
# A kernel must fit a patch; the largest patch of any image type bounds it before the type is known.
_LARGEST_PATCH = (max(t.patch_height for t in IMAGE_TYPES.values()), max(t.patch_width for t in IMAGE_TYPES.values()))


@dataclass
class BrnOptions:
    """brn's training recipe (the reference training's defaults).

    Values of the right meaning but another type (lists for tuples, strings
    for kernels and enums, as ``config.yaml`` and ``train_args`` hold them)
    are converted on construction; :meth:`validate` checks the ranges.

    Attributes:
        base_width: UNet base width (64 full size, 16 a light variant).
        alpha: focal-loss weight of the defect class (background: 1 - alpha).
        gamma_start: focal gamma at the start of training.
        gamma_end: focal gamma at the end.
        gamma_schedule: the curve from ``gamma_start`` to ``gamma_end``.
        lr_milestones: fractions of the epochs at which the learning rate drops.
        lr_factor: what the learning rate is multiplied by at each milestone.
        num_defects_range: inclusive (min, max) defects per defective patch.
        cache_size: decoded training images kept in an LRU cache (0: none).
        amplitudes: defect peak values, one drawn per defect (nonzero, ``|a| <= 255``).
        defect_kernels: the Gaussian kernels defects are drawn from, 1/n each.
        defect_rate: probability that a patch (not a line negative) gets defects.
        hard_normal_rate: fraction of defective patches without a Target-only defect.
        line_negatives: fraction of patches that are line negatives (0: points only).
        img_format: which files of ``train/good`` are read.

    Example:
        >>> options = BrnOptions(amplitudes=(-40, 40), defect_kernels=("5x5:1.5",), line_negatives=0.2)
        >>> options.defect_config().kernels
        (DefectKernel(height=5, width=5, sigma_y=1.5, sigma_x=1.5),)
    """

    base_width: int = 64
    alpha: float = 0.75
    gamma_start: float = 1.0
    gamma_end: float = 3.0
    gamma_schedule: ScheduleShape = ScheduleShape.COSINE
    lr_milestones: tuple[float, ...] = (0.8, 0.9)
    lr_factor: float = 0.2
    num_defects_range: tuple[int, int] = (3, 8)
    cache_size: int = 0
    amplitudes: tuple[float, ...] = DEFAULT_AMPLITUDES
    defect_kernels: tuple[DefectKernel, ...] = DEFAULT_KERNELS
    defect_rate: float = 0.5
    hard_normal_rate: float = 0.05
    line_negatives: float = 0.0
    img_format: ImageFormat = ImageFormat.ANY

    def __post_init__(self) -> None:
        # Only conversions that cannot fail here; validate() reports bad values with their flags.
        self.lr_milestones = tuple(self.lr_milestones)
        self.num_defects_range = tuple(self.num_defects_range)
        self.amplitudes = tuple(float(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else a
                                for a in self.amplitudes)
        self.defect_kernels = tuple(_kernel_or_text(k) for k in self.defect_kernels)
        self.gamma_schedule = _enum_or_value(ScheduleShape, self.gamma_schedule)
        self.img_format = _enum_or_value(ImageFormat, self.img_format)

    def validate(self) -> None:
        """Raises InvalidInputError naming the flag for a value out of range."""
        if self.base_width < 1:
            raise InvalidInputError(f"--base-width must be at least 1, got {self.base_width}")
        if not 0.0 <= self.alpha <= 1.0:
            raise InvalidInputError(f"--alpha must be in 0..1, got {self.alpha}")
        self._validate_gamma()
        if not self.lr_milestones or not all(0.0 < m <= 1.0 for m in self.lr_milestones):
            raise InvalidInputError(f"--lr-milestones must be fractions of the epochs in (0, 1], "
                                    f"got {list(self.lr_milestones)}")
        if not self.lr_factor > 0:
            raise InvalidInputError(f"--lr-factor must be positive, got {self.lr_factor}")
        if len(self.num_defects_range) != 2:
            raise InvalidInputError(f"--num-defects-range must be MIN MAX, got {list(self.num_defects_range)}")
        lo, hi = self.num_defects_range
        if not 2 <= lo <= hi:  # one Target-only defect plus at least one that tells Ref1 from Ref2
            raise InvalidInputError(f"--num-defects-range must be 2 <= MIN <= MAX, got {lo} {hi}")
        if self.cache_size < 0:
            raise InvalidInputError(f"--cache-size must be >= 0, got {self.cache_size}")
        self._validate_defects()
        if not isinstance(self.img_format, ImageFormat):
            raise InvalidInputError(f"--img-format must be one of {[f.value for f in ImageFormat]}, "
                                    f"got {self.img_format!r}")

    def _validate_gamma(self) -> None:
        if not _is_number(self.gamma_start) or not _is_number(self.gamma_end) \
                or min(self.gamma_start, self.gamma_end) < 0:
            raise InvalidInputError(f"--gamma-start and --gamma-end must be >= 0, "
                                    f"got {self.gamma_start} {self.gamma_end}")
        if not isinstance(self.gamma_schedule, ScheduleShape):
            raise InvalidInputError(f"--gamma-schedule must be one of {[s.value for s in ScheduleShape]}, "
                                    f"got {self.gamma_schedule!r}")
        if self.gamma_schedule is ScheduleShape.EXPONENTIAL and min(self.gamma_start, self.gamma_end) <= 0:
            raise InvalidInputError(f"--gamma-schedule exponential interpolates geometrically (gs * (ge / gs) ** t) "
                                    f"and needs --gamma-start and --gamma-end > 0, got {self.gamma_start} "
                                    f"{self.gamma_end}; use cosine or linear to start or end at 0")

    def _validate_defects(self) -> None:
        if not self.amplitudes:
            raise InvalidInputError("--amplitudes must list at least one value, got none")
        bad = [a for a in self.amplitudes if not (_is_number(a) and 0 < abs(a) <= MAX_AMPLITUDE)]
        if bad:
            raise InvalidInputError(f"--amplitudes must be nonzero numbers with |a| <= {MAX_AMPLITUDE:g} (pixel "
                                    f"values are 0..255), got {bad}")
        too_big = [str(k) for k in self._kernels() if k.height > _LARGEST_PATCH[0] or k.width > _LARGEST_PATCH[1]]
        if too_big:
            raise InvalidInputError(f"--defect-kernels {too_big} fit no brn patch; expected kernels of at most "
                                    f"{_LARGEST_PATCH[0]}x{_LARGEST_PATCH[1]} (and within the image type's patch)")
        for flag, value in (("--defect-rate", self.defect_rate), ("--hard-normal-rate", self.hard_normal_rate),
                            ("--line-negatives", self.line_negatives)):
            if not (_is_number(value) and 0.0 <= value <= 1.0):
                raise InvalidInputError(f"{flag} must be a fraction in 0..1, got {value}")

    def _kernels(self) -> tuple[DefectKernel, ...]:
        if not self.defect_kernels:
            raise InvalidInputError("--defect-kernels must list at least one kernel, got none")
        try:
            return tuple(k if isinstance(k, DefectKernel) else DefectKernel.parse(k) for k in self.defect_kernels)
        except InvalidInputError as exc:
            raise InvalidInputError(f"--defect-kernels: {exc}") from None

    def defect_config(self) -> DefectConfig:
        """The :class:`DefectConfig` these options describe.

        Raises:
            InvalidInputError: for values out of range (as :meth:`validate`).
        """
        self.validate()
        return DefectConfig(defect_rate=float(self.defect_rate), num_defects_range=tuple(self.num_defects_range),
                            hard_normal_rate=float(self.hard_normal_rate),
                            amplitudes=tuple(float(a) for a in self.amplitudes), kernels=self._kernels(),
                            line_negative_rate=float(self.line_negatives))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _kernel_or_text(value: Any) -> Any:
    """A kernel from its text (``3x5:1.0,1.5``); what does not parse is kept for validate() to report."""
    if isinstance(value, str):
        try:
            return DefectKernel.parse(value)
        except InvalidInputError:
            return value
    return value


def _enum_or_value(kind: type[enum.Enum], value: Any) -> Any:
    try:
        return kind(value)
    except ValueError:
        return value


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


_TRAINING_HELP = """\
Defects are added on the fly to random patches of the train/good images:
Gaussian bumps in Target and partly in Ref1/Ref2; the Target-only ones are the
ground truth. Tune them to your plant's contrast with --amplitudes (peak pixel
values) and --defect-kernels (sizes and sigmas). --line-negatives F turns a
fraction F of the patches into line negatives: a thin line in Target only with
an empty ground truth, against false positives on stripes that appear in Target
only; of the other patches --defect-rate get point defects (F 0.2 with rate 0.5:
20/40/40 line/point/untouched). The project behind brn found that lines helped
against stripe false positives but went back to points only as the simpler
default (F 0)."""


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """brn's ``python -m training.train`` flags (the underscore spellings are the reference script's)."""
    d = BrnOptions()
    g = parser.add_argument_group("brn", _TRAINING_HELP)
    g.add_argument("--base-width", type=int, default=d.base_width,
                   help=f"UNet base width (default {d.base_width}; 16 for a light variant)")
    g.add_argument("--alpha", type=float, default=d.alpha, help=f"focal alpha on defects (default {d.alpha})")
    g.add_argument("--gamma-start", "--gamma_start", dest="gamma_start", type=float, default=d.gamma_start,
                   help=f"focal gamma at the start (default {d.gamma_start})")
    g.add_argument("--gamma-end", "--gamma_end", dest="gamma_end", type=float, default=d.gamma_end,
                   help=f"focal gamma at the end (default {d.gamma_end})")
    g.add_argument("--gamma-schedule", "--gamma_schedule", dest="gamma_schedule", default=d.gamma_schedule.value,
                   choices=[s.value for s in ScheduleShape],
                   help="gamma from start gs to end ge over progress t in 0..1: cosine gs+(ge-gs)(1-cos(pi t))/2 "
                        "(flat at both ends), linear gs+(ge-gs)t, exponential gs*(ge/gs)^t (geometric; needs "
                        f"gs, ge > 0) (default {d.gamma_schedule.value})")
    g.add_argument("--lr-milestones", type=float, nargs="+", default=list(d.lr_milestones), metavar="FRACTION",
                   help="fractions of the epochs where the learning rate drops (default 0.8 0.9)")
    g.add_argument("--lr-factor", type=float, default=d.lr_factor,
                   help=f"learning-rate factor at each milestone (default {d.lr_factor})")
    g.add_argument("--amplitudes", type=float, nargs="+", default=list(d.amplitudes), metavar="A",
                   help="defect peak values added to the pixels, one drawn per defect (nonzero, |A| <= 255; "
                        f"default {' '.join(f'{a:g}' for a in d.amplitudes)}). The project first used +-30..50: a "
                        "model trained only on strong defects misses faint ones at image level, so include the "
                        "faint contrasts your plant's defects have")
    g.add_argument("--defect-kernels", "--defect_kernels", dest="defect_kernels", nargs="+",
                   default=[str(k) for k in d.defect_kernels], metavar="HxW:SIGMA",
                   help="Gaussian defect kernels, one drawn per defect with equal probability: height x width "
                        "(>= 1, odd or even, within the patch) and sigma > 0, or HxW:SIGMA_Y,SIGMA_X (default "
                        f"{' '.join(str(k) for k in d.defect_kernels)})")
    g.add_argument("--num-defects-range", "--num_defects_range", dest="num_defects_range", type=int, nargs=2,
                   default=list(d.num_defects_range), metavar=("MIN", "MAX"),
                   help="defects per defective patch (default 3 8)")
    g.add_argument("--defect-rate", "--defect_rate", dest="defect_rate", type=float, default=d.defect_rate,
                   help=f"fraction of the patches (that are not line negatives) with defects (default "
                        f"{d.defect_rate})")
    g.add_argument("--hard-normal-rate", "--hard_normal_rate", dest="hard_normal_rate", type=float,
                   default=d.hard_normal_rate,
                   help="fraction of the defective patches with differences between the channels but no "
                        f"Target-only defect, i.e. an empty ground truth (default {d.hard_normal_rate})")
    g.add_argument("--line-negatives", "--line_negatives", dest="line_negatives", type=float,
                   default=d.line_negatives, metavar="FRACTION",
                   help="fraction of the patches that get a thin Target-only line and an empty ground truth, "
                        "against stripe false positives (default 0: point defects only; the project once used 0.2)")
    g.add_argument("--img-format", "--img_format", dest="img_format", default=d.img_format.value,
                   choices=[f.value for f in ImageFormat],
                   help="which train/good files are read: tiff (.tif/.tiff), png_jpg (.png/.jpg/.jpeg) or any "
                        f"(default {d.img_format.value})")
    g.add_argument("--cache-size", "--cache_size", dest="cache_size", type=int, default=d.cache_size,
                   help="decoded images kept in an LRU cache")


def options_from_args(args: argparse.Namespace) -> BrnOptions:
    """The :class:`BrnOptions` of parsed :func:`add_training_arguments` flags."""
    return BrnOptions(base_width=args.base_width, alpha=args.alpha, gamma_start=args.gamma_start,
                      gamma_end=args.gamma_end, gamma_schedule=args.gamma_schedule,
                      lr_milestones=tuple(args.lr_milestones), lr_factor=args.lr_factor,
                      num_defects_range=tuple(args.num_defects_range), cache_size=args.cache_size,
                      amplitudes=tuple(args.amplitudes), defect_kernels=tuple(args.defect_kernels),
                      defect_rate=args.defect_rate, hard_normal_rate=args.hard_normal_rate,
                      line_negatives=args.line_negatives, img_format=args.img_format)


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
