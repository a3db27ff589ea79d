"""lhrnet's sections of a run's report: keypoint and angle errors on a split, by scene kind, and the worst cases.

Errors are distances in source pixels between the predicted and the true
points (as :func:`runtime.core.keypoint_metrics` measures them); angle errors
are compared modulo the outline's symmetry (:func:`runtime.core.angle_errors`).
A scene's error, for the table by kind and the worst cases, is the larger of
its two keypoints' errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from torch import nn

from runtime.core import angle_errors, read_image, write_png
from runtime.families.lhrnet import POINTS, draw_keypoints
from training._family import ReportSection
from training._reporting import figure, markdown_table, save_figure, shrink
from training.families.lhrnet.evaluate import Prediction, predict_split
from training.families.lhrnet.scenes import SceneKind

__all__ = ["BANDS", "report_sections"]

#: the error ranges of the table by scene kind, in source pixels: (low, high], the first from 0 inclusive
BANDS = ((0.0, 3.0), (3.0, 5.0), (5.0, 10.0), (10.0, float("inf")))
#: how many of the worst scenes the gallery shows
WORST = 4
#: the gallery's picture widths in pixels: larger camera images are scaled down after drawing, smaller
#: ones enlarged (by a whole factor, before drawing) so that the marks and caption fit
_MAX_WIDTH = 1600
_MIN_WIDTH = 512
#: the row of scenes whose label has no kinds
_UNTAGGED = "(untagged)"


def report_sections(network: nn.Module, root: str | Path, split: str, variant: str,
                    out_dir: Path) -> list[ReportSection]:
    """Keypoint and angle errors of ``network`` on ``split``, with PNGs written into ``out_dir``.

    Args:
        network: the lhrnet network.
        root: the dataset root.
        split: a labelled split (``valid`` or ``train``).
        variant: the input geometry.
        out_dir: where the figures go.

    Returns:
        "Keypoint errors" (statistics and a histogram per keypoint), "Errors by scene
        kind" (scenes per error range, counts and %), "Angle error" (statistics and a
        histogram; left out when the network predicts no angle) and "Worst cases"
        (the scenes with the largest error, truth and prediction drawn).

    Raises:
        InvalidInputError: a missing or malformed split or image.
    """
    predictions = predict_split(network, root, split, variant)
    errors = np.array([[np.linalg.norm(np.subtract(p.result.points[name], p.item.label.points[k]))
                        for k, name in enumerate(POINTS)] for p in predictions])
    angles = _angle_errors(predictions)
    sections = [_keypoint_section(errors, out_dir), _kind_section(predictions, errors.max(axis=1))]
    if angles is not None:
        sections.append(_angle_section(angles, out_dir))
    sections.append(_worst_section(predictions, errors, angles, out_dir))
    return sections


def _statistics(values: np.ndarray) -> list[float]:
    return [float(values.mean()), float(np.median(values)), float(np.percentile(values, 90)), float(values.max())]


def _keypoint_section(errors: np.ndarray, out_dir: Path) -> ReportSection:
    rows = [[name, *_statistics(errors[:, k]), f"{100 * (errors[:, k] <= 5).mean():.0f} %"]
            for k, name in enumerate(POINTS)]
    table = markdown_table(["keypoint", "mean px", "median px", "90th pct px", "max px", "within 5 px"], rows)
    fig, axes = figure(len(POINTS), columns=len(POINTS), size=(4.5, 3.2))
    edges = np.linspace(0.0, max(12.0, float(errors.max()) * 1.05), 31)
    for ax, (k, name) in zip(axes, enumerate(POINTS)):
        ax.hist(errors[:, k], edges, color="tab:blue")
        for low, _ in BANDS[1:]:
            ax.axvline(low, color="0.5", linestyle=":", linewidth=1)
        ax.set(title=f"{name} error ({len(errors)} images)", xlabel="error (source px)", ylabel="images")
    return ReportSection("Keypoint errors", table + "\n\nDotted lines: the ranges of the table by scene kind.",
                         [save_figure(fig, out_dir / "keypoint_errors.png")])


def _kinds(predictions: Sequence[Prediction]) -> list[str]:
    """The scene kinds present, the known ones in their order, then any others, then untagged scenes."""
    present = {kind for p in predictions for kind in p.item.label.kinds}
    known = [kind.value for kind in SceneKind if kind.value in present]
    untagged = [_UNTAGGED] if any(not p.item.label.kinds for p in predictions) else []
    return known + sorted(present - set(known)) + untagged


def _kind_section(predictions: Sequence[Prediction], scene_errors: np.ndarray) -> ReportSection:
    header = ["scene kind", "scenes"] + [f"{low:g}-{high:g} px" if np.isfinite(high) else f">{low:g} px"
                                        for low, high in BANDS]
    tags = [p.item.label.kinds or (_UNTAGGED,) for p in predictions]
    # the band of each scene: upper bounds belong to their band (3.0 px is in 0-3)
    bands = np.searchsorted([high for _, high in BANDS[:-1]], scene_errors, side="left")
    rows = []
    for kind in _kinds(predictions) + ["all"]:
        chosen = np.array([kind == "all" or kind in kinds for kinds in tags])
        counts = np.bincount(bands[chosen], minlength=len(BANDS))
        total = int(chosen.sum())
        rows.append([kind, total] + [f"{c} ({100 * c / total:.0f} %)" for c in counts])
    text = ("Scenes by the larger of their two keypoint errors (source px; a range holds its upper bound). "
            "A scene with several kinds counts in each of them.\n\n" + markdown_table(header, rows))
    return ReportSection("Errors by scene kind", text)


def _angle_errors(predictions: Sequence[Prediction]) -> np.ndarray | None:
    if any(p.result.angle is None for p in predictions):
        return None
    return angle_errors(np.array([p.result.angle for p in predictions]),
                        np.array([p.item.label.angle for p in predictions]),
                        np.array([p.item.label.symmetry for p in predictions]))


def _angle_section(angles: np.ndarray, out_dir: Path) -> ReportSection:
    table = markdown_table(["", "mean", "median", "90th pct", "max"], [["angle error (degrees)", *_statistics(angles)]])
    fig, (ax,) = figure(size=(6.0, 3.2))
    ax.hist(angles, np.linspace(0.0, max(10.0, float(angles.max()) * 1.05), 31), color="tab:orange")
    ax.set(title=f"angle error ({len(angles)} images)", xlabel="error (degrees, modulo the outline's symmetry)",
           ylabel="images")
    return ReportSection("Angle error", table, [save_figure(fig, out_dir / "angle_errors.png")])


def _worst_section(predictions: Sequence[Prediction], errors: np.ndarray, angles: np.ndarray | None,
                   out_dir: Path) -> ReportSection:
    worst = np.argsort(-errors.max(axis=1), kind="stable")[:WORST]
    images, rows = [], []
    for n, i in enumerate(worst, 1):
        p = predictions[i]
        label = p.item.label
        canvas = np.clip(np.round(np.moveaxis(read_image(p.item.image), 0, -1)), 0, 255).astype(np.uint8)
        factor = -(-_MIN_WIDTH // canvas.shape[1])
        canvas = canvas.repeat(factor, axis=0).repeat(factor, axis=1)
        truth = {name: tuple(factor * label.points[k]) for k, name in enumerate(POINTS)}
        predicted = {name: (factor * x, factor * y) for name, (x, y) in p.result.points.items()}
        caption = f"error {errors[i].max():.1f} px"
        if p.result.angle is not None:
            caption += f", angle {p.result.angle:.1f} (truth {label.angle:.1f})"
        name = f"worst_{n}.png"
        picture = draw_keypoints(canvas, predicted, angle=p.result.angle, truth=truth, caption=caption)
        images.append(write_png(out_dir / name, shrink(picture, _MAX_WIDTH)))
        rows.append([name, f"`{p.item.image}`", ", ".join(label.kinds) or "-", *map(float, errors[i]),
                     "-" if angles is None else float(angles[i])])
    header = ["figure", "image", "kinds", *(f"{name} error px" for name in POINTS), "angle error"]
    text = ("The scenes with the largest keypoint error, on the source image: the prediction as crosses in "
            "circles (slot green, part orange, the line the predicted angle), the truth as white rings.\n\n" +
            markdown_table(header, rows))
    return ReportSection("Worst cases", text, images)
