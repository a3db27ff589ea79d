"""The training engine every family runs on: set up, resume, then per step and per epoch train, evaluate, save.

The family's training part brings the network, data, loss, optimiser and
metrics; the engine brings the device and mixed precision, processes under
``torchrun``, gradient accumulation and clipping, the moving average of the
weights, selection and early stopping, the checkpoint policy, exact resume and
the reports (``train.log``, TensorBoard). See :func:`train`.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import shutil
import signal
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from runtime.core import InvalidInputError, SdkError
from training._checkpointing import BEST, LAST, Checkpoints, StopRequest, run_files
from training._config import CONFIG_FILE, TrainConfig, check_output_folder, resolve, write_config
from training._data import StepSampler, make_loader
from training._device import Placement, place
from training._distributed import Ranks, any_rank, barrier, broadcast, mean_over_ranks, process_group
from training._family import (DistillationLoss, Loss, Optimization, SchedulerInterval, TrainingFamily,
                              get_training_family)
from training._monitor import LOG_FILE, TENSORBOARD_DIR, Monitor, epoch_line
from training._stopping import EarlyStopping, Selection
from training.checkpoint import IMPORTED_FROM, build_from_checkpoint, library_versions, load_checkpoint

__all__ = ["TrainResult", "TrainingInterrupted", "train"]

log = logging.getLogger("training.engine")

#: how many of the family's pictures go to TensorBoard at a time
_PICTURES = 3
#: how many of the dataset check's warnings the log shows
_SHOWN_WARNINGS = 3


class TrainingInterrupted(SdkError):
    """SIGINT or SIGTERM stopped the run; ``last.pth`` holds where it was (continue with ``resume``)."""

    def __init__(self, message: str, signum: int, checkpoint: Path) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint


@dataclass
class TrainResult:
    """What :func:`train` wrote and measured.

    Attributes:
        last: ``last.pth``.
        best: ``best.pth``.
        metrics: the best checkpoint's metrics (on the held-out split when the dataset has one).
        best_epoch: the best evaluation's epoch (0-based; -1: none).
        seconds: the duration of this invocation.
        losses: the loss of every optimiser step of this invocation.
        epochs_done: the epochs completed so far, over every invocation.
        stopped_early: whether early stopping ended the run.
    """

    last: Path
    best: Path
    metrics: dict[str, float]
    best_epoch: int
    seconds: float
    losses: list[float] = field(default_factory=list)
    epochs_done: int = 0
    stopped_early: bool = False


@dataclass
class _State:
    """Where a run stands beyond the modules' own states; all of it goes into ``last.pth``."""

    epoch: int = 0  # the epoch in progress (0-based)
    step: int = 0  # optimiser steps done in it
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    epoch_losses: list[tuple[int, float]] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=dict)  # this epoch's running sums of the step values
    stopped_early: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"position": {"epoch": self.epoch, "step": self.step}, "best_epoch": self.best_epoch,
                "best_metrics": self.best_metrics, "history": [[e, m] for e, m in self.history],
                "epoch_losses": [[e, v] for e, v in self.epoch_losses], "step_sums": dict(self.sums),
                "stopped_early": self.stopped_early}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> _State:
        return cls(epoch=data["position"]["epoch"], step=data["position"]["step"], best_epoch=data["best_epoch"],
                   best_metrics=data["best_metrics"], history=[(e, m) for e, m in data["history"]],
                   epoch_losses=[(e, v) for e, v in data["epoch_losses"]], sums=dict(data["step_sums"]),
                   stopped_early=data["stopped_early"])


@dataclass
class _Run:
    """Everything one run trains with (built by :func:`_set_up`)."""

    config: TrainConfig
    family: TrainingFamily
    ranks: Ranks
    placement: Placement
    root: Path
    splits: tuple[str, str | None]  # (selects the best epoch, reported at the end)
    steps: int
    network: nn.Module  # the family's network
    model: nn.Module  # what the steps call: the network, or its DDP wrapper
    ema: AveragedModel | None
    optimization: Optimization
    loss: Loss
    sampler: StepSampler
    loader: DataLoader
    selection: Selection
    stopping: EarlyStopping
    checkpoints: Checkpoints
    base: dict[str, Any]  # the checkpoint keys every save shares
    teacher: nn.Module | None = None  # distillation: its outputs are soft targets (eval mode, no gradient)
    distillation: DistillationLoss | None = None

    @property
    def out(self) -> Path:
        return self.config.out

    @property
    def deployed(self) -> nn.Module:
        """The weights that are evaluated and saved: the moving average when there is one."""
        return self.ema.module if self.ema is not None else self.network

    @property
    def total_steps(self) -> int:
        return self.config.epochs * self.steps


def train(config: TrainConfig) -> TrainResult:
    """Train a network of ``config.family`` and write its checkpoints into ``config.out``.

    Under ``torchrun`` every process calls this; they train together and rank 0
    evaluates and writes. Every setting is checked before anything is written.

    Args:
        config: the run's settings (see :class:`TrainConfig`).

    Returns:
        Where the checkpoints are, the best checkpoint's metrics (on the held-out
        split when the dataset has one), its epoch and the per-step losses.

    Raises:
        InvalidInputError: a bad setting, named (device, batch, resume checkpoint, output folder...).
        ModelLoadError: an unknown family or an unreadable resume checkpoint.
        TrainingInterrupted: SIGINT or SIGTERM; ``last.pth`` was written first.
        SdkError: a dataset that cannot be read, or a loss that is no longer finite.

    Example:
        >>> from training.families.brn.options import BrnOptions
        >>> train(TrainConfig(out=Path("runs/brn"), synthetic=True, epochs=5,
        ...                   family_options=BrnOptions(base_width=16)))
    """
    family = get_training_family(config.family)
    config = resolve(config, family)
    ranks = Ranks.from_environment()
    placement = place(config, ranks)
    check_output_folder(config.out)
    resumed = _resume_checkpoint(config, family)
    with process_group(ranks, placement.device), StopRequest() as stop:
        run = _set_up(config, family, ranks, placement)
        state = _restore(run, resumed) if resumed is not None else _State()
        purge = None if resumed is None else state.epoch * run.steps + state.step
        with Monitor(run.out, ranks, tensorboard=config.tensorboard, progress=config.progress,
                     purge_step=purge) as monitor:
            _log_start(run, resumed is not None, state)
            return _loop(run, state, monitor, stop)


# -- set-up ----------------------------------------------------------------------------------------------


def _resume_checkpoint(config: TrainConfig, family: TrainingFamily) -> dict[str, Any] | None:
    """The checkpoint to resume from (None: a fresh run), checked against ``config`` before any work."""
    last = config.out / LAST
    if config.resume is False:
        if last.exists() and not config.force:
            raise InvalidInputError(f"--out {config.out} already holds a run ({LAST}); continue it with --resume "
                                    f"or start over with --force")
        return None
    path = last if config.resume is True else Path(config.resume)
    if config.resume is True and not last.exists():
        log.info("nothing to resume in %s: starting a new run", config.out)
        return None
    state = load_checkpoint(path)
    arch = family.arch_from_options(config.family_options)
    expected = {"family": family.name, "variant": config.variant, "arch": arch}
    for key, value in expected.items():
        if state.get(key) != value:
            raise InvalidInputError(f"cannot resume from {path}: it has {key} {state.get(key)!r}, this run asks "
                                    f"for {value!r}; use another --out or the same settings")
    if state.get(IMPORTED_FROM) and "position" not in state:
        # Another program's checkpoint: its weights, continued after its epoch (see _restore_imported).
        if state["epoch"] + 1 >= config.epochs:
            raise InvalidInputError(f"cannot resume from {path}: it was trained for {state['epoch'] + 1} epoch(s) "
                                    f"and --epochs is {config.epochs}; ask for more epochs to continue it")
        return state
    if "optimizer_state_dict" not in state or "position" not in state:
        raise InvalidInputError(f"cannot resume from {path}: it holds no training state (a best.pth or an older "
                                f"checkpoint); resume from a last.pth or epoch_XXX.pth")
    return state


def _set_up(config: TrainConfig, family: TrainingFamily, ranks: Ranks, placement: Placement) -> _Run:
    if config.threads:
        torch.set_num_threads(config.threads)
    if placement.device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    if config.data is not None and config.check_dataset:
        _check_dataset(config, family, ranks)  # before --force removes an earlier run's files
    if ranks.main:
        _prepare_output(config)
    barrier()
    root = _dataset_root(config, family, ranks)
    steps = config.steps_per_epoch or max(1, math.ceil(family.epoch_length(root, config.variant, config.family_options) / config.batch_size))
    arch = family.arch_from_options(config.family_options)
    torch.manual_seed(config.seed)  # nothing draws from torch's generator before the network is built
    network = placement.prepare_network(family.build_network(arch))
    optimization = family.make_optimizer_and_scheduler(network, config.family_options, epochs=config.epochs,
                                                       lr=config.lr)
    ema = None
    if config.ema_decay > 0:
        ema = AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
    model = network
    if ranks.distributed:
        model = DistributedDataParallel(network, device_ids=[placement.device.index] if placement.device.index
                                        is not None else None)
    dataset = family.train_dataset(root, config.variant, config.family_options, steps * config.batch_size,
                                   config.seed)
    sampler = StepSampler(steps, config.batch_size, ranks)
    loader = make_loader(dataset, sampler, config.batch_size // (ranks.world * config.accumulate),
                         workers=placement.workers, pin_memory=placement.pin_memory, prefetch=config.prefetch,
                         seed=config.seed)
    selection = family.selection(config.guard_metric)
    stopping = EarlyStopping(selection.metric, config.patience, config.min_delta, config.min_epochs,
                             selection.guard, config.guard_min_delta)
    base = {"family": family.name, "variant": config.variant, "arch": arch, "seed": config.seed,
            **family.checkpoint_fields(config.variant, arch), "train_args": config.to_dict(),
            "versions": library_versions()}
    checkpoints = Checkpoints(config.out, save_every=config.save_every, keep=config.keep,
                              save_minutes=config.save_minutes, main=ranks.main)
    teacher = None if config.teacher is None else _load_teacher(config, family, placement)
    distillation = None if teacher is None else family.distillation_loss(config.family_options, config.distill_weight)
    return _Run(config, family, ranks, placement, root, family.evaluation_splits(root), steps, network, model, ema,
                optimization, family.make_loss(config.family_options), sampler, loader, selection, stopping,
                checkpoints, base, teacher, distillation)


def _load_teacher(config: TrainConfig, family: TrainingFamily, placement: Placement) -> nn.Module:
    """The teacher network of a distillation run, checked against the run, frozen, on the run's device.

    Not wrapped in DistributedDataParallel: every process runs its own copy forward only.
    """
    checkpoint = load_checkpoint(config.teacher)
    for key, ours in (("family", family.name), ("variant", config.variant)):
        if checkpoint.get(key) != ours:
            raise InvalidInputError(f"--teacher {config.teacher} is a {checkpoint.get(key)!r} {key}, this run trains "
                                    f"{ours!r}: a teacher must be of the same family and variant")
    _, teacher = build_from_checkpoint(checkpoint)
    teacher = placement.prepare_network(teacher).eval()
    teacher.requires_grad_(False)
    log.info("distilling from %s (%s, %.2f M parameters), weight %.2f", config.teacher, checkpoint.get("arch"),
             sum(p.numel() for p in teacher.parameters()) / 1e6, config.distill_weight)
    return teacher


def _prepare_output(config: TrainConfig) -> None:
    """Create ``out``; with ``force``, first remove the files an earlier run wrote there (only those)."""
    try:
        config.out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # e.g. under /proc: writable by its mode, yet no folder can be made there
        raise InvalidInputError(f"--out {config.out}: cannot create the folder: {exc.strerror or exc}") from exc
    if config.force and config.resume is False:
        for path in run_files(config.out) + [config.out / CONFIG_FILE, config.out / LOG_FILE]:
            path.unlink(missing_ok=True)
        shutil.rmtree(config.out / TENSORBOARD_DIR, ignore_errors=True)
    write_config(config, config.out / CONFIG_FILE)


def _dataset_root(config: TrainConfig, family: TrainingFamily, ranks: Ranks) -> Path:
    """The dataset to train on; with ``synthetic`` one written into ``out/data`` once (by rank 0)."""
    if config.data is not None:
        return config.data
    root = config.out / "data"
    if ranks.main and not (root.is_dir() and any(root.iterdir())):
        log.info("synthesising a %s dataset in %s", family.name, root)
        family.synthetic_dataset(root, config.variant, config.seed, progress=config.progress)
    barrier()
    return root


def _check_dataset(config: TrainConfig, family: TrainingFamily, ranks: Ranks) -> None:
    """Stop before training when ``config.data`` has errors (what ``python -m training.check_dataset`` lists).

    Rank 0 reads the dataset; every process gets its verdict and stops with the same error.

    Raises:
        InvalidInputError: the first errors found and the command that lists them all.
    """
    message = None
    if ranks.main:
        started = time.perf_counter()
        report = family.check_dataset(config.data, config.variant, progress=config.progress)
        log.info("checked dataset %s in %.0f s: %d error(s), %d warning(s)", config.data,
                 time.perf_counter() - started, len(report.errors), len(report.warnings))
        for problem in report.warnings[:_SHOWN_WARNINGS]:
            log.warning("dataset warning: %s: %s", problem.path, problem.message)
        if len(report.warnings) > _SHOWN_WARNINGS:
            log.warning("... and %d more dataset warnings (python -m training.check_dataset %s lists them)",
                        len(report.warnings) - _SHOWN_WARNINGS, config.data)
        message = None if report.ok else report.error_message()
    message = broadcast(message)
    if message is not None:
        raise InvalidInputError(message)


def _log_start(run: _Run, resumed: bool, state: _State) -> None:
    p, c = run.placement, run.config
    where = f"epoch {state.epoch + 1} step {state.step}" if resumed else "the start"
    log.info("training %s (%s, %.2f M parameters) from %s on %s x %d, amp %s%s, batch %d (%d steps per epoch), "
             "%d data workers", run.family.name, c.variant, sum(t.numel() for t in run.network.parameters()) / 1e6,
             where, p.device, run.ranks.world, p.amp.value, ", channels-last" if p.channels_last else "",
             c.batch_size, run.steps, p.workers)


# -- resume ------------------------------------------------------------------------------------------------


def _restore(run: _Run, checkpoint: dict[str, Any]) -> _State:
    """Load model, moving average, optimiser, scheduler, scaler, early stopping and RNG states."""
    if checkpoint.get(IMPORTED_FROM) and "position" not in checkpoint:
        return _restore_imported(run, checkpoint)
    device = run.placement.device
    run.network.load_state_dict(checkpoint.get("network_state_dict", checkpoint["model_state_dict"]))
    if run.ema is not None:
        if "ema_state_dict" not in checkpoint:
            raise InvalidInputError("cannot resume: the checkpoint has no moving average but this run keeps one "
                                    "(--ema-decay); resume with --ema-decay 0 or start over")
        run.ema.load_state_dict(checkpoint["ema_state_dict"])
    opt = run.optimization
    opt.optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    if opt.scheduler is not None:
        opt.scheduler.load_state_dict(checkpoint["scheduler_state_dict"])
    run.placement.load_state_dict(checkpoint.get("scaler_state_dict"))
    run.stopping.load_state_dict(checkpoint["early_stopping"])
    _set_rng_state(checkpoint["rng_state"], device)
    _warn_changed_settings(checkpoint.get("train_args", {}), run.config)
    return _State.from_dict(checkpoint)


def _restore_imported(run: _Run, checkpoint: dict[str, Any]) -> _State:
    """Weights only (a checkpoint another program wrote): go on after its ``epoch`` with a fresh optimiser.

    The learning-rate schedule is stepped to where a run of this length would be
    after that epoch; the optimiser, scaler and early stopping start afresh, the
    moving average (if any) from the imported weights.
    """
    weights = checkpoint["model_state_dict"]
    run.network.load_state_dict(weights)
    if run.ema is not None:
        run.ema.module.load_state_dict(weights)
    epoch = checkpoint["epoch"] + 1
    _advance_schedule(run.optimization, epoch, run.steps)
    log.warning("resuming from a checkpoint imported from the %s layout: its weights after epoch %d, going on "
                "with epoch %d at lr %g; the optimiser starts afresh (the original's optimiser state, if any, "
                "lists the parameters in another order), so the first steps will not match an uninterrupted run",
                checkpoint[IMPORTED_FROM], epoch, epoch + 1, run.optimization.optimizer.param_groups[0]["lr"])
    return _State(epoch=epoch)


def _advance_schedule(optimization: Optimization, epochs: int, steps: int) -> None:
    """Step the learning-rate scheduler as ``epochs`` epochs of ``steps`` optimiser steps would have."""
    scheduler = optimization.scheduler
    if scheduler is None:
        return
    count = epochs if optimization.interval is SchedulerInterval.EPOCH else epochs * steps
    with warnings.catch_warnings():
        # No optimiser step is taken: the schedule is only positioned.
        warnings.filterwarnings("ignore", message=r"Detected call of `lr_scheduler\.step\(\)` before",
                                category=UserWarning)
        for _ in range(count):
            scheduler.step()


def _warn_changed_settings(before: dict[str, Any], config: TrainConfig) -> None:
    now = config.to_dict()
    keys = ("epochs", "steps_per_epoch", "batch_size", "lr", "seed", "accumulate", "grad_clip", "ema_decay", "amp")
    changed = [f"{k} {before[k]!r} -> {now[k]!r}" for k in keys if k in before and before[k] != now[k]]
    # The family's recipe (loss, synthesis, ...) counts too; its architecture was already checked.
    old_options, new_options = before.get("family_options") or {}, now.get("family_options") or {}
    changed += [f"{k} {old_options[k]!r} -> {new_options[k]!r}" for k in sorted(new_options)
                if k in old_options and old_options[k] != new_options[k]]
    if changed:
        log.warning("resuming with changed settings (%s): the run will not match an uninterrupted one",
                    ", ".join(changed))


def _rng_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "numpy": [name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached],
            "python": random.getstate()}


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


# -- the loop ----------------------------------------------------------------------------------------------


def _loop(run: _Run, state: _State, monitor: Monitor, stop: StopRequest) -> TrainResult:
    started = time.perf_counter()
    losses: list[float] = []
    epochs_this_run = 0
    while state.epoch < run.config.epochs and not state.stopped_early:
        epoch_started = time.perf_counter()
        if not _train_steps(run, state, monitor, stop, losses):
            _interrupt(run, state, stop)
        _end_epoch(run, state, monitor, time.perf_counter() - epoch_started, time.perf_counter() - started,
                   epochs_this_run + 1)
        epochs_this_run += 1
        if any_rank(stop.requested, run.placement.device):
            _interrupt(run, state, stop, saved=True)
        if run.config.stop_after_epochs and epochs_this_run >= run.config.stop_after_epochs:
            log.info("stopping after %d epoch(s) as asked; continue with --resume", epochs_this_run)
            break
    if state.stopped_early:
        log.info("stopping early after epoch %d: no improvement of %s in %d evaluations", state.epoch,
                 run.selection.metric.name, run.config.patience)
    metrics = _final_metrics(run, state)
    return TrainResult(run.out / LAST, run.out / BEST, metrics, state.best_epoch, time.perf_counter() - started,
                       losses, state.epoch, state.stopped_early)


def _train_steps(run: _Run, state: _State, monitor: Monitor, stop: StopRequest, losses: list[float]) -> bool:
    """The rest of the epoch in progress; False when a signal stopped it (at a step boundary)."""
    run.model.train()
    run.sampler.start(state.epoch, state.step)
    batches = iter(run.loader)
    bar = monitor.bar(run.steps - state.step, f"epoch {state.epoch + 1}/{run.config.epochs}")
    try:
        while state.step < run.steps:
            if any_rank(stop.requested, run.placement.device):
                return False
            micro = [next(batches) for _ in range(run.config.accumulate)]
            global_step = state.epoch * run.steps + state.step
            values = _optimizer_step(run, micro, global_step / run.total_steps)
            _check_finite(values["loss"], state, run.placement.device)
            state.step += 1
            for name, value in values.items():
                state.sums[name] = state.sums.get(name, 0.0) + value
            losses.append(values["loss"])
            monitor.step(global_step + 1, values)
            bar.update()
            bar.set_postfix(loss=f"{values['loss']:.4f}")
            if run.checkpoints.periodic_due():
                run.checkpoints.save_last(_last_payload(run, state))
    finally:
        bar.close()
    return True


def _optimizer_step(run: _Run, micro_batches: list[Any], progress: float) -> dict[str, float]:
    """One optimiser step over ``micro_batches`` (gradients accumulated); the step's loss, rate and norm."""
    placement, opt = run.placement, run.optimization
    opt.optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=placement.device)
    for i, (inputs, targets) in enumerate(micro_batches):
        inputs, targets = placement.to_device(inputs), placement.to_device(targets)
        last = i == len(micro_batches) - 1
        # DDP averages gradients at the last micro-batch only.
        sync = contextlib.nullcontext() if last or not run.ranks.distributed else run.model.no_sync()
        with sync:
            with placement.autocast():
                outputs = run.model(inputs)
                if run.teacher is None:
                    loss = run.loss(outputs, targets, progress)
                else:
                    with torch.no_grad():
                        teacher_outputs = run.teacher(inputs)
                    loss = run.distillation(outputs, teacher_outputs, targets, progress)
            placement.backward(loss / len(micro_batches))
        total += loss.detach().float()
    lr = opt.optimizer.param_groups[0]["lr"]
    norm = placement.step(opt.optimizer, [p for p in run.network.parameters() if p.grad is not None],
                          run.config.grad_clip)
    if run.ema is not None:
        run.ema.update_parameters(run.network)
    if opt.scheduler is not None and opt.interval is SchedulerInterval.STEP:
        opt.scheduler.step()
    return {"loss": float(total) / len(micro_batches), "lr": lr, "grad_norm": norm}


def _check_finite(loss: float, state: _State, device: torch.device) -> None:
    if any_rank(not math.isfinite(loss), device):
        raise SdkError(f"the training loss is no longer finite ({loss}) at epoch {state.epoch + 1} step "
                       f"{state.step + 1}; lower --lr, set --grad-clip, or check the data. last.pth holds the "
                       f"last good epoch")


def _interrupt(run: _Run, state: _State, stop: StopRequest, *, saved: bool = False) -> None:
    if not saved:
        run.checkpoints.save_last(_last_payload(run, state))
    barrier()
    signum = stop.signum or signal.SIGTERM  # another rank may have been the one signalled
    name = signal.Signals(signum).name
    raise TrainingInterrupted(f"{name} at epoch {state.epoch + 1} step {state.step}: {run.out / LAST} holds "
                              f"where the run was; continue with --resume", signum, run.out / LAST)


# -- end of an epoch: evaluate, select, report, save ---------------------------------------------------------


def _end_epoch(run: _Run, state: _State, monitor: Monitor, seconds: float, elapsed: float, epochs_done: int) -> None:
    """Scheduler, evaluation, selection, early stopping, reports and checkpoints after an epoch."""
    opt, config, epoch = run.optimization, run.config, state.epoch
    if opt.scheduler is not None and opt.interval is SchedulerInterval.EPOCH:
        opt.scheduler.step()
    train_means = {name: mean_over_ranks(total / run.steps, run.placement.device)
                   for name, total in state.sums.items()}
    state.epoch_losses.append((epoch, train_means.get("loss", math.nan)))
    metrics, stop = {}, False
    if (epoch + 1) % config.eval_every == 0 or epoch + 1 == config.epochs:
        metrics = broadcast(_evaluate(run, run.deployed, run.splits[0]) if run.ranks.main else None)
        state.history.append((epoch, metrics))
        if run.selection.is_better(metrics, state.best_metrics):
            state.best_epoch, state.best_metrics = epoch, metrics
            run.checkpoints.save_best(_payload(run, epoch, metrics))
        stop = run.stopping.update(epoch, metrics)
    step = (epoch + 1) * run.steps
    monitor.epoch(step, run.splits[0], train_means, metrics)
    if config.picture_every and monitor.writer is not None and \
            ((epoch + 1) % config.picture_every == 0 or epoch + 1 == config.epochs):
        monitor.pictures(step, run.family.pictures(run.deployed, run.root, run.splits[0], config.variant, _PICTURES))
    metric = run.selection.metric.name
    best = (metric, state.best_metrics[metric], state.best_epoch) if state.best_metrics else None
    remaining = elapsed / epochs_done * (config.epochs - epoch - 1)
    log.info("%s", epoch_line(epoch, config.epochs, train_means, metrics, best=best, seconds=seconds,
                              remaining=remaining))
    state.epoch, state.step, state.sums = epoch + 1, 0, {}
    state.stopped_early = stop
    run.checkpoints.save_last(_last_payload(run, state))
    run.checkpoints.save_epoch(epoch)


def _evaluate(run: _Run, network: nn.Module, split: str) -> dict[str, float]:
    was_training = network.training
    try:
        with torch.no_grad():
            return run.family.evaluate(network, run.root, split, run.config.variant)
    finally:
        network.train(was_training)


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A module's weights as contiguous CPU tensors (portable whatever the device and memory format)."""
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def _payload(run: _Run, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
    return {**run.base, "epoch": epoch, "metrics": metrics, "model_state_dict": _cpu_state(run.deployed)}


def _last_payload(run: _Run, state: _State) -> dict[str, Any]:
    """``last.pth``: the deployed weights plus everything :func:`_restore` needs."""
    opt = run.optimization
    metrics = state.history[-1][1] if state.history else {}
    payload = {**_payload(run, state.epoch - 1, metrics), **state.to_dict(),
               "optimizer_state_dict": opt.optimizer.state_dict(),
               "scheduler_state_dict": None if opt.scheduler is None else opt.scheduler.state_dict(),
               "scaler_state_dict": run.placement.state_dict(), "early_stopping": run.stopping.state_dict(),
               "rng_state": _rng_state()}
    if run.ema is not None:
        payload["network_state_dict"] = _cpu_state(run.network)
        payload["ema_state_dict"] = run.ema.state_dict()
    return payload


def _final_metrics(run: _Run, state: _State) -> dict[str, float]:
    """The best checkpoint's metrics on the held-out split, or the selection split's when there is none."""
    test_split = run.splits[1]
    if test_split is None or state.best_epoch < 0:
        return state.best_metrics
    metrics = None
    if run.ranks.main:
        _, best = build_from_checkpoint(load_checkpoint(run.out / BEST))
        metrics = _evaluate(run, run.placement.prepare_network(best).eval(), test_split)
    return broadcast(metrics)
