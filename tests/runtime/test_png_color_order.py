"""PNG/JPEG colour order per family: brn reads OpenCV-written files (Target in the blue plane), lhrnet ordinary
RGB photos (channel 0 red); the manifest's ``preprocess.color_order`` carries the order to every reader."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from runtime import Session, get_family
from runtime._imageio import ColorOrder, write_png
from runtime._preprocess import prepare, read_source
from runtime.families import brn


def _opencv_png(path, chw: np.ndarray):
    """The file cv2.imwrite makes of a BGR array whose plane i is ``chw[i]`` (plane 0 in the blue channel),
    written with Pillow, which takes R, G, B: a production PNG."""
    Image.fromarray(np.ascontiguousarray(np.moveaxis(chw[::-1], 0, -1).astype(np.uint8))).save(path)
    return path


def _planes(h: int, w: int) -> np.ndarray:
    """(3, h, w) float32 integer planes that differ everywhere: 10, 100, 200 plus a gradient."""
    gradient = (np.arange(h)[:, None] // 8 + np.arange(w)[None, :] // 8) % 40
    return np.stack([gradient + level for level in (10, 100, 200)]).astype(np.float32)


def test_families_declare_their_order():
    assert brn.COLOR_ORDER is ColorOrder.BGR
    assert get_family("brn").input_spec("square").color_order is ColorOrder.BGR
    assert get_family("lhrnet").input_spec(get_family("lhrnet").variants()[0]).color_order is ColorOrder.RGB


def test_brn_reads_target_from_the_blue_plane(tmp_path):
    pre = get_family("brn").input_spec("square")
    planes = _planes(pre.height, pre.width)  # Target, then the two references
    path = _opencv_png(tmp_path / "production.png", planes)
    assert np.asarray(Image.open(path))[..., 2].tolist() == planes[0].tolist()  # Target is the file's blue plane

    np.testing.assert_array_equal(read_source(path, pre), planes)
    np.testing.assert_array_equal(read_source(str(path), pre), planes)
    tensor, _ = prepare(path, pre)
    np.testing.assert_allclose(tensor, planes * np.float32(pre.scale), rtol=0, atol=1e-7)
    # The order is the manifest's: the same preprocess with "rgb" swaps Target and the second reference.
    np.testing.assert_array_equal(read_source(path, dataclasses.replace(pre, color_order="rgb")), planes[::-1])


def test_lhrnet_reads_channel_0_from_the_red_plane(tmp_path):
    lhrnet = get_family("lhrnet")
    pre = lhrnet.input_spec(lhrnet.variants()[0])
    planes = _planes(40, 64)
    path = tmp_path / "photo.png"
    Image.fromarray(np.moveaxis(planes, 0, -1).astype(np.uint8)).save(path)  # an ordinary RGB photo
    np.testing.assert_array_equal(read_source(path, pre), planes)
    # A brn-style file read as a photo: its red plane (the third channel's values) is channel 0.
    production = _opencv_png(tmp_path / "production.png", planes)
    np.testing.assert_array_equal(read_source(production, pre), planes[::-1])


def test_arrays_and_tiffs_are_never_reordered(tmp_path):
    pre = get_family("brn").input_spec("square")
    planes = _planes(pre.height, pre.width)
    np.testing.assert_array_equal(read_source(planes, pre), planes)
    np.testing.assert_array_equal(read_source(np.moveaxis(planes, 0, -1).copy(), pre), planes)


def test_session_reads_an_opencv_png_as_its_array(bundle, strips, tmp_path):
    """runtime.Session on a brn bundle: a production PNG gives the result of the BGR array it was written from."""
    image = strips[0]  # integer values: lossless as uint8
    with Session(bundle, backend="onnxruntime", precision="fp32", threads=1) as session:
        assert session.manifest.preprocess.color_order is ColorOrder.BGR
        reference = session.run(image).heatmap
        png = _opencv_png(tmp_path / "production.png", image)
        np.testing.assert_array_equal(session.run(png).heatmap, reference)
        written = write_png(tmp_path / "written.png", image.astype(np.uint8), color_order=brn.COLOR_ORDER)
        np.testing.assert_array_equal(np.asarray(Image.open(written)), np.asarray(Image.open(png)))
        np.testing.assert_array_equal(session.run(written).heatmap, reference)


@pytest.mark.parametrize("bad", ["BGR", "", "rgba"])
def test_a_family_cannot_declare_an_unknown_order(bad):
    from runtime import InvalidInputError

    pre = get_family("brn").input_spec("square")
    with pytest.raises(InvalidInputError, match=r"preprocess\.color_order is .*; expected one of \['rgb', 'bgr'\]"):
        dataclasses.replace(pre, color_order=bad)
