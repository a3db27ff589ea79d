"""Train a model family: ``python -m training.train --family NAME (--data DIR | --synthetic) --out DIR``.

Writes ``DIR/last.pth`` (every epoch, with the optimiser, scheduler and RNG
states for ``--resume``) and ``DIR/best.pth`` (the best epoch so far by the
family's selection metric), both plain dicts. The pipeline is generic: set up,
resume, then per epoch train, evaluate and select, save; finally evaluate the
best checkpoint on the held-out split. Everything family-specific (network,
data, loss, optimiser, metrics, flags) comes from the family's training part.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from runtime.core import InvalidInputError, SdkError
from training._family import DEFAULT_FAMILY, Loss, Optimization, SchedulerInterval, TrainingFamily, \
    family_from_argv, get_training_family, \
    list_training_families
from training.checkpoint import build_from_checkpoint, library_versions, load_checkpoint, save_checkpoint

__all__ = ["BEST", "LAST", "TrainConfig", "TrainResult", "main", "train"]

log = logging.getLogger(__name__)

LAST = "last.pth"
BEST = "best.pth"


@dataclass
class TrainConfig:
    """Every knob of a training run; stored in the checkpoint as ``train_args``.

    Attributes:
        out: folder for ``last.pth`` and ``best.pth`` (and ``data/`` with ``synthetic``).
        family: the model family (a key of ``training.list_training_families()``).
        data: the dataset root, in the family's layout.
        synthetic: synthesise a dataset into ``out/data`` instead (exactly one of ``data`` and this).
        variant: the family's input geometry (None: its default).
        epochs: epochs to train (None: the family's default).
        steps_per_epoch: optimiser steps per epoch (None: one pass over the training samples).
        batch_size: samples per step (None: the family's default).
        lr: base learning rate (None: the family's default).
        seed: seeds the network's initialisation and the training samples.
        eval_every: evaluate (and maybe save ``best.pth``) every N epochs; the last epoch always is.
        threads: torch intra-op threads (None: torch's choice).
        resume: continue from ``out/last.pth`` when it exists.
        progress: show progress bars.
        family_options: the family's typed options (e.g. ``BrnOptions``; None: its defaults).
    """

    out: Path
    family: str = DEFAULT_FAMILY
    data: Path | None = None
    synthetic: bool = False
    variant: str | None = None
    epochs: int | None = None
    steps_per_epoch: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    eval_every: int = 1
    threads: int | None = None
    resume: bool = False
    progress: bool = True
    family_options: Any = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as primitives (what a checkpoint stores as ``train_args``)."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclass
class TrainResult:
    """What :func:`train` wrote and measured."""

    last: Path
    best: Path
    metrics: dict[str, float]
    best_epoch: int
    seconds: float
    losses: list[float] = field(default_factory=list)


@dataclass
class _Run:
    """Everything one run trains with (built by :func:`_set_up`)."""

    config: TrainConfig  # every default resolved
    family: TrainingFamily
    root: Path
    splits: tuple[str, str | None]  # (selects the best epoch, reported at the end)
    steps: int
    network: nn.Module
    ema: AveragedModel | None
    optimization: Optimization
    loss: Loss
    dataset: Dataset
    loader: DataLoader
    base: dict[str, Any]  # the checkpoint keys every save shares

    @property
    def out(self) -> Path:
        return self.config.out

    @property
    def deployed(self) -> nn.Module:
        """The weights that are evaluated and saved: the moving average when the family keeps one."""
        return self.ema.module if self.ema is not None else self.network


@dataclass
class _Progress:
    """Where a run stands; restored by :func:`_resume`."""

    start_epoch: int = 0
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


def train(config: TrainConfig) -> TrainResult:
    """Train a network of ``config.family`` and write ``last.pth`` and ``best.pth`` into ``config.out``.

    Args:
        config: the run's settings (see :class:`TrainConfig`).

    Returns:
        Where the checkpoints are, the metrics of the best one (on the held-out
        split when the dataset has one), its epoch and the per-step losses.

    Raises:
        SdkError: on bad settings (``InvalidInputError``), an unknown family
            (``ModelLoadError``) or a dataset that cannot be read.

    Example:
        >>> from training.families.brn.options import BrnOptions
        >>> train(TrainConfig(out=Path("runs/brn"), synthetic=True, epochs=5,
        ...                   family_options=BrnOptions(base_width=16)))
    """
    run = _set_up(config)
    progress = _resume(run) if run.config.resume else _Progress()
    started = time.perf_counter()
    for epoch in range(progress.start_epoch, run.config.epochs):
        _train_one_epoch(run, epoch, progress.losses)
        metrics = _evaluate_and_select(run, epoch, progress)
        _save_last(run, epoch, metrics, progress)
        if metrics and run.family.should_stop(progress.history, run.config.family_options):
            log.info("stopping early after epoch %d", epoch + 1)
            break
    metrics = _final_metrics(run, progress)
    return TrainResult(run.out / LAST, run.out / BEST, metrics, progress.best_epoch,
                       time.perf_counter() - started, progress.losses)


# -- set-up --------------------------------------------------------------------------------------


def _set_up(config: TrainConfig) -> _Run:
    family = get_training_family(config.family)
    config = _resolve(config, family)
    config.out.mkdir(parents=True, exist_ok=True)
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # nothing draws from torch's generator before the network is built
    root = _dataset_root(config, family)
    steps = config.steps_per_epoch or max(1, math.ceil(family.epoch_length(root, config.variant) / config.batch_size))
    arch = family.arch_from_options(config.family_options)
    network = family.build_network(arch)
    optimization = family.make_optimizer_and_scheduler(network, config.family_options, epochs=config.epochs,
                                                       lr=config.lr)
    dataset = family.train_dataset(root, config.variant, config.family_options, steps * config.batch_size,
                                   config.seed)
    base = {"family": family.name, "variant": config.variant, "arch": arch, "seed": config.seed,
            **family.checkpoint_fields(config.variant, arch), "train_args": config.to_dict(),
            "versions": library_versions()}
    return _Run(config, family, root, family.evaluation_splits(root), steps, network,
                _moving_average(network, optimization.ema_decay), optimization,
                family.make_loss(config.family_options), dataset,
                DataLoader(dataset, batch_size=config.batch_size, shuffle=False, num_workers=0), base)


def _resolve(config: TrainConfig, family: TrainingFamily) -> TrainConfig:
    """``config`` with the family's defaults filled in, checked."""
    defaults = family.defaults
    _check_source(config)
    resolved = dataclasses.replace(
        config, out=Path(config.out), data=None if config.data is None else Path(config.data),
        variant=family.check_variant(config.variant),
        epochs=defaults.epochs if config.epochs is None else config.epochs,
        batch_size=defaults.batch_size if config.batch_size is None else config.batch_size,
        lr=defaults.lr if config.lr is None else config.lr,
        family_options=family.check_options(config.family_options))
    _check_numbers(resolved)
    return resolved


def _check_source(config: TrainConfig) -> None:
    if (config.data is None) == (not config.synthetic):
        raise InvalidInputError("give exactly one of --data DIR or --synthetic")
    if config.data is not None and not Path(config.data).is_dir():
        raise InvalidInputError(f"dataset folder not found: {config.data}; expected a dataset root")


def _check_numbers(config: TrainConfig) -> None:
    for name in ("epochs", "batch_size", "eval_every"):
        if getattr(config, name) < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    for name in ("steps_per_epoch", "threads"):
        value = getattr(config, name)
        if value is not None and value < 1:
            raise InvalidInputError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    if not config.lr > 0:
        raise InvalidInputError(f"--lr must be positive, got {config.lr}")


def _dataset_root(config: TrainConfig, family: TrainingFamily) -> Path:
    """The dataset to train on; with ``synthetic`` one written into ``out/data`` once (atomically)."""
    if config.data is not None:
        return config.data
    root = config.out / "data"
    if not (root.is_dir() and any(root.iterdir())):
        log.info("synthesising a %s dataset in %s", family.name, root)
        family.synthetic_dataset(root, config.variant, config.seed, progress=config.progress)
    return root


def _moving_average(network: nn.Module, decay: float | None) -> AveragedModel | None:
    if decay is None:
        return None
    return AveragedModel(network, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


# -- resume --------------------------------------------------------------------------------------


def _resume(run: _Run) -> _Progress:
    """Restore model, moving average, optimiser, scheduler, RNG and best-so-far from ``last.pth``, if any."""
    path = run.out / LAST
    if not path.is_file():
        return _Progress()
    state = load_checkpoint(path)
    _check_same_run(run, state, path)
    run.network.load_state_dict(state.get("network_state_dict", state["model_state_dict"]))
    if run.ema is not None:
        run.ema.load_state_dict(state["ema_state_dict"])
    run.optimization.optimizer.load_state_dict(state["optimizer_state_dict"])
    if run.optimization.scheduler is not None:
        run.optimization.scheduler.load_state_dict(state["scheduler_state_dict"])
    torch.set_rng_state(state["torch_rng_state"])
    log.info("resuming at epoch %d", state["epoch"] + 2)
    return _Progress(start_epoch=state["epoch"] + 1, best_epoch=state.get("best_epoch", -1),
                     best_metrics=state.get("best_metrics", {}),
                     history=[(epoch, metrics) for epoch, metrics in state.get("history", [])])


def _check_same_run(run: _Run, state: dict[str, Any], path: Path) -> None:
    for key in ("family", "variant", "arch"):
        if state[key] != run.base[key]:
            raise InvalidInputError(f"cannot resume from {path}: it has {key} {state[key]!r}, this run "
                                    f"asks for {run.base[key]!r}; use another --out or the same settings")
    if "optimizer_state_dict" not in state:
        raise InvalidInputError(f"cannot resume from {path}: it holds no optimiser state")


# -- one epoch -----------------------------------------------------------------------------------


def _train_one_epoch(run: _Run, epoch: int, losses: list[float]) -> None:
    run.network.train()
    run.dataset.set_epoch(epoch)
    total_steps = run.config.epochs * run.steps
    bar = tqdm(run.loader, desc=f"epoch {epoch + 1}/{run.config.epochs}", leave=False, dynamic_ncols=True,
               disable=None if run.config.progress else True)
    for step, (inputs, targets) in enumerate(bar):
        losses.append(_train_step(run, inputs, targets, (epoch * run.steps + step) / total_steps))
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
    if run.optimization.scheduler is not None and run.optimization.interval is SchedulerInterval.EPOCH:
        run.optimization.scheduler.step()


def _train_step(run: _Run, inputs: Any, targets: Any, progress: float) -> float:
    opt = run.optimization
    with torch.autocast("cpu", dtype=opt.autocast_dtype, enabled=opt.autocast_dtype is not None):
        loss = run.loss(run.network(inputs), targets, progress)
    opt.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if opt.grad_clip_norm is not None:
        nn.utils.clip_grad_norm_(run.network.parameters(), opt.grad_clip_norm)
    opt.optimizer.step()
    if run.ema is not None:
        run.ema.update_parameters(run.network)
    if opt.scheduler is not None and opt.interval is SchedulerInterval.STEP:
        opt.scheduler.step()
    return loss.item()


# -- evaluate, select, save ------------------------------------------------------------------------


def _evaluate_and_select(run: _Run, epoch: int, progress: _Progress) -> dict[str, float]:
    """The selection split's metrics on evaluation epochs ({} otherwise); saves ``best.pth`` on improvement."""
    last_epoch = epoch + 1 == run.config.epochs
    if (epoch + 1) % run.config.eval_every and not last_epoch:
        return {}
    metrics = run.family.evaluate(run.deployed, run.root, run.splits[0], run.config.variant)
    log.info("epoch %d: %s", epoch + 1, metrics)
    progress.history.append((epoch, metrics))
    if run.family.is_better(metrics, progress.best_metrics):
        progress.best_epoch, progress.best_metrics = epoch, metrics
        save_checkpoint(run.out / BEST, _payload(run, epoch, metrics))
    return metrics


def _payload(run: _Run, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
    return {**run.base, "epoch": epoch, "metrics": metrics, "model_state_dict": run.deployed.state_dict()}


def _save_last(run: _Run, epoch: int, metrics: dict[str, float], progress: _Progress) -> None:
    """``last.pth``: the deployed weights plus everything :func:`_resume` restores."""
    opt = run.optimization
    state = {**_payload(run, epoch, metrics), "optimizer_state_dict": opt.optimizer.state_dict(),
             "scheduler_state_dict": None if opt.scheduler is None else opt.scheduler.state_dict(),
             "torch_rng_state": torch.get_rng_state(), "best_epoch": progress.best_epoch,
             "best_metrics": progress.best_metrics, "history": [[e, m] for e, m in progress.history]}
    if run.ema is not None:
        state["network_state_dict"] = run.network.state_dict()
        state["ema_state_dict"] = run.ema.state_dict()
    save_checkpoint(run.out / LAST, state)


# -- final evaluation --------------------------------------------------------------------------------


def _final_metrics(run: _Run, progress: _Progress) -> dict[str, float]:
    """The best checkpoint's metrics on the held-out split, or the selection split's when there is none."""
    test_split = run.splits[1]
    if test_split is None or not (run.out / BEST).is_file():
        return progress.best_metrics
    _, best = build_from_checkpoint(load_checkpoint(run.out / BEST))
    return run.family.evaluate(best, run.root, test_split, run.config.variant)


def _plain(value: Any) -> Any:
    """``value`` as primitives that ``torch.load(weights_only=True)`` accepts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


# -- command line ------------------------------------------------------------------------------------


def _parser(family: TrainingFamily) -> argparse.ArgumentParser:
    d = family.defaults
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0])
    p.add_argument("--family", default=family.name, choices=list_training_families(),
                   help="model family (default brn); its own flags are listed below")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--data", type=Path, help="dataset root in the family's layout")
    src.add_argument("--synthetic", action="store_true", help="synthesise a dataset into OUT/data first")
    p.add_argument("--out", type=Path, required=True, help="folder for last.pth and best.pth")
    p.add_argument("--variant", *family.variant_flags, dest="variant", default=None, choices=family.variants(),
                   help=f"input geometry of {family.name} (default {family.variants()[0]})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the training samples")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    p.add_argument("--lr", type=float, default=d.lr, help=f"base learning rate (default {d.lr:g})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--eval-every", type=int, default=1, help="evaluate (and maybe save best.pth) every N epochs")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pth")
    p.add_argument("--no-progress", action="store_true")
    family.add_arguments(p)
    return p


def _config_from_args(args: argparse.Namespace, family: TrainingFamily) -> TrainConfig:
    return TrainConfig(
        out=args.out, family=family.name, data=args.data, synthetic=args.synthetic, variant=args.variant,
        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, batch_size=args.batch_size, lr=args.lr,
        seed=args.seed, eval_every=args.eval_every, threads=args.threads, resume=args.resume,
        progress=not args.no_progress, family_options=family.options_from_args(args))


def _print_summary(result: TrainResult, config: TrainConfig) -> None:
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in result.metrics.items())
    print(f"trained in {result.seconds:.0f} s; best epoch {result.best_epoch + 1}: {metrics or 'not evaluated'}")
    print(f"checkpoints: {result.best} (best), {result.last} (last)")
    print(f"next: python -m export.build --checkpoint {result.best} --out {Path(config.out) / 'bundle'}")


def main(argv: list[str] | None = None) -> int:
    """Command-line front end of :func:`train`; returns the exit status (2 on bad usage)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        family = family_from_argv(argv)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = _parser(family).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = _config_from_args(args, family)
        result = train(config)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_summary(result, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
