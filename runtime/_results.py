"""Typed results of :meth:`runtime.Session.run`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class HeatmapResult:
    """The defect heatmap of one image and what follows from it.

    Attributes:
        heatmap: (H, W) float32 defect probability in 0..1 (read-only).
        mask: (H, W) bool, ``heatmap > threshold`` (read-only).
        score: the image's defect score, the heatmap's maximum.
        defect_pixels: number of pixels above the threshold.
        threshold: the threshold ``mask`` used.
        source: the file the image came from, or ``"array"`` / ``"array[i]"``.

    Example:
        >>> result = runtime.infer("bundles/brn", "strip.tiff")
        >>> result.score > result.threshold, result.defect_pixels
        (True, 42)
    """

    heatmap: np.ndarray = field(repr=False)
    mask: np.ndarray = field(repr=False)
    score: float
    defect_pixels: int
    threshold: float
    source: str = "array"

    @classmethod
    def from_heatmap(cls, heatmap: np.ndarray, threshold: float, source: str = "array") -> "HeatmapResult":
        heatmap = np.ascontiguousarray(heatmap, dtype=np.float32)
        mask = heatmap > threshold
        heatmap.setflags(write=False)
        mask.setflags(write=False)
        return cls(heatmap, mask, float(heatmap.max()), int(np.count_nonzero(mask)), float(threshold), source)

    @property
    def is_defective(self) -> bool:
        """True when any pixel is above the threshold."""
        return self.defect_pixels > 0
