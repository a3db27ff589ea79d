"""lhrnet's targets, decoding, losses and keypoint metrics on hand-made tensors (border, padding, exactness)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from runtime.core import angle_errors, keypoint_metrics
from training.families.lhrnet.losses import KEYPOINTS, LhrnetLoss, centernet_focal_loss, gather_cells
from training.families.lhrnet.targets import CUTOFF, SIGMA, STRIDE, decode, make_targets, valid_cells

GRID = (64, 128)


def _perfect_outputs(points: torch.Tensor, angle: float, grid=GRID) -> dict[str, torch.Tensor]:
    """What a perfect network would output for one image's (K, 2) points."""
    targets = make_targets(points, angle, grid)
    outputs = {}
    for k, name in enumerate(KEYPOINTS):
        outputs[f"heatmap_{name}"] = targets.heatmaps[k][None, None]
        offset = torch.zeros(1, 2, *grid)
        col, row = targets.cells[k].tolist()
        offset[0, :, row, col] = targets.offsets[k]
        outputs[f"offset_{name}"] = offset
    outputs["angle"] = targets.angle[None, :, None, None].expand(1, 2, *grid).clone()
    return outputs


def _decode(outputs, valid):
    heatmaps = torch.cat([outputs[f"heatmap_{n}"] for n in KEYPOINTS], dim=1)
    offsets = torch.stack([outputs[f"offset_{n}"] for n in KEYPOINTS], dim=1)
    return decode(heatmaps, offsets, outputs["angle"], valid)


def test_targets_of_a_point_in_the_middle_of_a_cell():
    targets = make_targets(torch.tensor([[10.0, 6.0], [102.0, 50.0]]), 30.0, GRID)
    assert targets.cells.tolist() == [[2, 1], [25, 12]]
    assert targets.offsets.tolist() == [[0.0, 0.0], [0.0, 0.0]]
    heat = targets.heatmaps[0]
    assert heat[1, 2] == 1.0 and heat.max() == 1.0
    assert heat[1, 3].item() == pytest.approx(math.exp(-1 / (2 * SIGMA ** 2)))
    assert heat[1, 2 + int(CUTOFF)].item() > 0 and heat[1, 2 + int(CUTOFF) + 1].item() == 0
    assert targets.angle.tolist() == pytest.approx([0.5, math.sqrt(3) / 2])


@pytest.mark.parametrize("points", [
    [[0.0, 0.0], [511.99, 255.99]],      # the image's corners (the last pixel's far edge)
    [[3.999, 4.0], [256.5, 128.25]],     # cell boundaries
    [[37.3, 201.7], [402.9, 11.1]],
])
def test_decoding_perfect_outputs_gives_the_points_back(points):
    points = torch.tensor(points)
    decoded = _decode(_perfect_outputs(points, -42.0), torch.ones(1, 1, 256, 512))
    torch.testing.assert_close(decoded.points[0], points, atol=1e-4, rtol=0)
    assert decoded.scores.tolist() == [[1.0, 1.0]]
    assert decoded.angle.item() == pytest.approx(-42.0, abs=1e-4)


def test_decoding_ignores_peaks_in_the_padding():
    points = torch.tensor([[200.0, 100.0], [300.0, 150.0]])
    outputs = _perfect_outputs(points, 0.0)
    outputs["heatmap_slot"][0, 0, 2, 3] = 5.0  # a stronger peak in the top padding band
    valid = torch.zeros(1, 1, 256, 512)
    valid[:, :, 64:192, :] = 1.0  # a 4:1 source letterboxed: padding above and below
    decoded = _decode(outputs, valid)
    torch.testing.assert_close(decoded.points[0], points, atol=1e-4, rtol=0)
    unmasked = _decode(outputs, torch.ones(1, 1, 256, 512))
    assert unmasked.points[0, 0].tolist() == [14.0, 10.0], "the padding peak wins without the mask"


def test_a_cell_counts_as_padding_when_mostly_padding():
    valid = torch.zeros(1, 1, 8, 8)
    valid[..., :, :3] = 1.0  # columns 0..2: 3 of the 4 columns of cell 0 are image
    valid[..., :, 4:6] = 1.0  # 2 of 4 columns of cell 1: not more than half
    assert valid_cells(valid)[0, 0].tolist() == [[True, False], [True, False]]


def test_focal_loss_by_hand():
    predicted = torch.tensor([[[[0.8, 0.3], [0.1, 0.5]]]])
    target = torch.tensor([[[[1.0, 0.5], [0.0, 0.25]]]])
    expected = -(math.log(0.8) * 0.2 ** 2 + math.log(0.7) * 0.3 ** 2 * 0.5 ** 4 + math.log(0.9) * 0.1 ** 2
                 + math.log(0.5) * 0.5 ** 2 * 0.75 ** 4)
    assert centernet_focal_loss(predicted, target).item() == pytest.approx(expected, rel=1e-5)
    doubled = centernet_focal_loss(predicted.repeat(2, 1, 1, 1), target.repeat(2, 1, 1, 1))
    assert doubled.item() == pytest.approx(expected, rel=1e-5), "normalised by the number of peaks"


def test_perfect_outputs_have_no_offset_or_angle_loss_and_less_of_every_term():
    points = torch.tensor([[40.0, 40.0], [400.0, 200.0]])
    targets = make_targets(points, 12.0, GRID)
    batch = {"heatmaps": targets.heatmaps[None], "offsets": targets.offsets[None], "cells": targets.cells[None],
             "angle": targets.angle[None]}
    terms = LhrnetLoss().terms(_perfect_outputs(points, 12.0), batch)
    assert terms["offset"].item() == 0.0 and terms["angle"].item() == pytest.approx(0.0, abs=1e-7)
    wrong = _perfect_outputs(points + torch.tensor([[8.0, 0.0], [0.0, 8.0]]), -60.0)
    worse = LhrnetLoss().terms(wrong, batch)
    assert all(worse[name] > terms[name] for name in terms)


def test_gather_cells_reads_column_and_row():
    maps = torch.arange(2 * 3 * 4, dtype=torch.float32).reshape(1, 2, 3, 4)
    values = gather_cells(maps, torch.tensor([[[3, 2], [0, 1]]]))
    assert values.tolist() == [[[11.0, 23.0], [4.0, 16.0]]]


def test_keypoint_metrics_by_hand():
    truth = np.array([[[10.0, 10.0], [20.0, 20.0]], [[0.0, 0.0], [5.0, 5.0]]])
    predicted = truth + np.array([[[3.0, 4.0], [0.0, 1.5]], [[0.0, 0.0], [0.0, -10.0]]])
    m = keypoint_metrics(predicted, truth, ("slot", "part"), predicted_angle=np.array([10.0, 175.0]),
                         true_angle=np.array([12.0, -5.0]), symmetry=np.array([1, 2]))
    assert m["mae"] == pytest.approx((5 + 1.5 + 0 + 10) / 4)
    assert m["rmse"] == pytest.approx(math.sqrt((25 + 2.25 + 0 + 100) / 4))
    assert (m["hit@1px"], m["hit@2px"], m["hit@5px"]) == (0.25, 0.5, 0.75)
    assert (m["mae_slot"], m["mae_part"]) == (2.5, 5.75)
    assert m["angle_error"] == pytest.approx((2 + 0) / 2), "175 and -5 are the same pose of a 2-fold outline"
    assert angle_errors(np.array([179.0]), np.array([-179.0])).tolist() == [2.0]
    with pytest.raises(ValueError, match=r"expected predicted and true points of shape \(N, 2, 2\)"):
        keypoint_metrics(predicted[:, :1], truth, ("slot", "part"))


def test_warmup_then_cosine_warm_restarts():
    from training.families.lhrnet.schedule import WarmupCosineRestarts, make_scheduler

    schedule = WarmupCosineRestarts(base=3e-4)
    rates = [schedule(e) * 3e-4 for e in range(40)]
    assert rates[0] == pytest.approx(1e-5) and rates[5] == pytest.approx(3e-4)
    assert rates[2] == pytest.approx(1e-5 + (3e-4 - 1e-5) * 2 / 5)
    assert rates[10] == pytest.approx(3e-6 + (3e-4 - 3e-6) / 2), "half-way through the first 10-epoch cycle"
    assert rates[15] == pytest.approx(3e-4) and rates[35] == pytest.approx(3e-4), "restarts after 10, then 20 epochs"
    assert min(rates[5:15]) > 3e-6 and rates[14] < rates[6]
    # LambdaLR follows it, and its state (the epoch count) is all a resume needs.
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4)
    scheduler = make_scheduler(optimizer, schedule)
    for _ in range(12):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(rates[12])
    again = make_scheduler(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=3e-4), schedule)
    again.load_state_dict(scheduler.state_dict())
    assert again.get_last_lr() == scheduler.get_last_lr()
