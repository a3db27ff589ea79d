"""The brn training objective: focal loss with a cosine gamma schedule."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from runtime.core import InvalidInputError

__all__ = ["BrnLoss", "FocalLoss", "GammaSchedule"]


@dataclass(frozen=True)
class GammaSchedule:
    """gamma(t) = start + (end - start) * (1 - cos(pi * t / T)) / 2: slow start, slow finish."""

    start: float = 1.0
    end: float = 3.0

    def __call__(self, progress: float) -> float:
        """Gamma at ``progress`` = t / T in 0..1 (clamped)."""
        progress = min(max(progress, 0.0), 1.0)
        return self.start + (self.end - self.start) * (1.0 - math.cos(math.pi * progress)) / 2.0


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
