"""brn's objective: focal loss, its cosine gamma schedule and the scheduled loss training calls."""

import math

import pytest
import torch

from runtime.core import InvalidInputError
from training.families.brn.losses import BrnLoss, FocalLoss, GammaSchedule


def test_gamma_schedule_at_start_middle_and_end():
    schedule = GammaSchedule(1.0, 3.0)
    assert schedule(0.0) == pytest.approx(1.0)
    assert schedule(0.5) == pytest.approx(2.0)
    assert schedule(1.0) == pytest.approx(3.0)
    assert schedule(0.25) == pytest.approx(1.0 + (1 - math.cos(math.pi / 4)))  # cosine, not linear


def test_focal_loss_matches_formula_and_weights_defects_by_alpha():
    logits = torch.tensor([[[[2.0]], [[-1.0]]]])  # one pixel, p(defect) = sigmoid(-3)
    p_defect = torch.softmax(logits, 1)[0, 1, 0, 0].item()
    loss = FocalLoss(alpha=0.75, smooth=0.0)
    loss.gamma = 2.0
    defect = loss(logits, torch.ones(1, 1, 1, 1)).item()
    background = loss(logits, torch.zeros(1, 1, 1, 1)).item()
    assert defect == pytest.approx(-0.75 * (1 - p_defect) ** 2 * math.log(p_defect), rel=1e-5)
    assert background == pytest.approx(-0.25 * p_defect ** 2 * math.log(1 - p_defect), rel=1e-5)


def test_focal_loss_is_finite_for_confident_logits_and_fractional_gamma():
    loss = FocalLoss()
    loss.gamma = 2.37
    logits = torch.tensor([[[[60.0]], [[-60.0]]]], requires_grad=True)
    value = loss(logits, torch.zeros(1, 1, 1, 1))
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_scheduled_loss_sets_gamma_from_training_progress():
    loss = BrnLoss(FocalLoss(alpha=0.75), GammaSchedule(1.0, 3.0))
    logits = torch.tensor([[[[2.0]], [[-1.0]]]])
    mask = torch.ones(1, 1, 1, 1)
    reference = FocalLoss(alpha=0.75)
    for progress, gamma in [(0.0, 1.0), (0.5, 2.0), (1.0, 3.0)]:
        reference.gamma = gamma
        assert loss(logits, mask, progress).item() == pytest.approx(reference(logits, mask).item())
        assert loss.focal.gamma == pytest.approx(gamma)


def test_focal_loss_refuses_alpha_outside_0_1():
    with pytest.raises(InvalidInputError, match="focal alpha must be in 0..1, got 1.5"):
        FocalLoss(alpha=1.5)
