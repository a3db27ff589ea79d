"""One small interface over the inference engines; each engine is imported only when asked for.

A backend loads a verified graph (its bytes, already hashed: what was checked is
what runs), runs named input tensors and returns every output by name, and is
closed. Everything before (reading, validation, scaling, letterboxing) and after
(the family's decoding) lives in :mod:`runtime._session`, shared by all backends.
"""

from __future__ import annotations

import abc
import importlib
import importlib.util
from typing import Any

import numpy as np

from runtime._manifest import TensorSpec
from runtime._options import Backend, SessionOptions

#: The optional package behind each backend and what to install when it is missing.
_PACKAGES = {
    Backend.ONNXRUNTIME: ("onnxruntime", "pip install onnxruntime  (or 'edge-vision-sdk[gpu]' for CUDA)"),
    Backend.OPENVINO: ("openvino", "pip install 'edge-vision-sdk[openvino]'"),
    Backend.NATIVE: ("onnxruntime", "pip install -e . (builds libruntime and its Python module)"),
}


class BackendImpl(abc.ABC):
    """A loaded graph on one engine and device. ``run`` must be safe to call from several threads."""

    #: engine name, e.g. "onnxruntime"
    name: str
    #: device actually used, e.g. "cpu", "cuda:0"
    device: str
    #: what runs the graph: ORT execution providers, or the OpenVINO device(s)
    providers: tuple[str, ...]
    #: the graph's own inputs and outputs (not the manifest's)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @abc.abstractmethod
    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Input name -> batch (float32, batch first) in; every output by name out, batch first."""

    @abc.abstractmethod
    def close(self) -> None:
        """Free the engine's resources; ``run`` must not be called afterwards."""


def is_available(backend: Backend) -> bool:
    """Whether the package behind ``backend`` can be imported (without importing it)."""
    return importlib.util.find_spec(_PACKAGES[backend][0]) is not None


def _module(backend: Backend) -> Any:
    package, install = _PACKAGES[backend]
    try:
        importlib.import_module(package)
    except ImportError as exc:
        raise ImportError(f"backend {backend.value!r} needs the {package!r} package, which cannot be imported "
                          f"({exc}); install it with: {install}") from exc
    return importlib.import_module(f"runtime._backends.{backend.value}")


def default_device(backend: Backend) -> str:
    """The device ``device="auto"`` means for ``backend`` (imports the engine)."""
    return _module(backend).default_device()


def load(backend: Backend, model: bytes, *, device: str, options: SessionOptions, source: str) -> BackendImpl:
    """Load ``model`` (serialized ONNX) on ``backend``.

    Raises:
        ImportError: the engine is not installed (the message says what to install).
        BackendError: the device is not usable with this engine.
        ModelLoadError: the engine cannot load the graph.
    """
    return _module(backend).load(model, device=device, options=options, source=source)
