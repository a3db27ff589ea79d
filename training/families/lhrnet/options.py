"""lhrnet's typed training and dataset options and their command-line flags (field names = flag names)."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from runtime.core import InvalidInputError

__all__ = ["LhrnetDatasetOptions", "LhrnetOptions", "add_dataset_arguments", "add_training_arguments",
           "dataset_options_from_args", "options_from_args"]


@dataclass
class LhrnetOptions:
    """What an lhrnet run trains and how (SPEC's recipe by default).

    Attributes:
        widths: channels of the four branches (strides 4, 8, 16, 32).
        fpn_channels: LiteFPN channels.
        head_channels: hidden channels of each head branch.
        weight_decay: AdamW's weight decay.
        warmup_epochs: linear warm-up epochs, from ``warmup_lr`` to the base rate.
        warmup_lr: the learning rate at the start of the warm-up.
        restart_epochs: the first cosine cycle's epochs (each next one ``restart_mult`` times longer).
        restart_mult: growth of the cosine cycles.
        min_lr: the learning rate at the end of every cycle.
        angle_weight: the weight of the angle loss (heatmaps and offsets weigh 1).
        augment: geometric and photometric augmentation of the training images.
        fresh_scenes: train on a new synthetic scene for every sample instead of the dataset's
            training images (the validation split still comes from the dataset).
    """

    widths: tuple[int, int, int, int] = (32, 64, 128, 256)
    fpn_channels: int = 128
    head_channels: int = 64
    weight_decay: float = 0.05
    warmup_epochs: int = 5
    warmup_lr: float = 1e-5
    restart_epochs: int = 10
    restart_mult: int = 2
    min_lr: float = 3e-6
    angle_weight: float = 0.5
    augment: bool = True
    fresh_scenes: bool = False

    def validate(self) -> None:
        """Raises InvalidInputError naming the flag for a value out of range."""
        if len(self.widths) != 4 or any(not isinstance(w, int) or w < 1 for w in self.widths):
            raise InvalidInputError(f"--widths must be 4 positive integers, got {list(self.widths)}")
        for name in ("fpn_channels", "head_channels", "restart_epochs", "restart_mult"):
            if getattr(self, name) < 1:
                raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.warmup_epochs < 0:
            raise InvalidInputError(f"--warmup-epochs must be >= 0, got {self.warmup_epochs}")
        for name in ("weight_decay", "warmup_lr", "min_lr", "angle_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"--{name.replace('_', '-')} must be a number >= 0, got {value}")


@dataclass
class LhrnetDatasetOptions:
    """How many synthetic scenes a dataset holds (split 9:1 into train and valid).

    Attributes:
        n_images: scenes in all.
        heights: the source heights to draw from (None: 240 to 1080 pixels); the aspect ratios
            (1 to 3) are drawn independently, so the letterbox pads either way.
    """

    n_images: int = 200
    heights: tuple[int, ...] | None = None

    def describe(self) -> str:
        return f"{self.n_images} assembly scenes (9:1 train/valid) with labels in train.json and valid.json"


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """lhrnet's ``python -m training.train`` flags."""
    d = LhrnetOptions()
    g = parser.add_argument_group("lhrnet")
    g.add_argument("--widths", type=int, nargs=4, default=list(d.widths), metavar="C",
                   help="channels of the four branches (default 32 64 128 256)")
    g.add_argument("--fpn-channels", type=int, default=d.fpn_channels, help=f"default {d.fpn_channels}")
    g.add_argument("--head-channels", type=int, default=d.head_channels, help=f"default {d.head_channels}")
    g.add_argument("--weight-decay", type=float, default=d.weight_decay, help=f"AdamW (default {d.weight_decay})")
    g.add_argument("--warmup-epochs", type=int, default=d.warmup_epochs, help=f"default {d.warmup_epochs}")
    g.add_argument("--warmup-lr", type=float, default=d.warmup_lr, help=f"default {d.warmup_lr:g}")
    g.add_argument("--restart-epochs", type=int, default=d.restart_epochs,
                   help=f"first cosine cycle in epochs (default {d.restart_epochs})")
    g.add_argument("--restart-mult", type=int, default=d.restart_mult, help=f"default {d.restart_mult}")
    g.add_argument("--min-lr", type=float, default=d.min_lr, help=f"default {d.min_lr:g}")
    g.add_argument("--angle-weight", type=float, default=d.angle_weight, help=f"default {d.angle_weight}")
    g.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment,
                   help="augment the training images (default on)")
    g.add_argument("--fresh-scenes", action=argparse.BooleanOptionalAction, default=d.fresh_scenes,
                   help="a new synthetic scene for every training sample (default off)")


def options_from_args(args: argparse.Namespace) -> LhrnetOptions:
    """The :class:`LhrnetOptions` of parsed :func:`add_training_arguments` flags."""
    return LhrnetOptions(widths=tuple(args.widths), fpn_channels=args.fpn_channels, head_channels=args.head_channels,
                         weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs, warmup_lr=args.warmup_lr,
                         restart_epochs=args.restart_epochs, restart_mult=args.restart_mult, min_lr=args.min_lr,
                         angle_weight=args.angle_weight, augment=args.augment, fresh_scenes=args.fresh_scenes)


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """lhrnet's ``python -m training.make_dataset`` flags."""
    d = LhrnetDatasetOptions()
    g = parser.add_argument_group("lhrnet")
    g.add_argument("--images", dest="n_images", type=int, default=d.n_images,
                   help=f"scenes in all, split 9:1 (default {d.n_images})")
    g.add_argument("--heights", type=int, nargs="+", default=None, metavar="PX",
                   help="source heights to draw from (default 240 to 1080)")


def dataset_options_from_args(args: argparse.Namespace) -> LhrnetDatasetOptions:
    return LhrnetDatasetOptions(n_images=args.n_images, heights=None if args.heights is None else tuple(args.heights))
