"""lhrnet's learning-rate schedule: linear warm-up, then cosine annealing with warm restarts (per epoch).

One pure function of the epoch, wrapped in ``LambdaLR``, so that the state a
checkpoint stores is just the epoch count: resuming needs nothing else, and
the schedule can be read off without an optimiser (``factor(epoch) * lr``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["WarmupCosineRestarts", "make_scheduler"]


@dataclass(frozen=True)
class WarmupCosineRestarts:
    """The learning rate's factor of the base rate at (fractional) ``epoch``.

    ``warmup`` epochs rise linearly from ``warmup_start`` to the base rate; then
    cycles of ``t0``, ``t0 * t_mult``, ... epochs fall from the base rate to
    ``eta_min`` along a half cosine (PyTorch's ``CosineAnnealingWarmRestarts``).

    Attributes:
        base: the base learning rate (to turn ``warmup_start`` and ``eta_min`` into factors).
        warmup: warm-up epochs (SPEC: 5).
        warmup_start: the learning rate at epoch 0 (1e-5).
        t0: epochs of the first cosine cycle (10).
        t_mult: growth of each next cycle (2).
        eta_min: the learning rate at the end of every cycle (3e-6).
    """

    base: float
    warmup: int = 5
    warmup_start: float = 1e-5
    t0: int = 10
    t_mult: int = 2
    eta_min: float = 3e-6

    def __call__(self, epoch: float) -> float:
        if epoch < self.warmup:
            rate = self.warmup_start + (self.base - self.warmup_start) * epoch / self.warmup
            return rate / self.base
        t, cycle = epoch - self.warmup, self.t0
        while t >= cycle:
            t, cycle = t - cycle, cycle * self.t_mult
        rate = self.eta_min + (self.base - self.eta_min) * (1 + math.cos(math.pi * t / cycle)) / 2
        return rate / self.base


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: WarmupCosineRestarts) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-epoch ``LambdaLR`` following ``schedule``."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
