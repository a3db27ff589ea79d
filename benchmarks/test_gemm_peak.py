"""This machine's compute limit, measured in the same run as the models: ONNX Runtime's FP32 and INT8 GEMM throughput.

The report divides each model's achieved GFLOP/s (GOP/s for INT8) by these:
a model near 100 % is as fast as the CPU's matrix units let ONNX Runtime be,
and only fewer MACs (a thinner network) make it faster.

One MatMul graph per precision (FP32 MatMul; INT8 MatMulInteger, uint8 x int8
-> int32, the form ONNX Runtime runs its quantized convolutions in), square, at
the size that keeps the cores busy, with the threads of the other benchmarks.
"""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from conftest import THREADS
from onnx import TensorProto, helper

SIZE = 1024
ROUNDS = 15


def _graph(precision: str) -> bytes:
    if precision == "fp32":
        a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [SIZE, SIZE])
        b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [SIZE, SIZE])
        out = helper.make_tensor_value_info("c", TensorProto.FLOAT, [SIZE, SIZE])
        node = helper.make_node("MatMul", ["a", "b"], ["c"])
    else:
        a = helper.make_tensor_value_info("a", TensorProto.UINT8, [SIZE, SIZE])
        b = helper.make_tensor_value_info("b", TensorProto.INT8, [SIZE, SIZE])
        out = helper.make_tensor_value_info("c", TensorProto.INT32, [SIZE, SIZE])
        node = helper.make_node("MatMulInteger", ["a", "b"], ["c"])
    graph = helper.make_graph([node], f"gemm_{precision}", [a, b], [out])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def _inputs(precision: str) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    if precision == "fp32":
        return {"a": rng.random((SIZE, SIZE), dtype=np.float32), "b": rng.random((SIZE, SIZE), dtype=np.float32)}
    return {"a": rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8),
            "b": rng.integers(-128, 128, (SIZE, SIZE), dtype=np.int8)}


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_gemm_peak(benchmark, precision):
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    session = ort.InferenceSession(_graph(precision), options, providers=["CPUExecutionProvider"])
    feeds = _inputs(precision)
    benchmark.group = "GEMM peak (this machine's compute limit)"
    benchmark.pedantic(session.run, args=(None, feeds), rounds=ROUNDS, iterations=1, warmup_rounds=2)
    ops = 2.0 * SIZE ** 3
    benchmark.extra_info.update({"kind": "gemm", "precision": precision, "threads": THREADS,
                                 "path": f"ONNX Runtime {'MatMul' if precision == 'fp32' else 'MatMulInteger'} "
                                         f"{SIZE}^3", "gops": ops / benchmark.stats.stats.median / 1e9})
