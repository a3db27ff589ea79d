"""brn's synthetic backgrounds and dataset writer (layout, format, determinism, refusal) and the generic CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile

from runtime.core import InvalidInputError, read_image
from training.families.brn.backgrounds import BackgroundStyle, synthesize_background
from training.families.brn.make_dataset import make_dataset
from training.make_dataset import main, make_synthetic_dataset

SMALL = {"n_train": 2, "n_test_good": 1, "n_test_defect": 2}


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --- backgrounds --------------------------------------------------------------------------


@pytest.mark.parametrize("style", list(BackgroundStyle))
def test_background_shape_range_and_channels(style):
    image = synthesize_background(np.random.default_rng(0), style=style)
    assert image.shape == (3, 976, 176) and image.dtype == np.float32
    assert np.isfinite(image).all() and 20 <= image.min() and image.max() <= 235
    # Three acquisitions of one scene: strongly correlated, but not identical.
    for ref in (1, 2):
        assert np.corrcoef(image[0].ravel(), image[ref].ravel())[0, 1] > 0.5
        assert not np.array_equal(image[0], image[ref])
    # Structure, not flat noise.
    assert image[0].std() > 3


def test_background_values_stay_inside_range_over_many_seeds():
    for seed in range(60):
        image = synthesize_background(np.random.default_rng(seed), 128, 128)
        assert image.shape == (3, 128, 128)
        assert image.min() > 10 and image.max() < 245


def test_background_is_deterministic_and_styles_accept_strings():
    a = synthesize_background(np.random.default_rng(5), 64, 32, style="line_scan")
    b = synthesize_background(np.random.default_rng(5), 64, 32, style=BackgroundStyle.LINE_SCAN)
    np.testing.assert_array_equal(a, b)


def test_background_refuses_unknown_style_and_bad_size():
    with pytest.raises(InvalidInputError, match=r"unknown background style 'plaid'; expected one of"):
        synthesize_background(np.random.default_rng(0), style="plaid")
    with pytest.raises(InvalidInputError, match="must be positive, got 0x10"):
        synthesize_background(np.random.default_rng(0), 0, 10)


# --- make_dataset -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("ds") / "data", seed=3, **SMALL)


def test_layout(dataset):
    assert sorted(_files(dataset)) == [
        "dataset.json",
        "ground_truth/bright_spots/000_mask.tiff",
        "ground_truth/bright_spots/001_mask.tiff",
        "test/bright_spots/000.tiff",
        "test/bright_spots/001.tiff",
        "test/good/000.tiff",
        "train/good/000.tiff",
        "train/good/001.tiff",
    ]
    metadata = json.loads((dataset / "dataset.json").read_text())
    assert metadata["seed"] == 3 and metadata["image_type"] == "strip"
    assert metadata["counts"] == {"train/good": 2, "test/good": 1, "test/bright_spots": 2}
    # No staging folders are left next to the dataset.
    assert [p.name for p in dataset.parent.iterdir()] == ["data"]


def test_images_are_four_channel_float32_chw(dataset):
    for path in sorted(dataset.rglob("*.tiff")):
        raw = tifffile.imread(path)
        assert raw.dtype == np.float32, path
        if path.parent.parent.name == "ground_truth":
            assert raw.shape == (976, 176) and set(np.unique(raw)) <= {0.0, 1.0}
            continue
        assert raw.shape == (4, 976, 176), path
        assert 0 <= raw[:3].min() and raw[:3].max() <= 255
        if path.parent.name == "good":
            assert not raw[3].any()
        assert read_image(path, expected_hw=(976, 176)).shape == (3, 976, 176)


def test_defect_images_carry_their_mask(dataset):
    for image_path in sorted((dataset / "test" / "bright_spots").glob("*.tiff")):
        mask = tifffile.imread(dataset / "ground_truth" / "bright_spots" / f"{image_path.stem}_mask.tiff")
        raw = tifffile.imread(image_path)
        assert mask.any(), "every test defect image has a Target-only defect"
        np.testing.assert_array_equal(raw[3], mask)


def test_same_seed_gives_identical_bytes(tmp_path, dataset):
    again = make_dataset(tmp_path / "again", seed=3, **SMALL)
    assert _files(again) == _files(dataset)
    other = make_dataset(tmp_path / "other", seed=4, **SMALL)
    assert _files(other)["train/good/000.tiff"] != _files(dataset)["train/good/000.tiff"]


def test_splits_do_not_depend_on_other_counts(tmp_path, dataset):
    more = make_dataset(tmp_path / "more", seed=3, n_train=3, n_test_good=1, n_test_defect=1)
    assert _files(more)["test/bright_spots/000.tiff"] == _files(dataset)["test/bright_spots/000.tiff"]
    assert _files(more)["train/good/001.tiff"] == _files(dataset)["train/good/001.tiff"]


def test_refuses_non_empty_folder_without_overwrite(tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    with pytest.raises(InvalidInputError, match=r"data exists and is not empty.*overwrite=True \(--force\)"):
        make_dataset(out, **SMALL)
    assert _files(out) == {"keep.txt": b"precious"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]

    make_dataset(out, overwrite=True, n_train=1, n_test_good=0, n_test_defect=1)
    assert not (out / "keep.txt").exists() and (out / "train" / "good" / "000.tiff").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_empty_existing_folder_is_fine(tmp_path):
    out = tmp_path / "empty"
    out.mkdir()
    make_dataset(out, n_train=1, n_test_good=0, n_test_defect=0)
    assert (out / "train" / "good" / "000.tiff").is_file()


def test_failure_leaves_nothing_behind(tmp_path, monkeypatch):
    import training.families.brn.make_dataset as module

    def fail(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(module, "synthesize_sample", fail)
    with pytest.raises(RuntimeError, match="boom"):
        make_dataset(tmp_path / "data", **SMALL)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"image_type": "hexagon"}, r"unknown image type 'hexagon' .*expected one of \['mvtec', 'square', 'strip'\]"),
    ({"n_train": -1}, r"count of train/good must be >= 0, got -1"),
    ({"n_train": 0, "n_test_good": 0, "n_test_defect": 0}, "nothing to write"),
])
def test_bad_arguments_are_refused(tmp_path, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        make_dataset(tmp_path / "data", **{**SMALL, **kwargs})
    assert list(tmp_path.iterdir()) == []


def test_square_image_type(tmp_path):
    out = make_dataset(tmp_path / "sq", image_type="square", n_train=1, n_test_good=0, n_test_defect=1)
    assert tifffile.imread(out / "test" / "bright_spots" / "000.tiff").shape == (4, 256, 256)


def test_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["--out", str(out), "--train", "1", "--test-good", "1", "--test-defect", "1", "--seed", "9"]) == 0
    printed = capsys.readouterr().out
    assert str(out) in printed and "next:" in printed
    assert (out / "ground_truth" / "bright_spots" / "000_mask.tiff").is_file()
    # A second run without --force refuses with a message and a non-zero status.
    assert main(["--out", str(out), "--train", "1"]) == 2
    assert "--force" in capsys.readouterr().err
    assert main(["--out", str(out), "--train", "1", "--test-good", "0", "--test-defect", "0", "--force"]) == 0
    assert not (out / "test" / "bright_spots" / "000.tiff").exists()


def test_cli_family_and_image_type_spellings(tmp_path, capsys):
    out = tmp_path / "sq"
    args = ["--out", str(out), "--train", "1", "--test-good", "0", "--test-defect", "1"]
    assert main(["--family", "brn", "--image-type", "square", *args]) == 0
    assert tifffile.imread(out / "train" / "good" / "000.tiff").shape == (4, 256, 256)
    assert "--variant square" in capsys.readouterr().out
    assert main(["--family", "brn", "--image_type", "square", *args, "--force"]) == 0
    assert main(["--family", "brn", "--variant", "square", *args, "--force"]) == 0


def test_cli_refuses_an_unknown_family_or_image_type(tmp_path, capsys):
    assert main(["--family", "nope", "--out", str(tmp_path / "x")]) == 2
    assert "unknown model family 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "x"), "--image-type", "hexagon"])
    assert exit_info.value.code == 2 and "invalid choice: 'hexagon'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_generic_front_end_writes_the_family_dataset(tmp_path, dataset):
    again = make_synthetic_dataset("brn", tmp_path / "again", seed=3, options=_options(**SMALL))
    assert _files(again) == _files(dataset)


def _options(n_train: int, n_test_good: int, n_test_defect: int):
    from training.families.brn.options import BrnDatasetOptions

    return BrnDatasetOptions(n_train=n_train, n_test_good=n_test_good, n_test_defect=n_test_defect)


def test_generic_front_end_refuses_foreign_options(tmp_path):
    with pytest.raises(InvalidInputError, match="dataset options of family 'brn' must be a BrnDatasetOptions, got dict"):
        make_synthetic_dataset("brn", tmp_path / "x", options={"n_train": 1})
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_negative_seed(tmp_path, capsys):
    from training.make_dataset import main

    assert main(["--out", str(tmp_path / "d"), "--seed", "-1"]) == 2
    assert "--seed must be an integer >= 0, got -1" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()
