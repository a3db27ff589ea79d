"""The brn training objective: focal loss whose gamma follows a schedule over training.

gamma rises from ``start`` to ``end`` as training progresses (``t`` = progress
in 0..1); a larger gamma down-weights the easy pixels more, so the network
first learns the defects at all and then concentrates on the hard ones. The
shape of the rise (:class:`ScheduleShape`, ``--gamma-schedule``):

* ``cosine`` (the default, the SPEC's): ``gs + (ge - gs) * (1 - cos(pi t)) / 2``;
  flat at both ends, steepest in the middle.
* ``linear``: ``gs + (ge - gs) * t``; a constant rate.
* ``exponential``: geometric interpolation ``gs * (ge / gs) ** t``; a constant
  *ratio* per step, so the change is slow where gamma is small and fast where
  it is large (rising: slow start, fast end). Needs ``gs > 0`` and ``ge > 0``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from torch import nn

from runtime.core import InvalidInputError

__all__ = ["BrnLoss", "FocalLoss", "GammaSchedule", "ScheduleShape"]


class ScheduleShape(str, enum.Enum):
    """How gamma moves from its start to its end value (see the module docstring)."""

    COSINE = "cosine"
    LINEAR = "linear"
    EXPONENTIAL = "exponential"


@dataclass(frozen=True)
class GammaSchedule:
    """Focal gamma as a function of training progress t in 0..1.

    Attributes:
        start: gamma at t = 0 (>= 0; > 0 for ``exponential``).
        end: gamma at t = 1 (>= 0; > 0 for ``exponential``).
        shape: the curve in between (a :class:`ScheduleShape` or its value).

    Raises:
        InvalidInputError: a negative or non-finite gamma, an unknown shape,
            or an ``exponential`` schedule with a gamma of 0.

    Example:
        >>> GammaSchedule(1.0, 3.0)(0.5)
        2.0
        >>> GammaSchedule(1.0, 4.0, "exponential")(0.5)
        2.0
    """

    start: float = 1.0
    end: float = 3.0
    shape: ScheduleShape = ScheduleShape.COSINE

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "shape", ScheduleShape(self.shape))
        except ValueError:
            raise InvalidInputError(f"gamma schedule shape must be one of {[s.value for s in ScheduleShape]}, "
                                    f"got {self.shape!r}") from None
        for name in ("start", "end"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"gamma {name} must be a finite number >= 0, got {value!r}")
        if self.shape is ScheduleShape.EXPONENTIAL and min(self.start, self.end) <= 0:
            raise InvalidInputError(f"an exponential gamma schedule interpolates geometrically (start * (end / "
                                    f"start) ** t) and needs start > 0 and end > 0, got {self.start} and "
                                    f"{self.end}; use the cosine or linear schedule to start or end at 0")

    def __call__(self, progress: float) -> float:
        """Gamma at ``progress`` = t / T in 0..1 (clamped)."""
        t = min(max(progress, 0.0), 1.0)
        if self.shape is ScheduleShape.LINEAR:
            return self.start + (self.end - self.start) * t
        if self.shape is ScheduleShape.EXPONENTIAL:
            return self.start * (self.end / self.start) ** t
        return self.start + (self.end - self.start) * (1.0 - math.cos(math.pi * t)) / 2.0


class FocalLoss(nn.Module):
    """FL = -alpha_t (1 - p_t)^gamma log(p_t) over softmax class probabilities.

    ``alpha`` weighs the defect class (index 1) and ``1 - alpha`` the background;
    the one-hot targets are clamped to ``[smooth, 1 - smooth]`` (label smoothing),
    which also keeps ``log`` finite.
    """

    def __init__(self, alpha: float = 0.75, smooth: float = 1e-5) -> None:
        super().__init__()
        if not 0.0 <= alpha <= 1.0:
            raise InvalidInputError(f"focal alpha must be in 0..1, got {alpha}")
        self.alpha = alpha
        self.smooth = smooth
        self.gamma = 2.0

    def forward(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """logits (B, 2, H, W), mask (B, 1, H, W) or (B, H, W) in {0, 1} -> scalar loss."""
        target = mask.reshape(logits.shape[0], *logits.shape[2:]).long()
        probs = torch.softmax(logits.float(), dim=1)
        one_hot = nn.functional.one_hot(target, num_classes=logits.shape[1]).permute(0, 3, 1, 2).float()
        one_hot = one_hot.clamp(self.smooth, 1.0 - self.smooth)
        # Clamped so that a non-integer gamma never sees a negative base.
        pt = ((one_hot * probs).sum(dim=1) + self.smooth).clamp(max=1.0)
        alpha_t = torch.where(target == 1, self.alpha, 1.0 - self.alpha)
        loss = -alpha_t * torch.pow(1.0 - pt, self.gamma) * torch.log(pt)
        return loss.mean()


class BrnLoss:
    """Focal loss whose gamma follows a :class:`GammaSchedule` over training (a ``training.Loss``).

    Example:
        >>> loss = BrnLoss(FocalLoss(alpha=0.75), GammaSchedule(1.0, 3.0))
        >>> value = loss(logits, masks, progress=0.5)   # gamma 2.0
    """

    def __init__(self, focal: FocalLoss, schedule: GammaSchedule) -> None:
        self.focal = focal
        self.schedule = schedule

    def __call__(self, outputs: torch.Tensor, targets: torch.Tensor, progress: float) -> torch.Tensor:
        """Logits (B, 2, H, W) and masks (B, 1, H, W) at ``progress`` in 0..1 -> scalar loss."""
        self.focal.gamma = self.schedule(progress)
        return self.focal(outputs, targets)


class BrnDistillation:
    """A student's objective: the teacher's per-pixel class probabilities as soft targets, plus the ground truth.

    ``(1 - weight) * task + weight * KL(teacher || student)``, the KL divergence of the
    two-class (background, defect) softmax distributions per pixel at ``temperature``,
    scaled by temperature squared (so that its gradients keep their size whatever the
    temperature), averaged over pixels. The teacher's soft heatmap carries what the
    ground truth's hard mask cannot: how defect-like the pixels around a defect are.

    Example:
        >>> loss = BrnDistillation(BrnLoss(FocalLoss(), GammaSchedule(1.0, 3.0)), weight=0.5)
        >>> value = loss(student_logits, teacher_logits, masks, progress=0.5)
    """

    def __init__(self, task: BrnLoss, weight: float, temperature: float = 1.0) -> None:
        self.task, self.weight, self.temperature = task, weight, temperature

    def soft(self, outputs: torch.Tensor, teacher_outputs: torch.Tensor) -> torch.Tensor:
        """KL(teacher || student) per pixel, averaged (0 when the student copies the teacher)."""
        t = self.temperature
        student = torch.log_softmax(outputs.float() / t, dim=1)
        teacher = torch.log_softmax(teacher_outputs.float() / t, dim=1)
        return (teacher.exp() * (teacher - student)).sum(dim=1).mean() * t * t

    def __call__(self, outputs: torch.Tensor, teacher_outputs: torch.Tensor, targets: torch.Tensor,
                 progress: float) -> torch.Tensor:
        return ((1 - self.weight) * self.task(outputs, targets, progress)
                + self.weight * self.soft(outputs, teacher_outputs))
