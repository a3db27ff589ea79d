import numpy as np
import pytest

from runtime.families.brn import image_type as brn_image_type
from runtime._tiling import TilingPlan, calculate_positions, centre_segments


@pytest.mark.parametrize(
    ("image_type", "ys", "xs"),
    [
        ("strip", [0, 106, 212, 318, 424, 530, 636, 742, 848], [0, 48]),
        ("square", [0], [0]),
        ("mvtec", [0, 256, 512, 768], [0, 256, 512, 768]),
    ],
)
def test_patch_positions_of_every_image_type(image_type, ys, xs):
    plan = brn_image_type(image_type).tiling()
    assert [s.position for s in plan.rows] == ys
    assert [s.position for s in plan.cols] == xs


def test_positions_start_at_zero_and_end_flush():
    for length, patch, minimum in [(976, 128, 9), (176, 128, 1), (1000, 300, 1), (513, 128, 5)]:
        pos = calculate_positions(length, patch, minimum)
        assert pos[0] == 0 and pos[-1] == length - patch
        assert len(pos) >= minimum and all(b > a for a, b in zip(pos, pos[1:]))
        assert all(b - a <= patch for a, b in zip(pos, pos[1:])), "patches must overlap or touch"


@pytest.mark.parametrize(("length", "patch"), [(100, 128), (0, 4), (10, 0)])
def test_positions_reject_impossible_sizes(length, patch):
    with pytest.raises(ValueError):
        calculate_positions(length, patch)


def test_strip_seams_are_at_the_middle_of_each_overlap():
    rows = centre_segments([0, 106, 212], 128, 340)
    assert (rows[0].start, rows[0].stop) == (0, 117)  # the first patch keeps its top: rows 0..116
    assert (rows[1].start, rows[1].stop) == (117, 223)
    assert rows[-1].stop == 340


def test_stitch_inverts_extract_for_consistent_patches():
    plan = TilingPlan.create(976, 176, 128, 128, min_rows=9)
    image = np.random.default_rng(0).random((2, 3, 976, 176), dtype=np.float32)
    patches = plan.extract(image)
    assert patches.shape == (2, 18, 3, 128, 128)
    np.testing.assert_array_equal(plan.stitch(patches), image)


def test_stitch_takes_each_pixel_from_the_patch_whose_centre_holds_it():
    plan = TilingPlan.create(976, 176, 128, 128, min_rows=9)
    ids = np.arange(18, dtype=np.float32).reshape(18, 1, 1, 1) * np.ones((1, 1, 128, 128), np.float32)
    owner = plan.stitch(ids)[0]
    assert owner[0, 0] == 0 and owner[116, 87] == 0 and owner[117, 0] == 2 and owner[0, 88] == 1
    assert owner[975, 175] == 17
    # Every patch owns a contiguous block, and no patch is lost.
    assert set(np.unique(owner)) == set(range(18))
