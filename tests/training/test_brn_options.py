"""brn's loss, defect-synthesis, line-negative and image-format options: flags, checks, config.yaml, resume."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from runtime.core import InvalidInputError, write_png
from runtime.families.brn import image_type, training_images
from training import train as train_module
from training._config import TrainConfig, plain, write_config
from training.checkpoint import load_checkpoint
from training.families.brn import BrnTraining
from training.families.brn.data import DefectPatchDataset
from training.families.brn.defects import DefectConfig, DefectKernel
from training.families.brn.losses import GammaSchedule, ScheduleShape
from training.families.brn.options import BrnOptions, ImageFormat

FAMILY = BrnTraining()

#: every new option away from its default
CUSTOM = dict(gamma_start=0.5, gamma_end=2.0, gamma_schedule=ScheduleShape.EXPONENTIAL, amplitudes=(-40.0, 30.0, 45.0),
              defect_kernels=(DefectKernel(5, 5, 1.5, 1.5), DefectKernel(3, 3, 1.0, 1.0)), defect_rate=0.6,
              hard_normal_rate=0.1, line_negatives=0.3, img_format=ImageFormat.TIFF)
CUSTOM_FLAGS = ["--gamma_start", "0.5", "--gamma_end", "2", "--gamma-schedule", "exponential", "--amplitudes",
                "-40", "30", "45", "--defect-kernels", "5x5:1.5", "3x3:1", "--defect_rate", "0.6",
                "--hard-normal-rate", "0.1", "--line_negatives", "0.3", "--img_format", "tiff"]


def _cli(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["--data", str(dataset), "--out", str(out), "--base-width", "4", "--epochs", "2", "--steps-per-epoch",
            "2", "--batch-size", "2", "--seed", "5", "--device", "cpu", "--workers", "0", "--no-progress",
            "--save-every", "0", "--no-tensorboard", "--no-report", *extra]


# --- defaults ------------------------------------------------------------------------------


def test_default_options_are_todays_defect_synthesis_and_loss(brn_dataset):
    options = BrnOptions()
    options.validate()
    assert options.defect_config() == DefectConfig()
    assert FAMILY.make_loss(options).schedule == GammaSchedule(1.0, 3.0, ScheduleShape.COSINE)
    dataset = FAMILY.train_dataset(brn_dataset, "strip", options, length=6, seed=3)
    reference = DefectPatchDataset(training_images(brn_dataset), image_type("strip"), length=6, seed=3)
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        reference.set_epoch(epoch)
        for i in range(6):
            for ours, theirs in zip(dataset[i], reference[i]):
                assert torch.equal(ours, theirs)


# --- the command line ----------------------------------------------------------------------


def test_cli_parses_the_new_flags_and_their_spellings(tmp_path):
    parser = train_module._parser(FAMILY)
    args = parser.parse_args(["--synthetic", "--out", str(tmp_path), *CUSTOM_FLAGS])
    options = train_module._config_from_args(args, FAMILY).family_options
    assert options == BrnOptions(**CUSTOM)
    assert options.defect_config() == DefectConfig(
        defect_rate=0.6, hard_normal_rate=0.1, amplitudes=(-40.0, 30.0, 45.0), line_negative_rate=0.3,
        kernels=(DefectKernel(5, 5, 1.5, 1.5), DefectKernel(3, 3, 1.0, 1.0)))
    dashes = parser.parse_args(["--synthetic", "--out", str(tmp_path), "--gamma-start", "0.7", "--gamma-end", "1.5",
                                "--gamma_schedule", "linear", "--defect_kernels", "3x5:1.0,1.5", "--defect-rate",
                                "0.2", "--hard_normal_rate", "0", "--line-negatives", "0.1", "--img-format",
                                "png_jpg"])
    options = train_module._config_from_args(dashes, FAMILY).family_options
    assert (options.gamma_start, options.gamma_end, options.gamma_schedule, options.defect_kernels,
            options.defect_rate, options.hard_normal_rate, options.line_negatives, options.img_format) == \
        (0.7, 1.5, ScheduleShape.LINEAR, (DefectKernel(3, 5, 1.0, 1.5),), 0.2, 0.0, 0.1, ImageFormat.PNG_JPG)


def test_the_dataset_draws_what_the_options_say(brn_dataset):
    options = BrnOptions(**{**CUSTOM, "img_format": ImageFormat.ANY})
    assert FAMILY.train_dataset(brn_dataset, "strip", options, length=2, seed=0).defects == options.defect_config()
    lines = FAMILY.train_dataset(brn_dataset, "strip", BrnOptions(line_negatives=1.0), length=20, seed=0)
    points = FAMILY.train_dataset(brn_dataset, "strip", BrnOptions(), length=20, seed=0)
    assert not any(lines[i][1].any() for i in range(20)), "line negatives only: every mask empty"
    assert any(points[i][1].any() for i in range(20))


def test_help_documents_the_defect_synthesis(capsys):
    with pytest.raises(SystemExit):
        train_module.main(["--family", "brn", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for phrase in ("--gamma-schedule {cosine,linear,exponential}", "gs*(ge/gs)^t", "default -80 -60 60 80",
                   "misses faint ones at image level", "default 3x3:1.3 3x5:1.0,1.5", "--line-negatives FRACTION",
                   "went back to points only", "--img_format {tiff,png_jpg,any}", "--hard-normal-rate"):
        assert phrase in text, phrase


@pytest.mark.parametrize(("flags", "match"), [
    (["--amplitudes", "0", "60"], r"--amplitudes must be nonzero numbers with \|a\| <= 255 .*got \[0.0\]"),
    (["--amplitudes", "-300"], r"--amplitudes .* got \[-300.0\]"),
    (["--defect-kernels", "3x3:0"], "--defect-kernels: defect kernel sigma_y must be a number > 0, got 0.0"),
    (["--defect-kernels", "3by3"], "--defect-kernels: defect kernel '3by3' is not HxW:SIGMA"),
    (["--defect-kernels", "0x3:1"], "--defect-kernels: defect kernel height must be an integer >= 1, got 0"),
    (["--defect-kernels", "300x3:1"], r"--defect-kernels \['300x3:1.0'\] fit no brn patch; expected kernels of "
                                      r"at most 256x256"),
    (["--gamma-schedule", "exponential", "--gamma-start", "0"],
     "--gamma-schedule exponential .* needs --gamma-start and --gamma-end > 0, got 0.0 3.0"),
    (["--gamma-end", "-1"], "--gamma-start and --gamma-end must be >= 0"),
    (["--defect-rate", "1.5"], "--defect-rate must be a fraction in 0..1, got 1.5"),
    (["--hard-normal-rate", "-0.1"], "--hard-normal-rate must be a fraction in 0..1, got -0.1"),
    (["--line-negatives", "2"], "--line-negatives must be a fraction in 0..1, got 2.0"),
])
def test_cli_refuses_bad_values_naming_the_flag(tmp_path, capsys, flags, match):
    assert train_module.main(["--synthetic", "--out", str(tmp_path / "run"), *flags]) == 2

    assert re.search(match, capsys.readouterr().err), match
    assert not (tmp_path / "run").exists(), "checked before anything is written"


@pytest.mark.parametrize("flags", [["--gamma-schedule", "quadratic"], ["--img-format", "bmp"],
                                   ["--amplitudes"]])
def test_cli_refuses_unknown_choices_as_bad_usage(tmp_path, capsys, flags):
    with pytest.raises(SystemExit) as exit_info:
        train_module.main(["--synthetic", "--out", str(tmp_path / "run"), *flags])
    assert exit_info.value.code == 2 and flags[0] in capsys.readouterr().err


def test_a_kernel_larger_than_the_patch_is_refused(brn_dataset, tmp_path, capsys):
    """Strips are cut into 128x128 patches: a 200-row kernel fits a square image's patch but not these."""
    assert train_module.main(_cli(brn_dataset, tmp_path / "run", "--defect-kernels", "3x3:1", "200x3:1")) == 2
    err = capsys.readouterr().err
    assert "defect kernels ['200x3:1.0'] do not fit the 128x128 patches of image type 'strip' (--defect-kernels)" \
        in err


def test_bad_options_from_the_api_are_refused_by_validate():
    with pytest.raises(InvalidInputError, match="--gamma-schedule must be one of .*got 'cubic'"):
        BrnOptions(gamma_schedule="cubic").validate()
    with pytest.raises(InvalidInputError, match="--img-format must be one of .*got 'gif'"):
        BrnOptions(img_format="gif").validate()
    with pytest.raises(InvalidInputError, match="--amplitudes must list at least one value"):
        BrnOptions(amplitudes=()).validate()
    with pytest.raises(InvalidInputError, match="--defect-kernels must list at least one kernel"):
        BrnOptions(defect_kernels=()).validate()
    with pytest.raises(InvalidInputError, match="--defect-kernels: defect kernel 'x' is not"):
        BrnOptions(defect_kernels=("x",)).defect_config()


# --- --img-format --------------------------------------------------------------------------


def test_image_format_selects_by_extension_in_any_case():
    paths = [Path("a.tif"), Path("b.TIFF"), Path("c.png"), Path("d.JPG"), Path("e.jpeg")]
    assert ImageFormat.TIFF.select(paths, "x") == paths[:2]
    assert ImageFormat.PNG_JPG.select(paths, "x") == paths[2:]
    assert ImageFormat.ANY.select(paths, "x") == paths
    with pytest.raises(InvalidInputError, match=r"--img-format png_jpg: no .png/.jpg/.jpeg image in data/train/good "
                                                r"\(it holds .tif\)"):
        ImageFormat.PNG_JPG.select(paths[:1], "data/train/good")


def test_image_format_filters_the_training_images(brn_dataset, tmp_path):
    root = tmp_path / "mixed"
    shutil.copytree(brn_dataset, root)
    good = root / "train" / "good"
    tiffs = sorted(good.glob("*.tiff"))
    write_png(good / "extra.png", np.random.default_rng(0).integers(0, 256, (976, 176, 3), dtype=np.uint8))
    assert len(training_images(root)) == len(tiffs) + 1
    for fmt, expected in ((ImageFormat.TIFF, tiffs), (ImageFormat.PNG_JPG, [good / "extra.png"]),
                          (ImageFormat.ANY, sorted([*tiffs, good / "extra.png"]))):
        dataset = FAMILY.train_dataset(root, "strip", BrnOptions(img_format=fmt), length=4, seed=0)
        assert sorted(dataset.paths) == sorted(expected), fmt
    only_png = FAMILY.train_dataset(root, "strip", BrnOptions(img_format=ImageFormat.PNG_JPG), length=4, seed=0)
    inputs, _ = only_png[0]
    assert inputs.shape == (3, 128, 128)


def test_an_empty_image_format_selection_is_refused(brn_dataset, tmp_path, capsys):
    assert train_module.main(_cli(brn_dataset, tmp_path / "run", "--img_format", "png_jpg")) == 2
    err = capsys.readouterr().err
    assert f"--img-format png_jpg: no .png/.jpg/.jpeg image in {brn_dataset / 'train' / 'good'}" in err


# --- config.yaml, train_args and resume ----------------------------------------------------


def test_options_round_trip_through_config_yaml_and_train_args(tmp_path):
    options = BrnOptions(**CUSTOM)
    config = TrainConfig(out=tmp_path / "run", synthetic=True, family_options=options)
    stored = plain(config.family_options)
    assert stored["defect_kernels"] == ["5x5:1.5", "3x3:1.0"] and stored["gamma_schedule"] == "exponential"
    assert stored["img_format"] == "tiff" and stored["amplitudes"] == [-40.0, 30.0, 45.0]
    # A checkpoint's train_args load with weights_only and rebuild the same options.
    torch.save({"train_args": config.to_dict()}, tmp_path / "x.pth")
    loaded = torch.load(tmp_path / "x.pth", weights_only=True)["train_args"]["family_options"]
    assert BrnOptions(**loaded) == options
    # config.yaml feeds them back as flags.
    path = write_config(config, tmp_path / "config.yaml")
    family, values, source = train_module._family_and_config(["--config", str(path)])
    parser = train_module._parser(family)
    arguments = train_module._config_arguments(parser, family, values, [], source)
    again = train_module._config_from_args(parser.parse_args(arguments), family)
    assert again.family_options == options
    assert train_module._config_from_args(parser.parse_args(arguments + ["--line-negatives", "0.1"]),
                                          family).family_options.line_negatives == 0.1, "a flag overrides"


def test_a_run_with_new_flags_stores_them_and_resumes_with_them(brn_dataset, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train_module.main(_cli(brn_dataset, straight, *CUSTOM_FLAGS)) == 0
    assert train_module.main(_cli(brn_dataset, resumed, *CUSTOM_FLAGS, "--stop-after-epochs", "1")) == 0
    first = load_checkpoint(resumed / "last.pth")
    assert first["train_args"]["family_options"] == plain(BrnOptions(**CUSTOM, base_width=4))
    assert "line_negatives: 0.3" in (resumed / "config.yaml").read_text()

    assert train_module.main(["--config", str(resumed / "config.yaml"), "--resume", "--no-progress",
                              "--no-report"]) == 0
    a, b = load_checkpoint(straight / "last.pth"), load_checkpoint(resumed / "last.pth")
    assert b["train_args"]["family_options"] == a["train_args"]["family_options"]
    assert a["epoch"] == b["epoch"] == 1
    for key, tensor in a["model_state_dict"].items():
        assert torch.equal(tensor, b["model_state_dict"][key]), key
    # The options changed what was trained: the defaults give other weights.
    default = tmp_path / "default"
    assert train_module.main(_cli(brn_dataset, default)) == 0
    c = load_checkpoint(default / "last.pth")
    assert any(not torch.equal(t, c["model_state_dict"][k]) for k, t in a["model_state_dict"].items())


def test_resuming_with_a_changed_recipe_warns_naming_the_option(brn_dataset, tmp_path, caplog):
    out = tmp_path / "run"
    assert train_module.main(_cli(brn_dataset, out, "--stop-after-epochs", "1")) == 0
    with caplog.at_level("WARNING", logger="training.engine"):
        assert train_module.main(_cli(brn_dataset, out, "--resume", "--alpha", "0.5")) == 0
    warnings = [r.getMessage() for r in caplog.records if "changed settings" in r.getMessage()]
    assert warnings and "alpha 0.75 -> 0.5" in warnings[0], caplog.text
