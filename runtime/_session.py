"""``runtime.Session`` and ``runtime.infer``: verified bundles in, the family's typed results out."""

from __future__ import annotations

import dataclasses
import json
import logging
import numbers
import os
import threading
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from runtime import _backends
from runtime._choice import Choice, decide, explain
from runtime._errors import BackendError, InvalidInputError, ModelLoadError
from runtime._family import RuntimeFamily
from runtime._letterbox import Transform
from runtime._manifest import (
    MANIFEST_NAME,
    MAX_GRAPH_BYTES,
    GraphEntry,
    Manifest,
    TensorSpec,
    graph_payload,
    graph_payload_sha256,
    loads_json,
    model_metadata,
    parse_manifest,
    read_manifest,
    read_regular_file,
    read_verified_graph,
)
from runtime._options import Backend, Precision, SessionOptions, parse_enum, trim
from runtime._preprocess import prepare
from runtime._registry import get_family
from runtime._results import Result

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]
#: One image (a path or a 3-D array) or a batch (a list of those, or a 4-D array).
ImageInput = Union[PathLike, np.ndarray, Sequence[Union[PathLike, np.ndarray]]]

class _ModelSource:
    """A bundle directory or a lone .onnx file: its manifest and its verified full-image graphs."""

    def __init__(self, model: PathLike) -> None:
        if not isinstance(model, (str, os.PathLike)):
            raise InvalidInputError(f"model must be a path (str or os.PathLike) to a bundle directory or an .onnx "
                                    f"file, got {type(model).__name__}")
        self.path = Path(model)
        self.lone: tuple[GraphEntry, bytes] | None = None
        try:
            is_dir = self.path.is_dir()
        except OSError as exc:  # a name too long, a permission denied on the way...
            raise ModelLoadError(f"cannot look at model {self.path}: {exc.strerror or exc}") from exc
        if is_dir:
            self.manifest = read_manifest(self.path)
        elif self.path.suffix.lower() == ".onnx" and os.path.lexists(self.path):
            # Not is_file(): a FIFO or a device named *.onnx gets the opener's exact refusal.
            self.manifest, self.lone = _read_lone_graph(self.path)
        elif not self.path.exists():
            raise ModelLoadError(f"model not found: {self.path}; expected a bundle directory or an .onnx file")
        else:
            raise ModelLoadError(f"{self.path} is neither a bundle directory (with {MANIFEST_NAME}) "
                                 f"nor an .onnx file")

    def precisions(self) -> list[str]:
        return self.manifest.precisions("full")

    def graph(self, precision: str) -> tuple[GraphEntry, bytes]:
        """The full-image graph of ``precision`` and its bytes, after checking its hash."""
        if self.lone is not None:
            entry, data = self.lone
            if entry.precision != precision:
                raise ModelLoadError(f"{self.path} is the {entry.precision} graph; {precision} was asked for "
                                     f"(pass precision='{entry.precision}' or 'auto', or the bundle directory)")
            return entry, data
        entry = self.manifest.graph(layer="full", precision=precision)
        return entry, read_verified_graph(self.path, entry)


def _read_lone_graph(path: Path) -> tuple[Manifest, tuple[GraphEntry, bytes]]:
    data = read_regular_file(path, what="graph", max_bytes=MAX_GRAPH_BYTES)
    meta = model_metadata(data)
    if "sdk.manifest" not in meta or "sdk.graph_sha256" not in meta:
        raise ModelLoadError(f"{path} carries no SDK manifest (metadata 'sdk.manifest' and 'sdk.graph_sha256'); "
                             f"it was not written by export.build: pass its bundle directory instead")
    actual = graph_payload_sha256(graph_payload(data))
    if actual != meta["sdk.graph_sha256"]:
        raise ModelLoadError(f"graph in {path} does not match its embedded manifest: sha256 {actual[:16]}..., "
                             f"expected {meta['sdk.graph_sha256'][:16]}... (modified or truncated)")
    try:
        embedded = loads_json(meta["sdk.manifest"])
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        raise ModelLoadError(f"{path}: unreadable embedded manifest ({exc!r})") from exc
    manifest = parse_manifest(embedded, source=f"{path} (embedded manifest)", embedded=True)
    entry = manifest.graphs[0]
    if entry.layer != "full":
        raise ModelLoadError(f"{path} is a {entry.layer}-layer graph; the runtime runs full-image graphs "
                             f"(model.<precision>.onnx)")
    return manifest, (entry, data)


def _parse_device(device: str) -> str:
    if not isinstance(device, str) or not trim(device):
        raise InvalidInputError(f"device must be a string such as 'auto', 'cpu', 'cuda' or 'cuda:1', got {device!r}")
    return trim(device).lower()


def _fmt(spec: TensorSpec) -> str:
    return f"{spec.name!r} ({', '.join(map(str, spec.shape))}) {spec.dtype}"


def _check_graph(entry: GraphEntry, graph_inputs: tuple[TensorSpec, ...], graph_outputs: tuple[TensorSpec, ...],
                 source: str) -> None:
    """The graph's real inputs/outputs must be what the manifest declares (names, ranks, static dims, dtypes)."""
    for kind, declared, actual in (("inputs", entry.inputs, graph_inputs), ("outputs", entry.outputs, graph_outputs)):
        problem = None
        if len(declared) != len(actual):
            problem = f"{len(declared)} {kind} declared, the graph has {len(actual)}"
        else:
            for d, a in zip(declared, actual):
                if d.name != a.name or d.dtype != a.dtype or len(d.shape) != len(a.shape) or any(
                        _dims_conflict(dd, ad) for dd, ad in zip(d.shape, a.shape)):
                    problem = f"the manifest declares {_fmt(d)}, the graph has {_fmt(a)}"
                    break
        if problem:
            raise ModelLoadError(f"manifest and graph {source} disagree on {kind}: {problem}")


def _dims_conflict(declared: int | str, actual: int | str) -> bool:
    if isinstance(declared, int):
        return isinstance(actual, int) and actual != declared  # a dynamic graph axis accepts the size
    return isinstance(actual, int)  # a dynamic axis in the manifest must be dynamic in the graph


class Session:
    """A loaded, verified model ready for repeated inference.

    Loading reads the bundle's ``manifest.json`` (or the manifest embedded in a
    lone ``.onnx``), checks the graph's sha256 *before* handing it to an engine
    (the verified bytes are what is loaded, not a second read of the file), and
    checks the graph's real inputs and outputs against the manifest.

    What ``"auto"`` runs (:mod:`runtime._choice` holds the rule; ``session.choice.reason``
    says what decided it, and it is logged at INFO level):

    * measured: when the bundle holds a ``tune.json`` that ``python -m runtime.tune`` wrote
      on this machine for this bundle, the fastest backend x precision it measured among
      those within the bundle's accuracy guard (and fitting a backend or precision you fixed);
    * otherwise ``backend="auto"``: ONNX Runtime for ``device`` cpu/cuda/tensorrt/auto (it is
      the base install and the only engine with CUDA); OpenVINO for OpenVINO-only devices
      (``"gpu"``, ``"npu"``). OpenVINO on the CPU is opt-in or measured: which engine wins
      depends on the model and the CPU;
    * ``device="auto"``: CUDA when the installed onnxruntime offers the CUDA provider
      (onnxruntime-gpu), else the CPU. TensorRT is opt-in (``device="tensorrt"``): its first
      run builds an engine for minutes;
    * ``precision="auto"``: FP16 on CUDA/TensorRT unless its graph failed the accuracy
      guard. On a CPU, INT8 when the bundle's INT8
      graph passed its accuracy guard at export (the family's metrics, image decisions and
      e.g. pixel F1 at the manifest's threshold, against PyTorch FP32: ``graph.accuracy``)
      and the CPU has an INT8 dot product (VNNI, AMX, Arm dotprod); else FP32. FP16 is never
      chosen on a CPU (slower than FP32 without native half arithmetic), nor INT8 from a
      bundle that predates the accuracy record. Pass ``precision="fp32"`` for results equal to
      PyTorch's within 1e-4.

    ``run`` is safe to call from several threads at once: ONNX Runtime sessions
    are thread-safe, and the OpenVINO backend gives each concurrent call its own
    infer request from a pool.

    Args:
        model: a bundle directory or a ``model.<precision>.onnx`` file written by ``export.build``.
        backend: ``"auto"``, ``"onnxruntime"`` or ``"openvino"`` (or a :class:`Backend`).
        device: ``"auto"``, ``"cpu"``, ``"cuda"``/``"cuda:N"``, ``"tensorrt"`` (ONNX Runtime), or an
            OpenVINO device name (``"gpu"``, ``"npu"``).
        precision: ``"auto"``, ``"fp32"``, ``"fp16"`` or ``"int8"`` (or a :class:`Precision`).
        threads: intra-op threads; shortcut for ``options.threads``.
        threshold: decision threshold in 0..1 the family's decoding uses (a heatmap's ``mask``);
            default: the manifest's.
        options: :class:`SessionOptions` (threads, spinning, OpenVINO hints, batch size).

    Raises:
        InvalidInputError: an unknown backend, device or precision name, a bad threshold.
        ModelLoadError: no such model, a missing/tampered graph, a manifest that disagrees with its graph.
        ImportError: the requested backend is not installed (the message says what to install).
        BackendError: the device cannot be used (e.g. ``device="cuda"`` without onnxruntime-gpu).

    Example:
        >>> with Session("bundles/brn", precision="int8") as session:
        ...     result = session.run("image_000.tiff")
        ...     results = session.run(["a.tiff", "b.png"])
        >>> result.score, result.mask.shape
        (0.93, (256, 256))
    """

    def __init__(self, model: PathLike, *, backend: str | Backend = "auto", device: str = "auto",
                 precision: str | Precision = "auto", threads: int | None = None, threshold: float | None = None,
                 options: SessionOptions | None = None) -> None:
        if options is not None and not isinstance(options, SessionOptions):
            raise InvalidInputError(f"options must be a SessionOptions, got {type(options).__name__}")
        options = options or SessionOptions()
        if threads is not None:
            options = dataclasses.replace(options, threads=threads)
        backend = parse_enum(Backend, backend, "backend")
        precision = parse_enum(Precision, precision, "precision")
        device = _parse_device(device)
        if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, numbers.Real)
                                      or not 0.0 <= threshold <= 1.0):
            raise InvalidInputError(f"threshold must be a number in 0..1, got {threshold!r}")
        if threshold is not None:
            threshold = float(threshold)  # a numpy scalar too: results and summaries carry a plain float
        source = _ModelSource(model)
        manifest = source.manifest
        family = get_family(manifest.family)
        choice, device = decide(manifest, source.precisions(), backend, precision, device,
                                None if source.lone else source.path)
        if backend is Backend.AUTO or precision is Precision.AUTO:
            log.info("%s", explain(choice))
        entry, data = source.graph(choice.precision)
        label = str(source.path if source.lone else source.path / entry.file)
        impl = _backends.load(choice.backend, data, device=device, options=options, source=label)
        try:
            _check_graph(entry, impl.inputs, impl.outputs, label)
        except ModelLoadError:
            impl.close()
            raise

        self._impl: _backends.BackendImpl | None = impl
        self._manifest = manifest
        self._family: RuntimeFamily = family
        self._entry = entry
        self._choice = choice
        self._image_input = entry.image_input().name
        self._options = options
        self._path = source.path
        self._threshold = threshold
        # Guards _impl and _runs: close() waits for the runs in progress (see close).
        self._lock = threading.Condition()
        self._runs = 0
        log.info("session %s: %s %s %s on %s (%s)", label, manifest.family, impl.name, entry.precision, impl.device,
                 ", ".join(impl.providers))

    # -- properties ------------------------------------------------------------------------
    @property
    def manifest(self) -> Manifest:
        """The manifest (of the bundle, or embedded in the lone .onnx file)."""
        return self._manifest

    @property
    def path(self) -> Path:
        """The bundle directory or .onnx file the session was opened from."""
        return self._path

    @property
    def graph(self) -> GraphEntry:
        """The manifest entry of the graph that runs."""
        return self._entry

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The graph's inputs as the manifest declares them (checked against the graph at load)."""
        return self._entry.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._entry.outputs

    @property
    def backend(self) -> str:
        return self._live().name

    @property
    def device(self) -> str:
        return self._live().device

    @property
    def providers(self) -> tuple[str, ...]:
        """ONNX Runtime execution providers in use, or the OpenVINO device."""
        return self._live().providers

    @property
    def precision(self) -> str:
        return self._entry.precision

    @property
    def choice(self) -> Choice:
        """The backend and precision that run and why (what decided ``"auto"``, or "as asked")."""
        return self._choice

    @property
    def family(self) -> RuntimeFamily:
        """The model family's runtime part (decoding, metrics, pictures)."""
        return self._family

    @property
    def threshold(self) -> float:
        """The decision threshold in use: the one given to the session, else the manifest's."""
        return self._manifest.postprocess.default_threshold if self._threshold is None else self._threshold

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width) of the graph's input; images of another size are letterboxed when the manifest says so."""
        pre = self._manifest.preprocess
        return pre.height, pre.width

    @property
    def options(self) -> SessionOptions:
        return self._options

    @property
    def closed(self) -> bool:
        return self._impl is None

    # -- inference -------------------------------------------------------------------------
    def run(self, images: ImageInput) -> Result | list[Result]:
        """Run the model on one image or a batch.

        Args:
            images: one image -- a TIFF/PNG/JPEG path or a 3-D array (CHW or HWC, float in the
                manifest's source range or uint8) -- or a batch: a list of those or a 4-D array
                (N, C, H, W) / (N, H, W, C). Channel counts, layouts and sizes are the manifest's
                (``manifest.preprocess``); letterboxing families accept any size from
                ``preprocess.min_size`` pixels on a side, and a list may mix sizes (each image is
                letterboxed on its own).

        Returns:
            The family's result type (e.g. :class:`HeatmapResult`) for one image, a list of them
            for a batch (same order).

        Raises:
            InvalidInputError: an image that does not fit the manifest (the message names the
                image, what was expected and what was received).
            BackendError: the engine failed, or the session is closed.

        Example:
            >>> session.run(np.zeros((256, 256, 3), np.uint8)).score
            0.01
        """
        items, sources, single = _split_batch(images)
        pre = self._manifest.preprocess
        prepared = [prepare(item, pre, source=src, what=f"{self._manifest.family} {self._manifest.variant}")
                    for item, src in zip(items, sources)]
        with self._lock:
            impl = self._live()
            self._runs += 1
        try:
            results: list[Result] = []
            step = self._options.batch_size
            for start in range(0, len(prepared), step):
                chunk = prepared[start:start + step]
                outputs = impl.run({self._image_input: np.stack([tensor for tensor, _ in chunk])})
                results += self._decode(outputs, [t for _, t in chunk], sources[start:start + step])
        finally:
            with self._lock:
                self._runs -= 1
                self._lock.notify_all()
        return results[0] if single else results

    def _decode(self, outputs: dict[str, np.ndarray], transforms: list[Transform], sources: list[str]
                ) -> list[Result]:
        for spec in self._entry.outputs:
            value = outputs.get(spec.name)
            if value is None or value.ndim != len(spec.shape) or value.shape[0] != len(sources) or any(
                    isinstance(d, int) and d != v for d, v in zip(spec.shape[1:], value.shape[1:])):
                got = None if value is None else value.shape
                raise BackendError(f"{self.backend} returned {spec.name!r} of shape {got} for a batch of "
                                   f"{len(sources)}; the manifest declares {list(spec.shape)}")
        return self._family.decode(outputs, transforms, self._manifest.postprocess, sources=sources,
                                   threshold=self._threshold)

    # -- life cycle ------------------------------------------------------------------------
    def _live(self) -> _backends.BackendImpl:
        impl = self._impl
        if impl is None:
            raise BackendError("the session is closed")
        return impl

    def close(self) -> None:
        """Release the engine; later ``run`` calls raise :class:`BackendError`. Idempotent.

        Runs in progress on other threads finish first (``close`` waits for them): releasing
        the engine under a run made it fail half-way with an engine error or an AttributeError.
        """
        with self._lock:
            impl, self._impl = self._impl, None
            self._lock.wait_for(lambda: self._runs == 0)
        if impl is not None:
            impl.close()

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        if self._impl is None:
            return f"Session({str(self._path)!r}, closed)"
        return (f"Session({str(self._path)!r}, backend={self.backend!r}, device={self.device!r}, "
                f"precision={self.precision!r}, threads={self._options.resolved_threads()})")


def _split_batch(images: ImageInput) -> tuple[list[Any], list[str], bool]:
    """One image or a batch -> (items, their sources, whether it was one image)."""
    if isinstance(images, (str, os.PathLike)):
        return [images], [str(images)], True
    if isinstance(images, np.ndarray):
        if images.ndim == 3:
            return [images], ["array"], True
        if images.ndim == 4:
            return list(images), [f"array[{i}]" for i in range(len(images))], False
        raise InvalidInputError(f"expected an image (C, H, W) / (H, W, C) or a batch (N, C, H, W) / "
                                f"(N, H, W, C), got an array of shape {images.shape}")
    if isinstance(images, (list, tuple)):
        sources = [str(item) if isinstance(item, (str, os.PathLike)) else f"images[{i}]"
                   for i, item in enumerate(images)]
        return list(images), sources, False
    raise InvalidInputError(f"expected a path, a numpy array or a list of them, got {type(images).__name__}")


def infer(model: PathLike, images: ImageInput, **options: Any) -> Result | list[Result]:
    """Load ``model``, run it on ``images`` once and release it (no cache: use :class:`Session` to repeat).

    Args:
        model: a bundle directory or a ``model.<precision>.onnx`` file.
        images: one image (path or array) or a batch, as :meth:`Session.run` takes.
        **options: keyword arguments of :class:`Session` (backend, device, precision, threads,
            threshold, options).

    Returns:
        The family's result (e.g. a :class:`HeatmapResult`), or a list of them for a batch.

    Raises:
        The errors of :class:`Session` and :meth:`Session.run`.

    Example:
        >>> runtime.infer("bundles/brn", "image_000.tiff", precision="int8").defect_pixels
        17
    """
    with Session(model, **options) as session:
        return session.run(images)
