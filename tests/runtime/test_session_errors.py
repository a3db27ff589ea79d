"""Every bad input and every bad model is refused with an error that names the problem.

The first part runs on the brn bundle; the last part on every registered family's bundle.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import tifffile

from runtime import InvalidInputError, ModelLoadError, Session
from runtime._imageio import write_png
from runtime._manifest import sha256_file

H, W = 976, 176  # the strip image type


@pytest.fixture(scope="module")
def session(bundle):
    with Session(bundle) as s:
        yield s


@pytest.mark.parametrize("array, message", [
    (np.zeros((5, H, W), np.float32), r"expected 3 or 4 channels, got 5"),
    (np.zeros((2, H, W), np.float32), r"expected 3 or 4 channels, got 2"),
    (np.zeros((H, W), np.float32), r"expected an image .* got an array of shape \(976, 176\)"),
    (np.zeros((3, H, W), np.int32), r"unsupported dtype int32"),
    (np.zeros((3, 512, 176), np.float32), rf"expected {H}x{W} \(height x width\) for brn strip, got 512x176"),
    (np.full((3, H, W), 300.0, np.float32), r"values out of range.*max 300"),
    (np.full((3, H, W), 0.5, np.float32), r"values look like 0..1"),
    (np.zeros((1, 2, 3, H, W), np.float32), r"expected an image .* or a batch"),
])
def test_bad_arrays(session, array, message):
    with pytest.raises(InvalidInputError, match=message):
        session.run(array)


def test_nan_is_refused(session):
    image = np.zeros((3, H, W), np.float32)
    image[1, 5, 5] = np.nan
    with pytest.raises(InvalidInputError, match=r"1 NaN or infinite"):
        session.run(image)


def test_bad_member_of_a_batch_is_named(session, strips):
    with pytest.raises(InvalidInputError, match=r"array\[2\]"):
        session.run(np.concatenate([strips[:2], np.full((1, 3, H, W), 999.0, np.float32)]))
    with pytest.raises(InvalidInputError, match=r"images\[1\]"):
        session.run([strips[0], np.zeros((3, 10, 10), np.float32)])
    with pytest.raises(InvalidInputError, match="expected a path or a numpy array, got int"):
        session.run([strips[0], 3])
    with pytest.raises(InvalidInputError, match="got dict"):
        session.run({"image": strips[0]})  # type: ignore[arg-type]


def test_bad_files(session, tmp_path):
    corrupt = tmp_path / "corrupt.tiff"
    corrupt.write_bytes(b"II*\x00" + b"\x00" * 50)
    with pytest.raises(InvalidInputError, match="corrupt"):
        session.run(corrupt)
    with pytest.raises(InvalidInputError, match="not found"):
        session.run(tmp_path / "missing.tiff")
    with pytest.raises(InvalidInputError, match="unsupported image extension"):
        session.run(tmp_path / "notes.txt")
    small = tmp_path / "small.tiff"
    tifffile.imwrite(small, np.zeros((3, 100, 100), np.float32), photometric="minisblack")
    with pytest.raises(InvalidInputError, match="got 100x100"):
        session.run(small)


def test_missing_model(tmp_path):
    with pytest.raises(ModelLoadError, match="model not found"):
        Session(tmp_path / "nowhere")
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        Session(tmp_path)
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(ModelLoadError, match="neither a bundle directory"):
        Session(tmp_path / "x.txt")


def _flip_byte(path, offset_from_end=1000):
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_graph_is_refused_before_loading(bundle_copy):
    _flip_byte(bundle_copy / "model.fp32.onnx")
    with pytest.raises(ModelLoadError, match=r"does not match its manifest: sha256"):
        Session(bundle_copy, precision="fp32")
    with Session(bundle_copy, precision="int8") as s:  # the other graphs are untouched
        assert s.precision == "int8"


def test_truncated_and_missing_graph(bundle_copy):
    graph = bundle_copy / "model.fp16.onnx"
    graph.write_bytes(graph.read_bytes()[:1000])
    with pytest.raises(ModelLoadError, match="does not match its manifest"):
        Session(bundle_copy, precision="fp16")
    (bundle_copy / "model.int8.onnx").unlink()
    with pytest.raises(ModelLoadError, match="is missing"):
        Session(bundle_copy, precision="int8")


def test_missing_precision(bundle_copy):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["graphs"] = [g for g in manifest["graphs"] if g["precision"] != "int8"]
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="no full graph in int8"):
        Session(bundle_copy, precision="int8")


def _edit_full_fp32(bundle_copy, edit):
    path = bundle_copy / "manifest.json"
    manifest = json.loads(path.read_text())
    entry = next(g for g in manifest["graphs"] if g["layer"] == "full" and g["precision"] == "fp32")
    edit(manifest, entry)
    entry["sha256"] = sha256_file(bundle_copy / entry["file"])
    path.write_text(json.dumps(manifest))


def test_manifest_graph_name_mismatch(bundle_copy):
    _edit_full_fp32(bundle_copy, lambda m, e: e["inputs"][0].update(name="image"))
    with pytest.raises(ModelLoadError, match=r"disagree on inputs: the manifest declares 'image'.*the graph has 'input'"):
        Session(bundle_copy, precision="fp32")


def test_manifest_graph_shape_mismatch(bundle_copy):
    def edit(manifest, entry):
        entry["outputs"][0]["shape"] = ["batch", 3, H, 100]
    _edit_full_fp32(bundle_copy, edit)
    with pytest.raises(ModelLoadError, match=r"disagree on outputs: .*\(batch, 3, 976, 100\).*\(\S+, 3, 976, 176\)"):
        Session(bundle_copy, precision="fp32")


def test_manifest_preprocess_mismatch(bundle_copy):
    def edit(manifest, entry):
        manifest["preprocess"]["height"] = 512
    _edit_full_fp32(bundle_copy, edit)
    with pytest.raises(ModelLoadError, match="image input 'input' is .* the preprocess makes"):
        Session(bundle_copy, precision="fp32")


def test_unsupported_postprocess(bundle_copy):
    _edit_full_fp32(bundle_copy, lambda m, e: m["postprocess"].update(kind="boxes"))
    with pytest.raises(ModelLoadError, match=r"postprocess.kind is 'boxes'; expected one of \['heatmap', 'keypoints'\]"):
        Session(bundle_copy, precision="fp32")


def test_lone_onnx_tampered_graph(bundle, tmp_path):
    lone = tmp_path / "model.fp32.onnx"
    shutil.copy2(bundle / "model.fp32.onnx", lone)
    _flip_byte(lone, offset_from_end=len(lone.read_bytes()) // 2)  # inside the weights of the graph
    with pytest.raises(ModelLoadError, match="does not match its embedded manifest"):
        Session(lone)


def test_lone_onnx_precision_and_layer(bundle):
    with pytest.raises(ModelLoadError, match="is the fp32 graph; int8 was asked for"):
        Session(bundle / "model.fp32.onnx", precision="int8")
    with pytest.raises(ModelLoadError, match="patch-layer graph"):
        Session(bundle / "patch.fp32.onnx")


def test_onnx_without_sdk_metadata(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["input"], ["output"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, H, W])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, H, W])])
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ModelLoadError, match="carries no SDK manifest"):
        Session(path)
    path.write_bytes(b"\xff\xff\xff garbage")
    with pytest.raises(ModelLoadError, match="not a valid ONNX model"):
        Session(path)


# -- every registered family (the ``family`` fixture): the same refusals, whatever its input contract ----------
@pytest.fixture(scope="module")
def family_session(family_bundle):
    with Session(family_bundle, threads=1) as s:
        yield s


@pytest.mark.parametrize("channels", [1, 2])
def test_every_family_refuses_one_and_two_channel_images(family_session, family_images, tmp_path, channels):
    image = family_images[0]
    for array in (image[:channels], np.moveaxis(image[:channels], 0, -1), image[:channels].astype(np.uint8)):
        with pytest.raises(InvalidInputError, match=rf"expected 3 or 4 channels, got {channels} \(shape"):
            family_session.run(array)
    from PIL import Image

    path = tmp_path / f"{channels}.png"  # a grey (L) or grey + alpha (LA) PNG
    plane = np.clip(image[0], 0, 255).astype(np.uint8)
    Image.fromarray(plane if channels == 1 else np.stack([plane, plane], -1)).save(path)
    message = "expected a 3-D image with 3 or 4 channels" if channels == 1 else "expected 3 or 4 channels, got 2"
    with pytest.raises(InvalidInputError, match=rf"{message}.*{path.name}"):
        family_session.run(path)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_every_family_refuses_non_finite_values(family_session, family_images, value):
    image = family_images[0].copy()
    image[1, 5, 5] = value
    with pytest.raises(InvalidInputError, match=r"array contains 1 NaN or infinite value\(s\)"):
        family_session.run(image)
    with pytest.raises(InvalidInputError, match=r"images\[1\] contains 1 NaN"):  # named in a batch
        family_session.run([family_images[1], image])


def test_every_family_accepts_its_smallest_image_and_refuses_one_pixel_less(family_session):
    pre = family_session.manifest.preprocess
    if pre.resize == "exact":
        smallest, expected = (pre.height, pre.width), rf"expected {pre.height}x{pre.width} \(height x width\)"
    else:
        smallest, expected = (pre.min_size, pre.min_size), rf"image too small: .*at least {pre.min_size} pixels"
    image = np.full((3, *smallest), 100.0, np.float32)
    assert family_session.run(image).source == "array"
    for shorter in (image[:, 1:], image[:, :, 1:], np.moveaxis(image[:, 1:], 0, -1)):
        if min(smallest) > 1:
            with pytest.raises(InvalidInputError, match=expected):
                family_session.run(shorter)


def test_lhrnet_refuses_images_under_8_pixels_with_the_size_named(family_session, tmp_path):
    if family_session.manifest.family != "lhrnet":
        pytest.skip("lhrnet's limit")
    assert family_session.manifest.preprocess.min_size == 8
    for shape in [(3, 7, 640), (640, 7, 3), (4, 4, 3), (3, 4, 4), (1, 1, 3)]:
        with pytest.raises(InvalidInputError, match=r"image too small: .*\(height x width, shape .*; the lhrnet "
                                                    r"\S+ model needs at least 8 pixels on each side"):
            family_session.run(np.full(shape, 50, np.uint8))
    tiny = write_png(tmp_path / "tiny.png", np.full((5, 300, 3), 50, np.uint8))
    with pytest.raises(InvalidInputError, match=r"image too small: 5x300 .*tiny.png"):
        family_session.run(tiny)


def _output_keys(post: dict) -> list[str]:
    return [key for key in post if key == "output" or key.endswith("_output")]


def test_every_family_manifest_naming_a_missing_output(family_bundle_copy):
    path = family_bundle_copy / "manifest.json"
    original = json.loads(path.read_text())
    for key in _output_keys(original["postprocess"]):
        manifest = json.loads(json.dumps(original))
        manifest["postprocess"][key] = "missing_output"
        path.write_text(json.dumps(manifest))
        with pytest.raises(ModelLoadError, match=r"graph model\.\w+\.onnx has no output 'missing_output'; it has \["):
            Session(family_bundle_copy)


def test_every_family_manifest_and_graph_disagreeing_on_an_output(family_bundle_copy):
    """The manifest is self-consistent but the graph's real outputs differ: refused at load, not at run."""
    def retype(manifest, entry):
        entry["outputs"][0]["dtype"] = "float16"

    def rename(manifest, entry):
        old = entry["outputs"][0]["name"]
        entry["outputs"][0]["name"] = "renamed"
        for key in _output_keys(manifest["postprocess"]):
            if manifest["postprocess"][key] == old:
                manifest["postprocess"][key] = "renamed"
        for other in manifest["graphs"]:
            for spec in other["outputs"] if other["layer"] == "full" else ():
                spec["name"] = "renamed" if spec["name"] == old else spec["name"]

    original = (family_bundle_copy / "manifest.json").read_text()
    for edit, message in ((retype, r"disagree on outputs: the manifest declares '\w+' .* float16, the graph has "
                                   r"'\w+' .* float32"),
                          (rename, r"disagree on outputs: the manifest declares 'renamed' .* the graph has '\w+'")):
        (family_bundle_copy / "manifest.json").write_text(original)
        _edit_full_fp32(family_bundle_copy, edit)
        with pytest.raises(ModelLoadError, match=message):
            Session(family_bundle_copy, precision="fp32")
