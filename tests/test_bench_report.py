"""The benchmark report's arithmetic: MACs counted from ONNX graphs, speed-ups, GFLOP/s and shares of the GEMM peak."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from benchmarks.flops import graph_macs
from benchmarks.report import write_report


def _conv_graph(path, *, qdq: bool = False, group: int = 1) -> None:
    """x (batch, 4, 10, 12) -> Conv 3x3, 8 outputs, pads 1 -> MatMul by (12, 5): hand-countable MACs."""
    weight = numpy_helper.from_array(np.ones((8, 4 // group, 3, 3), np.float32), "w")
    matrix = numpy_helper.from_array(np.ones((12, 5), np.float32), "m")
    nodes, inits, conv_weight = [], [weight, matrix], "w"
    if qdq:  # the weight through Dequantize, as ONNX Runtime's QDQ INT8 graphs hold it
        inits[0] = numpy_helper.from_array(np.ones((8, 4 // group, 3, 3), np.int8), "w_q")
        inits += [numpy_helper.from_array(np.array(0.1, np.float32), "s"),
                  numpy_helper.from_array(np.array(0, np.int8), "z")]
        nodes.append(helper.make_node("DequantizeLinear", ["w_q", "s", "z"], ["w"]))
    nodes += [helper.make_node("Conv", ["x", conv_weight], ["y"], pads=[1, 1, 1, 1], group=group),
              helper.make_node("MatMul", ["y", "m"], ["out"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4, 10, 12])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


@pytest.mark.parametrize("qdq", [False, True])
def test_macs_are_counted_from_the_graph_at_batch_1(tmp_path, qdq):
    _conv_graph(tmp_path / "g.onnx", qdq=qdq)
    conv = 8 * 10 * 12 * (4 * 3 * 3)  # every output pixel of every output channel: Cin * kh * kw MACs
    matmul = 8 * 10 * 5 * 12  # (1, 8, 10, 12) @ (12, 5): M x N outputs, K = 12 each
    assert graph_macs(str(tmp_path / "g.onnx")) == conv + matmul


def test_grouped_convolutions_count_their_group_only(tmp_path):
    _conv_graph(tmp_path / "g.onnx", group=2)
    assert graph_macs(str(tmp_path / "g.onnx")) == 8 * 10 * 12 * (2 * 3 * 3) + 8 * 10 * 5 * 12


def _benchmark(path: str, precision: str, median_s: float, *, gmacs: float | None = None, images: int = 1,
               kind: str = "latency", **info) -> dict:
    return {"group": "g" if kind == "latency" else "peak", "name": path,
            "stats": {"median": median_s, "iqr": median_s / 10, "rounds": 5},
            "extra_info": {"kind": kind, "path": path, "backend": "onnxruntime", "precision": precision,
                           "images": images, "gmacs": gmacs, "reference": "loop", **info}}


def test_report_speedups_throughput_and_peak_share(tmp_path):
    data = {"datetime": "2026-11-24T00:00:00", "benchmarks": [
        _benchmark("loop", "fp32", 2.0, gmacs=100.0),
        _benchmark("stitched", "fp32", 1.0, gmacs=100.0),
        _benchmark("stitched int8", "int8", 2.0, gmacs=400.0, images=4),  # 0.5 s and 100 GMAC per image
        _benchmark("GEMM", "fp32", 0.01, kind="gemm", gops=400.0),
        _benchmark("GEMM", "int8", 0.01, kind="gemm", gops=800.0),
    ]}
    (tmp_path / "benchmarks.json").write_text(json.dumps(data))
    (tmp_path / "gates.json").write_text(json.dumps([
        {"gate": "loop / stitched", "ratio": 2.0, "bar": 0.95, "at_most": False, "passed": True, "detail": ""},
        {"gate": "native / raw", "ratio": 1.3, "bar": 1.15, "at_most": True, "passed": False, "detail": ""}]))
    readme = write_report(tmp_path).read_text()
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in readme.splitlines() if line.startswith("| ") and "ms" not in line.split("|")[1]}
    # path: median ms/image, IQR, rounds, speed-up over loop, GMAC/image, GFLOP/s, share of the peak
    assert rows["stitched"][:1] == ["1000.0"] and rows["stitched"][3] == "2.00x"
    assert rows["stitched"][5] == "200" and rows["stitched"][6] == "50%"  # 2 x 100 GMAC / 1 s of 400
    assert rows["stitched int8"][0] == "500.0" and rows["stitched int8"][3] == "4.00x"
    assert rows["stitched int8"][5] == "400" and rows["stitched int8"][6] == "50%"  # of the INT8 peak, 800
    assert "1 of 2 passed" in readme and "**FAIL**" in readme
    assert "FP32: 400 GFLOP/s" in readme and "INT8: 800 GOP/s" in readme
    for chart in ("latency_g.png", "speedup_g.png", "throughput_g.png"):
        assert (tmp_path / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({chart})" in readme
    assert "AVX2-only" in readme  # says it was not measured in this run
