"""lhrnet's training objective: CenterNet focal loss on the heatmaps, L1 on offsets and angle at the centre cells."""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["KEYPOINTS", "LhrnetLoss", "LossWeights", "centernet_focal_loss", "gather_cells"]

#: the keypoints in the order of the targets' K axis, and the network outputs that carry them
KEYPOINTS = ("slot", "part")


@dataclass(frozen=True)
class LossWeights:
    """The weights of the three terms (SPEC: 1.0, 1.0, 0.5)."""

    heatmap: float = 1.0
    offset: float = 1.0
    angle: float = 0.5


def centernet_focal_loss(predicted: torch.Tensor, target: torch.Tensor, alpha: float = 2.0,
                         beta: float = 4.0, eps: float = 1e-4) -> torch.Tensor:
    """The penalty-reduced focal loss of CenterNet over probability heatmaps, normalised by the peaks.

    ``-sum[(1-p)^a log p at peaks + (1-y)^b p^a log(1-p) elsewhere] / peaks``, with p
    clamped to [eps, 1 - eps] and computed in float32 (stable under bf16 autocast).
    """
    p = predicted.float().clamp(eps, 1.0 - eps)
    y = target.float()
    peaks = y >= 1.0 - 1e-6
    positive = torch.log(p) * (1.0 - p) ** alpha
    negative = torch.log(1.0 - p) * p ** alpha * (1.0 - y) ** beta
    total = torch.where(peaks, positive, negative).sum()
    return -total / peaks.sum().clamp(min=1)


def gather_cells(maps: torch.Tensor, cells: torch.Tensor) -> torch.Tensor:
    """Values of (B, C, h, w) ``maps`` at (B, K, 2) column, row ``cells`` -> (B, K, C)."""
    b, c, h, w = maps.shape
    index = (cells[..., 1] * w + cells[..., 0]).long()  # (B, K)
    flat = maps.float().flatten(2)  # (B, C, h*w)
    return torch.gather(flat, 2, index[:, None, :].expand(b, c, index.shape[1])).transpose(1, 2)


class LhrnetLoss:
    """The training objective of a batch (a ``training.Loss``).

    Targets as the lhrnet dataset yields them, collated: ``heatmaps`` (B, K, h, w),
    ``offsets`` (B, K, 2), ``cells`` (B, K, 2), ``angle`` (B, 2).

    Example:
        >>> loss = LhrnetLoss()
        >>> value = loss(network(inputs), targets, progress=0.3)
    """

    def __init__(self, weights: LossWeights | None = None) -> None:
        self.weights = weights or LossWeights()

    def terms(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The three unweighted terms: ``heatmap``, ``offset``, ``angle``."""
        heatmaps = torch.cat([outputs[f"heatmap_{name}"] for name in KEYPOINTS], dim=1)
        cells = targets["cells"]
        offsets = torch.stack([gather_cells(outputs[f"offset_{name}"], cells[:, k:k + 1])[:, 0]
                               for k, name in enumerate(KEYPOINTS)], dim=1)  # (B, K, 2)
        angles = gather_cells(outputs["angle"], cells)  # (B, K, 2): read at both centres
        return {"heatmap": centernet_focal_loss(heatmaps, targets["heatmaps"]),
                "offset": (offsets - targets["offsets"].float()).abs().mean(),
                "angle": (angles - targets["angle"].float()[:, None, :]).abs().mean()}

    def __call__(self, outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor],
                 progress: float) -> torch.Tensor:
        terms = self.terms(outputs, targets)
        w = self.weights
        return w.heatmap * terms["heatmap"] + w.offset * terms["offset"] + w.angle * terms["angle"]


class LhrnetDistillation:
    """A student's objective: the teacher's heatmaps, offsets and angle maps as soft targets, plus the ground truth.

    ``(1 - weight) * task + weight * soft``, where ``soft`` is the mean squared difference of
    the heatmaps (scaled by the number of cells over the number of keypoints, so that it
    weighs like the focal term of a few peaks) plus the mean absolute difference of the
    offset and angle maps where the teacher sees a point (weighted by its heatmap).

    Example:
        >>> loss = LhrnetDistillation(LhrnetLoss(), weight=0.5)
        >>> value = loss(student(inputs), teacher(inputs), targets, progress=0.3)
    """

    def __init__(self, task: LhrnetLoss, weight: float) -> None:
        self.task, self.weight = task, weight

    def soft(self, outputs: dict[str, torch.Tensor], teacher_outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """0 when the student copies the teacher."""
        student = torch.cat([outputs[f"heatmap_{name}"] for name in KEYPOINTS], dim=1).float()
        teacher = torch.cat([teacher_outputs[f"heatmap_{name}"] for name in KEYPOINTS], dim=1).float()
        cells = student.shape[-1] * student.shape[-2]
        heat = ((student - teacher) ** 2).mean() * cells / len(KEYPOINTS)
        where = teacher.amax(dim=1, keepdim=True)  # (B, 1, h, w): near either point
        maps = [f"offset_{name}" for name in KEYPOINTS] + ["angle"]
        regression = sum(((outputs[m].float() - teacher_outputs[m].float()).abs() * where).sum()
                         / where.sum().clamp(min=1e-6) / outputs[m].shape[1] for m in maps)
        return heat + regression / len(maps)

    def __call__(self, outputs: dict[str, torch.Tensor], teacher_outputs: dict[str, torch.Tensor],
                 targets: dict[str, torch.Tensor], progress: float) -> torch.Tensor:
        return ((1 - self.weight) * self.task(outputs, targets, progress)
                + self.weight * self.soft(outputs, teacher_outputs))
