"""Manifest-driven pre-processing: any accepted image -> the graph's scaled image tensor, and the transform back.

Generic on purpose: every family states its input contract in the manifest's
``preprocess`` (channels read, accepted counts and layouts, source range,
resize policy, scale, validity mask), and this module (and its C++ twin in
libruntime) does exactly that, nothing family-specific.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from runtime._errors import InvalidInputError
from runtime._imageio import read_image, to_chw
from runtime._letterbox import Transform, letterbox
from runtime._manifest import Preprocess


def read_source(item: Any, pre: Preprocess, *, source: str = "array", what: str | None = None) -> np.ndarray:
    """An image (path or array) as the (C, h, w) float32 channels the graph reads, checked, in the source range.

    Args:
        item: a TIFF/PNG/JPEG path or a 3-D array (CHW or HWC). A PNG/JPEG's colour planes become
            channels in ``pre.color_order`` (``bgr``: channel 0 is the blue plane); a TIFF's or an
            array's channels are taken as they are.
        pre: the manifest's pre-processing.
        source: what ``item`` is, for messages (a path names itself).
        what: what the size belongs to (e.g. the variant), for messages.

    Raises:
        InvalidInputError: a channel count, layout, size (not the graph's for an exact resize, under
            ``pre.min_size`` on a side for any), dtype or value the manifest does not accept.
    """
    expected = (pre.height, pre.width) if pre.resize == "exact" else None
    options = dict(expected_hw=expected, accepted_channels=pre.accepted_channels, channels=pre.read_channels,
                   value_range=pre.source_range, what=what, min_size=pre.min_size)
    if isinstance(item, (str, os.PathLike)):
        return read_image(item, color_order=pre.color_order, **options)
    if isinstance(item, np.ndarray):
        return to_chw(item, source=source, **options)
    raise InvalidInputError(f"{source}: expected a path or a numpy array, got {type(item).__name__}")


def to_tensor(chw: np.ndarray, pre: Preprocess) -> tuple[np.ndarray, Transform]:
    """Checked source channels (from :func:`read_source`) -> the (channels, H, W) graph tensor and its transform.

    Raises:
        InvalidInputError: an image with fewer than ``pre.min_size`` pixels on a side.
    """
    if min(chw.shape[1:]) < pre.min_size:
        raise InvalidInputError(f"image too small: {chw.shape[1]}x{chw.shape[2]} (height x width); the model needs "
                                f"at least {pre.min_size} pixels on each side")
    if pre.resize == "letterbox":
        canvas, valid, transform = letterbox(chw, pre.height, pre.width, float(pre.pad_value))
    else:
        canvas, valid, transform = chw, None, Transform.identity(pre.height, pre.width)
    tensor = np.empty((pre.channels, pre.height, pre.width), np.float32)
    np.multiply(canvas, np.float32(pre.scale), out=tensor[:len(pre.read_channels)])
    if pre.append_mask:
        tensor[-1] = valid
    return tensor, transform


def prepare(item: Any, pre: Preprocess, *, source: str = "array", what: str | None = None
            ) -> tuple[np.ndarray, Transform]:
    """:func:`read_source` then :func:`to_tensor`: one image -> (graph tensor (C, H, W) float32, Transform).

    Example:
        >>> tensor, transform = prepare("image.png", session.manifest.preprocess)
    """
    return to_tensor(read_source(item, pre, source=source, what=what), pre)
