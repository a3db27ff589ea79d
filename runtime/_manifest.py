"""The bundle manifest (schema version 2): the one contract between the export, the Python runtime and libruntime.

The JSON schema is ``runtime/manifest.schema.json`` and the fields are described
in ``runtime/MANIFEST.md``. This module parses a manifest into typed, frozen
dataclasses with the standard library only (edge boxes have no jsonschema), and
checks the same rules the schema states, values included: a negative channel
index, a zero scale or an inverted range is a :class:`ModelLoadError` at load
time, never a wrong answer later. ``tests/runtime/test_manifest_schema.py``
holds the two in agreement.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from runtime._errors import ModelLoadError
from runtime._imageio import COLOR_ORDERS, ColorOrder

SCHEMA_VERSION = 2
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")
PRECISIONS = ("fp32", "fp16", "int8")
LAYERS = ("base", "patch", "full")
DTYPES = ("float32", "float16", "uint8", "int8", "int64")
RESIZE_POLICIES = ("exact", "letterbox")
LAYOUTS = ("CHW", "HWC")
MAX_RANK = 8
#: The largest manifest.json read. Real ones are a few KiB; the limit only keeps a
#: wrong file (a log, a dataset, a device) from being read into memory.
MAX_MANIFEST_BYTES = 16 << 20
#: The largest lone .onnx read (a bundle graph's size is its manifest's ``bytes``):
#: protobuf cannot serialize a ModelProto of 2 GiB or more, so no real graph is larger.
MAX_GRAPH_BYTES = 2 << 30

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:/-]*$")
_ROLE = re.compile(r"^[a-z][a-z0-9_]*$")
_FAMILY = re.compile(r"^[a-z][a-z0-9_]*$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_FILE = re.compile(r"^[^/\\]+\.onnx$")


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_regular_file(path: str | Path, *, what: str, max_bytes: int | None = None,
                      expected_bytes: int | None = None) -> bytes:
    """The bytes of a model file (manifest.json, a bundle graph, a lone .onnx), refusing anything else.

    The one opener of the runtime's model files. It opens with ``O_NONBLOCK``
    (opening a FIFO for reading otherwise blocks until a writer comes, forever),
    then ``fstat()``-s the open descriptor, not the path (a path can be swapped
    between a check and the open), and refuses what is not a regular file: a
    FIFO, a socket or a device such as ``/dev/zero`` (which never ends) would hang
    or fill the memory. The size is checked before a byte is read, and exactly
    that many bytes are read.

    Args:
        path: the file.
        what: what it is (``"manifest"``, ``"graph"``), used in messages.
        max_bytes: refuse a larger file.
        expected_bytes: the file must have exactly this size (a graph's manifest ``bytes``).

    Raises:
        ModelLoadError: a missing or unreadable file, not a regular file, a wrong size.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ModelLoadError(f"{what} {path} is missing") from None
    except OSError as exc:
        raise ModelLoadError(f"cannot open {what} {path}: {exc.strerror or exc}") from exc
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ModelLoadError(f"{what} {path} is {_file_kind(info.st_mode)}; expected a regular file")
        size = info.st_size
        if expected_bytes is not None and size != expected_bytes:
            raise ModelLoadError(f"{what} {path} does not match its manifest: {size} bytes, expected "
                                 f"{expected_bytes} (truncated, modified or from another export)")
        if max_bytes is not None and size > max_bytes:
            raise ModelLoadError(f"{what} {path} has {size} bytes; at most {max_bytes} are read "
                                 f"(is it the right file?)")
        with os.fdopen(os.dup(fd), "rb") as handle:  # the dup keeps fd's own close in the finally
            data = handle.read(size)
    except OSError as exc:
        raise ModelLoadError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(data) != size:
        raise ModelLoadError(f"{what} {path} changed while it was read: {len(data)} of {size} bytes")
    return data


def _file_kind(mode: int) -> str:
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "not a regular file"


class _Reader:
    """Typed access to one JSON object; every failure names the field's path and what was expected."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ModelLoadError(f"{where}: expected a JSON object, got {type(data).__name__}")
        self.data, self.where = data, where

    def fail(self, key: str, expected: str) -> ModelLoadError:
        value = self.data.get(key, "<missing>")
        return ModelLoadError(f"{self.where}.{key} is {value!r}; expected {expected}")

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        if key not in self.data:
            raise ModelLoadError(f"{self.where}: missing field {key!r}")
        return self.data[key]

    def child(self, key: str) -> "_Reader":
        return _Reader(self.raw(key), f"{self.where}.{key}")

    def string(self, key: str, pattern: re.Pattern | None = None, choices: tuple[str, ...] = ()) -> str:
        value = self.raw(key)
        if not isinstance(value, str) or not value:
            raise self.fail(key, "a non-empty string")
        if choices and value not in choices:
            raise self.fail(key, f"one of {list(choices)}")
        # fullmatch, not match: in Python's re, the patterns' "$" also matches before a trailing
        # newline, so match() let "brn\n" or a sha256 plus "\n" through; the schema and libruntime refuse them.
        if pattern is not None and not pattern.fullmatch(value):
            raise self.fail(key, f"a string matching {pattern.pattern}")
        return value

    def integer(self, key: str, minimum: int | None = None) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int) or (minimum is not None and value < minimum):
            raise self.fail(key, "an integer" + (f" >= {minimum}" if minimum is not None else ""))
        return value

    def number(self, key: str, *, above: float | None = None, low: float | None = None,
               high: float | None = None) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not _finite(value):
            raise self.fail(key, "a finite number")
        if above is not None and not value > above:
            raise self.fail(key, f"a number above {above:g}")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(key, f"a number in {low:g}..{high:g}")
        return float(value)

    def boolean(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def integers(self, key: str, minimum: int = 0, *, nonempty: bool = True) -> tuple[int, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or (nonempty and not value) or any(
                isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in value):
            raise self.fail(key, f"a {'non-empty ' if nonempty else ''}list of integers >= {minimum}")
        return tuple(value)

    def strings(self, key: str, choices: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self.raw(key)
        if not isinstance(value, list) or not value or any(not isinstance(v, str) or not v for v in value):
            raise self.fail(key, "a non-empty list of non-empty strings")
        if choices and any(v not in choices for v in value):
            raise self.fail(key, f"a list of {list(choices)}")
        return tuple(value)

    def range(self, key: str) -> tuple[float, float]:
        value = self.raw(key)
        if (not isinstance(value, list) or len(value) != 2 or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not _finite(v) for v in value)
                or not value[0] < value[1]):
            raise self.fail(key, "[low, high] with low < high")
        return float(value[0]), float(value[1])


def _finite(value: int | float) -> bool:
    """``math.isfinite``, but False (not an OverflowError) for an integer too large for a float64: JSON
    allows a 400-digit integer, json.loads makes it a Python int, and math.isfinite cannot convert it."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


@dataclass(frozen=True)
class TensorSpec:
    """A graph input or output: name, shape (a string names a dynamic axis), dtype and role."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str
    role: str = ""

    @classmethod
    def parse(cls, data: Any, where: str) -> "TensorSpec":
        r = _Reader(data, where)
        shape = r.raw("shape")
        if (not isinstance(shape, list) or not 1 <= len(shape) <= MAX_RANK or any(
                isinstance(d, bool) or not (isinstance(d, int) and d >= 1 or isinstance(d, str) and d)
                for d in shape)):
            raise r.fail("shape", f"a list of 1..{MAX_RANK} dimensions (positive integers or axis names)")
        return cls(r.string("name", _NAME), tuple(shape), r.string("dtype", choices=DTYPES),
                   r.string("role", _ROLE))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype, "role": self.role}


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the graph's image input (see MANIFEST.md, ``preprocess``)."""

    resize: str
    height: int
    width: int
    read_channels: tuple[int, ...]
    channel_names: tuple[str, ...]
    append_mask: bool
    accepted_channels: tuple[int, ...]
    accepted_layouts: tuple[str, ...]
    source_range: tuple[float, float]
    scale: float
    pad_value: float | None = None
    layout: str = "NCHW"
    min_size: int = 1
    #: Which PNG/JPEG colour plane is channel 0 (``bgr``: blue, as OpenCV writes); TIFFs and arrays are not reordered.
    color_order: ColorOrder = ColorOrder.RGB

    def __post_init__(self) -> None:
        # A family may pass the plain string ("bgr"); the field is always the enum.
        object.__setattr__(self, "color_order", ColorOrder.parse(self.color_order, what="preprocess.color_order"))

    @property
    def channels(self) -> int:
        """Channels of the graph's image input: the channels read plus the mask channel if any."""
        return len(self.read_channels) + int(self.append_mask)

    @classmethod
    def parse(cls, data: Any, where: str) -> "Preprocess":
        r = _Reader(data, where)
        r.string("layout", choices=("NCHW",))
        resize = r.string("resize", choices=RESIZE_POLICIES)
        read = r.integers("read_channels", 0)
        accepted = r.integers("accepted_channels", 1)
        names = r.strings("channel_names")
        append_mask = r.boolean("append_mask")
        source_range = r.range("source_range")
        pad_value = r.number("pad_value") if r.has("pad_value") else None
        if resize == "letterbox" and pad_value is None:
            raise ModelLoadError(f"{where}: a letterbox resize needs pad_value")
        if pad_value is not None and not source_range[0] <= pad_value <= source_range[1]:
            raise r.fail("pad_value", f"a value in the source range {list(source_range)}")
        if append_mask and resize != "letterbox":
            raise r.fail("append_mask", "false unless resize is letterbox (the mask marks letterbox padding)")
        if len(names) != len(read) + int(append_mask):
            raise r.fail("channel_names", f"{len(read) + int(append_mask)} names (read_channels, then the mask)")
        if max(read) >= min(accepted):
            raise r.fail("read_channels", f"indices below {min(accepted)}, the fewest channels an image may have "
                                          f"(accepted_channels {list(accepted)})")
        height, width = r.integer("height", 1), r.integer("width", 1)
        # Optional (default 1, no limit beyond one pixel): bundles written before the field stay valid.
        min_size = r.integer("min_size", 1) if r.has("min_size") else 1
        if min_size > min(height, width):
            raise r.fail("min_size", f"an integer in 1..{min(height, width)} (an image of the graph's own size "
                                     f"{height}x{width} must be accepted)")
        # Optional (default "rgb", the order bundles written before the field were read in).
        color_order = r.string("color_order", choices=COLOR_ORDERS) if r.has("color_order") else ColorOrder.RGB
        return cls(resize, height, width, read, names, append_mask, accepted, r.strings("accepted_layouts", LAYOUTS),
                   source_range, r.number("scale", above=0.0), pad_value, min_size=min_size,
                   color_order=ColorOrder(color_order))

    def to_dict(self) -> dict[str, Any]:
        out = {"layout": self.layout, "resize": self.resize, "height": self.height, "width": self.width,
               "read_channels": list(self.read_channels), "channel_names": list(self.channel_names),
               "append_mask": self.append_mask, "accepted_channels": list(self.accepted_channels),
               "accepted_layouts": list(self.accepted_layouts), "source_range": list(self.source_range),
               "scale": self.scale}
        if self.pad_value is not None:
            out["pad_value"] = self.pad_value
        if self.min_size != 1:
            out["min_size"] = self.min_size
        out["color_order"] = self.color_order.value  # always written: a reader should not have to know the default
        return out


@dataclass(frozen=True)
class HeatmapPost:
    """``postprocess.kind == "heatmap"``: one channel of one output is a per-pixel probability map."""

    output: str
    channel: int
    range: tuple[float, float]
    threshold: float
    zero_channels: tuple[int, ...] = ()
    kind: str = field(default="heatmap", init=False)

    @classmethod
    def parse(cls, r: "_Reader") -> "HeatmapPost":
        zero = r.integers("zero_channels", 0, nonempty=False) if r.has("zero_channels") else ()
        return cls(r.string("output", _NAME), r.integer("channel", 0), r.range("range"),
                   r.number("threshold", low=0.0, high=1.0), zero)

    def output_names(self) -> tuple[str, ...]:
        return (self.output,)

    @property
    def default_threshold(self) -> float:
        return self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "output": self.output, "channel": self.channel, "range": list(self.range),
                "threshold": self.threshold, "zero_channels": list(self.zero_channels)}


@dataclass(frozen=True)
class KeypointsPost:
    """``postprocess.kind == "keypoints"``: named points decoded inside the graph, in graph-input pixels."""

    points: tuple[str, ...]
    points_output: str
    scores_output: str
    angle_output: str | None = None
    score_threshold: float = 0.0
    kind: str = field(default="keypoints", init=False)

    @classmethod
    def parse(cls, r: "_Reader") -> "KeypointsPost":
        angle = r.string("angle_output", _NAME) if r.has("angle_output") else None
        threshold = r.number("score_threshold", low=0.0, high=1.0) if r.has("score_threshold") else 0.0
        return cls(r.strings("points"), r.string("points_output", _NAME), r.string("scores_output", _NAME),
                   angle, threshold)

    def output_names(self) -> tuple[str, ...]:
        return (self.points_output, self.scores_output) + ((self.angle_output,) if self.angle_output else ())

    @property
    def default_threshold(self) -> float:
        return self.score_threshold

    def to_dict(self) -> dict[str, Any]:
        out = {"kind": self.kind, "points": list(self.points), "points_output": self.points_output,
               "scores_output": self.scores_output, "score_threshold": self.score_threshold}
        if self.angle_output:
            out["angle_output"] = self.angle_output
        return out


Postprocess = Union[HeatmapPost, KeypointsPost]
_POSTPROCESS = {"heatmap": HeatmapPost, "keypoints": KeypointsPost}


def _parse_postprocess(data: Any, where: str) -> Postprocess:
    r = _Reader(data, where)
    kind = r.string("kind", choices=tuple(_POSTPROCESS))
    return _POSTPROCESS[kind].parse(r)


def _numbers(r: "_Reader", key: str) -> dict[str, float]:
    value = r.raw(key)
    if not isinstance(value, dict) or any(not isinstance(k, str) or not k or isinstance(v, bool)
                                          or not isinstance(v, (int, float)) or not _finite(v)
                                          for k, v in value.items()):
        raise r.fail(key, "an object of metric name -> finite number")
    return {k: float(v) for k, v in value.items()}


@dataclass(frozen=True)
class Accuracy:
    """How a full-image graph's results compare with PyTorch FP32 on the export's parity images.

    Written by the export for every full-image graph; ``precision="auto"`` runs a
    reduced-precision graph only when ``passed``.

    Attributes:
        images: parity images the figures come from.
        threshold: the decision threshold the agreement figures used (the manifest's default).
        values: the graph's figures: the family's task metrics against the labels, and its
            agreement with the PyTorch FP32 results (e.g. ``decision_agreement``, ``pixel_f1``).
        losses: per guarded figure, how much worse than PyTorch FP32 it is (positive: worse); a
            guarded figure that could not be measured (undefined on the parity images) is absent.
        allowed: per guarded figure, the loss the bundle allows (``export.build --max-metric-drop``).
        passed: every loss is within its allowance.
    """

    images: int
    threshold: float
    values: dict[str, float]
    losses: dict[str, float]
    allowed: dict[str, float]
    passed: bool

    @classmethod
    def parse(cls, data: Any, where: str) -> "Accuracy":
        r = _Reader(data, where)
        losses, allowed = _numbers(r, "losses"), _numbers(r, "allowed")
        if not set(losses) <= set(allowed):
            raise r.fail("allowed", f"an allowance for every metric in losses ({sorted(losses)})")
        return cls(r.integer("images", 1), r.number("threshold"), _numbers(r, "values"), losses, allowed,
                   r.boolean("passed"))

    def failures(self) -> list[str]:
        """The guarded figures that lose more than allowed, as ``"name loss X > Y"``."""
        return [f"{name} loss {self.losses[name]:.4g} > {allowed:.4g}" if name in self.losses
                else f"{name} could not be measured" for name, allowed in self.allowed.items()
                if name not in self.losses or self.losses[name] > allowed]

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "threshold": self.threshold, "values": dict(self.values),
                "losses": dict(self.losses), "allowed": dict(self.allowed), "passed": self.passed}


@dataclass(frozen=True)
class GraphEntry:
    """One ONNX file of the bundle."""

    file: str
    layer: str
    precision: str
    mode: str
    opset: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    sha256: str = ""  # empty only in the entry embedded in a graph's own metadata
    bytes: int = 0
    float_nodes: tuple[str, ...] = ()
    accuracy: Accuracy | None = None  # full-image graphs of bundles exported since the accuracy record

    @classmethod
    def parse(cls, data: Any, where: str, *, embedded: bool = False) -> "GraphEntry":
        r = _Reader(data, where)
        tensors = {}
        for kind in ("inputs", "outputs"):
            items = r.raw(kind)
            if not isinstance(items, list) or not items:
                raise r.fail(kind, "a non-empty list of tensors")
            tensors[kind] = tuple(TensorSpec.parse(t, f"{where}.{kind}[{i}]") for i, t in enumerate(items))
            names = [t.name for t in tensors[kind]]
            if len(set(names)) != len(names):
                raise r.fail(kind, "tensors with distinct names")
        floats = r.raw("float_nodes") if r.has("float_nodes") else []
        if not isinstance(floats, list) or any(not isinstance(n, str) for n in floats):
            raise r.fail("float_nodes", "a list of node names")
        sha = "" if embedded else r.string("sha256", _SHA256)
        size = 0 if embedded else r.integer("bytes", 1)
        accuracy = Accuracy.parse(r.raw("accuracy"), f"{where}.accuracy") if r.has("accuracy") else None
        return cls(r.string("file", _FILE), r.string("layer", choices=LAYERS),
                   r.string("precision", choices=PRECISIONS), r.string("mode"), r.integer("opset", 7),
                   tensors["inputs"], tensors["outputs"], sha, size, tuple(floats), accuracy)

    def output(self, name: str) -> TensorSpec:
        for spec in self.outputs:
            if spec.name == name:
                return spec
        raise ModelLoadError(f"graph {self.file} has no output {name!r}; it has {[o.name for o in self.outputs]}")

    def image_input(self) -> TensorSpec:
        """The input whose role is ``image``: what the pre-processing feeds."""
        for spec in self.inputs:
            if spec.role == "image":
                return spec
        raise ModelLoadError(f"graph {self.file} has no input with role 'image'")

    def to_dict(self) -> dict[str, Any]:
        out = {"file": self.file, "layer": self.layer, "precision": self.precision, "mode": self.mode,
               "opset": self.opset, "inputs": [t.to_dict() for t in self.inputs],
               "outputs": [t.to_dict() for t in self.outputs]}
        if self.float_nodes or self.precision == "int8":
            out["float_nodes"] = list(self.float_nodes)
        if self.accuracy is not None:
            out["accuracy"] = self.accuracy.to_dict()
        if self.sha256:
            out["sha256"], out["bytes"] = self.sha256, self.bytes
        return out


@dataclass(frozen=True)
class Manifest:
    """A parsed, checked manifest; ``raw`` keeps every field, including the informative ones."""

    family: str
    variant: str
    preprocess: Preprocess
    postprocess: Postprocess
    graphs: tuple[GraphEntry, ...]
    default_graph: str
    tiling: dict[str, Any] | None
    raw: dict[str, Any] = field(repr=False, compare=False)

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

    def precisions(self, layer: str = "full") -> list[str]:
        return [g.precision for g in self.graphs if g.layer == layer]


_REQUIRED = ("schema_version", "family", "variant", "preprocess", "postprocess", "checkpoint", "producer")


def parse_manifest(data: Any, *, source: str = "manifest", embedded: bool = False) -> Manifest:
    """Check a manifest dict against the rules of the schema and return it typed.

    Args:
        data: the decoded JSON object.
        source: what it is (a path), used in messages.
        embedded: the ``sdk.manifest`` metadata of a lone graph (one ``graph``, no hashes).

    Raises:
        ModelLoadError: naming the first missing or invalid field and what was expected.
    """
    r = _Reader(data, source)
    if r.has("schema_version"):
        _check_schema_version(r.data["schema_version"], source)
    missing = [k for k in (*_REQUIRED, *(("graph",) if embedded else ("graphs", "default_graph")))
               if not r.has(k)]
    if missing:
        raise ModelLoadError(f"{source}: missing fields {missing}")
    for key in ("checkpoint", "producer"):
        r.child(key)  # objects; their content is informative
    pre = Preprocess.parse(r.raw("preprocess"), f"{source}.preprocess")
    post = _parse_postprocess(r.raw("postprocess"), f"{source}.postprocess")
    tiling = r.raw("tiling") if r.has("tiling") else None
    if tiling is not None and not isinstance(tiling, dict):
        raise r.fail("tiling", "an object")
    if embedded:
        graphs = (GraphEntry.parse(r.raw("graph"), f"{source}.graph", embedded=True),)
        default = graphs[0].file
    else:
        items = r.raw("graphs")
        if not isinstance(items, list) or not items:
            raise r.fail("graphs", "a non-empty list of graph entries")
        graphs = tuple(GraphEntry.parse(g, f"{source}.graphs[{i}]") for i, g in enumerate(items))
        default = r.string("default_graph", _FILE)
        if default not in {g.file for g in graphs}:
            raise r.fail("default_graph", f"one of the graphs' files {[g.file for g in graphs]}")
    files = [g.file for g in graphs]
    if len(set(files)) != len(files):
        raise ModelLoadError(f"{source}: graph files {files} are not distinct")
    manifest = Manifest(r.string("family", _FAMILY), r.string("variant"), pre, post, graphs, default, tiling,
                        dict(data))
    for entry in graphs:
        _check_entry(manifest, entry, source)
    return manifest


def _check_schema_version(version: Any, source: str) -> None:
    """``schema_version`` is the JSON integer 2: ``true`` (== 1 in Python) or ``2.0`` is a broken
    writer, not a version, and libruntime refuses them too; another integer is an old or new layout."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise ModelLoadError(f"{source}.schema_version is {version!r}; expected the integer {SCHEMA_VERSION}")
    if version != SCHEMA_VERSION:
        raise ModelLoadError(f"{source}: schema_version {version!r} is not supported: this runtime "
                             f"reads version {SCHEMA_VERSION}; re-export the bundle with this SDK "
                             f"(python -m export.build --checkpoint CKPT --out DIR)")


def _check_entry(manifest: Manifest, entry: GraphEntry, source: str) -> None:
    """A full-image graph must fit the pre- and post-processing the manifest declares."""
    if entry.layer != "full":
        return
    image = entry.image_input()
    pre = manifest.preprocess
    expected = (pre.channels, pre.height, pre.width)
    if len(image.shape) != 4 or tuple(image.shape[1:]) != expected or image.dtype != "float32":
        raise ModelLoadError(f"{source}: graph {entry.file} image input {image.name!r} is "
                             f"{list(image.shape)} {image.dtype}; the preprocess makes float32 "
                             f"(N, {expected[0]}, {expected[1]}, {expected[2]})")
    post = manifest.postprocess
    for name in post.output_names():
        entry.output(name)
    if isinstance(post, HeatmapPost):
        out = entry.output(post.output)
        channels = out.shape[1] if len(out.shape) == 4 else None
        if not isinstance(channels, int) or not 0 <= post.channel < channels:
            raise ModelLoadError(f"{source}: postprocess.channel {post.channel} is outside output {out.name!r} "
                                 f"of shape {list(out.shape)}; expected (N, C, H, W) with channel < C")
        if any(not 0 <= c < channels or c == post.channel for c in post.zero_channels):
            raise ModelLoadError(f"{source}: postprocess.zero_channels {list(post.zero_channels)} must be channels "
                                 f"of {out.name!r} other than the heatmap's")
    elif isinstance(post, KeypointsPost):
        k = len(post.points)
        points, scores = entry.output(post.points_output), entry.output(post.scores_output)
        if len(points.shape) != 3 or tuple(points.shape[1:]) != (k, 2):
            raise ModelLoadError(f"{source}: output {points.name!r} is {list(points.shape)}; expected "
                                 f"(N, {k}, 2) for points {list(post.points)}")
        if len(scores.shape) != 2 or scores.shape[1] != k:
            raise ModelLoadError(f"{source}: output {scores.name!r} is {list(scores.shape)}; expected "
                                 f"(N, {k}), one score per point {list(post.points)}")
        if post.angle_output:
            angle = entry.output(post.angle_output)
            if len(angle.shape) not in (1, 2) or tuple(angle.shape[1:]) not in ((), (1,)):
                raise ModelLoadError(f"{source}: output {angle.name!r} is {list(angle.shape)}; expected (N,) or "
                                     f"(N, 1), one angle per image")


def read_manifest(bundle: str | Path) -> Manifest:
    """Read and check ``<bundle>/manifest.json``.

    The file is UTF-8 JSON; a leading byte order mark (which some Windows editors
    add) is accepted and dropped, as libruntime does.

    Raises:
        ModelLoadError: missing file, not a regular file, larger than :data:`MAX_MANIFEST_BYTES`,
            invalid JSON, an old schema version or an invalid field.
    """
    path = Path(bundle) / MANIFEST_NAME
    if not os.path.lexists(path):
        raise ModelLoadError(f"no {MANIFEST_NAME} in {bundle}; is it an export bundle?")
    raw = read_regular_file(path, what="manifest", max_bytes=MAX_MANIFEST_BYTES)
    try:
        data = loads_json(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    return parse_manifest(data, source=str(path))


def loads_json(text: str) -> Any:
    """``json.loads`` that refuses ``NaN`` and ``Infinity``.

    They are not JSON (RFC 8259): Python's json module reads them, libruntime's
    parser does not, so a manifest holding one is refused by both runtimes.

    Raises:
        ValueError: invalid JSON (a ``json.JSONDecodeError``) or one of those tokens.
    """
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except RecursionError as exc:
        # Deep nesting ("[" * 1000) exhausts the stack. The documented error is ValueError, which is
        # what callers catch (the lone-graph path of Session catches only ValueError and TypeError).
        raise ValueError(f"JSON nested too deeply ({exc})") from None


def _refuse_constant(token: str) -> Any:
    raise ValueError(f"{token} is not valid JSON (write the manifest with allow_nan=False)")


def read_verified_graph(bundle: str | Path, entry: GraphEntry) -> bytes:
    """The bytes of ``entry``'s file, after checking their size and sha256 against the manifest.

    The bytes that were hashed are the ones handed to the engine, so the file cannot
    change between the check and the load. The size is checked first, before
    anything is read, so a wrong file costs nothing.

    Raises:
        ModelLoadError: missing, unreadable or not a regular file, a size or hash mismatch
            (truncated or tampered graph).
    """
    path = Path(bundle) / entry.file
    data = read_regular_file(path, what="graph", expected_bytes=entry.bytes)
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
