"""The bundle manifest: the one contract between the export, the Python runtime and libruntime.

The JSON schema is ``runtime/manifest.schema.json`` and the fields are described
in ``runtime/MANIFEST.md``. This module reads and checks a manifest with the
standard library only (no jsonschema on edge boxes) and hashes graph files.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime._errors import ModelLoadError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
PRECISIONS = ("fp32", "fp16", "int8")
LAYERS = ("base", "patch", "full")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int | str, ...]  # a string names a dynamic axis, e.g. "batch"
    dtype: str

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "TensorSpec":
        return cls(data["name"], tuple(data["shape"]), data["dtype"])


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX file of the bundle."""

    file: str
    layer: str
    precision: str
    mode: str
    opset: int
    sha256: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "GraphEntry":
        return cls(data["file"], data["layer"], data["precision"], data.get("mode", "stitched"), data["opset"],
                   data["sha256"], tuple(TensorSpec.parse(t) for t in data["inputs"]),
                   tuple(TensorSpec.parse(t) for t in data["outputs"]))


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest; ``raw`` keeps every field, including the informative ones."""

    family: str
    image_type: str
    preprocess: dict[str, Any]
    postprocess: dict[str, Any]
    tiling: dict[str, Any]
    graphs: tuple[GraphEntry, ...]
    raw: dict[str, Any]

    def graph(self, *, layer: str = "full", precision: str = "fp32") -> GraphEntry:
        """The graph of a layer and precision.

        Raises:
            ModelLoadError: when the bundle holds no such graph.
        """
        for entry in self.graphs:
            if entry.layer == layer and entry.precision == precision:
                return entry
        have = sorted(f"{g.layer}/{g.precision}" for g in self.graphs)
        raise ModelLoadError(f"the bundle has no {layer} graph in {precision}; it has {have}")


_REQUIRED = ("schema_version", "family", "image_type", "preprocess", "postprocess", "tiling", "graphs",
             "checkpoint", "producer")


def parse_manifest(data: Any, *, source: str = "manifest") -> Manifest:
    """Check the structure of a manifest dict and return it parsed.

    Raises:
        ModelLoadError: naming the first missing or malformed field.
    """
    if not isinstance(data, dict):
        raise ModelLoadError(f"{source}: expected a JSON object, got {type(data).__name__}")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ModelLoadError(f"{source}: missing fields {missing}")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ModelLoadError(f"{source}: schema_version {data['schema_version']!r} is not supported; "
                             f"this runtime reads version {SCHEMA_VERSION}")
    try:
        graphs = tuple(GraphEntry.parse(g) for g in data["graphs"])
    except (KeyError, TypeError) as exc:
        raise ModelLoadError(f"{source}: malformed graph entry ({exc!r})") from exc
    for g in graphs:
        if g.layer not in LAYERS or g.precision not in PRECISIONS:
            raise ModelLoadError(f"{source}: graph {g.file} has layer {g.layer!r} / precision {g.precision!r}; "
                                 f"expected a layer in {LAYERS} and a precision in {PRECISIONS}")
        if Path(g.file).name != g.file:
            raise ModelLoadError(f"{source}: graph file {g.file!r} must be a plain file name inside the bundle")
    return Manifest(data["family"], data["image_type"], data["preprocess"], data["postprocess"], data["tiling"],
                    graphs, data)


def read_manifest(bundle: str | Path) -> Manifest:
    """Read ``<bundle>/manifest.json``.

    Raises:
        ModelLoadError: missing file, invalid JSON or malformed manifest.
    """
    path = Path(bundle) / MANIFEST_NAME
    if not path.is_file():
        raise ModelLoadError(f"no {MANIFEST_NAME} in {bundle}; is it an export bundle?")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    return parse_manifest(data, source=str(path))


def read_verified_graph(bundle: str | Path, entry: GraphEntry) -> bytes:
    """The bytes of ``entry``'s file, after checking that their sha256 matches the manifest.

    The bytes that were hashed are the ones handed to the engine, so the file cannot
    change between the check and the load.

    Raises:
        ModelLoadError: missing or unreadable file, or a hash mismatch (truncated or tampered graph).
    """
    path = Path(bundle) / entry.file
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"graph {path} listed in the manifest is missing") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot read graph {path}: {exc}") from exc
    actual = hashlib.sha256(data).hexdigest()
    if actual != entry.sha256:
        raise ModelLoadError(f"graph {path} does not match its manifest: sha256 {actual[:16]}..., "
                             f"expected {entry.sha256[:16]}... (truncated, modified or from another export)")
    return data


def graph_payload_sha256(graph_bytes: bytes) -> str:
    """Hex sha256 of a serialized ``GraphProto``: what a lone .onnx file's embedded manifest vouches for."""
    return hashlib.sha256(graph_bytes).hexdigest()


def _read_varint(data: memoryview, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(data: memoryview):
    """(field number, wire type, value) of each top-level field of a protobuf message.

    Length-delimited values come as memoryviews, varints as ints, fixed-size ones as None.
    """
    pos = 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        field_number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
            if pos > len(data):
                raise ValueError("truncated field")
            value = None
        elif wire_type == 2:
            length, pos = _read_varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value = data[pos:pos + length]
            pos += length
        else:
            raise ValueError(f"unsupported wire type {wire_type}")
        yield field_number, wire_type, value


_GRAPH_FIELD = 7  # ModelProto.graph
_METADATA_FIELD = 14  # ModelProto.metadata_props (repeated StringStringEntryProto: key = 1, value = 2)


def graph_payload(model_bytes: bytes) -> bytes:
    """The raw bytes of the ``graph`` field (number 7) of a serialized ``ModelProto``.

    A dozen lines of protobuf wire-format walking instead of a dependency on the
    ``onnx`` package, which the edge install does not carry.

    Raises:
        ModelLoadError: when the bytes are not a well-formed ModelProto with a graph.
    """
    try:
        for number, wire_type, value in _fields(memoryview(model_bytes)):
            if number == _GRAPH_FIELD and wire_type == 2:
                return bytes(value)
    except ValueError as exc:
        raise ModelLoadError(f"not a valid ONNX model ({exc})") from exc
    raise ModelLoadError("not a valid ONNX model (no graph)")


def model_metadata(model_bytes: bytes) -> dict[str, str]:
    """The ``metadata_props`` of a serialized ``ModelProto`` as a dict, read without onnx or a session.

    Raises:
        ModelLoadError: when the bytes are not a well-formed ModelProto.
    """
    props: dict[str, str] = {}
    try:
        for number, wire_type, value in _fields(memoryview(model_bytes)):
            if number != _METADATA_FIELD or wire_type != 2:
                continue
            entry = {n: bytes(v).decode("utf-8") for n, t, v in _fields(value) if t == 2 and n in (1, 2)}
            props[entry.get(1, "")] = entry.get(2, "")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"not a valid ONNX model ({exc})") from exc
    return props
