"""Build a bundle of layered ONNX graphs from a checkpoint (``export.build``, ``python -m export.build``).

    python -m export.build --checkpoint runs/brn/best.pth --out bundles/brn

writes ``model.{fp32,fp16,int8}.onnx`` (the full-image graphs), on request the
family's lower layers (``base.fp32.onnx``, ``patch.<precision>.onnx``),
``manifest.json`` (schema version 2, the contract every runtime reads),
``parity.json`` and ``report.md``. Every graph is simplified, checked against
PyTorch and hashed; the bundle is assembled in a temporary folder and renamed
into place only when everything passed, so a failed export leaves nothing
behind. What is family-specific (layers, wrappers, samples, the metric that
guards INT8, structural checks) comes from the family's export part
(``export/families/<name>.py``); this module is the generic pipeline.

Exit codes of the CLI: 0 the bundle was written; 1 a graph failed its checks (or a write
failed) and nothing was written; 2 bad usage, an unreadable checkpoint or a bad ``--out``,
detected before any graph is exported; 130 interrupted (Ctrl-C) and 143 terminated
(SIGTERM), nothing written.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import json
import logging
import math
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from tqdm import tqdm

from export import _report
from export._family import ExportFamily, LayerSpec, Quality, get_export_family
from export._onnx import (
    SimplifyReport,
    check_finite_weights,
    declare_shapes,
    drop_outputs,
    embed_metadata,
    export_module,
    graph_opset,
    run_batches,
    runtime_max_opset,
    session,
    simplify,
    to_fp16,
)
from export._quantize import Quantizer, QuantSettings, float_nodes, rank_sensitive_nodes
from runtime.core import (
    LAYERS,
    MANIFEST_NAME,
    SCHEMA_VERSION,
    ExportError,
    Accuracy,
    GraphEntry,
    InvalidInputError,
    ModelLoadError,
    Precision,
    Preprocess,
    SdkError,
    TerminationGuard,
    atomic_write,
    get_family,
    graph_payload_sha256,
    list_images,
    make_staging,
    move_into_place,
    parse_manifest,
    prepare,
    publish_lock,
    sha256_file,
    to_tensor,
)
from runtime.core import RuntimeFamily, Transform
from training.checkpoint import build_from_checkpoint, load_checkpoint

log = logging.getLogger(__name__)


CALIBRATION_FOLDER_LIMIT = 64  # images read from --calibration DIR (MinMax needs variety, not volume)
PRECISIONS = tuple(p for p in Precision if p is not Precision.AUTO)
#: the files a bundle holds besides its ``*.onnx`` graphs: --force replaces a folder of these only
BUNDLE_FILES = (MANIFEST_NAME, "parity.json", "report.md")
#: the opset graphs are written in unless --opset says otherwise
DEFAULT_OPSET = 17
#: the oldest opset --opset accepts: every family exports to it (with FP16), and the older ONNX Runtime
#: builds still found on line PCs load it
MIN_OPSET = 11
#: INT8 with per-channel weights (the default QuantSettings) needs QuantizeLinear/DequantizeLinear with an
#: ``axis``, which opset 13 added (ONNX Runtime's quantizer writes it at any opset, into a graph nothing loads):
#: below it, INT8 weights are quantized per tensor
INT8_MIN_OPSET = 13


def _max_opset() -> int:
    """The newest opset both the TorchScript exporter (the one export_module uses) and the installed ONNX Runtime,
    which runs the parity checks, support."""
    try:
        from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET as newest
    except ImportError:  # a torch that moved the constant: the newest this SDK was tested with
        newest = 20
    return min(int(newest), runtime_max_opset())


class Layer(str, enum.Enum):
    BASE = "base"  # the network itself
    PATCH = "patch"  # the network and its output contract, on the unit the network sees
    FULL = "full"  # the whole image: tiling, stitching or decoding inside


assert tuple(layer.value for layer in Layer) == LAYERS


@dataclass
class BuildOptions:
    """What to build; see ``python -m export.build --help`` for each field.

    ``mode`` None is the family's default full-image mode; ``parity_images`` None is the
    family's default count. ``max_metric_drop`` overrides the allowed losses of the
    metrics that guard INT8: a number sets the family's main guard, a mapping (or a
    ``"metric=value,..."`` string) sets guards by name; None keeps the family's.
    """

    checkpoint: Path
    out: Path
    precisions: tuple[Precision, ...] = PRECISIONS
    layers: tuple[Layer, ...] = (Layer.FULL,)
    mode: str | None = None
    opset: int = DEFAULT_OPSET
    calibration: Path | None = None
    calibration_synthetic: int = 16
    parity_images: int | None = None
    simplify: bool = True
    force: bool = False
    max_metric_drop: float | dict[str, float] | str | None = None
    max_float_nodes: int = 8
    quant: QuantSettings = field(default_factory=QuantSettings)
    seed: int = 0
    progress: bool = False


@dataclass
class BuildResult:
    bundle: Path
    manifest: dict[str, Any]
    parity: dict[str, Any]
    seconds: float


def _sdk_version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edge-vision-sdk")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def _parse_enum(kind: type[enum.Enum], values: Any, what: str, allowed: tuple | None = None) -> tuple:
    items = values.split(",") if isinstance(values, str) else list(values)
    allowed = tuple(allowed or kind)
    out = []
    for item in items:
        try:
            member = kind(" ".join(item.split()) if isinstance(item, str) else item)
        except ValueError:
            member = None
        if member not in allowed:
            raise InvalidInputError(f"unsupported {what} {item!r}; expected one or more of "
                                    f"{[e.value for e in allowed]}")
        out.append(member)
    if not out:
        raise InvalidInputError(f"no {what} given; expected one or more of {[e.value for e in allowed]}")
    return tuple(dict.fromkeys(out))


def _check_int(value: Any, what: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        expected = f"an integer in {low}..{high}" if high is not None else f"an integer of at least {low}"
        raise InvalidInputError(f"{what} must be {expected}, got {value!r}")


def _validate(options: BuildOptions) -> None:
    """Every option checked before any work (and before anything is written)."""
    options.precisions = _parse_enum(Precision, options.precisions, "precision", PRECISIONS)
    options.layers = _parse_enum(Layer, options.layers, "layer")
    if Layer.FULL not in options.layers:
        options.layers = (*options.layers, Layer.FULL)  # the full-image graph is the bundle's contract
    _check_int(options.opset, "--opset", MIN_OPSET, _max_opset())
    _check_opset_precisions(options)
    if Precision.FP32 not in options.precisions:
        # FP16 and INT8 are derived from the verified FP32 graph; it is always built (and kept).
        options.precisions = (Precision.FP32, *options.precisions)
    if options.parity_images is not None:
        _check_int(options.parity_images, "--parity-images (parity needs at least 2 images)", 2)
    if options.calibration is not None and not Path(options.calibration).is_dir():
        raise InvalidInputError(f"calibration folder not found: {options.calibration}; expected a folder of images")
    _check_int(options.calibration_synthetic, "--calibration-synthetic", 1)
    _check_int(options.max_float_nodes, "max_float_nodes", 0)
    _check_int(options.seed, "--seed", 0)
    options.max_metric_drop = _parse_drops(options.max_metric_drop)
    _check_checkpoint_file(Path(options.checkpoint))
    _check_out(Path(options.out).resolve(), Path(options.checkpoint), options.force)


def _check_opset_precisions(options: BuildOptions) -> None:
    """Below opset 13 INT8 weights are quantized per tensor: per-channel scales need QuantizeLinear's ``axis``."""
    if Precision.INT8 in options.precisions and options.quant.per_channel and options.opset < INT8_MIN_OPSET:
        log.warning("--opset %d: INT8 weights are quantized per tensor (per-channel scales need the axis attribute "
                    "of QuantizeLinear/DequantizeLinear, added in opset %d); the accuracy guard still applies, and "
                    "--opset %d or newer gives per-channel INT8", options.opset, INT8_MIN_OPSET, INT8_MIN_OPSET)
        options.quant = dataclasses.replace(options.quant, per_channel=False)


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _parse_drops(value: Any) -> float | dict[str, float] | None:
    """``--max-metric-drop``: None, a number (the main guard) or metric -> number (a dict or "m=v,...")."""
    expected = "a finite number (the family's main INT8 guard) or metric=number pairs such as 'hit@5px=0.05,mae=0.5'"
    if value is None or _finite(value):
        return value
    parsed = _drops_from_text(value.replace(" ", "")) if isinstance(value, str) else value
    if _finite(parsed):
        return float(parsed)
    if isinstance(parsed, dict) and parsed and all(isinstance(k, str) and k and _finite(v) for k, v in parsed.items()):
        return {k: float(v) for k, v in parsed.items()}
    raise InvalidInputError(f"--max-metric-drop must be {expected}, got {value!r}")


def _drops_from_text(text: str) -> float | dict[str, float] | str:
    """"0.01" -> 0.01; "a=0.1,b=2" -> {"a": 0.1, "b": 2.0}; anything else is returned for the caller to refuse."""
    try:
        return float(text)
    except ValueError:
        pass
    drops = {}
    for item in text.split(","):
        name, sep, number = item.partition("=")
        try:
            drops[name] = float(number) if sep else None
        except ValueError:
            return text
    return drops if all(v is not None for v in drops.values()) else text


def _guards(family: ExportFamily, drops: float | dict[str, float] | None) -> tuple[Quality, ...]:
    """The family's INT8 guards with the user's allowed losses applied."""
    guards = family.quality()
    if drops is None:
        return guards
    if not isinstance(drops, dict):
        drops = {guards[0].metric: drops}
    known = [g.metric for g in guards]
    unknown = sorted(set(drops) - set(known))
    if unknown:
        raise InvalidInputError(f"--max-metric-drop names {unknown}, which family {family.name!r} does not "
                                f"guard INT8 with; its guards are {known}")
    return tuple(dataclasses.replace(g, max_drop=drops.get(g.metric, g.max_drop)) for g in guards)


def _check_checkpoint_file(path: Path) -> None:
    """The checkpoint's own checks run later (load_checkpoint); these two need no reading and fail fast."""
    if not path.exists():
        raise ModelLoadError(f"checkpoint not found: {path}")
    if not path.is_file():
        raise ModelLoadError(f"checkpoint {path} is not a regular file; expected a .pth file")


def _check_out(out: Path, checkpoint: Path, force: bool) -> None:
    """``out`` (resolved) may be created, or replaced with ``force``; nothing else is ever deleted.

    Raises:
        InvalidInputError: ``out`` under a file, ``out`` holding the checkpoint, an existing ``out``
            without ``force``, or with ``force`` one that is not a previous bundle.
    """
    existing = next((p for p in (out, *out.parents) if p.exists()), None)
    if existing is not None and existing != out and not existing.is_dir():
        raise InvalidInputError(f"--out {out} lies inside {existing}, which is not a directory")
    ckpt = checkpoint.resolve()
    if out == ckpt or out in ckpt.parents:
        # Replacing out would delete the checkpoint being exported.
        raise InvalidInputError(f"--out {out} holds the checkpoint {ckpt}; choose a folder outside it")
    if not out.exists():
        return
    if not out.is_dir():
        raise InvalidInputError(f"--out {out} exists and is not a directory; expected a new or bundle folder")
    if not force:
        raise InvalidInputError(f"{out} already exists; pass --force (force=True) to replace it")
    _check_replaceable_bundle(out)


def _check_replaceable_bundle(out: Path) -> None:
    """``--force`` deletes ``out``: only a previous bundle (its manifest and nothing but bundle files) may go."""
    def bundle_file(path: Path) -> bool:
        return (path.is_file() and not path.is_symlink()
                and (path.suffix == ".onnx" or path.name in BUNDLE_FILES))

    try:
        entries = list(out.iterdir())
    except OSError as exc:
        raise InvalidInputError(f"cannot list --out {out}: {exc.strerror}") from exc
    if not (out / MANIFEST_NAME).is_file():
        raise InvalidInputError(f"--force replaces only a previous bundle, and {out} has no {MANIFEST_NAME}; "
                                f"refusing to delete it")
    others = sorted(p.name for p in entries if not bundle_file(p))
    if others:
        raise InvalidInputError(f"--force replaces only a previous bundle (*.onnx, {', '.join(BUNDLE_FILES)}), "
                                f"and {out} also holds {others[:5]}; refusing to delete it")


def _graph_name(layer: Layer, precision: Precision) -> str:
    return f"{'model' if layer is Layer.FULL else layer.value}.{precision.value}.onnx"


def _precisions(options: BuildOptions, layer: Layer) -> list[Precision]:
    """The base layer is built in FP32 only: it is there to debug the network, not to deploy."""
    return [p for p in options.precisions if not (layer is Layer.BASE and p is not Precision.FP32)]


# -- step 1: what is exported ----------------------------------------------------------------
@dataclass
class _Job:
    """One export run: the checkpoint, its network and what the family says about it."""

    options: BuildOptions
    checkpoint: dict[str, Any]
    network: torch.nn.Module
    variant: str
    mode: str
    family: ExportFamily
    pre: Preprocess
    post: Any
    guards: tuple[Quality, ...]
    runtime: RuntimeFamily

    def layer(self, layer: Layer) -> LayerSpec:
        return self.family.layer(self.network, layer.value, self.mode, self.variant)


def _load(options: BuildOptions) -> _Job:
    checkpoint = load_checkpoint(options.checkpoint)
    training, network = build_from_checkpoint(checkpoint)
    name = checkpoint["family"]
    runtime_family, export_family = get_family(name), get_export_family(name)
    variant = checkpoint["variant"]  # load_checkpoint filled it in for old checkpoints
    mode = options.mode or export_family.modes[0]
    if mode not in export_family.modes:
        raise InvalidInputError(f"unsupported mode {mode!r} for family {name!r}; expected one of "
                                f"{list(export_family.modes)}")
    missing = [layer.value for layer in options.layers
               if layer is not Layer.FULL and layer.value not in export_family.lower_layers]
    if missing:
        raise InvalidInputError(f"family {name!r} has no {missing} layer; it has "
                                f"{['full', *export_family.lower_layers]}")
    return _Job(options, checkpoint, network, variant, mode, export_family, runtime_family.input_spec(variant),
                runtime_family.postprocess_spec(variant), _guards(export_family, options.max_metric_drop),
                runtime_family)


# -- step 2: the images parity and calibration run on ---------------------------------------------
@dataclass
class _Samples:
    tensors: np.ndarray  # (N, C, H, W) graph input of the labelled parity images
    labels: list[Any]
    calibration: np.ndarray  # (M, C, H, W) graph input
    transforms: list[Transform]  # where each parity image lies on the graph's input canvas


def _samples(job: _Job) -> _Samples:
    from training import get_training_family

    training = get_training_family(job.checkpoint["family"])
    options = job.options
    count = options.parity_images or job.family.parity_images
    images, labels = training.synthetic_samples(job.variant, count, options.seed)
    prepared = [to_tensor(image, job.pre) for image in images]
    tensors = np.stack([tensor for tensor, _ in prepared])
    if options.calibration is not None:
        calibration = _folder_tensors(Path(options.calibration), job.pre, CALIBRATION_FOLDER_LIMIT)
    else:
        calib_images, _ = training.synthetic_samples(job.variant, options.calibration_synthetic, options.seed + 1)
        calibration = np.stack([to_tensor(image, job.pre)[0] for image in calib_images])
    return _Samples(tensors, list(labels), calibration, [transform for _, transform in prepared])


def _folder_tensors(folder: Path, pre: Preprocess, limit: int) -> np.ndarray:
    """Up to ``limit`` images of a user folder, pre-processed as the manifest says.

    Raises:
        InvalidInputError: a missing or empty folder, or an image the manifest does not accept.
    """
    paths = list_images(folder)[:limit]
    if not paths:
        raise InvalidInputError(f"no images (.tiff/.png/.jpg) in calibration folder {folder}")
    return np.stack([prepare(path, pre)[0] for path in paths])


# -- step 3: PyTorch references -----------------------------------------------------------------
@torch.no_grad()
def _torch_outputs(spec: LayerSpec, inputs: np.ndarray) -> dict[str, np.ndarray]:
    """Every output of the layer's module (diagnostics included) by name, float64, one image at a time."""
    runs = []
    for x in inputs:
        out = spec.module(torch.from_numpy(x[None]))
        runs.append(out if isinstance(out, (tuple, list)) else (out,))
    return {o.name: np.concatenate([r[i].numpy() for r in runs]).astype(np.float64)
            for i, o in enumerate(spec.all_outputs)}


class _Figures:
    """A full-image graph's guard figures: the family's metrics against the labels and its agreement with PyTorch.

    Agreement is measured on decoded results at the manifest's threshold (decisions, masks or
    points, what users act on), through the runtime family's own decoding.
    """

    def __init__(self, job: _Job, samples: _Samples, reference: dict[str, np.ndarray]) -> None:
        self.job, self.samples = job, samples
        self.reference_results = self._decode(reference)
        #: the names of the agreement figures (the rest are task metrics)
        self.reference_agreement = set(job.runtime.agreement(self.reference_results, self.reference_results))
        self.reference = self(reference)

    def _decode(self, outputs: dict[str, np.ndarray]) -> list:
        sources = [f"parity[{i}]" for i in range(len(self.samples.labels))]
        return self.job.runtime.decode(outputs, self.samples.transforms, self.job.post, sources=sources)

    def __call__(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        job = self.job
        return {**job.family.metrics(outputs, self.samples.labels, job.variant),
                **job.runtime.agreement(self._decode(outputs), self.reference_results)}

    def accuracy(self, values: dict[str, float]) -> Accuracy:
        """The manifest's accuracy record of a graph with these figures.

        A guard whose loss is not a finite number (a metric undefined on these images) fails:
        nothing shows the graph keeps it. It is left out of ``losses`` (JSON has no NaN).
        """
        losses = {g.metric: g.loss(self.reference[g.metric], values[g.metric]) for g in self.job.guards}
        allowed = {g.metric: g.max_drop for g in self.job.guards}
        passed = all(math.isfinite(loss) and loss <= allowed[m] for m, loss in losses.items())
        return Accuracy(len(self.samples.labels), float(self.job.post.default_threshold), _finite_numbers(values),
                        _finite_numbers(losses), allowed, passed)


# -- step 4: graphs ----------------------------------------------------------------------------
def _export_fp32(job: _Job, spec: LayerSpec) -> tuple[onnx.ModelProto, SimplifyReport]:
    example = torch.rand(spec.example_shape(), generator=torch.Generator().manual_seed(0))
    model = export_module(spec.module, example, opset=job.options.opset, input_name=spec.inputs[0].name,
                          output_names=tuple(o.name for o in spec.all_outputs))
    onnx.checker.check_model(model, full_check=True)
    model, report = simplify(model, enabled=job.options.simplify)
    onnx.checker.check_model(model, full_check=True)
    return model, report


def _fp16(job: _Job, fp32: onnx.ModelProto) -> tuple[onnx.ModelProto, SimplifyReport]:
    model = to_fp16(fp32)
    bad = check_finite_weights(model)
    if bad:
        raise ExportError(f"FP16 conversion overflowed in initializers {bad[:5]}")
    model, report = simplify(model, enabled=job.options.simplify)
    onnx.checker.check_model(model, full_check=True)
    return model, report


def _int8(job: _Job, quantizer: Quantizer, keep_float: list[str]) -> tuple[onnx.ModelProto, SimplifyReport]:
    always = job.family.int8_float_nodes(quantizer.fp32)
    model, report = simplify(quantizer.quantize([*always, *keep_float]), enabled=job.options.simplify)
    onnx.checker.check_model(model, full_check=True)
    return model, report


# -- step 5: checks against PyTorch --------------------------------------------------------------
def _compare(job: _Job, layer: Layer, precision: Precision, spec: LayerSpec, model: onnx.ModelProto,
             shipped: onnx.ModelProto, inputs: np.ndarray, reference: dict[str, np.ndarray],
             figures: _Figures | None) -> tuple[dict[str, Any], Accuracy | None]:
    """Run the graph as written (``shipped``) and, for its diagnostic outputs, as built (``model``).

    Returns its parity entry and, given ``figures`` (full-image graphs), its accuracy record.
    """
    outputs = run_batches(session(shipped), inputs)
    if spec.diagnostics:
        diagnostic = run_batches(session(model), inputs)
        outputs.update({o.name: diagnostic[o.name] for o in spec.diagnostics})
    name = _graph_name(layer, precision)
    per_output = {}
    diffs = job.family.differences(layer.value, outputs, reference)
    for out in spec.all_outputs:
        value = outputs[out.name]
        if not np.isfinite(value).all():
            raise ExportError(f"{name} produced NaN or inf in {out.name!r}")
        diff = diffs[out.name]
        per_output[out.name] = {"max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean())}
        tolerance = job.family.fp32_tolerance.get(out.name, job.family.fp32_tolerance["*"])
        if precision is Precision.FP32 and diff.max() >= tolerance:
            raise ExportError(f"{name} output {out.name!r} differs from PyTorch by {diff.max():.3g} (max abs); "
                              f"must be below {tolerance:g}")
    entry: dict[str, Any] = {
        "graph": name, "layer": layer.value, "precision": precision.value, "outputs": per_output,
        "max_abs_diff": max(per_output[o.name]["max_abs_diff"] for o in spec.outputs),
        "mean_abs_diff": max(per_output[o.name]["mean_abs_diff"] for o in spec.outputs),
        "finite": True, **job.family.check_outputs(layer.value, outputs),
    }
    if figures is None:
        return entry, None
    accuracy = figures.accuracy(figures(outputs))
    entry["metrics"] = {k: v for k, v in accuracy.values.items() if k not in figures.reference_agreement}
    entry["agreement"] = {k: accuracy.values[k] for k in figures.reference_agreement}
    entry["guard"] = {"losses": accuracy.losses, "allowed": accuracy.allowed, "passed": accuracy.passed}
    return entry, accuracy


def _int8_search(job: _Job, quantizer: Quantizer, fp32: onnx.ModelProto, inputs: np.ndarray, figures: _Figures
                 ) -> tuple[onnx.ModelProto, SimplifyReport, list[str], list[dict]]:
    """Quantize; while a guard metric loses too much, keep more of the most sensitive nodes in float.

    The node count doubles per attempt (1, 2, 4, ...) up to ``max_float_nodes``; when even
    that fails, the attempt that came closest is kept (the smallest worst loss, each loss as
    a multiple of its allowance), with a warning and ``passed: false`` in the parity.
    """
    limit = job.options.max_float_nodes
    keep: list[str] = []
    attempts: list[dict[str, Any]] = []
    ranking: list[tuple[str, float]] | None = None
    closest: tuple[float, onnx.ModelProto, SimplifyReport, list[str]] | None = None
    while True:
        model, report = _int8(job, quantizer, keep)
        metrics = figures(run_batches(session(model), inputs))
        losses = {g.metric: g.loss(figures.reference[g.metric], metrics[g.metric]) for g in job.guards}
        passed = all(losses[g.metric] <= g.max_drop for g in job.guards)
        attempts.append({"kept_float": list(keep), "values": {g.metric: metrics[g.metric] for g in job.guards},
                         "losses": losses, "passed": passed})
        lost = ", ".join(f"{m} loss {v:.4f}" for m, v in losses.items())
        log.info("INT8 with %d nodes in float: %s", len(keep), lost)
        if passed:
            return model, report, keep, attempts
        excess = max(_excess(losses[g.metric], g.max_drop) for g in job.guards)
        if closest is None or excess < closest[0]:
            closest = (excess, model, report, list(keep))
        if len(keep) >= limit:
            _, model, report, keep = closest
            attempts[[a["kept_float"] for a in attempts].index(keep)]["kept"] = True
            log.warning("INT8 still fails its guards with up to %d nodes in float; kept the closest attempt "
                        "(%d nodes in float)", limit, len(keep))
            return model, report, keep, attempts
        if ranking is None:
            ranking = rank_sensitive_nodes(fp32, model, inputs[:1])
        keep = [name for name, _ in ranking[:max(1, 2 * len(keep))]]


def _excess(loss: float, allowed: float) -> float:
    """How far a guard's loss goes past its allowance, in units of the allowance (<= 0: within)."""
    return (loss - allowed) / max(abs(allowed), 1e-9)


def _map_nodes(names: list[str], model: onnx.ModelProto) -> list[str]:
    """Full-graph node names -> the same nodes in a lower-layer graph (matched by their name's tail)."""
    own = [n.name for n in model.graph.node]
    mapped = []
    for name in names:
        tail = name.split("/network/", 1)[-1]
        mapped += [n for n in own if n.endswith("/network/" + tail) or n == name]
    return mapped


# -- step 6: the bundle --------------------------------------------------------------------------
def _common_manifest(job: _Job) -> dict[str, Any]:
    import onnxruntime
    import onnxsim

    ckpt = job.checkpoint
    tiling = job.family.tiling(job.variant, job.mode)
    return {
        "schema_version": SCHEMA_VERSION,
        "family": ckpt["family"],
        "variant": job.variant,
        "preprocess": job.pre.to_dict(),
        "postprocess": job.post.to_dict(),
        **({"tiling": tiling} if tiling else {}),
        "arch": ckpt["arch"],
        "checkpoint": {"file": Path(job.options.checkpoint).name, "sha256": sha256_file(job.options.checkpoint),
                       "epoch": ckpt["epoch"], "metrics": _finite_numbers(ckpt.get("metrics", {})), "seed": ckpt["seed"]},
        "producer": {"sdk": _sdk_version(), "torch": str(torch.__version__), "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "onnxsim": onnxsim.__version__,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }


def _save(job: _Job, staging: Path, layer: Layer, precision: Precision, spec: LayerSpec, model: onnx.ModelProto,
          common: dict[str, Any], accuracy: Accuracy | None = None) -> dict[str, Any]:
    """Write one graph with its embedded manifest; its manifest entry (with hash and size)."""
    opset = graph_opset(model)
    if opset != job.options.opset:  # a runtime limited to the requested opset could not load it
        raise ExportError(f"{_graph_name(layer, precision)} came out at opset {opset}, not the --opset "
                          f"{job.options.opset} asked for")
    entry = GraphEntry(_graph_name(layer, precision), layer.value, precision.value,
                       job.mode if layer is Layer.FULL else layer.value, opset, spec.inputs,
                       spec.outputs, float_nodes=tuple(float_nodes(model)) if precision is Precision.INT8 else (),
                       accuracy=accuracy)
    data = entry.to_dict()
    # The graph carries its own manifest so that a lone .onnx file can be run and
    # checked: the hash covers the serialized graph, not the metadata around it.
    embed_metadata(model, {"sdk.manifest": json.dumps({**common, "graph": data}, sort_keys=True),
                           "sdk.graph_sha256": graph_payload_sha256(model.graph.SerializeToString())})
    path = atomic_write(staging / entry.file, lambda tmp: onnx.save(model, tmp))
    return {**data, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def _finite_numbers(metrics: dict[str, Any]) -> dict[str, float]:
    """The metrics a manifest may carry: finite numbers only (JSON has no NaN; runtimes refuse it)."""
    return {k: v for k, v in metrics.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)}


def _json_safe(data: Any) -> Any:
    """``data`` with NaN and infinities as null, so that the file is standard JSON."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: _json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(v) for v in data]
    return data


def _write_json(path: Path, data: Any) -> None:
    text = json.dumps(_json_safe(data), indent=2, allow_nan=False) + "\n"
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


# -- the pipeline -------------------------------------------------------------------------------
def build(options: BuildOptions) -> BuildResult:
    """Export, simplify, verify and hash every requested graph into a new bundle.

    Args:
        options: what to build (precisions, layers, mode, calibration, ...).

    Returns:
        The bundle path, its manifest and the parity figures.

    Only one export at a time writes a given ``out`` (a lock file next to it); in
    the main thread, SIGTERM raises ``SystemExit(143)`` so that an export killed
    that way cleans up like an interrupted one.

    Raises:
        InvalidInputError: bad options; an existing ``out`` without ``force``, or with ``force`` one that
            is not a previous bundle or holds the checkpoint; an unwritable ``out``; bad calibration images.
        ModelLoadError: an unreadable checkpoint, an unknown family, missing keys or fields of the wrong type.
        ExportError: a graph that fails its checks (PyTorch parity, the family's contract, NaN), or a
            failed write.

    Example:
        >>> build(BuildOptions(checkpoint=Path("runs/brn/best.pth"), out=Path("bundles/brn")))
    """
    started = time.perf_counter()
    _validate(options)
    out = Path(options.out).resolve()
    with TerminationGuard() as guard, publish_lock(out):
        # Checked again under the lock: another export may have published out meanwhile.
        _check_out(out, Path(options.checkpoint), options.force)
        staging: Path | None = None
        try:
            staging = make_staging(out)
            manifest, parity = _build_into(options, staging)
            with guard.deferred():  # a SIGTERM between the two renames would lose the old bundle
                move_into_place(staging, out)
        except BaseException as exc:
            if staging is not None:
                shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError) and not isinstance(exc, SdkError):  # a full disk, a folder removed under us
                raise ExportError(f"export to {out} failed: {exc}") from exc
            raise
    return BuildResult(out, manifest, parity, time.perf_counter() - started)


@dataclass
class _Int8Search:
    """What the full-image INT8 search found, reused by the lower layers (same network, other prefix)."""

    keep_float: list[str] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)


def _build_into(options: BuildOptions, staging: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    job = _load(options)
    samples = _samples(job)
    common = _common_manifest(job)
    full_reference = _torch_outputs(job.layer(Layer.FULL), samples.tensors)
    reference_metrics = job.family.metrics(full_reference, samples.labels, job.variant)
    figures = _Figures(job, samples, full_reference)
    search = _Int8Search()
    graphs, checks = [], []
    total = sum(len(_precisions(options, layer)) for layer in options.layers)
    with tqdm(total=total, desc="export", unit="graph", disable=None if options.progress else True) as bar:
        for layer in (Layer.FULL, *(lay for lay in options.layers if lay is not Layer.FULL)):
            for graph, check in _build_layer(job, layer, samples, full_reference, figures, search, staging,
                                             common):
                graphs.append(graph)
                checks.append(check)
                bar.set_postfix_str(graph["file"])
                bar.update()
    manifest = {**common, "graphs": graphs, "default_graph": graphs[0]["file"]}
    parse_manifest(manifest, source="generated manifest")  # the runtime must accept what we write
    parity = {
        "reference": {"framework": "pytorch", "precision": "fp32", "mode": job.mode,
                      "images": len(samples.labels), "metrics": reference_metrics},
        "graphs": checks,
        "int8_guards": [dataclasses.asdict(g) for g in job.guards],
        "int8_search": search.attempts,
        "mode_report": job.family.mode_report(job.network, samples.tensors, samples.labels, job.variant,
                                              job.mode, full_reference),
    }
    _write_json(staging / MANIFEST_NAME, manifest)
    _write_json(staging / "parity.json", parity)
    atomic_write(staging / "report.md",
                 lambda tmp: Path(tmp).write_text(_report.markdown(manifest, parity), encoding="utf-8"))
    return manifest, parity


def _build_layer(job: _Job, layer: Layer, samples: _Samples, full_reference: dict[str, np.ndarray],
                 figures: _Figures, search: _Int8Search, staging: Path, common: dict[str, Any]):
    """Export one layer in every requested precision; yields (manifest entry, parity entry) per graph."""
    full = layer is Layer.FULL
    spec = job.layer(layer)
    inputs = job.family.layer_inputs(layer.value, samples.tensors, job.variant, per_image=2)
    reference = full_reference if full else _torch_outputs(spec, inputs)
    fp32, fp32_report = _export_fp32(job, spec)
    for precision in _precisions(job.options, layer):
        if precision is Precision.FP32:
            model, report = fp32, fp32_report
        elif precision is Precision.FP16:
            model, report = _fp16(job, fp32)
        else:
            calibration = job.family.layer_inputs(layer.value, samples.calibration, job.variant, per_image=4)
            with Quantizer(fp32, calibration, job.options.quant, job.options.progress) as quantizer:
                if full:
                    model, report, search.keep_float, search.attempts = _int8_search(
                        job, quantizer, fp32, inputs, figures)
                else:
                    model, report = _int8(job, quantizer, _map_nodes(search.keep_float, fp32))
        shipped = drop_outputs(model, [o.name for o in spec.diagnostics])
        conflicts = declare_shapes(shipped, {t.name: t.shape for t in (*spec.inputs, *spec.outputs)})
        if conflicts:
            raise ExportError(f"{_graph_name(layer, precision)} does not have the family's shapes: {conflicts}")
        check, accuracy = _compare(job, layer, precision, spec, model, shipped, inputs, reference,
                                   figures if full else None)
        graph = _save(job, staging, layer, precision, spec, shipped, common, accuracy)
        reference_mib = job.family.reference_mib.get(precision.value) if full else None
        check.update(bytes=graph["bytes"], float_nodes=graph.get("float_nodes", []),
                     **({"reference_mib": reference_mib} if reference_mib else {}),
                     **({"int8_weights": "per-channel" if job.options.quant.per_channel else "per-tensor"}
                        if precision is Precision.INT8 else {}),
                     nodes_before_simplify=report.nodes_before, nodes_after_simplify=report.nodes_after,
                     simplify_changes=report.changes())
        yield graph, check


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.build", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pth written by training.train")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--precisions", default="fp32,fp16,int8", help="comma list of fp32, fp16, int8")
    p.add_argument("--layers", default="full", help="comma list of base, patch, full (full is always built)")
    p.add_argument("--mode", default=None, help="full-image mode of the family (default: its first; "
                                                "e.g. brn: stitched or fcn)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset of every graph, {MIN_OPSET}..{_max_opset()} (default {DEFAULT_OPSET}); e.g. "
                        f"--opset 11 for an older ONNX Runtime (INT8 weights are then per tensor: per-channel "
                        f"scales need {INT8_MIN_OPSET})")
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--calibration", type=Path,
                     help=f"folder of representative images for INT8 (the first {CALIBRATION_FOLDER_LIMIT} are used)")
    cal.add_argument("--calibration-synthetic", type=int, default=16, metavar="N",
                     help="synthetic calibration images (default 16)")
    p.add_argument("--parity-images", type=int, default=None,
                   help="labelled synthetic images for the parity report and the INT8 guard (default: the "
                        "family's, e.g. brn 16, lhrnet 64)")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument("--max-metric-drop", default=None, metavar="DROP",
                   help="allowed loss of the family's INT8 guard metrics against FP32: a number for the main "
                        "guard, or metric=number pairs (e.g. lhrnet: hit@5px=0.05,mae=0.5); default: the family's")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true",
                   help="replace a previous bundle at --out (a folder holding anything else is never deleted)")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    options = BuildOptions(
        checkpoint=args.checkpoint, out=args.out, precisions=args.precisions, layers=args.layers,
        mode=args.mode, opset=args.opset, calibration=args.calibration,
        calibration_synthetic=args.calibration_synthetic, parity_images=args.parity_images,
        simplify=not args.no_simplify, force=args.force, max_metric_drop=args.max_metric_drop, seed=args.seed,
        progress=not args.no_progress)
    try:
        result = build(options)
    except ExportError as exc:  # the options were fine; a graph failed its checks (or a write failed)
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # build() has removed its staging folder and lock; a previous bundle at --out is untouched.
        print(f"interrupted: no bundle written to {args.out}", file=sys.stderr)
        return 130
    print(_report.summary_table(result.manifest, result.parity))
    print(f"\nwrote {result.bundle} in {result.seconds:.0f} s")
    print(f"run it: python -m runtime.infer {result.bundle} IMAGES... --out predictions")
    return 0
