"""libruntime (the SDK's C++ runtime) through its pybind11 shim ``runtime._native``.

The graph runs on ONNX Runtime's C API inside libruntime, the same engine as the
``onnxruntime`` backend, so results match it exactly on the CPU; what this
backend adds is the C++ path production hosts use, tested from Python. Like every
backend it runs the prescaled tensors the Python session prepares
(:mod:`runtime._preprocess`) and returns every output by name; libruntime's own
pre-processing (the C++ twin) is exercised by ``tests/bindings``.

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


def _spec(tensor: dict) -> TensorSpec:
    """A tensor as the shim reports it (shape None = the dynamic batch axis) -> TensorSpec."""
    shape = tuple("batch" if d is None else int(d) for d in tensor["shape"])
    return TensorSpec(tensor["name"], shape, tensor["dtype"], tensor["role"])


class NativeBackend(BackendImpl):
    """libruntime fed the prescaled tensors: the session has already read, checked and pre-processed."""

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
        self.inputs = tuple(_spec(t) for t in self._session.inputs)
        self.outputs = tuple(_spec(t) for t in self._session.outputs)
        log.info("native %s on %s, %d intra-op threads, spinning %s", source, self.device, threads, options.spinning)

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Input name -> prescaled float32 NCHW batch; every output by name, batch first.

        libruntime feeds one input, the image (it refuses graphs with others at load),
        reads it in place and writes each output into a fresh numpy array, GIL released.
        """
        image = self.inputs[0].name
        if set(feeds) != {image}:
            raise BackendError(f"the native backend feeds the graph's one input {image!r}; got {sorted(feeds)}")
        batch = np.ascontiguousarray(feeds[image], dtype=np.float32)
        outputs, _ = self._session.run(batch, layout="chw", prescaled=True)
        return outputs

    def close(self) -> None:
        self._session = None


def load(model: bytes, *, device: str, options: SessionOptions, source: str) -> NativeBackend:
    return NativeBackend(model, device=device, options=options, source=source)
