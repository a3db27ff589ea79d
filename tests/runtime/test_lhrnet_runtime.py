"""lhrnet's runtime part: the dataset format's validation, decoding through the letterbox, metrics, outputs."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from runtime.core import InvalidInputError, letterbox, write_png
from runtime.families.lhrnet import FAMILY, FORMAT, read_split


def _dataset(root, entries=None, **top):
    (root / "images").mkdir(parents=True, exist_ok=True)
    write_png(root / "images" / "a.png", np.zeros((40, 100, 3), np.uint8))
    entry = {"file": "images/a.png", "width": 100, "height": 40, "slot": [10.5, 20.0], "part": [80.0, 5.25],
             "angle": -3.5}
    data = {"format": FORMAT, "points": ["slot", "part"], "images": [entry] if entries is None else entries, **top}
    (root / "valid.json").write_text(json.dumps(data))
    return entry


def test_a_valid_split_reads_with_its_defaults(tmp_path):
    _dataset(tmp_path)
    [(image, label)] = read_split(tmp_path, "valid")
    assert image == tmp_path / "images" / "a.png"
    assert label.points.tolist() == [[10.5, 20.0], [80.0, 5.25]]
    assert (label.angle, label.symmetry, label.kinds, label.width, label.height) == (-3.5, 1, (), 100, 40)
    item = FAMILY.labelled_images(tmp_path, "valid")[0]
    assert FAMILY.read_label(item, (40, 100)) is item.label
    with pytest.raises(InvalidInputError, match="is 50x40 but its label says 100x40"):
        FAMILY.read_label(item, (40, 50))


@pytest.mark.parametrize(("change", "match"), [
    ({"slot": [101.0, 3.0]}, r"\"slot\" = \[101.0, 3.0\] lies outside the 100x40 image"),
    ({"part": [1.0]}, r"\"part\" must be \[x, y\], got \[1.0\]"),
    ({"angle": float("nan")}, "\"angle\" must be a finite number"),
    ({"width": 0}, "\"width\" must be an integer >= 1, got 0"),
    ({"symmetry": True}, "\"symmetry\" must be an integer >= 1, got True"),
    ({"kinds": "decoys"}, "\"kinds\" must be a list of strings"),
    ({"file": "../outside.png"}, "\"file\" must be a path inside"),
    ({"file": "images/missing.png"}, "image file not found"),
    ({"slt": [1, 1]}, r"unknown fields \['slt'\]"),
])
def test_malformed_entries_are_refused_by_name(tmp_path, change, match):
    entry = _dataset(tmp_path)
    _dataset(tmp_path, [{**entry, **change}])
    with pytest.raises(InvalidInputError, match=match):
        read_split(tmp_path, "valid")


def test_malformed_files_are_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="no 'valid' split"):
        read_split(tmp_path, "valid")
    _dataset(tmp_path, format="other")
    with pytest.raises(InvalidInputError, match=f"expected a JSON object with \"format\": \"{FORMAT}\""):
        read_split(tmp_path, "valid")
    _dataset(tmp_path, entries=[])
    with pytest.raises(InvalidInputError, match="\"images\" must be a non-empty list"):
        read_split(tmp_path, "valid")
    (tmp_path / "valid.json").write_text("{")
    with pytest.raises(InvalidInputError, match="cannot read"):
        read_split(tmp_path, "valid")


def test_decode_maps_input_pixels_back_through_the_letterbox():
    image = np.zeros((3, 300, 1200), np.float32)  # wider than 2:1: padded above and below
    _, _, transform = letterbox(image, 256, 512, 255.0)
    truth = np.array([[100.0, 50.0], [1150.0, 299.0]])
    outputs = {"points": transform.to_input(truth)[None].astype(np.float32),
               "scores": np.array([[0.9, 0.05]], np.float32), "angle": np.array([12.5], np.float32)}
    [result] = FAMILY.decode(outputs, [transform], FAMILY.postprocess_spec("256x512"), sources=["x.png"])
    np.testing.assert_allclose([result.points["slot"], result.points["part"]], truth, atol=1e-3)
    assert result.found("slot") and not result.found("part") and result.angle == 12.5
    assert set(result.summary()) == set(FAMILY.summary_fields)


def test_metrics_and_the_figure(tmp_path):
    _dataset(tmp_path)
    item = FAMILY.labelled_images(tmp_path, "valid")[0]
    transform = letterbox(np.zeros((3, 40, 100), np.float32), 256, 512, 255.0)[2]
    outputs = {"points": transform.to_input(item.label.points + [[3.0, 4.0], [0.0, 0.0]])[None],
               "scores": np.ones((1, 2), np.float32), "angle": np.array([0.0], np.float32)}
    results = FAMILY.decode(outputs, [transform], FAMILY.postprocess_spec("256x512"), sources=["a"])
    metrics = FAMILY.metrics(results, [item.label])
    assert metrics["mae"] == pytest.approx(2.5, abs=1e-4) and metrics["hit@5px"] == 1.0
    assert metrics["angle_error"] == pytest.approx(3.5)
    assert set(metrics) <= set(FAMILY.metric_directions) | {FAMILY.selection_metric[0]}
    image = np.zeros((3, 40, 100), np.float32)
    (tmp_path / "plain").mkdir()
    written = FAMILY.write_outputs(results[0], image, tmp_path / "plain", "a", visualize=False)
    assert [p.name for p in written] == ["a_points.png"]
    written = FAMILY.write_outputs(results[0], image, tmp_path, "a", visualize=True)
    assert [p.name for p in written] == ["a_points.png", "a_letterbox.png"] and all(p.is_file() for p in written)


def test_the_input_spec_refuses_images_under_8_pixels_before_letterboxing(tmp_path):
    from runtime.core import prepare, read_source, to_tensor

    pre = FAMILY.input_spec("256x512")
    assert pre.min_size == 8 and pre.to_dict()["min_size"] == 8
    tensor, transform = prepare(np.full((8, 8, 3), 200, np.uint8), pre)  # the smallest accepted: 8x8
    assert tensor.shape == (4, 256, 512) and (transform.resized_height, transform.pad_x) == (256, 128)
    assert tensor[3, :, 128:384].all() and not tensor[3, :, :128].any()  # the mask: image, then padding
    for image, size in [(np.zeros((3, 7, 300), np.float32), "7x300"), (np.zeros((300, 7, 4), np.uint8), "300x7"),
                        (np.zeros((4, 4, 3), np.uint8), "4x3 as CHW or 4x4 as HWC")]:
        with pytest.raises(InvalidInputError, match=rf"image too small: {size} \(height x width, shape "
                                                    rf"{re.escape(str(image.shape))}\) in array; the model needs "
                                                    rf"at least 8 pixels on each side"):
            read_source(image, pre)
    path = tmp_path / "strip.png"
    Image.fromarray(np.zeros((5, 640, 3), np.uint8)).save(path)  # 5 rows of 640 RGB pixels
    with pytest.raises(InvalidInputError, match=r"image too small: 5x640 .* in .*strip\.png; the lhrnet 256x512 "):
        read_source(path, pre, what="lhrnet 256x512")
    with pytest.raises(InvalidInputError, match=r"image too small: 7x9 \(height x width\); the model needs at least 8"):
        to_tensor(np.zeros((3, 7, 9), np.float32), pre)  # checked sources that skipped read_source
    with pytest.raises(InvalidInputError, match="expected 3 or 4 channels, got 2"):
        read_source(np.zeros((2, 5, 5), np.float32), pre)  # a wrong channel count is named first
