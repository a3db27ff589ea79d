"""brn's objective: focal loss, its gamma schedules (cosine, linear, exponential) and the scheduled loss."""

import math

import pytest
import torch

from runtime.core import InvalidInputError
from training.families.brn.losses import BrnLoss, FocalLoss, GammaSchedule, ScheduleShape


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


# --- schedule shapes (--gamma-schedule) ---------------------------------------------------


@pytest.mark.parametrize(("shape", "start", "end", "expected"), [
    # t = 0, 0.25, 0.5, 1: the curves agree at the ends and differ at t = 0.25.
    ("cosine", 1.0, 3.0, (1.0, 1.0 + (1 - math.cos(math.pi / 4)), 2.0, 3.0)),
    ("linear", 1.0, 3.0, (1.0, 1.5, 2.0, 3.0)),
    ("exponential", 1.0, 4.0, (1.0, math.sqrt(2.0), 2.0, 4.0)),
    ("exponential", 4.0, 1.0, (4.0, 4.0 * 0.25 ** 0.25, 2.0, 1.0)),  # falling: geometric too
    ("linear", 0.0, 2.0, (0.0, 0.5, 1.0, 2.0)),
])
def test_each_schedule_shape_at_start_quarter_middle_and_end(shape, start, end, expected):
    schedule = GammaSchedule(start, end, ScheduleShape(shape))
    for t, value in zip((0.0, 0.25, 0.5, 1.0), expected):
        assert schedule(t) == pytest.approx(value, rel=1e-12), (shape, t)
    assert schedule(-1.0) == pytest.approx(start) and schedule(2.0) == pytest.approx(end)  # clamped
    assert GammaSchedule(start, end, shape).shape is ScheduleShape(shape), "the value spelling is accepted"


def test_default_schedule_is_cosine():
    assert GammaSchedule().shape is ScheduleShape.COSINE
    assert [s.value for s in ScheduleShape] == ["cosine", "linear", "exponential"]


@pytest.mark.parametrize(("start", "end"), [(0.0, 3.0), (1.0, 0.0), (0.0, 0.0)])
def test_exponential_schedule_refuses_a_zero_gamma(start, end):
    with pytest.raises(InvalidInputError, match=r"exponential gamma schedule .* needs start > 0 and end > 0"):
        GammaSchedule(start, end, ScheduleShape.EXPONENTIAL)
    GammaSchedule(start, end, ScheduleShape.LINEAR)  # the other shapes accept 0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"shape": "quadratic"}, r"must be one of \['cosine', 'linear', 'exponential'\], got 'quadratic'"),
    ({"start": -1.0}, "gamma start must be a finite number >= 0, got -1.0"),
    ({"end": float("inf")}, "gamma end must be a finite number >= 0, got inf"),
])
def test_bad_schedule_is_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        GammaSchedule(**kwargs)


def test_family_loss_follows_the_options_schedule():
    from training.families.brn import BrnTraining
    from training.families.brn.options import BrnOptions

    loss = BrnTraining().make_loss(BrnOptions(alpha=0.6, gamma_start=2.0, gamma_end=0.5, gamma_schedule="linear"))
    assert loss.focal.alpha == 0.6 and loss.schedule == GammaSchedule(2.0, 0.5, ScheduleShape.LINEAR)
    logits, mask = torch.tensor([[[[2.0]], [[-1.0]]]]), torch.ones(1, 1, 1, 1)
    loss(logits, mask, 0.25)
    assert loss.focal.gamma == pytest.approx(1.625)
