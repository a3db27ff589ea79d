"""libruntime through its pybind11 shim, for every registered family: same numbers as Python, SDK errors, threads.

The references are the Python pre-processing (``runtime._preprocess.prepare``)
followed by a plain ``onnxruntime.InferenceSession``: libruntime's C++
pre-processing must give the same tensors (bit-exact with exact resize, within
1e-4 where a letterbox is involved), its engine the same outputs. Differences
are absolute, relative where the reference exceeds 1 in magnitude (pixel
coordinates). Skipped (with the reason) when the compiled module is not built,
e.g. a checkout used without ``pip install -e .``.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from runtime._manifest import read_manifest
from runtime._preprocess import prepare


@pytest.fixture(scope="session")
def manifest(family_bundle):
    return read_manifest(family_bundle)


@pytest.fixture(scope="session")
def images(family_images) -> list[np.ndarray]:
    return [np.ascontiguousarray(i, dtype=np.float32) for i in family_images]


def _tolerance(pre) -> float:
    return 1e-4 if pre.resize == "letterbox" else 1e-6


def _diff(got: np.ndarray, want: np.ndarray) -> float:
    assert got.shape == want.shape, (got.shape, want.shape)
    return float((np.abs(got - want) / np.maximum(1.0, np.abs(want))).max())


def _reference(bundle: Path, entry, tensors: np.ndarray, threads: int = 2) -> dict[str, np.ndarray]:
    """Python ONNX Runtime, CPU provider, on the tensors the Python pre-processing makes."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(bundle / entry.file), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in entry.outputs]
    return dict(zip(names, session.run(names, {entry.image_input().name: tensors})))


def _expected(bundle, manifest, image, precision="fp32", pre=None):
    pre = pre or manifest.preprocess
    tensor, transform = prepare(image, pre)
    return _reference(bundle, manifest.graph(precision=precision), tensor[None]), transform


def _letterbox_bundle(bundle: Path, manifest, tmp_path: Path) -> Path:
    """The bundle itself when it letterboxes, else a copy whose manifest says resize letterbox."""
    if manifest.preprocess.resize == "letterbox":
        return bundle
    copy = tmp_path / "letterbox"
    shutil.copytree(bundle, copy)
    data = json.loads((copy / "manifest.json").read_text())
    data["preprocess"].update(resize="letterbox", pad_value=manifest.preprocess.source_range[0])
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


def test_matches_python_onnxruntime(native, family_bundle, manifest, images):
    pre = manifest.preprocess
    for precision in manifest.precisions("full"):
        session = native.Session(family_bundle, precision=precision, threads=2)
        for image in images:
            outputs, transform = session.run(image)
            want, want_transform = _expected(family_bundle, manifest, image, precision)
            assert set(outputs) == set(want)
            for name, value in outputs.items():
                assert value.dtype == np.float32
                assert _diff(value, want[name]) < _tolerance(pre), (precision, name)
            assert transform == dataclasses.asdict(want_transform)
        # One batch of every image, when they share a size.
        if len({i.shape for i in images}) == 1:
            batch, _ = session.run(np.stack(images))
            single = [session.run(i)[0] for i in images]
            for name, value in batch.items():
                np.testing.assert_array_equal(value, np.concatenate([s[name] for s in single]))


def test_layouts_and_sources_agree(native, family_bundle, manifest, images):
    image = images[0]
    session = native.Session(family_bundle, precision="fp32")
    chw, transform = session.run(image)
    graph = family_bundle / manifest.graph(precision="fp32").file
    others = [
        session.run(np.ascontiguousarray(image.transpose(1, 2, 0)), layout="hwc"),
        native.Session(graph).run(image),
        native.Session(graph.read_bytes(), name=graph.name).run(image),
        session.run(prepare(image, manifest.preprocess)[0][None], prescaled=True),
    ]
    for outputs, _ in others:
        for name, value in chw.items():
            np.testing.assert_array_equal(outputs[name], value)
    widest = max(manifest.preprocess.accepted_channels)
    if widest > image.shape[0]:  # channels not read are not checked (NaN) nor used
        extra = np.full((widest - image.shape[0], *image.shape[1:]), np.nan, np.float32)
        outputs, _ = session.run(np.concatenate([image, extra]))
        for name, value in chw.items():
            np.testing.assert_array_equal(outputs[name], value)


def test_info_inputs_and_outputs(native, family_bundle, manifest):
    session = native.Session(family_bundle, precision="fp32")
    entry, pre = manifest.graph(precision="fp32"), manifest.preprocess
    info = session.info
    assert (info["family"], info["variant"], info["layer"], info["precision"]) == (
        manifest.family, manifest.variant, "full", "fp32")
    assert (info["postprocess"], info["backend"], info["resize"]) == (manifest.postprocess.kind, "onnxruntime",
                                                                      pre.resize)
    assert (info["channels"], info["height"], info["width"]) == (pre.channels, pre.height, pre.width)
    assert info["source_range"] == pre.source_range
    assert info["color_order"] == pre.color_order.value  # runtime_session_color_order()
    assert info["output_count"] == len(entry.outputs) and info["input_count"] == 1

    def as_dict(spec):
        return {"name": spec.name, "role": spec.role, "dtype": spec.dtype,
                "shape": [d if isinstance(d, int) else None for d in spec.shape]}

    assert session.inputs == [as_dict(t) for t in entry.inputs]
    assert session.outputs == [as_dict(t) for t in entry.outputs]
    assert native.has_backend("onnxruntime")


def test_native_backend_runs_feeds_by_name(native, family_bundle, manifest, images):
    from runtime._backends.native import load
    from runtime._errors import BackendError
    from runtime._options import SessionOptions

    entry = manifest.graph(precision="fp32")
    backend = load((family_bundle / entry.file).read_bytes(), device="cpu", options=SessionOptions(),
                   source=entry.file)
    assert backend.name == "native" and backend.device == "cpu"
    assert [t.name for t in backend.inputs] == [t.name for t in entry.inputs]
    assert [(t.name, t.role) for t in backend.outputs] == [(t.name, t.role) for t in entry.outputs]
    tensor = prepare(images[0], manifest.preprocess)[0][None]
    got = backend.run({entry.image_input().name: tensor})
    want = _reference(family_bundle, entry, tensor)
    assert set(got) == set(want)
    for name in want:
        assert _diff(got[name], want[name]) < 1e-6
    with pytest.raises(BackendError, match="feeds the graph's one input"):
        backend.run({"other": tensor})
    backend.close()


def test_letterbox_and_transform(native, family_bundle, manifest, images, tmp_path):
    bundle = _letterbox_bundle(family_bundle, manifest, tmp_path)
    lb_manifest = read_manifest(bundle)
    pre = lb_manifest.preprocess
    source = np.ascontiguousarray(images[0][:, : max(1, images[0].shape[1] * 2 // 3), : max(1, images[0].shape[2] // 2 + 1)])
    session = native.Session(bundle, precision="fp32")
    assert session.info["resize"] == "letterbox"
    outputs, transform = session.run(source)
    want, want_transform = _expected(bundle, lb_manifest, source, pre=pre)
    for name, value in outputs.items():
        assert _diff(value, want[name]) < 1e-4, name
    assert transform == dataclasses.asdict(want_transform)
    assert (transform["source_height"], transform["source_width"]) == source.shape[1:]


def test_heatmap(native, family_bundle, manifest, images):
    from runtime import InvalidInputError

    post = manifest.postprocess
    session = native.Session(family_bundle, precision="fp32")
    if post.kind != "heatmap":
        with pytest.raises(InvalidInputError, match="not heatmap; use runtime_session_run"):
            session.run_heatmap(images[0])
        return
    heatmap, transform = session.run_heatmap(images[0])
    want, want_transform = _expected(family_bundle, manifest, images[0])
    reference = np.clip(want[post.output][:, post.channel], *post.range)
    assert heatmap.shape == reference.shape and heatmap.dtype == np.float32
    assert _diff(heatmap, reference) < _tolerance(manifest.preprocess)
    assert transform == dataclasses.asdict(want_transform)
    if any(g.layer == "base" for g in manifest.graphs):
        base = native.Session(family_bundle, layer="base", precision="fp32")
        with pytest.raises(InvalidInputError, match=r"\(logits\), not a heatmap"):
            base.run_heatmap(images[0])


def test_keypoints(native, family_bundle, manifest, images):
    """run_keypoints gives what runtime.Session returns: points in source pixels, scores, angle."""
    from runtime import InvalidInputError, Session

    post = manifest.postprocess
    session = native.Session(family_bundle, precision="fp32")
    info = session.info
    assert info["min_size"] == manifest.preprocess.min_size
    if post.kind != "keypoints":
        assert (info["has_keypoints"], info["keypoint_names"], info["keypoint_threshold"]) == (False, [], 0.0)
        with pytest.raises(InvalidInputError, match="not keypoints; use runtime_session_run"):
            session.run_keypoints(images[0])
        return
    assert info["has_keypoints"] and info["keypoint_names"] == list(post.points)
    assert info["keypoint_threshold"] == post.score_threshold
    with Session(family_bundle, backend="onnxruntime", precision="fp32") as reference:
        for image in images:
            found, transform = session.run_keypoints(image)
            want = reference.run(image)
            assert found["points"].shape == (1, len(post.points), 2) and found["points"].dtype == np.float64
            points = np.array([want.points[name] for name in post.points])
            assert float(np.abs(found["points"][0] - points).max()) < 1e-3
            np.testing.assert_allclose(found["scores"][0], [want.scores[name] for name in post.points], atol=1e-5)
            if post.angle_output:
                assert found["angle"].shape == (1,) and abs(float(found["angle"][0]) - want.angle) < 1e-3
            else:
                assert found["angle"] is None
            assert transform == dataclasses.asdict(prepare(image, manifest.preprocess)[1])
    if len({i.shape for i in images}) == 1:
        batch, _ = session.run_keypoints(np.stack(images))
        for i, image in enumerate(images):
            np.testing.assert_array_equal(batch["points"][i], session.run_keypoints(image)[0]["points"][0])
    hwc, _ = session.run_keypoints(np.ascontiguousarray(images[0].transpose(1, 2, 0)), layout="hwc")
    np.testing.assert_array_equal(hwc["points"], session.run_keypoints(images[0])[0]["points"])
    with pytest.raises(InvalidInputError, match="channels, got 9"):
        session.run_keypoints(np.zeros((9, 8, 8), np.float32))
    for entry in manifest.graphs:
        if entry.layer != "full" and entry.precision == "fp32":
            lower = native.Session(family_bundle, layer=entry.layer, precision="fp32")
            assert not lower.info["has_keypoints"] and lower.info["keypoint_names"] == list(post.points)
            with pytest.raises(InvalidInputError, match=r"needs the full graph \(layer full\)"):
                lower.run_keypoints(images[0])


def _with_min_size(bundle: Path, least: int, out: Path) -> Path:
    """A copy of ``bundle`` whose manifest sets preprocess.min_size."""
    shutil.copytree(bundle, out)
    data = json.loads((out / "manifest.json").read_text())
    data["preprocess"]["min_size"] = least
    (out / "manifest.json").write_text(json.dumps(data))
    return out


def test_images_under_min_size_are_refused_alike(native, family_bundle, manifest, tmp_path):
    """preprocess.min_size, as runtime.Session applies it: a side below it is refused before the size or
    layout is looked at (exact resize included), after the channel count; exactly min_size runs (letterbox)."""
    from runtime import InvalidInputError, Session

    pre = manifest.preprocess
    least = pre.min_size if pre.min_size > 1 else min(8, pre.height, pre.width)
    low = pre.source_range[0]
    bundles = {"exact" if pre.resize == "exact" else "letterbox":
               family_bundle if pre.min_size > 1 else _with_min_size(family_bundle, least, tmp_path / "own")}
    if pre.resize == "exact":
        bundles["letterbox"] = _with_min_size(_letterbox_bundle(family_bundle, manifest, tmp_path), least,
                                              tmp_path / "letterbox-min")
    c = pre.accepted_channels[0]
    needs = f"needs at least {least} pixels on each side"
    small = {f"image too small: {least - 1}x{least + 5} (height x width":
             (np.full((c, least - 1, least + 5), low, np.float32), "chw"),
             f"image too small: {least + 5}x{least - 1} (height x width":
             (np.full((least + 5, least - 1, c), low, np.float32), "hwc"),
             "channels, got": (np.full((least - 1, least - 1, 99), low, np.float32), "hwc")}
    for resize, bundle in bundles.items():
        native_session = native.Session(bundle, precision="fp32")
        with Session(bundle, backend="onnxruntime", precision="fp32", threads=1) as python:
            for fragment, (image, layout) in small.items():
                for who, run in (("Python", lambda: python.run(image)),
                                 ("libruntime", lambda: native_session.run(image, layout=layout))):
                    with pytest.raises(InvalidInputError) as refused:
                        run()
                    message = str(refused.value)
                    assert fragment in message and (needs in message) == fragment.startswith("image too small"), \
                        f"{who}, {resize}: {message}"
            if resize == "letterbox":
                fits = np.full((c, least, least), low, np.float32)
                got, transform = native_session.run(fits)
                want, _ = _expected(bundle, read_manifest(bundle), fits)
                assert (transform["source_height"], transform["source_width"]) == (least, least)
                for name, value in got.items():
                    assert _diff(value, want[name]) < 1e-4, name
                python.run(fits)


def _nonfinite_bundle(bundle: Path, manifest, output: str, out: Path) -> Path:
    """A copy of ``bundle`` whose full fp32 graph adds a NaN to the first element of ``output``."""
    import onnx
    from onnx import helper, numpy_helper

    from runtime._manifest import sha256_file

    shutil.copytree(bundle, out)
    entry = manifest.graph(precision="fp32")
    model = onnx.load(str(out / entry.file))
    finite = f"{output}_finite"
    for node in model.graph.node:
        node.input[:] = [finite if name == output else name for name in node.input]
        node.output[:] = [finite if name == output else name for name in node.output]
    offset = np.zeros([1, *next(o for o in entry.outputs if o.name == output).shape[1:]], np.float32)
    offset.flat[0] = np.nan
    model.graph.initializer.append(numpy_helper.from_array(offset, f"{output}_offset"))
    model.graph.node.append(helper.make_node("Add", [finite, f"{output}_offset"], [output]))
    onnx.save(model, str(out / entry.file))
    data = json.loads((out / "manifest.json").read_text())
    graph = next(g for g in data["graphs"] if g["file"] == entry.file)
    graph.update(sha256=sha256_file(out / entry.file), bytes=(out / entry.file).stat().st_size)
    (out / "manifest.json").write_text(json.dumps(data))
    return out


def test_nonfinite_keypoints_are_a_backend_error_alike(native, family_bundle, manifest, images, tmp_path):
    """A graph that returns a NaN point, score or angle: BackendError from runtime.Session's decoding and
    from run_keypoints; the raw run still returns the outputs as they are."""
    from runtime import BackendError, Session

    post = manifest.postprocess
    if post.kind != "keypoints":
        pytest.skip(f"postprocess kind {post.kind!r}: nothing is decoded into points")
    for output in post.output_names():
        bundle = _nonfinite_bundle(family_bundle, manifest, output, tmp_path / output)
        with Session(bundle, backend="onnxruntime", precision="fp32", threads=1) as python:
            with pytest.raises(BackendError, match=f"the graph returned non-finite '{output}' for "):
                python.run(images[0])
        session = native.Session(bundle, precision="fp32")
        with pytest.raises(BackendError, match=f"the graph returned non-finite '{output}' for the image; "
                                               f"expected finite values"):
            session.run_keypoints(images[0])
        raw, _ = session.run(images[0])
        assert np.isnan(raw[output].flat[0])


def test_python_threads_share_one_session(native, family_bundle, images):
    session = native.Session(family_bundle, precision="fp32", threads=1)
    expected = [session.run(image)[0] for image in images]
    failures: list[str] = []

    def work(index: int) -> None:
        for step in range(3):
            which = (index + step) % len(images)
            got, _ = session.run(images[which])
            if any(not np.array_equal(got[n], expected[which][n]) for n in got):
                failures.append(f"thread {index} step {step}")

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_bad_inputs_raise_invalid_input(native, family_bundle, manifest, images):
    from runtime import InvalidInputError

    pre = manifest.preprocess
    image = images[0]
    c, h, w = image.shape
    low, high = pre.source_range
    session = native.Session(family_bundle, precision="fp32")
    too_many = max(pre.accepted_channels) + 1
    cases = {
        "got dtype float64": image.astype(np.float64),
        "C-contiguous": image[:, :, ::2],
        f"channels, got {too_many}": np.full((too_many, h, w), low, np.float32),
        "NaN or infinite": np.full((c, h, w), np.nan, np.float32),
        "values out of range": np.full((c, h, w), high + 50, np.float32),
        "expected an image (C, H, W)": np.zeros((h, w), np.float32),
    }
    if pre.resize == "exact":
        cases[f"expected {h}x{w} (height x width), got {h}x{w - 1}"] = np.ascontiguousarray(image[:, :, 1:])
    if high > 1:
        cases["values look like 0..1"] = np.full((c, h, w), 0.5, np.float32)
    for fragment, array in cases.items():
        with pytest.raises(InvalidInputError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            session.run(array)
    with pytest.raises(InvalidInputError, match="layout 'auto' is not one of 'chw', 'hwc'"):
        session.run(image, layout="auto")
    with pytest.raises(InvalidInputError, match="a prescaled input must be the graph's tensor"):
        session.run(image[None, :1], prescaled=True)


def test_bad_bundles_raise_model_load(native, family_bundle, manifest, tmp_path):
    from runtime import BackendError, InvalidInputError, ModelLoadError

    with pytest.raises(ModelLoadError, match="no bundle directory or graph file"):
        native.Session(tmp_path / "missing")
    with pytest.raises(ModelLoadError, match="no manifest.json"):
        native.Session(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(family_bundle, copy)
    graph = copy / manifest.graph(precision="fp32").file
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="does not match its manifest"):
        native.Session(copy, precision="fp32")
    (copy / "manifest.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot read"):
        native.Session(copy)
    old = json.loads((family_bundle / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**old, "schema_version": 1}))
    with pytest.raises(ModelLoadError, match="schema_version 1 is not supported.*re-export the bundle"):
        native.Session(copy)
    with pytest.raises(InvalidInputError, match="backend 'tensorrt' is not one of"):
        native.Session(family_bundle, backend="tensorrt")
    with pytest.raises(BackendError, match="CUDA"):
        native.Session(family_bundle, device="gpu")


def test_old_embedded_manifest_asks_for_a_re_export(native, family_bundle, manifest, tmp_path):
    """A lone graph whose sdk.manifest is schema 1: refused with the way out."""
    import onnx

    from runtime import ModelLoadError

    model = onnx.load(str(family_bundle / manifest.graph(precision="fp32").file))
    for prop in model.metadata_props:
        if prop.key == "sdk.manifest":
            prop.value = json.dumps({**json.loads(prop.value), "schema_version": 1})
    onnx.save(model, str(tmp_path / "old.onnx"))
    with pytest.raises(ModelLoadError, match="schema_version 1 is not supported.*re-export"):
        native.Session(tmp_path / "old.onnx")


@pytest.mark.openvino
def test_openvino_through_libruntime(native, family_bundle, manifest, images):
    if not native.has_backend("openvino"):
        pytest.skip("libruntime was built without its OpenVINO plugin")
    session = native.Session(family_bundle, backend="openvino", precision="fp32")
    assert session.info["backend"] == "openvino"
    for image in images:
        outputs, _ = session.run(image)
        want, _ = _expected(family_bundle, manifest, image)
        for name, value in outputs.items():
            assert _diff(value, want[name]) < 1e-4, name


def test_session_close_during_native_runs(native, family_bundle, images):
    """runtime.Session(backend="native") closed while other threads run it: each run gives a result or
    BackendError("the session is closed"); an AttributeError escaped when close() released the engine
    under a run (the hardening issue's concurrent-use sweep)."""
    from runtime import BackendError, Session

    session = Session(family_bundle, backend="native", precision="fp32", threads=1)
    done, unexpected = [], []

    def work() -> None:
        while True:
            try:
                session.run(images[0])
                done.append(1)
            except BackendError as exc:
                if "the session is closed" not in str(exc):
                    unexpected.append(repr(exc))
                return
            except Exception as exc:  # noqa: BLE001 - reported below
                unexpected.append(repr(exc))
                return

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(done) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    session.close()
    for t in threads:
        t.join(60)
    assert unexpected == [] and len(done) >= 3
