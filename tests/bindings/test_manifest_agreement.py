"""Python and libruntime agree on which bundles load: for each broken (or oddly written) manifest or
model file, ``runtime.Session`` and the native ``Session`` both load it or both raise ModelLoadError."""

from __future__ import annotations

import json
import os
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


def _outcome(load: Callable[[], Any], seconds: float = 30.0) -> str:
    """'loads' or 'ModelLoadError'; any other exception fails the test, and so does a hang."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            session = load()
            getattr(session, "close", lambda: None)()  # the native session is released when collected
            result["value"] = "loads"
        except ModelLoadError:
            result["value"] = "ModelLoadError"
        except BaseException as exc:  # noqa: BLE001 - reported below
            result["value"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"no answer within {seconds} s (a hang)"
    return result["value"]


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
