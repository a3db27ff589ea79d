"""Manifest v2: what the export writes validates against the JSON Schema, and the Python reader enforces the same rules.

Every family's bundle is checked (the ``family_bundle`` fixture is parametrized
over the registry); the broken-manifest cases are edits that both the schema and
``runtime._manifest.parse_manifest`` must refuse, values included.
"""

from __future__ import annotations

import copy
import json

import pytest

from runtime import ModelLoadError
from runtime.core import SCHEMA_VERSION, model_metadata, parse_manifest
from runtime._manifest import SCHEMA_PATH

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def schema() -> dict:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _errors(schema: dict, instance: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


def _manifest(bundle) -> dict:
    return json.loads((bundle / "manifest.json").read_text())


def test_bundle_manifest_validates(schema, family_bundle):
    manifest = _manifest(family_bundle)
    assert manifest["schema_version"] == SCHEMA_VERSION == 2
    assert _errors(schema, manifest) == []
    parsed = parse_manifest(manifest)
    assert parsed.graphs[0].file == parsed.default_graph == "model.fp32.onnx"
    assert all(t.role for g in parsed.graphs for t in (*g.inputs, *g.outputs))


def test_embedded_manifests_validate(schema, family_bundle):
    embedded_schema = {**{k: schema[k] for k in ("$schema", "$defs", "properties")},
                       "$ref": "#/$defs/embedded_manifest"}
    for graph in sorted(family_bundle.glob("*.onnx")):
        meta = model_metadata(graph.read_bytes())
        assert set(meta) >= {"sdk.manifest", "sdk.graph_sha256"}
        embedded = json.loads(meta["sdk.manifest"])
        assert _errors(embedded_schema, embedded) == [], graph.name
        parse_manifest(embedded, embedded=True)


def _first_output(m: dict) -> dict:
    return m["graphs"][0]["outputs"][0]


BROKEN = {
    "missing preprocess": lambda m: m.pop("preprocess"),
    "schema version 1": lambda m: m.update(schema_version=1),
    "bad hash": lambda m: m["graphs"][0].update(sha256="not-a-hash"),
    "path in file name": lambda m: m["graphs"][0].update(file="../escape.onnx"),
    "unknown precision": lambda m: m["graphs"][0].update(precision="int4"),
    "NHWC layout": lambda m: m["preprocess"].update(layout="NHWC"),
    "zero scale": lambda m: m["preprocess"].update(scale=0),
    "negative scale": lambda m: m["preprocess"].update(scale=-1.0),
    "negative channel index": lambda m: m["preprocess"].update(read_channels=[-1, 0, 1]),
    "unknown resize": lambda m: m["preprocess"].update(resize="stretch"),
    "unknown postprocess kind": lambda m: m["postprocess"].update(kind="boxes"),
    "tensor without role": lambda m: _first_output(m).pop("role"),
    "bad dtype": lambda m: _first_output(m).update(dtype="complex64"),
    "zero dimension": lambda m: _first_output(m).update(shape=["batch", 0]),
    "no graphs": lambda m: m.update(graphs=[]),
    "zero min_size": lambda m: m["preprocess"].update(min_size=0),
    "fractional min_size": lambda m: m["preprocess"].update(min_size=7.5),
    "upper-case color_order": lambda m: m["preprocess"].update(color_order="BGR"),
    "unknown color_order": lambda m: m["preprocess"].update(color_order="rgba"),
    "color_order not a string": lambda m: m["preprocess"].update(color_order=1),
}


@pytest.mark.parametrize("edit", list(BROKEN.values()), ids=list(BROKEN))
def test_schema_and_reader_reject_broken_manifests(schema, family_bundle, edit):
    manifest = copy.deepcopy(_manifest(family_bundle))
    edit(manifest)
    assert _errors(schema, manifest)
    with pytest.raises(ModelLoadError):
        parse_manifest(manifest)


HEATMAP_ONLY = {
    "threshold above 1": lambda m: m["postprocess"].update(threshold=1.5),
    "channel outside the output": lambda m: m["postprocess"].update(channel=-1),
}


@pytest.mark.parametrize("edit", list(HEATMAP_ONLY.values()), ids=list(HEATMAP_ONLY))
def test_heatmap_values_are_checked(schema, family_bundle, edit):
    manifest = copy.deepcopy(_manifest(family_bundle))
    if manifest["postprocess"]["kind"] != "heatmap":
        pytest.skip("a heatmap family's rule")
    edit(manifest)
    assert _errors(schema, manifest)
    with pytest.raises(ModelLoadError):
        parse_manifest(manifest)


def _grow_image_input(m: dict) -> None:
    next(g for g in m["graphs"] if g["layer"] == "full")["inputs"][0]["shape"][1] += 1


READER_ONLY = {
    "inverted range": (lambda m: m["preprocess"].update(source_range=[255.0, 0.0]), "low < high"),
    "input the preprocess does not make": (_grow_image_input, "image input"),
    "channel a source image may lack": (lambda m: m["preprocess"].update(read_channels=[0, 1, 9]),
                                        "indices below"),
    "default graph not in the bundle": (lambda m: m.update(default_graph="other.onnx"), "default_graph"),
    "min_size above the input size": (lambda m: m["preprocess"].update(min_size=m["preprocess"]["height"] + 1),
                                      r"min_size is \d+; expected an integer in 1\.\.\d+"),
}


@pytest.mark.parametrize("edit, message", list(READER_ONLY.values()), ids=list(READER_ONLY))
def test_reader_checks_what_the_schema_cannot(family_bundle, edit, message):
    """Rules across fields or values that JSON Schema cannot state; the reader enforces them."""
    manifest = copy.deepcopy(_manifest(family_bundle))
    edit(manifest)
    with pytest.raises(ModelLoadError, match=message):
        parse_manifest(manifest)


def test_min_size_is_optional_and_defaults_to_one(schema, family_bundle):
    """Bundles written before the field existed stay valid, and accept images of any size."""
    manifest = copy.deepcopy(_manifest(family_bundle))
    manifest["preprocess"].pop("min_size", None)
    assert _errors(schema, manifest) == []
    assert parse_manifest(manifest).preprocess.min_size == 1
    manifest["preprocess"]["min_size"] = 1
    assert parse_manifest(manifest).preprocess.min_size == 1
    assert "min_size" not in parse_manifest(manifest).preprocess.to_dict()  # the default is not written


def test_color_order_is_optional_and_defaults_to_rgb(schema, family_bundle):
    """Bundles written before the field stay valid and read PNG/JPEG planes as before (channel 0 = red)."""
    manifest = copy.deepcopy(_manifest(family_bundle))
    manifest["preprocess"].pop("color_order", None)
    assert _errors(schema, manifest) == []
    assert parse_manifest(manifest).preprocess.color_order == "rgb"
    for order in ("rgb", "bgr"):
        manifest["preprocess"]["color_order"] = order
        assert _errors(schema, manifest) == []
        parsed = parse_manifest(manifest).preprocess
        assert parsed.color_order == order and parsed.to_dict()["color_order"] == order  # always written


def test_bundles_state_their_family_color_order(family, family_bundle):
    """The export writes the family's order: brn's production PNGs are OpenCV's BGR, lhrnet's photos RGB."""
    from runtime import get_family

    manifest = _manifest(family_bundle)
    declared = get_family(family).input_spec(manifest["variant"]).color_order
    assert manifest["preprocess"]["color_order"] == declared.value
    assert declared.value == {"brn": "bgr", "lhrnet": "rgb"}.get(family, declared.value)


KEYPOINT_SHAPES = {  # (the output's role, its new shape given K points, the message)
    "points of three coordinates": ("points", lambda k: ["batch", k, 3], r"expected \(N, \d+, 2\)"),
    "one score too many": ("scores", lambda k: ["batch", k + 1], r"expected \(N, \d+\), one score per point"),
    "scores without the point axis": ("scores", lambda k: ["batch"], r"expected \(N, \d+\), one score per point"),
    "an angle per point": ("angle", lambda k: ["batch", k], r"expected \(N,\) or \(N, 1\), one angle per image"),
}


@pytest.mark.parametrize("role, shape, message", list(KEYPOINT_SHAPES.values()), ids=list(KEYPOINT_SHAPES))
def test_keypoint_output_shapes_are_checked(family_bundle, role, shape, message):
    manifest = copy.deepcopy(_manifest(family_bundle))
    post = manifest["postprocess"]
    if post["kind"] != "keypoints" or f"{role}_output" not in post:
        pytest.skip(f"a rule of keypoints families (their {role} output)")
    entry = next(g for g in manifest["graphs"] if g["layer"] == "full")
    output = next(o for o in entry["outputs"] if o["name"] == post[f"{role}_output"])
    output["shape"] = shape(len(post["points"]))
    with pytest.raises(ModelLoadError, match=message):
        parse_manifest(manifest)


def test_version_1_says_to_re_export(family_bundle):
    manifest = {**_manifest(family_bundle), "schema_version": 1}
    with pytest.raises(ModelLoadError, match="re-export"):
        parse_manifest(manifest)
