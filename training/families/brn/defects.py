"""Synthetic Gaussian point defects for three-channel contrastive training (torch-free).

A defect is a small Gaussian bump (3x3 with sigma 1.3, or 3x5 -- height 3,
width 5 -- with sigma 1.0 in y and 1.5 in x, 50 % each) with an amplitude drawn
from {-80, -60, 60, 80}, built only over its footprint and added to the pixel
values; the result is clipped to 0..255.

Allocation over the three channels (Target, Ref1, Ref2) teaches the network
what counts as a defect:

* Target receives every defect.
* 1-2 defects are Target-only: they are the real defects and form the
  ground-truth mask (kernel normalised to peak 1, ``> mask_threshold``).
* The rest are split as evenly as possible (random remainder) into
  Ref1-only, Ref2-only and both-references: partial presence is background
  the network must learn to ignore.
* About ``hard_normal_rate`` of the defective patches ("hard normals") get no
  Target-only defect: differences between channels but an empty mask.
* Ref1 and Ref2 always receive different defect sets; at least one defect is
  in exactly one reference. (Two different sets can still give equal pixels in
  a degenerate case, e.g. a positive bump on a background already saturated at
  255; realistic backgrounds never are.)

Whether a patch gets defects at all is drawn with probability ``defect_rate``;
the number of defects is uniform in ``num_defects_range`` (inclusive).
Everything is drawn from the ``numpy.random.Generator`` passed in, so a sample
is a pure function of the generator's state.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from runtime.core import InvalidInputError

__all__ = [
    "Defect",
    "DefectConfig",
    "DefectKind",
    "apply_defects",
    "gaussian_kernel",
    "plan_defects",
    "synthesize_sample",
]


class DefectKind(str, enum.Enum):
    """Footprint of a defect, named height x width."""

    SMALL = "3x3"
    WIDE = "3x5"

    @property
    def shape(self) -> tuple[int, int]:
        return _SHAPES[self]

    @property
    def sigma(self) -> tuple[float, float]:
        return _SIGMAS[self]


_SHAPES = {DefectKind.SMALL: (3, 3), DefectKind.WIDE: (3, 5)}
_SIGMAS = {DefectKind.SMALL: (1.3, 1.3), DefectKind.WIDE: (1.0, 1.5)}
# The smallest image every defect kind fits into.
_MIN_HW = (max(h for h, _ in _SHAPES.values()), max(w for _, w in _SHAPES.values()))


@dataclass(frozen=True)
class DefectConfig:
    """How defects are drawn for one patch.

    Attributes:
        defect_rate: probability that a patch gets defects at all.
        num_defects_range: inclusive (min, max) number of defects of a
            defective patch; min must be at least 2 so that, next to a
            Target-only defect, one is left to tell Ref1 from Ref2.
        hard_normal_rate: fraction of defective patches with no Target-only
            defect (empty mask).
        amplitudes: peak values added to the pixels, one drawn per defect.
        mask_threshold: a Target-only defect's normalised kernel above this
            value is foreground in the mask.
    """

    defect_rate: float = 0.5
    num_defects_range: tuple[int, int] = (3, 8)
    hard_normal_rate: float = 0.05
    amplitudes: tuple[float, ...] = (-80.0, -60.0, 60.0, 80.0)
    mask_threshold: float = 0.1

    def __post_init__(self) -> None:
        for name in ("defect_rate", "hard_normal_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"{name} must be in 0..1, got {value}")
        if len(self.num_defects_range) != 2:
            raise InvalidInputError(f"num_defects_range must be (min, max), got {self.num_defects_range}")
        low, high = self.num_defects_range
        if not 2 <= low <= high:
            raise InvalidInputError(f"num_defects_range must satisfy 2 <= min <= max, got {self.num_defects_range} "
                                    f"(one Target-only defect plus one to make Ref1 and Ref2 differ)")
        if not self.amplitudes:
            raise InvalidInputError("amplitudes must not be empty")
        if not 0.0 < self.mask_threshold < 1.0:
            raise InvalidInputError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")


@dataclass(frozen=True)
class Defect:
    """One planned defect: where it is, what it looks like, which channels get it.

    ``y`` and ``x`` are the top-left corner of the footprint (rows y..y+2 and
    columns x..x+kw-1); the footprint always lies fully inside the image.
    """

    y: int
    x: int
    kind: DefectKind
    amplitude: float
    in_target: bool
    in_ref1: bool
    in_ref2: bool

    @property
    def target_only(self) -> bool:
        return self.in_target and not (self.in_ref1 or self.in_ref2)

    @property
    def footprint(self) -> tuple[slice, slice]:
        height, width = self.kind.shape
        return slice(self.y, self.y + height), slice(self.x, self.x + width)

    @property
    def center(self) -> tuple[int, int]:
        height, width = self.kind.shape
        return self.y + height // 2, self.x + width // 2


def gaussian_kernel(shape: tuple[int, int], sigma: float | tuple[float, float]) -> np.ndarray:
    """A 2-D Gaussian over ``shape``, centred, normalised so that its peak is 1.

    Args:
        shape: (height, width) of the footprint, e.g. (3, 5).
        sigma: one standard deviation for both axes or (sigma_y, sigma_x).

    Returns:
        A float32 array of ``shape`` with maximum 1.

    Raises:
        InvalidInputError: for a non-positive size or sigma.

    Example:
        >>> float(gaussian_kernel((3, 3), 1.3)[1, 1])
        1.0
    """
    sigma_y, sigma_x = (sigma, sigma) if np.isscalar(sigma) else sigma
    if min(shape) < 1 or min(sigma_y, sigma_x) <= 0:
        raise InvalidInputError(f"gaussian_kernel needs a positive shape and sigma, got {shape} and {sigma}")
    y = np.arange(shape[0]) - (shape[0] - 1) / 2
    x = np.arange(shape[1]) - (shape[1] - 1) / 2
    kernel = np.exp(-(y[:, None] ** 2 / (2 * sigma_y**2) + x[None, :] ** 2 / (2 * sigma_x**2)))
    # Even sizes have no sample at the centre: rescale so the peak is still 1.
    return (kernel / kernel.max()).astype(np.float32)


_KERNELS = {kind: gaussian_kernel(kind.shape, kind.sigma) for kind in DefectKind}


def plan_defects(height: int, width: int, rng: np.random.Generator, config: DefectConfig = DefectConfig(), *,
                 force_defect: bool = False) -> list[Defect]:
    """Draw the defects of one patch (possibly none) and their channel allocation.

    Args:
        height: image height; at least 3.
        width: image width; at least 5 (so both kinds fit).
        rng: the random generator; the plan is a pure function of its state.
        config: rates, counts and amplitudes.
        force_defect: always plan defects with at least one Target-only defect
            (no normal patch, no hard normal); used to make test images.

    Returns:
        The planned defects, Target-only ones first; empty for a normal patch.

    Raises:
        InvalidInputError: for an image smaller than 3x5.

    Example:
        >>> defects = plan_defects(128, 128, np.random.default_rng(0), force_defect=True)
        >>> any(d.target_only for d in defects)
        True
    """
    if height < _MIN_HW[0] or width < _MIN_HW[1]:
        raise InvalidInputError(f"defects need an image of at least {_MIN_HW[0]}x{_MIN_HW[1]}, "
                                f"got {height}x{width}")
    if not force_defect and rng.random() >= config.defect_rate:
        return []
    count = int(rng.integers(config.num_defects_range[0], config.num_defects_range[1] + 1))
    hard_normal = not force_defect and rng.random() < config.hard_normal_rate
    # At least one defect must remain for the references (see _split_references).
    target_only = 0 if hard_normal else min(int(rng.integers(1, 3)), count - 1)
    in_refs = [(False, False)] * target_only + _split_references(count - target_only, rng)
    return [_place(height, width, rng, config, in_ref1, in_ref2) for in_ref1, in_ref2 in in_refs]


def apply_defects(channels: np.ndarray, defects: list[Defect], *,
                  mask_threshold: float = DefectConfig.mask_threshold) -> tuple[np.ndarray, np.ndarray]:
    """Add planned defects to a copy of ``channels`` and build the ground-truth mask.

    Args:
        channels: (3, H, W) Target, Ref1, Ref2 in 0..255; not modified.
        defects: as returned by :func:`plan_defects` for this H and W.
        mask_threshold: normalised-kernel level above which a Target-only
            defect pixel is foreground.

    Returns:
        ``(image, mask)``: (3, H, W) float32 clipped to 0..255 and (H, W)
        float32 with values in {0, 1}.

    Raises:
        InvalidInputError: for channels that are not (3, H, W) or a defect
            whose footprint leaves the image.

    Example:
        >>> image, mask = apply_defects(np.full((3, 64, 64), 100, np.float32), [])
    """
    _check_channels(channels)
    image = np.array(channels, dtype=np.float32, copy=True)
    mask = np.zeros(image.shape[1:], dtype=np.float32)
    for defect in defects:
        _check_inside(defect, image.shape[1:])
        kernel = _KERNELS[defect.kind]
        rows, cols = defect.footprint
        bump = np.float32(defect.amplitude) * kernel
        for channel, present in enumerate((defect.in_target, defect.in_ref1, defect.in_ref2)):
            if present:
                image[channel, rows, cols] += bump
        if defect.target_only:
            mask[rows, cols] = np.maximum(mask[rows, cols], (kernel > mask_threshold).astype(np.float32))
    # Clip once, after every defect: overlapping bumps add up before saturating.
    np.clip(image, 0.0, 255.0, out=image)
    return image, mask


def synthesize_sample(channels: np.ndarray, rng: np.random.Generator, config: DefectConfig = DefectConfig(), *,
                      force_defect: bool = False) -> tuple[np.ndarray, np.ndarray, list[Defect]]:
    """Plan and apply the defects of one patch (or whole image).

    Args:
        channels: (3, H, W) Target, Ref1, Ref2 in 0..255, any float or integer
            dtype; not modified. H >= 3 and W >= 5.
        rng: the random generator; the sample is a pure function of its state.
        config: rates, counts, amplitudes and mask threshold.
        force_defect: always add defects with at least one Target-only defect.

    Returns:
        ``(image, mask, defects)``: (3, H, W) float32 in 0..255, (H, W) float32
        mask in {0, 1}, and the defects that were applied.

    Raises:
        InvalidInputError: for channels that are not (3, H, W) with H >= 3, W >= 5.

    Example:
        >>> patch = np.full((3, 128, 128), 120, np.float32)
        >>> image, mask, defects = synthesize_sample(patch, np.random.default_rng(0), force_defect=True)
        >>> bool(mask.any())
        True
    """
    _check_channels(channels)
    defects = plan_defects(channels.shape[1], channels.shape[2], rng, config, force_defect=force_defect)
    image, mask = apply_defects(channels, defects, mask_threshold=config.mask_threshold)
    return image, mask, defects


def _split_references(count: int, rng: np.random.Generator) -> list[tuple[bool, bool]]:
    # Groups (Ref1-only, Ref2-only, both) are dealt round-robin from a random
    # start, so their sizes differ by at most one and the remainder is random.
    groups = [(True, False), (False, True), (True, True)]
    order = rng.permutation(len(groups))
    split = [groups[order[i % len(groups)]] for i in range(count)]
    if count and all(in_refs == (True, True) for in_refs in split):
        # Only reachable with count == 1: a lone shared defect would leave
        # Ref1 and Ref2 identical, so it goes to one reference only.
        split[0] = groups[int(rng.integers(2))]
    return split


def _place(height: int, width: int, rng: np.random.Generator, config: DefectConfig,
           in_ref1: bool, in_ref2: bool) -> Defect:
    kind = DefectKind.SMALL if rng.random() < 0.5 else DefectKind.WIDE
    kernel_h, kernel_w = kind.shape
    y = int(rng.integers(0, height - kernel_h + 1))
    x = int(rng.integers(0, width - kernel_w + 1))
    amplitude = float(config.amplitudes[int(rng.integers(len(config.amplitudes)))])
    return Defect(y, x, kind, amplitude, in_target=True, in_ref1=in_ref1, in_ref2=in_ref2)


def _check_channels(channels: np.ndarray) -> None:
    shape = np.shape(channels)
    if len(shape) != 3 or shape[0] != 3:
        raise InvalidInputError(f"expected (3, H, W) channels Target, Ref1, Ref2, got shape {shape}")
    if shape[1] < _MIN_HW[0] or shape[2] < _MIN_HW[1]:
        raise InvalidInputError(f"defects need an image of at least {_MIN_HW[0]}x{_MIN_HW[1]}, "
                                f"got {shape[1]}x{shape[2]}")


def _check_inside(defect: Defect, hw: tuple[int, int]) -> None:
    kernel_h, kernel_w = defect.kind.shape
    if defect.y < 0 or defect.x < 0 or defect.y + kernel_h > hw[0] or defect.x + kernel_w > hw[1]:
        raise InvalidInputError(f"defect {kernel_h}x{kernel_w} at (y={defect.y}, x={defect.x}) "
                                f"leaves the {hw[0]}x{hw[1]} image")
