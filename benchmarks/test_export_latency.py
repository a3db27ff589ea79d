"""Latency of the exported full-width brn graphs on ONNX Runtime and OpenVINO CPU, side by side in one run.

    .venv/bin/python -m pytest benchmarks/test_export_latency.py --benchmark-columns=median,iqr,rounds

Compares the layer-3 full-image graph (stitched, the contract, and fully
convolutional) in FP32, FP16 and INT8 against the approach it replaces, the
seed's way: a Python loop calling the layer-2 patch graph 18 times and stitching
in numpy. Every path runs through the runtime's own engine wrappers
(``runtime._backends``: ONNX Runtime with the session defaults, OpenVINO with
the LATENCY hint and f32 inference precision) and the default threads.

The gates time their two sides interleaved, round after round
(``runtime._timing.interleaved``), and assert ratios of medians, never times.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import THREADS, gate, record

from runtime._backends import load
from runtime._options import Backend, SessionOptions
from runtime._timing import interleaved
from runtime.families.brn import image_type

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
GROUP = "brn64 full image (976x176), batch 1"
REFERENCE = "loop fp32 onnxruntime"
BACKENDS = [pytest.param("onnxruntime", id="onnxruntime"),
            pytest.param("openvino", id="openvino", marks=pytest.mark.openvino)]


@pytest.fixture(scope="module")
def bundles(full_width_bundle, full_width_fcn_bundle) -> dict[str, Path]:
    return {"stitched": full_width_bundle, "fcn": full_width_fcn_bundle}


@pytest.fixture(scope="module")
def strip() -> np.ndarray:
    return np.random.default_rng(0).random((1, 3, 976, 176), dtype=np.float32)


def _engine(backend: str, graph: Path):
    """The graph loaded as the runtime loads it; returns run(x) -> the first output."""
    impl = load(Backend(backend), graph.read_bytes(), device="cpu", options=SessionOptions(threads=THREADS),
                source=str(graph))
    name = impl.inputs[0].name
    first = impl.outputs[0].name
    return lambda x: impl.run({name: x})[first]


def _full(backend: str, bundles: dict[str, Path], mode: str, precision: str):
    return _engine(backend, bundles[mode] / f"model.{precision}.onnx")


def _loop(backend: str, bundles: dict[str, Path], precision: str):
    """The seed's way: one call per patch of the patch graph, stitched in numpy."""
    plan = image_type("strip").tiling()
    patch = _engine(backend, bundles["stitched"] / f"patch.{precision}.onnx")

    def run(x: np.ndarray) -> np.ndarray:
        patches = plan.extract(x)
        outs = [patch(np.ascontiguousarray(patches[:, i])) for i in range(plan.num_patches)]
        return plan.stitch(np.stack(outs, axis=1))

    return run


def _name(path: str, precision: str, backend: str) -> str:
    return f"{path} {precision} {backend}"


@pytest.mark.parametrize("mode", ["stitched", "fcn"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_full_image_graph(benchmark, bundles, strip, backend, mode, precision):
    if backend == "openvino" and precision == "fp16":
        pytest.skip("OpenVINO runs FP16 graphs in f32 on a CPU: the same as its FP32 figure")
    run = _full(backend, bundles, mode, precision)
    benchmark.group = GROUP
    benchmark.pedantic(run, args=(strip,), rounds=ROUNDS, warmup_rounds=1)
    record(benchmark, path=_name(mode, precision, backend), backend=backend, precision=precision,
           graphs={bundles[mode] / f"model.{precision}.onnx": 1}, reference=REFERENCE)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_python_loop_over_patch_graph(benchmark, bundles, strip, backend, precision):
    run = _loop(backend, bundles, precision)
    benchmark.group = GROUP
    benchmark.pedantic(run, args=(strip,), rounds=ROUNDS, warmup_rounds=1)
    plan = image_type("strip").tiling()
    record(benchmark, path=_name("loop", precision, backend), backend=backend, precision=precision,
           graphs={bundles["stitched"] / f"patch.{precision}.onnx": plan.num_patches}, reference=REFERENCE)


def _interleaved_ratio(slow, fast, strip: np.ndarray) -> tuple[float, str]:
    timings = interleaved({"slow": lambda: slow(strip), "fast": lambda: fast(strip)}, rounds=ROUNDS, warmup=1)
    ratio = float(np.median(timings.round_ratios("slow", "fast")))
    return ratio, f"({timings.median('slow') * 1e3:.0f} vs {timings.median('fast') * 1e3:.0f} ms, median of {ROUNDS})"


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gate_stitched_graph_is_not_slower_than_the_loop(bundles, strip, backend, precision):
    """The layered graph's promise: one call is at least as fast as the 18 calls it replaces (5 % for noise)."""
    ratio, detail = _interleaved_ratio(_loop(backend, bundles, precision),
                                       _full(backend, bundles, "stitched", precision), strip)
    gate(f"loop / stitched, {backend} {precision}", ratio, 0.95, detail=detail)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gate_int8_is_faster_than_fp32(bundles, strip, backend):
    ratio, detail = _interleaved_ratio(_full(backend, bundles, "stitched", "fp32"),
                                       _full(backend, bundles, "stitched", "int8"), strip)
    gate(f"stitched fp32 / int8, {backend}", ratio, 1.5, detail=detail)


@pytest.mark.parametrize("precision", ["fp32", "int8"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_gate_fcn_is_faster_than_stitched(bundles, strip, backend, precision):
    """About 35 % fewer MACs must show, on both engines and at both precisions."""
    ratio, detail = _interleaved_ratio(_full(backend, bundles, "stitched", precision),
                                       _full(backend, bundles, "fcn", precision), strip)
    gate(f"stitched / fcn, {backend} {precision}", ratio, 1.15, detail=detail)
