"""The benchmark report a person reads: ``benchmarks/report/README.md`` and its charts, from one run's JSON.

    python -m benchmarks.report [--dir benchmarks/report]

Reads ``benchmarks.json`` (pytest-benchmark's ``--benchmark-json``), ``gates.json``
(the gates' verdicts, written by ``benchmarks/conftest.py``) and, when present,
``avx2.json`` (the AVX2-capped run, ``benchmarks/avx2.py``) from that folder, and
writes there:

* ``README.md``: the machine, this machine's GEMM peak, one table per group
  (median and IQR, speed-up over the group's reference, MACs, achieved GFLOP/s
  or GOP/s and their share of the peak), libruntime's overhead, the AVX2-only
  figures and the gates;
* ``latency_<group>.png``, ``speedup_<group>.png``: latency and speed-up per path;
* ``throughput_<group>.png``: achieved GFLOP/s and GOP/s against the FP32 and INT8
  GEMM peaks measured in the same run.

Each benchmark's ``extra_info`` says what it is (``kind``: latency, gemm, overhead;
``path``, ``backend``, ``precision``, ``images``, ``gmacs``, ``reference``).
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

DEFAULT_DIR = Path(__file__).resolve().parent / "report"


@dataclass(frozen=True)
class Row:
    """One latency benchmark, per image."""

    group: str
    path: str
    backend: str
    precision: str
    ms: float  # median per image
    iqr_ms: float
    rounds: int
    gmacs: float | None  # per image
    reference: str | None

    @property
    def int8(self) -> bool:
        return self.precision == "int8"

    def gops(self) -> float | None:
        """Achieved GFLOP/s (GOP/s for INT8): 2 operations per MAC."""
        return None if not self.gmacs else 2 * self.gmacs / (self.ms / 1e3)


def _rows(benchmarks: list[dict[str, Any]]) -> list[Row]:
    rows = []
    for b in benchmarks:
        info = b.get("extra_info", {})
        if info.get("kind") != "latency":
            continue
        images = info.get("images") or 1
        stats = b["stats"]
        gmacs = info.get("gmacs")
        rows.append(Row(b.get("group") or "", info["path"], info.get("backend", ""), info.get("precision", ""),
                        stats["median"] * 1e3 / images, stats["iqr"] * 1e3 / images, stats["rounds"],
                        gmacs / images if gmacs else None, info.get("reference")))
    return rows


def _peaks(benchmarks: list[dict[str, Any]]) -> dict[str, float]:
    """precision -> GFLOP/s (fp32) or GOP/s (int8) of the GEMM benchmarks."""
    return {b["extra_info"]["precision"]: b["extra_info"]["gops"] for b in benchmarks
            if b.get("extra_info", {}).get("kind") == "gemm"}


def _speedup(row: Row, rows: list[Row]) -> float | None:
    base = next((r for r in rows if r.group == row.group and r.path == row.reference), None)
    return None if base is None else base.ms / row.ms


def _peak_share(row: Row, peaks: dict[str, float]) -> float | None:
    peak = peaks.get("int8" if row.int8 else "fp32")
    achieved = row.gops()
    return None if peak is None or achieved is None else achieved / peak


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:60] or "group"


def _machine(data: dict[str, Any]) -> list[str]:
    def version(package: str) -> str:
        try:
            return metadata.version(package)
        except metadata.PackageNotFoundError:
            return "not installed"

    lines = []
    try:
        from runtime._cpu import cpu_info

        cpu = cpu_info()
        lines += [f"- CPU: {cpu.model} ({cpu.machine}), {cpu.logical_cpus} logical CPUs, {cpu.threads} threads "
                  f"used by default", f"- Instruction sets that matter here: {', '.join(cpu.reported_flags())}",
                  f"- INT8 dot product: {cpu.int8_dot or 'none (no VNNI/AMX/dotprod)'}"]
    except ImportError:
        info = data.get("machine_info", {}).get("cpu", {})
        lines.append(f"- CPU: {info.get('brand_raw', platform.processor())}, {info.get('count', '?')} CPUs")
    lines += [f"- OS: {platform.platform()}; Python {platform.python_version()}",
              "- Libraries: " + ", ".join(f"{p} {version(p)}" for p in ("onnxruntime", "openvino", "numpy", "torch",
                                                                          "onnx"))]
    stamp = data.get("datetime", "")
    if stamp:
        lines.append(f"- Run: {stamp}")
    return lines


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(r) + " |" for r in rows)]


def _group_table(group: str, rows: list[Row], peaks: dict[str, float]) -> list[str]:
    mine = sorted((r for r in rows if r.group == group), key=lambda r: r.ms)
    reference = next((r.reference for r in mine if r.reference), None)
    body = [[r.path, f"{r.ms:.1f}", f"{r.iqr_ms:.1f}", str(r.rounds), _fmt(_speedup(r, rows), ".2f", "x"),
             _fmt(r.gmacs, ".2f"), _fmt(r.gops(), ".0f"), _fmt(_peak_share(r, peaks), ".0%")] for r in mine]
    header = ["path", "median ms/image", "IQR ms", "rounds", f"speed-up over {reference or '-'}", "GMAC/image",
              "GFLOP/s (INT8: GOP/s)", "of this machine's GEMM peak"]
    return _table(header, body)


def _charts(out: Path, group: str, rows: list[Row], peaks: dict[str, float]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mine = sorted((r for r in rows if r.group == group), key=lambda r: r.ms, reverse=True)
    if not mine:
        return []
    slug, written = _slug(group), []
    height = 1.2 + 0.35 * len(mine)
    colours = ["tab:green" if r.int8 else "tab:orange" if r.precision == "fp16" else "tab:blue" for r in mine]

    def save(fig, name: str) -> None:
        fig.tight_layout()
        fig.savefig(out / name, dpi=110)
        plt.close(fig)
        written.append(name)

    fig, ax = plt.subplots(figsize=(8, height))
    ax.barh([r.path for r in mine], [r.ms for r in mine], xerr=[r.iqr_ms / 2 for r in mine], color=colours)
    for i, r in enumerate(mine):
        ax.text(r.ms, i, f" {r.ms:.1f}", va="center", fontsize=8)
    ax.set_xlabel("median ms per image (blue FP32, orange FP16, green INT8)")
    ax.set_title(f"Latency: {group}")
    save(fig, f"latency_{slug}.png")

    speedups = [(r, _speedup(r, rows)) for r in mine]
    if any(s is not None for _, s in speedups):
        fig, ax = plt.subplots(figsize=(8, height))
        ax.barh([r.path for r, _ in speedups], [s or 0 for _, s in speedups], color=colours)
        ax.axvline(1.0, color="black", lw=1)
        for i, (_, s) in enumerate(speedups):
            ax.text(s or 0, i, f" {s:.2f}x" if s else " -", va="center", fontsize=8)
        ax.set_xlabel(f"speed-up over {mine[0].reference}")
        ax.set_title(f"Speed-up: {group}")
        save(fig, f"speedup_{slug}.png")

    measured = [r for r in mine if r.gops() is not None]
    if measured and peaks:
        fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * len(measured)))
        ax.barh([r.path for r in measured], [r.gops() for r in measured],
                color=["tab:green" if r.int8 else "tab:blue" for r in measured])
        for name, colour in (("fp32", "tab:blue"), ("int8", "tab:green")):
            if name in peaks:
                ax.axvline(peaks[name], color=colour, ls="--",
                           label=f"{name.upper()} GEMM peak {peaks[name]:.0f} {'GOP/s' if name == 'int8' else 'GFLOP/s'}")
        ax.set_xlabel("achieved GFLOP/s (INT8: GOP/s), 2 operations per MAC")
        ax.set_title(f"Compute: {group}")
        ax.legend(fontsize=8, loc="lower right")
        save(fig, f"throughput_{slug}.png")
    return written


def _overhead(benchmarks: list[dict[str, Any]]) -> list[str]:
    rows = [b["extra_info"] for b in benchmarks if b.get("extra_info", {}).get("kind") == "overhead"]
    if not rows:
        return []
    body = [[r["graph"], f"{r['ort_ms']:.2f}", f"{r['native_ms']:.2f}", f"{r['native_over_ort']:.2f}",
             _fmt(r.get("host_ms"), ".2f"), _fmt(r.get("host_over_ort"), ".2f"), _fmt(r.get("openvino_ms"), ".2f")]
            for r in rows]
    return ["## libruntime against raw ONNX Runtime (same graph, same threads, interleaved)", "",
            *_table(["graph", "raw onnxruntime ms", "pybind11 ms", "ratio", "C++ host ms", "ratio",
                     "libruntime OpenVINO ms"], body), ""]


def _avx2(path: Path) -> list[str]:
    if not path.is_file():
        return ["## AVX2-only figures (i5-class stand-in)", "",
                "Not measured in this run (`python -m benchmarks.avx2` writes them).", ""]
    data = json.loads(path.read_text())
    out = ["## AVX2-only figures (i5-class stand-in)", "", data.get("how", ""), ""]
    if data.get("rows"):
        out += _table(["path", "full ISA ms", "AVX2-only ms", "AVX2 / full", "kernels seen (AVX2 run)"],
                      [[r["path"], f"{r['full_ms']:.1f}", f"{r['avx2_ms']:.1f}", f"{r['avx2_ms'] / r['full_ms']:.2f}",
                        ", ".join(r.get("kernels", [])[:4])] for r in data["rows"]])
    for note in data.get("notes", []):
        out.append(f"- {note}")
    return out + [""]


def _gates(path: Path) -> list[str]:
    if not path.is_file():
        return []
    gates = json.loads(path.read_text())
    body = [[g["gate"], f"{g['ratio']:.2f}", f"{'<=' if g.get('at_most') else '>='} {g['bar']}",
             "pass" if g["passed"] else "**FAIL**", g.get("detail", "")] for g in gates]
    failed = sum(not g["passed"] for g in gates)
    return ["## Gates (ratios of interleaved medians, never absolute times)", "",
            f"{len(gates) - failed} of {len(gates)} passed.", "",
            *_table(["gate", "ratio", "bar", "verdict", "medians"], body), ""]


def write_report(folder: Path) -> Path:
    """Write ``README.md`` and the charts into ``folder`` from the JSON files there; return the README's path.

    Raises:
        FileNotFoundError: no ``benchmarks.json`` in ``folder``.
    """
    data = json.loads((folder / "benchmarks.json").read_text())
    benchmarks = data.get("benchmarks", [])
    rows, peaks = _rows(benchmarks), _peaks(benchmarks)
    out = ["# Benchmark report", "",
           f"Written {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} by `python -m benchmarks.report` from "
           f"`benchmarks.json` (pytest-benchmark). Every figure of this page comes from the same run on this "
           f"machine.", "", "## Machine", "", *_machine(data), ""]
    if peaks:
        out += ["## This machine's compute limit (ONNX Runtime GEMM, same run)", "",
                *(f"- {name.upper()}: {value:.0f} {'GOP/s' if name == 'int8' else 'GFLOP/s'}"
                  for name, value in sorted(peaks.items())), ""]
    for group in dict.fromkeys(r.group for r in rows):
        out += [f"## {group}", "", *_group_table(group, rows, peaks), ""]
        out += [f"![{name}]({name})" for name in _charts(folder, group, rows, peaks)] + [""]
    out += _overhead(benchmarks)
    out += _avx2(folder / "avx2.json")
    out += _gates(folder / "gates.json")
    readme = folder / "README.md"
    readme.write_text("\n".join(out) + "\n", encoding="utf-8")
    return readme


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="folder with benchmarks.json (default: %(default)s)")
    args = parser.parse_args(argv)
    if not (args.dir / "benchmarks.json").is_file():
        print(f"error: no {args.dir / 'benchmarks.json'}; run make bench first", file=sys.stderr)
        return 2
    print(f"wrote {write_report(args.dir)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
