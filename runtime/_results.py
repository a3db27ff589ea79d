"""Typed results of :meth:`runtime.Session.run`: a small common base, one subclass per kind of output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Result:
    """What every family's result has.

    Attributes:
        source: the file the image came from, or ``"array"`` / ``"array[i]"``.
    """

    source: str

    def summary(self) -> dict[str, Any]:
        """The values of one row of the CLI's summary (the family's ``summary_fields``)."""
        return {}


@dataclass(frozen=True)
class HeatmapResult(Result):
    """The probability heatmap of one image and what follows from it.

    Attributes:
        heatmap: (H, W) float32 probability in 0..1 (read-only).
        mask: (H, W) bool, ``heatmap > threshold`` (read-only).
        score: the image's score, the heatmap's maximum.
        defect_pixels: number of pixels above the threshold.
        threshold: the threshold ``mask`` used.

    Example:
        >>> result = runtime.infer("bundles/brn", "image.tiff")
        >>> result.score > result.threshold, result.defect_pixels
        (True, 42)
    """

    heatmap: np.ndarray = field(repr=False, default=None)
    mask: np.ndarray = field(repr=False, default=None)
    score: float = 0.0
    defect_pixels: int = 0
    threshold: float = 0.5

    @classmethod
    def from_heatmap(cls, heatmap: np.ndarray, threshold: float, source: str = "array") -> "HeatmapResult":
        heatmap = np.ascontiguousarray(heatmap, dtype=np.float32)
        mask = heatmap > threshold
        heatmap.setflags(write=False)
        mask.setflags(write=False)
        return cls(source, heatmap, mask, float(heatmap.max()), int(np.count_nonzero(mask)), float(threshold))

    @property
    def is_defective(self) -> bool:
        """True when any pixel is above the threshold."""
        return self.defect_pixels > 0

    def summary(self) -> dict[str, Any]:
        return {"score": f"{self.score:.6f}", "defect_pixels": self.defect_pixels}


@dataclass(frozen=True)
class KeypointsResult(Result):
    """Named keypoints of one image, in the source image's pixels, with their scores and an angle.

    Points use continuous pixel coordinates: (0, 0) is the top-left corner of
    the first pixel, whose centre is (0.5, 0.5).

    Attributes:
        points: name -> (x, y) in source pixels.
        scores: name -> the peak score in 0..1 that located the point.
        angle: the family's angle in degrees (e.g. a part's rotation relative to its slot), or None.
        threshold: points whose score is below it are not :attr:`found`.

    Example:
        >>> result = runtime.infer("bundles/lhrnet", "scene.png")
        >>> result.points["slot"], result.angle
        ((412.3, 188.0), -3.2)
    """

    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    angle: float | None = None
    threshold: float = 0.0

    def found(self, name: str) -> bool:
        """Whether point ``name`` scored at least the threshold."""
        return self.scores[name] >= self.threshold

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, (x, y) in self.points.items():
            row.update({f"{name}_x": f"{x:.3f}", f"{name}_y": f"{y:.3f}", f"{name}_score": f"{self.scores[name]:.4f}"})
        if self.angle is not None:
            row["angle"] = f"{self.angle:.3f}"
        return row
