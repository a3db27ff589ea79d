"""libruntime through its pybind11 shim: same numbers as Python ONNX Runtime, SDK errors, threads.

Skipped (with the reason) when the compiled module is not built, e.g. a
checkout used without ``pip install -e .``.
"""

from __future__ import annotations

import shutil
import threading

import numpy as np
import pytest

H, W = 976, 176


@pytest.fixture(scope="module")
def native():
    from runtime._backends.native import native_module

    try:
        return native_module()
    except ImportError as exc:
        pytest.skip(f"runtime._native is not built: {exc}")


@pytest.fixture(scope="module")
def bundle(tiny_bundle):
    return tiny_bundle.bundle


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """(2, 4, H, W) float32 in 0..255 with a mask channel, like the production TIFFs."""
    rng = np.random.default_rng(11)
    y, x = np.mgrid[0:H, 0:W]
    base = 110 + 40 * np.sin(x / 7.0) + 20 * np.cos(y / 13.0)
    out = np.empty((2, 4, H, W), np.float32)
    for b in range(2):
        for c in range(3):
            out[b, c] = base + rng.normal(0, 6, (H, W))
        out[b, 0, 400:405, 80:85] += 80
        out[b, 3] = 0
    return np.clip(out, 0, 255).astype(np.float32)


def _reference(graph, images: np.ndarray, threads: int = 2) -> np.ndarray:
    """Python ONNX Runtime, CPU provider, on what libruntime feeds: 3 channels, clipped, times the scale."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
    scaled = np.clip(images[:, :3], 0, 255) * np.float32(1 / 255)
    return session.run(None, {session.get_inputs()[0].name: scaled.astype(np.float32)})[0]


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_matches_python_onnxruntime(native, bundle, images, precision):
    session = native.Session(bundle, precision=precision, threads=2)
    heatmap, raw = session.run(images, heatmap=True, raw=True)
    reference = _reference(bundle / f"model.{precision}.onnx", images)
    assert heatmap.shape == (2, H, W) and raw.shape == (2, 3, H, W)
    assert heatmap.dtype == raw.dtype == np.float32
    assert np.abs(raw - reference).max() < 1e-6
    assert np.abs(heatmap - reference[:, 0]).max() < 1e-6


def test_layouts_channels_and_sources_agree(native, bundle, images):
    session = native.Session(bundle, precision="fp32")
    chw = session.run(images[0])
    assert chw.shape == (H, W)
    hwc = session.run(np.ascontiguousarray(images[0].transpose(1, 2, 0)))
    three = session.run(np.ascontiguousarray(images[0, :3]))
    lone = native.Session(bundle / "model.fp32.onnx").run(images[0])
    from_bytes = native.Session((bundle / "model.fp32.onnx").read_bytes(), name="model.fp32.onnx").run(images[0])
    for other in (hwc, three, lone, from_bytes):
        np.testing.assert_array_equal(other, chw)
    prescaled = session.run(np.ascontiguousarray(images[:1, :3] * np.float32(1 / 255)), prescaled=True,
                            heatmap=False, raw=True)
    np.testing.assert_array_equal(prescaled[0, 0], chw)


def test_info_and_shapes(native, bundle):
    session = native.Session(bundle, layer="patch", precision="fp32")
    info = session.info
    assert (info["layer"], info["precision"], info["backend"]) == ("patch", "fp32", "onnxruntime")
    assert session.input_shape == [-1, 3, 128, 128]
    assert native.has_backend("onnxruntime")


def test_python_threads_share_one_session(native, bundle, images):
    session = native.Session(bundle, precision="fp32", threads=1)
    expected = [session.run(images[i]) for i in range(2)]
    failures: list[str] = []

    def work(index: int) -> None:
        for step in range(3):
            which = (index + step) % 2
            if not np.array_equal(session.run(images[which]), expected[which]):
                failures.append(f"thread {index} step {step}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_bad_inputs_raise_invalid_input(native, bundle, images):
    from runtime import InvalidInputError

    session = native.Session(bundle, precision="fp32")
    cases = {
        "got dtype float64": images[0].astype(np.float64),
        "C-contiguous": images[0, :, ::2],
        "expected 3 or 4 channels, got 5": np.zeros((5, H, W), np.float32),
        "expected 976x176 (height x width), got 128x128": np.zeros((3, 128, 128), np.float32),
        "NaN or infinite": np.full((3, H, W), np.nan, np.float32),
        "values look like 0..1": np.full((3, H, W), 0.5, np.float32),
        "values out of range": np.full((3, H, W), 300, np.float32),
        "expected an image (C, H, W)": np.zeros((H, W), np.float32),
    }
    for fragment, array in cases.items():
        with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            session.run(array)
    with pytest.raises(InvalidInputError, match="ask for the heatmap, the raw output or both"):
        session.run(images[0], heatmap=False)
    with pytest.raises(InvalidInputError, match="emits logits"):
        native.Session(bundle, layer="base").run(np.zeros((3, 128, 128), np.float32) + 3)


def test_bad_bundles_raise_model_load(native, bundle, tmp_path):
    from runtime import BackendError, InvalidInputError, ModelLoadError

    with pytest.raises(ModelLoadError, match="no bundle directory or graph file"):
        native.Session(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        native.Session(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(bundle, copy)
    graph = copy / "model.fp32.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match its manifest"):
        native.Session(copy, precision="fp32")
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read"):
        native.Session(copy)
    with pytest.raises(InvalidInputError, match="backend 'tensorrt' is not one of"):
        native.Session(bundle, backend="tensorrt")
    with pytest.raises(BackendError, match="CUDA"):
        native.Session(bundle, device="gpu")


@pytest.mark.openvino
def test_openvino_through_libruntime(native, bundle, images):
    if not native.has_backend("openvino"):
        pytest.skip("libruntime was built without its OpenVINO plugin")
    session = native.Session(bundle, backend="openvino", precision="fp32")
    assert session.info["backend"] == "openvino"
    reference = _reference(bundle / "model.fp32.onnx", images)
    assert np.abs(session.run(images) - reference[:, 0]).max() < 1e-4


def test_session_backend_native(native, bundle, images):
    """``runtime.Session(..., backend="native")``: the SDK's session on libruntime."""
    from runtime import Session
    from runtime._options import Backend

    if "NATIVE" not in Backend.__members__:
        pytest.skip("runtime._options.Backend has no NATIVE member yet")
    with Session(bundle, backend="native", precision="fp32", threads=2) as native_session, \
            Session(bundle, backend="onnxruntime", precision="fp32", threads=2) as python_session:
        assert native_session.backend == "native"
        got = native_session.run(images[0, :3])
        want = python_session.run(images[0, :3])
        np.testing.assert_allclose(got.heatmap, want.heatmap, atol=1e-6, rtol=0)
