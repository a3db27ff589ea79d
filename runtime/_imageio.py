"""Image I/O for the production format, torch-free (the on-device runtime uses it).

What is read
    * TIFF (``.tif``, ``.tiff``, via tifffile): float32 or float64 with values in
      the source range (0..255 by default, not 0..1), uint8 (taken as is) or
      uint16 whose values already lie in 0..255 (a full-range 16-bit image is
      refused: its scaling would be a guess). Stored CHW (channels first) or HWC
      (channels last).
    * PNG and JPEG (``.png``, ``.jpg``, ``.jpeg``, via Pillow): RGB or RGBA,
      uint8 -> float32.

Which channels
    ``accepted_channels`` says how many channels an image may have and
    ``channels`` which of them are returned, in order (a model family's
    manifest states both; extra channels, e.g. a production mask, are dropped
    and not checked). A TIFF or an array is never reordered: its channel i is
    channel i. A PNG/JPEG's colour planes become channels 0, 1, 2 in the
    :class:`ColorOrder` given (the manifest's ``preprocess.color_order``):

    * ``"rgb"`` (the default): channel 0 is the red plane, 1 green, 2 blue, as
      in an ordinary photo.
    * ``"bgr"``: channel 0 is the *blue* plane, 1 green, 2 red: the order
      OpenCV (``cv2.imwrite``) writes from a BGR array, whose plane 0 lands in
      the file's blue channel.

    A 4th plane (alpha) stays channel 3 in both. ``write_png`` takes the same
    order, so ``write_png(..., color_order=o)`` followed by
    ``read_image(..., color_order=o)`` returns the channels as written.

CHW or HWC
    A 3-D array is CHW when its first axis is 3 or 4 and its last axis is not,
    HWC in the mirror case. When both ends are 3 or 4 (e.g. a (3, 5, 4) array)
    the expected height and width decide if given; otherwise the layout is
    ambiguous and an :class:`InvalidInputError` is raised rather than guessed.

Errors
    Every problem with a file or an array raises :class:`InvalidInputError`
    with a message naming the file (or ``source``), the bad value and what was
    expected. A missing file raises :class:`ImageNotFoundError`, which is both
    an :class:`InvalidInputError` and a :class:`FileNotFoundError`, so callers
    may catch either.
"""

from __future__ import annotations

import enum
import io
import logging
import os
import secrets
import stat
import warnings
from pathlib import Path
from typing import BinaryIO, Callable

import numpy as np
import tifffile

from runtime._errors import InvalidInputError

__all__ = [
    "COLOR_ORDERS",
    "IMAGE_SUFFIXES",
    "atomic_write",
    "check_output_dir",
    "check_output_file",
    "ColorOrder",
    "ImageNotFoundError",
    "list_images",
    "read_image",
    "to_chw",
    "write_png",
    "write_tiff",
]

logger = logging.getLogger(__name__)

#: File extensions ``read_image`` accepts (compared case-insensitively).
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_TIFF_SUFFIXES = (".tif", ".tiff")
_CHANNEL_COUNTS = (3, 4)
_FIRST_THREE = (0, 1, 2)
_RANGE = (0.0, 255.0)
# Float files go through arithmetic in production; a rounding error of this
# size below 0 or above 255 is not a wrong scale.
_RANGE_TOLERANCE = 1e-3
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_SUPPORTED_DTYPES = "float32, float64, float16, uint8 or uint16"
_NON_RGB_COLOUR_MODES = ("CMYK", "YCbCr", "LAB", "HSV")
#: The most pixels (height x width) a file may declare. A few bytes of PNG or
#: JPEG header can declare gigapixels (a decompression bomb); the size is checked
#: before any pixel is decoded, so such a file costs nothing. 2**26 = 64 Mpx is
#: an 8192 x 8192 image, ~1 GiB as 4-channel float32, far above any production image.
MAX_IMAGE_PIXELS = 1 << 26


class ImageNotFoundError(InvalidInputError, FileNotFoundError):
    """An image path does not exist (catchable as either parent class)."""


class ColorOrder(str, enum.Enum):
    """How a PNG/JPEG's colour planes map to channels 0, 1, 2 (TIFF files and arrays are never reordered).

    A ``str`` enum: ``ColorOrder.BGR == "bgr"``, and its ``value`` is what a
    manifest's ``preprocess.color_order`` holds.

    Example:
        >>> ColorOrder.parse("bgr").planes(4)
        (2, 1, 0, 3)
    """

    #: Channel 0 is the red plane, 1 green, 2 blue (an ordinary photo; Pillow's order).
    RGB = "rgb"
    #: Channel 0 is the blue plane, 1 green, 2 red (what OpenCV writes from a BGR array).
    BGR = "bgr"

    @classmethod
    def parse(cls, value: ColorOrder | str, *, what: str = "color_order") -> ColorOrder:
        """``value`` as a :class:`ColorOrder`.

        Args:
            value: a member or its exact (lower-case) value, ``"rgb"`` or ``"bgr"``.
            what: what the value is, used in the message.

        Raises:
            InvalidInputError: for any other value, naming the allowed ones.
        """
        if isinstance(value, cls):
            return value
        if isinstance(value, str) and value in COLOR_ORDERS:
            return cls(value)
        raise InvalidInputError(f"{what} is {value!r}; expected one of {list(COLOR_ORDERS)} "
                                f"(bgr: channel 0 is the file's blue plane, as OpenCV writes it)")

    def planes(self, count: int) -> tuple[int, ...]:
        """The file plane behind each of ``count`` channels: the first three reversed for ``BGR``.

        An image with fewer than 3 planes (grey, grey + alpha) has no colour order and is never reordered.
        """
        if self is ColorOrder.RGB or count < 3:
            return tuple(range(count))
        return (2, 1, 0, *range(3, count))


#: The values ``preprocess.color_order`` may hold (the manifest reader and libruntime accept exactly these).
COLOR_ORDERS: tuple[str, ...] = tuple(order.value for order in ColorOrder)


def read_image(path: str | os.PathLike[str], *, expected_hw: tuple[int, int] | None = None,
               accepted_channels: tuple[int, ...] = _CHANNEL_COUNTS, channels: tuple[int, ...] = _FIRST_THREE,
               value_range: tuple[float, float] = _RANGE, what: str | None = None, min_size: int = 1,
               color_order: ColorOrder | str = ColorOrder.RGB) -> np.ndarray:
    """Read an image file as a (len(channels), H, W) float32 array in ``value_range``.

    Args:
        path: a ``.tif``/``.tiff``, ``.png``, ``.jpg`` or ``.jpeg`` file.
        expected_hw: (height, width) the image must have; ``None`` accepts any size.
        accepted_channels: channel counts the file may have.
        channels: the channel indices returned, in order (the others are dropped unchecked).
        value_range: the range the returned channels' values must lie in.
        what: what the image size belongs to (e.g. a model variant), only used in messages.
        min_size: the fewest pixels the image may have on each side.
        color_order: which PNG/JPEG colour plane is channel 0 (``"rgb"``: red, ``"bgr"``:
            blue, as OpenCV writes); ignored for a TIFF. See the module notes.

    Returns:
        A new C-contiguous (len(channels), H, W) float32 array.

    Raises:
        ImageNotFoundError: the file does not exist (an ``InvalidInputError``
            and a ``FileNotFoundError``).
        InvalidInputError: unsupported extension, unreadable or corrupt file,
            wrong channel count, layout, size, dtype or value range, or a
            ``color_order`` other than ``"rgb"`` and ``"bgr"``.

    Example:
        >>> image = read_image("image_000.tiff", expected_hw=(256, 256))
        >>> image.shape, image.dtype
        ((3, 256, 256), dtype('float32'))
        >>> target = read_image("opencv_written.png", color_order="bgr")[0]  # the blue plane
    """
    order = ColorOrder.parse(color_order)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InvalidInputError(f"unsupported image extension {path.suffix or '(none)'!r} for {path}; "
                                f"expected one of {', '.join(IMAGE_SUFFIXES)}")
    with _open_regular(path) as handle:
        array = _read_tiff(path, handle) if suffix in _TIFF_SUFFIXES else _read_pillow(path, handle)
    if suffix not in _TIFF_SUFFIXES:
        channels = _file_planes(array, channels, order)
    return to_chw(array, expected_hw=expected_hw, accepted_channels=accepted_channels, channels=channels,
                  value_range=value_range, source=str(path), what=what, min_size=min_size)


def _file_planes(array: np.ndarray, channels: tuple[int, ...], order: ColorOrder) -> tuple[int, ...]:
    """The planes of a decoded PNG/JPEG (always HWC) behind the requested ``channels``, in ``order``.

    Mapping the indices (not the pixels) reorders without a copy; an index past the
    planes is left as is, so ``to_chw`` names it in its message.
    """
    if array.ndim != 3:
        return tuple(channels)  # a grey image: to_chw refuses it with its own message
    planes = order.planes(array.shape[-1])
    return tuple(planes[c] if 0 <= c < len(planes) else c for c in channels)


def to_chw(array: np.ndarray, *, expected_hw: tuple[int, int] | None = None,
           accepted_channels: tuple[int, ...] = _CHANNEL_COUNTS, channels: tuple[int, ...] = _FIRST_THREE,
           value_range: tuple[float, float] = _RANGE, source: str = "array", what: str | None = None,
           min_size: int = 1) -> np.ndarray:
    """Validate an in-memory image and return the chosen channels as (C, H, W) float32.

    The same rules as :func:`read_image` apply: a channel count in
    ``accepted_channels``, CHW or HWC, dtype float32, float64, float16, uint8 or
    uint16 (integers taken as is, uint16 only with values up to 255), finite
    values in ``value_range``, at most :data:`MAX_IMAGE_PIXELS` pixels (checked on
    the shape, before anything is copied). When that range reaches above 1, a float image
    whose values all lie in 0..1 and are not all integers is refused: it was
    almost surely scaled to 0..1 already.

    Args:
        array: the image, e.g. (4, H, W) float32 or (H, W, 3) uint8.
        expected_hw: (height, width) the image must have; ``None`` accepts any size.
        accepted_channels: channel counts the image may have.
        channels: the channel indices returned, in order.
        value_range: the range the returned channels' values must lie in.
        source: what the array is (a file name, ``"array"``), used in messages.
        what: what the image size belongs to, only used in size error messages.
        min_size: the fewest pixels the image may have on each side (a letterboxing model's
            ``preprocess.min_size``).

    Returns:
        A new C-contiguous (len(channels), H, W) float32 array (never a view of ``array``).

    Raises:
        InvalidInputError: naming the problem and the expectation, e.g.
            ``"expected 3 or 4 channels, got 5 (shape (5, 64, 64))"``.

    Example:
        >>> to_chw(np.zeros((64, 32, 4), np.float32)).shape
        (3, 64, 32)
    """
    array = np.asarray(array)
    _check_dtype(array, source)
    _check_min_size(array.shape, tuple(accepted_channels), min_size, source, what)
    channels_first = _is_channels_first(array.shape, expected_hw, source, tuple(accepted_channels))
    count = array.shape[0] if channels_first else array.shape[-1]
    index = list(channels)
    if not index or min(index) < 0:
        raise InvalidInputError(f"channels must be one or more indices >= 0, got {list(channels)}")
    if max(index) >= count:
        raise InvalidInputError(f"{source} has {count} channels; channel {max(index)} is needed")
    # The size is checked on the shape, before array[index] copies: a wrong-sized array (or a
    # zero-cost np.broadcast_to view of billions of pixels) must fail at once, not after a copy
    # that can exhaust the memory.
    hw = array.shape[1:] if channels_first else array.shape[:2]
    _check_size(hw, array.shape, expected_hw, source, what)
    if hw[0] * hw[1] > MAX_IMAGE_PIXELS:
        raise InvalidInputError(f"{source} has {hw[0]}x{hw[1]} pixels (shape {array.shape}); at most "
                                f"{MAX_IMAGE_PIXELS} (runtime._imageio.MAX_IMAGE_PIXELS), as for a file")
    chw = array[index] if channels_first else np.moveaxis(array[..., index], -1, 0)
    _check_values(chw, source, value_range)
    # np.clip always allocates, so the result never aliases the caller's array;
    # it also removes the tolerated rounding error just outside the range.
    return np.ascontiguousarray(np.clip(chw, *value_range, dtype=np.float32))


def write_tiff(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a float32 TIFF atomically (nothing half-written is left on error).

    A 3-D array is written as CHW (e.g. a (4, H, W) image, one page per
    channel, as production does); a 2-D array (a mask or heatmap) as one page.

    Args:
        path: destination file; its folder must exist.
        array: (C, H, W) or (H, W) numeric array; converted to float32.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: for an array that is not 2-D or 3-D or not numeric.

    Example:
        >>> write_tiff("heatmap.tiff", np.zeros((64, 32), np.float32))
        PosixPath('heatmap.tiff')
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise InvalidInputError(f"write_tiff expects a (C, H, W) or (H, W) array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError(f"write_tiff expects a numeric array, got dtype {array.dtype}")
    data = np.ascontiguousarray(array, dtype=np.float32)
    # minisblack stops tifffile from reading a (H, W, 3)-like shape as RGB.
    return atomic_write(Path(path), lambda tmp: tifffile.imwrite(tmp, data, photometric="minisblack"))


def write_png(path: str | os.PathLike[str], array: np.ndarray, *,
              color_order: ColorOrder | str = ColorOrder.RGB) -> Path:
    """Write a uint8 image as PNG atomically, its channels to the colour planes ``color_order`` says.

    ``"rgb"`` (the default, for pictures): channel 0 to the red plane. ``"bgr"``:
    channel 0 to the blue plane, as OpenCV writes a BGR array. A 4th channel is
    alpha and a 2-D array grey in both. An image written here reads back with
    :func:`read_image` and the same ``color_order`` in the same channel order
    (see the module notes).

    Args:
        path: destination file; its folder must exist.
        array: uint8 (H, W), (H, W, C) or (C, H, W) with C = 3 or 4 (RGBA).
        color_order: which colour plane channel 0 goes to (``"rgb"``: red, ``"bgr"``: blue).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: for a dtype other than uint8, an unusable shape, or a
            ``color_order`` other than ``"rgb"`` and ``"bgr"``.

    Example:
        >>> write_png("overlay.png", np.zeros((64, 32, 3), np.uint8))
        PosixPath('overlay.png')
        >>> write_png("sample.png", np.zeros((3, 64, 32), np.uint8), color_order="bgr")  # channel 0: blue
        PosixPath('sample.png')
    """
    from PIL import Image

    order = ColorOrder.parse(color_order)
    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise InvalidInputError(f"write_png expects uint8, got dtype {array.dtype}; "
                                f"convert with np.clip(a, 0, 255).round().astype(np.uint8)")
    if array.ndim == 3:
        if _is_channels_first(array.shape, None, "write_png array"):
            array = np.moveaxis(array, 0, -1)
    elif array.ndim != 2:
        raise InvalidInputError(f"write_png expects (H, W), (H, W, C) or (C, H, W), got shape {array.shape}")
    if array.ndim == 3 and order is ColorOrder.BGR:
        # planes(c) is its own inverse (a swap of the first and third), so it also maps channels to planes.
        array = array[..., list(order.planes(array.shape[-1]))]
    image = Image.fromarray(np.ascontiguousarray(array))
    return atomic_write(Path(path), lambda tmp: image.save(tmp, format="PNG"))


def list_images(directory: str | os.PathLike[str]) -> list[Path]:
    """The image files directly inside ``directory``, sorted by name.

    Hidden files are skipped: they are temporary files of an interrupted write
    or macOS ``._name.tiff`` resource forks, never images.

    Args:
        directory: the folder to list (not recursive).

    Returns:
        Paths whose extension is in :data:`IMAGE_SUFFIXES` (any case).

    Raises:
        InvalidInputError: when ``directory`` is not an existing folder.

    Example:
        >>> list_images("dataset/train/good")[:1]
        [PosixPath('dataset/train/good/000.tiff')]
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InvalidInputError(f"{directory} is not a directory; expected a folder of images")
    return sorted(p for p in directory.iterdir()
                  if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file())


def _open_regular(path: Path) -> BinaryIO:
    """``path`` opened for reading, refused unless it is a regular file.

    The check is made on the open descriptor, not the path: a path checked first and
    opened by the decoder afterwards could be swapped for a FIFO in between, and the
    decoder's open would then block forever. ``O_NONBLOCK`` keeps this open itself from
    blocking on a FIFO (it does nothing on a regular file).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ImageNotFoundError(f"image file not found: {path}") from None
    except (OSError, ValueError) as exc:  # a loop of links, a name too long, an embedded NUL...
        raise InvalidInputError(f"cannot open image {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InvalidInputError(f"{path} is not a file; expected an image file")
        raw = io.FileIO(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    raw.name = str(path)  # decoders' messages then name the file, not the descriptor number
    return io.BufferedReader(raw)


def _read_tiff(path: Path, handle: BinaryIO) -> np.ndarray:
    try:
        with tifffile.TiffFile(handle, name=path.name) as tiff:
            _check_pixel_count(path, _tiff_pixels(tiff.series[0].shape))
            return tiff.asarray()
    except InvalidInputError:
        raise
    # A corrupt file fails in many ways (struct.error, IndexError, TiffFileError,
    # MemoryError on an absurd size...): every one is a bad input, not an SDK bug.
    except Exception as exc:
        raise _corrupt(path, exc, "TIFF") from exc


def _tiff_pixels(shape: tuple[int, ...]) -> int:
    """Pixels of a TIFF series: its values divided by the channel axis (the shorter end axis of a 3-D shape)."""
    values = int(np.prod(shape, dtype=np.int64)) if shape else 0
    if len(shape) == 3 and min(shape[0], shape[-1]) > 0:
        return values // min(shape[0], shape[-1])
    return values


def _read_pillow(path: Path, handle: BinaryIO) -> np.ndarray:
    from PIL import Image

    try:
        # Pillow's own bomb check warns, raises (DecompressionBombError, not an
        # OSError in every version) or does nothing depending on a process-wide
        # setting; ours below is the one that decides, so its warning is silenced.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(handle) as image:
                _check_pixel_count(path, image.width * image.height)
                if image.mode == "P":  # palette files carry RGB(A) behind an index
                    image = image.convert("RGBA" if "transparency" in image.info else "RGB")
                elif image.mode in _NON_RGB_COLOUR_MODES:  # e.g. a CMYK JPEG: 4 bands, but not a mask
                    image = image.convert("RGB")
                image.load()  # decoding is lazy: truncation surfaces only here
                return np.asarray(image)
    except InvalidInputError:
        raise
    except Image.DecompressionBombError as exc:  # Pillow's check runs inside open(), before ours
        raise InvalidInputError(f"image {path} is too large ({exc}); at most {MAX_IMAGE_PIXELS} pixels "
                                f"(runtime._imageio.MAX_IMAGE_PIXELS) are read (a corrupt file or a "
                                f"decompression bomb)") from exc
    # Decoders fail in many ways (UnidentifiedImageError, OSError, SyntaxError,
    # struct.error, EOFError, DecompressionBombError, MemoryError...): each is a
    # bad file, reported as one, so a batch goes on with the next image.
    except Exception as exc:
        raise _corrupt(path, exc, path.suffix[1:].upper()) from exc


def _check_pixel_count(path: Path, pixels: int) -> None:
    if pixels > MAX_IMAGE_PIXELS:
        raise InvalidInputError(f"image {path} declares {pixels} pixels; at most {MAX_IMAGE_PIXELS} "
                                f"(runtime._imageio.MAX_IMAGE_PIXELS) are read (a corrupt file or a "
                                f"decompression bomb)")


def _corrupt(path: Path, exc: BaseException, kind: str) -> InvalidInputError:
    what = "TIFF" if kind == "TIFF" else "image"
    return InvalidInputError(f"cannot read {what} {path}: {type(exc).__name__}: {exc}; "
                             f"the file is corrupt, truncated or not a {kind}")


def _check_dtype(array: np.ndarray, source: str) -> None:
    if array.dtype.type in _FLOAT_DTYPES or array.dtype in (np.uint8, np.uint16):
        return
    raise InvalidInputError(f"unsupported dtype {array.dtype} for {source}; expected {_SUPPORTED_DTYPES} "
                            f"with values in 0..255 (convert with array.astype(np.float32))")


def _is_channels_first(shape: tuple[int, ...], expected_hw: tuple[int, int] | None, source: str,
                       counts: tuple[int, ...] = _CHANNEL_COUNTS) -> bool:
    """The one place that decides whether a 3-D image is CHW (True) or HWC (False)."""
    allowed = _or_list(counts)
    if len(shape) != 3:
        raise InvalidInputError(f"expected a 3-D image with {allowed} channels (CHW or HWC), got a {len(shape)}-D "
                                f"array of shape {shape} in {source}")
    first_ok, last_ok = shape[0] in counts, shape[-1] in counts
    if first_ok and last_ok and expected_hw is not None:
        first_ok = tuple(shape[1:]) == tuple(expected_hw)
        last_ok = tuple(shape[:2]) == tuple(expected_hw)
    if first_ok != last_ok:
        return first_ok
    if first_ok:
        raise InvalidInputError(f"ambiguous layout for shape {shape} in {source}: both the first and the last "
                                f"axis could hold the {allowed} channels; pass expected_hw or transpose to CHW")
    # Report the smaller end axis: images are much taller and wider than deep.
    channels = min(shape[0], shape[-1])
    raise InvalidInputError(f"expected {allowed} channels, got {channels} (shape {shape}) in {source}; "
                            f"channels must be the first (CHW) or last (HWC) axis")


def _or_list(values: tuple[int, ...]) -> str:
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


def _check_size(hw: tuple[int, ...], shape: tuple[int, ...], expected_hw: tuple[int, int] | None,
                source: str, what: str | None) -> None:
    if expected_hw is None or tuple(hw) == tuple(expected_hw):
        return
    for_what = f" for {what}" if what else ""
    raise InvalidInputError(f"expected {expected_hw[0]}x{expected_hw[1]} (height x width){for_what}, "
                            f"got {hw[0]}x{hw[1]} (shape {shape}) in {source}")


def _check_min_size(shape: tuple[int, ...], counts: tuple[int, ...], min_size: int, source: str,
                    what: str | None) -> None:
    """Refuse an image with fewer than ``min_size`` pixels on a side, whichever layout (CHW or HWC) it is read in.

    Checked before the layout is decided: a tiny image such as (4, 4, 3) has channel-like sizes at
    both ends, and "ambiguous layout" would send its owner after the wrong problem.
    """
    if min_size <= 1 or len(shape) != 3:
        return  # a 2-D array or a wrong channel count gets its own message
    readings = {layout: hw for layout, hw, fits in (("CHW", shape[1:], shape[0] in counts),
                                                    ("HWC", shape[:2], shape[-1] in counts)) if fits}
    if readings and all(min(hw) < min_size for hw in readings.values()):
        sizes = " or ".join(f"{h}x{w}" + (f" as {layout}" if len(readings) > 1 else "")
                            for layout, (h, w) in readings.items())
        for_what = f" {what}" if what else ""
        raise InvalidInputError(f"image too small: {sizes} (height x width, shape {shape}) in {source}; "
                                f"the{for_what} model needs at least {min_size} pixels on each side")


def _check_values(chw: np.ndarray, source: str, value_range: tuple[float, float] = _RANGE) -> None:
    low_ok, high_ok = value_range
    if chw.size == 0:
        raise InvalidInputError(f"empty image (shape {chw.shape}) in {source}")
    if chw.dtype == np.uint8 and value_range == _RANGE:
        return  # every uint8 value is a valid 0..255 value
    if chw.dtype.type in _FLOAT_DTYPES:
        finite = np.isfinite(chw)
        if not finite.all():
            bad = chw.size - int(np.count_nonzero(finite))
            raise InvalidInputError(f"{source} contains {bad} NaN or infinite value(s) out of {chw.size}; "
                                    f"expected finite values in {low_ok:g}..{high_ok:g}")
    low, high = float(chw.min()), float(chw.max())
    if chw.dtype == np.uint16 and high > 255:
        raise InvalidInputError(f"uint16 values up to {high:g} in {source}; expected 0..255 "
                                f"(a full-range 16-bit image must be rescaled to 0..255 first, e.g. a / 257)")
    if low < low_ok - _RANGE_TOLERANCE or high > high_ok + _RANGE_TOLERANCE:
        raise InvalidInputError(f"values out of range in {source}: min {low:g}, max {high:g}; "
                                f"expected {low_ok:g}..{high_ok:g}")
    if high_ok > 1.0 and high <= 1.0 and not _all_integers(chw):
        raise InvalidInputError(f"values look like 0..1 (min {low:g}, max {high:g}) in {source}; expected "
                                f"{low_ok:g}..{high_ok:g} (images are float32 in {low_ok:g}..{high_ok:g}: "
                                f"multiply by {high_ok:g})")


def _all_integers(array: np.ndarray) -> bool:
    return bool(np.all(array == np.round(array)))


def check_output_dir(directory: str | os.PathLike[str], *, create: bool = True) -> Path:
    """Make sure ``directory`` is (or, with ``create``, becomes) a folder this process can write files in.

    Command-line tools call it before any work, so that a bad ``--out`` fails in a
    second with a message instead of after running a model over every image. The
    check writes and removes a probe file: permission bits alone do not tell (root,
    read-only mounts, ACLs).

    Raises:
        InvalidInputError: naming the folder and why it cannot be written to.
    """
    directory = Path(directory)
    if create:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass  # a file of that name: reported just below
        except OSError as exc:
            raise InvalidInputError(f"cannot create the output folder {directory}: {exc.strerror or exc}") from exc
    if not directory.is_dir():
        state = "does not exist" if not directory.exists() else "is not a folder"
        raise InvalidInputError(f"output folder {directory} {state}; expected a writable folder")
    probe = directory / f".write-test.{secrets.token_hex(6)}.tmp"
    try:
        probe.open("xb").close()
        probe.unlink()
    except OSError as exc:
        raise InvalidInputError(f"output folder {directory} is not writable: {exc.strerror or exc}") from exc
    return directory


def check_output_file(path: str | os.PathLike[str], flag: str) -> Path:
    """Make sure ``path`` names a file in an existing folder this process can write in (before any work).

    Args:
        path: the file a command line asks for.
        flag: the option that named it, for messages (e.g. ``--json``).

    Raises:
        InvalidInputError: ``path`` is a folder, or its folder is missing or not writable.

    Example:
        >>> check_output_file("report/rows.json", "--json")
        PosixPath('report/rows.json')
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInputError(f"{flag} {path} is a folder; expected a file path such as {path / 'out.json'}")
    check_output_dir(path.parent, create=False)
    return path


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Create or replace ``path`` atomically: ``write(tmp)`` fills a temporary file that is then renamed.

    Readers see the old file or the whole new one, never a half-written one; on
    any error (or interrupt) the temporary file is removed and ``path`` is left
    as it was. The one helper the SDK writes files with (images, checkpoints,
    manifests, reports).

    Args:
        path: the destination; its folder must exist.
        write: called with the temporary file's name; it must create that file.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> atomic_write("notes.txt", lambda tmp: Path(tmp).write_text("done"))
        PosixPath('notes.txt')
    """
    path = Path(path)
    # The temporary file sits in the destination folder so that os.replace is a
    # rename on one file system. The writer creates the file itself (not mkstemp),
    # so it gets the usual umask permissions rather than mkstemp's owner-only 0600.
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.debug("wrote %s", path)
    return path
