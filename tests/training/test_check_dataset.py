"""``python -m training.check_dataset`` and the check training runs first: every problem listed, training stopped.

The synthetic datasets of every family pass; copies of them broken one way per
file must be reported with the right path (relative to the root) and kind.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tifffile

from runtime.core import InvalidInputError, write_png, write_tiff
from runtime.families.brn import DEFECT_CATEGORY, image_type
from training import get_training_family
from training.check_dataset import check_dataset, main
from training.families.brn.options import BrnOptions
from training.train import TrainConfig, main as train_main, train


def _problems(report) -> set[tuple[str, str, str]]:
    return {(p.severity.value, p.kind, p.path) for p in report.problems}


@pytest.fixture
def brn_copy(brn_dataset, tmp_path) -> Path:
    return Path(shutil.copytree(brn_dataset, tmp_path / "data"))


# -- the synthetic datasets pass ---------------------------------------------------------------------------------
def test_the_synthetic_dataset_of_every_family_passes(family_name, family_dataset, capsys):
    family = get_training_family(family_name)
    report = check_dataset(family_dataset, family_name)
    assert report.ok, report.format()
    assert report.variant == family.variants()[0] and report.family == family_name
    assert "train" in report.splits and report.splits["train"].images > 0
    assert report.files_read >= sum(s.images for s in report.splits.values())
    assert main([str(family_dataset), "--family", family_name, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0 errors" in out and out.strip().splitlines()[-1].startswith(
        f"next: python -m training.train --family {family_name} --data {family_dataset}")


def test_brn_class_balance_counts_good_and_defect_images_per_split(brn_dataset):
    report = check_dataset(brn_dataset, "brn")
    tiny = get_training_family("brn").tiny_config().dataset
    assert report.splits["train"].classes == {"good": tiny.n_train}
    assert report.splits["test"].classes == {"good": tiny.n_test_good, DEFECT_CATEGORY: tiny.n_test_defect}
    assert list(report.splits) == ["train", "test"]


# -- brn: one problem per file ---------------------------------------------------------------------------------
def _break_brn(root: Path) -> set[tuple[str, str, str]]:
    """Break one file per kind of problem; the (severity, kind, path) the check must report."""
    geometry = image_type(get_training_family("brn").variants()[0])
    h, w = geometry.height, geometry.width
    good, truth = root / "train" / "good", root / "ground_truth" / DEFECT_CATEGORY
    image = tifffile.imread(good / "000.tiff")
    write_tiff(good / "000.tiff", image / 255.0)  # scaled to 0..1: the classic mistake
    nan = image.copy()
    nan[0, 5, 5] = np.nan
    write_tiff(good / "001.tiff", nan)
    write_tiff(good / "002.tiff", image[:, : h // 2])  # half the height
    write_tiff(good / "003.tiff", np.concatenate([image, image[:1]]))  # 5 channels
    (good / "004.tiff").write_bytes(b"II*\x00garbage")
    (good / "notes.txt").write_text("not an image")
    (truth / "000_mask.tiff").unlink()  # its image has no mask now
    mask = tifffile.imread(truth / "001_mask.tiff")
    soft = mask.copy()
    soft[tuple(np.argwhere(mask > 0)[0])] = 0.5  # a soft edge: 0, 0.5 and 1
    write_tiff(truth / "001_mask.tiff", soft)
    write_tiff(truth / "002_mask.tiff", mask[: h // 2])
    write_tiff(truth / "099_mask.tiff", np.zeros((h, w), np.float32))  # no image 099
    write_tiff(root / "test" / "good" / "001.tiff", image / 2)  # fine: 0..75 is a valid range
    (root / "validation").mkdir()
    return {
        ("error", "wrong-range", "train/good/000.tiff"),
        ("error", "not-finite", "train/good/001.tiff"),
        ("error", "wrong-size", "train/good/002.tiff"),
        ("error", "wrong-channels", "train/good/003.tiff"),
        ("error", "unreadable", "train/good/004.tiff"),
        ("warning", "ignored", "train/good/notes.txt"),
        ("error", "image-without-mask", f"test/{DEFECT_CATEGORY}/000.tiff"),
        ("error", "mask-not-binary", f"ground_truth/{DEFECT_CATEGORY}/001_mask.tiff"),
        ("error", "mask-wrong-size", f"ground_truth/{DEFECT_CATEGORY}/002_mask.tiff"),
        ("warning", "mask-without-image", f"ground_truth/{DEFECT_CATEGORY}/099_mask.tiff"),
        ("warning", "ignored", "validation"),
        # what is left to score: 2 good test images and no defect image with a usable mask
        ("error", "one-class", "test"),
        ("warning", "few-images", "train/good"),
    }


def test_every_broken_brn_file_is_listed_with_its_kind(brn_copy):
    expected = _break_brn(brn_copy)
    report = check_dataset(brn_copy, "brn")
    assert _problems(report) == expected, report.format()
    assert not report.ok
    messages = {p.path: p.message for p in report.problems}
    assert "look like 0..1" in messages["train/good/000.tiff"] and "expected 0..255" in messages["train/good/000.tiff"]
    assert str(brn_copy) not in "".join(messages.values()), "messages name paths relative to the root"
    assert f"ground_truth/{DEFECT_CATEGORY}/000_mask.tiff" in messages[f"test/{DEFECT_CATEGORY}/000.tiff"]


def test_cli_exits_1_on_errors_and_writes_every_problem_as_json(brn_copy, tmp_path, capsys):
    expected = _break_brn(brn_copy)
    out = tmp_path / "report.json"
    assert main([str(brn_copy), "--json", str(out), "--max-problems", "3", "--no-progress"]) == 1
    text = capsys.readouterr().out
    errors = sum(1 for severity, _, _ in expected if severity == "error")
    assert f"{errors} errors, {len(expected) - errors} warnings" in text
    assert "... and 10 more (--json FILE lists every one)" in text
    assert "split  images  good" in text and "next:" not in text
    data = json.loads(out.read_text())
    assert data["ok"] is False and data["errors"] == errors
    assert {(p["severity"], p["kind"], p["path"]) for p in data["problems"]} == expected
    assert data["splits"]["train"]["images"] == len(list((brn_copy / "train" / "good").glob("*.tiff")))


def test_brn_without_training_images_or_test_split_is_refused(brn_copy):
    shutil.rmtree(brn_copy / "test")
    for path in (brn_copy / "train" / "good").iterdir():
        path.unlink()
    report = check_dataset(brn_copy, "brn")
    assert {(p.kind, p.path) for p in report.errors} == {("missing", "train/good"), ("missing", "test")}
    assert {p.kind for p in report.warnings} == {"mask-without-image"}, "no image is left for the masks"


# -- lhrnet ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lhrnet_dataset(tmp_path_factory) -> Path:
    from training.smoke import make_tiny_dataset

    return make_tiny_dataset("lhrnet", tmp_path_factory.mktemp("lhrnet") / "data")


def test_every_broken_lhrnet_label_and_image_is_listed(lhrnet_dataset, tmp_path):
    root = Path(shutil.copytree(lhrnet_dataset, tmp_path / "data"))
    data = json.loads((root / "train.json").read_text())
    entries = data["images"]
    files = [e["file"] for e in entries]
    (root / files[0]).unlink()  # a label naming a missing file
    entries[1]["slot"] = [entries[1]["width"] + 50.0, 1.0]  # outside its image
    entries[2]["angle"] = float("nan")  # json writes NaN
    entries[3]["width"] += 7  # the image is not the size the label says
    (root / files[4]).write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    write_png(root / files[5], np.zeros((5, 5, 3), np.uint8))  # below the 8-pixel minimum
    entries[5]["width"] = entries[5]["height"] = 5
    entries[5]["slot"] = entries[5]["part"] = [1.0, 1.0]
    del entries[6]["part"]
    (root / "train.json").write_text(json.dumps(data))
    write_png(root / "images" / "extra.png", np.zeros((16, 16, 3), np.uint8))
    report = check_dataset(root, "lhrnet")
    assert _problems(report) == {
        ("error", "missing-image", files[0]),
        ("error", "point-outside", files[1]),
        ("error", "label-not-finite", files[2]),
        ("error", "size-mismatch", files[3]),
        ("error", "unreadable", files[4]),
        ("error", "too-small", files[5]),
        ("error", "bad-label", files[6]),
        ("warning", "ignored", "images/extra.png"),
        ("warning", "few-images", "train.json"),
        ("warning", "few-images", "valid.json"),
    }, report.format()
    assert report.splits["train"].images == len(entries)


def test_an_unreadable_split_file_is_one_error(lhrnet_dataset, tmp_path):
    root = Path(shutil.copytree(lhrnet_dataset, tmp_path / "data"))
    (root / "valid.json").write_text('{"format": "something-else", "images": []}')
    (root / "train.json").unlink()
    problems = {(kind, path) for severity, kind, path in _problems(check_dataset(root, "lhrnet"))
                if severity == "error"}
    assert problems == {("missing", "train.json"), ("bad-label-file", "valid.json")}


# -- usage ------------------------------------------------------------------------------------------------------
def test_cli_usage_errors_exit_2(brn_dataset, tmp_path, capsys):
    assert main([str(tmp_path / "nope"), "--no-progress"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(brn_dataset), "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main([str(brn_dataset), "--family", "nope"]) == 2
    with pytest.raises(SystemExit) as exit_:
        main([str(brn_dataset), "--variant", "nope"])
    assert exit_.value.code == 2
    with pytest.raises(InvalidInputError, match="not a folder"):
        check_dataset(brn_dataset / "dataset.json")


# -- training checks first ----------------------------------------------------------------------------------------
def _tiny(data: Path, out: Path, **changes) -> TrainConfig:
    return TrainConfig(out=out, data=data, epochs=1, steps_per_epoch=1, batch_size=2, progress=False,
                       tensorboard=False, family_options=BrnOptions(base_width=4), **changes)


def test_training_stops_on_dataset_errors_before_writing_and_can_skip_the_check(brn_copy, tmp_path):
    # A soft mask: training would read it (every value above 0 is a defect), the check refuses it.
    truth = brn_copy / "ground_truth" / DEFECT_CATEGORY / "001_mask.tiff"
    write_tiff(truth, tifffile.imread(truth) * 0.6 + 0.2)
    out = tmp_path / "run"
    with pytest.raises(InvalidInputError, match=r"(?s)1 error \(mask-not-binary.*001_mask.tiff: mask is not binary.*"
                                                r"python -m training.check_dataset .*--no-check-dataset"):
        train(_tiny(brn_copy, out))
    assert not out.exists(), "nothing is written before the dataset passed"
    result = train(_tiny(brn_copy, out, check_dataset=False))
    assert result.best.is_file()


def test_cli_flag_and_config_file_carry_the_check_setting(brn_copy, tmp_path, capsys):
    (brn_copy / "train" / "good" / "000.tiff").write_bytes(b"broken")
    args = ["--data", str(brn_copy), "--out", str(tmp_path / "run"), "--base-width", "4", "--epochs", "1",
            "--steps-per-epoch", "1", "--batch-size", "2", "--no-progress", "--no-tensorboard", "--no-report"]
    assert train_main(args) == 2
    assert "train/good/000.tiff" in capsys.readouterr().err
    from training import train as train_module

    family = get_training_family("brn")
    parsed = train_module._parser(family).parse_args(args + ["--no-check-dataset"])
    assert train_module._config_from_args(parsed, family).check_dataset is False
