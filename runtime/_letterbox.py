"""Letterboxing (fit, centre, pad) and its inverse, torch-free: training, export, the Python runtime and libruntime share it.

An image of any size is scaled by ``s = min(W / w, H / h)`` to ``round(w s) x
round(h s)`` with bilinear interpolation (half-pixel centres, no antialiasing,
edge samples clamped: OpenCV's ``INTER_LINEAR``), centred on an ``H x W`` canvas
filled with ``pad_value``, and a validity mask (1 on image pixels, 0 on padding)
comes with it. :class:`Transform` maps points between the two pixel frames.
libruntime's ``letterbox`` in ``bindings/src/preprocess.cpp`` computes the
same numbers in the same order (float64 sums, float32 result).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Transform:
    """Where a source image lies on the graph's input canvas.

    ``input = source * scale + pad`` on each axis, in continuous pixel
    coordinates (0 is the left/top edge of the first pixel; a pixel centre is at
    ``i + 0.5``). The identity for an image that already has the graph's size.
    """

    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_width: int
    resized_height: int
    source_width: int
    source_height: int

    @classmethod
    def identity(cls, height: int, width: int) -> "Transform":
        return cls(1.0, 1.0, 0, 0, width, height, width, height)

    def to_source(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) x, y in input pixels -> the same points in source pixels."""
        points = np.asarray(points, dtype=np.float64)
        return np.stack([(points[..., 0] - self.pad_x) / self.scale_x,
                         (points[..., 1] - self.pad_y) / self.scale_y], axis=-1)

    def to_input(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) x, y in source pixels -> input pixels."""
        points = np.asarray(points, dtype=np.float64)
        return np.stack([points[..., 0] * self.scale_x + self.pad_x,
                         points[..., 1] * self.scale_y + self.pad_y], axis=-1)


def fit(source_height: int, source_width: int, height: int, width: int) -> Transform:
    """The letterbox geometry of a ``source_height x source_width`` image on a ``height x width`` canvas.

    Raises:
        ValueError: for a size that is not positive.
    """
    if min(source_height, source_width, height, width) < 1:
        raise ValueError(f"sizes must be positive, got source {source_height}x{source_width}, "
                         f"canvas {height}x{width}")
    s = min(width / source_width, height / source_height)
    # floor(x + 0.5): round half up, the same in C++ (Python's round() would go half-even).
    new_w = min(width, max(1, math.floor(source_width * s + 0.5)))
    new_h = min(height, max(1, math.floor(source_height * s + 0.5)))
    return Transform(new_w / source_width, new_h / source_height, (width - new_w) // 2, (height - new_h) // 2,
                     new_w, new_h, source_width, source_height)


def _taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bilinear source indices and weights along one axis (half-pixel centres, clamped)."""
    pos = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out) - 0.5
    pos = np.clip(pos, 0.0, size_in - 1)
    low = np.floor(pos).astype(np.int64)
    high = np.minimum(low + 1, size_in - 1)
    return low, high, pos - low


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """(C, h, w) -> (C, height, width) float32, bilinear as described in the module notes."""
    c, h, w = image.shape
    if (h, w) == (height, width):
        return np.array(image, dtype=np.float32)
    y0, y1, wy = _taps(h, height)
    x0, x1, wx = _taps(w, width)
    src = np.asarray(image, dtype=np.float64)
    rows = src[:, y0] * (1.0 - wy)[None, :, None] + src[:, y1] * wy[None, :, None]
    out = rows[:, :, x0] * (1.0 - wx)[None, None, :] + rows[:, :, x1] * wx[None, None, :]
    return out.astype(np.float32)


def letterbox(image: np.ndarray, height: int, width: int, pad_value: float
              ) -> tuple[np.ndarray, np.ndarray, Transform]:
    """Fit a (C, h, w) image into (C, height, width), centred, padded with ``pad_value``.

    Returns:
        The canvas (float32), its validity mask (height, width) float32 (1 image, 0 padding),
        and the :class:`Transform` from source to canvas pixels.

    Example:
        >>> canvas, valid, t = letterbox(np.zeros((3, 100, 400), np.float32), 256, 512, 255.0)
        >>> canvas.shape, t.pad_y, t.resized_height
        ((3, 256, 512), 64, 128)
    """
    transform = fit(image.shape[1], image.shape[2], height, width)
    canvas = np.full((image.shape[0], height, width), pad_value, np.float32)
    valid = np.zeros((height, width), np.float32)
    rows = slice(transform.pad_y, transform.pad_y + transform.resized_height)
    cols = slice(transform.pad_x, transform.pad_x + transform.resized_width)
    canvas[:, rows, cols] = resize_bilinear(image, transform.resized_height, transform.resized_width)
    valid[rows, cols] = 1.0
    return canvas, valid, transform
