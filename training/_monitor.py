"""Watching a run: ``train.log``, one line per epoch, a progress bar on a terminal, TensorBoard event files.

Only rank 0 writes; the other processes of a distributed run keep quiet.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from tqdm import tqdm

from training._distributed import Ranks

__all__ = ["LOG_FILE", "TENSORBOARD_DIR", "Monitor", "epoch_line"]

LOG_FILE = "train.log"
TENSORBOARD_DIR = "tensorboard"

#: the package logger: train.log receives everything logged under ``training``
_PACKAGE_LOGGER = logging.getLogger("training")


class Monitor:
    """Where a run reports: a log file, the console, a progress bar and TensorBoard (rank 0 only).

    Use as a context manager; on exit the log file and event files are closed.
    """

    def __init__(self, out: Path, ranks: Ranks, *, tensorboard: bool, progress: bool, purge_step: int | None):
        self.out = out
        self.ranks = ranks
        self.progress = progress and ranks.main
        self._tensorboard = tensorboard and ranks.main
        self._purge_step = purge_step
        self._handler: logging.Handler | None = None
        self._saved_level: int | None = None
        self.writer: Any = None

    def __enter__(self) -> Monitor:
        if not self.ranks.main:
            self._saved_level = _PACKAGE_LOGGER.level
            _PACKAGE_LOGGER.setLevel(logging.WARNING)  # one voice per run
            return self
        self._handler = logging.FileHandler(self.out / LOG_FILE, encoding="utf-8")
        self._handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self._handler.setLevel(logging.INFO)
        _PACKAGE_LOGGER.addHandler(self._handler)
        if _PACKAGE_LOGGER.getEffectiveLevel() > logging.INFO:
            self._saved_level = _PACKAGE_LOGGER.level
            _PACKAGE_LOGGER.setLevel(logging.INFO)
        if self._tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            # purge_step drops what an interrupted run logged after the step it resumes from.
            self.writer = SummaryWriter(str(self.out / TENSORBOARD_DIR), purge_step=self._purge_step)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._handler is not None:
            _PACKAGE_LOGGER.removeHandler(self._handler)
            self._handler.close()
        if self._saved_level is not None:
            _PACKAGE_LOGGER.setLevel(self._saved_level)

    def bar(self, total: int, desc: str) -> tqdm:
        """A progress bar over an epoch's steps (on a terminal only; log files get the epoch line)."""
        return tqdm(total=total, desc=desc, leave=False, dynamic_ncols=True, disable=None if self.progress else True)

    def step(self, step: int, values: dict[str, float]) -> None:
        """Per-step scalars (loss, learning rate, gradient norm) at optimiser step ``step``."""
        if self.writer is not None:
            for name, value in values.items():
                self.writer.add_scalar(f"train/{name}", value, step)

    def epoch(self, step: int, split: str, train: dict[str, float], metrics: dict[str, float]) -> None:
        """Per-epoch scalars: the training means and, after an evaluation, the split's metrics."""
        if self.writer is None:
            return
        for name, value in train.items():
            self.writer.add_scalar(f"epoch/{name}", value, step)
        for name, value in metrics.items():
            self.writer.add_scalar(f"{split}/{name}", value, step)
        self.writer.flush()

    def pictures(self, step: int, pictures: Sequence[tuple[str, np.ndarray]]) -> None:
        """The family's (H, W, 3) uint8 pictures."""
        if self.writer is None:
            return
        for name, picture in pictures:
            self.writer.add_image(f"pictures/{name}", picture, step, dataformats="HWC")
        self.writer.flush()


def epoch_line(epoch: int, epochs: int, train: dict[str, float], metrics: dict[str, float], *,
               best: tuple[str, float, int] | None, seconds: float, remaining: float) -> str:
    """One readable line per epoch, e.g. ``epoch 3/30  loss 0.0412  lr 1.0e-03  pixel_auroc 0.9712  ...``.

    Args:
        epoch: the epoch that ended (0-based).
        epochs: the run's epochs.
        train: the epoch's training means (``loss``, ``lr``, ``grad_norm``).
        metrics: the evaluation's metrics ({} when the epoch was not evaluated).
        best: (metric, value, 0-based epoch) of the best evaluation so far, or None.
        seconds: the epoch's duration.
        remaining: the estimated seconds left in the run.
    """
    parts = [f"epoch {epoch + 1}/{epochs}"]
    parts += [f"{name} {_number(value)}" for name, value in train.items()]
    parts += [f"{name} {value:.4f}" for name, value in metrics.items()]
    if best is not None:
        parts.append(f"best {best[0]} {best[1]:.4f} (epoch {best[2] + 1})")
    parts.append(f"{seconds:.1f} s")
    if epoch + 1 < epochs:
        parts.append(f"eta {_duration(remaining)}")
    return "  ".join(parts)


def _number(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return f"{value:g}"
    return f"{value:.4f}" if 1e-3 <= abs(value) < 1e4 else f"{value:.2e}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
