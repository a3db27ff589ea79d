"""``--opset``: graphs at opset 11 for older ONNX Runtime builds; what cannot be built there is refused before any work."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from export import BuildOptions, build
from export import _build
from export._family import get_export_family
from export._onnx import export_module, graph_opset
from export._quantize import QuantSettings
from runtime import ExportError, Session
from runtime.core import read_manifest
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.smoke import sample_images

OLD = 11


@pytest.fixture(scope="module")
def opset11_bundle(tiny_checkpoint, tmp_path_factory) -> Path:
    """brn's patch and full graphs in FP32 and FP16 at opset 11, through the command line."""
    out = tmp_path_factory.mktemp("opset") / "brn11"
    code = _build.main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--opset", str(OLD),
                        "--precisions", "fp32,fp16", "--layers", "patch,full", "--parity-images", "2",
                        "--no-progress"])
    assert code == 0
    return out


def _reference(checkpoint: Path, images: np.ndarray) -> np.ndarray:
    """The full-image PyTorch module of the checkpoint on ``images`` (graph input in 0..1)."""
    state = load_checkpoint(checkpoint)
    _, network = build_from_checkpoint(state)
    family = get_export_family(state["family"])
    spec = family.layer(network, "full", family.modes[0], state["variant"])
    with torch.no_grad():
        return spec.module(torch.from_numpy(images)).numpy()


def test_every_graph_and_the_manifest_say_opset_11(opset11_bundle):
    manifest = read_manifest(opset11_bundle)
    assert {g.file for g in manifest.graphs} == {"model.fp32.onnx", "model.fp16.onnx", "patch.fp32.onnx",
                                                 "patch.fp16.onnx"}
    for entry in manifest.graphs:
        model = onnx.load(opset11_bundle / entry.file)
        assert entry.opset == OLD and graph_opset(model) == OLD
        embedded = json.loads({p.key: p.value for p in model.metadata_props}["sdk.manifest"])
        assert embedded["graph"]["opset"] == OLD
        onnx.checker.check_model(model, full_check=True)


def test_opset_11_graphs_run_in_onnx_runtime_and_match_pytorch(opset11_bundle, tiny_checkpoint):
    images = np.stack(sample_images("brn", 2, seed=4)).astype(np.float32)
    inputs = images[:, :3] / np.float32(255.0)
    reference = _reference(tiny_checkpoint, inputs)
    for precision, tolerance in (("fp32", 1e-4), ("fp16", 5e-3)):
        sess = ort.InferenceSession(str(opset11_bundle / f"model.{precision}.onnx"),
                                    providers=["CPUExecutionProvider"])
        out = sess.run(None, {"input": inputs})[0]
        assert np.abs(out - reference).max() < tolerance, precision
    # and through the runtime, which reads the manifest and pre-processes the source images itself
    heatmap = Session(opset11_bundle, precision="fp32").run(images[0]).heatmap
    assert np.abs(heatmap - np.clip(reference[0, 0], 0, 1)).max() < 1e-4


def test_per_tensor_int8_builds_at_opset_11_through_the_python_api(tiny_checkpoint, tmp_path):
    result = build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "b", opset=OLD, precisions=("int8",),
                                parity_images=2, calibration_synthetic=2, max_metric_drop=1.0,
                                quant=QuantSettings(per_channel=False)))
    model = onnx.load(result.bundle / "model.int8.onnx")
    assert graph_opset(model) == OLD
    assert all(a.name != "axis" for n in model.graph.node if n.op_type.endswith("QuantizeLinear") for a in n.attribute)
    sess = ort.InferenceSession(str(result.bundle / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    inputs = np.stack(sample_images("brn", 1, seed=4))[:, :3].astype(np.float32) / np.float32(255.0)
    out = sess.run(None, {"input": inputs})[0]
    assert np.abs(out - _reference(tiny_checkpoint, inputs)).max() < 0.1


def test_int8_at_opset_11_from_the_command_line_is_per_tensor_and_loads(tiny_checkpoint, tmp_path, caplog):
    out = tmp_path / "b"
    with caplog.at_level("WARNING", logger="export._build"):
        assert _build.main(["--checkpoint", str(tiny_checkpoint), "--out", str(out), "--opset", str(OLD),
                            "--parity-images", "2", "--calibration-synthetic", "2", "--max-metric-drop", "1",
                            "--no-progress"]) == 0
    assert "INT8 weights are quantized per tensor" in caplog.text
    model = onnx.load(out / "model.int8.onnx")
    assert graph_opset(model) == OLD
    assert all(a.name != "axis" for n in model.graph.node if n.op_type.endswith("QuantizeLinear") for a in n.attribute)
    ort.InferenceSession(str(out / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    parity = json.loads((out / "parity.json").read_text())
    int8 = [c for c in _checks(parity) if c.get("precision") == "int8"]
    assert int8 and all(c["int8_weights"] == "per-tensor" for c in int8)


def _checks(tree):
    """Every dict in a parsed parity.json (its layout is the report's business)."""
    if isinstance(tree, dict):
        yield tree
        for value in tree.values():
            yield from _checks(value)
    elif isinstance(tree, list):
        for value in tree:
            yield from _checks(value)


@pytest.mark.parametrize(("opset", "match"), [
    (10, r"--opset must be an integer in 11\.\.\d+, got 10"),
    (99, r"--opset must be an integer in 11\.\.\d+, got 99"),
], ids=["below-11", "above-the-exporter"])
def test_impossible_opsets_exit_2_before_any_work_and_leave_nothing(tiny_checkpoint, tmp_path, capsys, opset, match):
    argv = ["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b"), "--opset", str(opset),
            "--precisions", "fp32", "--no-progress"]
    assert _build.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and re.search(match, err), err
    assert list(tmp_path.iterdir()) == [], "no bundle, staging folder or lock is left behind"


def test_the_highest_accepted_opset_is_what_exporter_and_onnx_runtime_support():
    from torch.onnx._constants import ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET

    assert _build.MIN_OPSET == OLD
    assert _build._max_opset() <= ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


class _Sampler(nn.Module):
    """grid_sample: exported from opset 16 on."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grid = torch.zeros(1, 4, 4, 2).expand(x.shape[0], -1, -1, -1)
        return nn.functional.grid_sample(x, grid, align_corners=False)


def test_an_operator_missing_at_the_opset_is_an_export_error_naming_it():
    with pytest.raises(ExportError, match=r"cannot export _Sampler at opset 11: .*grid_sampler"):
        export_module(_Sampler(), torch.rand(1, 3, 8, 8), opset=OLD, input_name="input", output_names=("output",))
    model = export_module(_Sampler(), torch.rand(1, 3, 8, 8), opset=16, input_name="input", output_names=("output",))
    assert graph_opset(model) == 16


def test_every_family_builds_fp32_and_fp16_at_opset_11(family, tmp_path):
    from training.smoke import make_tiny_dataset, train_tiny

    run = train_tiny(family, make_tiny_dataset(family, tmp_path / "data"), tmp_path / "run")
    result = build(BuildOptions(checkpoint=run.best, out=tmp_path / "b", opset=OLD, precisions=("fp32", "fp16"),
                                parity_images=2))
    assert {(g["precision"], g["opset"]) for g in result.manifest["graphs"]} == {("fp32", OLD), ("fp16", OLD)}
    for graph in result.parity["graphs"]:  # the build itself fails an FP32 graph that differs from PyTorch
        assert graph["finite"] and graph_opset(onnx.load(result.bundle / graph["graph"])) == OLD
