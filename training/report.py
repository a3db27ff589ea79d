"""A report of a training run: ``python -m training.report RUN`` writes ``RUN/report/report.md`` and its figures.

The report holds the run's settings, its best epoch and metrics, the training
curves (loss per epoch, every evaluation metric, the learning rate per step
from TensorBoard or per epoch from ``train.log``) and the sections the family
adds about the best network on a labelled split (:meth:`TrainingFamily.report_sections`:
brn's AUROC, score histogram and worst cases; a keypoint family's error
histograms and tables). ``python -m training.train`` writes it at the end of a
run (``--no-report`` skips it).
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from runtime.core import InvalidInputError, ModelLoadError, SdkError, atomic_write
from training._checkpointing import BEST, LAST
from training._family import Direction, ReportSection, TrainingFamily, get_training_family
from training._monitor import LOG_FILE, TENSORBOARD_DIR
from training._reporting import epoch_axis, figure, markdown_table, save_figure
from training.checkpoint import load_checkpoint

__all__ = ["REPORT_DIR", "REPORT_FILE", "main", "write_report"]

log = logging.getLogger("training.report")

#: the report's folder inside a run, and its file
REPORT_DIR = "report"
REPORT_FILE = "report.md"

#: the most epoch ends marked on the per-step learning rate (more would grey the whole plot)
_EPOCH_MARKS = 60
#: one epoch line of train.log: ``... epoch 3/30  loss 0.0412  lr 1.00e-03 ...``
_EPOCH_LINE = re.compile(r"\bepoch (\d+)/\d+\s.*?\blr (\S+)")


def write_report(run_dir: str | Path, *, data: str | Path | None = None, split: str | None = None,
                 out: str | Path | None = None, device: str = "auto",
                 family: TrainingFamily | None = None) -> Path:
    """Write the report of the training run in ``run_dir``: ``report.md`` and its PNG figures.

    Args:
        run_dir: a run folder of ``python -m training.train`` (holds ``last.pth``).
        data: the dataset of the family's sections (None: the run's own, from its
            settings, or ``RUN/data`` for a ``--synthetic`` run).
        split: the labelled split of the family's sections (None: the split the run selected on).
        out: the report's folder (None: ``RUN/report``).
        device: where the family's sections run the network: ``auto`` (CUDA when present),
            ``cpu``, ``cuda`` or ``cuda:N``.
        family: the training part to report with (None: the one the checkpoint names; given
            for a family that is not registered yet).

    Returns:
        The path of ``report.md``.

    Raises:
        InvalidInputError: no run in ``run_dir``, a ``data`` folder or ``split`` that does not exist, an
            unknown or unavailable ``device``.
        ModelLoadError: an unreadable checkpoint, or one of another family than ``family``.
        ImportError: matplotlib is missing.

    Example:
        >>> write_report("runs/brn")
        PosixPath('runs/brn/report/report.md')
    """
    run_dir = Path(run_dir)
    if not (run_dir / LAST).is_file():
        raise InvalidInputError(f"{run_dir} holds no training run: {run_dir / LAST} not found; expected the --out "
                                f"folder of python -m training.train")
    if data is not None and not Path(data).is_dir():
        raise InvalidInputError(f"--data {data}: dataset folder not found; expected a dataset root")
    target = _device(device)
    last = _load(run_dir / LAST, family)
    family = family or get_training_family(last["family"])
    best = _load(run_dir / BEST, family) if (run_dir / BEST).is_file() else None
    out = Path(out) if out is not None else run_dir / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)

    curves, notes = _curves(run_dir, last, family, out)
    sections = _family_sections(run_dir, last, best, family, data, split, target, out)
    text = _markdown(run_dir, last, best, family, curves, notes, sections, out)
    path = atomic_write(out / REPORT_FILE, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    log.info("wrote %s", path)
    return path


# -- reading the run --------------------------------------------------------------------------------------


def _load(path: Path, family: TrainingFamily | None) -> dict[str, Any]:
    """The checkpoint at ``path``, validated by the registry (or, for an explicit ``family``, read directly)."""
    if family is None:
        return load_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict) or checkpoint.get("family") != family.name:
        found = checkpoint.get("family") if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ModelLoadError(f"checkpoint {path} is not a {family.name} checkpoint (family {found!r})")
    return checkpoint


def _network(checkpoint: dict[str, Any], family: TrainingFamily, device: torch.device) -> torch.nn.Module:
    network = family.build_network(checkpoint["arch"])
    try:
        network.load_state_dict(checkpoint["model_state_dict"])
    except (RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"the checkpoint's weights do not fit its {family.name} network: {exc}") from exc
    return network.to(device).eval()


def _device(name: str) -> torch.device:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", name):
        raise InvalidInputError(f"--device must be auto, cpu, cuda or cuda:N, got {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InvalidInputError(f"--device {name}: CUDA is not available on this machine; use --device cpu")
    return torch.device(name)


def _dataset(run_dir: Path, last: dict[str, Any], data: str | Path | None) -> Path | None:
    """The dataset of the family's sections: ``data``, else the run's (None when it is gone)."""
    if data is not None:
        return Path(data)
    args = last.get("train_args", {})
    root = run_dir / "data" if args.get("synthetic") or not args.get("data") else Path(args["data"])
    return root if root.is_dir() else None


def _steps(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """The run's TensorBoard scalars ``train/lr`` and ``epoch/loss`` as (step, value) ({} without event files)."""
    folder = run_dir / TENSORBOARD_DIR
    if not folder.is_dir():
        return {}
    try:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    except ImportError:
        log.warning("tensorboard is not installed: the learning rate comes from %s", LOG_FILE)
        return {}
    chatty, level = logging.getLogger("tensorboard"), logging.getLogger("tensorboard").level
    chatty.setLevel(logging.WARNING)  # its directory watcher logs each event file it reads, at INFO
    try:
        events = EventAccumulator(str(folder), size_guidance={"scalars": 0}).Reload()
    finally:
        chatty.setLevel(level)
    tags = set(events.Tags().get("scalars", []))
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in ("train/lr", "epoch/loss") if tag in tags}


def _logged_rates(run_dir: Path) -> list[tuple[int, float]]:
    """(epoch, mean rate) from the epoch lines of ``train.log`` (the latest line of an epoch run twice)."""
    path = run_dir / LOG_FILE
    if not path.is_file():
        return []
    rates: dict[int, float] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _EPOCH_LINE.search(line)
        if match:
            try:
                rates[int(match.group(1))] = float(match.group(2))
            except ValueError:
                continue
    return sorted(rates.items())


# -- figures ----------------------------------------------------------------------------------------------


def _curves(run_dir: Path, last: dict[str, Any], family: TrainingFamily,
            out: Path) -> tuple[list[tuple[str, Path]], list[str]]:
    """The training curves as PNGs in ``out``: (caption, path) of each and notes on what is missing."""
    curves, notes = [], []
    losses = [(int(e), float(v)) for e, v in last.get("epoch_losses", [])]
    if losses:
        fig, (ax,) = figure()
        ax.plot([e + 1 for e, _ in losses], [v for _, v in losses], "o-", markersize=3)
        ax.set(title="training loss (epoch mean)", ylabel="loss")
        epoch_axis(ax)
        if all(v > 0 for _, v in losses) and max(v for _, v in losses) > 10 * min(v for _, v in losses):
            ax.set_yscale("log")
        curves.append(("Training loss per epoch", save_figure(fig, out / "loss.png")))
    else:
        notes.append("No epoch finished yet: no loss curve.")

    history = [(int(e), m) for e, m in last.get("history", [])]
    names = list(dict.fromkeys(name for _, metrics in history for name in metrics))
    if names:
        best_epoch = last.get("best_epoch", -1)
        fig, axes = figure(len(names), columns=min(3, len(names)), size=(4.5, 3.0))
        for ax, name in zip(axes, names):
            points = [(e + 1, m[name]) for e, m in history if name in m]
            ax.plot([x for x, _ in points], [y for _, y in points], "o-", markersize=3)
            if best_epoch >= 0:
                ax.axvline(best_epoch + 1, color="tab:green", linestyle="--", linewidth=1)
            ax.set_title(f"{name} ({_better(family, name)})")
            epoch_axis(ax)
        curves.append(("Evaluation metrics (dashed: the best epoch)", save_figure(fig, out / "metrics.png")))
    else:
        notes.append("The run has not been evaluated yet: no metric curves.")

    steps = _steps(run_dir)
    rates = steps.get("train/lr", [])
    if rates:
        fig, (ax,) = figure()
        ax.plot([s for s, _ in rates], [v for _, v in rates], linewidth=1, drawstyle="steps-post")
        ends = steps.get("epoch/loss", [])
        marked = 0 < len(ends) <= _EPOCH_MARKS
        for step, _ in ends if marked else []:
            ax.axvline(step, color="0.85", linewidth=0.6, zorder=0)
        title = "learning rate per optimiser step" + (" (grey: epoch ends)" if marked else "")
        ax.set(title=title, xlabel="optimiser step", ylabel="learning rate")
        _log_scale(ax, [v for _, v in rates])
        curves.append(("Learning rate per step (TensorBoard)", save_figure(fig, out / "lr.png")))
    elif logged := _logged_rates(run_dir):
        fig, (ax,) = figure()
        ax.plot([e for e, _ in logged], [v for _, v in logged], "o-", markersize=3)
        ax.set(title="learning rate (epoch mean, from train.log)", ylabel="learning rate")
        epoch_axis(ax)
        _log_scale(ax, [v for _, v in logged])
        curves.append(("Learning rate per epoch (train.log)", save_figure(fig, out / "lr.png")))
        notes.append("No TensorBoard event files: the learning rate is the epoch mean from train.log.")
    else:
        notes.append("No TensorBoard event files or train.log epoch lines: no learning-rate curve.")
    return curves, notes


def _log_scale(ax: Any, values: Sequence[float]) -> None:
    if all(v > 0 for v in values):
        ax.set_yscale("log")


def _better(family: TrainingFamily, name: str) -> str:
    try:
        return "higher is better" if family.metric_direction(name) is Direction.MAX else "lower is better"
    except InvalidInputError:
        return "direction unknown"


# -- the family's sections --------------------------------------------------------------------------------


def _family_sections(run_dir: Path, last: dict[str, Any], best: dict[str, Any] | None, family: TrainingFamily,
                     data: str | Path | None, split: str | None, device: torch.device,
                     out: Path) -> list[ReportSection]:
    root = _dataset(run_dir, last, data)
    if root is None:
        where = last.get("train_args", {}).get("data") or run_dir / "data"
        note = f"The run's dataset ({where}) is not there any more; pass `--data DATASET` for these sections."
        log.warning("no %s sections in the report: dataset %s not found", family.name, where)
        return [ReportSection("Analysis of the best network", note)]
    split = split or family.evaluation_splits(root)[0]
    checkpoint = best if best is not None else last
    variant = checkpoint.get("variant") or family.variant_of(checkpoint)
    network = _network(checkpoint, family, device)
    log.info("analysing %s on %s/%s", BEST if best is not None else LAST, root, split)
    with torch.no_grad():
        sections = family.report_sections(network, root, split, variant, out)
    source = (f"The {'best' if best is not None else 'last'} weights ({BEST if best is not None else LAST}, epoch "
              f"{int(checkpoint.get('epoch', -1)) + 1}) on split `{split}` of `{root}`.")
    return [ReportSection(s.title, f"{source}\n\n{s.markdown}" if i == 0 else s.markdown, s.images)
            for i, s in enumerate(sections)]


# -- markdown ---------------------------------------------------------------------------------------------


def _markdown(run_dir: Path, last: dict[str, Any], best: dict[str, Any] | None, family: TrainingFamily,
              curves: list[tuple[str, Path]], notes: list[str], sections: list[ReportSection], out: Path) -> str:
    args = dict(last.get("train_args", {}))
    done = int(last.get("position", {}).get("epoch", int(last.get("epoch", -1)) + 1))
    ended = " (stopped early)" if last.get("stopped_early") else ""
    stamp = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    lines = [f"# Training report: {family.name} run `{run_dir}`", "",
             f"Family **{family.name}**, variant `{last.get('variant')}`, {done} of {args.get('epochs', '?')} "
             f"epoch(s) done{ended}. Written {stamp} by `python -m training.report`.", ""]

    lines += ["## Settings", "", markdown_table(["setting", "value"], _settings(args)), ""]
    lines += ["## Best epoch", ""]
    metric = family.selection_metric[0]
    best_epoch = int(last.get("best_epoch", -1))
    best_metrics = last.get("best_metrics") or (best or {}).get("metrics") or {}
    if best_epoch >= 0 and best_metrics:
        final = last["history"][-1] if last.get("history") else None
        lines += [f"Epoch **{best_epoch + 1}**, selected by `{metric}` ({_better(family, metric)}); its weights are "
                  f"`{BEST}`.", ""]
        header = ["metric", f"best (epoch {best_epoch + 1})"]
        rows = [[name, float(value)] for name, value in best_metrics.items()]
        if final is not None and int(final[0]) != best_epoch:
            header.append(f"last (epoch {int(final[0]) + 1})")
            rows = [row + [float(final[1][row[0]]) if row[0] in final[1] else "-"] for row in rows]
        lines += [markdown_table(header, rows), ""]
    else:
        lines += ["Not evaluated yet: no best epoch.", ""]

    lines += ["## Training curves", ""]
    for caption, path in curves:
        lines += [f"**{caption}**", "", f"![{caption}]({_link(path, out)})", ""]
    lines += [f"_{note}_\n" for note in notes]

    for section in sections:
        lines += [f"## {section.title}", "", section.markdown.lstrip("\n").rstrip(), ""]
        for image in section.images:
            lines += [f"![{Path(image).stem}]({_link(Path(image), out)})", ""]
    return "\n".join(lines).rstrip() + "\n"


def _settings(args: dict[str, Any]) -> list[list[str]]:
    options = args.pop("family_options", None) or {}
    family = args.get("family", "family")
    rows = [[name, _value(value)] for name, value in args.items()]
    return rows + [[f"{family}.{name}", _value(value)] for name, value in options.items()]


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_value(v) for v in value)
    return "-" if value is None or value == "" else str(value)


def _link(path: Path, out: Path) -> str:
    """``path`` relative to the report's folder, with ``/`` separators and spaces escaped."""
    return Path(os.path.relpath(path, out)).as_posix().replace(" ", "%20")


# -- command line -----------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.report", description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a run folder of python -m training.train (holds last.pth)")
    p.add_argument("--data", type=Path, default=None,
                   help="dataset of the family's sections (default: the run's own, or RUN/data for --synthetic)")
    p.add_argument("--split", default=None, help="labelled split to analyse (default: the one the run selected on)")
    p.add_argument("--out", type=Path, default=None, help="the report's folder (default RUN/report)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line front end of :func:`write_report`.

    Returns:
        0 when the report is written, 2 for a folder without a run, a bad argument or a missing package.
    """
    args = _parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("training").setLevel(logging.INFO)  # this SDK's progress, not its libraries' chatter
    try:
        path = write_report(args.run, data=args.data, split=args.split, out=args.out, device=args.device)
    except (SdkError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"report: {path} (open it in a markdown viewer; the figures sit beside it)")
    if (args.run / BEST).is_file():
        print(f"next: python -m export.build --checkpoint {args.run / BEST} --out {args.run / 'bundle'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
