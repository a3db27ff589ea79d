"""Timing several ways of doing one thing side by side, interleaved, so that a noisy neighbour hurts them all alike.

On a shared 2-core machine an absolute time means little: a build next door
doubles it. What holds is a *ratio* of two things timed in the same moments,
so every round runs each candidate once, in turn, and ratios are taken of
medians. ``runtime.tune``, the benchmark suites and the latency gates of the
test suite all time through :func:`interleaved`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping

import numpy as np


@dataclass(frozen=True)
class Timings:
    """Seconds per call of each candidate, one list per name, in round order."""

    seconds: dict[str, list[float]]

    def median(self, name: str) -> float:
        return float(np.median(self.seconds[name]))

    def percentile(self, name: str, q: float) -> float:
        return float(np.percentile(self.seconds[name], q))

    def ratio(self, slow: str, fast: str) -> float:
        """median(slow) / median(fast): how many times faster ``fast`` is (above 1: faster)."""
        return self.median(slow) / self.median(fast)

    def round_ratios(self, slow: str, fast: str) -> list[float]:
        """Per round, slow / fast: both were timed within the same moment, so load cancels best here."""
        return [s / f for s, f in zip(self.seconds[slow], self.seconds[fast])]


def interleaved(candidates: Mapping[str, Callable[[], object]], *, rounds: int = 5, warmup: int = 1) -> Timings:
    """Call every candidate ``warmup`` times untimed, then ``rounds`` times each, in turn, timing every call.

    Args:
        candidates: name -> a callable without arguments (one inference, say).
        rounds: timed calls per candidate, at least 1.
        warmup: untimed calls per candidate first (first-run allocations, lazy compilation).

    Returns:
        The :class:`Timings` of every candidate.

    Raises:
        ValueError: no candidates, or ``rounds`` below 1.

    Example:
        >>> t = interleaved({"a": lambda: sum(range(1000)), "b": lambda: sum(range(10))}, rounds=3)
        >>> len(t.seconds["a"]), t.ratio("a", "b") > 1
        (3, True)
    """
    if not candidates:
        raise ValueError("nothing to time")
    if rounds < 1:
        raise ValueError(f"rounds must be at least 1, got {rounds}")
    for call in candidates.values():
        for _ in range(warmup):
            call()
    seconds: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, call in candidates.items():
            started = time.perf_counter()
            call()
            seconds[name].append(time.perf_counter() - started)
    return Timings(seconds)
