"""Publishing a folder (a bundle, a dataset): a staging folder renamed into place, under a lock, safe against SIGTERM.

A writer builds into ``.<name>.partial-*`` next to ``out`` and renames it into
place only when everything passed; a lock file next to ``out`` keeps two
writers from publishing the same folder, and :class:`TerminationGuard` turns
SIGTERM into an exception so that the same cleanup runs as for any failure.
Used by ``export.build`` and by the families' synthetic-dataset writers.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
import time
import logging
from pathlib import Path
from typing import Any, Iterator

from runtime._errors import InvalidInputError

try:
    import fcntl
except ImportError:  # not on POSIX: an exclusive lock file instead (see publish_lock)
    fcntl = None  # type: ignore[assignment]

__all__ = ["TerminationGuard", "check_destination", "make_staging", "move_into_place", "publish_folder", "publish_lock"]

log = logging.getLogger(__name__)

def make_staging(out: Path) -> Path:
    """A new empty hidden folder next to ``out`` (same file system, so publishing is a rename).

    Raises:
        InvalidInputError: the folder of ``out`` cannot be written.
    """
    staging = out.parent / f".{out.name}.partial-{time.time_ns()}"
    try:
        staging.mkdir()
    except OSError as exc:
        raise InvalidInputError(f"cannot write to {out.parent} (the folder of {out.name}): {exc.strerror}") from exc
    return staging


def move_into_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` is moved aside first and deleted only once
    the new one is in place (put back if the rename fails), so that a failure in between loses nothing."""
    if not out.exists():
        staging.rename(out)
        return
    trash = out.parent / f".{out.name}.old-{time.time_ns()}"
    out.rename(trash)
    try:
        staging.rename(out)
    except BaseException:
        trash.rename(out)
        raise
    shutil.rmtree(trash, ignore_errors=True)


class TerminationGuard:
    """While a folder is written (in the main thread), SIGTERM raises SystemExit(143) instead of killing the process.

    The default action of SIGTERM ends the process at once, so the staging folder,
    the quantizer's temporary folder and the lock were left behind; as an exception
    it runs the same ``finally`` and ``except BaseException`` clean-up as an error
    or Ctrl-C. The first SIGTERM raises; later ones are ignored so that the
    clean-up is not interrupted (SIGKILL still ends it). Inside :meth:`deferred`
    (the publishing renames) a SIGTERM is held and raised when the block ends.
    Elsewhere than the main thread Python cannot install handlers: nothing changes.
    """

    def __init__(self) -> None:
        self._previous: Any = None
        self._installed = False
        self._deferring = False
        self._pending: int | None = None

    def __enter__(self) -> "TerminationGuard":
        if threading.current_thread() is threading.main_thread():
            try:
                self._previous = signal.signal(signal.SIGTERM, self._handle)
                self._installed = True
            except ValueError:  # not the main interpreter
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._installed:
            # None: a handler installed from C that Python cannot restore; the default is the closest.
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self._previous is None else self._previous)

    def _handle(self, signum: int, frame: Any) -> None:
        if self._deferring:
            self._pending = signum
            return
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise SystemExit(128 + signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._pending is not None:
            self._handle(self._pending, None)


@contextlib.contextmanager
def publish_lock(out: Path) -> Iterator[None]:
    """Hold ``<parent>/.<name>.lock`` exclusively: one writer at a time validates, builds and publishes ``out``.

    Without it two writers of the same new ``out`` both saw it missing and both
    reported success, the second silently replacing the first. A second writer
    waits here, then finds ``out`` published and fails (or, with --force,
    replaces it). The lock file is removed when the lock is released, so a
    finished writer leaves nothing next to ``out``.

    Raises:
        InvalidInputError: the folder of ``out`` cannot be created or written.
    """
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidInputError(f"cannot create {out.parent} (the folder of {out.name}): {exc.strerror}") from exc
    lock = out.parent / f".{out.name}.lock"
    fd = _flock(lock, out) if fcntl is not None else _exclusive_lock_file(lock, out)
    try:
        yield
    finally:
        # Unlinked while still held: an export waiting on this file then gets a lock on
        # a file no longer at ``lock``, notices (_flock compares inodes) and starts over.
        lock.unlink(missing_ok=True)
        os.close(fd)


def _open_lock(lock: Path, flags: int) -> int:
    try:
        return os.open(lock, flags, 0o644)
    except FileExistsError:
        raise
    except OSError as exc:
        raise InvalidInputError(f"cannot write to {lock.parent} (for the lock file {lock.name}): {exc.strerror}") from exc


def _flock(lock: Path, out: Path) -> int:
    while True:
        fd = _open_lock(lock, os.O_RDWR | os.O_CREAT)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another process is writing %s; waiting for it to finish", out)
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, lock):
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the file while we waited: lock the current one


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)


def _exclusive_lock_file(lock: Path, out: Path) -> int:
    """Without flock: the lock file's creation is the lock; a second writer fails instead of waiting."""
    try:
        return _open_lock(lock, os.O_RDWR | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        raise InvalidInputError(f"another process is writing {out} (lock file {lock}); if none is running, "
                                f"delete the lock file") from None


def check_destination(out: Path, overwrite: bool) -> None:
    """Refuse an ``out`` that is a file, or a non-empty folder without ``overwrite``.

    Raises:
        InvalidInputError: naming ``out`` and what to do.
    """
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"{out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise InvalidInputError(f"{out} exists and is not empty; choose another folder "
                                f"or pass overwrite=True (--force) to replace it")


@contextlib.contextmanager
def publish_folder(out: Path, *, overwrite: bool) -> Iterator[Path]:
    """Context manager: build a folder in the staging folder it yields; on success it becomes ``out``.

    Under the lock of ``out`` and safe against SIGTERM; on any failure the
    staging folder is removed and ``out`` is left as it was. An empty ``out``
    is replaced; a non-empty one only with ``overwrite``.

    Raises:
        InvalidInputError: an ``out`` that cannot be written or replaced.

    Example:
        >>> with publish_folder(Path("data/scenes"), overwrite=False) as staging:
        ...     (staging / "train.json").write_text("...")
    """
    check_destination(out, overwrite)
    with TerminationGuard() as guard, publish_lock(out):
        check_destination(out, overwrite)  # again under the lock: another writer may have published it
        staging = make_staging(out)
        try:
            yield staging
            with guard.deferred():
                if out.is_dir() and not any(out.iterdir()):
                    out.rmdir()
                move_into_place(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
