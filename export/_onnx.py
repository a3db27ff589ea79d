"""ONNX plumbing of the export: torch -> ONNX, simplification, FP16, running a graph."""

from __future__ import annotations

import collections
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from runtime.core import ExportError


def export_module(module: nn.Module, example: torch.Tensor, *, opset: int, input_name: str,
                  output_names: tuple[str, ...]) -> onnx.ModelProto:
    """Trace ``module`` to an ONNX model with a dynamic batch axis on its input and every output.

    The TorchScript exporter is used on purpose: it emits plain Slice/Concat for
    the stitching (the dynamo exporter's output needs more clean-up), it is
    deterministic for a given torch version, and it writes opsets back to 7
    (the dynamo exporter starts at 18), so graphs for older runtimes can be made.

    Raises:
        ExportError: the module uses an operator the exporter cannot write at ``opset``.
    """
    module.eval()
    import io

    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        try:
            torch.onnx.export(module, (example,), buffer, dynamo=False, opset_version=opset,
                              input_names=[input_name], output_names=list(output_names),
                              dynamic_axes={name: {0: "batch"} for name in (input_name, *output_names)},
                              do_constant_folding=True)
        except torch.onnx.errors.OnnxExporterError as exc:
            raise ExportError(f"torch {torch.__version__} cannot export {type(module).__name__} at opset {opset}: "
                              f"{exc}") from exc
    module.eval()  # export restores the caller's mode recursively; keep BatchNorm in eval
    return onnx.load_from_string(buffer.getvalue())


def graph_opset(model: onnx.ModelProto) -> int:
    """The version of the default (``ai.onnx``) operator set ``model`` imports."""
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


@functools.lru_cache(maxsize=None)
def runtime_max_opset() -> int:
    """The newest ``ai.onnx`` opset the installed ONNX Runtime has CPU kernels for (where the parity checks run)."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as native

        return max(k.version_range[0] for k in native.get_all_opkernel_def()
                   if k.domain in ("", "ai.onnx") and k.provider == "CPUExecutionProvider")
    except (ImportError, AttributeError, ValueError):  # a build without the kernel listing: do not cap
        return onnx.defs.onnx_opset_version()


def op_histogram(model: onnx.ModelProto) -> dict[str, int]:
    return dict(sorted(collections.Counter(n.op_type for n in model.graph.node).items()))


@dataclass(frozen=True)
class SimplifyReport:
    nodes_before: int
    nodes_after: int
    ops_before: dict[str, int]
    ops_after: dict[str, int]
    simplified: bool

    def changes(self) -> dict[str, int]:
        """Per op type, how many nodes the simplifier added (positive) or removed (negative)."""
        ops = set(self.ops_before) | set(self.ops_after)
        delta = {op: self.ops_after.get(op, 0) - self.ops_before.get(op, 0) for op in sorted(ops)}
        return {op: d for op, d in delta.items() if d}


def simplify(model: onnx.ModelProto, *, enabled: bool = True) -> tuple[onnx.ModelProto, SimplifyReport]:
    """Run onnxsim (constant folding, dead-code removal, fusions) and report what changed."""
    before = op_histogram(model)
    if enabled:
        import onnxsim

        simplified, ok = onnxsim.simplify(model)
        if not ok:
            raise RuntimeError("onnxsim could not validate the simplified graph")
        model = simplified
    after = op_histogram(model)
    return model, SimplifyReport(sum(before.values()), sum(after.values()), before, after, enabled)


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Half weights and compute, float32 input and output.

    Uses the float16 converter that ships inside the onnxruntime wheel (the same
    code as onnxconverter-common), so no extra dependency. Weights beyond the
    half range are clamped by the converter; :func:`check_finite_weights` proves it.
    """
    from onnxruntime.transformers.float16 import convert_float_to_float16

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about every clamped tiny weight
        half = convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    # The converter appends its input casts after their consumers, and emits the same
    # Cast once per consumer of a shared constant; ONNX wants topological, SSA form.
    return topologically_sorted(_drop_duplicate_nodes(half))


def _drop_duplicate_nodes(model: onnx.ModelProto) -> onnx.ModelProto:
    """Remove exact repeats of a node (same op, inputs, outputs and attributes)."""
    seen: dict[str, bytes] = {}
    unique = []
    for node in model.graph.node:
        key = node.SerializeToString(deterministic=True)
        clash = [o for o in node.output if o in seen]
        if clash:
            if all(seen[o] == key for o in clash) and len(clash) == len(node.output):
                continue
            raise ValueError(f"node {node.name!r} redefines {clash} differently")
        seen.update({o: key for o in node.output})
        unique.append(node)
    del model.graph.node[:]
    model.graph.node.extend(unique)
    return model


def topologically_sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with its nodes reordered so that every node follows its producers (stable otherwise)."""
    nodes = list(model.graph.node)
    available = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer} | {""}
    ordered: list[onnx.NodeProto] = []
    pending = nodes
    while pending:
        remaining = []
        for node in pending:
            if all(name in available for name in node.input):
                ordered.append(node)
                available.update(node.output)
            else:
                remaining.append(node)
        if len(remaining) == len(pending):
            raise ValueError(f"graph has a cycle or a missing input at node {remaining[0].name!r}")
        pending = remaining
    del model.graph.node[:]
    model.graph.node.extend(ordered)
    return model


def drop_outputs(model: onnx.ModelProto, names: list[str] | tuple[str, ...]) -> onnx.ModelProto:
    """A copy of ``model`` without the graph outputs ``names`` and the nodes that only they needed."""
    if not names:
        return model
    out = onnx.ModelProto()
    out.CopyFrom(model)
    graph = out.graph
    kept = [o for o in graph.output if o.name not in set(names)]
    del graph.output[:]
    graph.output.extend(kept)
    while True:  # dead-node elimination, consumers first
        needed = {o.name for o in graph.output} | {i for n in graph.node for i in n.input}
        dead = [k for k, n in enumerate(graph.node) if not any(o in needed for o in n.output)]
        if not dead:
            break
        for k in reversed(dead):
            del graph.node[k]
    used = {i for n in graph.node for i in n.input}
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    infos = [v for v in graph.value_info if v.name in used]
    del graph.value_info[:]
    graph.value_info.extend(infos)
    return out


def declare_shapes(model: onnx.ModelProto, shapes: dict[str, tuple[int | str, ...]]) -> list[str]:
    """Write the contract's shapes onto the graph's inputs and outputs (in place); the conflicts found.

    Tracing leaves some axes symbolic (``Concatpoints_dim_1``) that the contract
    fixes; a runtime reading the graph should see the contract. An axis the graph
    fixes to another size, or a wrong rank, is a conflict and is left alone.
    """
    conflicts = []
    for value in (*model.graph.input, *model.graph.output):
        if value.name not in shapes:
            continue
        dims, wanted = value.type.tensor_type.shape.dim, shapes[value.name]
        if len(dims) != len(wanted):
            conflicts.append(f"{value.name}: rank {len(dims)}, the contract says {len(wanted)}")
            continue
        for axis, (dim, size) in enumerate(zip(dims, wanted)):
            if isinstance(size, str):
                dim.dim_param = size
            elif dim.HasField("dim_value") and dim.dim_value != size:
                conflicts.append(f"{value.name} axis {axis}: {dim.dim_value}, the contract says {size}")
            else:
                dim.dim_value = size
    return conflicts


def check_finite_weights(model: onnx.ModelProto) -> list[str]:
    """Names of initializers holding NaN or inf (empty when the graph is clean)."""
    bad = []
    for init in model.graph.initializer:
        values = onnx.numpy_helper.to_array(init)
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            bad.append(init.name)
    return bad


def session(model: onnx.ModelProto | str | Path, *, threads: int | None = None) -> ort.InferenceSession:
    """A CPU ONNX Runtime session over an in-memory model or a file."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.log_severity_level = 3
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def run_batches(sess: ort.InferenceSession, inputs: np.ndarray, *, batch_size: int = 1) -> dict[str, np.ndarray]:
    """Every output of ``sess`` by name, on ``inputs`` run ``batch_size`` at a time."""
    name = sess.get_inputs()[0].name
    names = [o.name for o in sess.get_outputs()]
    runs = [sess.run(names, {name: inputs[i:i + batch_size]}) for i in range(0, len(inputs), batch_size)]
    return {n: np.concatenate([r[k] for r in runs]) for k, n in enumerate(names)}


def embed_metadata(model: onnx.ModelProto, entries: dict[str, str]) -> None:
    """Add (or replace) ``metadata_props`` entries of ``model`` in place."""
    keep = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)
    for key, value in entries.items():
        model.metadata_props.add(key=key, value=value)
