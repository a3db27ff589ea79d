"""Overlays and labelled panel figures with numpy and Pillow only (no matplotlib on edge boxes).

The pieces are generic: colour ramps (:func:`colormap` for 0..1, :func:`diverging`
for signed values), :func:`auto_contrast` and :func:`composite` that stretch faint
differences and report by how much (:func:`with_gain` puts it in a label),
:func:`colour_bar` and :func:`legend` strips, and :func:`labelled_panels` that lays
panels out side by side with a name above and, optionally, a band below each.
Which panels a figure holds is the family's choice.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

# Anchors of a perceptually ordered black -> purple -> orange -> yellow ramp (close to "inferno").
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)
# Signed values: black at 0, warm (red -> pale yellow) above, cool (blue -> pale cyan) below.
_POSITIVE = np.array([[0, 0, 0], [140, 20, 10], [220, 60, 20], [255, 140, 40], [255, 225, 120]], np.float32)
_NEGATIVE = np.array([[0, 0, 0], [10, 30, 140], [25, 95, 220], [60, 170, 255], [150, 235, 255]], np.float32)
_LABEL_HEIGHT = 16
_GAP = 4
_LINE_HEIGHT = 13
_WHITE, _BLACK = (255, 255, 255), (0, 0, 0)
#: the share of a panel's pixels :func:`auto_contrast` lets saturate is 100 - this
CONTRAST_PERCENTILE = 99.9


def _ramp(anchors: np.ndarray, values: np.ndarray) -> np.ndarray:
    x = np.clip(np.nan_to_num(values), 0.0, 1.0) * (len(anchors) - 1)
    low = np.minimum(x.astype(np.int64), len(anchors) - 2)
    frac = (x - low)[..., None]
    return np.round(anchors[low] * (1 - frac) + anchors[low + 1] * frac).astype(np.uint8)


def colormap(values: np.ndarray) -> np.ndarray:
    """(H, W) values in 0..1 -> (H, W, 3) uint8 colours of the ramp."""
    return _ramp(_RAMP, values)


def diverging(values: np.ndarray) -> np.ndarray:
    """(H, W) signed values in -1..1 -> (H, W, 3) uint8: black at 0, red to yellow above, blue to cyan below.

    Black in the middle keeps a panel of small differences dark, so what differs stands out.
    """
    values = np.asarray(values, np.float32)
    return np.where((values >= 0)[..., None], _ramp(_POSITIVE, values), _ramp(_NEGATIVE, -values))


def auto_contrast(values: np.ndarray, *, full_scale: float = 255.0, percentile: float = CONTRAST_PERCENTILE,
                  max_gain: float | None = None) -> tuple[np.ndarray, float]:
    """Stretch (signed) values so that a high percentile of their magnitude fills the display range.

    The gain is ``full_scale`` over the ``percentile``-th percentile of ``|values|`` (over
    the max when that percentile is 0, e.g. a difference in a few pixels only), never
    below 1 and never above ``max_gain``: faint differences are stretched, strong ones
    are left as they are, and a cap keeps an image with nothing but noise from looking
    as busy as one with a real difference. A constant input keeps gain 1 (no division
    by zero).

    Args:
        values: an array of finite values in ``-full_scale..full_scale``.
        full_scale: the value shown at full brightness without stretching (255 for 8-bit sources).
        percentile: the magnitude percentile that reaches full brightness; the pixels above it saturate.
        max_gain: the largest stretch (None: no limit).

    Returns:
        ``(values * gain / full_scale`` clipped to -1..1 (float32), ``gain)``.

    Example:
        >>> shown, gain = auto_contrast(np.array([[0.0, 3.0], [-1.5, 0.0]]))
        >>> gain, float(shown.max()), float(shown.min())
        (85.0, 1.0, -0.5)
    """
    values = np.nan_to_num(np.asarray(values, np.float32))
    magnitude = np.abs(values)
    scale = float(np.percentile(magnitude, percentile, method="higher")) if magnitude.size else 0.0
    if scale <= 0.0:
        scale = float(magnitude.max()) if magnitude.size else 0.0
    gain = max(1.0, full_scale / scale) if scale > 0.0 else 1.0
    if max_gain is not None:
        gain = min(gain, max(1.0, float(max_gain)))
    return np.clip(values * np.float32(gain / full_scale), -1.0, 1.0), gain


def composite(planes: np.ndarray, *, full_scale: float = 255.0, percentile: float = CONTRAST_PERCENTILE,
              max_gain: float | None = None) -> tuple[np.ndarray, float]:
    """Three (H, W) planes as the red, green and blue of one picture, their differences stretched.

    Where the planes agree a pixel is grey (their mean); where one is brighter than the
    others it takes that plane's colour, where one is darker the opposite colour. The
    deviations from the per-pixel mean are stretched by :func:`auto_contrast` (so that a
    high percentile of them reaches half the range): a difference of a few levels shows.

    Args:
        planes: (3, H, W) values in ``0..full_scale``, in red, green, blue order.
        full_scale: the planes' white.
        percentile, max_gain: as for :func:`auto_contrast`.

    Returns:
        ``((H, W, 3) uint8 picture, gain)``.

    Example:
        >>> picture, gain = composite(np.stack([np.full((4, 4), 120.0), np.full((4, 4), 100.0),
        ...                                     np.full((4, 4), 100.0)]))
        >>> picture[0, 0].tolist()  # red: the first plane alone is brighter
        [234, 43, 43]
    """
    planes = np.asarray(planes, np.float32)
    mean = planes.mean(axis=0, keepdims=True)
    stretched, gain = auto_contrast(planes - mean, full_scale=full_scale / 2, percentile=percentile,
                                    max_gain=max_gain)
    shown = np.clip(mean / full_scale + stretched / 2, 0.0, 1.0)
    return np.round(np.moveaxis(shown, 0, -1) * 255.0).astype(np.uint8), gain


def with_gain(name: str, gain: float) -> str:
    """A panel name with the stretch applied to it: ``"diff (x6.3)"``, ``"diff (x85)"``; unstretched: the name."""
    if gain <= 1.0:
        return name
    return f"{name} (x{gain:.1f})" if gain < 10 else f"{name} (x{gain:.0f})"


def overlay(image: np.ndarray, heatmap: np.ndarray, threshold: float) -> np.ndarray:
    """One image plane (H, W, 0..255) in grey with red where the heatmap is above ``threshold`` -> (H, W, 3) uint8.

    The red is stronger where the heatmap is higher, so a confident defect stands out from a marginal one.
    """
    base = np.repeat(np.clip(image, 0, 255).astype(np.float32)[..., None], 3, axis=2)
    alpha = np.where(heatmap > threshold, 0.4 + 0.6 * np.clip(heatmap, 0, 1), 0.0)[..., None].astype(np.float32)
    red = np.array([255, 0, 0], np.float32)
    return np.round(base * (1 - alpha) + red * alpha).astype(np.uint8)


def grey(values: np.ndarray) -> np.ndarray:
    """(H, W) values in 0..255 -> (H, W, 3) uint8 grey."""
    return np.repeat(np.clip(np.round(values), 0, 255).astype(np.uint8)[..., None], 3, axis=2)


def outline(panel: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """(H, W, 3) uint8 ``panel`` with the boundary of the (H, W) boolean ``mask`` drawn in ``colour``.

    The boundary is the mask's pixels with a 4-neighbour outside it (or at the image border).
    """
    mask = np.asarray(mask, bool)
    inner = np.pad(mask, 1, constant_values=False)
    interior = inner[:-2, 1:-1] & inner[2:, 1:-1] & inner[1:-1, :-2] & inner[1:-1, 2:] & mask
    drawn = panel.copy()
    drawn[mask & ~interior] = colour
    return drawn


def colour_bar(width: int, ticks: Sequence[float] = (0.0, 0.5, 1.0), *, height: int = 10) -> np.ndarray:
    """The :func:`colormap` ramp from 0 (left) to 1 (right) with tick values below -> (h, width, 3) uint8 on white.

    Args:
        width: the band's width in pixels (a panel's width); the bar leaves a small margin.
        ticks: values in 0..1 to mark and print.
        height: the bar's height in pixels.

    Example:
        >>> colour_bar(200).shape[1]
        200
    """
    from PIL import Image, ImageDraw, ImageFont

    margin = min(6, max(0, (width - 2) // 4))
    span = max(1, width - 2 * margin)
    band = np.full((height + 4 + _LINE_HEIGHT, width, 3), 255, np.uint8)
    band[2:2 + height, margin:margin + span] = colormap(np.linspace(0.0, 1.0, span, dtype=np.float32)[None, :])
    picture = Image.fromarray(band)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    for tick in ticks:
        x = margin + round(float(tick) * (span - 1))
        draw.line([(x, 2 + height), (x, 4 + height)], fill=_BLACK)
        text = f"{tick:g}"
        left = min(max(0, x - draw.textlength(text, font=font) / 2), width - draw.textlength(text, font=font))
        draw.text((left, 4 + height), text, fill=_BLACK, font=font)
    return np.asarray(picture)


def legend(entries: Sequence[tuple[tuple[int, int, int] | None, str]], width: int) -> np.ndarray:
    """One line per entry, a colour swatch then its text -> (h, width, 3) uint8 on white.

    Args:
        entries: ``(RGB colour or None for a line of text only, text)`` pairs, top to bottom.
        width: the band's width in pixels; longer text is cut at the edge.

    Example:
        >>> legend([((255, 0, 0), "alone"), (None, "a note")], 120).shape
        (28, 120, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    picture = Image.new("RGB", (width, 2 + len(entries) * _LINE_HEIGHT), _WHITE)
    draw = ImageDraw.Draw(picture)
    font = ImageFont.load_default()
    swatch = _LINE_HEIGHT - 4
    for i, (colour, text) in enumerate(entries):
        y = 2 + i * _LINE_HEIGHT
        x = 2
        if colour is not None:
            draw.rectangle([x, y + 1, x + swatch - 1, y + swatch], fill=tuple(colour), outline=(96, 96, 96))
            x += swatch + 4
        draw.text((x, y - 1), text, fill=_BLACK, font=font)
    return np.asarray(picture)


def labelled_panels(named: list[tuple[str, np.ndarray]],
                    below: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
    """Equal-size (H, W, 3) uint8 panels side by side, each with its name above -> (16 + H, n W + gaps, 3).

    Args:
        named: ``(name, panel)`` pairs, left to right.
        below: per panel, a (h, w <= W, 3) uint8 band drawn under it (a colour bar, a legend), or None;
            the figure grows by a gap and the tallest band.

    Example:
        >>> labelled_panels([("a", grey(np.zeros((8, 8)))), ("b", grey(np.ones((8, 8))))]).shape
        (24, 20, 3)
    """
    from PIL import Image, ImageDraw, ImageFont

    h, w = named[0][1].shape[:2]
    bands = list(below) if below is not None else []
    footer = max((b.shape[0] for b in bands if b is not None), default=0)
    height = _LABEL_HEIGHT + h + (_GAP + footer if footer else 0)
    canvas = np.full((height, len(named) * w + (len(named) - 1) * _GAP, 3), 255, np.uint8)
    for i, (_, panel) in enumerate(named):
        x = i * (w + _GAP)
        canvas[_LABEL_HEIGHT:_LABEL_HEIGHT + h, x:x + w] = panel
        band = bands[i] if i < len(bands) else None
        if band is not None:
            top = _LABEL_HEIGHT + h + _GAP
            canvas[top:top + band.shape[0], x:x + min(w, band.shape[1])] = band[:, :w]
    figure = Image.fromarray(canvas)
    draw = ImageDraw.Draw(figure)
    font = ImageFont.load_default()
    for i, (name, _) in enumerate(named):
        draw.text((i * (w + _GAP) + 2, 2), name, fill=(0, 0, 0), font=font)
    return np.asarray(figure)
