"""Checkpoints: plain dicts of tensors and primitives, loadable with ``torch.load(weights_only=True)``.

Every checkpoint holds the generic keys (``family``, ``variant``, ``arch``,
``model_state_dict``, ``epoch``, ``seed``, ``metrics``, ``train_args``,
``versions``) plus its family's own (:meth:`TrainingFamily.checkpoint_fields`).
The family name is the key into every registry; ``arch`` rebuilds the network
without guessing.
"""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.core import ModelLoadError, atomic_write
from training._family import TrainingFamily, get_training_family

__all__ = ["REQUIRED_KEYS", "build_from_checkpoint", "library_versions", "load_checkpoint", "required_keys",
           "save_checkpoint"]

#: keys every checkpoint holds, whatever its family (``variant`` may be missing
#: from older checkpoints: the family reads it from its own keys)
REQUIRED_KEYS = ("family", "model_state_dict", "arch", "epoch", "seed")


def required_keys(family: TrainingFamily) -> tuple[str, ...]:
    """The keys a checkpoint of ``family`` must hold: :data:`REQUIRED_KEYS` and the family's own."""
    return REQUIRED_KEYS + tuple(family.required_checkpoint_keys)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that wrote a checkpoint (stored as ``versions``)."""
    return {"torch": str(torch.__version__), "numpy": np.__version__, "python": platform.python_version()}


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> Path:
    """Write a checkpoint atomically: a crash mid-save never leaves a truncated file behind.

    Args:
        path: the ``.pth`` file; its folder is created.
        payload: a dict of tensors and primitives.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Example:
        >>> save_checkpoint("runs/brn/last.pth", {"family": "brn", ...})
        PosixPath('runs/brn/last.pth')
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint without executing any pickled code.

    A checkpoint written before the ``variant`` key existed gets it from its
    family (:meth:`TrainingFamily.variant_of`).

    Args:
        path: a ``.pth`` file written by ``training.train``.

    Returns:
        The checkpoint dict, ``variant`` filled in.

    Raises:
        ModelLoadError: missing or unreadable file, missing keys, unknown family or variant.

    Example:
        >>> load_checkpoint("runs/brn/best.pth")["family"]
        'brn'
    """
    path = Path(path)
    checkpoint = _read(path)
    _check_keys(path, checkpoint, REQUIRED_KEYS)
    family = get_training_family(checkpoint["family"])
    _check_keys(path, checkpoint, required_keys(family))
    variant = checkpoint.get("variant")
    if variant is None:
        variant = family.variant_of(checkpoint)
    if variant not in family.variants():
        raise ModelLoadError(f"checkpoint {path} has variant {variant!r}; family {family.name!r} knows "
                             f"{list(family.variants())}")
    checkpoint["variant"] = variant
    return checkpoint


def build_from_checkpoint(checkpoint: dict[str, Any]) -> tuple[TrainingFamily, nn.Module]:
    """Rebuild the network a checkpoint describes and load its weights.

    Args:
        checkpoint: as :func:`load_checkpoint` returns it.

    Returns:
        ``(family, network)``: the family's training part and the network in eval mode.

    Raises:
        ModelLoadError: an unknown family, or weights that do not fit the architecture.

    Example:
        >>> family, network = build_from_checkpoint(load_checkpoint("runs/brn/best.pth"))
    """
    family = get_training_family(checkpoint["family"])
    network = family.build_network(checkpoint["arch"])
    try:
        network.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as exc:
        raise ModelLoadError(f"weights do not fit the {family.name} network {checkpoint['arch']}: {exc}") from exc
    return family, network.eval()


def _read(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise ModelLoadError(f"checkpoint {path} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def _check_keys(path: Path, checkpoint: dict[str, Any], keys: tuple[str, ...]) -> None:
    missing = [k for k in keys if k not in checkpoint]
    if missing:
        raise ModelLoadError(f"checkpoint {path} lacks keys {missing}; expected all of {list(keys)}")
