"""Which checkpoints a run writes and when, and the interrupt that makes it write one more.

``last.pth`` (everything a resume needs) after every epoch, every
``save_minutes`` during an epoch, and on SIGINT/SIGTERM; ``best.pth`` (the
deployed weights) when the selection metric improves; ``epoch_XXX.pth`` (a
resumable copy of ``last.pth``) every ``save_every`` epochs, the newest
``keep`` of them kept. Every file is written atomically.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

from training.checkpoint import save_checkpoint

__all__ = ["BEST", "LAST", "Checkpoints", "StopRequest", "run_files"]

LAST = "last.pth"
BEST = "best.pth"
_EPOCH_FILE = re.compile(r"^epoch_(\d{3,})\.pth$")


def epoch_file(epoch: int) -> str:
    """The name of the checkpoint after ``epoch`` (0-based): ``epoch_001.pth`` for the first."""
    return f"epoch_{epoch + 1:03d}.pth"


def run_files(out: Path) -> list[Path]:
    """The checkpoints a run wrote into ``out`` (what ``--force`` replaces)."""
    return sorted(p for p in out.iterdir() if p.name in (LAST, BEST) or _EPOCH_FILE.match(p.name)) \
        if out.is_dir() else []


class Checkpoints:
    """Writes a run's checkpoints by its policy (on rank 0; the other ranks write nothing)."""

    def __init__(self, out: Path, *, save_every: int, keep: int, save_minutes: float, main: bool) -> None:
        self.out = out
        self.save_every = save_every
        self.keep = keep
        self.period = save_minutes * 60.0
        self.main = main
        self._last_save = time.monotonic()

    def periodic_due(self) -> bool:
        """Whether ``save_minutes`` have passed since ``last.pth`` was last written (0: never due)."""
        return self.period > 0 and time.monotonic() - self._last_save >= self.period

    def save_last(self, payload: dict[str, Any]) -> Path:
        path = self.out / LAST
        if self.main:
            save_checkpoint(path, payload)
        self._last_save = time.monotonic()
        return path

    def save_best(self, payload: dict[str, Any]) -> None:
        if self.main:
            save_checkpoint(self.out / BEST, payload)

    def save_epoch(self, epoch: int) -> None:
        """``epoch_XXX.pth`` from the ``last.pth`` just written, when ``epoch`` is due; then drop the oldest."""
        if not (self.main and self.save_every and (epoch + 1) % self.save_every == 0):
            return
        target = self.out / epoch_file(epoch)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.unlink(missing_ok=True)
        try:
            os.link(self.out / LAST, tmp)  # last.pth is replaced by rename later, so the link keeps this state
        except OSError:  # a file system without hard links
            shutil.copyfile(self.out / LAST, tmp)
        os.replace(tmp, target)
        self._drop_old()

    def _drop_old(self) -> None:
        if not self.keep:
            return
        numbered = sorted((int(m.group(1)), p) for p in self.out.iterdir() if (m := _EPOCH_FILE.match(p.name)))
        for _, path in numbered[:-self.keep]:
            path.unlink(missing_ok=True)


class StopRequest:
    """Context manager: SIGINT and SIGTERM ask the run to stop at the next step instead of killing it.

    The run then writes ``last.pth`` and raises. A second signal of either kind
    gets the previous handler (Ctrl-C twice stops at once). Outside the main
    thread signals cannot be caught, and nothing is installed.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        self.signum = signum
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
