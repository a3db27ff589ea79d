"""Build a bundle of layered ONNX graphs from a checkpoint (``export.build``, ``python -m export.build``).

    python -m export.build --checkpoint runs/brn/best.pth --out bundles/brn

writes ``model.{fp32,fp16,int8}.onnx`` (layer 3, the full-image graphs), on
request ``base.fp32.onnx`` (layer 1) and ``patch.<precision>.onnx`` (layer 2),
``manifest.json`` (the contract every runtime reads), ``parity.json`` and
``report.md``. Every graph is simplified, checked against PyTorch and hashed;
the bundle is assembled in a temporary folder and renamed into place only when
everything passed, so a failed export leaves nothing behind.
"""

from __future__ import annotations

import argparse
import enum
import json
import logging
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
from export._onnx import (
    INPUT_NAME,
    OUTPUT_NAME,
    SimplifyReport,
    check_finite_weights,
    embed_metadata,
    export_module,
    run_batches,
    session,
    simplify,
    to_fp16,
)
from export._quantize import Quantizer, QuantSettings, float_nodes, rank_sensitive_nodes
from export._samples import folder_images, synthetic_images
from export._wrappers import FullyConvolutionalFullImage, PatchHeatmap, StitchedFullImage
from runtime._errors import ExportError, InvalidInputError, SdkError
from runtime._manifest import MANIFEST_NAME, SCHEMA_VERSION, graph_payload_sha256, parse_manifest, sha256_file
from runtime._metrics import segmentation_aurocs
from runtime._registry import ImageType
from training.checkpoint import build_from_checkpoint, load_checkpoint

log = logging.getLogger(__name__)



def _sdk_version() -> str:
    """The installed distribution's version (pyproject.toml is its one source)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("edge-vision-sdk")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"

FP32_TOLERANCE = 1e-4  # max abs diff of an FP32 graph against PyTorch; above it the export fails
CALIBRATION_FOLDER_LIMIT = 64  # images read from --calibration DIR (MinMax needs variety, not volume)


class Precision(str, enum.Enum):
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class Layer(str, enum.Enum):
    BASE = "base"  # the network: logits
    PATCH = "patch"  # softmax + [heatmap, 0, 0] on one patch
    FULL = "full"  # the whole image, tiling and stitching inside


class Mode(str, enum.Enum):
    STITCHED = "stitched"  # 18 overlapping patches, centre regions kept (the production contract)
    FCN = "fcn"  # one pass over the reflect-padded image (~35 % fewer MACs, slightly different output)


@dataclass
class BuildOptions:
    """What to build; see ``python -m export.build --help`` for each field."""

    checkpoint: Path
    out: Path
    precisions: tuple[Precision, ...] = (Precision.FP32, Precision.FP16, Precision.INT8)
    layers: tuple[Layer, ...] = (Layer.FULL,)
    mode: Mode = Mode.STITCHED
    opset: int = 17
    calibration: Path | None = None
    calibration_synthetic: int = 16
    parity_images: int = 16
    simplify: bool = True
    force: bool = False
    max_auroc_drop: float = 0.005
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


def _parse_enum(kind: type[enum.Enum], values: Any, what: str) -> tuple:
    items = values.split(",") if isinstance(values, str) else list(values)
    allowed = [e.value for e in kind]
    out = []
    for item in items:
        try:
            out.append(kind(item.strip() if isinstance(item, str) else item))
        except ValueError:
            raise InvalidInputError(f"unsupported {what} {item!r}; expected one or more of {allowed}") from None
    if not out:
        raise InvalidInputError(f"no {what} given; expected one or more of {allowed}")
    return tuple(dict.fromkeys(out))


def _validate(options: BuildOptions) -> None:
    options.precisions = _parse_enum(Precision, options.precisions, "precision")
    options.layers = _parse_enum(Layer, options.layers, "layer")
    options.mode = _parse_enum(Mode, [options.mode], "mode")[0]
    if Layer.FULL not in options.layers:
        options.layers = (*options.layers, Layer.FULL)  # the full-image graph is the bundle's contract
    if not 13 <= options.opset <= 21:
        raise InvalidInputError(f"opset {options.opset} is not supported; expected 13..21")
    if Precision.FP32 not in options.precisions:
        # FP16 and INT8 are derived from the verified FP32 graph; it is always built (and kept).
        options.precisions = (Precision.FP32, *options.precisions)
    if options.parity_images < 2:
        raise InvalidInputError(f"parity needs at least 2 images (good and defective), got {options.parity_images}")
    if options.calibration is not None and not Path(options.calibration).is_dir():
        raise InvalidInputError(f"calibration folder not found: {options.calibration}")
    if options.calibration_synthetic < 1:
        raise InvalidInputError(f"--calibration-synthetic must be at least 1, got {options.calibration_synthetic}")
    out = Path(options.out)
    if out.exists() and not options.force:
        raise InvalidInputError(f"{out} already exists; pass --force (force=True) to replace it")
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} exists and is not a directory")


def _graph_name(layer: Layer, precision: Precision) -> str:
    return f"{'model' if layer is Layer.FULL else layer.value}.{precision.value}.onnx"


class _Builder:
    """One export run; holds the network, its reference outputs and what has been written."""

    def __init__(self, options: BuildOptions, staging: Path) -> None:
        self.options = options
        self.staging = staging
        self.checkpoint = load_checkpoint(options.checkpoint)
        self.family, self.network = build_from_checkpoint(self.checkpoint)
        self.image_type: ImageType = self.family.image_type(self.checkpoint["image_type"])
        self.plan = self.image_type.tiling()
        if (self.checkpoint["img_height"], self.checkpoint["img_width"]) != (self.plan.patch_height,
                                                                            self.plan.patch_width):
            raise ExportError(f"checkpoint patch {self.checkpoint['img_height']}x{self.checkpoint['img_width']} "
                              f"does not match image type {self.image_type.name!r} "
                              f"({self.plan.patch_height}x{self.plan.patch_width})")
        self.graphs: list[dict[str, Any]] = []
        self.parity: list[dict[str, Any]] = []
        self.models: dict[tuple[Layer, Precision], onnx.ModelProto] = {}
        self.simplify_reports: dict[tuple[Layer, Precision], SimplifyReport] = {}

    # -- torch side -------------------------------------------------------------------------
    def module(self, layer: Layer, mode: Mode | None = None) -> torch.nn.Module:
        mode = mode or self.options.mode
        if layer is Layer.BASE:
            return self.network
        if layer is Layer.PATCH:
            return PatchHeatmap(self.network).eval()
        if mode is Mode.FCN:
            return FullyConvolutionalFullImage(self.network, self.plan.height, self.plan.width).eval()
        return StitchedFullImage(PatchHeatmap(self.network), self.plan).eval()

    @torch.no_grad()
    def torch_forward(self, module: torch.nn.Module, inputs: np.ndarray) -> np.ndarray:
        return np.concatenate([module(torch.from_numpy(x[None])).numpy() for x in inputs])

    def layer_inputs(self, layer: Layer, images01: np.ndarray, per_image: int) -> np.ndarray:
        """Network inputs for ``layer``: whole images, or some of their patches."""
        if layer is Layer.FULL:
            return images01
        patches = self.plan.extract(images01)  # (N, P, 3, h, w)
        picks = np.linspace(0, patches.shape[1] - 1, per_image).round().astype(int)
        return np.ascontiguousarray(patches[:, picks].reshape(-1, *patches.shape[2:]))

    # -- graphs -----------------------------------------------------------------------------
    def export_fp32(self, layer: Layer) -> onnx.ModelProto:
        shape = (1, 3, self.plan.height, self.plan.width) if layer is Layer.FULL else \
            (1, 3, self.plan.patch_height, self.plan.patch_width)
        example = torch.rand(shape, generator=torch.Generator().manual_seed(0))
        output_name = "logits" if layer is Layer.BASE else OUTPUT_NAME
        model = export_module(self.module(layer), example, opset=self.options.opset, output_name=output_name)
        onnx.checker.check_model(model, full_check=True)
        model, report = simplify(model, enabled=self.options.simplify)
        onnx.checker.check_model(model, full_check=True)
        self.simplify_reports[(layer, Precision.FP32)] = report
        return model

    def derive(self, layer: Layer, precision: Precision, fp32: onnx.ModelProto,
               quantizer: Quantizer | None, keep_float: list[str]) -> onnx.ModelProto:
        if precision is Precision.FP16:
            model = to_fp16(fp32)
            bad = check_finite_weights(model)
            if bad:
                raise ExportError(f"FP16 conversion overflowed in initializers {bad[:5]}")
            model, report = simplify(model, enabled=self.options.simplify)
        else:
            assert quantizer is not None
            before = quantizer.quantize(keep_float)
            model, report = simplify(before, enabled=self.options.simplify)
        onnx.checker.check_model(model, full_check=True)
        self.simplify_reports[(layer, precision)] = report
        return model

    # -- checks -----------------------------------------------------------------------------
    def compare(self, layer: Layer, precision: Precision, model: onnx.ModelProto, inputs: np.ndarray,
                reference: np.ndarray, masks: np.ndarray | None) -> dict[str, Any]:
        outputs = run_batches(session(model), inputs)
        diff = np.abs(outputs.astype(np.float64) - reference)
        entry: dict[str, Any] = {
            "graph": _graph_name(layer, precision), "layer": layer.value, "precision": precision.value,
            "max_abs_diff": float(diff.max()), "mean_abs_diff": float(diff.mean()),
            "finite": bool(np.isfinite(outputs).all()),
        }
        if layer is not Layer.BASE:
            entry["zero_channels_exact"] = bool((outputs[:, 1:] == 0).all())
        if masks is not None:
            entry.update(segmentation_aurocs(masks, outputs[:, 0]))
        if not entry["finite"]:
            raise ExportError(f"{entry['graph']} produced NaN or inf")
        if layer is not Layer.BASE and not entry["zero_channels_exact"]:
            raise ExportError(f"{entry['graph']}: channels 1-2 must be exactly zero")
        if precision is Precision.FP32 and entry["max_abs_diff"] >= FP32_TOLERANCE:
            raise ExportError(f"{entry['graph']} differs from PyTorch by {entry['max_abs_diff']:.3g} "
                              f"(max abs); must be below {FP32_TOLERANCE:g}")
        return entry

    def save(self, layer: Layer, precision: Precision, model: onnx.ModelProto, common: dict[str, Any],
             extra: dict[str, Any]) -> None:
        name = _graph_name(layer, precision)
        is_base = layer is Layer.BASE
        h, w = ((self.plan.height, self.plan.width) if layer is Layer.FULL
                else (self.plan.patch_height, self.plan.patch_width))
        entry = {
            "file": name, "layer": layer.value, "precision": precision.value,
            "mode": self.options.mode.value if layer is Layer.FULL else "patch",
            "opset": self.options.opset,
            "inputs": [{"name": INPUT_NAME, "shape": ["batch", 3, h, w], "dtype": "float32"}],
            "outputs": [{"name": "logits" if is_base else OUTPUT_NAME,
                         "shape": ["batch", 2 if is_base else 3, h, w], "dtype": "float32"}],
            **extra,
        }
        # The graph carries its own manifest so that a lone .onnx file can be run and
        # checked: the hash covers the serialized graph, not the metadata around it.
        embed_metadata(model, {"sdk.manifest": json.dumps({**common, "graph": entry}, sort_keys=True),
                               "sdk.graph_sha256": graph_payload_sha256(model.graph.SerializeToString())})
        path = self.staging / name
        onnx.save(model, path)
        entry["sha256"] = sha256_file(path)
        entry["bytes"] = path.stat().st_size
        self.graphs.append(entry)


def _common_manifest(b: _Builder, checkpoint_sha: str) -> dict[str, Any]:
    import onnxruntime
    import onnxsim

    ckpt = b.checkpoint
    return {
        "schema_version": SCHEMA_VERSION,
        "family": b.family.name,
        "image_type": b.image_type.name,
        "preprocess": {
            "layout": "NCHW",
            "channels": list(b.family.input_channels),
            "accepted_channels": [3, 4],
            "drop_channels_from": 3,
            "accepted_layouts": ["CHW", "HWC"],
            "source_range": [0.0, 255.0],
            "scale": b.family.input_scale,
            "height": b.plan.height,
            "width": b.plan.width,
        },
        "postprocess": {"kind": "heatmap", "channel": 0, "range": [0.0, 1.0], "threshold": 0.5,
                        "zero_channels": [1, 2]},
        "tiling": {"mode": b.options.mode.value, **b.plan.to_manifest(),
                   **({"pad": list(FullyConvolutionalFullImage(b.network, b.plan.height, b.plan.width).pad),
                       "pad_mode": "reflect"} if b.options.mode is Mode.FCN else {})},
        "arch": ckpt["arch"],
        "checkpoint": {"file": Path(b.options.checkpoint).name, "sha256": checkpoint_sha, "epoch": ckpt["epoch"],
                       "metrics": ckpt.get("metrics", {}), "seed": ckpt["seed"]},
        "producer": {"sdk": _sdk_version(), "torch": str(torch.__version__), "onnx": onnx.__version__,
                     "onnxruntime": onnxruntime.__version__, "onnxsim": onnxsim.__version__,
                     "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
    }


def build(options: BuildOptions) -> BuildResult:
    """Export, simplify, verify and hash every requested graph into a new bundle.

    Args:
        options: what to build (precisions, layers, mode, calibration, ...).

    Returns:
        The bundle path, its manifest and the parity figures.

    Raises:
        InvalidInputError: bad options, an existing bundle without ``force``, bad calibration images.
        ModelLoadError: an unreadable checkpoint, another family's or one with missing keys.
        ExportError: a graph that fails its checks (PyTorch parity, zero channels, NaN).

    Example:
        >>> build(BuildOptions(checkpoint=Path("runs/brn/best.pth"), out=Path("bundles/brn")))
    """
    started = time.perf_counter()
    _validate(options)
    out = Path(options.out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{time.time_ns()}"
    staging.mkdir()
    try:
        manifest, parity = _build_into(options, staging)
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildResult(out, manifest, parity, time.perf_counter() - started)


def _move_into_place(staging: Path, out: Path) -> None:
    if out.exists():
        trash = out.parent / f".{out.name}.old-{time.time_ns()}"
        out.rename(trash)
        staging.rename(out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        staging.rename(out)


def _build_into(options: BuildOptions, staging: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    b = _Builder(options, staging)
    progress = options.progress
    images, masks = synthetic_images(options.parity_images, b.image_type, seed=options.seed)
    images01 = images * np.float32(b.family.input_scale)
    if options.calibration is not None:
        calib = folder_images(Path(options.calibration), b.image_type, CALIBRATION_FOLDER_LIMIT)
    else:
        calib, _ = synthetic_images(options.calibration_synthetic, b.image_type, seed=options.seed + 1)
    calib01 = calib * np.float32(b.family.input_scale)
    common = _common_manifest(b, sha256_file(options.checkpoint))

    steps = [(layer, precision) for layer in options.layers for precision in options.precisions
             if not (layer is Layer.BASE and precision is not Precision.FP32)]
    bar = tqdm(total=len(steps) + 1, desc="export", unit="step", disable=None if progress else True)
    bar.set_postfix_str("PyTorch reference")
    references: dict[Layer, np.ndarray] = {}
    inputs: dict[Layer, np.ndarray] = {}
    for layer in options.layers:
        inputs[layer] = b.layer_inputs(layer, images01, per_image=2)
        references[layer] = b.torch_forward(b.module(layer), inputs[layer]).astype(np.float64)
    reference_metrics = segmentation_aurocs(masks, references[Layer.FULL][:, 0])
    stitched_vs_fcn = None
    if options.mode is Mode.FCN:
        stitched = b.torch_forward(b.module(Layer.FULL, Mode.STITCHED), images01)
        stitched_metrics = segmentation_aurocs(masks, stitched[:, 0])
        stitched_vs_fcn = {
            "max_abs_diff": float(np.abs(stitched - references[Layer.FULL]).max()),
            "mean_abs_diff": float(np.abs(stitched - references[Layer.FULL]).mean()),
            "pixel_auroc_delta": reference_metrics["pixel_auroc"] - stitched_metrics["pixel_auroc"],
            "image_auroc_delta": reference_metrics["image_auroc"] - stitched_metrics["image_auroc"],
        }
    bar.update()

    keep_float: list[str] = []
    quant_log: list[dict[str, Any]] = []
    for layer in options.layers:
        layer_masks = masks if layer is Layer.FULL else None
        fp32 = None
        quantizer = None
        layer_precisions = [p for p in options.precisions if not (layer is Layer.BASE and p is not Precision.FP32)]
        try:
            for precision in layer_precisions:
                bar.set_postfix_str(f"{_graph_name(layer, precision)}")
                if precision is Precision.FP32:
                    model = fp32 = b.export_fp32(layer)
                    extra: dict[str, Any] = {}
                elif precision is Precision.FP16:
                    model = b.derive(layer, precision, fp32, None, [])
                    extra = {}
                else:
                    calib_inputs = b.layer_inputs(layer, calib01, per_image=4)
                    quantizer = Quantizer(fp32, calib_inputs, options.quant, progress)
                    if layer is Layer.FULL:
                        model, keep_float, quant_log = _accuracy_aware_int8(
                            b, fp32, quantizer, inputs[layer], masks, reference_metrics, options)
                    else:
                        # Keep the same nodes in float as the full-image graph (same network, other prefix).
                        model = b.derive(layer, precision, fp32, quantizer, _map_nodes(keep_float, fp32))
                    extra = {"float_nodes": float_nodes(model)}
                entry = b.compare(layer, precision, model, inputs[layer], references[layer], layer_masks)
                report = b.simplify_reports[(layer, precision)]
                entry.update({"nodes_before_simplify": report.nodes_before, "nodes_after_simplify": report.nodes_after,
                              "simplify_changes": report.changes()})
                b.save(layer, precision, model, common, extra)
                entry["bytes"] = b.graphs[-1]["bytes"]
                if "float_nodes" in extra:
                    entry["float_nodes"] = extra["float_nodes"]
                b.parity.append(entry)
                bar.update()
        finally:
            if quantizer is not None:
                quantizer.close()
    bar.close()

    full_layers = [g for g in b.graphs if g["layer"] == "full"]
    manifest = {**common, "graphs": b.graphs, "default_graph": full_layers[0]["file"]}
    parse_manifest(manifest, source="generated manifest")  # the runtime must accept what we write
    parity = {
        "reference": {"framework": "pytorch", "precision": "fp32", "mode": options.mode.value,
                      "images": options.parity_images, **reference_metrics},
        "graphs": b.parity,
        "int8_search": quant_log,
        "max_auroc_drop": options.max_auroc_drop,
        "stitched_vs_fcn": stitched_vs_fcn,
    }
    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    (staging / "parity.json").write_text(json.dumps(parity, indent=2) + "\n", encoding="utf-8")
    (staging / "report.md").write_text(_report.markdown(manifest, parity), encoding="utf-8")
    return manifest, parity


def _map_nodes(names: list[str], model: onnx.ModelProto) -> list[str]:
    """Full-graph node names -> the same nodes in a lower-layer graph (matched by their name's tail)."""
    own = [n.name for n in model.graph.node]
    mapped = []
    for name in names:
        tail = name.split("/network/", 1)[-1]
        mapped += [n for n in own if n.endswith("/network/" + tail) or n == name]
    return mapped


def _accuracy_aware_int8(b: _Builder, fp32: onnx.ModelProto, quantizer: Quantizer, inputs: np.ndarray,
                         masks: np.ndarray, reference: dict[str, float], options: BuildOptions
                         ) -> tuple[onnx.ModelProto, list[str], list[dict[str, Any]]]:
    """Quantize; while pixel AUROC drops too much, keep more of the most sensitive nodes in float."""
    keep: list[str] = []
    attempts: list[dict[str, Any]] = []
    ranking: list[tuple[str, float]] | None = None
    while True:
        model = b.derive(Layer.FULL, Precision.INT8, fp32, quantizer, keep)
        heat = run_batches(session(model), inputs)[:, 0]
        metrics = segmentation_aurocs(masks, heat)
        drop = reference["pixel_auroc"] - metrics["pixel_auroc"]
        attempts.append({"kept_float": list(keep), "pixel_auroc": metrics["pixel_auroc"], "pixel_auroc_drop": drop})
        log.info("INT8 with %d nodes in float: pixel AUROC drop %.4f", len(keep), drop)
        if drop <= options.max_auroc_drop or len(keep) >= options.max_float_nodes:
            if drop > options.max_auroc_drop:
                log.warning("INT8 pixel AUROC still drops by %.4f with %d nodes in float; kept the last attempt",
                            drop, len(keep))
            return model, keep, attempts
        if ranking is None:
            ranking = rank_sensitive_nodes(fp32, model, inputs[:1])
        keep = [name for name, _ in ranking[:max(1, 2 * len(keep))]]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m export.build", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True, help="a .pth written by training.train")
    p.add_argument("--out", type=Path, required=True, help="bundle folder to create")
    p.add_argument("--precisions", default="fp32,fp16,int8", help="comma list of fp32, fp16, int8")
    p.add_argument("--layers", default="full", help="comma list of base, patch, full (full is always built)")
    p.add_argument("--mode", default="stitched", choices=[m.value for m in Mode])
    p.add_argument("--opset", type=int, default=17)
    cal = p.add_mutually_exclusive_group()
    cal.add_argument("--calibration", type=Path,
                     help=f"folder of representative images for INT8 (the first {CALIBRATION_FOLDER_LIMIT} are used)")
    cal.add_argument("--calibration-synthetic", type=int, default=16, metavar="N",
                     help="synthetic calibration strips (default 16)")
    p.add_argument("--parity-images", type=int, default=16, help="synthetic images the parity report uses")
    p.add_argument("--no-simplify", action="store_true", help="skip onnxsim")
    p.add_argument("--max-auroc-drop", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="replace an existing bundle")
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    options = BuildOptions(
        checkpoint=args.checkpoint, out=args.out, precisions=args.precisions, layers=args.layers,
        mode=args.mode, opset=args.opset, calibration=args.calibration,
        calibration_synthetic=args.calibration_synthetic, parity_images=args.parity_images,
        simplify=not args.no_simplify, force=args.force, max_auroc_drop=args.max_auroc_drop, seed=args.seed,
        progress=not args.no_progress)
    try:
        result = build(options)
    except SdkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_report.summary_table(result.manifest, result.parity))
    print(f"\nwrote {result.bundle} in {result.seconds:.0f} s")
    print(f"run it: python -m runtime.infer {result.bundle} IMAGES... --out predictions")
    return 0
