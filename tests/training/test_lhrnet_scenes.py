"""lhrnet's synthetic scenes, augmentations and dataset writer: exact labels, determinism, layout, validation."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from runtime.core import InvalidInputError, letterbox, read_image, write_png
from training.families.lhrnet import make_dataset as dataset_module
from training.families.lhrnet.augment import (AugmentOptions, affine_matrix, apply_affine, augment, colour_jitter,
                                              warp_affine)
from training.families.lhrnet.make_dataset import make_dataset, read_split, split_indices
from training.families.lhrnet.scenes import (Outline, SceneKind, SceneOptions, make_shape, polygon_coverage,
                                             relative_angle, render_scene)

# Small scenes keep the suite fast; the geometry does not depend on the size.
SMALL = SceneOptions(heights=(96, 128), aspects=(1.0, 1.5, 2.0, 2.5, 3.0))
# Nothing but the outlines: no decoys, noise, blur or highlighted edge.
CLEAN = SceneOptions(size=(200, 360), decoys=0.0, noise=0.0, highlighted_edge=0.0, blur=(0.0, 0.0),
                     sensor_noise=(0.0, 0.0))
TINY_DATASET = SceneOptions(heights=(80,), aspects=(1.0, 2.5))


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _centroid(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.indices(mask.shape)
    total = mask.sum(dtype=np.float64)
    return np.array([((cols + 0.5) * mask).sum() / total, ((rows + 0.5) * mask).sum() / total])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.minimum(a, b).sum() / np.maximum(a, b).sum())


# --- scenes -------------------------------------------------------------------------------


def test_same_stream_same_scene_and_another_index_another_scene():
    a = render_scene(np.random.default_rng([0, 5]), SMALL)
    b = render_scene(np.random.default_rng([0, 5]), SMALL)
    c = render_scene(np.random.default_rng([0, 6]), SMALL)
    assert a.image.dtype == np.uint8 and a.image.ndim == 3 and a.image.shape[2] == 3
    assert a.image.tobytes() == b.image.tobytes() and a.label() == b.label()
    assert a.image.shape != c.image.shape or a.image.tobytes() != c.image.tobytes()
    assert a.label() != c.label()


@pytest.mark.parametrize("seed", range(14))
def test_labels_are_the_centroids_of_the_drawn_outlines(seed):
    outline = list(Outline)[seed % len(Outline)]
    options = CLEAN if seed < 7 else dataclasses.replace(CLEAN, rotated_part=1.0, size=(300, 300))
    scene = render_scene(np.random.default_rng(seed), dataclasses.replace(options, outlines=(outline,)), masks=True)
    label = scene.label()
    slot, part = scene.masks["slot"], scene.masks["part"]
    assert np.abs(_centroid(slot) - label["slot"]).max() < 0.5
    assert np.abs(_centroid(part) - label["part"]).max() < 0.5
    # In fact far better than half a pixel: the coverage is exact along x, 8x supersampled along y.
    assert np.abs(_centroid(slot) - label["slot"]).max() < 0.05
    # Same outline, part scaled by 0.9..1.1, no overlap, both inside with a margin.
    assert 0.8 < part.sum() / slot.sum() < 1.22
    assert part.sum() / slot.sum() == pytest.approx(scene.scale ** 2, rel=0.02)
    assert not (slot * part).any()
    for name in ("slot", "part"):
        x, y = label[name]
        assert 0.03 * 200 <= x <= label["width"] - 6 and 6 <= y <= label["height"] - 6
    assert label["symmetry"] == scene.slot.shape.symmetry
    assert -180.0 / label["symmetry"] < label["angle"] <= 180.0 / label["symmetry"]


@pytest.mark.parametrize("outline", list(Outline))
def test_the_part_turned_back_by_the_label_angle_fits_the_slot(outline):
    # Strongly rotated parts (15..60 degrees), so a wrong sign or a wrong reduction would show.
    options = dataclasses.replace(CLEAN, rotated_part=1.0, outlines=(outline,), size=(300, 400))
    scene = render_scene(np.random.default_rng(7), options, masks=True)
    label = scene.label()
    slot, part = scene.masks["slot"], scene.masks["part"][..., None]

    def moved_onto_slot(degrees: float, scale: float) -> np.ndarray:
        shift = (label["slot"][0] - label["part"][0], label["slot"][1] - label["part"][1])
        return warp_affine(part, affine_matrix(degrees, scale, shift, tuple(label["part"])))[..., 0]

    assert _iou(moved_onto_slot(-label["angle"], 1.0 / scene.scale), slot) > 0.95
    assert _iou(moved_onto_slot(-label["angle"], 1.0), slot) > 0.75  # without undoing the scale
    assert _iou(moved_onto_slot(+label["angle"], 1.0 / scene.scale), slot) < 0.9  # the sign matters


@pytest.mark.parametrize("outline", list(Outline))
def test_outline_symmetry_orders(outline):
    for seed in range(3):
        shape = make_shape(outline, np.random.default_rng(seed))
        assert np.abs(shape.vertices).max() <= 1.0 + 1e-9

        def drawn(degrees: float) -> np.ndarray:
            theta = math.radians(degrees)
            turn = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
            return polygon_coverage(shape.vertices @ turn * 60 + 64, 128, 128)

        upright = drawn(0.0)
        assert _centroid(upright) == pytest.approx([64.0, 64.0], abs=0.05)
        assert _iou(drawn(360.0 / shape.symmetry), upright) > 0.99
        # Not more symmetric than stated: half of the symmetry period changes the outline.
        assert _iou(drawn(180.0 / shape.symmetry), upright) < 0.95


def test_polygon_coverage_is_exact_for_axis_aligned_and_slanted_edges():
    square = np.array([[1.25, 2.0], [3.75, 2.0], [3.75, 4.5], [1.25, 4.5]])
    coverage = polygon_coverage(square, 6, 6)
    assert coverage.sum() == pytest.approx(2.5 * 2.5)
    assert coverage[2, 1] == pytest.approx(0.75) and coverage[4, 2] == pytest.approx(0.5)
    triangle = np.array([[10.3, 5.1], [40.7, 12.9], [18.2, 33.3]])
    coverage = polygon_coverage(triangle, 48, 48)
    x, y = triangle.T
    area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))
    assert coverage.sum() == pytest.approx(area, rel=1e-3)
    assert _centroid(coverage) == pytest.approx(triangle.mean(axis=0), abs=0.01)
    # A window elsewhere in the image sees the same pixels.
    window = polygon_coverage(triangle, 20, 24, origin=(10, 12))
    np.testing.assert_allclose(window, coverage[10:30, 12:36], atol=1e-6)


def test_relative_angle_reduces_by_the_symmetry():
    assert relative_angle(350.0) == -10.0 and relative_angle(180.0) == 180.0 and relative_angle(-180.0) == 180.0
    assert relative_angle(100.0, 2) == -80.0 and relative_angle(-90.0, 2) == 90.0 and relative_angle(12.5, 2) == 12.5


def test_every_kind_appears_and_the_letterbox_pads_both_ways():
    kinds, pads, outlines = set(), set(), set()
    for seed in range(100):
        scene = render_scene(np.random.default_rng([1, seed]), SMALL)
        kinds.update(scene.kinds)
        outlines.add(scene.slot.shape.outline)
        assert (scene.kinds == ("plain",)) == (not set(scene.kinds) - {"plain"})
        assert ("decoys" in scene.kinds) == bool(scene.decoys)
        height, width = scene.image.shape[:2]
        transform = letterbox(np.zeros((1, height, width), np.float32), 256, 512, 255.0)[2]
        pads.add("x" if transform.pad_x else "y" if transform.pad_y else "none")
    assert kinds == {kind.value for kind in SceneKind}
    assert pads == {"x", "y", "none"} and outlines == set(Outline)


def test_default_sizes_vary_within_their_ranges():
    shapes = {render_scene(np.random.default_rng(seed)).image.shape[:2] for seed in range(5)}
    assert len(shapes) >= 3
    for height, width in shapes:
        assert 240 <= height <= 1080 and height <= width <= 1920


@pytest.mark.parametrize(("change", "match"), [
    ({"outlines": ("hexagon",)}, r"unknown outline 'hexagon'; expected one of \['rounded_rect'"),
    ({"decoys": 1.5}, "decoys is a probability in 0..1, got 1.5"),
    ({"size": (32, 64)}, r"size must be \(height, width\) with both >= 64"),
    ({"part_scale": (1.1, 0.9)}, r"part_scale must be \(min, max\)"),
    ({"part_angle": 30.0, "rotated_part_angle": 20.0}, "part_angle <= rotated_part_angle"),
])
def test_bad_scene_options_are_refused(change, match):
    with pytest.raises(InvalidInputError, match=match):
        SceneOptions(**change)


# --- augmentations ------------------------------------------------------------------------

GEOMETRY_ONLY = AugmentOptions(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, noise=0.0)


def _dots(height: int, width: int, points: list[tuple[float, float]]) -> np.ndarray:
    rows, cols = np.indices((height, width)) + 0.5
    image = np.zeros((height, width, 3), np.float32)
    for x, y in points:
        image += (200.0 * np.exp(-((cols - x) ** 2 + (rows - y) ** 2) / (2 * 2.5 ** 2)))[..., None]
    return image


def test_augment_moves_the_labels_exactly_with_the_image():
    points = [(61.3, 47.8), (150.6, 92.2)]
    image = _dots(140, 220, points)
    label = {"slot": list(points[0]), "part": list(points[1]), "angle": 12.5, "symmetry": 1}
    for seed in range(6):
        out, moved = augment(image, label, np.random.default_rng(seed), GEOMETRY_ONLY)
        assert out.shape == image.shape and out.dtype == np.float32
        assert moved["angle"] == 12.5 and moved["symmetry"] == 1 and label["slot"] == list(points[0])
        for name in ("slot", "part"):
            x, y = moved[name]
            window = out[int(y) - 14:int(y) + 15, int(x) - 14:int(x) + 15, 0]
            found = _centroid(window) + [int(x) - 14, int(y) - 14]
            assert np.abs(found - moved[name]).max() < 0.5
            assert np.abs(found - moved[name]).max() < 0.1  # bilinear resampling keeps a blob's centroid
        assert moved["slot"] != label["slot"]  # it did move


def test_augment_is_a_pure_function_of_the_generator_and_keeps_the_dtype():
    scene = render_scene(np.random.default_rng(3), SMALL)
    label = scene.label()
    a = augment(scene.image, label, np.random.default_rng(9))
    b = augment(scene.image, label, np.random.default_rng(9))
    assert a[0].dtype == np.uint8 and a[0].shape == scene.image.shape
    assert a[0].tobytes() == b[0].tobytes() and a[1] == b[1]
    assert a[0].tobytes() != augment(scene.image, label, np.random.default_rng(10))[0].tobytes()


def test_augment_keeps_points_inside_or_leaves_the_geometry_out():
    image = _dots(100, 160, [(1.5, 50.0), (150.0, 98.0)])
    label = {"slot": [1.5, 50.0], "part": [150.0, 98.0], "angle": 0.0}
    for seed in range(10):
        _, moved = augment(image, label, np.random.default_rng(seed), GEOMETRY_ONLY)
        for x, y in (moved["slot"], moved["part"]):
            assert 1.0 <= x <= 159.0 and 1.0 <= y <= 99.0
    # No geometry can keep a point 60 px inside a 100 px high image: it is left out, not clamped.
    options = dataclasses.replace(GEOMETRY_ONLY, inside_margin=60.0, blur=(0.0, 0.0))
    out, moved = augment(image, label, np.random.default_rng(0), options)
    assert moved == label and np.allclose(out, image)


def test_warp_and_points_agree_on_the_pixel_convention():
    # 90 degrees about the centre of a 4x4 image: the top-left pixel goes to the bottom-left.
    image = np.zeros((4, 4, 1), np.float32)
    image[0, 0] = 1.0
    matrix = affine_matrix(90.0, 1.0, (0.0, 0.0), (2.0, 2.0))
    assert np.argwhere(warp_affine(image, matrix)[..., 0] > 0.99).tolist() == [[3, 0]]
    np.testing.assert_allclose(apply_affine([[0.5, 0.5]], matrix), [[0.5, 3.5]], atol=1e-12)


def test_colour_jitter_without_ranges_is_the_identity_and_hue_keeps_grey():
    image = np.random.default_rng(0).uniform(0, 255, (8, 8, 3)).astype(np.float32)
    np.testing.assert_array_equal(colour_jitter(image, np.random.default_rng(0), brightness=0, contrast=0,
                                                saturation=0, hue=0), image)
    grey = np.full((4, 4, 3), 100.0, np.float32)
    np.testing.assert_allclose(colour_jitter(grey, np.random.default_rng(1), brightness=0, contrast=0.5,
                                             saturation=0.5, hue=0.5), grey, atol=1e-3)


def test_bad_augment_arguments_are_refused():
    with pytest.raises(InvalidInputError, match=r"scale must be \(min, max\)"):
        AugmentOptions(scale=(0.0, 1.0))
    with pytest.raises(InvalidInputError, match=r"expects an \(H, W, C\) image with C >= 3"):
        augment(np.zeros((10, 10)), {"slot": [1, 1], "part": [2, 2]}, np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match=r"expects a label with \[x, y\] points"):
        augment(np.zeros((10, 10, 3)), {"slot": [1, 1]}, np.random.default_rng(0))


# --- make_dataset -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("lhrnet") / "data", seed=3, n_images=20, options=TINY_DATASET)


def test_layout_split_and_metadata(dataset):
    files = _files(dataset)
    assert sorted(f for f in files if not f.startswith("images/")) == [
        "contact_sheet.png", "dataset.json", "train.json", "valid.json"]
    assert sorted(f for f in files if f.startswith("images/")) == [f"images/{i:06d}.png" for i in range(20)]
    assert [p.name for p in dataset.parent.iterdir()] == ["data"]  # no staging folder or lock left
    train, valid = read_split(dataset, "train"), read_split(dataset, "valid")
    assert (len(train), len(valid)) == (18, 2)
    assert sorted(e["file"] for e in train + valid) == [f"images/{i:06d}.png" for i in range(20)]
    assert {int(Path(e["file"]).stem) for e in valid} == split_indices(20)
    metadata = json.loads(files["dataset.json"])
    assert metadata["counts"] == {"images": 20, "train": 18, "valid": 2}
    assert metadata["seed"] == 3 and metadata["split_seed"] == 42 and metadata["family"] == "lhrnet"
    assert sum(metadata["kinds"].values()) >= 20 and metadata["options"]["heights"] == [80]


def test_entries_describe_their_images(dataset):
    raw = json.loads((dataset / "train.json").read_text())
    assert raw["format"] == "lhrnet-keypoints/1" and raw["points"] == ["slot", "part"]
    assert set(raw["images"][0]) == {"file", "width", "height", "slot", "part", "angle", "symmetry", "kinds"}
    for entry in read_split(dataset, "train")[:6]:
        image = read_image(entry["path"])
        assert image.shape == (3, entry["height"], entry["width"])
        assert set(entry["kinds"]) <= {kind.value for kind in SceneKind} and entry["kinds"]
        n = entry["symmetry"]
        assert -180 / n < entry["angle"] <= 180 / n
    sheet = read_image(dataset / "contact_sheet.png")
    assert sheet.shape[2] == 3 * 512 + 2 * 4 and sheet.shape[1] > 4 * 256  # 12 tiles, 3 per row


def test_same_seed_same_bytes_and_the_split_ignores_the_seed(tmp_path, dataset):
    again = make_dataset(tmp_path / "again", seed=3, n_images=20, options=TINY_DATASET)
    assert _files(again) == _files(dataset)
    other = make_dataset(tmp_path / "other", seed=4, n_images=20, options=TINY_DATASET)
    assert _files(other)["images/000000.png"] != _files(dataset)["images/000000.png"]
    assert [e["file"] for e in read_split(other, "valid")] == [e["file"] for e in read_split(dataset, "valid")]


def test_refuses_a_non_empty_folder_without_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(InvalidInputError, match=r"data exists and is not empty.*overwrite=True"):
        make_dataset(out, n_images=2, options=TINY_DATASET)
    assert _files(out) == {"keep.txt": b"precious"} and [p.name for p in tmp_path.iterdir()] == ["data"]
    make_dataset(out, n_images=2, options=TINY_DATASET, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "valid.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    calls = []

    def failing(rng, options):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return render_scene(rng, options)

    monkeypatch.setattr(dataset_module, "render_scene", failing)
    with pytest.raises(RuntimeError, match="boom"):
        make_dataset(tmp_path / "data", n_images=5, options=TINY_DATASET)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_images": 1}, "n_images must be an integer >= 2"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"options": {"decoys": 0.5}}, "options must be a SceneOptions, got dict"),
])
def test_bad_dataset_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        make_dataset(tmp_path / "data", **kwargs)
    assert list(tmp_path.iterdir()) == []


# --- read_split ---------------------------------------------------------------------------


def _user_dataset(root: Path, entry_changes: dict | None = None, drop: str | None = None, **top) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    write_png(root / "images" / "a.png", np.zeros((40, 100, 3), np.uint8))
    entry = {"file": "images/a.png", "width": 100, "height": 40, "slot": [10.5, 20.0], "part": [80.0, 5.25],
             "angle": 170.0, "symmetry": 2, "kinds": ["mine"], **(entry_changes or {})}
    if drop:
        del entry[drop]
    data = {"format": "lhrnet-keypoints/1", "points": ["slot", "part"], "images": [entry], **top}
    (root / "train.json").write_text(json.dumps(data))
    return root


def test_read_split_accepts_a_users_dataset_and_reduces_its_angle(tmp_path):
    [entry] = read_split(_user_dataset(tmp_path), "train")
    assert entry == {"file": "images/a.png", "path": tmp_path / "images" / "a.png", "width": 100, "height": 40,
                     "slot": [10.5, 20.0], "part": [80.0, 5.25], "angle": -10.0, "symmetry": 2, "kinds": ["mine"]}
    [entry] = read_split(_user_dataset(tmp_path, drop="symmetry"), "train")
    assert (entry["symmetry"], entry["angle"]) == (1, 170.0)


@pytest.mark.parametrize(("changes", "drop", "match"), [
    ({}, "part", r"train.json image 0: missing fields \['part'\]"),
    ({"extra": 1}, None, r"unknown fields \['extra'\]"),
    ({"slot": [100.5, 3.0]}, None, r"\"slot\" = \[100.5, 3.0\] lies outside the 100x40 image"),
    ({"part": [float("nan"), 3.0]}, None, "\"part\" must be a finite number, got nan"),
    ({"angle": float("inf")}, None, "\"angle\" must be a finite number"),
    ({"file": "images/missing.png"}, None, "image file not found"),
    ({"file": "/etc/passwd"}, None, "\"file\" must be a path inside"),
])
def test_read_split_names_the_bad_entry_and_field(tmp_path, changes, drop, match):
    _user_dataset(tmp_path, changes, drop)
    with pytest.raises(InvalidInputError, match=match):
        read_split(tmp_path, "train")


def test_read_split_refuses_bad_files(tmp_path):
    with pytest.raises(InvalidInputError, match=r"no 'train' split in .*train.json"):
        read_split(tmp_path, "train")
    (tmp_path / "train.json").write_text('{"format": "lhrnet-keypoints/1", ')
    with pytest.raises(InvalidInputError, match=r"cannot read .*train.json: Expecting property name"):
        read_split(tmp_path, "train")
    _user_dataset(tmp_path, format="coco/1")
    with pytest.raises(InvalidInputError, match="train.json: expected a JSON object with \"format\": "
                                                "\"lhrnet-keypoints/1\""):
        read_split(tmp_path, "train")
    _user_dataset(tmp_path, points=["part", "slot"])
    with pytest.raises(InvalidInputError, match=r"\"points\" must be \['slot', 'part'\]"):
        read_split(tmp_path, "train")
