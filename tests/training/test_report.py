"""``python -m training.report``: a run's report (curves, best metrics) and the families' own sections."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

import training._engine as engine
import training.report
from runtime.families.lhrnet import read_split
from training import ReportSection, TrainingFamily, get_training_family
from training.checkpoint import load_checkpoint
from training.families.lhrnet.options import LhrnetDatasetOptions
from training.report import main, write_report
from training.train import TrainConfig, train
from training.train import main as train_main

pytest.importorskip("matplotlib", reason="reports need the train extra's matplotlib")

LHRNET = get_training_family("lhrnet")


def _train_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["--family", "brn", "--data", str(dataset), "--out", str(out), "--base-width", "4", "--epochs", "2",
            "--steps-per-epoch", "2", "--batch-size", "4", "--device", "cpu", "--workers", "0", "--no-progress",
            "--save-every", "0", "--picture-every", "0", "--eval-every", "2", *extra]


@pytest.fixture(scope="module")
def brn_run(brn_dataset, tmp_path_factory) -> Path:
    """A tiny brn run through the training CLI, which writes the report at the end (TensorBoard on)."""
    out = tmp_path_factory.mktemp("brn-report") / "run"
    assert train_main(_train_args(brn_dataset, out)) == 0
    return out


def _figures(report: Path) -> list[Path]:
    """The images report.md embeds, each checked to be a PNG that exists."""
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report.read_text(encoding="utf-8"))
    paths = [report.parent / link for link in links]
    for path in paths:
        assert path.is_file(), f"{path} is linked but missing"
        with Image.open(path) as image:
            assert image.format == "PNG"
            image.verify()
    return paths


def test_training_writes_a_report_with_the_best_metrics_and_curves(brn_run, capsys):
    report = brn_run / "report" / "report.md"
    text = report.read_text(encoding="utf-8")
    last = load_checkpoint(brn_run / "last.pth")
    assert f"Epoch **{last['best_epoch'] + 1}**, selected by `pixel_auroc`" in text
    for name, value in last["best_metrics"].items():
        assert re.search(rf"\| {name} \| {value:.4f} \|", text), f"{name} {value:.4f} in the best-epoch table"
    assert "| brn.base_width | 4 |" in text and "| epochs | 2 |" in text
    names = {p.name for p in _figures(report)}
    assert {"loss.png", "metrics.png", "lr.png", "scores.png", "worst_good_1.png", "worst_defect_1.png"} <= names
    assert "Learning rate per step (TensorBoard)" in text
    assert "## Detection" in text and "| image AUROC |" in text and "| pixel AUROC |" in text
    assert "## Worst cases" in text and "split `test`" in text
    with Image.open(brn_run / "report" / "worst_defect_1.png") as figure:
        width, height = figure.size
        assert width == 8 * 176 + 7 * 4 and height > 976 + 16, "the 8-panel figure of a strip, its legend below"


def test_report_cli_writes_elsewhere_and_reads_the_rate_from_the_log(brn_run, brn_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(brn_run, run, ignore=shutil.ignore_patterns("tensorboard", "report"))
    assert main([str(run), "--out", str(tmp_path / "elsewhere"), "--data", str(brn_dataset), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    report = tmp_path / "elsewhere" / "report.md"
    assert f"report: {report}" in printed and "python -m export.build --checkpoint" in printed
    text = report.read_text(encoding="utf-8")
    assert "Learning rate per epoch (train.log)" in text and "No TensorBoard event files" in text
    assert "lr.png" in {p.name for p in _figures(report)}
    assert not (run / "report").exists()


def test_report_cli_refuses_a_folder_without_a_run(tmp_path, capsys):
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "holds no training run" in err and "last.pth" in err
    assert main([str(tmp_path / "missing")]) == 2
    assert not (tmp_path / "report").exists()


def test_a_failed_report_does_not_fail_the_training(brn_run, brn_dataset, tmp_path, monkeypatch, caplog):
    run = tmp_path / "run"
    shutil.copytree(brn_run, run, ignore=shutil.ignore_patterns("tensorboard", "report"))
    # The run has done its epochs: --resume only sets up, reports and writes the report.
    assert train_main(_train_args(brn_dataset, run, "--resume", "--no-tensorboard", "--no-report")) == 0
    assert not (run / "report").exists()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(training.report, "write_report", broken)
    with caplog.at_level(logging.WARNING, logger="training"):
        assert train_main(_train_args(brn_dataset, run, "--resume", "--no-tensorboard")) == 0
    assert "no report written" in caplog.text and "disk full" in caplog.text


@pytest.fixture(scope="module")
def lhrnet_run(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny lhrnet run on the engine without TensorBoard."""
    tmp = tmp_path_factory.mktemp("lhrnet-report")
    tiny = LHRNET.tiny_config()
    data = LHRNET.synthetic_dataset(tmp / "data", "256x512", 3, LhrnetDatasetOptions(n_images=6, heights=(120, 160)))
    train(TrainConfig(out=tmp / "run", family="lhrnet", data=data, variant=tiny.variant, epochs=2,
                      steps_per_epoch=1, batch_size=2, eval_every=2, progress=False, family_options=tiny.options,
                      device="cpu", workers=0, tensorboard=False, picture_every=0, save_every=0, **tiny.settings))
    return tmp / "run", data


def test_lhrnet_sections_hold_errors_by_kind_and_histograms(lhrnet_run):
    run, data = lhrnet_run
    # The training split: more scenes than the tiny validation split's one.
    report = write_report(run, family=LHRNET, split="train", device="cpu")
    text = report.read_text(encoding="utf-8")
    names = {p.name for p in _figures(report)}
    assert {"loss.png", "metrics.png", "lr.png", "keypoint_errors.png", "angle_errors.png", "worst_1.png"} <= names
    assert "Learning rate per epoch (train.log)" in text and "selected by `hit@5px`" in text
    for title in ("Keypoint errors", "Errors by scene kind", "Angle error", "Worst cases"):
        assert f"## {title}" in text
    assert "| scene kind | scenes | 0-3 px | 3-5 px | 5-10 px | >10 px |" in text
    assert "split `train`" in text
    labels = [label for _, label in read_split(data, "train")]
    row = re.search(r"^\| all \| (\d+) \|(.*)\|$", text, re.MULTILINE)
    assert row and int(row.group(1)) == len(labels)
    counts = [int(c) for c in re.findall(r"(\d+) \(\d+ %\)", row.group(2))]
    assert len(counts) == 4 and sum(counts) == len(labels)
    for kind in {kind for label in labels for kind in label.kinds}:
        assert re.search(rf"^\| {kind} \| \d+ \|", text, re.MULTILINE), f"a row for scene kind {kind}"
    for keypoint in ("slot", "part"):
        assert re.search(rf"^\| {keypoint} \| [\d.]+ \|", text, re.MULTILINE)


def test_every_family_writes_sections_with_their_pictures(family_name, family_dataset, tmp_path):
    family = get_training_family(family_name)
    tiny = family.tiny_config()
    network = family.build_network(family.arch_from_options(tiny.options)).eval()  # untrained will do
    split = family.evaluation_splits(family_dataset)[0]
    sections = family.report_sections(network, family_dataset, split, family.check_variant(tiny.variant), tmp_path)
    assert all(isinstance(s, ReportSection) and s.title and s.markdown for s in sections)
    for image in (image for s in sections for image in s.images):
        assert image.parent == tmp_path
        with Image.open(image) as picture:
            assert picture.format == "PNG"


def test_the_default_family_adds_no_sections():
    assert TrainingFamily.report_sections(get_training_family("brn"), None, Path(), "test", "strip", Path()) == []
