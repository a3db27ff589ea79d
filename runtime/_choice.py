"""What ``backend="auto"`` and ``precision="auto"`` run, and why: one rule, one place, each choice with its reason.

The rule, in order:

1. **Measured here.** When the bundle holds a ``tune.json`` written by ``python -m
   runtime.tune`` on this machine (same CPU, libraries and bundle), the fastest
   measured backend x precision among those that fit the caller's fixed choices
   and pass the bundle's accuracy guard.
2. **Known rules.** Otherwise: the backend by device (ONNX Runtime for CPU and
   CUDA, OpenVINO for its own devices); the precision by device and accuracy
   record: FP16 on CUDA/TensorRT; on a CPU, INT8 when the graph passed the
   bundle's accuracy guard at export *and* the CPU has an INT8 dot product
   (VNNI, AMX, Arm dotprod), else FP32. FP16 never on a CPU: without native
   half-precision arithmetic it is slower than FP32.

INT8 without an accuracy record (bundles exported before the record existed)
is never picked automatically on a CPU, nor is any unrecorded graph picked from
a measurement: nothing shows it keeps the results. FP16 on a GPU keeps its
earlier rule (only a failed record stops it). Pass ``precision=`` to run any graph.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from runtime import _backends
from runtime._cpu import CpuInfo, cpu_info
from runtime._manifest import GraphEntry, Manifest
from runtime._options import Backend, Precision

log = logging.getLogger(__name__)

GPU_KINDS = ("cuda", "tensorrt")


@dataclass(frozen=True)
class Choice:
    """What a session runs and why (``Session.choice``).

    Attributes:
        backend: the engine.
        precision: the graph's precision.
        reason: one sentence for people: what decided it (a measurement, the accuracy record, the CPU).
    """

    backend: Backend
    precision: str
    reason: str


def guard_verdict(entry: GraphEntry) -> tuple[bool | None, str]:
    """Whether a full-image graph passed the bundle's accuracy guard at export, and in words.

    Returns:
        (True, "...") within the guard; (False, "...") a loss beyond its allowance, named;
        (None, "...") no record (FP32 needs none: it is the reference).

    Example:
        >>> ok, why = guard_verdict(manifest.graph(precision="int8"))
    """
    if entry.precision == "fp32":
        return True, "fp32 is the reference"
    record = entry.accuracy
    if record is None:
        return None, f"{entry.file} has no accuracy record (exported before it existed; re-export to add one)"
    shown = ", ".join(f"{name} {record.values[name]:.4g}" for name in record.losses if name in record.values)
    if record.passed:
        return True, f"{entry.precision} within the bundle's accuracy guard ({shown})"
    return False, f"{entry.precision} fails the bundle's accuracy guard: {'; '.join(record.failures())}"


def is_gpu(device: str) -> bool:
    return device.split(":")[0] in GPU_KINDS


def choose_backend(backend: Backend, device: str) -> tuple[Backend, str]:
    """The known rule for ``backend="auto"`` (no measurement): (backend, reason)."""
    if backend is not Backend.AUTO:
        return backend, f"backend {backend.value} as asked"
    if device.split(":")[0] in ("cpu", "auto", *GPU_KINDS):
        return Backend.ONNXRUNTIME, f"backend 'auto': onnxruntime for device {device!r}"
    return Backend.OPENVINO, f"backend 'auto': openvino for its device {device!r}"


def choose_precision(precision: Precision, device: str, manifest: Manifest, available: list[str],
                     cpu: CpuInfo | None = None) -> tuple[str, str]:
    """The known rule for ``precision="auto"`` (no measurement): (precision, reason).

    Args:
        precision: the caller's precision (a fixed one is returned as it is).
        device: the resolved device (``cpu``, ``cuda:0``, an OpenVINO device name...).
        manifest: the bundle's manifest (its full graphs' accuracy records).
        available: the precisions of the bundle's full-image graphs.
        cpu: the CPU to decide for; None: this machine's (:func:`cpu_info`).
    """
    if precision is not Precision.AUTO:
        return precision.value, f"precision {precision.value} as asked"
    fallback = "fp32" if "fp32" in available else available[0]
    if is_gpu(device):
        if "fp16" in available and guard_verdict(manifest.graph(precision="fp16"))[0] is not False:
            return "fp16", f"precision 'auto': fp16 on {device}"
        return fallback, f"precision 'auto': {fallback} on {device} (no fp16 graph within the accuracy guard)"
    if device.split(":")[0] not in ("cpu", "auto"):
        return fallback, f"precision 'auto': {fallback} on {device}"
    if "int8" not in available:
        return fallback, f"precision 'auto': {fallback} (the bundle has no int8 graph)"
    passed, why = guard_verdict(manifest.graph(precision="int8"))
    if not passed:
        return fallback, f"precision 'auto': {fallback}, not int8: {why}"
    dot = (cpu or cpu_info()).int8_dot
    if dot is None:
        return fallback, (f"precision 'auto': {fallback}, not int8: this CPU has no INT8 dot-product instructions "
                          f"(VNNI/AMX/dotprod), so int8's speed-up is not assured; python -m runtime.tune measures it")
    return "int8", f"precision 'auto': int8, the fastest graph on a CPU with {dot}; {why}"


def decide(manifest: Manifest, available: list[str], backend: Backend, precision: Precision, device: str,
           bundle: Path | None) -> tuple[Choice, str]:
    """The backend and precision a session runs, with the reason, and the device it runs on.

    Args:
        manifest: the model's manifest.
        available: the precisions of its full-image graphs.
        backend, precision, device: the caller's (each may be ``auto``).
        bundle: the bundle directory (its ``tune.json`` is read), None for a lone .onnx file.

    Returns:
        (the :class:`Choice`, the device: ``device`` itself unless it is ``auto``).
    """
    if bundle is not None and (backend is Backend.AUTO or precision is Precision.AUTO):
        measured = _measured(manifest, available, backend, precision, device, bundle)
        if measured is not None:
            return measured
    chosen_backend, backend_reason = choose_backend(backend, device)
    if device == "auto":
        device = _backends.default_device(chosen_backend)
    chosen, precision_reason = choose_precision(precision, device, manifest, available)
    reasons = [r for r, auto in ((backend_reason, backend is Backend.AUTO), (precision_reason, precision is
                                                                              Precision.AUTO)) if auto]
    return Choice(chosen_backend, chosen, "; ".join(reasons) or "as asked"), device


def _measured(manifest: Manifest, available: list[str], backend: Backend, precision: Precision, device: str,
              bundle: Path) -> tuple[Choice, str] | None:
    """The fastest combination ``runtime.tune`` measured on this machine that fits the caller's fixed choices."""
    from runtime._tune import TUNE_FILE, load_tuning

    tuning, why_not = load_tuning(bundle)
    if tuning is None:
        if why_not:
            log.warning("ignoring %s: %s (run python -m runtime.tune %s again)", bundle / TUNE_FILE, why_not, bundle)
        return None

    def allowed(m) -> bool:
        known = m.precision in available and m.backend in {b.value for b in Backend if b is not Backend.AUTO}
        return (known and guard_verdict(manifest.graph(precision=m.precision))[0] is True
                and _backends.is_available(Backend(m.backend))
                and (device != "auto" or m.device == _backends.default_device(Backend(m.backend))))

    fixed_backend = None if backend is Backend.AUTO else backend.value
    fixed_precision = None if precision is Precision.AUTO else precision.value
    best = tuning.fastest(backend=fixed_backend, precision=fixed_precision,
                          device=None if device == "auto" else device, allowed=allowed)
    if best is None:
        return None
    rivals = [m for m in tuning.measurements if allowed(m) and fixed_backend in (None, m.backend)
              and fixed_precision in (None, m.precision)]
    return Choice(Backend(best.backend), best.precision,
                  f"measured on this machine by runtime.tune ({tuning.created}): {best.backend} {best.precision} "
                  f"{best.ms_median:.1f} ms, the fastest of {len(rivals)} within the accuracy guard"), best.device


def explain(choice: Choice) -> str:
    """The choice in one line for logs and tables."""
    return f"{choice.backend.value} {choice.precision}: {choice.reason}"
