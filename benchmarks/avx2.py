"""AVX2-only figures, the stand-in for the i5-class CPUs the product targets, measured on a wider CPU.

    python -m benchmarks.avx2 [--rounds 5] [--out benchmarks/report/avx2.json]

OpenVINO's CPU plugin runs its convolutions through oneDNN, which honours
``ONEDNN_MAX_CPU_ISA``: with ``AVX2`` its convolution kernels are the AVX2 ones
(``jit_avx2_I8`` instead of ``brgconv_avx512_I8``). OpenVINO's own element-wise
and quantization kernels ignore the cap and keep AVX-512, so the figures are a
lower bound of an AVX2 machine's time (convolutions are most of it). ONNX
Runtime's kernels (MLAS) pick their instruction set from CPUID with no way to
cap it, so no AVX2 figure is given for it.

Each figure runs in its own process (the cap is read when the plugin loads),
full ISA and AVX2-only in turn, twice, and keeps the faster median of each: the
two sides see the same neighbours. The kernels each run used are read from the
compiled model (``primitiveType`` of its runtime graph) to show the cap took.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2"}
PATHS = (("stitched", "brn_w64", "fp32"), ("stitched", "brn_w64", "int8"), ("fcn", "brn_w64_fcn", "int8"))


def _child(graph: str, rounds: int, threads: int) -> None:
    """In the child process: compile the graph as runtime.Session does, time it, print JSON."""
    import time

    import numpy as np
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(core.read_model(graph), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(threads)})
    kernels = collections.Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else ""
        if "primitiveType" in info and "Convolution" in layer:
            kernels[info["primitiveType"].astype(str)] += 1
    request = compiled.create_infer_request()
    x = np.random.default_rng(0).random((1, 3, 976, 176), dtype=np.float32)
    request.infer({0: x})
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        request.infer({0: x})
        times.append(time.perf_counter() - started)
    print(json.dumps({"ms": float(np.median(times)) * 1e3, "kernels": [k for k, _ in kernels.most_common()]}))


def _run(graph: Path, rounds: int, threads: int, capped: bool) -> dict:
    env = {**os.environ, **(CAP if capped else {})}
    if not capped:
        env.pop("ONEDNN_MAX_CPU_ISA", None)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(graph), "--rounds",
                           str(rounds), "--threads", str(threads)], env=env, capture_output=True, text=True,
                          check=True, timeout=900)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure(cache: Path, rounds: int, threads: int) -> dict:
    rows, notes = [], []
    for mode, bundle, precision in PATHS:
        graph = cache / bundle / f"model.{precision}.onnx"
        if not graph.is_file():
            notes.append(f"{graph} missing: run the export benchmarks first")
            continue
        full, capped = [], []
        for _ in range(2):  # in turn, twice
            full.append(_run(graph, rounds, threads, capped=False))
            capped.append(_run(graph, rounds, threads, capped=True))
        best_full, best_capped = min(full, key=lambda r: r["ms"]), min(capped, key=lambda r: r["ms"])
        rows.append({"path": f"{mode} {precision} openvino", "full_ms": best_full["ms"],
                     "avx2_ms": best_capped["ms"], "kernels": best_capped["kernels"],
                     "full_kernels": best_full["kernels"]})
        if any("avx512" in k for k in best_capped["kernels"]):
            notes.append(f"{mode} {precision}: some convolutions still used AVX-512 kernels under the cap "
                         f"({best_capped['kernels']})")
    how = (f"OpenVINO CPU, {threads} threads, LATENCY hint, f32 inference precision; `ONEDNN_MAX_CPU_ISA=AVX2` caps "
           f"oneDNN's convolution kernels (OpenVINO's own element-wise kernels keep AVX-512, so these are lower "
           f"bounds for an AVX2 CPU). Median of {rounds} runs per process, the faster of two processes each. ONNX "
           f"Runtime (MLAS) cannot be capped: no AVX2 figure for it.")
    return {"how": how, "rows": rows, "notes": notes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.avx2", description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="default: the runtime's default threads")
    parser.add_argument("--out", type=Path, default=HERE / "report" / "avx2.json")
    parser.add_argument("--cache", type=Path, default=HERE / ".cache")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.threads is None:
        sys.path.insert(0, str(HERE.parent))
        from runtime._options import default_threads

        args.threads = default_threads()
    if args.child:
        _child(args.child, args.rounds, args.threads)
        return 0
    try:
        import openvino  # noqa: F401
    except ImportError:
        print("error: openvino is not installed (pip install 'edge-vision-sdk[openvino]')", file=sys.stderr)
        return 2
    data = measure(args.cache, args.rounds, args.threads)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    for row in data["rows"]:
        print(f"{row['path']}: full ISA {row['full_ms']:.0f} ms, AVX2-only {row['avx2_ms']:.0f} ms "
              f"({', '.join(row['kernels'][:3])})")
    for note in data["notes"]:
        print(f"note: {note}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
