"""Property-based tests (hypothesis) of the runtime's image readers and manifest parser.

Three kinds of property: what the SDK writes reads back unchanged; whatever bytes,
array or JSON a user hands the runtime either works or raises the SDK's own error
(never a KeyError, TypeError, OverflowError or RecursionError, and never a hang);
and whatever the manifest parser accepts satisfies the rules of
``runtime/MANIFEST.md`` and ``runtime/manifest.schema.json``.

Hypothesis keeps its example database (failures found are replayed first on the
next run) in ``.hypothesis/``, which it git-ignores itself. A failure also prints
its example and a ``@reproduce_failure`` blob. ``deadline=None`` everywhere: the
machine's load must not decide a test; a real hang is caught by ``_watchdog``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import math
import re
import signal
import threading
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import tifffile
from hypothesis import example, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image

from runtime import InvalidInputError, ModelLoadError, SdkError, get_family, list_families
from runtime._manifest import SCHEMA_PATH, loads_json
from runtime.core import (
    DTYPES,
    LAYERS,
    PRECISIONS,
    GraphEntry,
    Manifest,
    Preprocess,
    parse_manifest,
    read_image,
    read_manifest,
    to_chw,
    write_png,
    write_tiff,
)

PROPERTY = settings(max_examples=50, deadline=None, print_blob=True)
HANG_SECONDS = 10.0


@pytest.fixture(scope="module")
def scratch(tmp_path_factory) -> Path:
    """One folder per module: hypothesis refuses function-scoped fixtures, each example overwrites its file."""
    return tmp_path_factory.mktemp("properties")


class _Hang(BaseException):
    """A BaseException, so that a reader's ``except Exception`` cannot turn the watchdog into an SdkError."""


@contextlib.contextmanager
def _watchdog(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Fail instead of waiting forever when the body runs longer than ``seconds`` (POSIX main thread only)."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum, frame):
        raise _Hang(f"still running after {seconds:g} s: a reader must fail fast on a bad file, not hang")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# -- images: helpers ------------------------------------------------------------------------------
def _ambiguous(shape: tuple[int, ...], counts: tuple[int, ...], expected_hw: tuple[int, int] | None) -> bool:
    """The documented layout rule (runtime/_imageio.py, "CHW or HWC"): both ends could be the channels."""
    first, last = shape[0] in counts, shape[-1] in counts
    if first and last and expected_hw is not None:
        first, last = tuple(shape[1:]) == tuple(expected_hw), tuple(shape[:2]) == tuple(expected_hw)
    return first and last


def _looks_scaled(chw: np.ndarray) -> bool:
    """The documented refusal of float images already scaled to 0..1 (values <= 1, not all integers)."""
    return chw.dtype.kind == "f" and float(chw.max()) <= 1.0 and not bool(np.all(chw == np.round(chw)))


def _assert_image(image: Any, channels: int, value_range: tuple[float, float] = (0.0, 255.0)) -> None:
    """read_image's and to_chw's documented result: a new C-contiguous (channels, H, W) float32 array in range."""
    assert isinstance(image, np.ndarray) and image.dtype == np.float32, type(image)
    assert image.ndim == 3 and image.shape[0] == channels and image.size > 0, image.shape
    assert image.flags.c_contiguous
    assert np.isfinite(image).all()
    assert value_range[0] <= image.min() and image.max() <= value_range[1]


def _read_or_sdk_error(path: Path) -> np.ndarray | None:
    """read_image's image (checked) or None when it raised an SdkError; any other exception propagates."""
    try:
        with _watchdog():
            image = read_image(path)
    except SdkError as exc:
        assert str(path) in str(exc), f"the message must name the file: {exc}"
        return None
    _assert_image(image, 3)
    return image


# -- images: round trips --------------------------------------------------------------------------
@st.composite
def float_images(draw) -> np.ndarray:
    """(C, H, W) float32 with 1..4 channels, values in 0..255 (subnormals, -0.0 and 255.0 included)."""
    shape = (draw(st.integers(1, 4)), draw(st.integers(1, 8)), draw(st.integers(1, 8)))
    return draw(hnp.arrays(np.float32, shape, elements=st.floats(0.0, 255.0, width=32)))


@settings(PROPERTY, max_examples=60)
@given(chw=float_images(), layout=st.sampled_from(["CHW", "HWC"]), give_size=st.booleans(), data=st.data())
def test_float32_tiff_round_trip_is_exact(scratch, chw, layout, give_size, data):
    """A float32 image in 0..255 written by write_tiff (CHW or HWC) reads back as the same CHW values."""
    c, h, w = chw.shape
    channels = tuple(data.draw(st.lists(st.integers(0, c - 1), min_size=1, max_size=4), label="channels"))
    stored = chw if layout == "CHW" else np.moveaxis(chw, 0, -1)
    path = write_tiff(scratch / "round_trip.tiff", stored)
    expected_hw = (h, w) if give_size else None
    kwargs = dict(expected_hw=expected_hw, accepted_channels=(c,), channels=channels)
    expected = chw[list(channels)]
    if _ambiguous(stored.shape, (c,), expected_hw):
        with pytest.raises(InvalidInputError, match="ambiguous layout"):
            read_image(path, **kwargs)
    elif _looks_scaled(expected):
        with pytest.raises(InvalidInputError, match="look like 0..1"):
            read_image(path, **kwargs)
    else:
        image = read_image(path, **kwargs)
        _assert_image(image, len(channels))
        np.testing.assert_array_equal(image, expected)


@settings(PROPERTY, max_examples=40)
@given(hwc=hnp.arrays(np.uint8, st.tuples(st.integers(1, 8), st.integers(1, 8), st.sampled_from([3, 4]))),
       layout=st.sampled_from(["CHW", "HWC"]))
def test_uint8_png_round_trip_is_exact(scratch, hwc, layout):
    """A uint8 RGB/RGBA image written by write_png (CHW or HWC) reads back unchanged, plane i as channel i."""
    h, w, c = hwc.shape
    stored = hwc if layout == "HWC" else np.moveaxis(hwc, -1, 0)
    if _ambiguous(stored.shape, (3, 4), None):
        with pytest.raises(InvalidInputError, match="ambiguous layout"):
            write_png(scratch / "round_trip.png", stored)
        return
    path = write_png(scratch / "round_trip.png", stored)
    kwargs = dict(expected_hw=(h, w), accepted_channels=(c,), channels=tuple(range(c)))
    if _ambiguous((h, w, c), (c,), (h, w)):
        with pytest.raises(InvalidInputError, match="ambiguous layout"):
            read_image(path, **kwargs)
        return
    image = read_image(path, **kwargs)
    _assert_image(image, c)
    np.testing.assert_array_equal(image, np.moveaxis(hwc, -1, 0).astype(np.float32))


# -- images: damaged and arbitrary files ----------------------------------------------------------
def _tiff_bytes(array: np.ndarray, **options: Any) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, **options)
    return buffer.getvalue()


def _pillow_bytes(image: Image.Image, kind: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=kind, **options)
    return buffer.getvalue()


def _seed_files() -> dict[str, tuple[str, bytes]]:
    """Small valid files of each kind read_image takes: name -> (suffix, bytes)."""
    rng = np.random.default_rng(7)
    chw = rng.integers(0, 256, (3, 16, 12)).astype(np.float32)
    rgb = np.moveaxis(chw, 0, -1).astype(np.uint8)
    rgba = np.concatenate([rgb, np.full((16, 12, 1), 200, np.uint8)], axis=-1)
    pages = {"photometric": "minisblack"}
    return {
        "float32 CHW tiff": (".tiff", _tiff_bytes(chw, **pages)),
        "float32 4-channel tiff": (".tif", _tiff_bytes(np.concatenate([chw, chw[:1] * 0]), **pages)),
        "float32 big-endian tiff": (".tiff", _tiff_bytes(chw, byteorder=">", **pages)),
        "float32 deflate tiff": (".tiff", _tiff_bytes(chw, compression="zlib", **pages)),
        "float32 tiled tiff": (".tif", _tiff_bytes(np.pad(chw, ((0, 0), (0, 0), (0, 4))), tile=(16, 16), **pages)),
        "uint16 CHW tiff": (".tif", _tiff_bytes(chw.astype(np.uint16), **pages)),
        "uint8 RGB tiff": (".tiff", _tiff_bytes(rgb, photometric="rgb")),
        "RGB png": (".png", _pillow_bytes(Image.fromarray(rgb), "PNG")),
        "RGBA png": (".png", _pillow_bytes(Image.fromarray(rgba), "PNG")),
        "palette png": (".png", _pillow_bytes(Image.fromarray(rgb).quantize(8), "PNG")),
        "jpeg": (".jpg", _pillow_bytes(Image.fromarray(rgb), "JPEG", quality=90)),
    }


SEED_FILES = _seed_files()
# Pillow warns (UserWarning "Corrupt EXIF data") on some damaged JPEG headers before failing or reading
# the pixels; the properties are about results and exceptions, so that warning is expected noise here.
pillow_warnings = pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")
_MAGIC = [b"II*\x00", b"MM\x00*", b"II+\x00\x08\x00\x00\x00", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0"]
# Words that make a length, offset, count or size field of a header absurd.
_WORDS = [b"\x00\x00\x00\x00", b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x80\x00\x00\x00", b"\x00\x01\x00\x00"]


@pytest.mark.parametrize("name", sorted(SEED_FILES))
def test_seed_files_read(scratch, name):
    """Each file the damage properties start from is itself a valid image (so those properties are not vacuous)."""
    suffix, data = SEED_FILES[name]
    path = scratch / f"seed{suffix}"
    path.write_bytes(data)
    _assert_image(read_image(path), 3)


@pillow_warnings
@settings(PROPERTY, max_examples=150)
@given(data=st.one_of(st.binary(max_size=1024),
                      st.builds(bytes.__add__, st.sampled_from(_MAGIC), st.binary(max_size=1024))),
       suffix=st.sampled_from([".tif", ".tiff", ".png", ".jpg", ".jpeg", ".TIFF"]))
def test_arbitrary_bytes_read_or_raise_sdk_error(scratch, data, suffix):
    """Any bytes in an image file: read_image returns a valid float32 CHW image or raises an SdkError, promptly."""
    path = scratch / f"arbitrary{suffix}"
    path.write_bytes(data)
    _read_or_sdk_error(path)


@pillow_warnings
@settings(PROPERTY, max_examples=150)
@given(name=st.sampled_from(sorted(SEED_FILES)), data=st.data())
def test_truncated_files_read_or_raise_sdk_error(scratch, name, data):
    """Every prefix of a valid TIFF/PNG/JPEG: read_image returns a valid image or raises an SdkError, promptly."""
    suffix, original = SEED_FILES[name]
    cut = data.draw(st.integers(0, len(original) - 1), label="length")
    path = scratch / f"truncated{suffix}"
    path.write_bytes(original[:cut])
    _read_or_sdk_error(path)


@pillow_warnings
@settings(PROPERTY, max_examples=150)
@given(name=st.sampled_from(sorted(SEED_FILES)), data=st.data())
def test_mutated_files_read_or_raise_sdk_error(scratch, name, data):
    """A valid TIFF/PNG/JPEG with one byte (or one 32-bit word) replaced: a valid image or an SdkError, promptly."""
    suffix, original = SEED_FILES[name]
    at = data.draw(st.integers(0, len(original) - 1), label="offset")
    patch = data.draw(st.one_of(st.binary(min_size=1, max_size=1), st.sampled_from(_WORDS)), label="patch")
    damaged = original[:at] + patch + original[at + len(patch):]
    path = scratch / f"mutated{suffix}"
    path.write_bytes(damaged[:len(original)])
    _read_or_sdk_error(path)


# -- to_chw on any array --------------------------------------------------------------------------
_ANY_DTYPE = st.one_of(hnp.boolean_dtypes(), hnp.integer_dtypes(endianness="?"),
                       hnp.unsigned_integer_dtypes(endianness="?"), hnp.floating_dtypes(endianness="?"),
                       hnp.complex_number_dtypes(), hnp.datetime64_dtypes(), hnp.timedelta64_dtypes(),
                       hnp.unicode_string_dtypes(max_len=3), hnp.byte_string_dtypes(max_len=3))
_SUPPORTED = (np.float16, np.float32, np.float64, np.uint8, np.uint16)
_IMAGE_DTYPES = [np.float32, np.float64, np.float16, np.uint8, np.uint16, np.dtype(">f4"), np.dtype(">u2"),
                 np.int16, np.bool_]
_NEAR_RANGE = st.one_of(st.floats(-2.0, 300.0), st.integers(0, 255).map(float),
                        st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 0.5, 1.0, 255.0005, -0.0005, 65535.0]))


@st.composite
def image_like_arrays(draw) -> np.ndarray:
    """Arrays that are nearly images: 0..4 dims with 3s and 4s among the sides, values around 0..255, NaN, inf."""
    sides = st.one_of(st.integers(0, 6), st.sampled_from([3, 4]))
    shape = tuple(draw(st.lists(sides, max_size=4)))
    values = draw(hnp.arrays(np.float64, shape, elements=_NEAR_RANGE))
    with np.errstate(all="ignore"):  # NaN or 300 cast to uint8 is as good an array as any
        array = values.astype(draw(st.sampled_from(_IMAGE_DTYPES)))
    return array[::-1] if array.ndim and draw(st.booleans()) else array  # a view with a negative stride


_ANY_ARRAY = st.one_of(
    hnp.arrays(_ANY_DTYPE, hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5)),
    hnp.arrays(object, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
               elements=st.one_of(st.none(), st.floats(), st.text(max_size=2))),
    image_like_arrays(),
)


def _layouts(array: np.ndarray, channels: list[int]) -> list[np.ndarray]:
    """The selected channels under each layout the shape allows (CHW, HWC)."""
    if array.ndim != 3:
        return []
    out = []
    if max(channels) < array.shape[0]:
        out.append(array[channels])
    if max(channels) < array.shape[-1]:
        out.append(np.moveaxis(array[..., channels], -1, 0))
    return out


def _is_result_of(image: np.ndarray, chw: np.ndarray) -> bool:
    """``image`` is ``chw`` as float32, every value of ``chw`` having been within 0..255 (1e-3 tolerance)."""
    if chw.shape != image.shape:
        return False
    wide = chw.astype(np.float64)
    if not (np.isfinite(wide).all() and wide.min() >= -1e-3 and wide.max() <= 255 + 1e-3) or _looks_scaled(chw):
        return False
    return np.array_equal(np.clip(chw.astype(np.float32), 0, 255), image)


@settings(PROPERTY, max_examples=200)
@given(array=_ANY_ARRAY, expected_hw=st.none() | st.tuples(st.integers(0, 6), st.integers(0, 6)))
def test_to_chw_returns_a_copy_of_the_image_or_raises_sdk_error(array, expected_hw):
    """to_chw on any array (any dtype, 0..4 dims, NaN/inf): its channels as a new CHW float32, or an SdkError."""
    before = array.copy()
    try:
        image = to_chw(array, expected_hw=expected_hw)
    except SdkError as exc:
        assert str(exc)
        return
    finally:
        if array.dtype != object:
            assert array.tobytes() == before.tobytes(), "to_chw must not modify its input"
    _assert_image(image, 3)
    assert array.dtype.type in _SUPPORTED, f"dtype {array.dtype} is not a documented image dtype"
    assert not np.shares_memory(image, array)
    if expected_hw is not None:
        assert image.shape[1:] == tuple(expected_hw)
    with np.errstate(all="ignore"):
        assert any(_is_result_of(image, chw) for chw in _layouts(array, [0, 1, 2])), \
            "the result is not the first three channels of the input, in range, under either layout"


# -- manifests: strategies -------------------------------------------------------------------------
_SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
NAME = _SCHEMA["$defs"]["name"]["pattern"]
ROLE = _SCHEMA["$defs"]["tensor"]["properties"]["role"]["pattern"]
FAMILY = _SCHEMA["properties"]["family"]["pattern"]
SHA256 = _SCHEMA["$defs"]["sha256"]["pattern"]
FILE = _SCHEMA["properties"]["default_graph"]["pattern"]
MAX_RANK = _SCHEMA["$defs"]["tensor"]["properties"]["shape"]["maxItems"]

tensor_names = st.from_regex(NAME, fullmatch=True)
labels = st.text(min_size=1, max_size=8)
dims = st.one_of(st.integers(1, 64), labels)  # a string names a dynamic axis
_NUMBERS = st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@st.composite
def ranges(draw, elements=_NUMBERS) -> list:
    low, high = sorted(draw(st.lists(elements, min_size=2, max_size=2, unique=True)))
    return [low, high]


@st.composite
def preprocess_dicts(draw) -> dict[str, Any]:
    resize = draw(st.sampled_from(["exact", "letterbox"]))
    accepted = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3, unique=True))
    read = draw(st.lists(st.integers(0, min(accepted) - 1), min_size=1, max_size=4))
    append_mask = resize == "letterbox" and draw(st.booleans())
    source_range = draw(ranges())
    pre = {"layout": "NCHW", "resize": resize, "height": draw(st.integers(1, 4096)),
           "width": draw(st.integers(1, 4096)), "read_channels": read,
           "channel_names": draw(st.lists(labels, min_size=len(read) + append_mask,
                                          max_size=len(read) + append_mask)),
           "append_mask": append_mask, "accepted_channels": accepted,
           "accepted_layouts": draw(st.lists(st.sampled_from(["CHW", "HWC"]), min_size=1, max_size=2, unique=True)),
           "source_range": source_range,
           "scale": draw(st.floats(0.0, 1e6, exclude_min=True) | st.integers(1, 1000))}
    if resize == "letterbox" or draw(st.booleans()):
        pre["pad_value"] = draw(st.floats(*source_range))
    if min(pre["height"], pre["width"]) > 1 and draw(st.booleans()):  # optional; 1, the default, is not written
        pre["min_size"] = draw(st.integers(2, min(pre["height"], pre["width"])))
    order = draw(st.sampled_from([None, "rgb", "bgr"]))  # optional; always written back
    if order is not None:
        pre["color_order"] = order
    return pre


@st.composite
def postprocess_dicts(draw) -> dict[str, Any]:
    if draw(st.booleans()):
        channels = draw(st.integers(1, 4))
        channel = draw(st.integers(0, channels - 1))
        others = [c for c in range(channels) if c != channel]
        post = {"kind": "heatmap", "output": draw(tensor_names), "channel": channel,
                "range": draw(ranges()), "threshold": draw(st.floats(0.0, 1.0) | st.sampled_from([0, 1]))}
        if others and draw(st.booleans()):
            post["zero_channels"] = draw(st.lists(st.sampled_from(others), unique=True))
        return post
    outputs = draw(st.lists(tensor_names, min_size=3, max_size=3, unique=True))
    post = {"kind": "keypoints", "points": draw(st.lists(labels, min_size=1, max_size=4)),
            "points_output": outputs[0], "scores_output": outputs[1]}
    if draw(st.booleans()):
        post["angle_output"] = outputs[2]
    if draw(st.booleans()):
        post["score_threshold"] = draw(st.floats(0.0, 1.0))
    return post


def _tensor(name: str, shape: list, role: str, dtype: str = "float32") -> dict[str, Any]:
    return {"name": name, "shape": shape, "dtype": dtype, "role": role}


@st.composite
def tensor_lists(draw, min_size: int = 1) -> list[dict[str, Any]]:
    names = draw(st.lists(tensor_names, min_size=min_size, max_size=min_size + 1, unique=True))
    return [_tensor(name, draw(st.lists(dims, min_size=1, max_size=MAX_RANK)),
                    draw(st.from_regex(ROLE, fullmatch=True)), draw(st.sampled_from(DTYPES))) for name in names]


@st.composite
def graph_entries(draw, pre: dict[str, Any], post: dict[str, Any], file: str, layer: str) -> dict[str, Any]:
    """A graph entry; a full-image one fits ``pre`` and ``post`` as the parser requires."""
    channels = len(pre["read_channels"]) + int(pre["append_mask"])
    image = _tensor(draw(tensor_names), [draw(dims), channels, pre["height"], pre["width"]], "image")
    if layer != "full":
        outputs = draw(tensor_lists())
    elif post["kind"] == "heatmap":
        count = max([post["channel"], *post.get("zero_channels", [])]) + 1 + draw(st.integers(0, 2))
        outputs = [_tensor(post["output"], [draw(dims), count, draw(dims), draw(dims)], "heatmap")]
    else:
        points = len(post["points"])
        outputs = [_tensor(post["points_output"], [draw(dims), points, 2], "points"),
                   _tensor(post["scores_output"], [draw(dims), points], "scores")]
        if "angle_output" in post:
            outputs.append(_tensor(post["angle_output"], [draw(dims), 1], "angle"))
    precision = draw(st.sampled_from(PRECISIONS))
    entry = {"file": file, "layer": layer, "precision": precision, "mode": draw(labels),
             "opset": draw(st.integers(7, 21)), "inputs": [image], "outputs": outputs,
             "sha256": draw(st.binary(min_size=32, max_size=32)).hex(), "bytes": draw(st.integers(1, 2 ** 31))}
    if precision == "int8" or draw(st.booleans()):
        entry["float_nodes"] = draw(st.lists(st.text(max_size=6), max_size=2))
    return entry


@st.composite
def manifests(draw) -> dict[str, Any]:
    """A valid manifest: a registered family's own pre/post-processing, or generated ones."""
    if draw(st.booleans()):
        family_name = draw(st.sampled_from(list_families()))
        family = get_family(family_name)
        variant = draw(st.sampled_from(list(family.variants())))
        pre, post = family.input_spec(variant).to_dict(), family.postprocess_spec(variant).to_dict()
    else:
        family_name, variant = draw(st.from_regex(FAMILY, fullmatch=True)), draw(labels)
        pre, post = draw(preprocess_dicts()), draw(postprocess_dicts())
    files = draw(st.lists(st.from_regex(FILE, fullmatch=True), min_size=1, max_size=3, unique=True))
    layers = ["full", *draw(st.lists(st.sampled_from(LAYERS), min_size=len(files) - 1, max_size=len(files) - 1))]
    graphs = [draw(graph_entries(pre, post, file, layer)) for file, layer in zip(files, layers)]
    manifest = {"schema_version": 2, "family": family_name, "variant": variant, "preprocess": pre,
                "postprocess": post, "arch": {"base_width": draw(st.integers(1, 64))},
                "checkpoint": {"file": "best.pth", "sha256": "0" * 64, "epoch": draw(st.integers(0, 99)),
                               "metrics": {"auroc": draw(st.floats(0, 1))}, "seed": draw(st.integers())},
                "producer": {"sdk": "0.1.0", "created": "2026-01-02T03:04:05Z"},
                "graphs": graphs, "default_graph": draw(st.sampled_from(files))}
    if draw(st.booleans()):
        manifest["tiling"] = {"mode": draw(st.sampled_from(["stitched", "fcn"])), "patch": [256, 256]}
    return manifest


#: A fixed valid manifest: the base of the pinned examples (``@example``) of the properties below.
FIXED = {
    "schema_version": 2, "family": "fam", "variant": "v",
    "preprocess": {"layout": "NCHW", "resize": "letterbox", "pad_value": 0.0, "height": 32, "width": 48,
                   "read_channels": [0, 1, 2], "channel_names": ["r", "g", "b", "mask"], "append_mask": True,
                   "accepted_channels": [3, 4], "accepted_layouts": ["CHW", "HWC"], "source_range": [0.0, 255.0],
                   "scale": 0.5},
    "postprocess": {"kind": "heatmap", "output": "out", "channel": 0, "range": [0.0, 1.0], "threshold": 0.5,
                    "zero_channels": [1]},
    "arch": {}, "checkpoint": {"file": "best.pth", "sha256": "0" * 64, "epoch": 3, "seed": 0},
    "producer": {"sdk": "0.1.0", "created": "2026-01-02T03:04:05Z"},
    "graphs": [{"file": "model.fp32.onnx", "layer": "full", "precision": "fp32", "mode": "fcn", "opset": 17,
                "inputs": [_tensor("input", ["batch", 4, 32, 48], "image")],
                "outputs": [_tensor("out", ["batch", 2, 32, 48], "heatmap")], "sha256": "ab" * 32, "bytes": 1234}],
    "default_graph": "model.fp32.onnx",
}


def _edited(path: tuple, value: Any) -> dict[str, Any]:
    """A copy of FIXED with the node at ``path`` set to ``value``."""
    out = copy.deepcopy(FIXED)
    target = out
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return out


def _embedded(manifest: dict[str, Any], index: int = 0) -> dict[str, Any]:
    """The ``sdk.manifest`` metadata of graph ``index`` (MANIFEST.md): no graphs list, the entry without hashes."""
    out = {k: v for k, v in manifest.items() if k not in ("graphs", "default_graph")}
    out["graph"] = {k: v for k, v in manifest["graphs"][index].items() if k not in ("sha256", "bytes")}
    return out


# -- manifests: invariants -------------------------------------------------------------------------
def _int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _finite(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _assert_invariants(m: Manifest, *, embedded: bool = False) -> None:
    """The rules MANIFEST.md and the schema state, checked on what the parser accepted."""
    assert re.fullmatch(FAMILY, m.family), m.family
    assert isinstance(m.variant, str) and m.variant
    pre = m.preprocess
    assert _int(pre.height, 1) and _int(pre.width, 1)
    assert pre.read_channels and all(_int(c, 0) for c in pre.read_channels)
    assert pre.accepted_channels and all(_int(c, 1) for c in pre.accepted_channels)
    assert max(pre.read_channels) < min(pre.accepted_channels)
    assert len(pre.channel_names) == pre.channels and all(isinstance(n, str) and n for n in pre.channel_names)
    assert pre.accepted_layouts and set(pre.accepted_layouts) <= {"CHW", "HWC"}
    low, high = pre.source_range
    assert _finite(low) and _finite(high) and low < high
    assert _finite(pre.scale) and pre.scale > 0
    if pre.resize == "letterbox":
        assert pre.pad_value is not None
    if pre.pad_value is not None:
        assert _finite(pre.pad_value) and low <= pre.pad_value <= high
    assert not pre.append_mask or pre.resize == "letterbox"
    assert _int(pre.min_size, 1) and pre.min_size <= min(pre.height, pre.width)
    post = m.postprocess
    assert all(re.fullmatch(NAME, name) for name in post.output_names()), post.output_names()
    assert _finite(post.default_threshold) and 0.0 <= post.default_threshold <= 1.0
    files = [g.file for g in m.graphs]
    assert len(set(files)) == len(files) and m.default_graph in files
    for g in m.graphs:
        assert re.fullmatch(FILE, g.file), g.file
        assert g.layer in LAYERS and g.precision in PRECISIONS and isinstance(g.mode, str) and g.mode
        assert _int(g.opset, 7)
        if not embedded:
            assert re.fullmatch(SHA256, g.sha256) and _int(g.bytes, 1), (g.sha256, g.bytes)
        assert all(isinstance(n, str) for n in g.float_nodes)
        for tensors in (g.inputs, g.outputs):
            assert tensors and len({t.name for t in tensors}) == len(tensors)
            for t in tensors:
                assert re.fullmatch(NAME, t.name) and re.fullmatch(ROLE, t.role) and t.dtype in DTYPES, t
                assert 1 <= len(t.shape) <= MAX_RANK
                assert all(_int(d, 1) or (isinstance(d, str) and d) for d in t.shape), t.shape
        if g.layer == "full":
            image = g.image_input()
            assert len(image.shape) == 4 and image.dtype == "float32"
            assert tuple(image.shape[1:]) == (pre.channels, pre.height, pre.width)
            for name in post.output_names():
                g.output(name)


def _parses(data: Any, **kwargs: Any) -> Manifest | None:
    """parse_manifest's result, or None when it raised ModelLoadError (with a message); anything else propagates."""
    try:
        return parse_manifest(data, **kwargs)
    except ModelLoadError as exc:
        assert str(exc)
        return None


def _reads(folder: Path, text: bytes) -> Manifest | None:
    """read_manifest on a manifest.json holding ``text``, or None when it raised ModelLoadError."""
    (folder / "manifest.json").write_bytes(text)
    try:
        with _watchdog():
            return read_manifest(folder)
    except ModelLoadError as exc:
        assert str(exc)
        return None


# -- manifests: properties -------------------------------------------------------------------------
@settings(PROPERTY, max_examples=40)
@given(manifest=manifests())
@example(manifest=FIXED)
def test_valid_manifest_survives_json_round_trip(scratch, manifest):
    """A valid manifest parses, also after JSON and read_manifest, also embedded, and keeps every value."""
    parsed = parse_manifest(manifest)
    _assert_invariants(parsed)
    text = json.dumps(manifest, allow_nan=False)
    assert parse_manifest(loads_json(text)) == parsed
    assert _reads(scratch, text.encode()) == parsed
    assert _reads(scratch, b"\xef\xbb\xbf" + text.encode()) == parsed  # a BOM is documented as accepted
    assert (parsed.family, parsed.variant, parsed.default_graph) == \
           (manifest["family"], manifest["variant"], manifest["default_graph"])
    # Numbers compare by value (2 == 2.0): the parser's float conversion is checked by the invariants.
    # color_order is always written, "rgb" when the manifest had none.
    assert parsed.preprocess.to_dict() == {"color_order": "rgb", **manifest["preprocess"]}
    assert Preprocess.parse(parsed.preprocess.to_dict(), "pre") == parsed.preprocess
    defaults = {"heatmap": {"zero_channels": []}, "keypoints": {"score_threshold": 0.0}}
    assert parsed.postprocess.to_dict() == {**defaults[parsed.postprocess.kind], **manifest["postprocess"]}
    for index, (entry, source) in enumerate(zip(parsed.graphs, manifest["graphs"])):
        float_nodes = source.get("float_nodes", [])
        written = float_nodes or entry.precision == "int8"  # to_dict leaves out an empty list but for int8
        assert entry.to_dict() == {k: v for k, v in source.items() if k != "float_nodes"} | (
            {"float_nodes": float_nodes} if written else {})
        lone = parse_manifest(_embedded(manifest, index), embedded=True)
        _assert_invariants(lone, embedded=True)
        assert lone.graphs[0] == GraphEntry.parse(_embedded(manifest, index)["graph"], "graph", embedded=True)
        assert (lone.graphs[0].file, lone.graphs[0].inputs, lone.graphs[0].outputs) == \
               (entry.file, entry.inputs, entry.outputs)


_ODD_NUMBERS = st.sampled_from([0, -1, 1, 2, 3, 7, 2 ** 31, 2 ** 63, 2 ** 64, -2 ** 63, 10 ** 30, 10 ** 400,
                                -10 ** 400, 0.5, -0.0, 2.0, 1e-320, 1e308, -1e308, math.nan, math.inf, -math.inf])
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), _ODD_NUMBERS,
                     st.integers(1000, 100_000).map(lambda n: "x" * n))
json_values = st.recursive(
    _SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)
_AFFIXES = st.one_of(st.sampled_from(["\n", " ", "\x00", "/", "\u00e9"]), st.text(min_size=1, max_size=3))
_INFORMATIVE = ("arch", "checkpoint", "producer", "tiling")


def _nodes(tree: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every node of a JSON tree but the root, not inside the informative objects.

    Those are only checked to be objects (MANIFEST.md), so an edit inside them finds nothing; replacing
    one whole is still a mutation of the top level.
    """
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, child in items:
        yield path + (key,), child
        if not (path == () and key in _INFORMATIVE):
            yield from _nodes(child, path + (key,))


def _number_edits(value: int | float) -> list:
    """Near misses of a number: its sign, off by one, huge, of the other JSON number type, a string, a bool."""
    out = [-value, value + 1, value - 1, str(value), True]
    if isinstance(value, int):
        out += [value * 10 ** 400, float(value) if abs(value) < 2 ** 1000 else math.inf]
    else:
        out += [value * 1e300, int(value) if math.isfinite(value) else 0]
    return out


@st.composite
def edits(draw, value: Any) -> Any:
    """A plausible wrong edit of ``value``: a near miss of its own type rather than an arbitrary value."""
    if isinstance(value, str):
        affix = draw(_AFFIXES)
        return draw(st.sampled_from([value + affix, affix + value, value[:-1], value.upper(), ""]))
    if isinstance(value, bool):
        return draw(st.sampled_from([not value, int(value), str(value).lower()]))
    if isinstance(value, (int, float)):
        return draw(st.sampled_from(_number_edits(value)))
    if isinstance(value, list):
        return draw(st.sampled_from([value[:-1], value + value[-1:], value[::-1], [value], value * 2]))
    return {}  # an object emptied


@st.composite
def mutated_manifests(draw) -> tuple[dict[str, Any], bool]:
    """A valid manifest (or its embedded form) after 1..3 deletions, replacements or edits anywhere in it."""
    manifest = draw(manifests())
    embedded = draw(st.booleans())
    if embedded:
        manifest = _embedded(manifest, draw(st.integers(0, len(manifest["graphs"]) - 1)))
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(manifest))
        if not nodes:
            break
        path, value = draw(st.sampled_from(nodes))
        parent = manifest
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["delete", "replace", "edit"]))
        if action == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(json_values if action == "replace" else edits(value))
    return manifest, embedded


def _has_non_finite(tree: Any) -> bool:
    """Whether a JSON tree holds NaN or an infinity (iterative: the tree may be nested ~1000 deep)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            return True
        stack.extend(node.values() if isinstance(node, dict) else node if isinstance(node, list) else ())
    return False


@settings(PROPERTY, max_examples=100)
@given(case=mutated_manifests())
# Bugs this property found, pinned: an integer too large for a float64 raised OverflowError; a pattern
# field with a trailing newline was accepted (re's "$" matches before it).
@example(case=(_edited(("preprocess", "scale"), 10 ** 400), False))
@example(case=(_edited(("preprocess", "source_range"), [0, 10 ** 400]), False))
@example(case=(_edited(("graphs", 0, "sha256"), "ab" * 32 + "\n"), False))
@example(case=(_embedded(_edited(("family",), "fam\n")), True))
def test_mutated_manifest_parses_or_raises_model_load_error(scratch, case):
    """A mutated manifest parses (and then keeps the manifest's rules) or raises ModelLoadError, as dict or file."""
    manifest, embedded = case
    before = json.dumps(manifest)
    parsed = _parses(manifest, embedded=embedded)
    assert json.dumps(manifest) == before, "parse_manifest must not modify its input"
    if parsed is not None:
        _assert_invariants(parsed, embedded=embedded)
    if not embedded:
        # NaN and Infinity are not JSON: read_manifest refuses them wherever they are.
        from_file = _reads(scratch, before.encode())
        assert (from_file is not None) == (parsed is not None and not _has_non_finite(manifest))
        assert from_file is None or from_file == parsed


_OBJECT_PATHS = st.sampled_from([(), ("preprocess",), ("postprocess",), ("graphs", 0), ("graphs", 0, "inputs", 0),
                                 ("graphs", 0, "outputs", 0)])


@settings(PROPERTY, max_examples=30)
@given(manifest=manifests(), where=st.lists(st.tuples(_OBJECT_PATHS, st.text(max_size=6), json_values),
                                            min_size=1, max_size=3))
def test_unknown_fields_are_ignored(manifest, where):
    """Fields the schema does not name, with any value, in any object of a valid manifest change nothing."""
    expected = parse_manifest(manifest)
    changed = copy.deepcopy(manifest)
    for path, key, value in where:
        target = changed
        for step in path:
            target = target[step]
        target[f"x-{key}"] = value
    assert parse_manifest(changed) == expected


@settings(PROPERTY, max_examples=150)
@given(text=st.one_of(
    st.text(),
    st.text(alphabet='{}[]":,0123456789.eE+-truefalsnNIiy \n\\', max_size=60),
    json_values.map(json.dumps),
    st.integers(1, 100_000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 100_000).map(lambda n: '{"a":' * n + "1" + "}" * n),
))
@example(text="[" * 100_000)  # found: json's RecursionError escaped loads_json
def test_arbitrary_text_loads_or_raises_value_error(text):
    """loads_json on any text returns a value or raises ValueError (its documented error), never NaN/Infinity."""
    try:
        value = loads_json(text)
    except ValueError as exc:
        assert str(exc)
        return
    assert not _has_non_finite(value), "loads_json must refuse NaN and Infinity"
    parsed = _parses(value)
    if parsed is not None:
        _assert_invariants(parsed)


@settings(PROPERTY, max_examples=100)
@given(raw=st.one_of(
    st.binary(max_size=200),
    st.text().map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.integers(1, 100_000).map(lambda n: b"[" * n + b"]" * n),
    st.integers(1, 100_000).map(lambda n: b'{"preprocess":' * n + b"{}" + b"}" * n),
    manifests().map(lambda m: json.dumps(m).encode()).flatmap(
        lambda b: st.integers(0, len(b)).map(lambda cut: b[:cut])),
))
def test_arbitrary_manifest_file_reads_or_raises_model_load_error(scratch, raw):
    """Any bytes as manifest.json (binary, text, deep nesting, truncated JSON): a Manifest or ModelLoadError."""
    manifest = _reads(scratch, raw)
    if manifest is not None:
        _assert_invariants(manifest)
