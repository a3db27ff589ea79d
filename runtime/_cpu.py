"""What this machine's CPU is and can do: its model, its instruction-set flags, whether INT8 has a fast dot product.

Read from ``/proc/cpuinfo`` on Linux; elsewhere from the features numpy detected
at import (the same CPUID bits, under numpy's names, mapped to Linux's below), so
that the answer never needs a compiler or an extra package.
"""

from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass
from pathlib import Path

from runtime._options import default_threads

#: Instruction sets that give INT8 a dot product at least twice as wide as FP32's FMA:
#: x86 VNNI (AVX-512 or AVX) and AMX, Arm's dot product (``asimddp``).
INT8_DOT_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp")
#: numpy's feature names -> Linux's ``/proc/cpuinfo`` flag names (only those this module asks about).
_NUMPY_TO_LINUX = {"AVX2": "avx2", "FMA3": "fma", "AVX512F": "avx512f", "AVX512VNNI": "avx512_vnni",
                   "AVXVNNI": "avx_vnni", "AVX512BF16": "avx512_bf16", "AVX512FP16": "avx512_fp16",
                   "ASIMDDP": "asimddp", "ASIMDHP": "asimdhp"}
#: The flags a report shows (the rest of ``/proc/cpuinfo``'s list says nothing about these models' speed).
REPORTED_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16",
                  "amx_tile", "amx_int8", "amx_bf16", "asimddp", "asimdhp")


@dataclass(frozen=True)
class CpuInfo:
    """This machine's CPU as the runtime's choices see it.

    Attributes:
        model: the CPU's model name (``/proc/cpuinfo``), else :func:`platform.processor`.
        machine: the architecture (``x86_64``, ``aarch64``...).
        flags: instruction-set flags in Linux's spelling (``avx2``, ``avx512_vnni``...).
        logical_cpus: CPUs the OS reports.
        threads: the runtime's default intra-op threads here (physical cores this process may use, capped).
    """

    model: str
    machine: str
    flags: frozenset[str]
    logical_cpus: int
    threads: int

    @property
    def int8_dot(self) -> str | None:
        """The first of :data:`INT8_DOT_FLAGS` this CPU has (INT8 convolutions run fast), else None."""
        return next((flag for flag in INT8_DOT_FLAGS if flag in self.flags), None)

    def reported_flags(self) -> list[str]:
        return [flag for flag in REPORTED_FLAGS if flag in self.flags]

    def to_dict(self) -> dict[str, object]:
        return {"model": self.model, "machine": self.machine, "flags": self.reported_flags(),
                "logical_cpus": self.logical_cpus, "threads": self.threads}


@functools.lru_cache(maxsize=1)
def cpu_info() -> CpuInfo:
    """This machine's :class:`CpuInfo` (read once per process)."""
    model, flags = _from_proc(Path("/proc/cpuinfo"))
    if not flags:
        flags = _from_numpy()
    return CpuInfo(model or platform.processor() or "unknown", platform.machine(), frozenset(flags),
                   os.cpu_count() or 1, default_threads())


def _from_proc(path: Path) -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU listed in a ``/proc/cpuinfo`` text; empty when unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "", set()
    return parse_cpuinfo(text)


def parse_cpuinfo(text: str) -> tuple[str, set[str]]:
    """(model name, flags) of the first CPU in a ``/proc/cpuinfo`` text (x86 ``flags``, Arm ``Features``).

    >>> model, flags = parse_cpuinfo("model name\\t: Example CPU\\nflags\\t\\t: fpu avx2 avx512_vnni\\n\\nflags : sse\\n")
    >>> model, sorted(flags)
    ('Example CPU', ['avx2', 'avx512_vnni', 'fpu'])
    """
    model, flags = "", set()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if not line.strip() and (model or flags):
                break  # the end of the first CPU's block
            continue
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model, flags


def _from_numpy() -> set[str]:
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # numpy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return set()
    return {linux for name, linux in _NUMPY_TO_LINUX.items() if features.get(name)}
