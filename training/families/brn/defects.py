"""Synthetic Gaussian point defects for three-channel contrastive training (torch-free).

A defect is a small Gaussian bump added to the pixel values, built only over
its footprint; the result is clipped to 0..255. Its kernel is drawn with equal
probability from ``DefectConfig.kernels`` -- by default the reference's two,
3x3 with sigma 1.3 and 3x5 (height 3, width 5) with sigma 1.0 in y and 1.5 in
x (``--defect-kernels 3x3:1.3 3x5:1.0,1.5``) -- and its amplitude (the bump's
peak) from ``DefectConfig.amplitudes``, by default {-80, -60, 60, 80}
(``--amplitudes``). The project behind brn first used +-30..50 and raised it to
+-60..80; a model trained only on strong defects learns to ignore faint ones
and misses them at image level, so add the faint amplitudes your plant's
defects have.

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

Optional line negatives (``line_negative_rate``, ``--line-negatives``): a
thin line (1-2 px wide, horizontal or vertical, half of them slightly
slanted, across half to all of the patch, amplitude +-15..40) added to Target
only, with an EMPTY mask: the network learns that a stripe present in Target
alone is not a defect. A line negative gets no point defects. Per patch:

* with probability ``line_negative_rate`` (f): a line negative;
* otherwise, with probability ``defect_rate`` (r): point defects;
* otherwise: untouched.

So f = 0.2 and r = 0.5 give 20 % line negatives, 40 % point defects and 40 %
untouched patches (the project's earlier data strategy); f = 0 (the default)
draws nothing for it and gives exactly the point-defect-only samples.

The number of defects is uniform in ``num_defects_range`` (inclusive).
Everything is drawn from the ``numpy.random.Generator`` passed in, so a sample
is a pure function of the generator's state.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass

import numpy as np

from runtime.core import InvalidInputError

__all__ = [
    "DEFAULT_AMPLITUDES",
    "DEFAULT_KERNELS",
    "Defect",
    "DefectConfig",
    "DefectKernel",
    "DefectKind",
    "LineNegative",
    "apply_defects",
    "apply_line_negative",
    "gaussian_kernel",
    "plan_defects",
    "plan_line_negative",
    "synthesize_sample",
]

_KERNEL_TEXT = re.compile(r"^\s*(\d+)\s*x\s*(\d+)\s*:\s*([^,\s]+)\s*(?:,\s*([^,\s]+)\s*)?$", re.IGNORECASE)


@dataclass(frozen=True)
class DefectKernel:
    """The footprint and spread of a Gaussian defect, written ``HxW:SIGMA`` or ``HxW:SIGMA_Y,SIGMA_X``.

    Odd and even sizes are both fine: an even size has no centre pixel and its
    four (or two) middle pixels share the peak.

    Attributes:
        height: footprint rows (>= 1).
        width: footprint columns (>= 1).
        sigma_y: standard deviation along y in pixels (> 0).
        sigma_x: standard deviation along x in pixels (> 0).

    Raises:
        InvalidInputError: a size below 1 or a sigma that is not a positive number.

    Example:
        >>> DefectKernel.parse("3x5:1.0,1.5")
        DefectKernel(height=3, width=5, sigma_y=1.0, sigma_x=1.5)
        >>> str(DefectKernel(3, 3, 1.3, 1.3))
        '3x3:1.3'
    """

    height: int
    width: int
    sigma_y: float
    sigma_x: float

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise InvalidInputError(f"defect kernel {name} must be an integer >= 1, got {value!r}")
            object.__setattr__(self, name, int(value))
        for name in ("sigma_y", "sigma_x"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) \
                    or not math.isfinite(value) or value <= 0:
                raise InvalidInputError(f"defect kernel {name} must be a number > 0, got {value!r}")
            object.__setattr__(self, name, float(value))

    @classmethod
    def parse(cls, text: str) -> DefectKernel:
        """The kernel that ``text`` (``HxW:SIGMA`` or ``HxW:SIGMA_Y,SIGMA_X``) spells.

        Raises:
            InvalidInputError: text of another form, a size below 1 or a sigma <= 0.
        """
        match = _KERNEL_TEXT.match(str(text))
        if match is None:
            raise InvalidInputError(f"defect kernel {text!r} is not HxW:SIGMA or HxW:SIGMA_Y,SIGMA_X "
                                    f"(e.g. 3x3:1.3 or 3x5:1.0,1.5)")
        height, width, sigma_y, sigma_x = match.groups()
        try:
            sy = float(sigma_y)
            sx = sy if sigma_x is None else float(sigma_x)
        except ValueError:
            raise InvalidInputError(f"defect kernel {text!r}: the sigmas must be numbers (e.g. 3x5:1.0,1.5)") \
                from None
        return cls(int(height), int(width), sy, sx)

    def __str__(self) -> str:
        sigma = repr(self.sigma_y) if self.sigma_y == self.sigma_x else f"{self.sigma_y!r},{self.sigma_x!r}"
        return f"{self.height}x{self.width}:{sigma}"

    def config_text(self) -> str:
        """How ``config.yaml`` and the command line spell this kernel (see :meth:`parse`)."""
        return str(self)

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the footprint."""
        return self.height, self.width

    @property
    def sigma(self) -> tuple[float, float]:
        """(sigma_y, sigma_x)."""
        return self.sigma_y, self.sigma_x

    @property
    def values(self) -> np.ndarray:
        """The normalised kernel (peak 1) over the footprint; shared, do not modify."""
        return _kernel_values(self)


class DefectKind:
    """The reference's two kernels, by name (a ``Defect.kind`` is any :class:`DefectKernel`)."""

    SMALL = DefectKernel(3, 3, 1.3, 1.3)
    WIDE = DefectKernel(3, 5, 1.0, 1.5)


#: the reference's kernels, drawn 50 % each
DEFAULT_KERNELS: tuple[DefectKernel, ...] = (DefectKind.SMALL, DefectKind.WIDE)
#: the reference's amplitudes (the project's earlier +-30..50 missed faint defects less but learned weaker ones)
DEFAULT_AMPLITUDES: tuple[float, ...] = (-80.0, -60.0, 60.0, 80.0)
#: the largest amplitude a 0..255 image can show
MAX_AMPLITUDE = 255.0

# Line negatives: widths, |amplitude| range, the share and largest slope of slanted
# lines (pixels across per pixel along) and the least length (a fraction of the patch).
_LINE_WIDTHS = (1, 2)
_LINE_AMPLITUDE = (15.0, 40.0)
_LINE_SLANTED = 0.5
_LINE_MAX_SLOPE = 0.05
_LINE_MIN_LENGTH = 0.5


@dataclass(frozen=True)
class DefectConfig:
    """How defects are drawn for one patch.

    Attributes:
        defect_rate: probability that a patch (that is not a line negative)
            gets defects at all.
        num_defects_range: inclusive (min, max) number of defects of a
            defective patch; min must be at least 2 so that, next to a
            Target-only defect, one is left to tell Ref1 from Ref2.
        hard_normal_rate: fraction of defective patches with no Target-only
            defect (empty mask).
        amplitudes: peak values added to the pixels, one drawn per defect with
            equal probability (repeat a value to draw it more often); each
            nonzero with ``|a| <= 255``.
        mask_threshold: a Target-only defect's normalised kernel above this
            value is foreground in the mask.
        kernels: the defect kernels, one drawn per defect with equal
            probability.
        line_negative_rate: probability that a patch is a line negative (a
            Target-only line, empty mask, no point defects); 0 draws nothing.

    Raises:
        InvalidInputError: a value out of range, naming the field.

    Example:
        >>> config = DefectConfig(amplitudes=(-50.0, 50.0), kernels=(DefectKernel.parse("5x5:1.5"),))
        >>> config.footprint
        (5, 5)
    """

    defect_rate: float = 0.5
    num_defects_range: tuple[int, int] = (3, 8)
    hard_normal_rate: float = 0.05
    amplitudes: tuple[float, ...] = DEFAULT_AMPLITUDES
    mask_threshold: float = 0.1
    kernels: tuple[DefectKernel, ...] = DEFAULT_KERNELS
    line_negative_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("defect_rate", "hard_normal_rate", "line_negative_rate"):
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
        bad = [a for a in self.amplitudes if not (math.isfinite(a) and 0 < abs(a) <= MAX_AMPLITUDE)]
        if bad:
            raise InvalidInputError(f"amplitudes must be nonzero with |a| <= {MAX_AMPLITUDE:g}, got {bad}")
        if not self.kernels:
            raise InvalidInputError("kernels must not be empty")
        if not all(isinstance(k, DefectKernel) for k in self.kernels):
            raise InvalidInputError(f"kernels must be DefectKernel values, got {list(self.kernels)}")
        if not 0.0 < self.mask_threshold < 1.0:
            raise InvalidInputError(f"mask_threshold must be in (0, 1), got {self.mask_threshold}")

    @property
    def footprint(self) -> tuple[int, int]:
        """The smallest (height, width) that every kernel fits into."""
        return max(k.height for k in self.kernels), max(k.width for k in self.kernels)

    def check_fits(self, height: int, width: int, what: str = "image") -> None:
        """Refuse an image (or patch) that some kernel does not fit into.

        Raises:
            InvalidInputError: naming the kernels, the size and ``what``.
        """
        too_big = [str(k) for k in self.kernels if k.height > height or k.width > width]
        if too_big:
            raise InvalidInputError(f"defect kernels {too_big} do not fit the {height}x{width} {what}; expected "
                                    f"kernels of at most {height}x{width}")


@dataclass(frozen=True)
class Defect:
    """One planned defect: where it is, what it looks like, which channels get it.

    ``y`` and ``x`` are the top-left corner of the footprint (rows
    y..y+kh-1 and columns x..x+kw-1); the footprint always lies fully inside
    the image.
    """

    y: int
    x: int
    kind: DefectKernel
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


@dataclass(frozen=True)
class LineNegative:
    """One planned Target-only line (a stripe the network must learn to ignore).

    The line runs along x (``vertical`` False) or along y, over positions
    ``start .. start + length - 1``; at position ``s`` it covers the ``width``
    pixels across from ``round(offset + slope * (s - start))``, clipped to the
    image.
    """

    vertical: bool
    offset: int
    start: int
    length: int
    slope: float
    width: int
    amplitude: float


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


@functools.lru_cache(maxsize=None)
def _kernel_values(kernel: DefectKernel) -> np.ndarray:
    values = gaussian_kernel(kernel.shape, kernel.sigma)
    values.flags.writeable = False
    return values


def plan_defects(height: int, width: int, rng: np.random.Generator, config: DefectConfig = DefectConfig(), *,
                 force_defect: bool = False) -> list[Defect]:
    """Draw the defects of one patch (possibly none) and their channel allocation.

    Line negatives are drawn by :func:`synthesize_sample`, not here.

    Args:
        height: image height; at least the tallest kernel (3 by default).
        width: image width; at least the widest kernel (5 by default).
        rng: the random generator; the plan is a pure function of its state.
        config: rates, counts, kernels and amplitudes.
        force_defect: always plan defects with at least one Target-only defect
            (no normal patch, no hard normal); used to make test images.

    Returns:
        The planned defects, Target-only ones first; empty for a normal patch.

    Raises:
        InvalidInputError: for an image that some kernel does not fit into.

    Example:
        >>> defects = plan_defects(128, 128, np.random.default_rng(0), force_defect=True)
        >>> any(d.target_only for d in defects)
        True
    """
    _check_size(height, width, config)
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
        kernel = defect.kind.values
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


def plan_line_negative(height: int, width: int, rng: np.random.Generator) -> LineNegative:
    """Draw one Target-only line over an image of ``height`` x ``width``.

    Horizontal or vertical (50 % each), half of them slanted by a slope
    uniform in +-0.05 pixels across per pixel along; 1 or 2 px wide; over a
    random stretch of 50-100 % of the image; amplitude uniform in 15..40 with
    a random sign.

    Args:
        height: image height (>= 2).
        width: image width (>= 2).
        rng: the random generator; the plan is a pure function of its state.

    Returns:
        The planned line.

    Raises:
        InvalidInputError: for an image smaller than 2x2.

    Example:
        >>> line = plan_line_negative(128, 128, np.random.default_rng(0))
        >>> line.width in (1, 2)
        True
    """
    if height < max(_LINE_WIDTHS) or width < max(_LINE_WIDTHS):
        raise InvalidInputError(f"line negatives need an image of at least {max(_LINE_WIDTHS)}x"
                                f"{max(_LINE_WIDTHS)}, got {height}x{width}")
    vertical = bool(rng.random() < 0.5)
    along, across = (height, width) if vertical else (width, height)
    line_width = int(_LINE_WIDTHS[int(rng.integers(len(_LINE_WIDTHS)))])
    length = int(rng.integers(math.ceil(_LINE_MIN_LENGTH * along), along + 1))
    start = int(rng.integers(0, along - length + 1))
    offset = int(rng.integers(0, across - line_width + 1))
    slope = float(rng.uniform(-_LINE_MAX_SLOPE, _LINE_MAX_SLOPE)) if rng.random() < _LINE_SLANTED else 0.0
    amplitude = float(rng.uniform(*_LINE_AMPLITUDE)) * (1.0 if rng.random() < 0.5 else -1.0)
    return LineNegative(vertical, offset, start, length, slope, line_width, amplitude)


def apply_line_negative(channels: np.ndarray, line: LineNegative) -> tuple[np.ndarray, np.ndarray]:
    """Add a planned line to Target only, in a copy of ``channels``; the mask stays empty.

    Args:
        channels: (3, H, W) Target, Ref1, Ref2 in 0..255; not modified.
        line: as returned by :func:`plan_line_negative` for this H and W.

    Returns:
        ``(image, mask)``: (3, H, W) float32 clipped to 0..255 (Ref1 and Ref2
        unchanged) and an all-zero (H, W) float32 mask.

    Raises:
        InvalidInputError: for channels that are not (3, H, W) or a line whose
            stretch leaves the image.

    Example:
        >>> flat = np.full((3, 64, 64), 100, np.float32)
        >>> image, mask = apply_line_negative(flat, plan_line_negative(64, 64, np.random.default_rng(0)))
        >>> bool(mask.any()), bool((image[1:] == flat[1:]).all())
        (False, True)
    """
    _check_channels(channels)
    image = np.array(channels, dtype=np.float32, copy=True)
    along, across = (image.shape[1], image.shape[2]) if line.vertical else (image.shape[2], image.shape[1])
    if line.start < 0 or line.length < 1 or line.start + line.length > along:
        raise InvalidInputError(f"line from {line.start} over {line.length} px leaves the {image.shape[1]}x"
                                f"{image.shape[2]} image")
    positions = np.arange(line.start, line.start + line.length)
    first = np.rint(line.offset + line.slope * (positions - line.start)).astype(np.int64)
    target = image[0].T if line.vertical else image[0]  # a view: rows are the across axis
    for step in range(line.width):
        rows = first + step
        inside = (rows >= 0) & (rows < across)
        target[rows[inside], positions[inside]] += np.float32(line.amplitude)
    np.clip(image, 0.0, 255.0, out=image)
    return image, np.zeros(image.shape[1:], dtype=np.float32)


def synthesize_sample(channels: np.ndarray, rng: np.random.Generator, config: DefectConfig = DefectConfig(), *,
                      force_defect: bool = False) -> tuple[np.ndarray, np.ndarray, list[Defect]]:
    """Plan and apply the defects (or the line negative) of one patch or whole image.

    With probability ``config.line_negative_rate`` the patch becomes a line
    negative (:func:`plan_line_negative`: Target-only line, empty mask, no
    defects); otherwise :func:`plan_defects` decides. A rate of 0 draws
    nothing for it, so the samples are those of the point defects alone.

    Args:
        channels: (3, H, W) Target, Ref1, Ref2 in 0..255, any float or integer
            dtype; not modified. At least the largest kernel's size (3x5 by default).
        rng: the random generator; the sample is a pure function of its state.
        config: rates, counts, kernels, amplitudes and mask threshold.
        force_defect: always add defects with at least one Target-only defect
            (never a line negative).

    Returns:
        ``(image, mask, defects)``: (3, H, W) float32 in 0..255, (H, W) float32
        mask in {0, 1}, and the defects that were applied (none for a line
        negative).

    Raises:
        InvalidInputError: for channels that are not (3, H, W) or smaller than
            some kernel.

    Example:
        >>> patch = np.full((3, 128, 128), 120, np.float32)
        >>> image, mask, defects = synthesize_sample(patch, np.random.default_rng(0), force_defect=True)
        >>> bool(mask.any())
        True
    """
    _check_channels(channels)
    height, width = channels.shape[1], channels.shape[2]
    _check_size(height, width, config)
    if not force_defect and config.line_negative_rate > 0 and rng.random() < config.line_negative_rate:
        image, mask = apply_line_negative(channels, plan_line_negative(height, width, rng))
        return image, mask, []
    defects = plan_defects(height, width, rng, config, force_defect=force_defect)
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
    # One uniform draw picks the kernel: with the two default kernels, below 0.5
    # is the first, as the reference drew them.
    count = len(config.kernels)
    kind = config.kernels[min(int(rng.random() * count), count - 1)]
    kernel_h, kernel_w = kind.shape
    y = int(rng.integers(0, height - kernel_h + 1))
    x = int(rng.integers(0, width - kernel_w + 1))
    amplitude = float(config.amplitudes[int(rng.integers(len(config.amplitudes)))])
    return Defect(y, x, kind, amplitude, in_target=True, in_ref1=in_ref1, in_ref2=in_ref2)


def _check_channels(channels: np.ndarray) -> None:
    shape = np.shape(channels)
    if len(shape) != 3 or shape[0] != 3:
        raise InvalidInputError(f"expected (3, H, W) channels Target, Ref1, Ref2, got shape {shape}")


def _check_size(height: int, width: int, config: DefectConfig) -> None:
    need_h, need_w = config.footprint
    if height < need_h or width < need_w:
        raise InvalidInputError(f"defects need an image of at least {need_h}x{need_w}, got {height}x{width} "
                                f"(the defect kernels reach {need_h} rows and {need_w} columns)")


def _check_inside(defect: Defect, hw: tuple[int, int]) -> None:
    kernel_h, kernel_w = defect.kind.shape
    if defect.y < 0 or defect.x < 0 or defect.y + kernel_h > hw[0] or defect.x + kernel_w > hw[1]:
        raise InvalidInputError(f"defect {kernel_h}x{kernel_w} at (y={defect.y}, x={defect.x}) "
                                f"leaves the {hw[0]}x{hw[1]} image")
