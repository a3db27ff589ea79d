"""Overlays and labelled panel figures with numpy and Pillow only (no matplotlib on edge boxes)."""

from __future__ import annotations

import numpy as np

# Anchors of a perceptually ordered black -> purple -> orange -> yellow ramp (close to "inferno").
_RAMP = np.array([[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float32)
_LABEL_HEIGHT = 16
_GAP = 4


def colormap(values: np.ndarray) -> np.ndarray:
    """(H, W) values in 0..1 -> (H, W, 3) uint8 colours of the ramp."""
    x = np.clip(values, 0.0, 1.0) * (len(_RAMP) - 1)
    low = np.minimum(x.astype(np.int64), len(_RAMP) - 2)
    frac = (x - low)[..., None]
    return np.round(_RAMP[low] * (1 - frac) + _RAMP[low + 1] * frac).astype(np.uint8)


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


def labelled_panels(named: list[tuple[str, np.ndarray]]) -> np.ndarray:
    """Equal-size (H, W, 3) uint8 panels side by side, each with its name above -> (16 + H, n W + gaps, 3)."""
    from PIL import Image, ImageDraw, ImageFont

    h, w = named[0][1].shape[:2]
    canvas = np.full((_LABEL_HEIGHT + h, len(named) * w + (len(named) - 1) * _GAP, 3), 255, np.uint8)
    for i, (_, panel) in enumerate(named):
        x = i * (w + _GAP)
        canvas[_LABEL_HEIGHT:, x:x + w] = panel
    figure = Image.fromarray(canvas)
    draw = ImageDraw.Draw(figure)
    font = ImageFont.load_default()
    for i, (name, _) in enumerate(named):
        draw.text((i * (w + _GAP) + 2, 2), name, fill=(0, 0, 0), font=font)
    return np.asarray(figure)
