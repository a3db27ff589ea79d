"""Typed options of :class:`runtime.Session`: which backend, device and precision, and how to run.

Defaults are chosen for latency on small, shared edge CPUs (see :class:`SessionOptions`).
"""

from __future__ import annotations

import enum
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path

from runtime._errors import InvalidInputError

log = logging.getLogger(__name__)

#: More intra-op threads than this rarely helps a batch-1 convnet of this size: the
#: per-op work is split too finely and synchronisation starts to dominate.
MAX_DEFAULT_THREADS = 8
#: The most intra-op threads a session may ask for: engines start them all at load, and
#: ONNX Runtime took 6 minutes for 5000 and never finished 100000 (2 s for 1024).
MAX_THREADS = 1024


class Backend(str, enum.Enum):
    """Inference engine. ``AUTO``: see :func:`runtime.Session` for the rule."""

    AUTO = "auto"
    ONNXRUNTIME = "onnxruntime"
    OPENVINO = "openvino"
    NATIVE = "native"  # libruntime (C++) through its pybind11 module, built by `pip install .`


class Precision(str, enum.Enum):
    """Which graph of the bundle to run. ``AUTO``: FP16 on a GPU, FP32 on a CPU (INT8 is opt-in)."""

    AUTO = "auto"
    FP32 = "fp32"
    FP16 = "fp16"
    INT8 = "int8"


class GraphOptimization(str, enum.Enum):
    """ONNX Runtime graph optimisation level."""

    DISABLED = "disabled"
    BASIC = "basic"
    EXTENDED = "extended"
    ALL = "all"


class PerformanceHint(str, enum.Enum):
    """OpenVINO performance hint: one stream for the lowest latency, several for throughput."""

    LATENCY = "LATENCY"
    THROUGHPUT = "THROUGHPUT"


class InferencePrecision(str, enum.Enum):
    """OpenVINO CPU compute precision. ``F32`` matches ONNX Runtime; ``BF16``/``F16`` are faster, not equal."""

    F32 = "f32"
    BF16 = "bf16"
    F16 = "f16"


@dataclass(frozen=True)
class SessionOptions:
    """How a :class:`runtime.Session` runs its graph; every field has a latency-minded default.

    Attributes:
        threads: intra-op threads, 1..:data:`MAX_THREADS`. ``None`` = the physical cores this
            process may use (CPU affinity and cgroup quota respected), capped at 8. Hyper-threads share
            the vector units a convnet saturates, so counting them only adds contention.
        spinning: let idle ONNX Runtime worker threads busy-wait for the next op
            (``session.intra_op.allow_spinning``). Off by default: on a shared edge box
            (acquisition, PLC link, UI) spinning workers take CPU from the other processes
            for a gain of microseconds per op, which this model's few heavy convolutions
            do not need: measured on the full-width brn model, 2 threads, INT8,
            225 ms with or without spinning, but 5 % more CPU time with it. Turn it on
            for a dedicated box running a model of many small ops.
        graph_optimization: ONNX Runtime optimisation level; ``ALL`` adds layout
            transformations and fusions the CPU kernels are fastest with.
        performance_hint: OpenVINO hint; ``LATENCY`` uses one stream with all threads.
        inference_precision: OpenVINO compute precision; ``F32`` by default so that its
            results match ONNX Runtime within 1e-4 (OpenVINO would otherwise pick BF16 on
            AMX/AVX512-BF16 CPUs).
        batch_size: largest batch sent to the backend at once; longer lists are split.

    Example:
        >>> Session("bundles/brn", options=SessionOptions(threads=2, spinning=True))
    """

    threads: int | None = None
    spinning: bool = False
    graph_optimization: GraphOptimization = GraphOptimization.ALL
    performance_hint: PerformanceHint = PerformanceHint.LATENCY
    inference_precision: InferencePrecision = InferencePrecision.F32
    batch_size: int = 4

    def __post_init__(self) -> None:
        if self.threads is not None and (not _is_int(self.threads) or not 1 <= self.threads <= MAX_THREADS):
            raise InvalidInputError(f"threads must be an integer in 1..{MAX_THREADS} or None, got {self.threads!r}")
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise InvalidInputError(f"batch_size must be a positive integer, got {self.batch_size!r}")
        object.__setattr__(self, "graph_optimization",
                           parse_enum(GraphOptimization, self.graph_optimization, "graph_optimization"))
        object.__setattr__(self, "performance_hint",
                           parse_enum(PerformanceHint, self.performance_hint, "performance_hint"))
        object.__setattr__(self, "inference_precision",
                           parse_enum(InferencePrecision, self.inference_precision, "inference_precision"))

    def resolved_threads(self) -> int:
        return self.threads if self.threads is not None else default_threads()


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int to Python, not a count


def parse_enum(kind: type[enum.Enum], value: object, what: str) -> enum.Enum:
    """``value`` as a member of ``kind`` (accepting the member or its string value, any case)."""
    if isinstance(value, kind):
        return value
    if isinstance(value, str):
        for member in kind:
            if member.value.lower() == trim(value).lower():
                return member
    allowed = ", ".join(m.value for m in kind)
    raise InvalidInputError(f"unsupported {what} {value!r}; expected one of {allowed}")


def trim(text: str) -> str:
    """``text`` without leading and trailing whitespace (inner runs collapse to one space)."""
    return " ".join(text.split())


def default_threads() -> int:
    """Physical cores available to this process, capped at :data:`MAX_DEFAULT_THREADS`."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = list(range(os.cpu_count() or 1))
    cores = _physical_cores(cpus)
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, min(cores, MAX_DEFAULT_THREADS))


def _physical_cores(cpus: list[int]) -> int:
    seen = set()
    for cpu in cpus:
        topology = Path(f"/sys/devices/system/cpu/cpu{cpu}/topology")
        try:
            seen.add((trim((topology / "physical_package_id").read_text()),
                      trim((topology / "core_id").read_text())))
        except OSError:
            return len(cpus)  # no topology: count logical CPUs
    return len(seen) or len(cpus)


def _cgroup_quota() -> float | None:
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
    except (OSError, ValueError):
        return None
    if quota == "max":
        return None
    try:
        return int(quota) / int(period)
    except (ValueError, ZeroDivisionError):
        return None
