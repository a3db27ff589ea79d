"""Helpers of the training reports (``training.report`` and the families' report sections): figures and tables.

Figures are drawn on a bare ``matplotlib.figure.Figure`` with the Agg canvas,
never through ``pyplot``: no backend is switched and no figure is registered
globally, so a host process (a notebook, a GUI) keeps its own matplotlib state.
matplotlib is a training-only dependency (the ``train`` extra), imported on
first use.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from runtime.core import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["epoch_axis", "figure", "markdown_table", "number", "save_figure", "shrink"]

#: pixels per inch of the PNGs
_DPI = 100


def figure(panels: int = 1, *, columns: int = 1, size: tuple[float, float] = (6.0, 3.5)) -> tuple[Figure, list[Axes]]:
    """A figure of ``panels`` axes on a grid of ``columns`` columns, each ``size`` inches (the spare ones hidden).

    Raises:
        ImportError: matplotlib is missing, with what to install.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("training reports need matplotlib: pip install 'edge-vision-sdk[train]' "
                          "(or pip install 'matplotlib>=3.7')") from exc
    columns = max(1, min(columns, panels))
    rows = math.ceil(panels / columns)
    fig = Figure(figsize=(size[0] * columns, size[1] * rows), layout="tight")
    FigureCanvasAgg(fig)
    axes = list(fig.subplots(rows, columns, squeeze=False).ravel())
    for spare in axes[panels:]:
        spare.set_visible(False)
    return fig, axes[:panels]


def save_figure(fig: Figure, path: Path) -> Path:
    """Write ``fig`` as a PNG atomically; returns ``path``."""
    return atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=_DPI))


def epoch_axis(ax: Axes) -> None:
    """Label ``ax``'s x axis in whole epochs."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def shrink(picture: np.ndarray, max_width: int) -> np.ndarray:
    """An (H, W, 3) uint8 picture scaled down (area average) to at most ``max_width`` pixels wide."""
    height, width = picture.shape[:2]
    if width <= max_width:
        return picture
    from PIL import Image

    size = (max_width, max(1, round(height * max_width / width)))
    return np.asarray(Image.fromarray(np.ascontiguousarray(picture)).resize(size, Image.Resampling.BOX))


def number(value: Any) -> str:
    """A value for a table: floats with 4 significant decimals (or in e-notation), the rest as text."""
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.3e}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table (``|`` in cells escaped)."""
    def cell(value: Any) -> str:
        return number(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
