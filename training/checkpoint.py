"""Checkpoints: plain dicts of tensors and primitives, loadable with ``torch.load(weights_only=True)``.

Every checkpoint holds the generic keys (``family``, ``variant``, ``arch``,
``model_state_dict``, ``epoch``, ``seed``, ``metrics``, ``train_args``,
``versions``) plus its family's own (:meth:`TrainingFamily.checkpoint_fields`).
The family name is the key into every registry; ``arch`` rebuilds the network
without guessing.

A checkpoint written by another program (no ``family`` key) is imported: every
family is asked in turn (:meth:`TrainingFamily.import_checkpoint`), the one that
recognises the layout converts it, and the result carries ``imported_from``
(the layout's name) and weights only, no training state.
"""

from __future__ import annotations

import logging
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from runtime.core import InvalidInputError, ModelLoadError, atomic_write
from training._family import TrainingFamily, get_training_family, list_training_families

__all__ = ["IMPORTED_FROM", "REQUIRED_KEYS", "build_from_checkpoint", "library_versions", "load_checkpoint",
           "required_keys", "save_checkpoint"]

log = logging.getLogger("training.checkpoint")

#: keys every checkpoint holds, whatever its family (``variant`` may be missing
#: from older checkpoints: the family reads it from its own keys)
REQUIRED_KEYS = ("family", "model_state_dict", "arch", "epoch", "seed")

#: the key of an imported checkpoint that names the foreign layout it came from
IMPORTED_FROM = "imported_from"


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
    family (:meth:`TrainingFamily.variant_of`). One without a ``family`` key
    was written by another program: the family that recognises its layout
    imports it (:meth:`TrainingFamily.import_checkpoint`; logged).

    Args:
        path: a ``.pth`` file written by ``training.train``, or one a family imports.

    Returns:
        The checkpoint dict, ``variant`` filled in (``imported_from`` set when it was imported).

    Raises:
        ModelLoadError: missing or unreadable file, missing keys, unknown family or variant, a
            foreign layout no family imports, or one whose tensors do not fit.

    Example:
        >>> load_checkpoint("runs/brn/best.pth")["family"]
        'brn'
    """
    path = Path(path)
    checkpoint = _read(path)
    if "family" not in checkpoint:
        checkpoint = _import(f"checkpoint {path}", checkpoint)
    _check_keys(path, checkpoint, REQUIRED_KEYS)
    _check_fields(f"checkpoint {path}", checkpoint)
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
        checkpoint: as :func:`load_checkpoint` returns it (one without a ``family`` key is imported
            as there).

    Returns:
        ``(family, network)``: the family's training part and the network in eval mode.

    Raises:
        ModelLoadError: not a dict, missing keys or fields of the wrong type, an unknown family, an
            ``arch`` the family cannot build, or weights that do not fit the architecture.

    Example:
        >>> family, network = build_from_checkpoint(load_checkpoint("runs/brn/best.pth"))
    """
    # Callers may pass a dict they built or edited themselves, so the checks of
    # load_checkpoint are repeated here (they are cheap).
    if not isinstance(checkpoint, dict):
        raise ModelLoadError(f"checkpoint is a {type(checkpoint).__name__}, expected a dict")
    if "family" not in checkpoint:
        checkpoint = _import("checkpoint", checkpoint)
    _check_keys("checkpoint", checkpoint, REQUIRED_KEYS)
    _check_fields("checkpoint", checkpoint)
    family = get_training_family(checkpoint["family"])
    network = _build_network(family, checkpoint["arch"])
    try:
        network.load_state_dict(checkpoint["model_state_dict"])
    except (RuntimeError, TypeError, ValueError, KeyError, AttributeError) as exc:
        # RuntimeError: shape or key mismatches; the others: values that are not tensors.
        raise ModelLoadError(f"weights do not fit the {family.name} network {checkpoint['arch']} "
                             f"(checkpoint field 'model_state_dict'): {exc}") from exc
    return family, network.eval()


def _build_network(family: TrainingFamily, arch: dict[str, Any]) -> nn.Module:
    """The family's network of ``arch``; any complaint about ``arch`` becomes a ModelLoadError.

    A family raises InvalidInputError for a bad value (the same check guards its
    training options), and a careless one may let TypeError or ValueError escape;
    coming from a checkpoint, every one of them means the file cannot be loaded.
    """
    try:
        return family.build_network(arch)
    except ModelLoadError:
        raise
    except (InvalidInputError, TypeError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"checkpoint field 'arch' {arch!r} is not a valid {family.name} architecture "
                             f"(expected a dict of the settings in {family.default_arch()}): {exc}") from exc


def _import(source: str, checkpoint: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint without a ``family`` key, converted by the one family that recognises its layout.

    Raises:
        ModelLoadError: no family or several claim it, or the claiming family finds its contents wrong.
    """
    claims: list[tuple[TrainingFamily, dict[str, Any]]] = []
    for name in list_training_families():
        family = get_training_family(name)
        try:
            imported = family.import_checkpoint(checkpoint)
        except ModelLoadError as exc:
            raise ModelLoadError(f"{source}: {exc}") from exc
        if imported is not None:
            claims.append((family, imported))
    if not claims:
        missing = [k for k in REQUIRED_KEYS if k not in checkpoint]
        raise ModelLoadError(f"{source} lacks keys {missing}; expected all of {list(REQUIRED_KEYS)} (a checkpoint "
                             f"of training.train), or a foreign layout a family imports: {_imported_layouts()}")
    if len(claims) > 1:
        raise ModelLoadError(f"{source} has no 'family' key and families {[f.name for f, _ in claims]} all "
                             f"recognise its layout; add the key 'family' to say which")
    family, imported = claims[0]
    layout = imported.get(IMPORTED_FROM)
    if imported.get("family") != family.name or not isinstance(layout, str) or not layout:
        raise ModelLoadError(f"family {family.name!r} imported {source} without setting 'family' to "
                             f"{family.name!r} and {IMPORTED_FROM!r} to the layout's name")
    log.info("imported %s: a %s checkpoint, converted to family %r", source, layout, family.name)
    return imported


def _imported_layouts() -> str:
    """Every foreign layout a family imports, for messages."""
    layouts = [f"{name}: {layout}" for name in list_training_families()
               for layout in get_training_family(name).imported_layouts]
    return "; ".join(layouts) if layouts else "none"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise ModelLoadError(f"checkpoint not found: {path}")
    if not path.is_file():
        # A directory, FIFO or device: torch.load would fail obscurely or block on a FIFO.
        raise ModelLoadError(f"checkpoint {path} is not a regular file; expected a .pth file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or unsafe files
        raise ModelLoadError(f"cannot read checkpoint {path}: {exc}") from exc
    if not isinstance(checkpoint, dict):
        raise ModelLoadError(f"checkpoint {path} holds a {type(checkpoint).__name__}, expected a dict")
    return checkpoint


def _check_keys(source: str | Path, checkpoint: dict[str, Any], keys: tuple[str, ...]) -> None:
    source = source if isinstance(source, str) else f"checkpoint {source}"
    missing = [k for k in keys if k not in checkpoint]
    if missing:
        raise ModelLoadError(f"{source} lacks keys {missing}; expected all of {list(keys)}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


#: generic field -> (check, what it must be); the family checks the contents of ``arch`` itself
_FIELD_TYPES: dict[str, tuple[Any, str]] = {
    "family": (lambda v: isinstance(v, str), "a family name (str)"),
    "model_state_dict": (lambda v: isinstance(v, dict), "a dict of parameter name -> tensor"),
    "arch": (lambda v: isinstance(v, dict), "a dict of architecture settings"),
    "epoch": (_is_int, "an integer"),
    "seed": (_is_int, "an integer"),
    "variant": (lambda v: v is None or isinstance(v, str), "a variant name (str)"),
    "metrics": (lambda v: isinstance(v, dict), "a dict of metric name -> value"),
}


def _check_fields(source: str, checkpoint: dict[str, Any]) -> None:
    """The generic fields have the types the rest of the SDK relies on.

    A checkpoint is user input: without these checks a wrong type surfaces far
    away as a TypeError (``arch = "oops"``) or lands in a manifest.
    """
    for key, (ok, expected) in _FIELD_TYPES.items():
        if key in checkpoint and not ok(checkpoint[key]):
            value = checkpoint[key]
            shown = type(value).__name__ if key == "model_state_dict" else repr(value)
            raise ModelLoadError(f"{source} field {key!r} is {shown}; expected {expected}")
