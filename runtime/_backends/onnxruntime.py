"""ONNX Runtime: CPU, or CUDA / TensorRT execution providers from the onnxruntime-gpu wheel.

``InferenceSession.run`` is thread-safe, so one session serves every thread.
"""

from __future__ import annotations

import logging

import numpy as np
import onnxruntime as ort

from runtime._backends import BackendImpl
from runtime._errors import BackendError, ModelLoadError
from runtime._manifest import TensorSpec
from runtime._options import GraphOptimization, SessionOptions

log = logging.getLogger(__name__)

CPU, CUDA, TENSORRT = "CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"
_GPU_INSTALL = "pip install 'edge-vision-sdk[gpu]' (onnxruntime-gpu, in an environment without the CPU wheel)"
_LEVELS = {
    GraphOptimization.DISABLED: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    GraphOptimization.BASIC: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
           "tensor(uint8)": "uint8", "tensor(int8)": "int8", "tensor(int64)": "int64"}


def default_device() -> str:
    return "cuda" if CUDA in ort.get_available_providers() else "cpu"


def _split(device: str) -> tuple[str, int]:
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "tensorrt"):
        raise BackendError(f"onnxruntime cannot run on device {device!r}; expected cpu, cuda[:N] or tensorrt[:N]")
    try:
        return kind, int(index or 0)
    except ValueError:
        raise BackendError(f"bad device index in {device!r}; expected e.g. cuda:0") from None


def _providers(kind: str, index: int) -> list:
    available = ort.get_available_providers()
    if kind == "cpu":
        return [CPU]
    wanted = [TENSORRT, CUDA] if kind == "tensorrt" else [CUDA]
    missing = [p for p in wanted if p not in available]
    if missing:
        raise BackendError(f"device {kind!r} needs the ONNX Runtime providers {missing}, but this onnxruntime "
                           f"offers {available}; {_GPU_INSTALL}")
    return [(p, {"device_id": index}) for p in wanted] + [CPU]


class OnnxRuntimeBackend(BackendImpl):
    name = "onnxruntime"

    def __init__(self, model: bytes, *, device: str, options: SessionOptions, source: str) -> None:
        kind, index = _split(device)
        providers = _providers(kind, index)
        so = ort.SessionOptions()
        so.intra_op_num_threads = options.resolved_threads()
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = _LEVELS[options.graph_optimization]
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if options.spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if options.spinning else "0")
        so.log_severity_level = 3  # warnings of the optimizers are not the user's business
        try:
            self._session = ort.InferenceSession(model, sess_options=so, providers=providers)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/... types
            raise ModelLoadError(f"onnxruntime cannot load {source}: {exc}") from exc
        active = self._session.get_providers()
        if kind != "cpu" and CUDA not in active:
            raise BackendError(f"onnxruntime could not use {kind} for {source} (active providers {active}); "
                               f"is a CUDA GPU and driver present? Use device='cpu' to run on the CPU")
        self.device = "cpu" if kind == "cpu" else f"{kind}:{index}"
        self.providers = tuple(active)
        self.inputs = tuple(_spec(a) for a in self._session.get_inputs())
        self.outputs = tuple(_spec(a) for a in self._session.get_outputs())
        self._names = [o.name for o in self.outputs]
        log.info("onnxruntime %s on %s, providers %s, %d intra-op threads, spinning %s", source, self.device,
                 list(active), so.intra_op_num_threads, options.spinning)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            return dict(zip(self._names, self._session.run(self._names, feeds)))
        except Exception as exc:
            shapes = {name: value.shape for name, value in feeds.items()}
            raise BackendError(f"onnxruntime failed on inputs {shapes}: {exc}") from exc

    def close(self) -> None:
        self._session = None


def _spec(arg) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or "?") for d in arg.shape)
    return TensorSpec(arg.name, shape, _DTYPES.get(arg.type, arg.type))


def load(model: bytes, *, device: str, options: SessionOptions, source: str) -> OnnxRuntimeBackend:
    return OnnxRuntimeBackend(model, device=device, options=options, source=source)
