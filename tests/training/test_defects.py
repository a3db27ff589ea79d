"""Gaussian point defects and line negatives: shapes, configured kernels and amplitudes, allocation
invariants, mask, rates."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from runtime.core import InvalidInputError
from training.families.brn.defects import (
    DEFAULT_KERNELS,
    Defect,
    DefectConfig,
    DefectKernel,
    DefectKind,
    LineNegative,
    apply_defects,
    apply_line_negative,
    gaussian_kernel,
    plan_defects,
    plan_line_negative,
    synthesize_sample,
)

BACKGROUND = 120.0


def _flat(h: int = 128, w: int = 128, value: float = BACKGROUND) -> np.ndarray:
    return np.full((3, h, w), value, dtype=np.float32)


def _changed_bbox(before: np.ndarray, after: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.nonzero(before != after)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def _many_plans(n: int, *, seed: int = 0, force: bool = False, config: DefectConfig = DefectConfig(),
                h: int = 128, w: int = 128) -> list[list[Defect]]:
    rng = np.random.default_rng(seed)
    return [plan_defects(h, w, rng, config, force_defect=force) for _ in range(n)]


# --- kernels and footprints ---------------------------------------------------------------


def test_gaussian_kernel_peak_and_values():
    small = gaussian_kernel((3, 3), 1.3)
    assert small.shape == (3, 3) and small.max() == pytest.approx(1.0) and small[1, 1] == 1.0
    assert small[0, 0] == pytest.approx(np.exp(-2 / (2 * 1.3**2)), rel=1e-6)
    wide = gaussian_kernel((3, 5), (1.0, 1.5))
    assert wide.shape == (3, 5) and wide[1, 2] == 1.0
    assert wide[0, 0] == pytest.approx(np.exp(-1 / 2 - 4 / (2 * 1.5**2)), rel=1e-6)
    # Symmetric about the centre and wider along x.
    np.testing.assert_allclose(wide, wide[::-1, ::-1])
    assert wide[1, 1] > wide[0, 2]  # one pixel off-centre: x (sigma 1.5) falls slower than y (1.0)
    assert gaussian_kernel((4, 4), 1.0).max() == pytest.approx(1.0)


@pytest.mark.parametrize(("kind", "shape"), [(DefectKind.SMALL, (3, 3)), (DefectKind.WIDE, (3, 5))])
@pytest.mark.parametrize("amplitude", [-80.0, -60.0, 60.0, 80.0])
def test_single_defect_footprint_is_exact(kind, shape, amplitude):
    channels = _flat(32, 40)
    defect = Defect(10, 12, kind, amplitude, in_target=True, in_ref1=False, in_ref2=False)

    image, mask = apply_defects(channels, [defect])

    top, bottom, left, right = _changed_bbox(channels[0], image[0])
    assert (bottom - top, right - left) == shape and (top, left) == (10, 12)
    # The peak is the amplitude, at the footprint's centre.
    cy, cx = defect.center
    assert image[0, cy, cx] == pytest.approx(BACKGROUND + amplitude)
    np.testing.assert_array_equal(image[1:], channels[1:])
    # Every footprint pixel is above the 0.1 threshold for both kinds.
    assert mask.sum() == shape[0] * shape[1]


def test_mask_threshold_selects_kernel_pixels():
    defect = Defect(0, 0, DefectKind.WIDE, 80.0, True, False, False)
    _, mask = apply_defects(_flat(8, 8), [defect], mask_threshold=0.5)
    expected = np.zeros((8, 8), np.float32)
    expected[:3, :5] = gaussian_kernel((3, 5), (1.0, 1.5)) > 0.5
    np.testing.assert_array_equal(mask, expected)
    assert 0 < mask.sum() < 15


@pytest.mark.parametrize(("value", "amplitude", "bound"), [(250.0, 80.0, 255.0), (5.0, -80.0, 0.0)])
def test_result_is_clipped(value, amplitude, bound):
    defect = Defect(2, 2, DefectKind.SMALL, amplitude, True, True, True)
    image, _ = apply_defects(_flat(8, 8, value), [defect])
    assert image.min() >= 0.0 and image.max() <= 255.0
    assert image[0, 3, 3] == bound


def test_defect_outside_the_image_is_refused():
    with pytest.raises(InvalidInputError, match=r"3x5 at \(y=0, x=4\) leaves the 8x8 image"):
        apply_defects(_flat(8, 8), [Defect(0, 4, DefectKind.WIDE, 60.0, True, False, False)])


# --- allocation invariants ----------------------------------------------------------------


def test_allocation_invariants_hold_for_many_patches():
    config = DefectConfig()
    plans = [p for p in _many_plans(3000) if p]
    for plan in plans:
        assert config.num_defects_range[0] <= len(plan) <= config.num_defects_range[1]
        assert all(d.in_target for d in plan), "Target receives every defect"
        assert sum(d.target_only for d in plan) <= 2
        ref1 = {i for i, d in enumerate(plan) if d.in_ref1}
        ref2 = {i for i, d in enumerate(plan) if d.in_ref2}
        assert ref1 != ref2, "Ref1 and Ref2 always differ"
        for d in plan:
            assert d.amplitude in config.amplitudes
            h, w = d.kind.shape
            assert 0 <= d.y <= 128 - h and 0 <= d.x <= 128 - w, "footprint inside the patch"


def test_non_target_defects_split_evenly_into_three_groups():
    counts = {"ref1": 0, "ref2": 0, "both": 0}
    for plan in _many_plans(3000):
        for d in plan:
            if d.in_ref1 and d.in_ref2:
                counts["both"] += 1
            elif d.in_ref1:
                counts["ref1"] += 1
            elif d.in_ref2:
                counts["ref2"] += 1
    total = sum(counts.values())
    for group, count in counts.items():
        assert count / total == pytest.approx(1 / 3, abs=0.04), (group, counts)


def test_target_only_count_is_one_or_two():
    plans = [p for p in _many_plans(2000) if p]
    per_plan = np.array([sum(d.target_only for d in p) for p in plans])
    assert set(per_plan) <= {0, 1, 2}
    assert (per_plan == 1).mean() == pytest.approx(0.475, abs=0.06)
    assert (per_plan == 2).mean() == pytest.approx(0.475, abs=0.06)


def test_defect_rate_and_hard_normal_rate_statistics():
    plans = _many_plans(4000, seed=1)
    defective = [p for p in plans if p]
    assert len(defective) / len(plans) == pytest.approx(0.5, abs=0.03)
    hard = sum(not any(d.target_only for d in p) for p in defective) / len(defective)
    assert hard == pytest.approx(0.05, abs=0.015)


def test_both_kinds_drawn_about_equally():
    kinds = [d.kind for p in _many_plans(2000) for d in p]
    assert kinds.count(DefectKind.WIDE) / len(kinds) == pytest.approx(0.5, abs=0.03)


def test_smallest_range_still_makes_references_differ():
    config = DefectConfig(num_defects_range=(2, 2), hard_normal_rate=0.3)
    for plan in _many_plans(500, config=config):
        if plan:
            assert {i for i, d in enumerate(plan) if d.in_ref1} != {i for i, d in enumerate(plan) if d.in_ref2}
            assert sum(d.target_only for d in plan) <= 1


def test_force_defect_always_has_a_target_only_defect():
    config = DefectConfig(defect_rate=0.0, hard_normal_rate=1.0)  # force wins over both rates
    for plan in _many_plans(300, force=True, config=config, h=976, w=176):
        assert plan and any(d.target_only for d in plan)


# --- synthesize_sample --------------------------------------------------------------------


def test_synthesize_sample_matches_its_plan():
    rng = np.random.default_rng(7)
    background = rng.uniform(40, 200, (3, 128, 128)).astype(np.float32)
    for seed in range(50):
        image, mask, defects = synthesize_sample(background, np.random.default_rng(seed))
        assert image.shape == (3, 128, 128) and image.dtype == np.float32
        assert mask.shape == (128, 128) and mask.dtype == np.float32
        assert set(np.unique(mask)) <= {0.0, 1.0}
        # The mask is exactly the Target-only footprints thresholded at 0.1.
        expected = np.zeros((128, 128), bool)
        for d in defects:
            if d.target_only:
                expected[d.footprint] |= gaussian_kernel(d.kind.shape, d.kind.sigma) > 0.1
        np.testing.assert_array_equal(mask.astype(bool), expected)
        # Each channel changed exactly where its defects are.
        for channel, attr in enumerate(("in_target", "in_ref1", "in_ref2")):
            touched = np.zeros((128, 128), bool)
            for d in defects:
                if getattr(d, attr):
                    touched[d.footprint] = True
            changed = image[channel] != background[channel]
            assert not (changed & ~touched).any()
        if defects:
            assert not np.array_equal(image[1], image[2]), "Ref1 and Ref2 differ as images"
            assert not np.array_equal(image[0], background[0])
        else:
            np.testing.assert_array_equal(image, background)
            assert not mask.any()


def test_synthesize_sample_does_not_modify_its_input():
    background = np.random.default_rng(0).uniform(40, 200, (3, 64, 64)).astype(np.float32)
    view = background[:, 8:40, 8:40]  # a patch view, as the training loader passes
    original = background.copy()
    image, _, defects = synthesize_sample(view, np.random.default_rng(0), force_defect=True)
    assert defects
    np.testing.assert_array_equal(background, original)
    assert not np.shares_memory(image, background)


def test_synthesize_sample_is_deterministic_per_generator_state():
    a = synthesize_sample(_flat(), np.random.default_rng(42), force_defect=True)
    b = synthesize_sample(_flat(), np.random.default_rng(42), force_defect=True)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2] == b[2]


def test_synthesize_sample_works_on_a_whole_strip_and_integers():
    strip = np.full((3, 976, 176), 100, np.uint8)
    image, mask, defects = synthesize_sample(strip, np.random.default_rng(3), force_defect=True)
    assert image.shape == (3, 976, 176) and image.dtype == np.float32 and mask.any()
    assert strip.max() == 100


@pytest.mark.parametrize(("shape", "match"), [
    ((4, 32, 32), r"expected \(3, H, W\) .* got shape \(4, 32, 32\)"),
    ((32, 32), r"got shape \(32, 32\)"),
    ((3, 2, 32), r"at least 3x5, got 2x32"),
    ((3, 32, 4), r"at least 3x5, got 32x4"),
])
def test_bad_channels_are_refused(shape, match):
    with pytest.raises(InvalidInputError, match=match):
        synthesize_sample(np.zeros(shape, np.float32), np.random.default_rng(0))


# --- configuration ------------------------------------------------------------------------


def test_default_config_follows_the_spec():
    config = DefectConfig()
    assert config.defect_rate == 0.5 and config.num_defects_range == (3, 8)
    assert config.hard_normal_rate == 0.05 and config.mask_threshold == 0.1
    assert sorted(config.amplitudes) == [-80, -60, 60, 80]
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.defect_rate = 1.0  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"defect_rate": 1.5}, "defect_rate must be in 0..1, got 1.5"),
    ({"hard_normal_rate": -0.1}, "hard_normal_rate must be in 0..1"),
    ({"num_defects_range": (1, 5)}, r"2 <= min <= max, got \(1, 5\)"),
    ({"num_defects_range": (6, 4)}, r"got \(6, 4\)"),
    ({"amplitudes": ()}, "amplitudes must not be empty"),
    ({"mask_threshold": 1.0}, r"mask_threshold must be in \(0, 1\)"),
])
def test_bad_config_is_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        DefectConfig(**kwargs)


# --- the default behaviour, pinned ---------------------------------------------------------


def test_default_plan_is_the_reference_one():
    """Seed 0's plan as the generator drew it before the kernels and amplitudes became settings."""
    plan = plan_defects(128, 128, np.random.default_rng(0), force_defect=True)
    assert [(d.y, d.x, str(d.kind), d.amplitude, d.in_ref1, d.in_ref2) for d in plan] == [
        (9, 2, "3x3:1.3", -80.0, False, False), (102, 62, "3x5:1.0,1.5", 60.0, False, False),
        (79, 67, "3x5:1.0,1.5", 60.0, True, True), (117, 83, "3x5:1.0,1.5", -80.0, True, False),
        (69, 4, "3x5:1.0,1.5", 80.0, False, True), (91, 11, "3x3:1.3", 80.0, True, True),
        (10, 37, "3x5:1.0,1.5", -60.0, True, False), (53, 0, "3x3:1.3", -80.0, False, True)]
    assert DefectConfig().kernels == DEFAULT_KERNELS == (DefectKind.SMALL, DefectKind.WIDE)


def test_line_negative_rate_zero_draws_nothing_extra():
    background = np.random.default_rng(3).uniform(40, 200, (3, 128, 128)).astype(np.float32)
    for seed in range(40):
        rng = np.random.default_rng(seed)
        image, mask, defects = synthesize_sample(background, rng, DefectConfig(line_negative_rate=0.0))
        expected = apply_defects(background, plan_defects(128, 128, np.random.default_rng(seed)))
        np.testing.assert_array_equal(image, expected[0])
        np.testing.assert_array_equal(mask, expected[1])
        # The same draws were made: the generators are in the same state afterwards.
        reference = np.random.default_rng(seed)
        plan_defects(128, 128, reference)
        assert rng.random() == reference.random()


# --- configurable kernels and amplitudes ---------------------------------------------------


@pytest.mark.parametrize(("text", "kernel", "spelled"), [
    ("3x3:1.3", DefectKernel(3, 3, 1.3, 1.3), "3x3:1.3"),
    ("3x5:1.0,1.5", DefectKernel(3, 5, 1.0, 1.5), "3x5:1.0,1.5"),
    (" 5X5 : 2 ", DefectKernel(5, 5, 2.0, 2.0), "5x5:2.0"),
    ("4x2:0.5,1", DefectKernel(4, 2, 0.5, 1.0), "4x2:0.5,1.0"),
])
def test_kernel_text_parses_and_prints_back(text, kernel, spelled):
    assert DefectKernel.parse(text) == kernel
    assert str(kernel) == spelled and DefectKernel.parse(spelled) == kernel


@pytest.mark.parametrize(("text", "match"), [
    ("3x3", "is not HxW:SIGMA or HxW:SIGMA_Y,SIGMA_X"),
    ("3x3:1,2,3", "is not HxW:SIGMA"),
    ("0x3:1.0", "height must be an integer >= 1, got 0"),
    ("3x0:1.0", "width must be an integer >= 1, got 0"),
    ("3x3:0", "sigma_y must be a number > 0, got 0.0"),
    ("3x3:1.0,-1", "sigma_x must be a number > 0, got -1.0"),
    ("3x3:nan", "sigma_y must be a number > 0, got nan"),
    ("3x3:abc", "the sigmas must be numbers"),
])
def test_bad_kernel_text_is_refused(text, match):
    with pytest.raises(InvalidInputError, match=match):
        DefectKernel.parse(text)


def test_configured_kernel_and_amplitudes_are_what_is_drawn():
    kernel = DefectKernel.parse("5x5:1.5")
    config = DefectConfig(amplitudes=(-25.0, 45.0), kernels=(kernel,), num_defects_range=(2, 3))
    background = _flat()
    peaks = set()
    for seed in range(60):
        image, mask, defects = synthesize_sample(background, np.random.default_rng(seed), config, force_defect=True)
        assert defects and all(d.kind == kernel and d.amplitude in (-25.0, 45.0) for d in defects)
        for d in defects:
            others = [o for o in defects if o is not d]
            rows, cols = d.footprint
            alone = not any(max(rows.start, o.y) < min(rows.stop, o.y + 5) and
                            max(cols.start, o.x) < min(cols.stop, o.x + 5) for o in others)
            if alone:  # the bump's peak is the configured amplitude, its footprint 5x5
                cy, cx = d.center
                assert image[0, cy, cx] == pytest.approx(BACKGROUND + d.amplitude)
                assert (image[0, rows, cols] != BACKGROUND).all()
                assert image[0, rows.start - 1 if rows.start else rows.stop, cx] == BACKGROUND
                peaks.add(d.amplitude)
        expected = np.zeros((128, 128), bool)
        for d in defects:
            if d.target_only:
                expected[d.footprint] |= gaussian_kernel((5, 5), 1.5) > 0.1
        np.testing.assert_array_equal(mask.astype(bool), expected)
    assert peaks == {-25.0, 45.0}


def test_configured_kernel_footprint_is_exact():
    kernel = DefectKernel.parse("5x5:1.0")
    image, mask = apply_defects(_flat(32, 32), [Defect(10, 12, kernel, 50.0, True, False, False)])
    assert _changed_bbox(_flat(32, 32)[0], image[0]) == (10, 15, 12, 17)
    assert image[0, 12, 14] == pytest.approx(BACKGROUND + 50.0) and image[0].max() == image[0, 12, 14]
    # Within the footprint, the mask is the kernel above 0.1: the centre 3x3 and the four edge midpoints.
    assert mask.sum() == 13 and mask[10:15, 12:17].sum() == 13
    np.testing.assert_array_equal(mask[10:15, 12:17], gaussian_kernel((5, 5), 1.0) > 0.1)


def test_even_kernel_shares_its_peak_between_the_middle_pixels():
    image, _ = apply_defects(_flat(16, 16), [Defect(4, 4, DefectKernel.parse("4x4:1.0"), 40.0, True, False, False)])
    assert _changed_bbox(_flat(16, 16)[0], image[0]) == (4, 8, 4, 8)
    np.testing.assert_allclose(image[0, 5:7, 5:7], BACKGROUND + 40.0)


def test_several_kernels_are_drawn_equally():
    kernels = tuple(DefectKernel.parse(t) for t in ("1x1:1", "3x3:1", "5x5:1", "7x3:1,2"))
    drawn = [d.kind for p in _many_plans(1500, config=DefectConfig(kernels=kernels)) for d in p]
    for kernel in kernels:
        assert drawn.count(kernel) / len(drawn) == pytest.approx(0.25, abs=0.03), kernel


def test_image_smaller_than_a_configured_kernel_is_refused():
    config = DefectConfig(kernels=(DefectKernel.parse("9x3:1"),))
    with pytest.raises(InvalidInputError, match="at least 9x3, got 8x64"):
        synthesize_sample(_flat(8, 64), np.random.default_rng(0), config)
    with pytest.raises(InvalidInputError, match=r"defect kernels \['9x3:1.0'\] do not fit the 8x8 patch"):
        config.check_fits(8, 8, "patch")
    config.check_fits(9, 3)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"amplitudes": (0.0, 60.0)}, r"amplitudes must be nonzero with \|a\| <= 255, got \[0.0\]"),
    ({"amplitudes": (-300.0,)}, r"got \[-300.0\]"),
    ({"amplitudes": (float("nan"),)}, r"got \[nan\]"),
    ({"kernels": ()}, "kernels must not be empty"),
    ({"kernels": ("3x3:1.3",)}, "kernels must be DefectKernel values"),
    ({"line_negative_rate": 1.5}, "line_negative_rate must be in 0..1, got 1.5"),
])
def test_bad_kernels_amplitudes_and_line_rate_are_refused(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        DefectConfig(**kwargs)


# --- line negatives -----------------------------------------------------------------------


def test_line_negative_changes_target_only_along_a_thin_line():
    background = np.random.default_rng(1).uniform(60, 190, (3, 128, 128)).astype(np.float32)
    orientations, slanted = set(), 0
    for seed in range(200):
        line = plan_line_negative(128, 128, np.random.default_rng(seed))
        image, mask = apply_line_negative(background, line)
        assert not mask.any() and mask.shape == (128, 128) and mask.dtype == np.float32
        np.testing.assert_array_equal(image[1:], background[1:])
        changed = image[0] != background[0]
        per_position = changed.sum(axis=0 if not line.vertical else 1)
        assert per_position.max() <= line.width, "a line 1-2 px thin"
        assert 64 <= (per_position > 0).sum() <= 128, "across half to all of the patch"
        assert 15 <= abs(line.amplitude) <= 40 and line.width in (1, 2) and abs(line.slope) <= 0.05
        assert np.abs(image[0] - background[0]).max() <= abs(line.amplitude) + 1e-3
        orientations.add(line.vertical)
        slanted += line.slope != 0
    assert orientations == {True, False} and 60 < slanted < 140


def test_line_negative_geometry():
    line = LineNegative(vertical=False, offset=10, start=20, length=50, slope=0.04, width=2, amplitude=30.0)
    image, _ = apply_line_negative(_flat(64, 96), line)
    rows, cols = np.nonzero(image[0] != BACKGROUND)
    assert cols.min() == 20 and cols.max() == 69 and rows.min() == 10 and rows.max() == 10 + 2 + 1
    assert np.all(image[0][rows, cols] == BACKGROUND + 30.0)
    vertical = apply_line_negative(_flat(96, 64), LineNegative(True, 5, 0, 96, 0.0, 1, -20.0))[0]
    np.testing.assert_array_equal(np.nonzero(vertical[0] != BACKGROUND)[1], np.full(96, 5))
    with pytest.raises(InvalidInputError, match="leaves the 64x96 image"):
        apply_line_negative(_flat(64, 96), LineNegative(False, 0, 60, 50, 0.0, 1, 20.0))


def test_line_negative_fraction_and_the_split_of_the_rest():
    config = DefectConfig(line_negative_rate=0.2)
    background = _flat()
    counts = {"line": 0, "points": 0, "untouched": 0}
    rng = np.random.default_rng(2024)
    for _ in range(3000):
        image, mask, defects = synthesize_sample(background, rng, config)
        if defects:
            counts["points"] += 1
        elif np.array_equal(image, background):
            counts["untouched"] += 1
        else:
            counts["line"] += 1
            assert not mask.any() and np.array_equal(image[1:], background[1:])
    assert counts["line"] / 3000 == pytest.approx(0.2, abs=0.03), counts
    assert counts["points"] / 3000 == pytest.approx(0.4, abs=0.03), counts
    assert counts["untouched"] / 3000 == pytest.approx(0.4, abs=0.03), counts


def test_forced_defects_are_never_line_negatives():
    config = DefectConfig(line_negative_rate=1.0)
    for seed in range(30):
        _, mask, defects = synthesize_sample(_flat(), np.random.default_rng(seed), config, force_defect=True)
        assert defects and mask.any()
    _, mask, defects = synthesize_sample(_flat(), np.random.default_rng(0), config)
    assert not defects and not mask.any()
