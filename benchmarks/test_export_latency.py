"""Latency of the exported full-width brn graphs on ONNX Runtime CPU, side by side in one run.

    .venv/bin/python -m pytest benchmarks/test_export_latency.py --benchmark-columns=median,iqr,rounds

Compares the layer-3 full-image graph in FP32, FP16 and INT8, stitched and
fully convolutional, against the approach it replaces: a Python loop calling
the layer-2 patch graph 18 times and stitching in numpy. The gates at the end
assert ratios of medians measured in this same run, never absolute times.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from runtime.families.brn import image_type

MEDIANS: dict[str, float] = {}
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


@pytest.fixture(scope="module")
def bundles(full_width_bundle, full_width_fcn_bundle) -> dict[str, Path]:
    return {"stitched": full_width_bundle, "fcn": full_width_fcn_bundle}


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def strip() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.random((1, 3, 976, 176), dtype=np.float32)


def _record(benchmark, key: str) -> None:
    MEDIANS[key] = benchmark.stats.stats.median
    benchmark.extra_info["machine"] = os.uname().nodename
    benchmark.extra_info["threads"] = os.cpu_count()


@pytest.mark.parametrize("mode", ["stitched", "fcn"])
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_full_image_graph(benchmark, bundles, strip, mode, precision):
    sess = _session(bundles[mode] / f"model.{precision}.onnx")
    benchmark.group = "brn64 full image, batch 1"
    benchmark.pedantic(sess.run, args=(None, {"input": strip}), rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, f"{mode}-{precision}")


def test_python_loop_over_patch_graph(benchmark, bundles, strip):
    plan = image_type("strip").tiling()
    sess = _session(bundles["stitched"] / "patch.fp32.onnx")

    def eighteen_calls() -> np.ndarray:
        patches = plan.extract(strip)
        outs = [sess.run(None, {"input": np.ascontiguousarray(patches[:, i])})[0] for i in range(plan.num_patches)]
        return plan.stitch(np.stack(outs, axis=1))

    benchmark.group = "brn64 full image, batch 1"
    benchmark.pedantic(eighteen_calls, rounds=ROUNDS, warmup_rounds=1)
    _record(benchmark, "loop-fp32")


def _ratio(slow: str, fast: str) -> float:
    if slow not in MEDIANS or fast not in MEDIANS:
        pytest.skip(f"needs the {slow} and {fast} benchmarks of this run")
    return MEDIANS[slow] / MEDIANS[fast]


def test_gate_int8_is_faster_than_fp32():
    assert _ratio("stitched-fp32", "stitched-int8") >= 1.5


def test_gate_fcn_is_faster_than_stitched():
    assert _ratio("stitched-fp32", "fcn-fp32") >= 1.15


def test_gate_layered_graph_is_not_slower_than_the_python_loop():
    assert _ratio("loop-fp32", "stitched-fp32") >= 0.9
