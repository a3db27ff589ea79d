"""Which evaluation is the best so far, and when a run stops improving."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any

from runtime.core import InvalidInputError

__all__ = ["Direction", "EarlyStopping", "Metric", "Selection"]


class Direction(str, enum.Enum):
    """Which way a metric improves."""

    MAX = "max"
    MIN = "min"


@dataclass(frozen=True)
class Metric:
    """A metric name and the way it improves."""

    name: str
    direction: Direction

    def value(self, metrics: dict[str, float]) -> float:
        if self.name not in metrics:
            raise InvalidInputError(f"the evaluation returned {sorted(metrics)}, without {self.name!r}")
        return float(metrics[self.name])

    def gain(self, value: float, reference: float | None) -> float:
        """How much better ``value`` is than ``reference`` (inf when there is none; -inf for NaN)."""
        if math.isnan(value):
            return -math.inf
        if reference is None or math.isnan(reference):
            return math.inf
        return value - reference if self.direction is Direction.MAX else reference - value


@dataclass(frozen=True)
class Selection:
    """Picks the best checkpoint: by ``metric``; on a tie, by ``guard`` when there is one.

    The tie-break matters once the metric saturates (e.g. every point within 5 px):
    the guard (e.g. the mean error) still tells the epochs apart.
    """

    metric: Metric
    guard: Metric | None = None

    def is_better(self, metrics: dict[str, float], best: dict[str, float]) -> bool:
        """Whether ``metrics`` beat ``best`` (an empty dict: nothing yet)."""
        gain = self.metric.gain(self.metric.value(metrics), self.metric.value(best) if best else None)
        if gain != 0 or self.guard is None:
            return gain > 0
        return self.guard.gain(self.guard.value(metrics), self.guard.value(best)) > 0


@dataclass
class EarlyStopping:
    """Stops a run after ``patience`` evaluations without a gain above ``min_delta``.

    A gain of the guard metric above ``guard_min_delta`` also resets the count.
    Never stops before ``min_epochs`` epochs; ``patience`` 0 never stops.
    """

    metric: Metric
    patience: int = 0
    min_delta: float = 0.0
    min_epochs: int = 0
    guard: Metric | None = None
    guard_min_delta: float = 0.0
    best: float | None = None
    guard_best: float | None = None
    stale: int = 0  # evaluations since the last improvement

    def update(self, epoch: int, metrics: dict[str, float]) -> bool:
        """Record the evaluation after ``epoch`` (0-based); returns whether to stop now."""
        value = self.metric.value(metrics)
        improved = self.metric.gain(value, self.best) > self.min_delta
        if improved:
            self.best = value
        if self.guard is not None:
            guard_value = self.guard.value(metrics)
            if self.guard.gain(guard_value, self.guard_best) > self.guard_min_delta:
                self.guard_best = guard_value
                improved = True
        self.stale = 0 if improved else self.stale + 1
        return 0 < self.patience <= self.stale and epoch + 1 >= self.min_epochs

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "guard_best": self.guard_best, "stale": self.stale}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.guard_best, self.stale = state["best"], state["guard_best"], state["stale"]
