"""Image I/O for the production format, torch-free (the on-device runtime uses it).

What is read
    * TIFF (``.tif``, ``.tiff``, via tifffile): float32 or float64 with values in
      0..255 (not 0..1), uint8 (taken as is) or uint16 whose values already lie in
      0..255 (a full-range 16-bit image is refused: its scaling would be a guess).
      3 or 4 channels, stored CHW (channels first, the production layout) or HWC
      (channels last). The 4th channel is the production mask and is dropped.
    * PNG and JPEG (``.png``, ``.jpg``, ``.jpeg``, via Pillow): 3-channel RGB
      (an RGBA file's alpha is dropped like the mask channel), uint8 -> float32.

Channel order
    The strip channels are 0 = Target, 1 = Ref1, 2 = Ref2 (named B, G, R in the
    production TIFF). A PNG/JPEG maps *by index*, with no BGR swap: its R plane
    is Target, G is Ref1 and B is Ref2, so that ``write_png`` followed by
    ``read_image`` returns the strip's own order, and an RGB display shows a
    Target-only defect in red. Note that this is the reverse of OpenCV's
    convention: a PNG written by ``cv2.imwrite`` from an HWC strip stores
    Target in its blue plane and must be reversed (``image[::-1]``) after
    reading.

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

import logging
import os
import secrets
from pathlib import Path
from typing import Callable

import numpy as np
import tifffile

from runtime._errors import InvalidInputError

__all__ = [
    "IMAGE_SUFFIXES",
    "ImageNotFoundError",
    "list_images",
    "read_image",
    "to_chw3",
    "write_png",
    "write_tiff",
]

logger = logging.getLogger(__name__)

#: File extensions ``read_image`` accepts (compared case-insensitively).
IMAGE_SUFFIXES: tuple[str, ...] = (".tif", ".tiff", ".png", ".jpg", ".jpeg")

_TIFF_SUFFIXES = (".tif", ".tiff")
_CHANNEL_COUNTS = (3, 4)
# Float files go through arithmetic in production; a rounding error of this
# size below 0 or above 255 is not a wrong scale.
_RANGE_TOLERANCE = 1e-3
_FLOAT_DTYPES = (np.float16, np.float32, np.float64)
_SUPPORTED_DTYPES = "float32, float64, float16, uint8 or uint16"
_NON_RGB_COLOUR_MODES = ("CMYK", "YCbCr", "LAB", "HSV")


class ImageNotFoundError(InvalidInputError, FileNotFoundError):
    """An image path does not exist (catchable as either parent class)."""


def read_image(path: str | os.PathLike[str], *, expected_hw: tuple[int, int] | None = None,
               image_type: str | None = None) -> np.ndarray:
    """Read a Target/Ref1/Ref2 image file as a (3, H, W) float32 array in 0..255.

    Args:
        path: a ``.tif``/``.tiff``, ``.png``, ``.jpg`` or ``.jpeg`` file.
        expected_hw: (height, width) the image must have; ``None`` accepts any size.
        image_type: name of the image type (e.g. ``"strip"``), only used to make
            size errors clearer.

    Returns:
        A new C-contiguous (3, H, W) float32 array, channels Target, Ref1, Ref2,
        values in 0..255. A 4th (mask) channel in the file is dropped.

    Raises:
        ImageNotFoundError: the file does not exist (an ``InvalidInputError``
            and a ``FileNotFoundError``).
        InvalidInputError: unsupported extension, unreadable or corrupt file,
            wrong channel count, layout, size, dtype or value range.

    Example:
        >>> image = read_image("strip_000.tiff", expected_hw=(976, 176))
        >>> image.shape, image.dtype
        ((3, 976, 176), dtype('float32'))
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise InvalidInputError(f"unsupported image extension {path.suffix or '(none)'!r} for {path}; "
                                f"expected one of {', '.join(IMAGE_SUFFIXES)}")
    if not path.exists():
        raise ImageNotFoundError(f"image file not found: {path}")
    if not path.is_file():
        raise InvalidInputError(f"{path} is not a file; expected an image file")
    array = _read_tiff(path) if suffix in _TIFF_SUFFIXES else _read_pillow(path)
    return to_chw3(array, expected_hw=expected_hw, source=str(path), image_type=image_type)


def to_chw3(array: np.ndarray, *, expected_hw: tuple[int, int] | None = None, source: str = "array",
            image_type: str | None = None) -> np.ndarray:
    """Validate an in-memory image and return it as (3, H, W) float32 in 0..255.

    The same rules as :func:`read_image` apply: 3 or 4 channels (the 4th, the
    production mask, is dropped and not checked), CHW or HWC, dtype float32,
    float64, float16, uint8 or uint16 (integers taken as is, uint16 only with
    values up to 255), finite values in 0..255. A float image whose values all
    lie in 0..1 and are not all integers is refused: it was almost surely
    scaled to 0..1, and the network expects 0..255.

    Args:
        array: the image, e.g. (4, 976, 176) float32 or (976, 176, 3) uint8.
        expected_hw: (height, width) the image must have; ``None`` accepts any size.
        source: what the array is (a file name, ``"array"``), used in messages.
        image_type: name of the image type, only used in size error messages.

    Returns:
        A new C-contiguous (3, H, W) float32 array (never a view of ``array``).

    Raises:
        InvalidInputError: naming the problem and the expectation, e.g.
            ``"expected 3 or 4 channels, got 5 (shape (5, 976, 176))"``.

    Example:
        >>> to_chw3(np.zeros((976, 176, 4), np.float32)).shape
        (3, 976, 176)
    """
    array = np.asarray(array)
    _check_dtype(array, source)
    channels_first = _is_channels_first(array.shape, expected_hw, source)
    chw = array[:3] if channels_first else np.moveaxis(array[..., :3], -1, 0)
    _check_size(chw.shape[1:], array.shape, expected_hw, source, image_type)
    _check_values(chw, source)
    # np.clip always allocates, so the result never aliases the caller's array;
    # it also removes the tolerated rounding error just outside 0..255.
    return np.ascontiguousarray(np.clip(chw, 0.0, 255.0, dtype=np.float32))


def write_tiff(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a float32 TIFF atomically (nothing half-written is left on error).

    A 3-D array is written as CHW (e.g. a (4, 976, 176) strip, one page per
    channel, as production does); a 2-D array (a mask or heatmap) as one page.

    Args:
        path: destination file; its folder must exist.
        array: (C, H, W) or (H, W) numeric array; converted to float32.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: for an array that is not 2-D or 3-D or not numeric.

    Example:
        >>> write_tiff("heatmap.tiff", np.zeros((976, 176), np.float32))
        PosixPath('heatmap.tiff')
    """
    array = np.asarray(array)
    if array.ndim not in (2, 3):
        raise InvalidInputError(f"write_tiff expects a (C, H, W) or (H, W) array, got shape {array.shape}")
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise InvalidInputError(f"write_tiff expects a numeric array, got dtype {array.dtype}")
    data = np.ascontiguousarray(array, dtype=np.float32)
    # minisblack stops tifffile from reading a (H, W, 3)-like shape as RGB.
    return _write_atomically(Path(path), lambda tmp: tifffile.imwrite(tmp, data, photometric="minisblack"))


def write_png(path: str | os.PathLike[str], array: np.ndarray) -> Path:
    """Write a uint8 image as PNG atomically, channel i of the image to PNG plane i.

    A strip written here reads back with :func:`read_image` in the same channel
    order (Target in the R plane; see the module notes on channel order).

    Args:
        path: destination file; its folder must exist.
        array: uint8 (H, W), (H, W, C) or (C, H, W) with C = 3 or 4 (RGBA).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        InvalidInputError: for a dtype other than uint8 or an unusable shape.

    Example:
        >>> write_png("overlay.png", np.zeros((976, 176, 3), np.uint8))
        PosixPath('overlay.png')
    """
    from PIL import Image

    array = np.asarray(array)
    if array.dtype != np.uint8:
        raise InvalidInputError(f"write_png expects uint8, got dtype {array.dtype}; "
                                f"convert with np.clip(a, 0, 255).round().astype(np.uint8)")
    if array.ndim == 3:
        if _is_channels_first(array.shape, None, "write_png array"):
            array = np.moveaxis(array, 0, -1)
    elif array.ndim != 2:
        raise InvalidInputError(f"write_png expects (H, W), (H, W, C) or (C, H, W), got shape {array.shape}")
    image = Image.fromarray(np.ascontiguousarray(array))
    return _write_atomically(Path(path), lambda tmp: image.save(tmp, format="PNG"))


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


def _read_tiff(path: Path) -> np.ndarray:
    try:
        return tifffile.imread(path)
    except Exception as exc:  # a corrupt file fails in many ways (struct, index, TiffFileError...)
        raise InvalidInputError(f"cannot read TIFF {path}: {type(exc).__name__}: {exc}; "
                                f"the file is corrupt, truncated or not a TIFF") from exc


def _read_pillow(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            if image.mode == "P":  # palette files carry RGB(A) behind an index
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode in _NON_RGB_COLOUR_MODES:  # e.g. a CMYK JPEG: 4 bands, but not a mask
                image = image.convert("RGB")
            image.load()  # decoding is lazy: truncation surfaces only here
            return np.asarray(image)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise InvalidInputError(f"cannot read image {path}: {type(exc).__name__}: {exc}; "
                                f"the file is corrupt, truncated or not a {path.suffix[1:].upper()}") from exc


def _check_dtype(array: np.ndarray, source: str) -> None:
    if array.dtype.type in _FLOAT_DTYPES or array.dtype in (np.uint8, np.uint16):
        return
    raise InvalidInputError(f"unsupported dtype {array.dtype} for {source}; expected {_SUPPORTED_DTYPES} "
                            f"with values in 0..255 (convert with array.astype(np.float32))")


def _is_channels_first(shape: tuple[int, ...], expected_hw: tuple[int, int] | None, source: str) -> bool:
    if len(shape) != 3:
        raise InvalidInputError(f"expected a 3-D image with 3 or 4 channels (CHW or HWC), got a {len(shape)}-D "
                                f"array of shape {shape} in {source}; Target, Ref1 and Ref2 are all needed")
    first_ok, last_ok = shape[0] in _CHANNEL_COUNTS, shape[-1] in _CHANNEL_COUNTS
    if first_ok and last_ok and expected_hw is not None:
        first_ok = tuple(shape[1:]) == tuple(expected_hw)
        last_ok = tuple(shape[:2]) == tuple(expected_hw)
    if first_ok != last_ok:
        return first_ok
    if first_ok:
        raise InvalidInputError(f"ambiguous layout for shape {shape} in {source}: both the first and the last "
                                f"axis could hold the 3 or 4 channels; pass expected_hw or transpose to CHW")
    # Report the smaller end axis: production images are much taller and wider than deep.
    channels = min(shape[0], shape[-1])
    raise InvalidInputError(f"expected 3 or 4 channels, got {channels} (shape {shape}) in {source}; "
                            f"channels must be the first (CHW) or last (HWC) axis")


def _check_size(hw: tuple[int, ...], shape: tuple[int, ...], expected_hw: tuple[int, int] | None,
                source: str, image_type: str | None) -> None:
    if expected_hw is None or tuple(hw) == tuple(expected_hw):
        return
    for_type = f" for image type {image_type}" if image_type else ""
    raise InvalidInputError(f"expected {expected_hw[0]}x{expected_hw[1]} (height x width){for_type}, "
                            f"got {hw[0]}x{hw[1]} (shape {shape}) in {source}")


def _check_values(chw: np.ndarray, source: str) -> None:
    if chw.size == 0:
        raise InvalidInputError(f"empty image (shape {chw.shape}) in {source}")
    if chw.dtype == np.uint8:
        return  # every uint8 value is a valid 0..255 value
    if chw.dtype.type in _FLOAT_DTYPES:
        finite = np.isfinite(chw)
        if not finite.all():
            bad = chw.size - int(np.count_nonzero(finite))
            raise InvalidInputError(f"{source} contains {bad} NaN or infinite value(s) out of {chw.size}; "
                                    f"expected finite values in 0..255")
    low, high = float(chw.min()), float(chw.max())
    if chw.dtype == np.uint16 and high > 255:
        raise InvalidInputError(f"uint16 values up to {high:g} in {source}; expected 0..255 "
                                f"(a full-range 16-bit image must be rescaled to 0..255 first, e.g. a / 257)")
    if low < -_RANGE_TOLERANCE or high > 255 + _RANGE_TOLERANCE:
        raise InvalidInputError(f"values out of range in {source}: min {low:g}, max {high:g}; expected 0..255")
    if high <= 1.0 and not _all_integers(chw):
        raise InvalidInputError(f"values look like 0..1 (min {low:g}, max {high:g}) in {source}; expected 0..255 "
                                f"(production images are float32 in 0..255: multiply by 255)")


def _all_integers(array: np.ndarray) -> bool:
    return bool(np.all(array == np.round(array)))


def _write_atomically(path: Path, write: Callable[[str], object]) -> Path:
    # The temporary file sits in the destination folder so that os.replace is a
    # rename on one file system: readers see the old file or the whole new one.
    # The writer creates the file itself (not mkstemp), so it gets the usual
    # umask permissions rather than mkstemp's owner-only 0600.
    tmp = str(path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    logger.debug("wrote %s", path)
    return path
