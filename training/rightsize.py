"""``python -m training.rightsize``: distil a model into thinner students and recommend the fastest that keeps its accuracy.

    python -m training.rightsize --teacher runs/brn/best.pth --data data/brn --widths 8,16,32 --out rightsize

For each width: train a student by distillation from the teacher (the family's
distillation loss: the teacher's outputs as soft targets beside the ground
truth), export it, then evaluate the teacher's and every student's bundle per
backend x precision on the family's evaluation split (the family's metrics, and
agreement with the teacher's FP32 results at the manifest's threshold), time
them all side by side on this machine, and write into OUT:

* ``report.md``: the table, the rule, the recommendation and the command that runs it;
* ``rightsize.json``: the same rows for programs;
* ``pareto.png``: the main metric against latency, the Pareto front and the recommendation;
* ``teacher/bundle``, ``w<width>/run`` (the student's training run) and ``w<width>/bundle``.

The recommendation: the fastest bundle whose main metric (the family's selection
metric: brn pixel AUROC, lhrnet hit@5px) is at most ``--max-metric-drop`` below the
teacher's FP32 and whose decisions agree with the teacher's on at least
``--min-agreement`` of the images; the teacher itself when no student qualifies.

The students' recipe: the teacher's epochs, steps, batch size and learning rate
(each overridable) and the family's options given here (``--help`` lists them; the
family's defaults otherwise) at each width. The folder is built aside and renamed
into place: an interrupted run leaves nothing. Exit codes: 0 written; 1 a step
failed; 2 bad usage (found before anything runs); 130 interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime.core import InvalidInputError, SdkError, atomic_write, publish_folder
from training._config import TrainConfig
from training._family import TrainingFamily, family_from_argv, get_training_family
from training.checkpoint import load_checkpoint

log = logging.getLogger("training.rightsize")

REPORT, TABLE, PLOT = "report.md", "rightsize.json", "pareto.png"


@dataclasses.dataclass(frozen=True)
class Row:
    """One bundle x backend x precision: its accuracy against the teacher and its latency here."""

    name: str  # "teacher" or "w<width>"
    width: int
    backend: str
    precision: str
    bundle: str
    metric: float  # the family's selection metric on the split
    drop: float  # how much worse than the teacher's FP32 (positive: worse)
    agreement: float  # decision agreement with the teacher's FP32 results
    ms: float  # median latency per image, batch 1, timed side by side with every other row
    metrics: dict[str, float]


def recommend(rows: Sequence[Row], *, max_drop: float, min_agreement: float) -> tuple[Row | None, str]:
    """The fastest row within the budget, and the rule in words.

    Args:
        rows: every candidate (the teacher's rows too).
        max_drop: the largest loss of the main metric against the teacher's FP32 allowed.
        min_agreement: the smallest share of decisions agreeing with the teacher's FP32.

    Returns:
        (the recommended row, or None when nothing qualifies; the rule as a sentence).

    Example:
        >>> best, rule = recommend(rows, max_drop=0.005, min_agreement=0.99)
    """
    rule = (f"the fastest bundle whose main metric is at most {max_drop:g} below the teacher's FP32 and whose "
            f"decisions agree with the teacher's on at least {min_agreement:.0%} of the images")
    within = [r for r in rows if r.drop <= max_drop and r.agreement >= min_agreement]
    return min(within, key=lambda r: r.ms, default=None), rule


def _widths(text: str) -> list[int]:
    try:
        widths = [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise InvalidInputError(f"--widths must be comma-separated positive integers such as 8,16,32, got {text!r}")
    if not widths or any(w < 1 for w in widths):
        raise InvalidInputError(f"--widths must be comma-separated positive integers such as 8,16,32, got {text!r}")
    return list(dict.fromkeys(widths))


def _parser(family: TrainingFamily) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m training.rightsize", description=__doc__.splitlines()[0])
    p.add_argument("--teacher", type=Path, required=True, help="the trained model's checkpoint (best.pth)")
    p.add_argument("--data", type=Path, required=True, help="its dataset root (the family's layout)")
    p.add_argument("--widths", required=True, help="student widths, e.g. 8,16,32 (brn: base width; lhrnet: the "
                                                   "first branch's channels, the rest scaled alike)")
    p.add_argument("--out", type=Path, required=True, help="folder for the runs, bundles and report")
    p.add_argument("--epochs", type=int, default=None, help="student epochs (default: the teacher's)")
    p.add_argument("--steps-per-epoch", type=int, default=None, help="default: the teacher's")
    p.add_argument("--batch-size", type=int, default=None, help="default: the teacher's")
    p.add_argument("--lr", type=float, default=None, help="default: the teacher's")
    p.add_argument("--distill-weight", type=float, default=0.5, help="the teacher's share of the objective (0..1)")
    p.add_argument("--device", default="auto", help="training device: auto (CUDA when present), cpu, cuda:N")
    p.add_argument("--backends", default="onnxruntime,openvino", help="comma list (those installed are used)")
    p.add_argument("--precisions", default="fp32,int8", help="comma list of fp32, fp16, int8")
    p.add_argument("--split", default=None, help="labelled split (default: the family's evaluation split)")
    p.add_argument("--max-metric-drop", "--max-auroc-drop", dest="max_drop", type=float, default=0.005,
                   help="the largest loss of the family's main metric against the teacher (default 0.005)")
    p.add_argument("--min-agreement", type=float, default=0.99,
                   help="the smallest share of decisions agreeing with the teacher's (default 0.99)")
    p.add_argument("--rounds", type=int, default=5, help="timed runs per bundle, interleaved (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an OUT that is not empty")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--family", default=family.name, help=argparse.SUPPRESS)
    family.add_arguments(p)
    return p


@dataclasses.dataclass
class _Plan:
    family: TrainingFamily
    teacher: Path
    variant: str
    data: Path
    split: str
    widths: list[int]
    students: dict[int, Any]  # width -> family options
    recipe: dict[str, Any]  # epochs, steps_per_epoch, batch_size, lr
    backends: list[str]
    precisions: list[str]


def _plan(args: argparse.Namespace, family: TrainingFamily) -> _Plan:
    from runtime._backends import is_available
    from runtime._options import Backend, Precision, parse_enum

    checkpoint = load_checkpoint(args.teacher)
    if checkpoint["family"] != family.name:
        raise InvalidInputError(f"--teacher {args.teacher} is a {checkpoint['family']!r} model; pass --family "
                                f"{checkpoint['family']} before the family's options")
    family.distillation_loss(family.default_options(), args.distill_weight)  # raises for a family without one
    if not args.data.is_dir():
        raise InvalidInputError(f"dataset folder not found: {args.data}")
    options = family.options_from_args(args)
    widths = _widths(args.widths)
    students = {w: family.student_options(options, w) for w in widths}
    teacher_args = checkpoint.get("train_args", {})
    recipe = {key: getattr(args, key) if getattr(args, key) is not None else teacher_args.get(key)
              for key in ("epochs", "steps_per_epoch", "batch_size", "lr")}
    backends = [parse_enum(Backend, b, "backend").value for b in args.backends.split(",") if b.strip()]
    backends = [b for b in backends if is_available(Backend(b))]
    precisions = [parse_enum(Precision, p, "precision").value for p in args.precisions.split(",") if p.strip()]
    if not backends or not precisions or "auto" in precisions or "auto" in backends:
        raise InvalidInputError("--backends and --precisions need installed backends and named precisions")
    if not 0 <= args.min_agreement <= 1 or not args.max_drop >= 0 or args.rounds < 1:
        raise InvalidInputError("--min-agreement must be in 0..1, --max-metric-drop >= 0 and --rounds >= 1")
    split = args.split or family.runtime.evaluation_split
    family.runtime.labelled_images(args.data, split)  # a missing split is bad usage, found now
    return _Plan(family, args.teacher, checkpoint["variant"], args.data, split, widths, students, recipe, backends,
                 precisions)


def _train_student(plan: _Plan, width: int, out: Path, args: argparse.Namespace) -> Path:
    from training._engine import train

    recipe = {k: v for k, v in plan.recipe.items() if v is not None}
    epochs = recipe.get("epochs") or 1
    config = TrainConfig(out=out, family=plan.family.name, data=plan.data, variant=plan.variant, seed=args.seed,
                         device=args.device, teacher=plan.teacher, distill_weight=args.distill_weight,
                         eval_every=max(1, epochs // 2), tensorboard=False, progress=not args.no_progress,
                         check_dataset=False, family_options=plan.students[width], **recipe)
    return train(config).best


def _export(checkpoint: Path, out: Path, precisions: list[str], progress: bool) -> Path:
    from export import BuildOptions, build

    return build(BuildOptions(checkpoint=checkpoint, out=out, precisions=tuple(precisions), progress=progress)).bundle


def _evaluate(plan: _Plan, bundles: dict[str, tuple[int, Path]], rounds: int) -> list[Row]:
    """Every bundle x backend x precision on the split, against the teacher's FP32, timed side by side."""
    from runtime import Session
    from runtime._evaluate import _evaluate as evaluate_split
    from runtime._timing import interleaved
    from runtime._tune import sample_image

    runtime = plan.family.runtime
    metric, direction = runtime.selection_metric
    outcomes: dict[tuple[str, str, str], tuple[dict, list]] = {}
    for name, (_, bundle) in bundles.items():
        for backend in plan.backends:
            for precision in plan.precisions:
                outcomes[name, backend, precision] = evaluate_split(
                    bundle, plan.data, split=plan.split, backend=backend, device="cpu", precision=precision,
                    threads=None, options=None, progress=False)
    reference_row, reference = outcomes.get(("teacher", "onnxruntime", "fp32")) or next(
        o for k, o in outcomes.items() if k[0] == "teacher" and k[2] == "fp32")
    sessions = {key: Session(bundles[key[0]][1], backend=key[1], precision=key[2]) for key in outcomes}
    try:
        image = sample_image(next(iter(sessions.values())).manifest)
        timings = interleaved({key: (lambda s=s: s.run(image)) for key, s in sessions.items()}, rounds=rounds)
    finally:
        for session in sessions.values():
            session.close()
    rows = []
    for key, (row, results) in outcomes.items():
        name, backend, precision = key
        drop = reference_row[metric] - row[metric] if direction == "max" else row[metric] - reference_row[metric]
        agreement = runtime.agreement(results, reference)["decision_agreement"]
        metrics = {k: float(v) for k, v in row.items() if isinstance(v, float) and not k.startswith("ms")}
        rows.append(Row(name, bundles[name][0], backend, precision, str(bundles[name][1]), float(row[metric]),
                        float(drop), float(agreement), timings.median(key) * 1e3, metrics))
    return rows


def _pareto(rows: Sequence[Row], direction: str) -> list[Row]:
    """The rows no other row beats on both latency and the main metric, fastest first."""
    better = (lambda a, b: a >= b) if direction == "max" else (lambda a, b: a <= b)
    front, best = [], None
    for row in sorted(rows, key=lambda r: (r.ms, -r.metric if direction == "max" else r.metric)):
        if best is None or (better(row.metric, best) and row.metric != best):
            front.append(row)
            best = row.metric
    return front


def _plot(path: Path, rows: Sequence[Row], front: Sequence[Row], chosen: Row | None, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    names = list(dict.fromkeys(r.name for r in rows))
    colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, len(names)))
    for name, colour in zip(names, colours):
        mine = [r for r in rows if r.name == name]
        ax.scatter([r.ms for r in mine], [r.metric for r in mine], color=colour, label=name, s=40,
                   marker="s" if name == "teacher" else "o")
        for r in mine:
            ax.annotate(f"{r.backend[:4]} {r.precision}", (r.ms, r.metric), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")
    ax.plot([r.ms for r in front], [r.metric for r in front], "k--", lw=1, label="Pareto front")
    if chosen is not None:
        ax.scatter([chosen.ms], [chosen.metric], marker="*", s=300, facecolors="none", edgecolors="red", lw=2,
                   label=f"recommended: {chosen.name} {chosen.backend} {chosen.precision}")
    ax.set_xscale("log")
    ax.set_xlabel("median ms per image, batch 1, this machine (log)")
    ax.set_ylabel(metric)
    ax.set_title("Accuracy against latency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _command(row: Row, final: Path, staging: Path) -> str:
    bundle = str(Path(row.bundle)).replace(str(staging), str(final))
    return f"python -m runtime.infer {bundle} IMAGES --out predictions --backend {row.backend} --precision {row.precision}"


def _write(staging: Path, final: Path, plan: _Plan, rows: list[Row], args: argparse.Namespace) -> Row | None:
    metric, direction = plan.family.runtime.selection_metric
    chosen, rule = recommend(rows, max_drop=args.max_drop, min_agreement=args.min_agreement)
    front = _pareto(rows, direction)
    _plot(staging / PLOT, rows, front, chosen, metric)
    teacher_fp32 = min((r for r in rows if r.name == "teacher" and r.precision == "fp32"), key=lambda r: r.ms)
    lines = [f"# Right-sizing {plan.family.name}: {plan.teacher}", "",
             f"Students distilled from the teacher at widths {plan.widths} on {plan.data} "
             f"({', '.join(f'{k} {v}' for k, v in plan.recipe.items() if v is not None)}, distillation weight "
             f"{args.distill_weight}); every bundle evaluated on the {plan.split!r} split and timed side by side on "
             f"this machine (batch 1, median of {args.rounds} interleaved runs).", "",
             "| bundle | width | backend | precision | " + f"{metric} | drop vs teacher | decisions agree | ms/image "
             "| speed-up vs teacher fp32 | Pareto |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: r.ms):
        mark = " **recommended**" if r is chosen else ""
        lines.append(f"| {r.name}{mark} | {r.width} | {r.backend} | {r.precision} | {r.metric:.4f} | {r.drop:+.4f} | "
                     f"{r.agreement:.3f} | {r.ms:.1f} | {teacher_fp32.ms / r.ms:.2f}x | {'yes' if r in front else ''} |")
    lines += ["", f"Rule: {rule}.", ""]
    if chosen is None:
        lines.append("No bundle stays within the budget: keep the teacher "
                     f"(`{_command(teacher_fp32, final, staging)}`), or loosen the budget.")
    else:
        lines += [f"Recommended: **{chosen.name} {chosen.backend} {chosen.precision}**, {chosen.ms:.1f} ms per "
                  f"image, {teacher_fp32.ms / chosen.ms:.2f}x the teacher's FP32; {metric} {chosen.metric:.4f} "
                  f"({chosen.drop:+.4f}), decisions agree on {chosen.agreement:.1%}.", "",
                  f"    {_command(chosen, final, staging)}"]
    lines += ["", f"![accuracy against latency]({PLOT})", ""]
    atomic_write(staging / REPORT, lambda tmp: Path(tmp).write_text("\n".join(lines) + "\n", encoding="utf-8"))
    table = {"teacher": str(plan.teacher), "metric": metric, "direction": direction, "rule": rule,
             "max_metric_drop": args.max_drop, "min_agreement": args.min_agreement,
             "recommended": None if chosen is None else rows.index(chosen),
             "command": _command(chosen or teacher_fp32, final, staging),
             "rows": [{**dataclasses.asdict(r), "bundle": r.bundle.replace(str(staging), str(final)),
                       "pareto": r in front} for r in rows]}
    atomic_write(staging / TABLE, lambda tmp: Path(tmp).write_text(json.dumps(table, indent=2) + "\n"))
    return chosen


def run(args: argparse.Namespace, plan: _Plan) -> int:
    final = args.out.resolve()
    with publish_folder(final, overwrite=args.force) as staging:
        width = plan.family.network_width(load_checkpoint(plan.teacher)["arch"])
        bundles = {"teacher": (width, _export(plan.teacher, staging / "teacher" / "bundle", plan.precisions,
                                              not args.no_progress))}
        for width in plan.widths:
            print(f"student w{width}: distilling ...", flush=True)
            best = _train_student(plan, width, staging / f"w{width}" / "run", args)
            bundles[f"w{width}"] = (width, _export(best, staging / f"w{width}" / "bundle", plan.precisions,
                                                   not args.no_progress))
        print("evaluating and timing every bundle ...", flush=True)
        rows = _evaluate(plan, bundles, args.rounds)
        _write(staging, final, plan, rows, args)
    print((final / REPORT).read_text().split("\n\n![")[0].split("\n\n", 2)[-1])
    print(f"wrote {final / REPORT}, {final / TABLE}, {final / PLOT}")
    return 0


def _family(argv: list[str]) -> TrainingFamily:
    """The family ``--family`` names, else the teacher checkpoint's (its flags are part of the parser)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--family", default=None)
    pre.add_argument("--teacher", type=Path, default=None)
    known = pre.parse_known_args(argv)[0]
    if known.family is None and known.teacher is not None and known.teacher.is_file():
        return get_training_family(load_checkpoint(known.teacher)["family"])
    return family_from_argv(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("runtime").setLevel(logging.WARNING)  # one line per session opened is noise here
    try:
        family = _family(argv)
        args = _parser(family).parse_args(argv)
        plan = _plan(args, family)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        return run(args, plan)
    except KeyboardInterrupt:
        print(f"interrupted: nothing written to {args.out}", file=sys.stderr)
        return 130
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
