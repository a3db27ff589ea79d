"""``runtime.evaluate`` and ``python -m runtime.evaluate``: the family's metrics and the latency of a bundle on a labelled split.

    python -m runtime.evaluate bundles/brn data/brn --backends onnxruntime,openvino --precisions fp32,fp16,int8

prints one row per backend x precision (skipping, with a note, what is not
installed or not in the bundle): the family's metrics, how each row's results
agree with the reference row's (ONNX Runtime FP32) on the same images at the
manifest's threshold (brn: image decisions, pixel F1 of the masks, score shifts;
lhrnet: points found alike, point and angle shifts), the latency, and which row
``backend="auto", precision="auto"`` runs on this machine, with the reason.

Exit codes: 0 every combination ran; 1 a combination failed or none could run;
2 bad usage, a model that cannot be read, a dataset without the split or a ``--json``
path that cannot be written, detected before anything is evaluated; 130 interrupted
(Ctrl-C): the table (and ``--json``) of the combinations measured so far is still written.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from runtime._backends import is_available
from runtime._choice import decide, explain
from runtime._errors import BackendError, InvalidInputError, SdkError
from runtime._imageio import atomic_write, check_output_file
from runtime._options import Backend, Precision, SessionOptions, parse_enum, trim
from runtime._preprocess import read_source
from runtime._registry import get_family
from runtime._session import PathLike, Session, _ModelSource

log = logging.getLogger(__name__)


def evaluate(model: PathLike | Session, dataset_root: PathLike, *, split: str | None = None,
             backend: str | Backend = "auto", device: str = "auto", precision: str | Precision = "auto",
             threads: int | None = None, options: SessionOptions | None = None,
             progress: bool = False) -> dict[str, Any]:
    """The family's task metrics of a model on a labelled split, and its latency per image.

    Images are read first and then timed one at a time (batch 1, after one untimed
    warm-up run), so ``ms_*`` is the inference time the session adds, without file I/O.

    Args:
        model: a bundle directory, a ``model.<precision>.onnx`` file, or an open :class:`Session`
            (then ``backend``, ``device``, ``precision``, ``threads`` and ``options`` are ignored).
        dataset_root: a dataset in the family's layout (``runtime/families/<family>.py`` describes it).
        split: the split to evaluate (e.g. ``"test"`` or ``"valid"``); None: the family's
            ``evaluation_split`` (its module documents its dataset layout).
        backend, device, precision, threads, options: as for :class:`Session`.
        progress: show a tqdm progress bar.

    Returns:
        The family's metrics (its ``metrics`` method names them) plus ``"images",
        "ms_per_image", "ms_median", "ms_p90", "backend", "device", "precision", "threads", "model",
        "split", "family"``; ``ms_per_image`` is the mean.

    Raises:
        InvalidInputError: a missing split or label, labels the metrics are undefined on.
        The errors of :class:`Session`.

    Example:
        >>> row = evaluate("bundles/brn", "data/brn", precision="int8")
        >>> row["images"], row["ms_median"] > 0
        (30, True)
    """
    return _evaluate(model, dataset_root, split=split, backend=backend, device=device, precision=precision,
                     threads=threads, options=options, progress=progress)[0]


def _evaluate(model: PathLike | Session, dataset_root: PathLike, *, split: str | None, backend: str | Backend,
              device: str, precision: str | Precision, threads: int | None, options: SessionOptions | None,
              progress: bool) -> tuple[dict[str, Any], list[Any]]:
    """:func:`evaluate`'s row and the results it was computed from (one per image, in the split's order)."""
    own = not isinstance(model, Session)
    session = Session(model, backend=backend, device=device, precision=precision, threads=threads,
                      options=options) if own else model
    try:
        family = session.family
        split = family.evaluation_split if split is None else split
        pre = session.manifest.preprocess
        items = family.labelled_images(Path(dataset_root), split)
        results, labels, times = [], [], []
        for i, item in enumerate(tqdm(items, desc=f"{session.backend} {session.precision}", unit="image",
                                      disable=None if progress else True, leave=False)):
            image = read_source(item.image, pre, what=f"{session.manifest.family} {session.manifest.variant}")
            labels.append(family.read_label(item, image.shape[1:]))
            if i == 0:
                session.run(image)  # warm-up: first-run allocations are not inference time
            started = time.perf_counter()
            results.append(session.run(image))
            times.append((time.perf_counter() - started) * 1e3)
        try:
            metrics = family.metrics(results, labels)
        except ValueError as exc:
            raise InvalidInputError(f"cannot compute the metrics on {dataset_root}/{split}: {exc}") from exc
        return {
            "model": str(session.path), "family": family.name, "split": split, "images": len(items),
            **metrics,
            "ms_per_image": float(np.mean(times)), "ms_median": float(np.median(times)),
            "ms_p90": float(np.percentile(times, 90)),
            "backend": session.backend, "device": session.device, "precision": session.precision,
            "threads": session.options.resolved_threads(),
        }, results
    finally:
        if own:
            session.close()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m runtime.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("model", type=Path, help="bundle directory or model.<precision>.onnx")
    p.add_argument("dataset", type=Path, help="dataset root in the family's layout")
    p.add_argument("--split", default=None, help="labelled split (default: the family's, e.g. test or valid)")
    p.add_argument("--backends", "--backend", dest="backends", default="onnxruntime,openvino",
                   help="comma list of auto, onnxruntime, openvino (default: onnxruntime,openvino)")
    p.add_argument("--precisions", "--precision", dest="precisions", default="all",
                   help="comma list of auto, fp32, fp16, int8, or 'all' in the bundle (default)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    p.add_argument("--json", type=Path, default=None, help="also write the rows to this JSON file")
    p.add_argument("--no-progress", action="store_true")
    return p


def _rows_to_table(rows: list[dict[str, Any]], metric_names: list[str]) -> str:
    agreement_names = list(dict.fromkeys(name for r in rows for name in r.get("vs_reference") or {}))
    header = ("backend", "precision", "device", "images", *metric_names, *agreement_names, "ms/image", "p90 ms",
              "auto")
    lines = [header]
    for r in rows:
        vs = r.get("vs_reference")
        agreement = (["ref"] * len(agreement_names) if r.get("reference") else
                     [f"{vs[name]:.4f}" if vs and name in vs else "-" for name in agreement_names])
        lines.append((r["backend"], r["precision"], r["device"], str(r["images"]),
                      *(f"{r[m]:.4f}" for m in metric_names), *agreement, f"{r['ms_median']:.1f}",
                      f"{r['ms_p90']:.1f}", "<- auto" if r.get("auto") else ""))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines]
    out.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(out)


_ROW_FIELDS = ("model", "family", "split", "images", "ms_per_image", "ms_median", "ms_p90", "backend", "device",
               "precision", "threads", "vs_reference", "reference", "auto")


def _compare_with_reference(family: Any, outcomes: list[tuple[dict[str, Any], list[Any]]]) -> str | None:
    """Add each row's agreement with the reference row (ONNX Runtime FP32, else the first FP32 row) as users act
    on results (the family's :meth:`agreement`: decisions, masks or points); returns the reference's name."""
    fp32 = [o for o in outcomes if o[0]["precision"] == "fp32"]
    if not fp32:
        return None
    reference_row, reference = next((o for o in fp32 if o[0]["backend"] == "onnxruntime"), fp32[0])
    reference_row["reference"] = True
    for row, results in outcomes:
        row["vs_reference"] = family.agreement(results, reference)
    return f"{reference_row['backend']} {reference_row['precision']}"


def _auto_choice(model: Path, device: str) -> tuple[Any, str] | None:
    """What backend='auto', precision='auto' runs here, and why (None when it cannot be told)."""
    try:
        source = _ModelSource(model)
        return decide(source.manifest, source.precisions(), Backend.AUTO, Precision.AUTO, device,
                      None if source.lone else source.path)
    except (SdkError, ImportError) as exc:
        log.warning("cannot tell what 'auto' runs: %s", exc)
        return None


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        backends = [parse_enum(Backend, b, "backend") for b in args.backends.split(",") if trim(b)]
        source = _ModelSource(args.model)
        available = source.precisions()
        if trim(args.precisions).lower() == "all":
            precisions = [p.value for p in Precision if p.value in available]
        else:
            precisions = [parse_enum(Precision, p, "precision").value for p in args.precisions.split(",") if trim(p)]
        for what, given in (("backend", backends), ("precision", precisions)):
            if not given:
                raise InvalidInputError(f"no {what} given (--{what}s {getattr(args, what + 's')!r})")
        # The dataset is checked here too, not only in evaluate(): a missing split is bad usage, found
        # before a model is loaded, not one error per backend x precision after each load.
        family = get_family(source.manifest.family)
        args.split = args.split or family.evaluation_split
        family.labelled_images(args.dataset, args.split)
        options = SessionOptions(threads=args.threads)
        if args.json is not None:
            check_output_file(args.json, "--json")
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted before anything was evaluated; nothing written", file=sys.stderr)
        return 130
    outcomes, notes, failed, interrupted, current = [], [], False, False, ""
    try:
        for backend in dict.fromkeys(backends):
            if backend is not Backend.AUTO and not is_available(backend):
                notes.append(f"skipped {backend.value}: not installed"
                             + (" (pip install 'edge-vision-sdk[openvino]')" if backend is Backend.OPENVINO else ""))
                continue
            for precision in precisions:
                if precision != "auto" and precision not in available:
                    notes.append(f"skipped {backend.value}/{precision}: the bundle has no {precision} graph")
                    continue
                current = f"{backend.value}/{precision}"
                try:
                    outcomes.append(_evaluate(args.model, args.dataset, split=args.split, backend=backend,
                                              device=args.device, precision=precision, threads=None,
                                              options=options, progress=not args.no_progress))
                except (ImportError, BackendError) as exc:
                    notes.append(f"skipped {backend.value}/{precision}: {exc}")
                except SdkError as exc:
                    print(f"error: {backend.value}/{precision}: {exc}", file=sys.stderr)
                    failed = True
                current = ""
    except KeyboardInterrupt:
        interrupted = True
        # Ctrl-C: report the combinations measured in full; the one under way is left out (metrics
        # over part of the split would not be comparable with the others).
        notes.append(f"interrupted during {current}: it is not in the table, and nothing after it ran" if current
                     else "interrupted: nothing after the rows above ran")
    rows = [row for row, _ in outcomes]
    reference = _compare_with_reference(family, outcomes)
    auto = _auto_choice(args.model, args.device)
    if auto is not None:
        choice, auto_device = auto
        for row in rows:
            row["auto"] = (row["backend"], row["precision"], row["device"]) == (
                choice.backend.value, choice.precision, auto_device)
    print(f"{args.model} on {args.dataset}/{args.split}, {options.resolved_threads()} threads, batch 1")
    metric_names = [k for k in rows[0] if k not in _ROW_FIELDS] if rows else []
    empty = "(interrupted before a combination was measured)" if interrupted else "(no combination could run)"
    print(_rows_to_table(rows, metric_names) if rows else empty)
    if reference is not None:
        print(f"agreement columns: each row's results against {reference}'s on the same images, at the "
              f"manifest's threshold")
    if auto is not None:
        print(f"auto here: {explain(auto[0])}")
    for note in notes:
        print(f"note: {note}")
    if args.json is not None:
        text = json.dumps(rows, indent=2) + "\n"
        try:
            atomic_write(args.json, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
        except OSError as exc:  # the folder was removed or filled up during the run
            print(f"error: cannot write {args.json}: {exc.strerror or exc}", file=sys.stderr)
            return 130 if interrupted else 1
        except KeyboardInterrupt:  # a second Ctrl-C; atomic_write has removed its temporary file
            print(f"interrupted again: {args.json} not written", file=sys.stderr)
            return 130
        print(f"wrote {args.json}")
    if interrupted:
        return 130
    return 1 if failed or not rows else 0
