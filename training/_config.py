"""The settings of a training run: :class:`TrainConfig`, its defaults, its checks and its YAML form.

A field left at None takes the family's default (:class:`training.TrainDefaults`)
when the run starts (:func:`resolve`). The resolved settings are written beside
the checkpoints as ``config.yaml``; ``python -m training.train --config
config.yaml`` runs them again, and flags given on the command line override the
file. Every key of that file is a command-line flag with ``-`` spelled ``_``;
the family's own options sit under a section named after the family.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.core import InvalidInputError, atomic_write
from training._family import DEFAULT_FAMILY, TrainingFamily

__all__ = ["Amp", "CONFIG_FILE", "TrainConfig", "check_output_folder", "config_from_yaml_text", "resolve",
           "write_config"]

#: the resolved settings of a run, beside its checkpoints
CONFIG_FILE = "config.yaml"


class Amp(str, enum.Enum):
    """Mixed precision of the forward pass and loss.

    ``auto`` is bf16 on a CUDA device that supports it and off elsewhere.
    ``fp16`` needs CUDA (it scales the loss against underflow).
    """

    AUTO = "auto"
    OFF = "off"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclass
class TrainConfig:
    """Every knob of a training run; stored in the checkpoint as ``train_args``.

    None means "the family's default" (or, for ``workers`` and ``pin_memory``,
    a choice from the machine).

    Attributes:
        out: folder for the checkpoints, ``config.yaml``, ``train.log`` and ``tensorboard/``.
        family: the model family (a key of ``training.list_training_families()``).
        data: the dataset root, in the family's layout.
        synthetic: synthesise a dataset into ``out/data`` instead (exactly one of ``data`` and this).
        check_dataset: check every image and label of ``data`` before training and stop on errors
            (``python -m training.check_dataset``); off saves a full read of a huge dataset.
        variant: the family's input geometry.
        epochs: epochs to train.
        steps_per_epoch: optimiser steps per epoch (None: one pass over the training samples).
        batch_size: samples per optimiser step, over all processes and accumulated micro-batches.
        lr: base learning rate.
        seed: seeds the network's initialisation and the training samples.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        amp: mixed precision (an :class:`Amp` value).
        channels_last: train in the channels-last memory format (None after resolving: on CUDA only).
        workers: DataLoader worker processes per training process (None: from the core count).
        pin_memory: page-locked batches (None: on CUDA).
        prefetch: batches each worker prepares ahead.
        accumulate: micro-batches per optimiser step (each holds ``batch_size / (processes * accumulate)`` samples).
        grad_clip: clip the gradients' global norm to this value (0: no clipping).
        ema_decay: keep an exponential moving average of the weights with this decay, updated every
            step; evaluation, selection and ``best.pth`` use it (0: none).
        eval_every: evaluate (and maybe save ``best.pth``) every N epochs; the last epoch always is.
        patience: stop after this many evaluations without improvement (0: never stop early).
        min_delta: the least change of the selection metric that counts as an improvement.
        min_epochs: never stop early before this many epochs.
        guard_metric: a second metric whose clear improvement also resets the patience ("": none).
        guard_min_delta: the least change of ``guard_metric`` that counts.
        save_every: write ``epoch_XXX.pth`` every N epochs (0: never).
        keep: how many ``epoch_XXX.pth`` to keep (the newest; 0: all).
        save_minutes: also write ``last.pth`` during an epoch every this many minutes (0: only at epoch ends).
        tensorboard: write TensorBoard event files into ``out/tensorboard``.
        picture_every: add the family's pictures to TensorBoard every N epochs (0: never).
        threads: torch intra-op threads (None: torch's choice).
        progress: show progress bars (on a terminal).
        resume: continue from ``out/last.pth`` (True) or from this checkpoint (a path); not part of ``config.yaml``.
        stop_after_epochs: end this invocation after this many epochs, to be continued with ``resume``
            (a job's time budget); not part of ``config.yaml``.
        force: start afresh in an ``out`` that holds a run, replacing its checkpoints and logs.
        teacher: train by distillation from this checkpoint of the same family and variant (its outputs
            on each batch are soft targets: the family's :meth:`~TrainingFamily.distillation_loss`).
        distill_weight: the teacher's share of the objective, 0..1 (the ground truth has the rest).
        family_options: the family's typed options (e.g. ``BrnOptions``; None: its defaults).
    """

    out: Path
    family: str = DEFAULT_FAMILY
    data: Path | None = None
    synthetic: bool = False
    check_dataset: bool = True
    variant: str | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    device: str = "auto"
    amp: Amp | str | None = None
    channels_last: bool | None = None
    workers: int | None = None
    pin_memory: bool | None = None
    prefetch: int = 2
    accumulate: int = 1
    grad_clip: float | None = None
    ema_decay: float | None = None
    eval_every: int = 1
    patience: int | None = None
    min_delta: float | None = None
    min_epochs: int | None = None
    guard_metric: str | None = None
    guard_min_delta: float | None = None
    save_every: int | None = None
    keep: int | None = None
    save_minutes: float = 10.0
    tensorboard: bool = True
    picture_every: int | None = None
    threads: int | None = None
    progress: bool = True
    resume: bool | Path = False
    stop_after_epochs: int | None = None
    force: bool = False
    teacher: Path | None = None
    distill_weight: float = 0.5
    family_options: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as primitives (what a checkpoint stores as ``train_args``)."""
        return {f.name: plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


#: fields of one invocation rather than of the run (left out of config.yaml)
_INVOCATION_FIELDS = ("resume", "stop_after_epochs", "force", "progress")
#: fields filled from the family's TrainDefaults when None
_FAMILY_DEFAULTS = ("epochs", "batch_size", "lr", "amp", "channels_last", "grad_clip", "ema_decay", "patience",
                    "min_delta", "min_epochs", "guard_metric", "guard_min_delta", "save_every", "keep",
                    "picture_every")
_DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


def resolve(config: TrainConfig, family: TrainingFamily) -> TrainConfig:
    """``config`` with the family's defaults filled in, checked (nothing is touched on disk).

    Raises:
        InvalidInputError: a value out of range, naming its flag.
    """
    _check_source(config)
    defaults = family.defaults
    filled = {name: getattr(defaults, name) for name in _FAMILY_DEFAULTS if getattr(config, name) is None}
    resolved = dataclasses.replace(
        config, **filled, out=Path(config.out), data=None if config.data is None else Path(config.data),
        variant=family.check_variant(config.variant),
        resume=config.resume if isinstance(config.resume, bool) else Path(config.resume),
        teacher=None if config.teacher is None else Path(config.teacher),
        family_options=family.check_options(config.family_options))
    resolved.amp = _parse_amp(resolved.amp)
    resolved.guard_metric = resolved.guard_metric or ""
    _check_numbers(resolved)
    if not _DEVICE.match(str(resolved.device)):
        raise InvalidInputError(f"--device must be auto, cpu, cuda or cuda:N, got {resolved.device!r}")
    if resolved.guard_metric:
        family.metric_direction(resolved.guard_metric)  # raises for a metric the family does not report
    return resolved


def _parse_amp(value: Any) -> Amp:
    try:
        return Amp(value)
    except ValueError:
        raise InvalidInputError(f"--amp must be one of {[a.value for a in Amp]}, got {value!r}") from None


def _check_source(config: TrainConfig) -> None:
    if (config.data is None) == (not config.synthetic):
        raise InvalidInputError("give exactly one of --data DIR or --synthetic")
    if config.data is not None and not Path(config.data).is_dir():
        raise InvalidInputError(f"dataset folder not found: {config.data}; expected a dataset root")


def _check_numbers(config: TrainConfig) -> None:
    at_least = {"epochs": 1, "batch_size": 1, "eval_every": 1, "prefetch": 1, "accumulate": 1, "patience": 0,
                "min_epochs": 0, "save_every": 0, "keep": 0, "picture_every": 0}
    for name, low in at_least.items():
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise InvalidInputError(f"{_flag(name)} must be an integer >= {low}, got {value!r}")
    for name in ("steps_per_epoch", "threads", "stop_after_epochs"):
        value = getattr(config, name)
        if value is not None and (not isinstance(value, int) or value < 1):
            raise InvalidInputError(f"{_flag(name)} must be an integer >= 1, got {value!r}")
    if config.workers is not None and config.workers < 0:
        raise InvalidInputError(f"--workers must be >= 0, got {config.workers}")
    if not (isinstance(config.lr, (int, float)) and math.isfinite(config.lr) and config.lr > 0):
        raise InvalidInputError(f"--lr must be positive, got {config.lr}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise InvalidInputError(f"--ema-decay must be in [0, 1) (0: no moving average), got {config.ema_decay}")
    if config.teacher is not None and not Path(config.teacher).is_file():
        raise InvalidInputError(f"--teacher {config.teacher}: no such checkpoint file")
    weight = config.distill_weight
    if not (isinstance(weight, (int, float)) and not isinstance(weight, bool) and 0.0 <= weight <= 1.0):
        raise InvalidInputError(f"--distill-weight must be a number in 0..1, got {weight!r}")
    for name in ("grad_clip", "min_delta", "guard_min_delta", "save_minutes"):
        value = getattr(config, name)
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
            raise InvalidInputError(f"{_flag(name)} must be a number >= 0, got {value!r}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_output_folder(out: Path) -> None:
    """Refuse an ``out`` that cannot be created or written, before any work.

    Raises:
        InvalidInputError: naming ``--out`` and the reason.
    """
    existing = out
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise InvalidInputError(f"--out {out}: {existing} is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InvalidInputError(f"--out {out}: {existing} is not writable; expected a folder this user can write")


# -- YAML --------------------------------------------------------------------------------------------------


def write_config(config: TrainConfig, path: Path) -> Path:
    """Write the run's settings as YAML (atomically): the generic keys, then the family's section."""
    import yaml

    values = {k: v for k, v in config.to_dict().items() if k not in _INVOCATION_FIELDS + ("family_options",)}
    values[config.family] = plain(config.family_options)
    header = ("# The settings of this run. Run them again (flags override the file):\n"
              f"#   python -m training.train --config {path.name} --resume\n")
    text = header + yaml.safe_dump(values, sort_keys=False)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def config_from_yaml_text(text: str, source: str) -> dict[str, Any]:
    """The mapping a ``--config`` file holds.

    Raises:
        InvalidInputError: unreadable YAML or not a mapping of names.
    """
    import yaml

    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"--config {source} is not valid YAML: {exc}") from exc
    if values is None:
        return {}
    if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
        raise InvalidInputError(f"--config {source} must hold a mapping of setting names to values, "
                                f"got {type(values).__name__}")
    return values


def plain(value: Any) -> Any:
    """``value`` as primitives that YAML and ``torch.load(weights_only=True)`` accept.

    A value with a ``config_text()`` method (an option typed in Python but
    written as one command-line word) is stored as that text, so that
    ``--config`` feeds it back to its flag.
    """
    if callable(getattr(value, "config_text", None)) and not isinstance(value, type):
        return value.config_text()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    return value
