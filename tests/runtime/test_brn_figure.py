"""brn's figure (``runtime.families.brn.panels``) and the generic drawing pieces it is made of.

Eight panels: Target, Ref1, Ref2, the two differences and the double detection
(signed, auto-contrasted), the heatmap (a colour bar below) and the RGB composite
(a legend below); the ground truth outlined when given.
"""

from __future__ import annotations

import numpy as np
import pytest

from runtime._visualize import auto_contrast, colour_bar, composite, diverging, labelled_panels, legend, with_gain
from runtime.families.brn import MAX_DIFFERENCE_GAIN, TRUTH_COLOUR, double_detection, panels

H, W = 976, 176
LABEL, GAP = 16, 4
PANELS = ("Target", "Ref1", "Ref2", "Target-Ref1", "Target-Ref2", "double detection", "heatmap", "composite")


def _panel(figure: np.ndarray, name: str) -> np.ndarray:
    x = PANELS.index(name) * (W + GAP)
    return figure[LABEL:LABEL + H, x:x + W]


def _below(figure: np.ndarray, index: int) -> np.ndarray:
    x = index * (W + GAP)
    return figure[LABEL + H + GAP:, x:x + W]


def _image(level: float = 100.0) -> np.ndarray:
    return np.full((3, H, W), level, np.float32)


def _green(pixels: np.ndarray) -> np.ndarray:
    return np.all(pixels == np.array(TRUTH_COLOUR, np.uint8), axis=-1)


def test_eight_panels_side_by_side_with_the_bands_below():
    figure = panels(_image(), np.zeros((H, W), np.float32))
    assert figure.dtype == np.uint8 and figure.ndim == 3 and figure.shape[2] == 3
    assert figure.shape[1] == 8 * W + 7 * GAP
    assert figure.shape[0] > LABEL + H + GAP, "a band for the colour bar and the legend"


def test_a_faint_difference_is_stretched_to_show():
    image = _image()
    image[0, 400:410, 80:90] += 32  # a faint defect, Target brighter by 32 levels: dim without stretching
    figure = panels(image, np.zeros((H, W), np.float32))
    for name in ("Target-Ref1", "Target-Ref2", "double detection"):
        panel = _panel(figure, name)
        assert panel.max() > 200, f"{name} is auto-contrasted"
        spot = panel[400:410, 80:90].astype(int)
        assert (spot[..., 0] > spot[..., 2]).all(), f"{name}: Target brighter shows warm"
        assert panel[:300].max() == 0, f"{name}: no difference stays black"


def test_a_difference_everywhere_and_a_darker_target():
    image = _image()
    image[0] -= 32  # Target darker than both references over the whole panel
    figure = panels(image, np.zeros((H, W), np.float32))
    panel = _panel(figure, "Target-Ref1").astype(int)
    assert panel.max() > 200 and (panel[..., 2] > panel[..., 0]).all(), "darker shows cool, stretched"


def test_a_few_levels_of_noise_are_not_blown_up_to_full_brightness():
    image = _image()
    image[0, 400:410, 80:90] += 3  # misregistration-sized, not a defect
    figure = panels(image, np.zeros((H, W), np.float32))
    for name in ("Target-Ref1", "Target-Ref2"):
        panel = _panel(figure, name)
        assert 0 < panel.max() < 128, f"{name}: stretched by at most x{MAX_DIFFERENCE_GAIN:g}, so 3 levels stay dim"


def test_the_ground_truth_is_outlined_on_target_and_heatmap_only_when_given():
    mask = np.zeros((H, W), bool)
    mask[500:512, 60:72] = True
    heatmap = np.zeros((H, W), np.float32)
    with_mask = panels(_image(), heatmap, mask)
    without = panels(_image(), heatmap)
    for name in ("Target", "heatmap"):
        outline = _green(_panel(with_mask, name))
        assert outline.sum() == 12 * 4 - 4, f"{name}: the boundary of a 12x12 square"
        assert not outline[501:511, 61:71].any(), "only the boundary"
        assert not _green(_panel(without, name)).any()
    assert not _green(_panel(with_mask, "Target-Ref1")).any()


def test_colour_bar_under_the_heatmap_and_legend_under_the_composite():
    figure = panels(_image(), np.zeros((H, W), np.float32))
    for index in range(6):
        assert (_below(figure, index) == 255).all(), f"nothing below panel {PANELS[index]}"
    bar, key = _below(figure, 6), _below(figure, 7)
    assert (bar != 255).any(axis=-1).sum() > W, "the colour bar"
    assert (key != 255).any(axis=-1).sum() > 500, "the legend's swatches and text"
    assert (np.abs(key.astype(int) - [255, 40, 40]).sum(axis=-1) == 0).any(), "the red swatch"


def test_a_constant_image_draws_without_dividing_by_zero():
    with np.errstate(all="raise"):
        figure = panels(_image(0.0), np.zeros((H, W), np.float32))
    for name in ("Target-Ref1", "Target-Ref2", "double detection"):
        assert (_panel(figure, name) == 0).all()
    assert (_panel(figure, "composite") == 0).all(), "black planes: a black composite"


def test_the_composite_shows_which_plane_is_brighter():
    image = _image()
    image[0, 100:110, 20:30] += 20  # Target only
    image[1, 200:210, 20:30] += 20  # Ref1 only
    image[1:, 300:310, 20:30] += 20  # Ref1 and Ref2, i.e. a darker Target
    panel = _panel(panels(image, np.zeros((H, W), np.float32)), "composite").astype(int)
    red, green, cyan = panel[105, 25], panel[205, 25], panel[305, 25]
    assert red[0] > 200 and red[1] < 100 and red[2] < 100
    assert green[1] > 200 and green[0] < 100 and green[2] < 100
    assert cyan[1] > 150 and cyan[2] > 150 and cyan[0] < 100
    assert np.ptp(panel[600, 100]) == 0, "agreement is grey"


def test_double_detection_needs_both_differences_in_the_same_direction():
    d1 = np.array([5.0, 5.0, -4.0, -4.0, 0.0], np.float32)
    d2 = np.array([3.0, -3.0, -6.0, 6.0, 2.0], np.float32)
    np.testing.assert_array_equal(double_detection(d1, d2), [3.0, 0.0, -4.0, 0.0, 0.0])


# -- the generic pieces ------------------------------------------------------------------------------
def test_auto_contrast_gain_and_its_limits():
    values = np.zeros((100, 100), np.float32)
    values[0, :5] = 3.0
    shown, gain = auto_contrast(values)
    assert gain == pytest.approx(85.0) and shown.max() == pytest.approx(1.0)
    shown, gain = auto_contrast(np.full((4, 4), 200.0))
    assert gain == pytest.approx(255 / 200) and shown.max() == pytest.approx(1.0)
    shown, gain = auto_contrast(np.full((4, 4), 100.0), full_scale=50.0)
    assert gain == 1.0 and shown.max() == 1.0, "never compressed: values beyond full scale saturate"
    shown, gain = auto_contrast(np.zeros((4, 4)))
    assert gain == 1.0 and not shown.any()
    shown, gain = auto_contrast(values, max_gain=8.0)
    assert gain == 8.0 and shown.max() == pytest.approx(24 / 255), "the cap limits the stretch"
    assert with_gain("d", 85.0) == "d (x85)" and with_gain("d", 6.34) == "d (x6.3)" and with_gain("d", 1.0) == "d"


def test_diverging_is_black_at_zero_and_brighter_outwards():
    colours = diverging(np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]])).astype(int)[0]
    assert (colours[2] == 0).all()
    assert colours[4].sum() > colours[3].sum() > 0 and colours[0].sum() > colours[1].sum() > 0
    assert colours[4][0] > colours[4][2] and colours[0][2] > colours[0][0]


def test_composite_of_equal_planes_is_their_grey():
    planes = np.stack([np.full((3, 3), 128.0)] * 3)
    picture, gain = composite(planes)
    assert gain == 1.0 and (picture == 128).all()


def test_bands_below_panels():
    panel = np.zeros((20, 30, 3), np.uint8)
    key = legend([((255, 0, 0), "red"), (None, "note")], 30)
    bar = colour_bar(30)
    figure = labelled_panels([("a", panel), ("b", panel)], [bar, key])
    assert figure.shape == (LABEL + 20 + GAP + max(bar.shape[0], key.shape[0]), 2 * 30 + GAP, 3)
    assert labelled_panels([("a", panel)]).shape == (LABEL + 20, 30, 3), "no band, no extra height"
