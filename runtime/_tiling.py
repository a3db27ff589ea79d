"""Patch positions and centre-region stitching, shared by training, export and runtime.

Everything here is plain integer arithmetic on numpy arrays so that the export
can bake the very same numbers into a graph and the C++ runtime can read them
back from the manifest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


def calculate_positions(length: int, patch: int, min_patches: int = 1) -> list[int]:
    """Evenly spaced patch starts covering ``length``: first at 0, last at ``length - patch``.

    Args:
        length: image extent along one axis, in pixels.
        patch: patch extent along the same axis.
        min_patches: at least this many patches (more overlap, smaller seams).

    Returns:
        The start of every patch, rounded half up to integers.

    Raises:
        ValueError: when the patch is larger than the image or a size is not positive.

    Example:
        >>> calculate_positions(500, 128, min_patches=5)
        [0, 93, 186, 279, 372]
    """
    if length <= 0 or patch <= 0 or min_patches <= 0:
        raise ValueError(f"sizes must be positive, got length={length}, patch={patch}, min_patches={min_patches}")
    if patch > length:
        raise ValueError(f"patch {patch} is larger than the image extent {length}")
    count = max(min_patches, math.ceil(length / patch))
    if length == patch:
        count = 1
    if count == 1:
        return [0]
    step = (length - patch) / (count - 1)
    return [int(math.floor(i * step + 0.5)) for i in range(count)]


@dataclass(frozen=True)
class Segment:
    """The part of one patch that survives stitching along one axis."""

    position: int  # patch start in the image
    start: int  # first kept image row/column
    stop: int  # one past the last kept image row/column

    @property
    def local(self) -> slice:
        """The kept range in patch coordinates."""
        return slice(self.start - self.position, self.stop - self.position)


def centre_segments(positions: list[int], patch: int, length: int) -> list[Segment]:
    """Split ``0..length`` among overlapping patches at the middle of each overlap.

    The first patch keeps its leading edge and the last its trailing edge, so the
    segments tile the axis exactly with no gap and no double count.
    """
    seams = [(positions[i + 1] + positions[i] + patch) // 2 for i in range(len(positions) - 1)]
    bounds = [0, *seams, length]
    return [Segment(p, bounds[i], bounds[i + 1]) for i, p in enumerate(positions)]


@dataclass(frozen=True)
class TilingPlan:
    """Where the patches of an image lie and which part of each is kept."""

    height: int
    width: int
    patch_height: int
    patch_width: int
    rows: tuple[Segment, ...]
    cols: tuple[Segment, ...]

    @classmethod
    def create(cls, height: int, width: int, patch_height: int, patch_width: int,
               min_rows: int = 1, min_cols: int = 1) -> "TilingPlan":
        ys = calculate_positions(height, patch_height, min_rows)
        xs = calculate_positions(width, patch_width, min_cols)
        return cls(height, width, patch_height, patch_width,
                   tuple(centre_segments(ys, patch_height, height)),
                   tuple(centre_segments(xs, patch_width, width)))

    @property
    def num_patches(self) -> int:
        return len(self.rows) * len(self.cols)

    def extract(self, image: np.ndarray) -> np.ndarray:
        """Cut (..., C, H, W) into (..., N, C, ph, pw) patches in row-major order."""
        patches = [image[..., r.position:r.position + self.patch_height, c.position:c.position + self.patch_width]
                   for r in self.rows for c in self.cols]
        return np.stack(patches, axis=-4)

    def stitch(self, patches: np.ndarray) -> np.ndarray:
        """Inverse of :meth:`extract` keeping each patch's centre region: (..., N, C, ph, pw) -> (..., C, H, W)."""
        if patches.shape[-4] != self.num_patches:
            raise ValueError(f"expected {self.num_patches} patches, got {patches.shape[-4]}")
        out = np.empty(patches.shape[:-4] + patches.shape[-3:-2] + (self.height, self.width), patches.dtype)
        index = 0
        for r in self.rows:
            for c in self.cols:
                out[..., r.start:r.stop, c.start:c.stop] = patches[..., index, :, r.local, c.local]
                index += 1
        return out

    def to_manifest(self) -> dict:
        """The tiling as the manifest records it (what a runtime needs to redo it)."""
        return {
            "patch": [self.patch_height, self.patch_width],
            "positions_y": [s.position for s in self.rows],
            "positions_x": [s.position for s in self.cols],
            "keep_y": [[s.start, s.stop] for s in self.rows],
            "keep_x": [[s.start, s.stop] for s in self.cols],
            "stitching": "centre-region",
        }
