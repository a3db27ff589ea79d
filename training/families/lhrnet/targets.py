"""lhrnet's training targets and the decoding of its outputs (PyTorch), on the stride-4 grid.

Coordinates are continuous input pixels (0 is the left/top edge of the first
pixel). A point at x falls in grid column ``col = floor(x / 4)``; its offset is
``du = x / 4 - col - 0.5`` in [-0.5, 0.5), so that decoding
``x = (col + 0.5 + du) * 4`` gives x back exactly. The heatmap target is a
Gaussian of sigma 1.5 cells centred on that cell (peak exactly 1 there), zero
beyond 4 cells; offsets and the angle are supervised at the centre cells only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["CUTOFF", "SIGMA", "STRIDE", "Decoded", "Targets", "decode", "make_targets", "valid_cells"]

STRIDE = 4
SIGMA = 1.5
CUTOFF = 4.0  # cells: the Gaussian is zero beyond this distance from the centre cell


@dataclass
class Targets:
    """The targets of one image (K keypoints on an h x w grid).

    Attributes:
        heatmaps: (K, h, w) float32, 1 at each centre cell.
        offsets: (K, 2) float32 du, dv of each point within its centre cell.
        cells: (K, 2) int64 column, row of each centre cell.
        angle: (2,) float32 sin and cos of the angle.
    """

    heatmaps: torch.Tensor
    offsets: torch.Tensor
    cells: torch.Tensor
    angle: torch.Tensor


def make_targets(points: torch.Tensor, angle_degrees: float, grid_hw: tuple[int, int]) -> Targets:
    """Targets of K points (K, 2) x, y in input pixels on a (h, w) grid of stride 4.

    Points on or beyond the right/bottom edge are put in the last cell (their
    offset then exceeds 0.5 and is clamped); points must lie inside the input.
    """
    h, w = grid_hw
    points = torch.as_tensor(points, dtype=torch.float64)
    grid = points / STRIDE
    cells = torch.stack([grid[:, 0].floor().clamp(0, w - 1), grid[:, 1].floor().clamp(0, h - 1)], dim=1)
    offsets = (grid - cells - 0.5).clamp(-0.5, 0.5)
    rows = torch.arange(h, dtype=torch.float64)[:, None]
    cols = torch.arange(w, dtype=torch.float64)[None, :]
    heatmaps = []
    for col, row in cells.tolist():
        squared = (cols - col) ** 2 + (rows - row) ** 2
        gaussian = torch.exp(-squared / (2 * SIGMA ** 2))
        heatmaps.append(torch.where(squared <= CUTOFF ** 2, gaussian, torch.zeros_like(gaussian)))
    radians = math.radians(angle_degrees)
    return Targets(torch.stack(heatmaps).float(), offsets.float(), cells.long(),
                   torch.tensor([math.sin(radians), math.cos(radians)], dtype=torch.float32))


def valid_cells(valid: torch.Tensor) -> torch.Tensor:
    """(B, 1, H, W) validity mask of the input (1 image, 0 padding) -> (B, 1, H/4, W/4) bool: cells mostly image."""
    return F.avg_pool2d(valid.float(), STRIDE) > 0.5


@dataclass
class Decoded:
    """Decoded keypoints of a batch, in input pixels.

    Attributes:
        points: (B, K, 2) x, y.
        scores: (B, K) heatmap peak values.
        angle: (B,) degrees, read at the keypoints' peaks (the mean of their (sin, cos)).
    """

    points: torch.Tensor
    scores: torch.Tensor
    angle: torch.Tensor


def decode(heatmaps: torch.Tensor, offsets: torch.Tensor, angle: torch.Tensor, valid: torch.Tensor) -> Decoded:
    """Keypoints from the network's outputs: mask padding cells, argmax, add the offset.

    Args:
        heatmaps: (B, K, h, w) in 0..1.
        offsets: (B, K, 2, h, w) du, dv in cells.
        angle: (B, 2, h, w) sin, cos.
        valid: (B, 1, 4h, 4w) the input's validity mask.

    Returns:
        The points at ``((col + 0.5 + du) * 4, (row + 0.5 + dv) * 4)`` of each heatmap's
        highest valid cell, their scores, and the angle.
    """
    b, k, h, w = heatmaps.shape
    masked = torch.where(valid_cells(valid), heatmaps.float(), torch.full_like(heatmaps.float(), -1.0))
    scores, index = masked.flatten(2).max(dim=2)  # (B, K)
    rows, cols = torch.div(index, w, rounding_mode="floor"), index % w
    flat_offsets = offsets.float().flatten(3)  # (B, K, 2, h*w)
    picked = torch.gather(flat_offsets, 3, index[:, :, None, None].expand(b, k, 2, 1))[..., 0]  # (B, K, 2)
    x = (cols.float() + 0.5 + picked[:, :, 0]) * STRIDE
    y = (rows.float() + 0.5 + picked[:, :, 1]) * STRIDE
    flat_angle = angle.float().flatten(2)  # (B, 2, h*w)
    vectors = torch.gather(flat_angle, 2, index[:, None, :].expand(b, 2, k)).mean(dim=2)  # (B, 2)
    degrees = torch.atan2(vectors[:, 0], vectors[:, 1]) * (180.0 / math.pi)  # ONNX has no rad2deg
    return Decoded(torch.stack([x, y], dim=2), scores.clamp(min=0.0), degrees)
