"""Checkpoints: plain dicts of tensors and primitives, loadable with ``weights_only=True``."""

from __future__ import annotations

import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime._errors import ModelLoadError
from runtime._registry import FamilySpec, get_family

#: keys every checkpoint holds; the export refuses a file without them.
REQUIRED_KEYS = ("family", "model_state_dict", "arch", "img_height", "img_width", "image_type", "epoch", "seed")


def library_versions() -> dict[str, str]:
    return {"torch": str(torch.__version__), "numpy": np.__version__, "python": platform.python_version()}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write atomically: a crash mid-save never leaves a truncated checkpoint behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load and validate a checkpoint without executing any pickled code.

    Raises:
        ModelLoadError: missing or unreadable file, missing keys, unknown family.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelLoadError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise ModelLoadError(f"checkpoint {path} holds a {type(checkpoint).__name__}, expected a dict")
    missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
    if missing:
        raise ModelLoadError(f"checkpoint {path} lacks keys {missing}; expected all of {list(REQUIRED_KEYS)}")
    get_family(checkpoint["family"])
    return checkpoint


def build_from_checkpoint(checkpoint: dict[str, Any]) -> tuple[FamilySpec, nn.Module]:
    """Rebuild the network a checkpoint describes and load its weights (eval mode)."""
    family = get_family(checkpoint["family"])
    network = family.build_network(checkpoint["arch"])
    try:
        network.load_state_dict(checkpoint["model_state_dict"])
    except RuntimeError as exc:
        raise ModelLoadError(f"weights do not fit the {family.name} network {checkpoint['arch']}: {exc}") from exc
    return family, network.eval()
