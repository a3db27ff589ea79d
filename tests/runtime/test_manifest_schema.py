"""The manifests the export writes (and the ones embedded in each graph) validate against the JSON Schema."""

from __future__ import annotations

import copy
import json

import pytest

from runtime._manifest import SCHEMA_PATH, model_metadata

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def schema() -> dict:
    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return schema


def _errors(schema: dict, instance: dict) -> list[str]:
    return [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(instance)]


def test_bundle_manifest_validates(schema, tiny_bundle):
    manifest = json.loads((tiny_bundle.bundle / "manifest.json").read_text())
    assert _errors(schema, manifest) == []
    assert {g["layer"] for g in manifest["graphs"]} == {"base", "patch", "full"}


def test_embedded_manifests_validate(schema, tiny_bundle):
    embedded_schema = {**{k: schema[k] for k in ("$schema", "$defs", "properties")},
                       "$ref": "#/$defs/embedded_manifest"}
    for graph in sorted(tiny_bundle.bundle.glob("*.onnx")):
        meta = model_metadata(graph.read_bytes())
        assert set(meta) >= {"sdk.manifest", "sdk.graph_sha256"}
        assert _errors(embedded_schema, json.loads(meta["sdk.manifest"])) == [], graph.name


@pytest.mark.parametrize("edit", [
    lambda m: m.pop("preprocess"),
    lambda m: m.update(schema_version=2),
    lambda m: m["graphs"][0].update(sha256="not-a-hash"),
    lambda m: m["graphs"][0].update(file="../escape.onnx"),
    lambda m: m["graphs"][0].update(precision="int4"),
    lambda m: m["preprocess"].update(layout="NHWC"),
])
def test_schema_rejects_broken_manifests(schema, tiny_bundle, edit):
    manifest = copy.deepcopy(json.loads((tiny_bundle.bundle / "manifest.json").read_text()))
    edit(manifest)
    assert _errors(schema, manifest)
