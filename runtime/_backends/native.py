"""libruntime (the SDK's C++ runtime) through its pybind11 shim ``runtime._native``.

The graph runs on ONNX Runtime's C API inside libruntime, the same engine as the
``onnxruntime`` backend, so results match it exactly on the CPU; what this
backend adds is the C++ path production hosts use, tested from Python.

libruntime links ``libonnxruntime.so.1``; the onnxruntime wheel ships that
library as ``onnxruntime/capi/libonnxruntime.so.<version>``, a name the loader
cannot find through an rpath. :func:`native_module` loads the wheel's file
first (the loader then matches it by soname) and imports the shim. Thread
safety: libruntime's ``run`` is thread-safe and releases the GIL.
"""

from __future__ import annotations

import ctypes
import functools
import importlib
import logging
from pathlib import Path
from types import ModuleType

import numpy as np

from runtime._backends import BackendImpl
from runtime._errors import BackendError
from runtime._manifest import TensorSpec
from runtime._options import SessionOptions

log = logging.getLogger(__name__)

_BUILD_HINT = ("the native backend needs the compiled module runtime._native: install the SDK from source "
               "(pip install -e . or pip install .), which builds libruntime with CMake")


@functools.lru_cache(maxsize=None)
def native_module() -> ModuleType:
    """The ``runtime._native`` extension, after loading ONNX Runtime's library for it.

    Raises:
        ImportError: onnxruntime or the compiled module is missing (the message says what to do).
    """
    import onnxruntime

    capi = Path(onnxruntime.__file__).resolve().parent / "capi"
    libraries = sorted(capi.glob("libonnxruntime.so.*"))
    if not libraries:
        raise ImportError(f"the onnxruntime wheel has no capi/libonnxruntime.so.* in {capi}; "
                          f"libruntime links that library")
    ctypes.CDLL(str(libraries[-1]))
    try:
        return importlib.import_module("runtime._native")
    except ImportError as exc:
        raise ImportError(f"{_BUILD_HINT} ({exc})") from exc


def default_device() -> str:
    return "cpu"


def _native_device(device: str) -> str:
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return "cpu"
    if kind == "cuda" and index in ("", "0"):
        return "gpu"
    raise BackendError(f"the native backend cannot run on device {device!r}; expected cpu or cuda[:0]")


class NativeBackend(BackendImpl):
    name = "native"

    def __init__(self, model: bytes, *, device: str, options: SessionOptions, source: str) -> None:
        native = native_module()
        threads = options.resolved_threads()
        # The bytes were hashed by the session; libruntime checks the graph's embedded hash again
        # (microseconds next to compiling the graph) because it trusts no caller.
        self._session = native.Session(model, backend="onnxruntime", device=_native_device(device),
                                       threads=threads, spinning=options.spinning, name=source)
        info = self._session.info
        self.device = "cpu" if info["device"] == "cpu" else "cuda:0"
        self.providers = (f"libruntime {native.version()} / onnxruntime {native.onnxruntime_version()}",)
        shape_in = ("batch", *self._session.input_shape[1:])
        shape_out = ("batch", *self._session.output_shape[1:])
        self.inputs = (TensorSpec(info["input_name"], shape_in, "float32"),)
        self.outputs = (TensorSpec(info["output_name"], shape_out, "float32"),)
        log.info("native %s on %s, %d intra-op threads, spinning %s", source, self.device, threads, options.spinning)

    def run(self, batch: np.ndarray) -> np.ndarray:
        # Already the graph's tensor (scaled NCHW): libruntime reads it in place and writes
        # the output into a fresh numpy array, with the GIL released.
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        return self._session.run(batch, layout="chw", heatmap=False, raw=True, prescaled=True)

    def close(self) -> None:
        self._session = None


def load(model: bytes, *, device: str, options: SessionOptions, source: str) -> NativeBackend:
    return NativeBackend(model, device=device, options=options, source=source)
