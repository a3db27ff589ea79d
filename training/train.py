"""Train a model family: ``python -m training.train --family NAME (--data DIR | --synthetic) --out DIR``.

Runs on the CPU or a GPU (``--device``), in several processes under
``torchrun --nproc-per-node N -m training.train ...``, with mixed precision
(``--amp``), a moving average of the weights (``--ema-decay``) and early
stopping (``--patience``). Writes into ``--out``: ``last.pth`` (every epoch,
every ``--save-minutes`` and on Ctrl-C or SIGTERM; ``--resume`` continues from
it exactly), ``best.pth`` (by the family's selection metric), ``epoch_XXX.pth``,
``config.yaml`` (``--config`` runs it again; flags override it), ``train.log``
and ``tensorboard/`` (``tensorboard --logdir OUT``). ``--help`` after
``--family NAME`` lists the family's own flags and defaults.

The original project's spellings are accepted too (:data:`ORIGINAL_FLAGS`):
``--bs``, ``--gpu_id N``, ``--training_dataset_path`` (the dataset root or its
``train/good``) and ``--checkpoint_path``; its checkpoints resume with
``--resume THEIRS.pth`` (imported, see ``training.checkpoint``).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from runtime.core import InvalidInputError, ModelLoadError, SdkError
from training._checkpointing import BEST, LAST
from training._config import Amp, TrainConfig, config_from_yaml_text, plain
from training._distributed import Ranks
from training._engine import TrainingInterrupted, TrainResult, train
from training._family import DEFAULT_FAMILY, TrainingFamily, get_training_family, list_training_families

__all__ = ["BEST", "LAST", "TrainConfig", "TrainResult", "TrainingInterrupted", "main", "train"]

# Kept for callers of the earlier module, which converted settings with it.
_plain = plain

#: the original project's flags and what they stand for here (shown by --help; the family adds its own)
ORIGINAL_FLAGS: dict[str, str] = {
    "--bs N": "--batch-size N",
    "--gpu_id N": "--device cuda:N",
    "--training_dataset_path PATH": "--data PATH (PATH may end in train/good: the dataset root is two levels up)",
    "--checkpoint_path DIR": "--out DIR",
}
#: (the original's flag, ours): the same setting, so they cannot both be on a command line
_EXCLUSIVE = (("gpu_id", "device"), ("training_dataset_path", "data"))
#: where the original scripts pointed --training_dataset_path, below the dataset root
_ORIGINAL_TRAINING_FOLDER = ("train", "good")


def _parser(family: TrainingFamily) -> argparse.ArgumentParser:
    d = family.defaults
    p = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.splitlines()[0],
                                epilog="coming from the original scripts: " + "; ".join(
                                    f"{theirs} = {ours}" for theirs, ours in ORIGINAL_FLAGS.items()) +
                                "; --epochs, --lr and --seed are the same")
    p.add_argument("--family", default=family.name, choices=list_training_families(),
                   help=f"model family (default {DEFAULT_FAMILY}); its own flags are listed below")
    p.add_argument("--config", type=Path, metavar="YAML",
                   help="settings from a file (e.g. a run's config.yaml); flags given here override it")
    # Exactly one of the two is checked by TrainConfig, so that a --config file may hold either.
    p.add_argument("--data", type=Path, help="dataset root in the family's layout")
    p.add_argument("--training_dataset_path", type=Path, metavar="PATH",
                   help="the original scripts' --data: the dataset root, or its train/good folder")
    p.add_argument("--synthetic", action="store_true", help="synthesise a dataset into OUT/data first")
    p.add_argument("--check-dataset", action=argparse.BooleanOptionalAction, default=True,
                   help="read every image and label of --data first and stop on errors, as python -m "
                        "training.check_dataset does (default on; --no-check-dataset skips it for a huge dataset)")
    p.add_argument("--out", "--checkpoint_path", dest="out", type=Path,
                   help="folder for the checkpoints, config.yaml, train.log and tensorboard/ (--checkpoint_path: "
                        "the original scripts' spelling)")
    p.add_argument("--variant", *family.variant_flags, dest="variant", default=None, choices=family.variants(),
                   help=f"input geometry of {family.name} (default {family.variants()[0]})")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"default {d.epochs}")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the training samples")
    p.add_argument("--batch-size", "--bs", dest="batch_size", type=int, default=d.batch_size,
                   help=f"samples per optimiser step over every process and micro-batch (default {d.batch_size})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"base learning rate (default {d.lr:g})")
    p.add_argument("--seed", type=int, default=0)

    g = p.add_argument_group("device")
    g.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    g.add_argument("--gpu_id", type=int, metavar="N", help="the original scripts' spelling of --device cuda:N")
    g.add_argument("--amp", default=d.amp, choices=[a.value for a in Amp],
                   help=f"mixed precision; auto = bf16 on a GPU that has it (default {d.amp})")
    g.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=d.channels_last,
                   help="channels-last memory format (default "
                        f"{ {True: 'on', False: 'off', None: 'on CUDA only'}[d.channels_last] })")
    g.add_argument("--workers", type=int, default=None,
                   help="DataLoader worker processes per training process (default: from the core count, at most 4)")
    g.add_argument("--pin-memory", action=argparse.BooleanOptionalAction, default=None,
                   help="page-locked batches (default: on CUDA)")
    g.add_argument("--prefetch", type=int, default=2, help="batches each worker prepares ahead (default 2)")
    g.add_argument("--accumulate", type=int, default=1,
                   help="micro-batches per optimiser step, to fit a batch in memory (default 1)")
    g.add_argument("--threads", type=int, default=None, help="torch intra-op threads")

    g = p.add_argument_group("weights")
    g.add_argument("--grad-clip", type=float, default=d.grad_clip,
                   help=f"clip the gradients' global norm (0: off; default {d.grad_clip:g})")
    g.add_argument("--ema-decay", type=float, default=d.ema_decay,
                   help=f"moving average of the weights, evaluated and saved as best (0: off; default "
                        f"{d.ema_decay:g})")

    g = p.add_argument_group("distillation (python -m training.rightsize trains several students at once)")
    g.add_argument("--teacher", type=Path, default=None, metavar="CHECKPOINT",
                   help="train by distillation from this checkpoint of the same family and variant: its outputs "
                        "on each batch are soft targets beside the ground truth")
    g.add_argument("--distill-weight", type=float, default=0.5,
                   help="the teacher's share of the objective, 0..1 (default 0.5)")

    g = p.add_argument_group("evaluation and early stopping")
    metric, direction = family.selection_metric
    g.add_argument("--eval-every", type=int, default=1, help="evaluate (and maybe save best.pth) every N epochs")
    g.add_argument("--patience", type=int, default=d.patience,
                   help=f"stop after N evaluations without a better {metric} ({direction.value}; 0: never; "
                        f"default {d.patience})")
    g.add_argument("--min-delta", type=float, default=d.min_delta,
                   help=f"the least change of {metric} that counts (default {d.min_delta:g})")
    g.add_argument("--min-epochs", type=int, default=d.min_epochs,
                   help=f"never stop early before N epochs (default {d.min_epochs})")
    g.add_argument("--guard-metric", default=d.guard_metric or "",
                   help=f"a second metric whose clear gain also resets the patience and breaks ties of {metric} "
                        f"('' for none; default {d.guard_metric or 'none'})")
    g.add_argument("--guard-min-delta", type=float, default=d.guard_min_delta,
                   help=f"the least change of the guard metric that counts (default {d.guard_min_delta:g})")

    g = p.add_argument_group("checkpoints")
    g.add_argument("--save-every", type=int, default=d.save_every,
                   help=f"write epoch_XXX.pth every N epochs (0: never; default {d.save_every})")
    g.add_argument("--keep", type=int, default=d.keep, help=f"keep the newest N epoch_XXX.pth (0: all; default {d.keep})")
    g.add_argument("--save-minutes", type=float, default=10.0,
                   help="also write last.pth during an epoch every T minutes (0: off; default 10)")
    g.add_argument("--resume", nargs="?", const=True, default=False, type=Path, metavar="CHECKPOINT",
                   help="continue exactly where OUT/last.pth (or CHECKPOINT) stopped")
    g.add_argument("--stop-after-epochs", type=int, default=None, metavar="N",
                   help="end this invocation after N epochs (a job's time budget); continue with --resume")
    g.add_argument("--force", action="store_true", help="start over in an OUT that holds a run")

    g = p.add_argument_group("reports")
    g.add_argument("--tensorboard", action=argparse.BooleanOptionalAction, default=True,
                   help="TensorBoard event files in OUT/tensorboard (default on)")
    g.add_argument("--picture-every", type=int, default=d.picture_every,
                   help=f"the family's pictures in TensorBoard every N epochs (0: never; default {d.picture_every})")
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="a progress bar on a terminal (default on)")
    g.add_argument("--report", action=argparse.BooleanOptionalAction, default=True,
                   help="at the end, OUT/report/report.md: curves, best metrics and the family's analysis of the "
                        "best network (python -m training.report; default on)")
    family.add_arguments(p)
    return p


def _config_from_args(args: argparse.Namespace, family: TrainingFamily) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)} - {"family", "family_options"}
    values = {name: getattr(args, name) for name in names if hasattr(args, name)}
    values.update(_original_flags(args))
    if values["out"] is None:
        raise InvalidInputError("--out is required (on the command line or in the --config file)")
    return TrainConfig(family=family.name, family_options=family.options_from_args(args), **values)


def _original_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the original scripts' flags give (``--gpu_id``, ``--training_dataset_path``); they win.

    Raises:
        InvalidInputError: a negative ``--gpu_id``.
    """
    values: dict[str, Any] = {}
    if getattr(args, "gpu_id", None) is not None:
        if args.gpu_id < 0:
            raise InvalidInputError(f"--gpu_id must be an integer >= 0, got {args.gpu_id}")
        values["device"] = f"cuda:{args.gpu_id}"
    path = getattr(args, "training_dataset_path", None)
    if path is not None:
        values["data"] = path
        if Path(path).parts[-2:] == _ORIGINAL_TRAINING_FOLDER:
            values["data"] = Path(path).parent.parent
            logging.getLogger("training.train").info(
                "--training_dataset_path %s is the training folder of a dataset: training on its root %s",
                path, values["data"])
    return values


def _refuse_repeated_settings(parser: argparse.ArgumentParser, argv: list[str]) -> None:
    """An original flag and ours for the same setting may not both be on the command line.

    A ``--config`` file's value is overridden by either.

    Raises:
        InvalidInputError: e.g. ``--gpu_id`` with ``--device``.
    """
    unset = object()
    dests = [dest for pair in _EXCLUSIVE for dest in pair]
    # argparse leaves attributes already in the namespace alone when a flag is absent, so
    # what is still ``unset`` was not given, whatever its spelling or abbreviation.
    given = parser.parse_args(argv, namespace=argparse.Namespace(**dict.fromkeys(dests, unset)))
    flags = {a.dest: a.option_strings[0] for a in parser._actions if a.dest in dests}
    for theirs, ours in _EXCLUSIVE:
        if getattr(given, theirs) is not unset and getattr(given, ours) is not unset:
            raise InvalidInputError(f"{flags[theirs]} and {flags[ours]} set the same thing; give only one "
                                    f"({flags[theirs]} is the original scripts' spelling)")


# -- --config ------------------------------------------------------------------------------------------


def _family_and_config(argv: list[str]) -> tuple[TrainingFamily, dict[str, Any], str | None]:
    """The family (``--family``, else the config file's, else the default) and the config file's settings."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--family")
    pre.add_argument("--config", type=Path)
    known, _ = pre.parse_known_args(argv)
    values: dict[str, Any] = {}
    if known.config is not None:
        if not known.config.is_file():
            raise InvalidInputError(f"--config {known.config}: file not found; expected a YAML file such as a "
                                    f"run's config.yaml")
        values = config_from_yaml_text(known.config.read_text(encoding="utf-8"), str(known.config))
    name = known.family or values.get("family") or DEFAULT_FAMILY
    return get_training_family(str(name)), values, None if known.config is None else str(known.config)


def _config_arguments(parser: argparse.ArgumentParser, family: TrainingFamily, values: dict[str, Any],
                      argv: list[str], source: str) -> list[str]:
    """The config file's settings as command-line arguments, to go before ``argv`` (which then overrides them).

    Going through the parser gives file values the same conversions and checks as flags.
    """
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    family_section = values.get(family.name, {})
    if not isinstance(family_section, dict):
        raise InvalidInputError(f"--config {source}: {family.name!r} must be a mapping of the family's options")
    settings = {k: v for k, v in values.items() if k not in ("family", family.name)}
    if any(a.split("=")[0] in ("--data", "--synthetic", "--training_dataset_path") for a in argv):
        settings.pop("data", None)  # the command line names the dataset
        settings.pop("synthetic", None)
    arguments: list[str] = []
    for key, value in {**settings, **family_section}.items():
        if key not in actions:
            raise InvalidInputError(f"--config {source}: unknown setting {key!r}; expected flags of "
                                    f"python -m training.train --family {family.name} spelled with '_'")
        arguments += _as_arguments(actions[key], value)
    return arguments


def _as_arguments(action: argparse.Action, value: Any) -> list[str]:
    flag = action.option_strings[0]
    if value is None:
        return []
    if isinstance(action, argparse.BooleanOptionalAction):
        return [flag if value else "--no-" + flag[2:]]
    if isinstance(action, argparse._StoreTrueAction):
        return [flag] if value else []
    if isinstance(value, list):
        return [flag, *map(str, value)]
    return [flag, str(value)]


# -- main --------------------------------------------------------------------------------------------------


def _print_summary(result: TrainResult, config: TrainConfig) -> None:
    metrics = ", ".join(f"{name} {value:.4f}" for name, value in result.metrics.items())
    ended = " (stopped early)" if result.stopped_early else ""
    print(f"trained {result.epochs_done} epoch(s) in {result.seconds:.0f} s{ended}; best epoch "
          f"{result.best_epoch + 1}: {metrics or 'not evaluated'}")
    print(f"checkpoints: {result.best} (best), {result.last} (last); log: {Path(config.out) / 'train.log'}")
    print(f"next: python -m export.build --checkpoint {result.best} --out {Path(config.out) / 'bundle'}")


def main(argv: list[str] | None = None) -> int:
    """Command-line front end of :func:`train`.

    Returns:
        0 on success, 2 on bad usage, 1 when training itself fails, 128 + the
        signal's number after SIGINT or SIGTERM (``last.pth`` written).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        family, values, source = _family_and_config(argv)
        parser = _parser(family)
        arguments = _config_arguments(parser, family, values, argv, source) if source else []
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(arguments + argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        _refuse_repeated_settings(parser, argv)
        config = _config_from_args(args, family)
        with logging_redirect_tqdm():
            result = train(config)
    except TrainingInterrupted as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except (InvalidInputError, ModelLoadError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if Ranks.from_environment().main:
        if args.report:
            try:
                from training.report import write_report

                print(f"report: {write_report(config.out, device=config.device)}")
            except Exception as exc:  # the checkpoints are written; a missing report must not fail the run
                logging.getLogger("training.train").warning("no report written (python -m training.report "
                                                            "%s writes it): %s", config.out, exc)
        _print_summary(result, config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
