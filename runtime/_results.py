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

    def to_dict(self) -> dict[str, Any]:
        """The result as plain JSON-ready values (no arrays): ``json.dumps(result.to_dict())`` works."""
        return {"source": self.source}


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

    def to_dict(self) -> dict[str, Any]:
        """Source, score, defect pixels, threshold and the heatmap's (height, width); the arrays are left out."""
        return {"source": self.source, "score": self.score, "defect_pixels": self.defect_pixels,
                "threshold": self.threshold, "shape": list(self.heatmap.shape) if self.heatmap is not None else None}


@dataclass(frozen=True)
class KeypointsResult(Result):
    """Named keypoints of one image, in the source image's pixels, with their scores and an angle.

    Points use continuous pixel coordinates of the image that was passed in (the
    letterbox is undone): (0, 0) is the top-left corner of the first pixel, whose
    centre is (0.5, 0.5); x grows to the right, y downwards.

    Attributes:
        points: name -> (x, y) in source pixels, in the manifest's order (``postprocess.points``;
            lhrnet: ``"slot"``, then ``"part"``).
        scores: name -> the peak score in 0..1 that located the point (same keys).
        angle: the family's angle in degrees (lhrnet: the part's rotation relative to its slot,
            counter-clockwise as displayed, in (-180, 180]), or None when the model has none.
        threshold: points whose score is below it are not :meth:`found` (the session's threshold,
            else the manifest's ``score_threshold``).

    Example:
        >>> result = runtime.infer("bundles/lhrnet", "scene.png")
        >>> result.points["slot"], result.scores["slot"], result.angle
        ((412.3, 188.0), 0.93, -3.2)
        >>> result.to_dict()["found"]
        {'slot': True, 'part': True}

    Its repr is rounded for reading: ``KeypointsResult('scene.png', slot=(412.30, 188.00)
    score 0.930, part=(97.15, 240.51) score 0.880, angle=-3.20, threshold=0.1)``.
    """

    points: dict[str, tuple[float, float]] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)
    angle: float | None = None
    threshold: float = 0.0

    def found(self, name: str) -> bool:
        """Whether point ``name`` scored at least the threshold.

        Raises:
            KeyError: for a name the model has no point for (the names are ``points``' keys).
        """
        return self.scores[name] >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """``{"source", "points": {name: [x, y]}, "scores", "found", "angle", "threshold"}``, JSON-ready."""
        return {"source": self.source, "points": {n: [float(x), float(y)] for n, (x, y) in self.points.items()},
                "scores": dict(self.scores), "found": {n: self.found(n) for n in self.scores},
                "angle": self.angle, "threshold": self.threshold}

    def __repr__(self) -> str:
        points = ", ".join(f"{n}=({x:.2f}, {y:.2f}) score {self.scores.get(n, float('nan')):.3f}"
                           for n, (x, y) in self.points.items())
        angle = "None" if self.angle is None else f"{self.angle:.2f}"
        return f"KeypointsResult({self.source!r}, {points}, angle={angle}, threshold={self.threshold:g})"

    def summary(self) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, (x, y) in self.points.items():
            row.update({f"{name}_x": f"{x:.3f}", f"{name}_y": f"{y:.3f}", f"{name}_score": f"{self.scores[name]:.4f}"})
        if self.angle is not None:
            row["angle"] = f"{self.angle:.3f}"
        return row
