"""Export round trip on brn: a light checkpoint made in the test -> every layer and precision -> checks.

The family-generic parts (manifest, schema, every backend) are also run for
every registered family by ``tests/test_family_roundtrip.py`` and
``tests/runtime/test_manifest_schema.py``; this file holds the export's own
behaviour (atomicity, options, the INT8 search) and brn's graph contract.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export import BuildOptions, build
from export import _build
from runtime import InvalidInputError, ModelLoadError
from runtime.core import graph_payload, graph_payload_sha256, read_manifest, sha256_file
from runtime.families.brn import image_type


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _strip(seed: int = 0) -> np.ndarray:
    from training.smoke import sample_images

    return np.stack(sample_images("brn", 2, seed)) / np.float32(255.0)


def test_every_layer_and_precision_is_built_and_checked(tiny_bundle):
    names = {p.name for p in tiny_bundle.bundle.iterdir()}
    expected = {"model.fp32.onnx", "model.fp16.onnx", "model.int8.onnx", "base.fp32.onnx", "patch.fp32.onnx",
                "patch.fp16.onnx", "patch.int8.onnx", "manifest.json", "parity.json", "report.md"}
    assert names == expected
    for name in expected:
        if name.endswith(".onnx"):
            onnx.checker.check_model(onnx.load(tiny_bundle.bundle / name), full_check=True)


def test_manifest_hashes_match_the_files(tiny_bundle):
    manifest = read_manifest(tiny_bundle.bundle)
    assert manifest.family == "brn" and manifest.variant == "strip"
    for entry in manifest.graphs:
        assert sha256_file(tiny_bundle.bundle / entry.file) == entry.sha256
    ckpt = manifest.raw["checkpoint"]
    assert len(ckpt["sha256"]) == 64 and manifest.raw["default_graph"] == "model.fp32.onnx"


def test_each_graph_carries_its_manifest_and_graph_hash(tiny_bundle):
    path = tiny_bundle.bundle / "model.int8.onnx"
    meta = {p.key: p.value for p in onnx.load(path).metadata_props}
    embedded = json.loads(meta["sdk.manifest"])
    assert embedded["graph"]["precision"] == "int8" and embedded["family"] == "brn"
    assert meta["sdk.graph_sha256"] == graph_payload_sha256(graph_payload(path.read_bytes()))


def test_parity_thresholds_hold(tiny_bundle):
    graphs = {g["graph"]: g for g in tiny_bundle.parity["graphs"]}
    for name in ("base.fp32.onnx", "patch.fp32.onnx", "model.fp32.onnx"):
        assert graphs[name]["max_abs_diff"] < 1e-4
    assert graphs["model.fp16.onnx"]["max_abs_diff"] < 5e-3
    assert graphs["model.int8.onnx"]["max_abs_diff"] < 0.1
    for name, g in graphs.items():
        assert g["finite"]
        if not name.startswith("base"):
            assert g["zero_channels_exact"]
        assert g["nodes_after_simplify"] <= g["nodes_before_simplify"]
    assert graphs["model.fp32.onnx"]["nodes_after_simplify"] < graphs["model.fp32.onnx"]["nodes_before_simplify"]
    report = (tiny_bundle.bundle / "report.md").read_text()
    assert "model.int8.onnx" in report and "onnxsim" in report


def test_full_image_graph_io_contract(tiny_bundle):
    for precision in ("fp32", "fp16", "int8"):
        sess = _session(tiny_bundle.bundle / f"model.{precision}.onnx")
        (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
        assert (inp.name, inp.type, inp.shape[1:]) == ("input", "tensor(float)", [3, 976, 176])
        assert (out.name, out.type, out.shape[1:]) == ("output", "tensor(float)", [3, 976, 176])
        assert isinstance(inp.shape[0], str), "the batch axis must be dynamic"
    x = _strip()
    y = _session(tiny_bundle.bundle / "model.fp32.onnx").run(None, {"input": x})[0]
    assert y.shape == (2, 3, 976, 176) and (y[:, 1:] == 0).all() and 0 <= y.min() and y.max() <= 1


def test_in_graph_stitching_equals_numpy_stitching_of_the_patch_graph(tiny_bundle):
    plan = image_type("strip").tiling()
    x = _strip(seed=5)
    full = _session(tiny_bundle.bundle / "model.fp32.onnx").run(None, {"input": x})[0]
    patches = plan.extract(x)  # (2, 18, 3, 128, 128)
    patch_sess = _session(tiny_bundle.bundle / "patch.fp32.onnx")
    outs = np.stack([patch_sess.run(None, {"input": np.ascontiguousarray(patches[:, i])})[0]
                     for i in range(plan.num_patches)], axis=1)
    np.testing.assert_allclose(full, plan.stitch(outs), rtol=0, atol=1e-6)


def test_fp16_graph_has_half_weights_and_float_io(tiny_bundle):
    model = onnx.load(tiny_bundle.bundle / "model.fp16.onnx")
    conv_weights = {n.input[1] for n in model.graph.node if n.op_type == "Conv"}
    dtypes = {i.data_type for i in model.graph.initializer if i.name in conv_weights}
    assert dtypes == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT


def test_int8_graph_is_per_channel_qdq(tiny_bundle):
    model = onnx.load(tiny_bundle.bundle / "model.int8.onnx")
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    entry = next(g for g in read_manifest(tiny_bundle.bundle).raw["graphs"] if g["file"] == "model.int8.onnx")
    quantized = [n for n in convs if n.name not in entry["float_nodes"]]
    assert len(quantized) >= len(convs) - 8 and len(convs) - len(quantized) == len(entry["float_nodes"])
    dq = producers[quantized[0].input[1]]
    assert dq.op_type == "DequantizeLinear"
    assert inits[dq.input[0]].dtype == np.int8
    assert inits[dq.input[1]].size == inits[dq.input[0]].shape[0], "one scale per output channel"


def test_accuracy_aware_int8_keeps_sensitive_nodes_in_float(tiny_checkpoint, tmp_path):
    # An impossible budget forces the search all the way: it must keep nodes in float and say so.
    result = build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "b", precisions=("int8",),
                                parity_images=2, calibration_synthetic=2, max_metric_drop=-1.0, max_float_nodes=2))
    search = result.parity["int8_search"]
    assert [len(a["kept_float"]) for a in search] == [0, 1, 2] and not any(a["passed"] for a in search)
    int8 = next(g for g in result.manifest["graphs"] if g["precision"] == "int8")
    kept = [a for a in search if a.get("kept")]
    assert len(kept) == 1, "the closest failed attempt is the one kept"
    assert kept[0]["losses"]["pixel_auroc"] == min(a["losses"]["pixel_auroc"] for a in search)
    assert set(kept[0]["kept_float"]) <= set(int8["float_nodes"])
    assert "nodes in float" in (tmp_path / "b" / "report.md").read_text()


def test_fcn_mode_reports_its_difference_to_stitched(tiny_checkpoint, tmp_path):
    result = build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "fcn", precisions=("fp32",),
                                mode="fcn", parity_images=2))
    assert result.manifest["tiling"]["mode"] == "fcn" and result.manifest["tiling"]["pad"] == [8, 8, 8, 8]
    diff = result.parity["mode_report"]
    assert diff["max_abs_diff"] > 0 and "pixel_auroc_delta" in diff
    assert result.parity["graphs"][0]["max_abs_diff"] < 1e-4


def _checkpoint_variant(src: Path, dst: Path, **changes) -> Path:
    data = torch.load(src, weights_only=True)
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    torch.save(data, dst)
    return dst


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda ck, tmp: tmp / "missing.pth", ModelLoadError, "not found"),
        (lambda ck, tmp: (tmp / "garbage.pth").write_bytes(b"not a checkpoint") and tmp / "garbage.pth",
         ModelLoadError, "cannot read checkpoint"),
        (lambda ck, tmp: _checkpoint_variant(ck, tmp / "other.pth", family="nosuchfamily"), ModelLoadError,
         "unknown model family 'nosuchfamily'"),
        (lambda ck, tmp: _checkpoint_variant(ck, tmp / "nokeys.pth", model_state_dict=None), ModelLoadError,
         r"lacks keys \['model_state_dict'\]"),
    ],
    ids=["missing", "unreadable", "other-family", "missing-keys"],
)
def test_bad_checkpoints_fail_cleanly_and_leave_nothing(tiny_checkpoint, tmp_path, make, error, match):
    checkpoint = make(tiny_checkpoint, tmp_path)
    with pytest.raises(error, match=match):
        build(BuildOptions(checkpoint=checkpoint, out=tmp_path / "bundle", precisions=("fp32",)))
    assert not (tmp_path / "bundle").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_unsupported_precision_and_existing_bundle(tiny_checkpoint, tmp_path):
    with pytest.raises(InvalidInputError, match="unsupported precision 'int4'"):
        build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "b", precisions=("fp32", "int4")))
    (tmp_path / "exists").mkdir()
    with pytest.raises(InvalidInputError, match="already exists; pass --force"):
        build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "exists"))


def test_interrupted_export_leaves_nothing_behind(tiny_checkpoint, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(_build, "to_fp16", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "b", precisions=("fp32", "fp16")))
    assert os.listdir(tmp_path) == []


def test_forced_rebuild_replaces_the_bundle_atomically(tiny_checkpoint, tmp_path):
    out = tmp_path / "b"
    first = build(BuildOptions(checkpoint=tiny_checkpoint, out=out, precisions=("fp32",), parity_images=2))
    second = build(BuildOptions(checkpoint=tiny_checkpoint, out=out, precisions=("fp32", "fp16"), parity_images=2,
                                force=True))
    assert {g["file"] for g in first.manifest["graphs"]} == {"model.fp32.onnx"}
    assert {g["file"] for g in read_manifest(out).raw["graphs"]} == {g["file"] for g in second.manifest["graphs"]} \
        == {"model.fp32.onnx", "model.fp16.onnx"}
    assert sorted(os.listdir(tmp_path)) == ["b"]
    # A folder holding anything but a bundle is never deleted, even with --force.
    other = tmp_path / "other"
    other.mkdir()
    (other / "stale.txt").write_text("old")
    with pytest.raises(InvalidInputError, match="has no manifest.json; refusing to delete it"):
        build(BuildOptions(checkpoint=tiny_checkpoint, out=other, precisions=("fp32",), parity_images=2, force=True))
    assert os.listdir(other) == ["stale.txt"] and (other / "stale.txt").read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["b", "other"]


def test_cli_prints_the_error_and_exits_non_zero(tmp_path, capsys):
    code = _build.main(["--checkpoint", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "b")])
    assert code == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_cli_summary_ends_with_the_command_to_run(tiny_checkpoint, tmp_path, capsys):
    code = _build.main(["--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "b"), "--precisions", "fp32",
                        "--parity-images", "2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0 and "model.fp32.onnx" in out
    assert out.strip().splitlines()[-1].startswith("run it: python -m runtime.infer")


def test_int8_calibrates_on_a_user_folder(tiny_checkpoint, tiny_dataset, tmp_path):
    result = build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "b", precisions=("int8",),
                                calibration=tiny_dataset / "train" / "good", parity_images=2, max_metric_drop=1.0))
    assert any(g["precision"] == "int8" for g in result.manifest["graphs"])
    with pytest.raises(InvalidInputError, match="no images"):
        build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "c", precisions=("int8",),
                           calibration=tmp_path / "b", parity_images=2))


def test_unknown_mode_and_layer_name_the_family_choices(tiny_checkpoint, tmp_path):
    with pytest.raises(InvalidInputError, match=r"unsupported mode 'tiles' for family 'brn'; expected one of "
                                                 r"\['stitched', 'fcn'\]"):
        build(BuildOptions(checkpoint=tiny_checkpoint, out=tmp_path / "b", precisions=("fp32",), mode="tiles"))
    assert not (tmp_path / "b").exists()
