"""A short real training run of every family, its checkpoints, resuming, and the training CLI."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import training.train as train_module
from runtime.core import InvalidInputError, ModelLoadError, SdkError
from training import get_training_family
from training.checkpoint import build_from_checkpoint, load_checkpoint, required_keys
from training.train import TrainConfig, main, train


def _fixed_batch(family, root, variant, options, n=16):
    dataset = family.train_dataset(root, variant, options, n, seed=123)
    inputs, targets = zip(*(dataset[i] for i in range(n)))
    return torch.utils.data.default_collate(inputs), torch.utils.data.default_collate(targets)


def test_training_lowers_the_loss_on_a_fixed_batch(family_name, family_run, family_dataset):
    family = get_training_family(family_name)
    checkpoint = load_checkpoint(family_run.best)
    _, trained = build_from_checkpoint(checkpoint)
    torch.manual_seed(checkpoint["seed"])  # train() builds its initial network right after seeding
    initial = family.build_network(checkpoint["arch"]).eval()
    options = family.tiny_config().options
    inputs, targets = _fixed_batch(family, family_dataset, checkpoint["variant"], options)
    loss = family.make_loss(options)
    with torch.no_grad():  # one fixed progress, so no schedule can fake a fall
        before, after = loss(initial(inputs), targets, 0.5).item(), loss(trained(inputs), targets, 0.5).item()
    assert after < 0.85 * before
    tiny = family.tiny_config()
    assert len(family_run.losses) == tiny.epochs * tiny.steps_per_epoch and np.isfinite(family_run.losses).all()


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(family_name, family_run):
    family = get_training_family(family_name)
    tiny = family.tiny_config()
    data = torch.load(family_run.best, weights_only=True)
    assert set(required_keys(family)) <= set(data)
    assert data["family"] == family_name and data["variant"] == family.check_variant(tiny.variant)
    assert data["arch"] == family.arch_from_options(tiny.options)
    assert {k: data[k] for k in family.checkpoint_fields(data["variant"], data["arch"])} == \
        family.checkpoint_fields(data["variant"], data["arch"])
    assert family.selection_metric[0] in data["metrics"]
    assert {"torch", "numpy"} <= set(data["versions"]) and data["train_args"]["seed"] == 0
    assert data["train_args"]["family_options"] == train_module._plain(tiny.options)
    last = torch.load(family_run.last, weights_only=True)
    assert {"optimizer_state_dict", "scheduler_state_dict", "rng_state", "best_metrics", "best_epoch", "position",
            "early_stopping", "history", "epoch_losses"} <= set(last)
    assert last["epoch"] == tiny.epochs - 1 and last["position"] == {"epoch": tiny.epochs, "step": 0}


def test_brn_checkpoint_keys(brn_dataset, tmp_path):
    from training.smoke import train_tiny

    run = train_tiny("brn", brn_dataset, tmp_path)
    data = torch.load(run.best, weights_only=True)
    assert data["image_type"] == "strip" and data["variant"] == "strip"
    assert (data["img_height"], data["img_width"]) == (128, 128)
    assert data["arch"] == {"in_channels": 3, "out_channels": 2, "base_width": 4}
    assert {"pixel_auroc", "image_auroc"} <= set(data["metrics"])
    assert data["train_args"]["family_options"]["base_width"] == 4


def test_rebuilt_network_reproduces_the_saved_weights(family_run):
    checkpoint = load_checkpoint(family_run.best)
    _, network = build_from_checkpoint(checkpoint)
    assert not network.training
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, checkpoint["model_state_dict"][name])


def test_best_checkpoint_is_the_best_by_the_selection_metric(family_name, family_dataset, tmp_path):
    family = get_training_family(family_name)
    tiny = family.tiny_config()
    result = train(TrainConfig(out=tmp_path, family=family_name, data=family_dataset, epochs=3, steps_per_epoch=1,
                               batch_size=2, eval_every=1, progress=False, family_options=tiny.options))
    history = torch.load(result.last, weights_only=True)["history"]
    assert [epoch for epoch, _ in history] == [0, 1, 2]
    best = {}
    for epoch, metrics in history:
        if family.is_better(metrics, best):
            best_epoch, best = epoch, metrics
    assert result.best_epoch == best_epoch
    assert torch.load(result.best, weights_only=True)["metrics"] == best


def _small_config(family_name, dataset, out, **changes) -> TrainConfig:
    family = get_training_family(family_name)
    return TrainConfig(out=out, family=family_name, data=dataset, epochs=3, steps_per_epoch=2, batch_size=2,
                       eval_every=2, seed=1, progress=False, family_options=family.tiny_config().options, **changes)


def test_resume_equals_an_uninterrupted_run(family_name, family_dataset, tmp_path):
    straight = train(_small_config(family_name, family_dataset, tmp_path / "straight"))
    first = train(_small_config(family_name, family_dataset, tmp_path / "resumed", stop_after_epochs=2))
    assert torch.load(tmp_path / "resumed" / "last.pth", weights_only=True)["epoch"] == 1
    resumed = train(_small_config(family_name, family_dataset, tmp_path / "resumed", resume=True))

    assert first.losses + resumed.losses == straight.losses, "the epochs after resuming run identically"
    assert (resumed.best_epoch, resumed.metrics) == (straight.best_epoch, straight.metrics)
    for name in ("last.pth", "best.pth"):
        a = torch.load(tmp_path / "straight" / name, weights_only=True)
        b = torch.load(tmp_path / "resumed" / name, weights_only=True)
        assert a["epoch"] == b["epoch"] and a["metrics"] == b["metrics"]
        for key, tensor in a["model_state_dict"].items():
            assert torch.equal(tensor, b["model_state_dict"][key]), (name, key)


def test_resume_refuses_another_architecture(brn_dataset, tmp_path):
    from training.families.brn.options import BrnOptions

    config = TrainConfig(out=tmp_path, data=brn_dataset, epochs=1, steps_per_epoch=1, batch_size=2, progress=False,
                         family_options=BrnOptions(base_width=4))
    train(config)
    with pytest.raises(InvalidInputError, match="cannot resume from .*base_width': 4.*base_width': 8"):
        train(dataclasses.replace(config, epochs=2, resume=True, family_options=BrnOptions(base_width=8)))
    with pytest.raises(InvalidInputError, match="best.pth: it holds no training state"):
        train(dataclasses.replace(config, out=tmp_path / "other", resume=tmp_path / "best.pth"))
    state = torch.load(tmp_path / "last.pth", weights_only=True)
    torch.save({**state, "family": "keypoints"}, tmp_path / "foreign.pth")
    with pytest.raises(ModelLoadError, match="unknown model family 'keypoints'"):
        train(dataclasses.replace(config, out=tmp_path / "other", resume=tmp_path / "foreign.pth"))
    assert not (tmp_path / "other").exists()


def _brn_options(**changes):
    from training.families.brn.options import BrnOptions

    return BrnOptions(**changes)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"data": None}, "exactly one of --data DIR or --synthetic"),
        ({"epochs": 0}, "--epochs must be an integer >= 1, got 0"),
        ({"batch_size": 0}, "--batch-size must be an integer >= 1, got 0"),
        ({"steps_per_epoch": 0}, "--steps-per-epoch must be an integer >= 1, got 0"),
        ({"lr": -1.0}, "--lr must be positive, got -1.0"),
        ({"variant": "hexagon"}, r"unknown variant 'hexagon' for family 'brn'; expected one of \['strip'"),
        ({"family": "nope"}, r"unknown model family 'nope'; known families: \['brn'"),
        ({"family_options": {"base_width": 4}}, "options of family 'brn' must be a BrnOptions, got dict"),
        ({"family_options": _brn_options(num_defects_range=(1, 3))}, "2 <= MIN <= MAX"),
        ({"family_options": _brn_options(base_width=0)}, "--base-width must be at least 1, got 0"),
        ({"family_options": _brn_options(alpha=2.0)}, "--alpha must be in 0..1, got 2.0"),
        ({"family_options": _brn_options(lr_milestones=(0.5, 1.5))}, r"--lr-milestones .* got \[0.5, 1.5\]"),
        ({"device": "tpu"}, "--device must be auto, cpu, cuda or cuda:N, got 'tpu'"),
        ({"amp": "fp8"}, r"--amp must be one of \['auto', 'off', 'bf16', 'fp16'\], got 'fp8'"),
        ({"device": "cpu", "amp": "fp16"}, "--amp fp16 needs a CUDA device"),
        ({"batch_size": 4, "accumulate": 3}, "--batch-size 4 must split evenly over 1 process.* multiple of 3"),
        ({"ema_decay": 1.0}, r"--ema-decay must be in \[0, 1\)"),
        ({"patience": -1}, "--patience must be an integer >= 0, got -1"),
        ({"guard_metric": "mae"}, r"family 'brn' reports no metric 'mae'; expected one of \['image_auroc'"),
        ({"save_minutes": float("nan")}, "--save-minutes must be a number >= 0, got nan"),
    ],
)
def test_bad_settings_are_refused(brn_dataset, tmp_path, changes, match):
    config = dataclasses.replace(TrainConfig(out=tmp_path / "run", data=brn_dataset, progress=False), **changes)
    with pytest.raises(SdkError, match=match):
        train(config)
    assert not (tmp_path / "run").exists(), "settings are checked before anything is written"


def test_cli_accepts_every_flag_spelling(tmp_path):
    family = get_training_family("brn")
    args = train_module._parser(family).parse_args([
        "--family", "brn", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--image_type", "square",
        "--base-width", "8", "--epochs", "5", "--steps-per-epoch", "2", "--batch-size", "4", "--lr", "0.01",
        "--alpha", "0.6", "--gamma-start", "0.5", "--gamma-end", "2.5", "--lr-milestones", "0.5", "0.7", "0.9",
        "--lr-factor", "0.1", "--num_defects_range", "4", "10", "--cache_size", "7", "--seed", "3",
        "--eval-every", "2", "--threads", "1", "--resume", "--no-progress", "--device", "cpu", "--amp", "bf16",
        "--channels-last", "--workers", "3", "--no-pin-memory", "--prefetch", "4", "--accumulate", "2",
        "--grad-clip", "1.5", "--ema-decay", "0.99", "--patience", "4", "--min-delta", "0.01", "--min-epochs", "6",
        "--guard-metric", "image_auroc", "--guard-min-delta", "0.05", "--save-every", "3", "--keep", "2",
        "--save-minutes", "5", "--stop-after-epochs", "2", "--force", "--no-tensorboard", "--picture-every", "7"])
    config = train_module._config_from_args(args, family)
    assert (config.variant, config.epochs, config.steps_per_epoch, config.batch_size, config.lr, config.seed,
            config.eval_every, config.threads, config.resume, config.progress) == \
        ("square", 5, 2, 4, 0.01, 3, 2, 1, True, False)
    assert (config.device, config.amp, config.channels_last, config.workers, config.pin_memory, config.prefetch,
            config.accumulate, config.grad_clip, config.ema_decay) == ("cpu", "bf16", True, 3, False, 4, 2, 1.5, 0.99)
    assert (config.patience, config.min_delta, config.min_epochs, config.guard_metric, config.guard_min_delta,
            config.save_every, config.keep, config.save_minutes, config.stop_after_epochs, config.force,
            config.tensorboard, config.picture_every) == (4, 0.01, 6, "image_auroc", 0.05, 3, 2, 5.0, 2, True,
                                                          False, 7)
    assert train_module._parser(family).parse_args(["--resume", "x.pth"]).resume == Path("x.pth")
    assert config.family_options == _brn_options(base_width=8, alpha=0.6, gamma_start=0.5, gamma_end=2.5,
                                                 lr_milestones=(0.5, 0.7, 0.9), lr_factor=0.1,
                                                 num_defects_range=(4, 10), cache_size=7)
    defaults = train_module._parser(family).parse_args(["--synthetic", "--out", str(tmp_path)])
    assert train_module._config_from_args(defaults, family).family_options == family.default_options()
    assert (defaults.epochs, defaults.batch_size, defaults.lr) == (30, 16, 1e-3)
    for spelling in ("--image-type", "--variant"):
        assert train_module._parser(family).parse_args(
            ["--synthetic", "--out", str(tmp_path), spelling, "mvtec"]).variant == "mvtec"


def test_cli_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_cli_reports_bad_options_and_an_unknown_family(tmp_path, capsys):
    assert main(["--synthetic", "--out", str(tmp_path / "o"), "--num-defects-range", "1", "3"]) == 2
    assert "--num-defects-range must be 2 <= MIN <= MAX, got 1 3" in capsys.readouterr().err
    assert main(["--family", "nope", "--synthetic", "--out", str(tmp_path / "o")]) == 2
    assert "unknown model family 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_cli_trains_and_prints_the_next_command(brn_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["--family", "brn", "--data", str(brn_dataset), "--out", str(out), "--base-width", "4",
                 "--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "pixel_auroc" in printed and f"python -m export.build --checkpoint {out / 'best.pth'}" in printed
    assert load_checkpoint(out / "best.pth")["train_args"]["family_options"]["base_width"] == 4


def test_unknown_family_in_a_checkpoint_is_refused(tmp_path):
    torch.save({"family": "nope", "model_state_dict": {}, "arch": {}, "epoch": 0, "seed": 0}, tmp_path / "x.pth")
    with pytest.raises(ModelLoadError, match="unknown model family 'nope'"):
        load_checkpoint(tmp_path / "x.pth")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_cuda_without_a_gpu_is_refused(brn_dataset, tmp_path):
    with pytest.raises(InvalidInputError, match="--device cuda:1: no CUDA device is available"):
        train(TrainConfig(out=tmp_path / "run", data=brn_dataset, device="cuda:1"))
    assert not (tmp_path / "run").exists()


def test_a_batch_smaller_than_the_processes_is_refused(brn_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(InvalidInputError, match="--batch-size 2 is smaller than the 4 processes"):
        train(TrainConfig(out=tmp_path / "run", data=brn_dataset, batch_size=2, device="cpu"))
    assert not (tmp_path / "run").exists()


def test_an_output_folder_that_cannot_be_written_is_refused(brn_dataset, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidInputError, match="--out .*file/run: .*file is not a folder"):
        train(TrainConfig(out=tmp_path / "file" / "run", data=brn_dataset))
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(InvalidInputError, match="is not writable"):
            train(TrainConfig(out=locked / "run", data=brn_dataset))


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs /proc, where no folder can be created")
def test_an_output_folder_that_cannot_be_created_is_a_usage_error(capsys):
    assert main(["--synthetic", "--out", "/proc/no-such-folder/run", "--epochs", "1", "--device", "cpu"]) == 2
    assert "--out /proc/no-such-folder/run: cannot create the folder" in capsys.readouterr().err
