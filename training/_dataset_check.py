"""What a dataset check finds, family-generic: :class:`DatasetReport` and the helpers families fill it with.

A family's :meth:`~training.TrainingFamily.check_dataset` walks its own layout
and records every problem it finds (:class:`DatasetProblem`: a path relative to
the dataset root, a short kind such as ``wrong-size``, a message, and whether it
is an error or a warning) and the number of images per split and class. Errors
are what would stop or corrupt training (an unreadable file, a wrong size or
range, a label pointing nowhere); warnings are worth a look but do not stop it
(few images, class imbalance, files the family ignores).

Images are read with the runtime's own reader and the family's input contract
(:func:`read_checked`), one at a time, so the check sees exactly what training
sees and holds one image in memory at a time. ``python -m training.check_dataset``
prints the report; training runs the check first and stops on errors.
"""

from __future__ import annotations

import enum
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence, TypeVar

import numpy as np
from tqdm import tqdm

from runtime.core import InvalidInputError, Preprocess, read_source

__all__ = ["DatasetProblem", "DatasetReport", "Severity", "SplitCounts", "image_kind", "read_checked",
           "unread_files", "with_progress"]

T = TypeVar("T")

#: problem kinds of an image file (:func:`image_kind`); families add their own (masks, labels, balance)
MISSING = "missing"
UNREADABLE = "unreadable"
WRONG_SIZE = "wrong-size"
TOO_SMALL = "too-small"
WRONG_CHANNELS = "wrong-channels"
WRONG_DTYPE = "wrong-dtype"
WRONG_RANGE = "wrong-range"
NOT_FINITE = "not-finite"
IGNORED = "ignored"

# What the runtime's reader says for each kind (runtime/_imageio.py); the first match wins, and an
# unmatched message is still reported in full, as "unreadable".
_MESSAGE_KINDS = (
    ("NaN or infinite", NOT_FINITE),
    ("look like 0..1", WRONG_RANGE),
    ("values out of range", WRONG_RANGE),
    ("uint16 values up to", WRONG_RANGE),
    ("unsupported dtype", WRONG_DTYPE),
    ("too small", TOO_SMALL),
    ("(height x width)", WRONG_SIZE),
    ("channels", WRONG_CHANNELS),
    ("ambiguous layout", WRONG_CHANNELS),
)


class Severity(str, enum.Enum):
    """Whether a problem stops training (``error``) or only deserves a look (``warning``)."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class DatasetProblem:
    """One thing wrong with a dataset.

    Attributes:
        path: the file or folder, relative to the dataset root, with ``/`` separators (``.``: the root).
        kind: a short tag, e.g. ``wrong-size``, ``not-finite``, ``image-without-mask``.
        message: what is wrong and what was expected.
        severity: an error stops training; a warning does not.
    """

    path: str
    kind: str
    message: str
    severity: Severity = Severity.ERROR

    def to_dict(self) -> dict[str, str]:
        return {"path": self.path, "kind": self.kind, "severity": self.severity.value, "message": self.message}


@dataclass
class SplitCounts:
    """The images of one split and how they divide into the family's classes.

    Attributes:
        images: images listed in the split (readable or not).
        classes: images per class (brn: ``good`` and each defect category; lhrnet: each scene kind,
            which may overlap, so they need not add up to ``images``).
    """

    images: int = 0
    classes: dict[str, int] = field(default_factory=dict)

    def add(self, name: str, count: int = 1) -> None:
        self.classes[name] = self.classes.get(name, 0) + count


@dataclass
class DatasetReport:
    """Everything a family's dataset check found (:meth:`training.TrainingFamily.check_dataset`).

    Attributes:
        root: the dataset root.
        family: the family whose layout was checked.
        variant: the input geometry the images were checked against.
        problems: errors and warnings, in the order found.
        splits: images per split and class, in the family's split order.
        files_read: image and label files read.

    Example:
        >>> family = get_training_family("brn")
        >>> report = family.check_dataset(Path("data/brn"), family.variants()[0])
        >>> report.ok, report.splits["train"].classes
        (True, {'good': 60})
    """

    root: Path
    family: str
    variant: str
    problems: list[DatasetProblem] = field(default_factory=list)
    splits: dict[str, SplitCounts] = field(default_factory=dict)
    files_read: int = 0

    # -- recording ---------------------------------------------------------------------------------------------
    def relative(self, path: str | os.PathLike[str]) -> str:
        """``path`` relative to the root, ``/``-separated (as given when it lies outside the root)."""
        path = Path(path)
        try:
            text = path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)
        return text or "."

    def error(self, path: str | os.PathLike[str], kind: str, message: str) -> None:
        """Record an error about ``path`` (a file or folder under the root)."""
        self._add(path, kind, message, Severity.ERROR)

    def warn(self, path: str | os.PathLike[str], kind: str, message: str) -> None:
        """Record a warning about ``path``."""
        self._add(path, kind, message, Severity.WARNING)

    def _add(self, path: str | os.PathLike[str], kind: str, message: str, severity: Severity) -> None:
        # Messages from the readers name the full path; the report names paths relative to the root.
        relative = self.relative(path)
        message = message.replace(str(path), relative)
        if str(self.root) != ".":  # other paths under the root that the message names
            message = message.replace(str(self.root) + os.sep, "")
        self.problems.append(DatasetProblem(relative, kind, message, severity))

    def split(self, name: str) -> SplitCounts:
        """The counts of split ``name``, created empty on first use."""
        return self.splits.setdefault(name, SplitCounts())

    # -- reading -------------------------------------------------------------------------------------------------
    @property
    def errors(self) -> list[DatasetProblem]:
        return [p for p in self.problems if p.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[DatasetProblem]:
        return [p for p in self.problems if p.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """No errors (warnings allowed): training may start."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready primitives (what ``--json FILE`` writes)."""
        return {"root": str(self.root), "family": self.family, "variant": self.variant, "ok": self.ok,
                "errors": len(self.errors), "warnings": len(self.warnings), "files_read": self.files_read,
                "splits": {name: {"images": s.images, "classes": dict(s.classes)} for name, s in self.splits.items()},
                "problems": [p.to_dict() for p in self.problems]}

    def balance_table(self) -> str:
        """Images per split and class, as an aligned text table."""
        classes = list(dict.fromkeys(c for s in self.splits.values() for c in s.classes))
        header = ["split", "images", *classes]
        rows = [[name, str(s.images), *(str(s.classes.get(c, 0)) for c in classes)]
                for name, s in self.splits.items()]
        return _table([header, *rows], right=range(1, len(header)))

    def problem_lines(self, limit: int | None = None) -> list[str]:
        """One aligned line per problem (errors first), at most ``limit`` of them, then what was left out."""
        ordered = self.errors + self.warnings
        shown = ordered if limit is None else ordered[:limit]
        lines = _table([[p.severity.value, p.kind, p.path, p.message] for p in shown]).splitlines() if shown else []
        if len(shown) < len(ordered):
            lines.append(f"... and {len(ordered) - len(shown)} more (--json FILE lists every one)")
        return lines

    def kind_counts(self, problems: Sequence[DatasetProblem] | None = None) -> str:
        """``"wrong-size 3, not-finite 1"``: how many ``problems`` (default: all, errors first) of each kind."""
        counts = Counter(p.kind for p in (self.errors + self.warnings if problems is None else problems))
        return ", ".join(f"{kind} {n}" for kind, n in counts.items())

    def format(self, limit: int | None = 50) -> str:
        """The whole report as text: what was checked, the class balance, the problems and their count."""
        total = sum(s.images for s in self.splits.values())
        lines = [f"dataset {self.root} ({self.family}, {self.variant}): {total} images in "
                 f"{len(self.splits)} split(s), {self.files_read} files read", ""]
        if self.splits:
            lines += [self.balance_table(), ""]
        lines.append(f"{_plural(len(self.errors), 'error')}, {_plural(len(self.warnings), 'warning')}"
                     + (f" ({self.kind_counts()})" if self.problems else ""))
        lines += self.problem_lines(limit)
        return "\n".join(lines)

    def error_message(self, limit: int = 5) -> str:
        """Why training will not start on this dataset: the first ``limit`` errors and how to list them all."""
        errors = self.errors
        first = "\n".join(f"  {p.path}: {p.message}" for p in errors[:limit])
        more = f"\n  ... and {len(errors) - limit} more" if len(errors) > limit else ""
        return (f"dataset {self.root} has {_plural(len(errors), 'error')} ({self.kind_counts(errors)}); the first:\n"
                f"{first}{more}\nlist them all with: python -m training.check_dataset {self.root} --family "
                f"{self.family} --variant {self.variant} (or skip the check with --no-check-dataset)")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _table(rows: Sequence[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Rows as text columns separated by two spaces; the last column is not padded."""
    right = set(right)
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = []
    for row in rows:
        cells = [cell.rjust(w) if k in right else cell.ljust(w) for k, (cell, w) in enumerate(zip(row, widths))]
        cells[-1] = row[-1].rjust(widths[-1]) if len(row) - 1 in right else row[-1]
        lines.append("  ".join(cells))
    return "\n".join(lines)


# -- helpers for the families' checks --------------------------------------------------------------------------


def image_kind(exc: InvalidInputError) -> str:
    """The problem kind of a file the runtime's reader refused (:data:`UNREADABLE` when nothing more specific)."""
    if isinstance(exc, FileNotFoundError):
        return MISSING
    message = str(exc)
    return next((kind for text, kind in _MESSAGE_KINDS if text in message), UNREADABLE)


def read_checked(report: DatasetReport, path: Path, pre: Preprocess, *, what: str | None = None) -> np.ndarray | None:
    """``path`` read as the family's input contract ``pre`` says (the runtime's reader), or None after recording why not.

    Args:
        report: where a problem is recorded (an error of the kind :func:`image_kind` gives).
        path: the image file.
        pre: the family's input contract (channels, accepted counts, source range, exact size, colour order).
        what: what the size belongs to, for messages (e.g. ``"image type 'square'"``).

    Returns:
        The (C, H, W) float32 channels the family reads, or None when the file was refused.
    """
    report.files_read += 1
    try:
        return read_source(path, pre, what=what)
    except InvalidInputError as exc:
        report.error(path, image_kind(exc), str(exc))
        return None


def unread_files(report: DatasetReport, folder: Path, read: Iterable[Path], *, why: str) -> None:
    """Warn about every visible file in ``folder`` that is not in ``read`` (the family skips it), saying ``why``."""
    read = set(read)
    for path in sorted(folder.iterdir()):
        if path.is_file() and not path.name.startswith(".") and path not in read:
            report.warn(path, IGNORED, f"{path.name} is not read: {why}")


def with_progress(items: Sequence[T], desc: str, enabled: bool) -> Iterator[T]:
    """``items`` one by one with a progress bar on a terminal when ``enabled`` (tqdm, like the other CLIs)."""
    yield from tqdm(items, desc=desc, unit="file", disable=None if enabled else True, leave=False)
