"""Session and infer on the tiny bundle: every input form gives the same result, batches, threads, lone .onnx."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import tifffile

import runtime
from runtime import BackendError, HeatmapResult, Session, SessionOptions
from runtime._imageio import write_png

H, W = 976, 176  # the strip image type


@pytest.fixture(scope="module")
def session(bundle):
    with Session(bundle, backend="onnxruntime", precision="fp32") as s:
        yield s


def test_public_api_is_the_function_not_the_cli_module():
    assert callable(runtime.infer) and callable(runtime.evaluate)
    assert set(runtime.__all__) <= set(dir(runtime))


def test_session_properties(session, bundle):
    assert session.backend == "onnxruntime"
    assert session.precision == "fp32"
    assert session.device == "cpu"
    assert session.providers == ("CPUExecutionProvider",)
    assert session.path == bundle
    assert [i.name for i in session.inputs] == ["input"]
    assert session.inputs[0].shape == ("batch", 3, H, W)
    assert session.outputs[0].name == "output"
    assert session.manifest.family == "brn"
    assert session.image_size == (H, W)
    assert session.threshold == 0.5
    assert "onnxruntime" in repr(session)


def test_auto_choices_on_cpu(bundle):
    from runtime._cpu import cpu_info
    from runtime._manifest import read_manifest

    int8_ok = read_manifest(bundle).graph(precision="int8").accuracy.passed
    with Session(bundle) as s:
        assert (s.backend, s.device) == ("onnxruntime", "cpu")
        assert s.precision == ("int8" if int8_ok and cpu_info().int8_dot else "fp32"), s.choice.reason


def test_result_fields(session, strips):
    result = session.run(strips[0])
    assert isinstance(result, HeatmapResult)
    assert result.heatmap.shape == (H, W) and result.heatmap.dtype == np.float32
    assert 0.0 <= result.heatmap.min() and result.heatmap.max() <= 1.0
    assert result.score == pytest.approx(float(result.heatmap.max()))
    np.testing.assert_array_equal(result.mask, result.heatmap > result.threshold)
    assert result.defect_pixels == int(result.mask.sum())
    assert not result.heatmap.flags.writeable
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.score = 0.0  # type: ignore[misc]


def test_threshold_override(bundle, strips):
    with Session(bundle, threshold=0.0) as s:
        result = s.run(strips[0])
    assert result.threshold == 0.0
    assert result.defect_pixels == int((result.heatmap > 0).sum())


def test_same_result_from_every_input_form(session, strips, tmp_path):
    image = strips[0]
    tiff = tmp_path / "strip.tiff"
    mask = np.zeros((1, H, W), np.float32)
    tifffile.imwrite(tiff, np.concatenate([image, mask]), photometric="minisblack")  # 4-channel CHW
    # Lossless (integer values), in brn's PNG order: channel 0 in the blue plane, as OpenCV writes it.
    png = write_png(tmp_path / "strip.png", image.astype(np.uint8), color_order="bgr")
    reference = session.run(image).heatmap
    for form in (tiff, str(tiff), png, np.moveaxis(image, 0, -1).copy(), image.astype(np.uint8),
                 np.moveaxis(np.concatenate([image, mask]), 0, -1)):
        np.testing.assert_array_equal(session.run(form).heatmap, reference)


def test_batch_equals_one_by_one(bundle, strips):
    # batch_size 3 splits the 4 images into 3 + 1: chunking must not change anything.
    with Session(bundle, options=SessionOptions(batch_size=3)) as s:
        singles = [s.run(x).heatmap for x in strips]
        as_array = s.run(strips)
        as_list = s.run(list(strips))
        as_hwc = s.run(np.moveaxis(strips, 1, -1))
    for batch in (as_array, as_list, as_hwc):
        assert isinstance(batch, list) and len(batch) == len(strips)
        for result, single in zip(batch, singles):
            np.testing.assert_allclose(result.heatmap, single, atol=1e-6)
    assert [r.source for r in as_array] == [f"array[{i}]" for i in range(4)]


def test_empty_batch(session):
    assert session.run([]) == []


def test_concurrent_runs_equal_sequential(session, strips):
    expected = [session.run(x).heatmap for x in strips]

    def work(i: int) -> list[np.ndarray]:
        return [session.run(strips[(i + k) % 4]).heatmap for k in range(3)]

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(work, range(4)))
    for i, heatmaps in enumerate(outcomes):
        for k, heatmap in enumerate(heatmaps):
            np.testing.assert_allclose(heatmap, expected[(i + k) % 4], atol=1e-6)


def test_infer_one_shot(bundle, strips):
    with Session(bundle) as s:
        expected = s.run(strips[1]).heatmap
    np.testing.assert_array_equal(runtime.infer(bundle, strips[1]).heatmap, expected)
    assert len(runtime.infer(bundle, strips[:2], threads=1)) == 2


def test_close_is_idempotent_and_final(bundle, strips):
    s = Session(bundle)
    s.close()
    s.close()
    assert s.closed and "closed" in repr(s)
    with pytest.raises(BackendError, match="closed"):
        s.run(strips[0])


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_lone_onnx_file_matches_bundle(bundle, strips, precision):
    with Session(bundle, precision=precision) as s:
        expected = s.run(strips[0]).heatmap
    with Session(bundle / f"model.{precision}.onnx") as lone:
        assert lone.precision == precision
        assert lone.manifest.family == "brn" and len(lone.manifest.graphs) == 1
        np.testing.assert_array_equal(lone.run(strips[0]).heatmap, expected)


def test_options_threads_and_spinning(bundle, strips):
    with Session(bundle, threads=1, options=SessionOptions(spinning=True)) as s:
        assert s.options.threads == 1 and s.options.spinning
        with Session(bundle) as reference:
            np.testing.assert_allclose(s.run(strips[0]).heatmap, reference.run(strips[0]).heatmap, atol=1e-5)


def test_default_threads_are_physical_cores_capped():
    threads = SessionOptions().resolved_threads()
    assert 1 <= threads <= 8
