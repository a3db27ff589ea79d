"""Python and libruntime agree on which bundles load: for each broken (or oddly written) manifest or
model file, ``runtime.Session`` and the native ``Session`` both load it or both raise ModelLoadError;
for the rules both implement by hand (preprocess.min_size and color_order, the keypoint outputs' shapes),
with the same message."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any, Callable

import pytest

import runtime
from runtime import ModelLoadError

PRECISION = "fp32"


def _graph(data: dict[str, Any]) -> dict[str, Any]:
    return next(g for g in data["graphs"] if g["layer"] == "full" and g["precision"] == PRECISION)


def _edit(change: Callable[[dict[str, Any]], None]) -> Callable[[Path], None]:
    """An edit of the manifest's JSON data."""
    def apply(bundle: Path) -> None:
        data = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        change(data)
        (bundle / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
    return apply


def _text(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    """An edit of the manifest's bytes."""
    def apply(bundle: Path) -> None:
        path = bundle / "manifest.json"
        path.write_bytes(change(path.read_bytes()))
    return apply


def _set(*keys: Any, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        target = data
        for key in keys[:-1]:
            target = _graph(target) if key == "graph" else target[key]
        target[keys[-1]] = value
    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _graph_bytes(delta: int) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        _graph(data)["bytes"] += delta
    return change


def _replace(name: str, kind: str) -> Callable[[Path], None]:
    """manifest.json or the fp32 graph replaced by a FIFO or a symlink to /dev/zero."""
    def apply(bundle: Path) -> None:
        data = json.loads((bundle / "manifest.json").read_text(encoding="utf-8"))
        path = bundle / (_graph(data)["file"] if name == "graph" else name)
        path.unlink()
        if kind == "fifo":
            os.mkfifo(path)
        else:
            path.symlink_to("/dev/zero")
    return apply


def _add_nan(data: dict[str, Any]) -> None:
    data["checkpoint"]["metrics"] = {"auroc": float("nan")}  # json.dumps writes the non-JSON token NaN


EDITS: dict[str, Callable[[Path], None]] = {
    "unchanged": _edit(lambda data: None),
    "utf8 bom": _text(lambda raw: b"\xef\xbb\xbf" + raw),
    "schema_version true": _edit(_set("schema_version", value=True)),
    "schema_version 2.0": _edit(_set("schema_version", value=2.0)),
    "schema_version '2'": _edit(_set("schema_version", value="2")),
    "schema_version 1": _edit(_set("schema_version", value=1)),
    "schema_version 3": _edit(_set("schema_version", value=3)),
    "schema_version missing": _edit(_drop("schema_version")),
    "height true": _edit(_set("preprocess", "height", value=True)),
    "height float": _edit(lambda data: data["preprocess"].update(height=float(data["preprocess"]["height"]))),
    "read_channels bool": _edit(_set("preprocess", "read_channels", value=[True])),
    "append_mask 0": _edit(_set("preprocess", "append_mask", value=0)),
    "scale true": _edit(_set("preprocess", "scale", value=True)),
    "graph bytes true": _edit(_set("graph", "bytes", value=True)),
    "graph bytes float": _edit(lambda data: _graph(data).update(bytes=float(_graph(data)["bytes"]))),
    "graph bytes +1": _edit(_graph_bytes(+1)),
    "graph bytes -1": _edit(_graph_bytes(-1)),
    "graph bytes 0": _edit(_set("graph", "bytes", value=0)),
    "graph opset true": _edit(_set("graph", "opset", value=True)),
    "graph sha256 upper case": _edit(lambda data: _graph(data).update(sha256=_graph(data)["sha256"].upper())),
    "default_graph unknown": _edit(_set("default_graph", value="nothing.onnx")),
    "family missing": _edit(_drop("family")),
    "NaN in an informative field": _edit(_add_nan),
    "trailing garbage": _text(lambda raw: raw + b"\n}"),
    "empty file": _text(lambda raw: b""),
    "a JSON list": _text(lambda raw: b"[]"),
    "not UTF-8": _text(lambda raw: raw.replace(b'"family"', b'"f\xffmily"', 1)),
    "manifest is a FIFO": _replace("manifest.json", "fifo"),
    "manifest is /dev/zero": _replace("manifest.json", "zero"),
    "graph is a FIFO": _replace("graph", "fifo"),
    "graph is /dev/zero": _replace("graph", "zero"),
}


def _min_side(data: dict[str, Any]) -> int:
    return min(data["preprocess"]["height"], data["preprocess"]["width"])


def _output(data: dict[str, Any], role: str) -> dict[str, Any]:
    """The full fp32 graph's output that ``postprocess.<role>_output`` names."""
    name = data["postprocess"][f"{role}_output"]
    return next(o for o in _graph(data)["outputs"] if o["name"] == name)


def _shape(role: str, shape: Callable[[list[Any], int], list[Any]]) -> Callable[[dict[str, Any]], None]:
    """The declared shape of a keypoint output, rewritten from (its shape, the number of points)."""
    def change(data: dict[str, Any]) -> None:
        output = _output(data, role)
        output["shape"] = shape(output["shape"], len(data["postprocess"]["points"]))
    return change


def _swap(a: str, b: str) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        post = data["postprocess"]
        post[a], post[b] = post[b], post[a]
    return change


# Each case: the edit, and a pattern both messages match (None: both load).
INTEGER = r"preprocess\.min_size is \S+; expected an integer >= 1$"
MIN_SIZE_EDITS: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "min_size absent": (_edit(lambda data: data["preprocess"].pop("min_size", None)), None),
    "min_size 1": (_edit(_set("preprocess", "min_size", value=1)), None),
    "min_size 8": (_edit(_set("preprocess", "min_size", value=8)), None),
    "min_size min(height, width)": (_edit(lambda data: data["preprocess"].update(min_size=_min_side(data))), None),
    "min_size 0": (_edit(_set("preprocess", "min_size", value=0)), INTEGER),
    "min_size -8": (_edit(_set("preprocess", "min_size", value=-8)), INTEGER),
    "min_size true": (_edit(_set("preprocess", "min_size", value=True)), INTEGER),
    "min_size 1.5": (_edit(_set("preprocess", "min_size", value=1.5)), INTEGER),
    "min_size 8.0": (_edit(_set("preprocess", "min_size", value=8.0)), INTEGER),
    "min_size '8'": (_edit(_set("preprocess", "min_size", value="8")), INTEGER),
    "min_size null": (_edit(_set("preprocess", "min_size", value=None)), INTEGER),
    "min_size above min(height, width)": (
        _edit(lambda data: data["preprocess"].update(min_size=_min_side(data) + 1)),
        r"preprocess\.min_size is \d+; expected an integer in 1\.\.\d+ \(an image of the graph's own size "
        r"\d+x\d+ must be accepted\)$"),
}

# preprocess.color_order: optional, exactly "rgb" or "bgr"; the value itself is quoted differently
# (Python repr, libruntime JSON), the rest of the message is the same.
ORDER = r"preprocess\.color_order is .+; expected one of \['rgb', 'bgr'\]$"
COLOR_ORDER_EDITS: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "color_order absent": (_edit(lambda data: data["preprocess"].pop("color_order", None)), None),
    "color_order rgb": (_edit(_set("preprocess", "color_order", value="rgb")), None),
    "color_order bgr": (_edit(_set("preprocess", "color_order", value="bgr")), None),
    "color_order BGR": (_edit(_set("preprocess", "color_order", value="BGR")), ORDER),
    "color_order rgba": (_edit(_set("preprocess", "color_order", value="rgba")), ORDER),
    "color_order ' bgr'": (_edit(_set("preprocess", "color_order", value=" bgr")), ORDER),
    "color_order 'bgr\\n'": (_edit(_set("preprocess", "color_order", value="bgr\n")), ORDER),
    "color_order ''": (_edit(_set("preprocess", "color_order", value="")),
                       r"preprocess\.color_order is .+; expected a non-empty string$"),
    "color_order 1": (_edit(_set("preprocess", "color_order", value=1)),
                      r"preprocess\.color_order is 1; expected a non-empty string$"),
    "color_order null": (_edit(_set("preprocess", "color_order", value=None)),
                         r"preprocess\.color_order is .+; expected a non-empty string$"),
    "color_order list": (_edit(_set("preprocess", "color_order", value=["bgr"])),
                         r"preprocess\.color_order is .+; expected a non-empty string$"),
}

SCORES = r"output '\w+' is \[[^]]*\]; expected \(N, \d+\), one score per point \["
ANGLE = r"output '\w+' is \[[^]]*\]; expected \(N,\) or \(N, 1\), one angle per image$"
KEYPOINT_EDITS: dict[str, tuple[Callable[[Path], None], str | None]] = {
    "scores (N,)": (_edit(_shape("scores", lambda shape, k: shape[:1])), SCORES),
    "scores (N, K + 1)": (_edit(_shape("scores", lambda shape, k: [shape[0], k + 1])), SCORES),
    "scores (N, K, 1)": (_edit(_shape("scores", lambda shape, k: [shape[0], k, 1])), SCORES),
    "scores (N, named axis)": (_edit(_shape("scores", lambda shape, k: [shape[0], "points"])), SCORES),
    "scores and points swapped": (_edit(_swap("scores_output", "points_output")),
                                  r"expected \(N, \d+, 2\) for points \["),
    "angle (N, 2)": (_edit(_shape("angle", lambda shape, k: [shape[0], 2])), ANGLE),
    "angle (N, 1, 1)": (_edit(_shape("angle", lambda shape, k: [shape[0], 1, 1])), ANGLE),
    "angle (N, named axis)": (_edit(_shape("angle", lambda shape, k: [shape[0], "one"])), ANGLE),
    "angle (N, K)": (_edit(_shape("angle", lambda shape, k: [shape[0], k])), ANGLE),
    "angle and scores swapped": (_edit(_swap("scores_output", "angle_output")), r"one score per point"),
    # Allowed by the rule, but not this graph's shape: both engines' checks refuse it.
    "angle (N, 1) over a graph's (N,)": (_edit(_shape("angle", lambda shape, k: [shape[0], 1])),
                                         r"(disagree on outputs:|in the graph;) the manifest declares"),
}


def _outcome(load: Callable[[], Any], seconds: float = 30.0) -> str:
    """'loads' or 'ModelLoadError'; any other exception fails the test, and so does a hang."""
    return _attempt(load, seconds)[0]


def _attempt(load: Callable[[], Any], seconds: float = 30.0) -> tuple[str, str]:
    """('loads', '') or ('ModelLoadError', its message); any other exception fails the test, and so does a hang."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            session = load()
            getattr(session, "close", lambda: None)()  # the native session is released when collected
            result["value"] = ("loads", "")
        except ModelLoadError as exc:
            result["value"] = ("ModelLoadError", str(exc))
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["value"] = (f"{type(exc).__name__}: {exc}", "")

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no answer within {seconds} s (a hang)"
    return result["value"]


def _agree(native, bundle: Path, tmp_path: Path, edit: Callable[[Path], None], pattern: str | None) -> None:
    """Both runtimes load the edited bundle, or both refuse it with a message matching ``pattern``."""
    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    edit(copy)
    python = _attempt(lambda: runtime.Session(copy, precision=PRECISION, threads=1))
    cpp = _attempt(lambda: native.Session(copy, precision=PRECISION))
    expected = "loads" if pattern is None else "ModelLoadError"
    assert (python[0], cpp[0]) == (expected, expected), f"Python {python}, libruntime {cpp}"
    if pattern is not None:
        for who, (_, message) in (("Python", python), ("libruntime", cpp)):
            assert re.search(pattern, message), f"{who}: {message!r} does not match {pattern!r}"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX only (FIFOs, /dev/zero)")
@pytest.mark.parametrize("name", list(EDITS))
def test_python_and_native_agree(native, family_bundle, tmp_path, name):
    copy = tmp_path / "bundle"
    shutil.copytree(family_bundle, copy)
    EDITS[name](copy)
    python = _outcome(lambda: runtime.Session(copy, precision=PRECISION, threads=1))
    cpp = _outcome(lambda: native.Session(copy, precision=PRECISION))
    assert python in ("loads", "ModelLoadError"), python
    assert cpp in ("loads", "ModelLoadError"), cpp
    assert python == cpp, f"{name}: Python {python}, libruntime {cpp}"
    expected = "loads" if name in ("unchanged", "utf8 bom") else "ModelLoadError"
    assert python == expected


@pytest.mark.parametrize("name", list(MIN_SIZE_EDITS))
def test_min_size_rules_agree(native, family_bundle, tmp_path, name):
    edit, pattern = MIN_SIZE_EDITS[name]
    _agree(native, family_bundle, tmp_path, edit, pattern)


@pytest.mark.parametrize("name", list(COLOR_ORDER_EDITS))
def test_color_order_rules_agree(native, family_bundle, tmp_path, name):
    edit, pattern = COLOR_ORDER_EDITS[name]
    _agree(native, family_bundle, tmp_path, edit, pattern)
    if pattern is None:  # and both report the same order: the manifest's, "rgb" when it has none
        copy = tmp_path / "bundle"
        written = json.loads((copy / "manifest.json").read_text(encoding="utf-8"))["preprocess"]
        with runtime.Session(copy, precision=PRECISION, threads=1) as session:
            python = session.manifest.preprocess.color_order.value
        assert python == native.Session(copy, precision=PRECISION).info["color_order"] == written.get(
            "color_order", "rgb")


@pytest.mark.parametrize("name", list(KEYPOINT_EDITS))
def test_keypoint_output_shape_rules_agree(native, family_bundle, tmp_path, name):
    data = json.loads((family_bundle / "manifest.json").read_text(encoding="utf-8"))
    if data["postprocess"]["kind"] != "keypoints":
        pytest.skip(f"postprocess kind {data['postprocess']['kind']!r}: no keypoint outputs")
    if "angle" in name and "angle_output" not in data["postprocess"]:
        pytest.skip("the bundle has no angle output")
    edit, pattern = KEYPOINT_EDITS[name]
    _agree(native, family_bundle, tmp_path, edit, pattern)


def test_an_angle_column_loads_and_decodes_alike(native, family_bundle, tmp_path):
    """A full graph whose angle output is (N, 1), not (N,): both runtimes load it and return its angle."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    from runtime._manifest import sha256_file
    from training.smoke import sample_images

    data = json.loads((family_bundle / "manifest.json").read_text(encoding="utf-8"))
    post = data["postprocess"]
    if post["kind"] != "keypoints" or "angle_output" not in post:
        pytest.skip("no keypoint angle output")
    entry, name = _graph(data), post["angle_output"]
    copy = tmp_path / "column"
    shutil.copytree(family_bundle, copy)
    model = onnx.load(str(copy / entry["file"]))
    flat = f"{name}_flat"
    for node in model.graph.node:
        node.output[:] = [flat if o == name else o for o in node.output]
        node.input[:] = [flat if i == name else i for i in node.input]
    model.graph.initializer.append(numpy_helper.from_array(np.array([1], np.int64), f"{name}_axis"))
    model.graph.node.append(helper.make_node("Unsqueeze", [flat, f"{name}_axis"], [name]))
    declared = next(o for o in model.graph.output if o.name == name)
    assert len(declared.type.tensor_type.shape.dim) == 1, "expected the export's (N,) angle"
    declared.type.tensor_type.shape.dim.add().dim_value = 1
    onnx.save(model, str(copy / entry["file"]))
    column = _graph(data)
    next(o for o in column["outputs"] if o["name"] == name)["shape"].append(1)
    column.update(sha256=sha256_file(copy / entry["file"]), bytes=(copy / entry["file"]).stat().st_size)
    (copy / "manifest.json").write_text(json.dumps(data), encoding="utf-8")

    image = np.ascontiguousarray(sample_images(data["family"], 1, seed=3)[0], dtype=np.float32)
    with runtime.Session(family_bundle, precision=PRECISION, threads=1) as original:
        want = original.run(image).angle
    with runtime.Session(copy, precision=PRECISION, threads=1) as session:
        assert session.run(image).angle == pytest.approx(want, abs=1e-6)
    found, _ = native.Session(copy, precision=PRECISION).run_keypoints(image)
    assert found["angle"].shape == (1,) and float(found["angle"][0]) == pytest.approx(want, abs=1e-4)
    outputs, _ = native.Session(copy, precision=PRECISION).run(image)
    assert outputs[name].shape == (1, 1)
