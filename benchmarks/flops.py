"""Multiply-accumulates of an ONNX graph, counted from the graph itself (for GFLOP/s and GOP/s in the report).

Shapes come from ONNX shape inference with every dynamic dimension set to 1
(batch 1). Counted: Conv, ConvTranspose, MatMul, Gemm and their integer and
QLinear forms (a QDQ INT8 graph runs its convolutions as Conv nodes between
DequantizeLinear/QuantizeLinear, so it counts like its FP32 graph). Everything
else (activations, resizes, slicing) is left out: it is memory-bound and small
beside the convolutions of these models.

    python -m benchmarks.flops model.fp32.onnx
"""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import onnx
from onnx import shape_inference

CONV = {"Conv", "ConvInteger", "QLinearConv"}
MATMUL = {"MatMul", "MatMulInteger", "QLinearMatMul"}
# Input index of the weight (the second operand) per op: QLinear ops carry scale and zero point first.
_WEIGHT = {"Conv": 1, "ConvInteger": 1, "QLinearConv": 3, "ConvTranspose": 1, "MatMul": 1, "MatMulInteger": 1,
           "QLinearMatMul": 3, "Gemm": 1}


def _fix_batch(model: onnx.ModelProto) -> None:
    for value in model.graph.input:
        for dim in value.type.tensor_type.shape.dim:
            if not dim.HasField("dim_value"):
                dim.dim_value = 1


def _shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {}
    graph = model.graph
    for value in [*graph.input, *graph.value_info, *graph.output]:
        dims = value.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(d.dim_value for d in dims)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
    return shapes


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return a.i
    return default


def _weight_shape(node: onnx.NodeProto, shapes: dict, producers: dict) -> tuple[int, ...] | None:
    name = node.input[_WEIGHT[node.op_type]]
    # A QDQ graph feeds the weight through DequantizeLinear: its shape is its quantized initializer's.
    while name not in shapes and name in producers and producers[name].op_type in ("DequantizeLinear", "Identity",
                                                                                    "Cast"):
        name = producers[name].input[0]
    return shapes.get(name)


def node_macs(node: onnx.NodeProto, shapes: dict, producers: dict) -> int:
    """MACs of one node at batch 1 (0 for ops that are not counted or whose shapes are unknown)."""
    op = node.op_type
    if op not in CONV | MATMUL | {"ConvTranspose", "Gemm"}:
        return 0
    out = shapes.get(node.output[0])
    weight = _weight_shape(node, shapes, producers)
    if out is None or weight is None:
        return 0
    if op in CONV:  # out (N, Cout, *spatial); weight (Cout, Cin/group, *kernel)
        return math.prod(out) * math.prod(weight[1:])
    if op == "ConvTranspose":  # weight (Cin, Cout/group, *kernel); each input pixel scatters a kernel
        x = shapes.get(node.input[0])
        return 0 if x is None else math.prod(x) * math.prod(weight[1:])
    # MatMul / Gemm: out (..., M, N); K from the weight (K, N) or, transposed in Gemm, (N, K)
    k = weight[-1] if op == "Gemm" and _attr(node, "transB", 0) else weight[-2] if len(weight) >= 2 else weight[0]
    return math.prod(out) * k


@functools.lru_cache(maxsize=None)
def graph_macs(path: str | Path) -> int:
    """MACs of one run of the graph at ``path`` at batch 1 (a QDQ INT8 graph counts as its FP32 graph)."""
    model = onnx.load(str(path))
    _fix_batch(model)
    model = shape_inference.infer_shapes(model)
    shapes = _shapes(model)
    producers = {out: node for node in model.graph.node for out in node.output}
    return sum(node_macs(node, shapes, producers) for node in model.graph.node)


def main(argv: list[str]) -> int:
    for path in argv:
        print(f"{path}: {graph_macs(path) / 1e9:.3f} GMAC")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
