"""Realistic defect-free backgrounds, so every command works without a real dataset.

A background is one underlying *scene* seen by three acquisitions (Target,
Ref1, Ref2), the way a line-scan inspection system images the same product
three times:

* the scene: a periodic structure (a grid, stripes, or a line-scan texture)
  with random period, phase, line width and contrast, plus a smooth random
  shading field and fine material grain, under an illumination that drifts
  slowly along the strip and falls off a little towards its edges;
* each acquisition: the scene shifted by a random sub-pixel amount up to one
  pixel in each direction (bilinear resampling), its own gain, offset and
  slight line-to-line brightness jitter, the sensor's column pattern (shared:
  same sensor) and independent noise.

Everything present in all three channels is background the network must learn
to ignore; the acquisition differences (misalignment, gain, noise) are the
nuisances it must tolerate. Values stay well inside 0..255 (about 40..200).
Rendering is vectorised: a 976x176 strip takes about 10-20 ms on one core.
"""

from __future__ import annotations

import enum

import numpy as np

from runtime.core import InvalidInputError

__all__ = ["BackgroundStyle", "synthesize_background"]


class BackgroundStyle(str, enum.Enum):
    """The periodic structure of a synthetic background."""

    GRID = "grid"
    STRIPES = "stripes"
    LINE_SCAN = "line_scan"


# Margin rendered around the image so that shifting by up to one pixel never
# reads outside the scene.
_MARGIN = 2
_MAX_SHIFT = 1.0
_SCENE_RANGE = (40.0, 200.0)


def synthesize_background(rng: np.random.Generator, height: int = 976, width: int = 176, *,
                          style: BackgroundStyle | str | None = None) -> np.ndarray:
    """Render one defect-free (Target, Ref1, Ref2) background.

    Args:
        rng: the random generator; the result is a pure function of its state.
        height: image height in pixels (976 for a strip).
        width: image width in pixels (176 for a strip).
        style: a :class:`BackgroundStyle` (or its value); ``None`` draws one.

    Returns:
        A (3, height, width) float32 array with values inside 0..255.

    Raises:
        InvalidInputError: for a non-positive size or an unknown style.

    Example:
        >>> strip = synthesize_background(np.random.default_rng(0), style="grid")
        >>> strip.shape, strip.dtype
        ((3, 976, 176), dtype('float32'))
    """
    if height < 1 or width < 1:
        raise InvalidInputError(f"background size must be positive, got {height}x{width}")
    style = _resolve_style(style, rng)
    canvas_h, canvas_w = height + 2 * _MARGIN, width + 2 * _MARGIN
    y = np.arange(canvas_h, dtype=np.float32)[:, None]
    x = np.arange(canvas_w, dtype=np.float32)[None, :]
    structure = _STRUCTURES[style](y, x, rng)
    texture = _smooth_field(rng, canvas_h, canvas_w, cell=int(rng.integers(24, 64))) * rng.uniform(0.05, 0.15)
    grain = rng.standard_normal((canvas_h, canvas_w), dtype=np.float32) * np.float32(rng.uniform(0.01, 0.03))
    scene = _to_gray_levels(structure + texture + grain, rng)
    scene *= _illumination(y, x, canvas_h, canvas_w, rng)

    column_pattern = _column_pattern(rng, width)
    acquisitions = [_acquire(scene, rng, height, width) + column_pattern for _ in range(3)]
    return np.clip(np.stack(acquisitions), 0.0, 255.0).astype(np.float32, copy=False)


def _resolve_style(style: BackgroundStyle | str | None, rng: np.random.Generator) -> BackgroundStyle:
    if style is None:
        return list(BackgroundStyle)[int(rng.integers(len(BackgroundStyle)))]
    try:
        return BackgroundStyle(style)
    except ValueError:
        raise InvalidInputError(f"unknown background style {style!r}; expected one of "
                                f"{[s.value for s in BackgroundStyle]}") from None


def _lines(t: np.ndarray, period: float, phase: float, sharpness: float) -> np.ndarray:
    # A raised cosine to a power: 1 on the lines, 0 between, the power sets
    # the line width (2: soft waves, 12: thin lines).
    return ((1.0 + np.cos((2 * np.pi / period) * t + phase)) * 0.5) ** sharpness


def _periodic(t: np.ndarray, rng: np.random.Generator, period_range: tuple[float, float]) -> np.ndarray:
    period = rng.uniform(*period_range)
    return _lines(t, period, rng.uniform(0, 2 * np.pi), rng.uniform(2.0, 12.0))


def _grid(y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    rows = _periodic(y, rng, (8.0, 40.0)) * _sign(rng)
    cols = _periodic(x, rng, (8.0, 40.0)) * _sign(rng) * rng.uniform(0.5, 1.0)
    return rows + cols


def _stripes(y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Stripes across or along the strip, or slightly tilted, with a weaker
    # second harmonic so that they are not a pure sinusoid.
    angle = (np.pi / 2 if rng.random() < 0.5 else 0.0) + rng.uniform(-0.15, 0.15)
    t = y * np.float32(np.cos(angle)) + x * np.float32(np.sin(angle))
    period = rng.uniform(6.0, 32.0)
    phase = rng.uniform(0, 2 * np.pi)
    base = _lines(t, period, phase, rng.uniform(1.0, 8.0))
    harmonic = _lines(t, period / 2, phase, 2.0) * rng.uniform(0.0, 0.3)
    return (base + harmonic) * _sign(rng)


def _line_scan(y: np.ndarray, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A product moving under a line sensor: a fine periodic texture along the
    # motion (y), a weaker one across it, and streaks along the motion.
    along = _periodic(y, rng, (3.0, 12.0))
    across = _periodic(x, rng, (4.0, 20.0)) * rng.uniform(0.1, 0.4)
    streaks = rng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(0.1, 0.3))
    return (along + across * along) * _sign(rng) + streaks


def _sign(rng: np.random.Generator) -> float:
    # Bright or dark structure on the background, equally likely.
    return 1.0 if rng.random() < 0.5 else -1.0


_STRUCTURES = {
    BackgroundStyle.GRID: _grid,
    BackgroundStyle.STRIPES: _stripes,
    BackgroundStyle.LINE_SCAN: _line_scan,
}


def _smooth_field(rng: np.random.Generator, height: int, width: int, cell: int) -> np.ndarray:
    # Coarse noise, bilinearly upsampled with two small matrix products:
    # much cheaper than filtering full-resolution noise.
    coarse = rng.standard_normal((height // cell + 2, width // cell + 2)).astype(np.float32)
    return _interp_matrix(height, coarse.shape[0]) @ coarse @ _interp_matrix(width, coarse.shape[1]).T


def _interp_matrix(n_out: int, n_in: int) -> np.ndarray:
    # Row i holds the hat-function weights of output sample i on the inputs.
    positions = np.linspace(0, n_in - 1, n_out)
    return np.maximum(0.0, 1.0 - np.abs(positions[:, None] - np.arange(n_in)[None, :])).astype(np.float32)


def _to_gray_levels(pattern: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Map whatever range the pattern has onto a random band inside 40..200,
    # so every style ends up with a realistic mean level and contrast.
    low, high = _SCENE_RANGE
    mean = rng.uniform(low + 40, high - 40)
    half_contrast = rng.uniform(10.0, min(mean - low, high - mean) * 0.85)
    lo, hi = float(pattern.min()), float(pattern.max())
    normalised = (pattern - (lo + hi) / 2) / max((hi - lo) / 2, 1e-6)
    return (mean + half_contrast * normalised).astype(np.float32)


def _illumination(y: np.ndarray, x: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    # Slow drift along the strip (a few long sinusoids, at most ~8 % in total)
    # times a mild fall-off towards the side edges.
    drift = np.ones_like(y)
    for _ in range(2):
        wavelength = rng.uniform(0.5, 3.0) * height
        drift = drift + rng.uniform(0.0, 0.04) * np.sin(2 * np.pi * y / wavelength + rng.uniform(0, 2 * np.pi))
    edge = ((x - (width - 1) / 2) / max((width - 1) / 2, 1.0)) ** 2
    vignette = 1.0 - rng.uniform(0.0, 0.06) * edge
    return (drift * vignette).astype(np.float32)


def _column_pattern(rng: np.random.Generator, width: int) -> np.ndarray:
    # Fixed-pattern offsets of the sensor's pixels: a line-scan sensor images
    # every row with the same columns, and all three acquisitions share it.
    return (rng.standard_normal(width) * rng.uniform(0.3, 1.5)).astype(np.float32)[None, :]


def _acquire(scene: np.ndarray, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    shifted = _shift(scene, rng.uniform(-_MAX_SHIFT, _MAX_SHIFT), rng.uniform(-_MAX_SHIFT, _MAX_SHIFT),
                     height, width)
    gain = np.float32(1.0 + rng.normal(0.0, 0.02))
    offset = np.float32(rng.normal(0.0, 2.0))
    line_jitter = (rng.standard_normal(height) * rng.uniform(0.002, 0.01) + 1.0).astype(np.float32)[:, None]
    noise = rng.standard_normal((height, width), dtype=np.float32) * np.float32(rng.uniform(1.0, 3.0))
    return shifted * gain * line_jitter + offset + noise


def _shift(scene: np.ndarray, dy: float, dx: float, height: int, width: int) -> np.ndarray:
    # Bilinear resampling of the (margin-padded) scene at (row + dy, col + dx).
    iy, ix = int(np.floor(dy)), int(np.floor(dx))
    fy, fx = np.float32(dy - iy), np.float32(dx - ix)
    top, left = _MARGIN + iy, _MARGIN + ix
    window = scene[top:top + height + 1, left:left + width + 1]
    rows = window[:-1] * (1 - fy) + window[1:] * fy
    return rows[:, :-1] * (1 - fx) + rows[:, 1:] * fx
