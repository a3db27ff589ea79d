"""OpenVINO on the CPU (or another OpenVINO device), reading the ONNX graph directly.

Thread safety: a compiled model is shared, but an ``InferRequest`` is not
thread-safe. Each ``run`` takes an idle request from a pool (creating one when
all are busy) and returns it afterwards, so concurrent calls never share a
request and never wait on a global lock; the pool grows to the number of
threads that ever ran at once. ``AsyncInferQueue`` would do the same with
callbacks, which a synchronous ``run`` does not need.
"""

from __future__ import annotations

import logging
import queue

import numpy as np
import openvino as ov

from runtime._backends import BackendImpl
from runtime._errors import BackendError, ModelLoadError
from runtime._manifest import TensorSpec
from runtime._options import SessionOptions

log = logging.getLogger(__name__)

_DTYPES = {"f32": "float32", "f16": "float16", "f64": "float64", "u8": "uint8", "i8": "int8", "i64": "int64"}


def default_device() -> str:
    return "cpu"


class OpenVinoBackend(BackendImpl):
    name = "openvino"

    def __init__(self, model: bytes, *, device: str, options: SessionOptions, source: str) -> None:
        core = ov.Core()
        ov_device = device.upper()
        if ov_device not in core.available_devices:
            raise BackendError(f"openvino cannot run on device {device!r}; available: "
                               f"{[d.lower() for d in core.available_devices]}")
        try:
            graph = core.read_model(model)
        except Exception as exc:
            raise ModelLoadError(f"openvino cannot read {source}: {exc}") from exc
        config = {"PERFORMANCE_HINT": options.performance_hint.value}
        if ov_device == "CPU":
            config["INFERENCE_PRECISION_HINT"] = options.inference_precision.value
            config["INFERENCE_NUM_THREADS"] = str(options.resolved_threads())
        try:
            self._compiled = core.compile_model(graph, ov_device, config)
        except Exception as exc:
            raise BackendError(f"openvino cannot compile {source} for {ov_device} with {config}: {exc}") from exc
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        self.device = device.lower()
        self.providers = (ov_device,)
        self.inputs = tuple(_spec(p) for p in graph.inputs)
        self.outputs = tuple(_spec(p) for p in graph.outputs)
        self._ports = [(spec.name, port) for spec, port in zip(self.outputs, self._compiled.outputs)]
        log.info("openvino %s on %s with %s", source, ov_device, config)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        try:
            request = self._idle.get_nowait()
        except queue.Empty:
            request = self._compiled.create_infer_request()
        try:
            # share_outputs=False copies the result out of the request's buffer, which the
            # next call on this request would overwrite.
            results = request.infer(feeds, share_inputs=True, share_outputs=False)
            outputs = {name: results[port] for name, port in self._ports}
        except Exception as exc:
            shapes = {name: value.shape for name, value in feeds.items()}
            raise BackendError(f"openvino failed on inputs {shapes}: {exc}") from exc
        self._idle.put(request)
        return outputs

    def close(self) -> None:
        self._idle = queue.SimpleQueue()
        self._compiled = None


def _spec(port) -> TensorSpec:
    shape = tuple(d.get_length() if d.is_static else "?" for d in port.get_partial_shape())
    names = port.get_names()
    name = port.get_any_name() if names else ""
    return TensorSpec(name, shape, _DTYPES.get(port.get_element_type().get_type_name(), str(port.get_element_type())))


def load(model: bytes, *, device: str, options: SessionOptions, source: str) -> OpenVinoBackend:
    return OpenVinoBackend(model, device=device, options=options, source=source)
