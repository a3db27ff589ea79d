"""Checkpoints of the original project, imported as brn checkpoints.

The original scripts trained DRAEM's discriminative UNet
(``DiscriminativeSubNetwork``) and saved a dict of ``model_state_dict``,
``img_height``, ``img_width``, ``image_type``, ``epoch`` and ``seed``: no
``family``, ``arch`` or ``variant``. Its network is brn's layer for layer, under
other names (and a ``module.`` prefix when it was wrapped in ``DataParallel``):

=================================  ===========================
theirs                             ours
=================================  ===========================
``encoder_segment.block1..6``      ``encoder.blocks.0..5``
``decoder_segment.up_b, up1..4``   ``decoder.ups.0..4``
``decoder_segment.db_b, db1..4``   ``decoder.merges.0..4``
``decoder_segment.fin_out.0``      ``decoder.head``
=================================  ===========================

Inside each block the indices are the same (conv, BatchNorm, ReLU, ...; an
upsampling is Upsample, conv, BatchNorm, ReLU), and both decoders merge
``cat(up, skip)``. The base width and channel counts are read from the first
and last convolutions, and every tensor is then checked against the brn network
of that architecture.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

import torch

from runtime.core import InvalidInputError, ModelLoadError
from training.families.brn.network import build_network, check_arch

if TYPE_CHECKING:
    from training._family import TrainingFamily

__all__ = ["LAYOUT", "LAYOUT_DESCRIPTION", "import_draem_checkpoint", "is_draem_checkpoint", "our_name",
           "their_name"]

log = logging.getLogger("training.brn.legacy")

#: the value of ``imported_from`` in an imported checkpoint
LAYOUT = "draem"
#: what messages call such a checkpoint
_SOURCE = "original (DRAEM-layout) checkpoint"
#: the layout in a few words, for messages
LAYOUT_DESCRIPTION = ("the original scripts' DRAEM discriminative UNet (model_state_dict of encoder_segment.* and "
                      "decoder_segment.*, with img_height, img_width, image_type, epoch, seed)")

#: (their prefix, our prefix), module by module
_PREFIXES: tuple[tuple[str, str], ...] = (
    *((f"encoder_segment.block{i + 1}.", f"encoder.blocks.{i}.") for i in range(6)),
    ("decoder_segment.up_b.", "decoder.ups.0."),
    ("decoder_segment.db_b.", "decoder.merges.0."),
    *((f"decoder_segment.up{i}.", f"decoder.ups.{i}.") for i in range(1, 5)),
    *((f"decoder_segment.db{i}.", f"decoder.merges.{i}.") for i in range(1, 5)),
    ("decoder_segment.fin_out.0.", "decoder.head."),
)
#: what ``torch.nn.DataParallel`` puts before every name
_PARALLEL_PREFIX = "module."
#: the two sub-networks whose names identify the layout
_ROOTS = ("encoder_segment.", "decoder_segment.")
#: (their first convolution, their last): (width, in, 3, 3) and (out, width, 3, 3)
_FIRST_CONV = "encoder_segment.block1.0.weight"
_LAST_CONV = "decoder_segment.fin_out.0.weight"
#: the original's keys besides the weights (``seed`` was optional there: None becomes 0)
_KEYS = ("img_height", "img_width", "image_type", "epoch")
#: BatchNorm's step counter, which older PyTorch versions did not save
_COUNTER = "num_batches_tracked"
#: problems listed in one message
_SHOWN = 5


def our_name(theirs: str) -> str | None:
    """brn's name of the original's tensor ``theirs`` (no ``module.`` prefix); None when no module maps.

    Example:
        >>> our_name("decoder_segment.db_b.4.running_var")
        'decoder.merges.0.4.running_var'
    """
    for their_prefix, our_prefix in _PREFIXES:
        if theirs.startswith(their_prefix):
            return our_prefix + theirs[len(their_prefix):]
    return None


def their_name(ours: str) -> str:
    """The original's name of brn's tensor ``ours``.

    Raises:
        KeyError: a name outside brn's network.

    Example:
        >>> their_name("decoder.head.weight")
        'decoder_segment.fin_out.0.weight'
    """
    for their_prefix, our_prefix in _PREFIXES:
        if ours.startswith(our_prefix):
            return their_prefix + ours[len(our_prefix):]
    raise KeyError(ours)


def _without_parallel_prefix(weights: Mapping[Any, Any]) -> dict[Any, Any]:
    names = list(weights)
    if names and all(isinstance(n, str) and n.startswith(_PARALLEL_PREFIX) for n in names):
        return {n[len(_PARALLEL_PREFIX):]: v for n, v in weights.items()}
    return dict(weights)


def is_draem_checkpoint(checkpoint: Mapping[str, Any]) -> bool:
    """Whether ``checkpoint`` is in the original's layout: no ``family`` key, DRAEM's tensor names."""
    weights = checkpoint.get("model_state_dict")
    if "family" in checkpoint or not isinstance(weights, Mapping):
        return False
    return any(isinstance(n, str) and n.startswith(_ROOTS) for n in _without_parallel_prefix(weights))


def import_draem_checkpoint(checkpoint: Mapping[str, Any], family: TrainingFamily) -> dict[str, Any] | None:
    """A checkpoint of the original scripts as a brn checkpoint; None when it is in another layout.

    Args:
        checkpoint: the dict as read from the file (not modified).
        family: brn's training part (its ``variant_of`` checks the image type against the patch size).

    Returns:
        ``family``, ``arch``, ``variant``, the renamed ``model_state_dict``, ``epoch``, ``seed``,
        ``img_height``, ``img_width``, ``image_type``, ``metrics`` and ``train_args`` (empty unless the
        file has them) and ``imported_from`` (:data:`LAYOUT`). BatchNorm step counters missing from the
        file are zero.

    Raises:
        ModelLoadError: a missing key; a tensor missing, unexpected or of the wrong shape (named as
            theirs and ours, with both shapes); an unknown image type or one that does not match the
            patch size.

    Example:
        >>> import_draem_checkpoint(torch.load("model.pth", weights_only=True), family)["arch"]
        {'in_channels': 3, 'out_channels': 2, 'base_width': 64}
    """
    if not is_draem_checkpoint(checkpoint):
        return None
    missing = [k for k in _KEYS if k not in checkpoint]
    if missing:
        raise ModelLoadError(f"{_SOURCE} lacks keys {missing}; expected model_state_dict and "
                             f"{list(_KEYS)} (seed optional)")
    weights = _without_parallel_prefix(checkpoint["model_state_dict"])
    arch = _infer_arch(weights)
    state = _renamed_weights(weights, arch)
    variant = family.variant_of(dict(checkpoint))
    seed = checkpoint.get("seed")
    if seed is None:
        log.warning("the %s has no seed; recorded as 0", _SOURCE)
        seed = 0
    metrics, train_args = checkpoint.get("metrics"), checkpoint.get("train_args")
    return {
        "family": family.name, "arch": arch, "variant": variant, "model_state_dict": state,
        "epoch": checkpoint["epoch"], "seed": seed, **family.checkpoint_fields(variant, arch),
        "metrics": metrics if isinstance(metrics, dict) else {},
        "train_args": train_args if isinstance(train_args, dict) else {},
        "imported_from": LAYOUT,
    }


def _infer_arch(weights: Mapping[str, Any]) -> dict[str, int]:
    """``in_channels``, ``out_channels`` and ``base_width`` from the first and last convolutions."""
    shapes = {}
    for theirs in (_FIRST_CONV, _LAST_CONV):
        tensor = weights.get(theirs)
        if not isinstance(tensor, torch.Tensor) or tensor.dim() != 4:
            found = "missing" if tensor is None else \
                f"shape {tuple(tensor.shape)}" if isinstance(tensor, torch.Tensor) else f"a {type(tensor).__name__}"
            raise ModelLoadError(f"{_SOURCE}: tensor {theirs} (ours: {our_name(theirs)}) is {found}; "
                                 f"expected a 3x3 convolution's weight (out, in, 3, 3), which gives the network's "
                                 f"channels")
        shapes[theirs] = tuple(tensor.shape)
    arch = {"in_channels": shapes[_FIRST_CONV][1], "out_channels": shapes[_LAST_CONV][0],
            "base_width": shapes[_FIRST_CONV][0]}
    try:
        return check_arch(arch)
    except InvalidInputError as exc:
        raise ModelLoadError(f"{_SOURCE} gives no valid brn architecture: {exc}") from exc


def _expected_shapes(arch: Mapping[str, int]) -> dict[str, tuple[int, ...]]:
    """brn's tensor names and shapes for ``arch`` (built on the meta device: nothing is allocated)."""
    with torch.device("meta"):
        network = build_network(arch)
    return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}


def _renamed_weights(weights: Mapping[str, Any], arch: Mapping[str, int]) -> dict[str, torch.Tensor]:
    """``weights`` under brn's names, every tensor checked against the network of ``arch``."""
    expected = _expected_shapes(arch)
    problems: list[str] = []
    state: dict[str, torch.Tensor] = {}
    for ours, shape in expected.items():
        theirs = their_name(ours)
        tensor = weights.get(theirs)
        if tensor is None:
            if ours.endswith(_COUNTER):
                state[ours] = torch.zeros((), dtype=torch.long)
            else:
                problems.append(f"missing tensor {theirs} (ours: {ours}), expected shape {shape}")
        elif not isinstance(tensor, torch.Tensor):
            problems.append(f"{theirs} (ours: {ours}) is a {type(tensor).__name__}, expected a tensor of shape "
                            f"{shape}")
        elif tuple(tensor.shape) != shape:
            problems.append(f"tensor {theirs} (ours: {ours}) has shape {tuple(tensor.shape)}, expected {shape}")
        else:
            state[ours] = tensor
    for theirs, tensor in weights.items():
        ours = our_name(theirs) if isinstance(theirs, str) else None
        if ours not in expected:
            found = f"shape {tuple(tensor.shape)}" if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            where = "no brn counterpart" if ours is None else f"ours: {ours}, which the brn network does not have"
            problems.append(f"unexpected tensor {theirs} ({where}; {found})")
    if problems:
        more = f"; and {len(problems) - _SHOWN} more" if len(problems) > _SHOWN else ""
        raise ModelLoadError(f"{_SOURCE} does not fit the brn network {dict(arch)}: "
                             f"{'; '.join(problems[:_SHOWN])}{more}")
    return state
