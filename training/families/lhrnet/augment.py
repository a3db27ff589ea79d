"""lhrnet's training-time augmentations (numpy only): the image and its keypoint labels change together, exactly.

Each call draws everything from the ``numpy.random.Generator`` it is given, so
the result is a pure function of (image, label, generator state). In order:

1. geometry (SPEC: rotate +-5 deg, scale 0.9..1.1, translate +-10 px): one
   affine map about the image centre, ``p' = c + s R(theta) (p - c) + t``, in
   continuous pixel coordinates (0 is the left/top edge of the first pixel, a
   pixel centre is at ``i + 0.5``, the convention of
   :class:`runtime.core.Transform`). ``theta`` is counter-clockwise as the image
   is displayed (y points down), the convention of the label's ``angle``. The
   image is resampled bilinearly through the explicit inverse map (each output
   pixel centre is mapped back into the source), samples beyond the border
   repeat the edge pixel (no black corners, and no mirrored copy of a slot near
   the border, which a reflecting border could create). The label points go
   through the forward map; the label ``angle`` is the part's rotation relative
   to the slot, and a global rotation turns both, so it does not change.
   *Points leaving the image*: the geometry is re-drawn (up to ``max_tries``
   times) until every label point lies at least ``inside_margin`` pixels inside
   the image; if none fits, the geometry is left out for this sample. Points are
   never clamped: a clamped point would no longer be where the object is.
2. blur: a Gaussian of sigma uniform in ``blur`` (SPEC: 0..2), the optics.
3. colour (SPEC: brightness, contrast, saturation 0.2, hue 0.1), in a random
   order like torchvision's ``ColorJitter``: brightness multiplies by
   ``1 + U(-b, b)``; contrast blends with the mean grey by ``1 + U(-c, c)``;
   saturation blends with the pixel's grey by ``1 + U(-s, s)``; hue rotates the
   chroma plane of YIQ by ``U(-h, h)`` of a full turn (YIQ: one 3x3 matrix; close
   to an HSV hue shift without its per-pixel branches). Each step is affine in
   colour, so the four compose into one 3x3 matrix plus offset applied once;
   values are clipped once, at the end (torchvision clips after every step).
4. noise: Gaussian, standard deviation ``noise`` on a 0..1 scale (SPEC: 0.01,
   i.e. 2.55 grey levels), the sensor.

Images are (H, W, C) with C >= 3, uint8 or float in 0..255; the result has the
input's dtype. Channels after the third (e.g. a validity mask) are only warped.
A label is the mapping of one dataset entry (``{"slot": [x, y], "part": [x, y],
"angle": deg, ...}``); the keys named in ``points`` are moved, the rest copied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from runtime.core import InvalidInputError
from runtime.families.lhrnet import POINTS

__all__ = ["AugmentOptions", "affine_matrix", "apply_affine", "augment", "colour_jitter", "gaussian_blur",
           "random_affine", "warp_affine"]

# ITU-R BT.601 luma weights, the grey of contrast and saturation (as torchvision).
_LUMA = np.array([0.299, 0.587, 0.114])
_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114], [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]])


@dataclass(frozen=True)
class AugmentOptions:
    """The augmentation ranges (SPEC defaults). A zero (or an empty range) turns that augmentation off.

    Attributes:
        rotate: largest rotation in degrees, either way.
        scale: (min, max) zoom factor.
        translate: largest shift in pixels on each axis, either way.
        brightness: brightness factor drawn from ``1 +- brightness``.
        contrast: contrast factor drawn from ``1 +- contrast``.
        saturation: saturation factor drawn from ``1 +- saturation``.
        hue: largest hue rotation, as a fraction of a full turn (at most 0.5).
        noise: standard deviation of the Gaussian noise on a 0..1 scale.
        blur: (min, max) sigma of the Gaussian blur in pixels.
        inside_margin: label points must stay this many pixels inside the image after the geometry.
        max_tries: geometries drawn before giving up on the geometry for a sample.
        points: the label keys that hold [x, y] points.
    """

    rotate: float = 5.0
    scale: tuple[float, float] = (0.9, 1.1)
    translate: float = 10.0
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.1
    noise: float = 0.01
    blur: tuple[float, float] = (0.0, 2.0)
    inside_margin: float = 1.0
    max_tries: int = 10
    points: tuple[str, ...] = POINTS

    def __post_init__(self) -> None:
        for name in ("rotate", "translate", "brightness", "contrast", "saturation", "noise", "inside_margin"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"augmentation {name} must be a finite number >= 0, got {value!r}")
        if not 0 <= self.hue <= 0.5:
            raise InvalidInputError(f"augmentation hue must be in 0..0.5 (a fraction of a turn), got {self.hue!r}")
        if not 0 < self.scale[0] <= self.scale[1] < math.inf:
            raise InvalidInputError(f"augmentation scale must be (min, max) with 0 < min <= max, got {self.scale!r}")
        if not 0 <= self.blur[0] <= self.blur[1] < math.inf:
            raise InvalidInputError(f"augmentation blur must be (min, max) sigmas with 0 <= min <= max, "
                                    f"got {self.blur!r}")
        if self.max_tries < 1:
            raise InvalidInputError(f"augmentation max_tries must be >= 1, got {self.max_tries!r}")


def augment(image: np.ndarray, label: Mapping[str, Any], rng: np.random.Generator,
            options: AugmentOptions | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Augment one training sample: geometry (image and points), blur, colour, noise.

    Args:
        image: (H, W, C) image, C >= 3, uint8 or float with values in 0..255.
        label: the sample's label; the keys in ``options.points`` hold [x, y] in
            the image's continuous pixel coordinates.
        rng: the random generator; the result is a pure function of its state.
        options: the ranges (None: the SPEC's).

    Returns:
        The new image (same shape and dtype) and a new label dict: points moved
        with the image, everything else (``angle`` included) unchanged.

    Raises:
        InvalidInputError: for an image that is not (H, W, C>=3) or a label without its points.

    Example:
        >>> image = np.zeros((256, 512, 3), np.uint8)
        >>> out, moved = augment(image, {"slot": [100.0, 80.0], "part": [300.0, 120.0], "angle": 5.0},
        ...                      np.random.default_rng(0))
        >>> out.shape, moved["angle"]
        ((256, 512, 3), 5.0)
    """
    options = options or AugmentOptions()
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] < 3 or min(image.shape[:2]) < 1:
        raise InvalidInputError(f"augment expects an (H, W, C) image with C >= 3, got shape {image.shape}")
    height, width = image.shape[:2]
    points = _label_points(label, options.points)

    matrix = _fitting_affine(rng, height, width, points, options)
    work = image.astype(np.float32)
    if matrix is not None:
        work = warp_affine(work, matrix)
        points = apply_affine(points, matrix)
    sigma = rng.uniform(*options.blur)
    rgb = gaussian_blur(work[..., :3], sigma)
    rgb = colour_jitter(rgb, rng, brightness=options.brightness, contrast=options.contrast,
                        saturation=options.saturation, hue=options.hue)
    if options.noise > 0:
        rgb += rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(options.noise * 255.0)
    work[..., :3] = rgb
    out = _to_dtype(work, image.dtype)

    moved = dict(label)
    for name, point in zip(options.points, points):
        moved[name] = [float(point[0]), float(point[1])]
    return out, moved


def _label_points(label: Mapping[str, Any], names: Sequence[str]) -> np.ndarray:
    try:
        points = np.array([[float(label[name][0]), float(label[name][1])] for name in names], np.float64)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        shown = {k: label.get(k) for k in names} if isinstance(label, Mapping) else label
        raise InvalidInputError(f"augment expects a label with [x, y] points {list(names)}, got {shown!r}") from exc
    return points.reshape(len(names), 2)


def _fitting_affine(rng: np.random.Generator, height: int, width: int, points: np.ndarray,
                    options: AugmentOptions) -> np.ndarray | None:
    margin = options.inside_margin
    for _ in range(options.max_tries):
        matrix = random_affine(rng, height, width, options)
        moved = apply_affine(points, matrix)
        if (np.all(moved >= margin) and np.all(moved[:, 0] <= width - margin)
                and np.all(moved[:, 1] <= height - margin)):
            return matrix
    return None


def random_affine(rng: np.random.Generator, height: int, width: int,
                  options: AugmentOptions | None = None) -> np.ndarray:
    """A random (2, 3) affine map of an ``height x width`` image within the ranges of ``options``.

    Always draws four numbers (angle, scale, x and y shift), so the generator
    advances the same way whatever the ranges.
    """
    options = options or AugmentOptions()
    degrees = rng.uniform(-options.rotate, options.rotate)
    scale = rng.uniform(*options.scale)
    tx, ty = rng.uniform(-options.translate, options.translate, size=2)
    return affine_matrix(degrees, scale, (float(tx), float(ty)), (width / 2.0, height / 2.0))


def affine_matrix(degrees: float, scale: float, translate: tuple[float, float],
                  centre: tuple[float, float]) -> np.ndarray:
    """The (2, 3) map ``p' = centre + scale R(degrees) (p - centre) + translate``.

    ``R`` turns counter-clockwise as the image is displayed (y down): the
    vector (1, 0) turned by 90 degrees is (0, -1), pointing up.

    Example:
        >>> apply_affine([[2.0, 1.0]], affine_matrix(90.0, 1.0, (0.0, 0.0), (1.0, 1.0))).round(6).tolist()
        [[1.0, 0.0]]
    """
    theta = math.radians(degrees)
    c, s = math.cos(theta) * scale, math.sin(theta) * scale
    linear = np.array([[c, s], [-s, c]])
    centre_ = np.asarray(centre, np.float64)
    offset = centre_ + np.asarray(translate, np.float64) - linear @ centre_
    return np.concatenate([linear, offset[:, None]], axis=1)


def apply_affine(points: np.ndarray | Sequence[Sequence[float]], matrix: np.ndarray) -> np.ndarray:
    """(..., 2) x, y through the (2, 3) ``matrix`` -> (..., 2) float64."""
    points = np.asarray(points, np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def warp_affine(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Resample (H, W, C) ``image`` so that the content at ``p`` moves to ``matrix @ p`` (same size, float32).

    Bilinear through the inverse map, in continuous pixel coordinates (output
    pixel centre ``(j + 0.5, i + 0.5)`` reads the source at ``inverse(...)``);
    samples beyond the border repeat the edge pixel.
    """
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    linear = matrix[:, :2]
    inverse = np.linalg.inv(linear)
    offset = -inverse @ matrix[:, 2]
    # Source position in pixel-index units (pixel centres at integers), clamped: the edge repeats.
    # float32 throughout (1e-4 px at 2000 px): float64 weights doubled the cost of the warp.
    xs = np.arange(width, dtype=np.float32) + np.float32(0.5)
    ys = np.arange(height, dtype=np.float32) + np.float32(0.5)
    f32 = np.float32
    sx = ((f32(inverse[0, 0]) * xs)[None, :] + (f32(inverse[0, 1]) * ys + f32(offset[0] - 0.5))[:, None]).ravel()
    sy = ((f32(inverse[1, 0]) * xs)[None, :] + (f32(inverse[1, 1]) * ys + f32(offset[1] - 0.5))[:, None]).ravel()
    np.clip(sx, 0, width - 1, out=sx)
    np.clip(sy, 0, height - 1, out=sy)
    x0 = np.minimum(np.floor(sx), f32(max(width - 2, 0)))
    y0 = np.minimum(np.floor(sy), f32(max(height - 2, 0)))
    fx, fy = sx - x0, sy - y0
    x0, y0 = x0.astype(np.int64), y0.astype(np.int64)
    corners = y0 * width + x0
    step_x, step_y = (1 if width > 1 else 0), (width if height > 1 else 0)
    taps = [(corners, (1 - fx) * (1 - fy)), (corners + step_x, fx * (1 - fy)),
            (corners + step_y, (1 - fx) * fy), (corners + step_y + step_x, fx * fy)]
    # One plane at a time: np.take on a contiguous plane is several times faster than gathering pixels.
    planes = image.reshape(height, width, -1)
    out = np.empty(planes.shape, np.float32)
    for c in range(planes.shape[2]):
        plane = np.ascontiguousarray(planes[..., c]).ravel()
        acc = plane.take(taps[0][0]) * taps[0][1]
        for index, weight in taps[1:]:
            acc += plane.take(index) * weight
        out[..., c] = acc.reshape(height, width)
    return out.reshape(image.shape)


def gaussian_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """(H, W) or (H, W, C) float32 blurred by a separable Gaussian of ``sigma`` pixels (edges repeated).

    A sigma below 0.2 returns the input unchanged (a kernel that narrow is a
    no-op at 8 bits). The kernel is symmetric, so a blob's centroid stays put.
    """
    image = np.asarray(image, np.float32)
    if sigma < 0.2:
        return image
    radius = max(1, int(math.ceil(3.0 * sigma)))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    height, width = image.shape[:2]
    pad = [(radius, radius), (radius, radius)] + [(0, 0)] * (image.ndim - 2)
    padded = np.pad(image, pad, mode="edge")
    out = np.empty_like(image)
    # Bands of rows, both passes per band: the temporaries stay in the CPU cache (the whole-image
    # passes were bound by memory bandwidth).
    band = max(8, 65536 // max(1, padded[0].size))
    for top in range(0, height, band):
        rows = min(band, height - top)
        src = padded[top:top + rows + 2 * radius]
        vertical = src[radius:radius + rows] * taps[radius]
        for k in range(1, radius + 1):
            vertical += (src[radius - k:radius - k + rows] + src[radius + k:radius + k + rows]) * taps[radius + k]
        horizontal = vertical[:, radius:radius + width] * taps[radius]
        for k in range(1, radius + 1):
            horizontal += (vertical[:, radius - k:radius - k + width]
                           + vertical[:, radius + k:radius + k + width]) * taps[radius + k]
        out[top:top + rows] = horizontal
    return out


def colour_jitter(image: np.ndarray, rng: np.random.Generator, *, brightness: float = 0.2, contrast: float = 0.2,
                  saturation: float = 0.2, hue: float = 0.1) -> np.ndarray:
    """(H, W, 3) float32 RGB with random brightness, contrast, saturation and hue, in a random order (see notes).

    Always draws the same numbers from ``rng`` (an order and four factors).
    Returns float32, not clipped.
    """
    order = rng.permutation(4)
    factors = [1.0 + rng.uniform(-brightness, brightness), 1.0 + rng.uniform(-contrast, contrast),
               1.0 + rng.uniform(-saturation, saturation), rng.uniform(-hue, hue)]
    identity = np.eye(3)
    grey = np.outer(np.ones(3), _LUMA)  # each channel <- the pixel's luma
    mean = np.asarray(image, np.float64).reshape(-1, 3).mean(axis=0)
    linear, offset = identity.copy(), np.zeros(3)
    for step in order:
        if step == 0:
            m, o = identity * factors[0], np.zeros(3)
        elif step == 1:
            # Blend with the mean grey of the image as it is at this step.
            current_mean = float(_LUMA @ (linear @ mean + offset))
            m, o = identity * factors[1], np.full(3, (1.0 - factors[1]) * current_mean)
        elif step == 2:
            m, o = factors[2] * identity + (1.0 - factors[2]) * grey, np.zeros(3)
        else:
            m, o = _hue_rotation(factors[3]), np.zeros(3)
        linear, offset = m @ linear, m @ offset + o
    if np.allclose(linear, identity) and not offset.any():
        return np.asarray(image, np.float32)
    # Per-channel sums rather than a matrix product: BLAS threads thrash in busy data-loader workers.
    image = np.asarray(image, np.float32)
    out = np.empty(image.shape, np.float32)
    for k in range(3):
        out[..., k] = (image[..., 0] * np.float32(linear[k, 0]) + image[..., 1] * np.float32(linear[k, 1])
                       + image[..., 2] * np.float32(linear[k, 2]) + np.float32(offset[k]))
    return out


def _hue_rotation(turns: float) -> np.ndarray:
    angle = 2.0 * math.pi * turns
    c, s = math.cos(angle), math.sin(angle)
    rotate = np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
    return np.linalg.inv(_RGB_TO_YIQ) @ rotate @ _RGB_TO_YIQ


def _to_dtype(image: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype == np.uint8:
        return (np.clip(image, 0.0, 255.0) + 0.5).astype(np.uint8)
    return np.clip(image, 0.0, 255.0).astype(dtype)
