"""What training asks of a model family: its network, data, loss, optimiser, evaluation and checkpoint fields.

Generic code (``training.train``, ``training.checkpoint``, ``training.smoke``,
``python -m training.make_dataset``) knows no family: it asks the family's
training part, a :class:`TrainingFamily` registered under the family's name in
:data:`TRAINING_FAMILIES`. The family's torch-free runtime part (input
contract, labels, metrics, selection metric) is :attr:`TrainingFamily.runtime`,
so labels are read and metrics computed in one place.

A new family subclasses :class:`TrainingFamily` once in
``training/families/<name>/`` and registers an instance::

    TRAINING_FAMILIES.register("brn")(BrnTraining())
"""

from __future__ import annotations

import abc
import argparse
import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, Sequence

import numpy as np

from runtime.core import InvalidInputError, Registry, RuntimeFamily, get_family
from training._dataset_check import DatasetReport
from training._stopping import Direction, Metric, Selection

if TYPE_CHECKING:  # torch is imported by the families, not by this module
    import torch
    from torch import nn
    from torch.utils.data import Dataset

__all__ = [
    "DistillationLoss",
    "Direction",
    "Loss",
    "Optimization",
    "ReportSection",
    "SchedulerInterval",
    "TRAINING_FAMILIES",
    "TinyConfig",
    "TrainDefaults",
    "TrainingFamily",
    "get_training_family",
    "list_training_families",
]


class SchedulerInterval(str, enum.Enum):
    """When the learning-rate scheduler steps."""

    EPOCH = "epoch"
    STEP = "step"


@dataclass(frozen=True)
class TrainDefaults:
    """The family's defaults for the generic knobs of :class:`training.train.TrainConfig` (see there).

    ``amp`` is an ``Amp`` value; ``channels_last`` None means on CUDA only;
    ``grad_clip`` and ``ema_decay`` 0 are off; ``patience`` 0 never stops
    early; ``guard_metric`` None has no guard.
    """

    epochs: int
    batch_size: int
    lr: float
    amp: str = "off"
    channels_last: bool | None = False
    grad_clip: float = 0.0
    ema_decay: float = 0.0
    patience: int = 0
    min_delta: float = 0.0
    min_epochs: int = 0
    guard_metric: str | None = None
    guard_min_delta: float = 0.0
    save_every: int = 1
    keep: int = 5
    picture_every: int = 5


@dataclass
class Optimization:
    """How the network's weights are updated: what :meth:`TrainingFamily.make_optimizer_and_scheduler` returns.

    Clipping, mixed precision and the moving average of the weights are the
    engine's (settings with family defaults in :class:`TrainDefaults`).

    Attributes:
        optimizer: the optimiser over the network's parameters.
        scheduler: the learning-rate scheduler (None: constant rate).
        interval: whether ``scheduler.step()`` runs after every epoch or every optimiser step.
    """

    optimizer: torch.optim.Optimizer
    scheduler: Any = None
    interval: SchedulerInterval = SchedulerInterval.EPOCH


class Loss(Protocol):
    """A family's training objective (what :meth:`TrainingFamily.make_loss` returns)."""

    def __call__(self, outputs: Any, targets: Any, progress: float) -> torch.Tensor:
        """The scalar loss of a batch.

        Args:
            outputs: what the network returned for the batch.
            targets: the batch's targets as the family's dataset yields them.
            progress: how far training is, 0 at the first step and towards 1 at
                the last (drives schedules inside the loss).
        """


class DistillationLoss(Protocol):
    """A family's objective for training a student from a teacher (:meth:`TrainingFamily.distillation_loss`)."""

    def __call__(self, outputs: Any, teacher_outputs: Any, targets: Any, progress: float) -> torch.Tensor:
        """The scalar loss of a batch: the student's ``outputs`` against the teacher's and the ground truth.

        Args:
            outputs: what the student network returned for the batch.
            teacher_outputs: what the teacher network returned for the same batch (no gradient).
            targets: the batch's targets as the family's dataset yields them.
            progress: how far training is (0 to 1), as for :class:`Loss`.
        """


@dataclass(frozen=True)
class TinyConfig:
    """A very small, fast run of a family, for tests and fixtures (seconds on a CPU).

    Attributes:
        options: the family's training options (e.g. a very narrow network).
        dataset: the family's synthetic-dataset options (a few small images).
        epochs: epochs to train.
        steps_per_epoch: optimiser steps per epoch.
        batch_size: samples per step.
        variant: the input geometry (None: the family's default).
        settings: other ``TrainConfig`` fields for the tiny run (e.g. no moving average, whose
            weights would barely leave their initial values in a few steps).
    """

    options: Any
    dataset: Any
    epochs: int
    steps_per_epoch: int
    batch_size: int
    variant: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReportSection:
    """One section a family adds to a run's report (:meth:`TrainingFamily.report_sections`).

    Attributes:
        title: the section's heading.
        markdown: its text (tables, notes); the images follow it.
        images: PNG files the family wrote into the report's folder, shown in this order.
    """

    title: str
    markdown: str
    images: list[Path] = field(default_factory=list)


class TrainingFamily(abc.ABC):
    """The training part of a model family (needs torch).

    Subclasses set the class attributes and implement the abstract methods;
    the others have defaults that fit most families.
    """

    #: registry key, the same as the runtime part's
    name: ClassVar[str]
    #: the typed options dataclass of :meth:`add_arguments` / :meth:`options_from_args`
    options_type: ClassVar[type]
    #: the typed options dataclass of :meth:`synthetic_dataset`
    dataset_options_type: ClassVar[type]
    #: defaults of the generic knobs (epochs, batch size, learning rate)
    defaults: ClassVar[TrainDefaults]
    #: checkpoint keys the family needs beyond the generic ones
    required_checkpoint_keys: ClassVar[tuple[str, ...]] = ()
    #: extra command-line spellings of ``--variant`` (kept from older command lines)
    variant_flags: ClassVar[tuple[str, ...]] = ()

    # -- the runtime part and its variants -------------------------------------------------
    @property
    def runtime(self) -> RuntimeFamily:
        """The family's torch-free runtime part (labels, metrics, input contract)."""
        return get_family(self.name)

    @property
    def selection_metric(self) -> tuple[str, Direction]:
        """The metric that picks the best checkpoint and its direction, from the runtime part."""
        metric, direction = self.runtime.selection_metric
        return metric, Direction(direction)

    def metric_direction(self, name: str) -> Direction:
        """Which way metric ``name`` of :meth:`evaluate` improves (from the runtime part).

        Raises:
            InvalidInputError: a metric the family does not report.
        """
        directions = {**self.runtime.metric_directions, self.runtime.selection_metric[0]:
                      self.runtime.selection_metric[1]}
        if name not in directions:
            raise InvalidInputError(f"family {self.name!r} reports no metric {name!r}; expected one of "
                                    f"{sorted(directions)}")
        return Direction(directions[name])

    def variants(self) -> Sequence[str]:
        """The input geometries the family knows; the first is the default."""
        return tuple(self.runtime.variants())

    def check_variant(self, variant: str | None) -> str:
        """``variant``, or the default one for None.

        Raises:
            InvalidInputError: for a variant the family does not know.

        Example:
            >>> family = get_training_family("brn")
            >>> family.check_variant(None) == family.variants()[0]
            True
        """
        known = self.variants()
        if variant is None:
            return known[0]
        if variant not in known:
            raise InvalidInputError(f"unknown variant {variant!r} for family {self.name!r}; "
                                    f"expected one of {list(known)}")
        return variant

    # -- network -----------------------------------------------------------------------------
    @abc.abstractmethod
    def default_arch(self) -> dict[str, Any]:
        """The architecture settings of the full-size network (stored in checkpoints as ``arch``)."""

    @abc.abstractmethod
    def arch_from_options(self, options: Any) -> dict[str, Any]:
        """The architecture settings a run with ``options`` trains (:meth:`default_arch` plus the options' changes)."""

    @abc.abstractmethod
    def build_network(self, arch: dict[str, Any]) -> nn.Module:
        """A freshly initialised network of ``arch``.

        Raises:
            InvalidInputError: for settings outside what the network supports.
            ModelLoadError: for keys the family does not know (e.g. from a newer checkpoint).
        """

    # -- checkpoints ---------------------------------------------------------------------------
    @abc.abstractmethod
    def variant_of(self, checkpoint: dict[str, Any]) -> str:
        """The variant a checkpoint was trained for, read from the family's own keys.

        Used for checkpoints written before the generic ``variant`` key existed.

        Raises:
            ModelLoadError: when the family's keys are missing or inconsistent.
        """

    @abc.abstractmethod
    def checkpoint_fields(self, variant: str, arch: dict[str, Any]) -> dict[str, Any]:
        """The family's own checkpoint keys (primitives only) for a network of ``arch`` trained on ``variant``."""

    #: the foreign checkpoint layouts :meth:`import_checkpoint` understands, a few words each (shown in errors)
    imported_layouts: ClassVar[tuple[str, ...]] = ()

    def import_checkpoint(self, checkpoint: dict[str, Any]) -> dict[str, Any] | None:
        """A checkpoint written by another program, converted to this SDK's layout; None when it is not the family's.

        :func:`training.checkpoint.load_checkpoint` asks every family in turn about a
        checkpoint without a ``family`` key; exactly one may claim it. A family
        recognises its foreign layouts by their keys, renames the weights to its
        network's, and fills the generic keys (``family``, ``arch``, ``variant``,
        ``epoch``, ``seed``, ``metrics``, ``train_args``) and its own
        (:meth:`checkpoint_fields`), plus ``imported_from``: the layout's name. An
        imported checkpoint holds weights only, no training state. The default
        claims nothing.

        Args:
            checkpoint: the dict as read from the file (not modified).

        Returns:
            The converted checkpoint, or None for a layout the family does not know.

        Raises:
            ModelLoadError: a layout the family recognises whose contents do not fit (a tensor missing,
                unexpected or of the wrong shape; inconsistent settings), naming what is wrong.
        """
        return None

    # -- options -----------------------------------------------------------------------------------
    def default_options(self) -> Any:
        """The family's training options with every default."""
        return self.options_type()

    def check_options(self, options: Any) -> Any:
        """``options`` if they are valid for this family (None: the defaults).

        Raises:
            InvalidInputError: options of another type, or values out of range.
        """
        if options is None:
            return self.default_options()
        if not isinstance(options, self.options_type):
            raise InvalidInputError(f"options of family {self.name!r} must be a {self.options_type.__name__}, "
                                    f"got {type(options).__name__}")
        options.validate()
        return options

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the family's own flags to the ``python -m training.train`` parser."""

    @abc.abstractmethod
    def options_from_args(self, args: argparse.Namespace) -> Any:
        """The typed options from parsed flags (of :meth:`add_arguments`)."""

    # -- data ----------------------------------------------------------------------------------------
    @abc.abstractmethod
    def epoch_length(self, root: Path, variant: str, options: Any) -> int:
        """Samples in one natural epoch of the dataset at ``root`` that ``options`` train on (used when no steps
        per epoch are given).

        Raises:
            InvalidInputError: when the dataset has no training samples.
        """

    @abc.abstractmethod
    def train_dataset(self, root: Path, variant: str, options: Any, length: int, seed: int) -> Dataset:
        """The training samples: a torch ``Dataset`` of ``length`` ``(inputs, targets)`` pairs.

        It has ``set_epoch(epoch)``; sample ``i`` of epoch ``e`` is a pure
        function of ``(seed, e, i)``, so that resuming repeats nothing.

        Raises:
            InvalidInputError: when the dataset cannot be read.
        """

    @abc.abstractmethod
    def check_dataset(self, root: Path, variant: str, *, progress: bool = False) -> DatasetReport:
        """Every problem of the dataset at ``root`` that would stop or mislead training, and its class balance.

        Reads each image and label once, with the runtime's readers and the family's input
        contract for ``variant`` (what training reads), one at a time. Run by
        ``python -m training.check_dataset`` and before training.

        Args:
            root: an existing folder, the dataset root in the family's layout.
            variant: the input geometry the images must fit.
            progress: show a progress bar on a terminal.

        Returns:
            The problems (errors stop training, warnings do not) and the images per split and class.
        """

    # -- objective and optimisation -------------------------------------------------------------------
    @abc.abstractmethod
    def make_loss(self, options: Any) -> Loss:
        """The training objective (see :class:`Loss`)."""

    def distillation_loss(self, options: Any, weight: float) -> DistillationLoss:
        """The objective of a student trained from a teacher: the teacher's outputs as soft targets, mixed
        with the ground truth (``weight`` in 0..1 on the teacher's part).

        Raises:
            InvalidInputError: the family defines none (the default).
        """
        raise InvalidInputError(f"family {self.name!r} defines no distillation loss; a student of it cannot be "
                                f"trained from a teacher")

    def network_width(self, arch: dict[str, Any]) -> int:
        """The one number :meth:`student_options` takes, read from an architecture (0: the family has none)."""
        return 0

    def student_options(self, options: Any, width: int) -> Any:
        """The training options of a thinner (or wider) network than ``options``' of the given width.

        ``width`` is the family's one number for a network's width (brn: the base width; lhrnet: the
        first branch's channels, the others scaled alike).

        Raises:
            InvalidInputError: the family cannot scale its network (the default), or a bad width.
        """
        raise InvalidInputError(f"family {self.name!r} cannot derive a network of another width")

    @abc.abstractmethod
    def make_optimizer_and_scheduler(self, network: nn.Module, options: Any, *, epochs: int,
                                     lr: float) -> Optimization:
        """The optimiser, scheduler and update rules of a run of ``epochs`` epochs at base rate ``lr``."""

    # -- evaluation and selection -------------------------------------------------------------------------
    @abc.abstractmethod
    def evaluate(self, network: nn.Module, root: Path, split: str, variant: str) -> dict[str, float]:
        """The family's task metrics of ``network`` on a labelled split (names as the runtime part reports them).

        Raises:
            InvalidInputError: a missing split or label.
        """

    def evaluation_splits(self, root: Path) -> tuple[str, str | None]:
        """(the split that selects the best epoch, the split to report at the end or None).

        The default selects on ``valid`` when the dataset has one and then
        reports ``test``; otherwise it selects on ``test`` and reports nothing more.
        """
        if (Path(root) / "valid").is_dir():
            return "valid", "test"
        return "test", None

    def is_better(self, metrics: dict[str, float], best: dict[str, float]) -> bool:
        """Whether ``metrics`` beat the best so far (empty: nothing yet) by the selection metric.

        On a tie the default guard metric (:attr:`TrainDefaults.guard_metric`), if any, decides.

        Raises:
            InvalidInputError: when ``metrics`` lack the selection or guard metric.
        """
        return self.selection().is_better(metrics, best)

    def selection(self, guard_metric: str | None = None) -> Selection:
        """The rule that picks the best checkpoint, with ``guard_metric`` (None: the default guard) on ties."""
        metric, direction = self.selection_metric
        guard = self.defaults.guard_metric if guard_metric is None else guard_metric
        return Selection(Metric(metric, direction), Metric(guard, self.metric_direction(guard)) if guard else None)

    def pictures(self, network: nn.Module, root: Path, split: str, variant: str,
                 count: int) -> list[tuple[str, np.ndarray]]:
        """Up to ``count`` named (H, W, 3) uint8 pictures of ``network``'s predictions on ``split`` with their truth.

        Shown in TensorBoard during training; the default draws none.
        """
        return []

    def report_sections(self, network: nn.Module, root: Path, split: str, variant: str,
                        out_dir: Path) -> list[ReportSection]:
        """The family's own sections of a run's report (``python -m training.report``).

        Args:
            network: the best checkpoint's network, in eval mode.
            root: the dataset root.
            split: the labelled split to analyse.
            variant: the input geometry the network was trained for.
            out_dir: the report's folder; the family writes its PNGs there.

        Returns:
            The sections in reading order; the default adds none.
        """
        return []

    # -- synthetic data -------------------------------------------------------------------------------------
    def default_dataset_options(self) -> Any:
        """The synthetic-dataset options with every default."""
        return self.dataset_options_type()

    def check_dataset_options(self, options: Any) -> Any:
        """``options`` if they are this family's dataset options (None: the defaults).

        Raises:
            InvalidInputError: options of another type.
        """
        if options is None:
            return self.default_dataset_options()
        if not isinstance(options, self.dataset_options_type):
            raise InvalidInputError(f"dataset options of family {self.name!r} must be a "
                                    f"{self.dataset_options_type.__name__}, got {type(options).__name__}")
        return options

    @abc.abstractmethod
    def add_dataset_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the family's own flags to the ``python -m training.make_dataset`` parser."""

    @abc.abstractmethod
    def dataset_options_from_args(self, args: argparse.Namespace) -> Any:
        """The typed synthetic-dataset options from parsed flags (of :meth:`add_dataset_arguments`)."""

    @abc.abstractmethod
    def synthetic_dataset(self, out: Path, variant: str, seed: int, options: Any = None, *,
                          overwrite: bool = False, progress: bool = False) -> Path:
        """Write a synthetic labelled dataset in the family's layout, atomically (all or nothing).

        Args:
            out: the folder to create.
            variant: the input geometry of the images.
            seed: the same seed writes the same bytes.
            options: the family's dataset options (None: defaults).
            overwrite: replace an existing non-empty ``out``.
            progress: show a progress bar.

        Returns:
            ``out``.

        Raises:
            InvalidInputError: bad options, or an existing non-empty ``out`` without ``overwrite``.
        """

    @abc.abstractmethod
    def describe_dataset(self, options: Any) -> str:
        """What :meth:`synthetic_dataset` writes with ``options``, in a few words for a CLI."""

    @abc.abstractmethod
    def synthetic_samples(self, variant: str, count: int, seed: int) -> tuple[np.ndarray, list[Any]]:
        """Labelled synthetic source images, for export parity and INT8 calibration.

        Returns:
            ``(images, labels)``: (N, C, H, W) float32 images in the source
            range (as users pass them) and one label per image, in the form the
            runtime part's ``read_label`` returns.
        """

    @abc.abstractmethod
    def tiny_config(self) -> TinyConfig:
        """A very small, fast model and dataset, for tests and fixtures."""


TRAINING_FAMILIES: Registry[TrainingFamily] = Registry("training", "training.families")


def get_training_family(name: str) -> TrainingFamily:
    """The training part of a family, by the name a checkpoint carries.

    Raises:
        ModelLoadError: for a name no family was registered under.

    Example:
        >>> get_training_family("brn").default_arch()["base_width"]
        64
    """
    return TRAINING_FAMILIES.get(name)


#: the family the CLIs use when ``--family`` is not given (the SDK's first family)
DEFAULT_FAMILY = "brn"


def family_from_argv(argv: list[str]) -> TrainingFamily:
    """The family a command line names with ``--family`` (default :data:`DEFAULT_FAMILY`).

    CLIs read it before building their parser, because the family adds its own flags.

    Raises:
        ModelLoadError: for an unknown family.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--family", default=DEFAULT_FAMILY)
    return get_training_family(pre.parse_known_args(argv)[0].family)


def list_training_families() -> list[str]:
    """Names of every family with a training part.

    Example:
        >>> list_training_families()
        ['brn']
    """
    return TRAINING_FAMILIES.names()
