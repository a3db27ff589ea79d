"""Image I/O: every accepted layout round-trips, every bad input says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from PIL import Image

from runtime._errors import InvalidInputError
from runtime._imageio import (
    COLOR_ORDERS,
    IMAGE_SUFFIXES,
    ColorOrder,
    ImageNotFoundError,
    list_images,
    read_image,
    to_chw,
    write_png,
    write_tiff,
)

H, W = 976, 176


@pytest.fixture(scope="module")
def strip() -> np.ndarray:
    """A (3, H, W) float32 strip with non-integer values in 0..255."""
    rng = np.random.default_rng(0)
    return rng.uniform(0, 255, size=(3, H, W)).astype(np.float32)


@pytest.fixture(scope="module")
def strip_u8(strip: np.ndarray) -> np.ndarray:
    return strip.round().astype(np.uint8)


def _with_mask(chw: np.ndarray) -> np.ndarray:
    mask = np.zeros((1, *chw.shape[1:]), dtype=chw.dtype)
    mask[0, 10:20, 10:20] = 1
    return np.concatenate([chw, mask])


# --- round trips -------------------------------------------------------------------------


# How a TIFF writer may store each layout: RGB-like pages (tifffile's historical
# default, planar for CHW, interleaved for HWC) or one grey page per channel.
_STORAGE = {"rgb": {"photometric": "rgb"}, "pages": {"photometric": "minisblack"}}


@pytest.mark.parametrize("storage", sorted(_STORAGE))
@pytest.mark.parametrize("layout", ["chw4", "chw3", "hwc4", "hwc3"])
def test_float_tiff_layouts_round_trip(tmp_path, strip, layout, storage):
    data = _with_mask(strip) if layout.endswith("4") else strip
    options = dict(_STORAGE[storage])
    if layout.startswith("hwc"):
        data = np.moveaxis(data, 0, -1)
    elif storage == "rgb":
        options["planarconfig"] = "separate"
    if storage == "rgb" and layout.endswith("4"):
        options["extrasamples"] = ["unspecified"]
    path = tmp_path / f"{layout}.tiff"
    tifffile.imwrite(path, data, **options)

    image = read_image(path, expected_hw=(H, W))

    assert image.shape == (3, H, W) and image.dtype == np.float32 and image.flags.c_contiguous
    np.testing.assert_array_equal(image, strip)


def test_write_tiff_writes_float32_chw_that_reads_back(tmp_path, strip):
    path = write_tiff(tmp_path / "strip.tiff", _with_mask(strip))

    raw = tifffile.imread(path)
    assert raw.shape == (4, H, W) and raw.dtype == np.float32
    np.testing.assert_array_equal(read_image(path), strip)


def test_write_tiff_accepts_2d_heatmap(tmp_path):
    heatmap = np.linspace(0, 1, H * W, dtype=np.float32).reshape(H, W)
    path = write_tiff(tmp_path / "heatmap.tif", heatmap)
    np.testing.assert_array_equal(tifffile.imread(path), heatmap)


def test_write_tiff_keeps_a_hwc_looking_shape_as_chw(tmp_path):
    # (3, 5, 3) could be mistaken for RGB by a TIFF writer; it must stay as given.
    data = np.arange(45, dtype=np.float32).reshape(3, 5, 3)
    np.testing.assert_array_equal(tifffile.imread(write_tiff(tmp_path / "x.tiff", data)), data)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_tiffs_are_taken_as_is(tmp_path, strip_u8, dtype):
    path = tmp_path / "int.tiff"
    tifffile.imwrite(path, strip_u8.astype(dtype), photometric="minisblack")
    image = read_image(path)
    assert image.dtype == np.float32
    np.testing.assert_array_equal(image, strip_u8.astype(np.float32))


@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_png_written_by_write_png_round_trips_in_channel_order(tmp_path, strip_u8, layout):
    data = np.moveaxis(strip_u8, 0, -1) if layout == "hwc" else strip_u8
    path = write_png(tmp_path / "strip.png", data)

    # The default colour order, rgb: channel i is PNG plane i, channel 0 in R.
    rgb = np.asarray(Image.open(path))
    np.testing.assert_array_equal(rgb[..., 0], strip_u8[0])
    np.testing.assert_array_equal(read_image(path, expected_hw=(H, W)), strip_u8.astype(np.float32))


def test_rgba_png_drops_alpha(tmp_path, strip_u8):
    rgba = np.concatenate([np.moveaxis(strip_u8, 0, -1), np.full((H, W, 1), 255, np.uint8)], axis=-1)
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, "RGBA").save(path)
    np.testing.assert_array_equal(read_image(path), strip_u8.astype(np.float32))


def _planes(h: int = 12, w: int = 10) -> np.ndarray:
    """(3, h, w) uint8: three planes that differ everywhere (levels 10, 100, 200 plus a small gradient)."""
    gradient = (np.arange(h)[:, None] + 2 * np.arange(w)[None, :]).astype(np.uint8)
    return np.stack([gradient + level for level in (10, 100, 200)]).astype(np.uint8)


def _save_as_opencv_writes(path, channels: np.ndarray) -> None:
    """What cv2.imwrite does with a BGR array whose plane i is ``channels[i]``: plane 0 in the file's blue
    channel, 1 in green, 2 in red, written here with Pillow (which takes R, G, B)."""
    b, g, r = channels[:3]
    planes = [r, g, b, *channels[3:]]
    Image.fromarray(np.stack(planes, axis=-1), "RGBA" if len(planes) == 4 else "RGB").save(path)


def test_bgr_reads_the_blue_plane_as_channel_0(tmp_path):
    channels = _planes()
    path = tmp_path / "opencv.png"
    _save_as_opencv_writes(path, channels)
    assert np.asarray(Image.open(path))[..., 2].tolist() == channels[0].tolist()  # the file's blue plane

    np.testing.assert_array_equal(read_image(path, color_order="bgr"), channels.astype(np.float32))
    np.testing.assert_array_equal(read_image(path, color_order=ColorOrder.BGR, channels=(2,)), channels[2:3])
    # The default, rgb (an ordinary photo): channel 0 is the red plane, here the third channel.
    np.testing.assert_array_equal(read_image(path), channels[::-1].astype(np.float32))
    np.testing.assert_array_equal(read_image(path, color_order="rgb"), channels[::-1].astype(np.float32))


def test_bgr_keeps_alpha_as_channel_3(tmp_path):
    channels = np.concatenate([_planes(), np.full((1, 12, 10), 77, np.uint8)])
    path = tmp_path / "opencv_bgra.png"
    _save_as_opencv_writes(path, channels)
    image = read_image(path, accepted_channels=(4,), channels=(0, 1, 2, 3), color_order="bgr")
    np.testing.assert_array_equal(image, channels.astype(np.float32))
    np.testing.assert_array_equal(read_image(path, color_order="bgr"), channels[:3].astype(np.float32))


def test_bgr_jpeg_reads_the_blue_plane_as_channel_0(tmp_path):
    y, x = np.mgrid[0:64, 0:48]
    smooth = np.stack([np.full((64, 48), 200.0), 100 + 0.5 * x, 20 + 0.3 * y]).astype(np.uint8)
    path = tmp_path / "opencv.jpg"
    Image.fromarray(np.moveaxis(smooth[::-1], 0, -1)).save(path, quality=95)  # R, G, B = channels 2, 1, 0
    image = read_image(path, color_order="bgr")
    assert np.abs(image - smooth).mean() < 2.0
    assert abs(float(image[0].mean()) - 200.0) < 3.0  # channel 0 is the blue plane


@pytest.mark.parametrize("count", [3, 4])
@pytest.mark.parametrize("layout", ["hwc", "chw"])
def test_write_png_bgr_round_trips_and_puts_channel_0_in_blue(tmp_path, count, layout):
    channels = np.concatenate([_planes(), np.full((1, 12, 10), 77, np.uint8)])[:count]
    data = np.moveaxis(channels, 0, -1) if layout == "hwc" else channels
    path = write_png(tmp_path / "bgr.png", data, color_order="bgr")

    stored = np.asarray(Image.open(path))
    assert stored.shape == (12, 10, count)
    np.testing.assert_array_equal(stored[..., 2], channels[0])  # as cv2.imwrite stores a BGR array
    np.testing.assert_array_equal(stored[..., 0], channels[2])
    if count == 4:
        np.testing.assert_array_equal(stored[..., 3], channels[3])  # alpha is not moved
    every = tuple(range(count))
    back = read_image(path, accepted_channels=(count,), channels=every, color_order="bgr")
    np.testing.assert_array_equal(back, channels.astype(np.float32))
    np.testing.assert_array_equal(data, np.moveaxis(channels, 0, -1) if layout == "hwc" else channels)  # untouched


def test_write_png_grey_is_never_reordered(tmp_path):
    grey = _planes()[0]
    path = write_png(tmp_path / "grey.png", grey, color_order="bgr")
    np.testing.assert_array_equal(np.asarray(Image.open(path)), grey)


@pytest.mark.parametrize("suffix", [".tiff", "array"])
def test_tiff_and_arrays_are_never_reordered(tmp_path, suffix):
    channels = _planes().astype(np.float32)
    if suffix == "array":
        np.testing.assert_array_equal(to_chw(channels), channels)  # to_chw has no colour order
        return
    path = write_tiff(tmp_path / "planes.tiff", channels)
    for order in COLOR_ORDERS:
        np.testing.assert_array_equal(read_image(path, color_order=order), channels)


@pytest.mark.parametrize("bad", ["BGR", "RGB", "rgba", "", None, 0])
def test_an_unknown_color_order_is_refused(tmp_path, bad):
    path = write_png(tmp_path / "x.png", _planes())
    message = r"color_order is .*; expected one of \['rgb', 'bgr'\]"
    with pytest.raises(InvalidInputError, match=message):
        read_image(path, color_order=bad)
    with pytest.raises(InvalidInputError, match=message):
        write_png(tmp_path / "y.png", _planes(), color_order=bad)
    assert not (tmp_path / "y.png").exists()
    with pytest.raises(InvalidInputError, match=message):
        ColorOrder.parse(bad)


def test_color_order_values():
    assert COLOR_ORDERS == ("rgb", "bgr")
    assert ColorOrder.parse("bgr") is ColorOrder.BGR and ColorOrder.BGR == "bgr"
    assert ColorOrder.BGR.planes(3) == (2, 1, 0) and ColorOrder.BGR.planes(4) == (2, 1, 0, 3)
    assert ColorOrder.RGB.planes(4) == (0, 1, 2, 3)
    assert ColorOrder.BGR.planes(2) == (0, 1)  # grey + alpha has no colour order


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".JPG"])
def test_jpeg_loads_approximately(tmp_path, suffix):
    # Smooth content: JPEG's loss is then small and the test checks channel order.
    y, x = np.mgrid[0:H, 0:W]
    smooth = np.stack([60 + 0.1 * y, 100 + 0.5 * x, np.full((H, W), 180.0)]).astype(np.uint8)
    path = tmp_path / f"strip{suffix}"
    Image.fromarray(np.moveaxis(smooth, 0, -1)).save(path, quality=95)

    image = read_image(path, expected_hw=(H, W))

    assert image.shape == (3, H, W) and image.dtype == np.float32
    assert np.abs(image - smooth).mean() < 2.0


@pytest.mark.parametrize(("mode", "suffix"), [("P", ".png"), ("CMYK", ".jpg")])
def test_other_colour_modes_are_converted_to_rgb(tmp_path, mode, suffix):
    # A palette PNG or a CMYK JPEG of a 3-channel image still yields its RGB planes.
    rgb = np.zeros((16, 12, 3), np.uint8)
    rgb[:8] = (200, 40, 90)
    rgb[8:] = (10, 250, 120)
    path = tmp_path / f"{mode}{suffix}"
    # An adaptive palette holds the two colours exactly (the default web palette would dither).
    converted = Image.fromarray(rgb).convert(mode, **({"palette": Image.Palette.ADAPTIVE} if mode == "P" else {}))
    converted.save(path, **({"quality": 100} if suffix == ".jpg" else {}))
    image = read_image(path)
    assert image.shape == (3, 16, 12)
    assert np.abs(image - np.moveaxis(rgb, -1, 0)).max() <= (0 if mode == "P" else 12)


def test_to_chw_returns_a_new_array(strip):
    original = strip.copy()
    out = to_chw(strip)
    out += 1
    np.testing.assert_array_equal(strip, original)


@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_to_chw_converts_other_floats(dtype):
    data = np.full((3, 8, 10), 100.5, dtype=dtype)
    out = to_chw(data)
    assert out.dtype == np.float32 and out.shape == (3, 8, 10)
    np.testing.assert_allclose(out, 100.5)


def test_tiny_rounding_outside_range_is_tolerated_and_clipped():
    data = np.full((3, 4, 6), 128.0, np.float32)
    data[0, 0, 0] = -1e-4
    data[1, 0, 0] = 255 + 1e-4
    out = to_chw(data)
    assert out.min() == 0.0 and out.max() == 255.0


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_constant_dark_or_integer_images_are_legal(value):
    # Dark but integral values are not mistaken for 0..1 scaling.
    data = np.full((3, 8, 6), value, np.float32)
    data[0, 0, :2] = [0.0, 1.0]
    assert to_chw(data).max() == 1.0


def test_mask_channel_is_neither_returned_nor_checked():
    data = np.full((4, 8, 6), 50.0, np.float32)
    data[3] = np.nan  # whatever production puts there is ignored
    np.testing.assert_array_equal(to_chw(data), np.full((3, 8, 6), 50.0, np.float32))


def test_expected_hw_resolves_an_ambiguous_layout():
    data = np.arange(3 * 5 * 4, dtype=np.float32).reshape(3, 5, 4)  # CHW (3, 5, 4) or HWC?
    np.testing.assert_array_equal(to_chw(data, expected_hw=(5, 4)), data)
    hwc = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3)
    np.testing.assert_array_equal(to_chw(hwc, expected_hw=(4, 5)), np.moveaxis(hwc, -1, 0))


# --- bad arrays ---------------------------------------------------------------------------


@pytest.mark.parametrize(("shape", "match"), [
    ((5, H, W), r"expected 3 or 4 channels, got 5 \(shape \(5, 976, 176\)\)"),
    ((H, W, 5), r"expected 3 or 4 channels, got 5 \(shape \(976, 176, 5\)\)"),
    ((1, H, W), r"expected 3 or 4 channels, got 1 \(shape \(1, 976, 176\)\)"),
    ((H, W, 2), r"expected 3 or 4 channels, got 2"),
    ((H, W), r"expected a 3-D image .* got a 2-D array of shape \(976, 176\)"),
    ((2, 3, H, W), r"got a 4-D array of shape \(2, 3, 976, 176\)"),
    ((3, 5, 4), r"ambiguous layout for shape \(3, 5, 4\)"),
])
def test_bad_shapes_are_named(shape, match):
    with pytest.raises(InvalidInputError, match=match):
        to_chw(np.zeros(shape, np.float32))


def test_wrong_size_names_expected_and_actual():
    with pytest.raises(InvalidInputError, match=r"expected 976x176 \(height x width\) for image type strip, "
                                                r"got 256x256 \(shape \(4, 256, 256\)\)"):
        to_chw(np.zeros((4, 256, 256), np.float32), expected_hw=(976, 176), what="image type strip")


@pytest.mark.parametrize("dtype", [np.int64, np.int16, np.complex64, np.bool_, np.uint32])
def test_unsupported_dtypes_are_named(dtype):
    with pytest.raises(InvalidInputError, match=f"unsupported dtype {np.dtype(dtype).name}"):
        to_chw(np.zeros((3, 8, 6), dtype))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_are_refused(bad):
    data = np.full((3, 8, 6), 10.0, np.float32)
    data[1, 2, 3] = bad
    with pytest.raises(InvalidInputError, match=r"1 NaN or infinite value\(s\) out of 144"):
        to_chw(data, source="x.tiff")


@pytest.mark.parametrize(("low", "high"), [(-5.0, 100.0), (0.0, 300.0), (0.0, 255.01)])
def test_out_of_range_values_are_refused(low, high):
    data = np.full((3, 8, 6), 10.0, np.float32)
    data[0, 0, 0], data[0, 0, 1] = low, high
    with pytest.raises(InvalidInputError, match=rf"min {low:g}, max {high:g}; expected 0\.\.255"):
        to_chw(data)


def test_zero_to_one_scaling_is_refused_with_a_hint():
    data = np.random.default_rng(1).uniform(0, 1, (3, 8, 6)).astype(np.float32)
    with pytest.raises(InvalidInputError, match=r"values look like 0\.\.1 .* expected 0\.\.255"):
        to_chw(data)


def test_full_range_uint16_is_refused():
    with pytest.raises(InvalidInputError, match=r"uint16 values up to 65535 .* expected 0\.\.255"):
        to_chw(np.full((3, 8, 6), 65535, np.uint16))


# --- bad files ----------------------------------------------------------------------------


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.tiff"
    with pytest.raises(ImageNotFoundError, match="nope.tiff") as info:
        read_image(path)
    # Callers may catch it either way.
    assert isinstance(info.value, InvalidInputError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("name", ["image.bmp", "image.npy", "image"])
def test_unsupported_extension(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"whatever")
    with pytest.raises(InvalidInputError, match=r"unsupported image extension .* expected one of \.tif"):
        read_image(path)


def test_directory_is_refused(tmp_path):
    folder = tmp_path / "folder.tiff"
    folder.mkdir()
    with pytest.raises(InvalidInputError, match="is not a file"):
        read_image(folder)


@pytest.mark.parametrize("name", ["junk.tiff", "junk.png", "junk.jpg"])
def test_garbage_file_is_refused(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(InvalidInputError, match=f"cannot read .*{name}"):
        read_image(path)


def test_empty_file_is_refused(tmp_path):
    path = tmp_path / "empty.tif"
    path.touch()
    with pytest.raises(InvalidInputError, match="cannot read TIFF .*empty.tif"):
        read_image(path)


@pytest.mark.parametrize("name", ["cut.tiff", "cut.png", "cut.jpg"])
def test_truncated_file_is_refused(tmp_path, strip, strip_u8, name):
    path = tmp_path / name
    if name.endswith(".tiff"):
        write_tiff(path, _with_mask(strip))
    else:
        Image.fromarray(np.moveaxis(strip_u8, 0, -1)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InvalidInputError, match=f"cannot read .*{name}"):
        read_image(path)


def test_single_channel_png_is_refused(tmp_path, strip_u8):
    path = tmp_path / "gray.png"
    Image.fromarray(strip_u8[0]).save(path)
    with pytest.raises(InvalidInputError, match=r"got a 2-D array of shape \(976, 176\) in .*gray.png"):
        read_image(path)


def test_file_errors_name_the_file(tmp_path):
    path = tmp_path / "five.tiff"
    tifffile.imwrite(path, np.zeros((5, 16, 8), np.float32), photometric="minisblack")
    with pytest.raises(InvalidInputError, match=r"got 5 \(shape \(5, 16, 8\)\) in .*five.tiff"):
        read_image(path)
    with pytest.raises(InvalidInputError, match=r"expected 976x176 .* got 16x8 .* in .*small.tiff"):
        read_image(write_tiff(tmp_path / "small.tiff", np.zeros((4, 16, 8))), expected_hw=(976, 176))


# --- writers and listing ------------------------------------------------------------------


def test_write_png_refuses_non_uint8(tmp_path):
    with pytest.raises(InvalidInputError, match="write_png expects uint8, got dtype float32"):
        write_png(tmp_path / "x.png", np.zeros((8, 6, 3), np.float32))
    assert list(tmp_path.iterdir()) == []


def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch):
    target = tmp_path / "x.tiff"
    target.write_bytes(b"old content")

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tifffile, "imwrite", fail)
    with pytest.raises(OSError, match="disk full"):
        write_tiff(target, np.zeros((4, 8, 6), np.float32))
    # The old file is untouched and no temporary file is left.
    assert [p.name for p in tmp_path.iterdir()] == ["x.tiff"]
    assert target.read_bytes() == b"old content"


def test_write_tiff_refuses_bad_shapes(tmp_path):
    with pytest.raises(InvalidInputError, match=r"got shape \(1, 2, 3, 4\)"):
        write_tiff(tmp_path / "x.tiff", np.zeros((1, 2, 3, 4)))


def test_list_images_sorted_filtered(tmp_path):
    for name in ["b.tiff", "a.TIF", "c.png", "d.jpeg", "e.jpg", "notes.txt", ".hidden.tiff", "f.bmp"]:
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub.tiff").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.TIF", "b.tiff", "c.png", "d.jpeg", "e.jpg"]
    assert set(IMAGE_SUFFIXES) == {".tif", ".tiff", ".png", ".jpg", ".jpeg"}


def test_list_images_needs_a_directory(tmp_path):
    with pytest.raises(InvalidInputError, match="missing.* is not a directory"):
        list_images(tmp_path / "missing")
