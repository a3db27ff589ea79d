"""lhrnet's export: the raw network as layer 1, the decoding inside the full graph, INT8 guarded by keypoint metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import BuildOptions, build, get_export_family
from export._build import _guards, _parse_drops
from export._onnx import drop_outputs
from export.families.lhrnet import DECODE_SCOPE, HEATMAPS
from runtime import InvalidInputError
from runtime.core import prepare, read_manifest
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.families.lhrnet.evaluate import predict_keypoints
from training.families.lhrnet.network import OUTPUT_NAMES
from training.smoke import make_tiny_dataset, sample_images, train_tiny

FAMILY = get_export_family("lhrnet")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("lhrnet-export")
    return Path(train_tiny("lhrnet", make_tiny_dataset("lhrnet", tmp / "data"), tmp / "run").best)


@pytest.fixture(scope="module")
def bundle(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("lhrnet-bundle") / "bundle"
    return build(BuildOptions(checkpoint=checkpoint, out=out, layers=("base", "full"), parity_images=6,
                              calibration_synthetic=4))


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _inputs(bundle_path: Path, count: int = 3) -> np.ndarray:
    pre = read_manifest(bundle_path).preprocess
    return np.stack([prepare(image, pre)[0] for image in sample_images("lhrnet", count, seed=5)])


def test_the_full_graph_returns_points_scores_and_angle_only(bundle):
    for precision in ("fp32", "fp16", "int8"):
        model = onnx.load(bundle.bundle / f"model.{precision}.onnx")
        assert [o.name for o in model.graph.output] == ["points", "scores", "angle"], precision
        dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim] for o in model.graph.output]
        assert dims == [["batch", 2, 2], ["batch", 2], ["batch"]], "the graph declares the contract's shapes"
    entry = read_manifest(bundle.bundle).graph(layer="full", precision="fp32")
    assert [(o.name, o.shape) for o in entry.outputs] == [
        ("points", ("batch", 2, 2)), ("scores", ("batch", 2)), ("angle", ("batch",))]
    base = onnx.load(bundle.bundle / "base.fp32.onnx")
    assert [o.name for o in base.graph.output] == list(OUTPUT_NAMES)


def test_the_full_graph_equals_the_pytorch_reference_at_any_batch(bundle, checkpoint):
    _, network = build_from_checkpoint(load_checkpoint(checkpoint))
    tensors = _inputs(bundle.bundle)
    expected = predict_keypoints(network, tensors)
    points, scores, angle = _session(bundle.bundle / "model.fp32.onnx").run(None, {"input": tensors})
    assert points.shape == (3, 2, 2) and scores.shape == (3, 2) and angle.shape == (3,)
    np.testing.assert_allclose(points, expected["points"], atol=1e-3)
    np.testing.assert_allclose(scores, expected["scores"], atol=1e-5)
    np.testing.assert_allclose(angle, expected["angle"], atol=1e-2)


def test_the_decoding_ignores_the_letterbox_padding(bundle):
    """A heatmap peak in the padding must not win: points land on the image part of the canvas."""
    tensors = _inputs(bundle.bundle)
    valid = tensors[:, -1]
    points, _, _ = _session(bundle.bundle / "model.fp32.onnx").run(None, {"input": tensors})
    for image_valid, image_points in zip(valid, points):
        rows, cols = np.nonzero(image_valid)
        for x, y in image_points:
            assert cols.min() - 4 <= x <= cols.max() + 5 and rows.min() - 4 <= y <= rows.max() + 5


def test_int8_keeps_the_decoding_in_float(bundle):
    model = onnx.load(bundle.bundle / "model.int8.onnx")
    producers = {out: n for n in model.graph.node for out in n.output}
    decode = [n for n in model.graph.node if n.name.startswith(DECODE_SCOPE)]
    assert decode, "the decoding nodes keep their module scope in the graph"
    quantized = [n.name for n in decode for i in n.input
                 if i in producers and producers[i].op_type == "DequantizeLinear"]
    assert not quantized, f"decoding nodes fed by quantized tensors: {quantized}"
    assert not [n for n in decode if n.op_type in ("QuantizeLinear", "DequantizeLinear")]


def test_parity_reports_heatmaps_points_and_keypoint_metrics_per_precision(bundle):
    parity = json.loads((bundle.bundle / "parity.json").read_text())
    full = [g for g in parity["graphs"] if g["layer"] == "full"]
    assert [g["precision"] for g in full] == ["fp32", "fp16", "int8"]
    for graph in full:
        assert {"points", "scores", "angle", HEATMAPS} == set(graph["outputs"])
        assert {"mae", "rmse", "hit@1px", "hit@2px", "hit@5px"} <= set(graph["metrics"])
        assert graph["reference_mib"] in (12.53, 6.27, 3.13)
    assert full[0]["outputs"]["points"]["max_abs_diff"] < 1e-2
    assert [g["metric"] for g in parity["int8_guards"]] == ["hit@5px", "mae", "decision_agreement"]
    assert all(set(a["losses"]) == {"hit@5px", "mae", "decision_agreement"} for a in parity["int8_search"])
    manifest = json.loads((bundle.bundle / "manifest.json").read_text())
    for graph in manifest["graphs"]:
        accuracy = graph.get("accuracy")
        assert (accuracy is not None) == (graph["layer"] == "full")
        if accuracy:  # points found alike and how far they moved, against PyTorch FP32
            assert {"decision_agreement", "point_shift_max_px", "angle_shift_max_deg", "hit@5px"} <= set(
                accuracy["values"])
            assert accuracy["threshold"] == manifest["postprocess"]["score_threshold"]
    report = (bundle.bundle / "report.md").read_text()
    assert "MiB (reference)" in report and "`heatmaps`" in report and "hit@5px (allowed loss 0.05)" in report


def test_guard_overrides_by_name_or_for_the_main_guard():
    assert [(g.metric, g.max_drop) for g in _guards(FAMILY, None)] == [("hit@5px", 0.05), ("mae", 0.5),
                                                                        ("decision_agreement", 0.0)]
    assert [g.max_drop for g in _guards(FAMILY, 0.1)] == [0.1, 0.5, 0.0]
    assert [g.max_drop for g in _guards(FAMILY, _parse_drops("mae = 2, hit@5px=0"))] == [0.0, 2.0, 0.0]
    with pytest.raises(InvalidInputError, match=r"names \['rmse'\], which family 'lhrnet' does not guard"):
        _guards(FAMILY, {"rmse": 1.0})
    for bad in ("mae=", "=1", "mae=1,,", "nan", {"mae": float("nan")}, {}, True):
        with pytest.raises(InvalidInputError, match="--max-metric-drop"):
            _parse_drops(bad)


def test_a_tie_on_the_heatmap_peak_is_not_a_parity_error():
    heat = np.zeros((1, 2, 64, 128))
    heat[0, :, 10, 20] = heat[0, :, 10, 30] = 0.9  # two equal peaks
    reference = {"points": np.array([[[82.0, 42.0], [82.0, 42.0]]]), "scores": np.array([[0.9, 0.9]]),
                 "angle": np.zeros(1), HEATMAPS: heat}
    moved = {**reference, "points": np.array([[[122.0, 42.0], [150.0, 42.0]]])}  # slot: the other peak; part: wrong
    diffs = FAMILY.differences("full", moved, reference)
    assert diffs["points"][0, 0].max() == 0.0 and diffs["points"][0, 1].max() == 68.0


def test_drop_outputs_removes_an_output_and_only_what_fed_it_alone():
    x = torch.zeros(1, 4, 32, 64)

    class Two(torch.nn.Module):
        def forward(self, x):
            shared = x * 2
            return shared + 1, (shared - 3).exp()

    import io

    buffer = io.BytesIO()
    torch.onnx.export(Two(), (x,), buffer, dynamo=False, input_names=["x"], output_names=["a", "b"])
    model = onnx.load_from_string(buffer.getvalue())
    kept = drop_outputs(model, ["b"])
    onnx.checker.check_model(kept, full_check=True)
    assert [o.name for o in kept.graph.output] == ["a"]
    assert sorted(n.op_type for n in kept.graph.node if n.op_type != "Constant") == ["Add", "Mul"]
    assert len([n for n in kept.graph.node if n.op_type == "Constant"]) == 2, "the Sub's and Exp's inputs went too"
    assert len(model.graph.output) == 2, "the input model is not changed"
