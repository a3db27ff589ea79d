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
import torch

from export import BuildOptions, build
from runtime import get_family
from training.checkpoint import save_checkpoint

CACHE = Path(__file__).parent / ".cache"
MEDIANS: dict[str, float] = {}
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))


def _full_width_checkpoint() -> Path:
    """An untrained base-width-64 brn checkpoint: latency does not depend on the weights."""
    path = CACHE / "brn64-untrained.pth"
    if not path.is_file():
        family = get_family("brn")
        torch.manual_seed(0)
        network = family.build_network({"base_width": 64})
        save_checkpoint(path, {"family": "brn", "model_state_dict": network.state_dict(),
                               "arch": {**family.default_config, "base_width": 64}, "img_height": 128,
                               "img_width": 128, "image_type": "strip", "epoch": 0, "seed": 0})
    return path


@pytest.fixture(scope="module")
def bundles() -> dict[str, Path]:
    CACHE.mkdir(exist_ok=True)
    ckpt = _full_width_checkpoint()
    out = {}
    for mode, layers in (("stitched", ("patch", "full")), ("fcn", ("full",))):
        path = CACHE / f"brn64-{mode}"
        if not (path / "manifest.json").is_file():
            # max_auroc_drop=1: untrained weights make the INT8 accuracy search meaningless here.
            build(BuildOptions(checkpoint=ckpt, out=path, layers=layers, mode=mode, parity_images=2,
                               calibration_synthetic=4, max_auroc_drop=1.0, force=True))
        out[mode] = path
    return out


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
    plan = get_family("brn").image_type("strip").tiling()
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
