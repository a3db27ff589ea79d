"""Static INT8 (QDQ) quantization with ONNX Runtime's tooling, plus a per-node sensitivity probe."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np
import onnx
from onnxruntime.quantization.shape_inference import quant_pre_process
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from tqdm import tqdm

from export._onnx import session

log = logging.getLogger(__name__)


class _ArrayReader(CalibrationDataReader):
    """Feeds calibration images one at a time, with a progress bar."""

    def __init__(self, input_name: str, images: np.ndarray, progress: bool) -> None:
        self._input_name = input_name
        self._images = images
        self._bar = tqdm(total=len(images), desc="calibrating", unit="img", disable=None if progress else True, leave=False)
        self._iter: Iterator[np.ndarray] = iter(images)

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self._iter, None)
        if image is None:
            self._bar.close()
            return None
        self._bar.update()
        return {self._input_name: image[None]}

    def rewind(self) -> None:
        self._iter = iter(self._images)


@dataclass
class QuantSettings:
    """How activations and weights are quantized.

    U8 activations with S8 per-channel weights is the combination ONNX Runtime's
    x86 kernels are fastest with on VNNI CPUs (AVX-VNNI i5s included);
    ``reduce_range`` (7-bit weights) avoids saturation on AVX2 CPUs without VNNI.
    """

    per_channel: bool = True
    reduce_range: bool = False
    activation_type: QuantType = QuantType.QUInt8
    weight_type: QuantType = QuantType.QInt8
    method: CalibrationMethod = CalibrationMethod.MinMax


@dataclass
class Quantizer:
    """Quantizes one FP32 graph repeatedly (with other nodes kept in float) from one calibration."""

    fp32: onnx.ModelProto
    calibration: np.ndarray  # (N, 3, H, W) network input in 0..1
    settings: QuantSettings = field(default_factory=QuantSettings)
    progress: bool = False

    def __post_init__(self) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="quant-")
        self._cache = Path(self._workdir.name) / "calibration.json"
        self._source = Path(self._workdir.name) / "fp32.onnx"
        # The caller's try/finally (or with) only starts once the constructor returns:
        # a failure or an interrupt (SIGTERM turned into SystemExit by the build)
        # during the pre-pass must remove the folder here.
        try:
            # ONNX Runtime's recommended pre-pass: symbolic shape inference and graph
            # optimisation, so that the quantizer sees every tensor's shape.
            # (Symbolic shape inference gives up on the stitching's Reshape; ONNX's own suffices.)
            raw = Path(self._workdir.name) / "exported.onnx"
            onnx.save(self.fp32, raw)
            quant_pre_process(raw, self._source, skip_optimization=False, skip_symbolic_shape=True)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> "Quantizer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def quantize(self, keep_float: list[str] | tuple[str, ...] = ()) -> onnx.ModelProto:
        """QDQ-quantize every supported node except ``keep_float``; calibration runs once and is cached."""
        out = Path(self._workdir.name) / "int8.onnx"
        reader = None if self._cache.is_file() else _ArrayReader(
            self.fp32.graph.input[0].name, self.calibration, self.progress)
        quantize_static(
            self._source, out, reader, quant_format=QuantFormat.QDQ, per_channel=self.settings.per_channel,
            reduce_range=self.settings.reduce_range, activation_type=self.settings.activation_type,
            weight_type=self.settings.weight_type, calibrate_method=self.settings.method,
            nodes_to_exclude=list(keep_float), calibration_cache_path=self._cache,
            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        return onnx.load(out)

    def close(self) -> None:
        """Remove the working folder (idempotent)."""
        self._workdir.cleanup()


def float_nodes(model: onnx.ModelProto, op_types: tuple[str, ...] = ("Conv", "MatMul", "Gemm")) -> list[str]:
    """Compute nodes of a QDQ model whose weight is not fed by a DequantizeLinear (they run in float)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    left = []
    for node in model.graph.node:
        if node.op_type in op_types and len(node.input) > 1:
            weight = producers.get(node.input[1])
            if weight is None or weight.op_type != "DequantizeLinear":
                left.append(node.name)
    return left


def rank_sensitive_nodes(fp32: onnx.ModelProto, int8: onnx.ModelProto, sample: np.ndarray,
                         op_types: tuple[str, ...] = ("Conv",)) -> list[tuple[str, float]]:
    """Conv nodes ordered by how much relative error quantizing them adds.

    Both graphs keep the FP32 tensor names on each node's output, so one run of
    each with those tensors exposed gives every node's output error; a node's
    score is its output error minus the largest error arriving on its inputs,
    i.e. what the node itself contributes.
    """
    candidates = [n for n in fp32.graph.node if n.op_type in op_types]
    tensors = sorted({t for n in candidates for t in (n.input[0], n.output[0])})

    def run(model: onnx.ModelProto) -> dict[str, np.ndarray]:
        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        known = {o.name for o in probe.graph.output}
        produced = {o for n in probe.graph.node for o in n.output} | {i.name for i in probe.graph.input}
        for name in tensors:
            if name not in known and name in produced:
                probe.graph.output.append(onnx.ValueInfoProto(name=name))
        sess = session(probe)
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: sample})))

    ref, quant = run(fp32), run(int8)

    def rel_error(name: str) -> float:
        if name not in ref or name not in quant:
            return 0.0
        scale = float(np.linalg.norm(ref[name])) or 1.0
        return float(np.linalg.norm(quant[name] - ref[name])) / scale

    scores = [(n.name, rel_error(n.output[0]) - rel_error(n.input[0])) for n in candidates]
    return sorted(scores, key=lambda item: item[1], reverse=True)
