"""The training engine: moving average, clipping, schedules, mixed precision, accumulation, early stopping,
the checkpoint policy, exact resume (also after SIGTERM), reports, config files and torchrun.

A subclass of the brn training part stands in for a family with another recipe.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import training._engine as engine
from runtime.core import InvalidInputError, SdkError
from training import Direction, Optimization, SchedulerInterval
from training._data import StepSampler
from training._distributed import Ranks
from training._stopping import EarlyStopping, Metric, Selection
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.families.brn import BrnTraining
from training.families.brn.options import BrnOptions
from training.train import TrainConfig, main, train

REPO = Path(__file__).resolve().parents[2]


class _Recipe(BrnTraining):
    """brn with another update rule, selection direction, scripted metrics or a loss that diverges."""

    def __init__(self, *, sgd: bool = False, direction: Direction = Direction.MAX, scripted=None, nan_at=None):
        self.sgd = sgd
        self.direction = direction
        self.scripted = list(scripted) if scripted else None
        self.nan_at = nan_at

    @property
    def selection_metric(self):
        return super().selection_metric[0], self.direction

    def make_optimizer_and_scheduler(self, network, options, *, epochs, lr):
        if not self.sgd:
            return super().make_optimizer_and_scheduler(network, options, epochs=epochs, lr=lr)
        optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return Optimization(optimizer, scheduler, interval=SchedulerInterval.STEP)

    def evaluate(self, network, root, split, variant):
        if self.scripted is None:
            return super().evaluate(network, root, split, variant)
        return self.scripted.pop(0)

    def make_loss(self, options):
        loss, calls = super().make_loss(options), []

        def diverging(outputs, targets, progress):
            calls.append(1)
            value = loss(outputs, targets, progress)
            return value * float("nan") if self.nan_at is not None and len(calls) > self.nan_at else value
        return diverging


@pytest.fixture()
def use_recipe(monkeypatch):
    def use(recipe: _Recipe) -> None:
        monkeypatch.setattr(engine, "get_training_family", lambda name: recipe)
    return use


def _config(dataset, out, **changes) -> TrainConfig:
    settings = dict(epochs=3, steps_per_epoch=2, batch_size=2, eval_every=1, lr=0.01, seed=2, progress=False,
                    device="cpu", workers=0, tensorboard=False, save_every=0, family_options=BrnOptions(base_width=4))
    return TrainConfig(out=out, data=dataset, **{**settings, **changes})


def _same_weights(a: Path, b: Path, keys=("model_state_dict",)) -> None:
    first, second = torch.load(a, weights_only=True), torch.load(b, weights_only=True)
    for key in keys:
        assert first[key].keys() == second[key].keys()
        for name, tensor in first[key].items():
            assert torch.equal(tensor, second[key][name]), (key, name)


# -- update rules ----------------------------------------------------------------------------------------


def test_moving_average_clipping_step_schedule_and_bf16(brn_dataset, tmp_path, use_recipe, monkeypatch):
    use_recipe(_Recipe(sgd=True))
    clipped = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, norm: clipped.append(norm) or clip(params, norm))
    result = train(_config(brn_dataset, tmp_path, grad_clip=0.5, ema_decay=0.5, amp="bf16"))

    assert clipped == [0.5] * 6
    last = torch.load(result.last, weights_only=True)
    assert last["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.5 ** 6)
    assert {"network_state_dict", "ema_state_dict"} <= set(last)
    averaged, raw = last["model_state_dict"], last["network_state_dict"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw), "the deployed weights are the average"
    assert "network_state_dict" not in torch.load(result.best, weights_only=True)
    _, network = build_from_checkpoint(load_checkpoint(result.best))  # the average loads as a plain network
    assert network is not None
    assert last["train_args"]["amp"] == "bf16"


def test_accumulated_micro_batches_and_workers_train(brn_dataset, tmp_path):
    accumulated = train(_config(brn_dataset, tmp_path / "a", batch_size=4, accumulate=2, epochs=1))
    assert len(accumulated.losses) == 2 and all(torch.isfinite(torch.tensor(accumulated.losses)))
    straight = train(_config(brn_dataset, tmp_path / "b", epochs=2, eval_every=2))
    with_workers = train(_config(brn_dataset, tmp_path / "c", epochs=2, eval_every=2, workers=1))
    assert with_workers.losses == straight.losses, "worker processes draw exactly the same samples"
    _same_weights(straight.last, with_workers.last)
    channels_last = train(_config(brn_dataset, tmp_path / "d", epochs=2, eval_every=2, channels_last=True))
    # The same first batch through the same initial weights; later steps drift apart by rounding only.
    assert channels_last.losses[0] == pytest.approx(straight.losses[0], rel=1e-5)
    assert channels_last.losses == pytest.approx(straight.losses, rel=0.1)
    _, network = build_from_checkpoint(load_checkpoint(channels_last.best))
    assert all(t.is_contiguous() for t in network.state_dict().values())


def test_a_diverging_loss_stops_the_run_with_a_clear_error(brn_dataset, tmp_path, use_recipe):
    use_recipe(_Recipe(nan_at=3))
    with pytest.raises(SdkError, match=r"loss is no longer finite \(nan\) at epoch 2 step 2"):
        train(_config(brn_dataset, tmp_path))
    assert load_checkpoint(tmp_path / "last.pth")["position"] == {"epoch": 1, "step": 0}


def test_the_sampler_splits_each_step_over_ranks_without_overlap():
    keys = {}
    for rank in range(2):
        sampler = StepSampler(steps=3, batch_size=4, ranks=Ranks(rank, 2, rank))
        sampler.start(epoch=5, first_step=1)
        keys[rank] = list(sampler)
        assert len(sampler) == len(keys[rank]) == 4
    assert keys[0] == [(5, 4), (5, 5), (5, 8), (5, 9)] and keys[1] == [(5, 6), (5, 7), (5, 10), (5, 11)]


# -- selection and early stopping ---------------------------------------------------------------------------


def test_early_stopping_patience_min_delta_and_min_epochs():
    stopping = EarlyStopping(Metric("auc", Direction.MAX), patience=2, min_delta=0.01, min_epochs=5)
    decisions = [stopping.update(epoch, {"auc": value})
                 for epoch, value in enumerate([0.5, 0.6, 0.605, 0.609, 0.61, 0.7, 0.7, 0.7])]
    # 0.605 and 0.609 gain less than min_delta; the run is stale at epoch 3 but min_epochs holds it to epoch 5.
    assert decisions == [False, False, False, False, False, False, False, True]


def test_a_clear_gain_of_the_guard_metric_resets_the_patience():
    stopping = EarlyStopping(Metric("hit", Direction.MAX), patience=2, guard=Metric("mae", Direction.MIN),
                             guard_min_delta=0.1)
    history = [(1.0, 3.0), (1.0, 2.0), (1.0, 1.95), (1.0, 1.5), (1.0, 1.45), (1.0, 1.45)]
    assert [stopping.update(e, {"hit": h, "mae": m}) for e, (h, m) in enumerate(history)] == \
        [False, False, False, False, False, True]


def test_ties_of_the_selection_metric_go_to_the_better_guard():
    selection = Selection(Metric("hit", Direction.MAX), Metric("mae", Direction.MIN))
    assert selection.is_better({"hit": 1.0, "mae": 1.0}, {"hit": 1.0, "mae": 2.0})
    assert not selection.is_better({"hit": 1.0, "mae": 3.0}, {"hit": 1.0, "mae": 2.0})
    assert not selection.is_better({"hit": 0.9, "mae": 0.1}, {"hit": 1.0, "mae": 2.0})


def test_early_stopping_ends_a_run(brn_dataset, tmp_path, use_recipe):
    scripted = [{"pixel_auroc": v, "image_auroc": 0.5} for v in (0.6, 0.7, 0.7, 0.69, 0.9)]
    use_recipe(_Recipe(scripted=scripted))
    result = train(_config(brn_dataset, tmp_path, epochs=5, patience=2))
    assert result.stopped_early and result.epochs_done == 4 and len(result.losses) == 8
    assert result.best_epoch == 1
    last = load_checkpoint(result.last)
    assert last["stopped_early"] and last["early_stopping"]["stale"] == 2
    assert "stopping early after epoch 4" in (tmp_path / "train.log").read_text()


def test_min_direction_selects_the_lowest_value(brn_dataset, tmp_path, use_recipe):
    use_recipe(_Recipe(direction=Direction.MIN))
    result = train(_config(brn_dataset, tmp_path, epochs=4))
    history = torch.load(result.last, weights_only=True)["history"]
    values = [metrics["pixel_auroc"] for _, metrics in history]
    assert len(set(values)) > 1, "the epochs must differ for this test to mean something"
    assert result.best_epoch == history[values.index(min(values))][0]


def test_validation_split_selects_and_test_split_reports(brn_dataset, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(brn_dataset, root)
    shutil.copytree(root / "test", root / "valid")
    for path in sorted((root / "valid" / "good").iterdir())[1:]:
        path.unlink()  # a smaller validation split, so its metrics differ from the test split's
    result = train(_config(root, tmp_path / "run"))

    family, best = build_from_checkpoint(load_checkpoint(result.best))
    assert result.metrics == family.evaluate(best, root, "test", "strip")
    assert torch.load(result.best, weights_only=True)["metrics"] == family.evaluate(best, root, "valid", "strip")


# -- checkpoints and resume -------------------------------------------------------------------------------


def test_epoch_checkpoints_are_kept_by_the_policy_and_resumable(brn_dataset, tmp_path):
    result = train(_config(brn_dataset, tmp_path / "run", epochs=4, save_every=1, keep=2, eval_every=2))
    names = sorted(p.name for p in (tmp_path / "run").glob("*.pth"))
    assert names == ["best.pth", "epoch_003.pth", "epoch_004.pth", "last.pth"]
    assert result.last.read_bytes() == (tmp_path / "run" / "epoch_004.pth").read_bytes()
    assert load_checkpoint(tmp_path / "run" / "epoch_003.pth")["position"] == {"epoch": 3, "step": 0}
    # Resuming from epoch_003.pth into a fresh folder replays epoch 4 exactly.
    again = train(_config(brn_dataset, tmp_path / "again", epochs=4, eval_every=2,
                          resume=tmp_path / "run" / "epoch_003.pth"))
    assert again.losses == result.losses[-2:]
    _same_weights(result.last, again.last)


def test_periodic_saves_record_the_step_within_the_epoch(brn_dataset, tmp_path, monkeypatch):
    saved = []
    save = engine.Checkpoints.save_last
    monkeypatch.setattr(engine.Checkpoints, "save_last",
                        lambda self, payload: saved.append(payload["position"]) or save(self, payload))
    train(_config(brn_dataset, tmp_path, epochs=1, save_minutes=1e-9))
    assert saved == [{"epoch": 0, "step": 1}, {"epoch": 0, "step": 2}, {"epoch": 1, "step": 0}]


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_four_epochs_equal_two_plus_two_resumed(brn_dataset, tmp_path, use_recipe, ema_decay):
    use_recipe(_Recipe(sgd=True))  # a per-step schedule and momentum: any lost state would show
    settings = dict(epochs=4, eval_every=1, ema_decay=ema_decay, grad_clip=1.0, save_every=1)
    straight = train(_config(brn_dataset, tmp_path / "straight", **settings))
    first = train(_config(brn_dataset, tmp_path / "resumed", stop_after_epochs=2, **settings))
    assert first.epochs_done == 2
    second = train(_config(brn_dataset, tmp_path / "resumed", resume=True, **settings))

    assert first.losses + second.losses == straight.losses
    assert (second.best_epoch, second.metrics, second.epochs_done) == (straight.best_epoch, straight.metrics, 4)
    keys = ("model_state_dict",) + (("network_state_dict", "ema_state_dict") if ema_decay else ())
    for name in ("last.pth", "best.pth", "epoch_004.pth"):
        _same_weights(tmp_path / "straight" / name, tmp_path / "resumed" / name, keys=keys if name != "best.pth"
                      else ("model_state_dict",))
    a, b = (torch.load(tmp_path / d / "last.pth", weights_only=True) for d in ("straight", "resumed"))
    assert a["history"] == b["history"] and a["early_stopping"] == b["early_stopping"]
    assert a["optimizer_state_dict"]["state"][0]["momentum_buffer"].equal(b["optimizer_state_dict"]["state"][0]
                                                                          ["momentum_buffer"])


def _cli_args(dataset, out, *extra) -> list[str]:
    return ["--data", str(dataset), "--out", str(out), "--base-width", "4", "--epochs", "3", "--steps-per-epoch",
            "4", "--batch-size", "2", "--seed", "2", "--device", "cpu", "--workers", "0", "--no-progress",
            "--save-every", "0", *extra]


def test_sigterm_writes_last_and_resume_finishes_identically(brn_dataset, tmp_path):
    straight = tmp_path / "straight"
    assert main(_cli_args(brn_dataset, straight, "--no-tensorboard")) == 0
    out = tmp_path / "interrupted"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Saving every step: the first last.pth shows the run is inside its first epoch.
    process = subprocess.Popen([sys.executable, "-m", "training.train", *_cli_args(brn_dataset, out,
                               "--save-minutes", "1e-9")], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "last.pth").exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err
    assert "SIGTERM at epoch" in err and "continue with --resume" in err
    position = load_checkpoint(out / "last.pth")["position"]
    assert (position["epoch"], position["step"]) < (3, 0), "interrupted before the end"

    assert main(_cli_args(brn_dataset, out, "--resume")) == 0
    _same_weights(straight / "last.pth", out / "last.pth")
    _same_weights(straight / "best.pth", out / "best.pth")


# -- reports and config files --------------------------------------------------------------------------------


def test_tensorboard_log_file_and_epoch_lines(brn_dataset, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    train(_config(brn_dataset, tmp_path, epochs=2, tensorboard=True, picture_every=1))
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars = events.Tags()["scalars"]
    assert {"train/loss", "train/lr", "train/grad_norm", "epoch/loss", "test/pixel_auroc",
            "test/image_auroc"} <= set(scalars)
    assert [e.step for e in events.Scalars("train/loss")] == [1, 2, 3, 4]
    images = events.Tags()["images"]
    assert images and all(tag.startswith("pictures/") for tag in images)
    picture = events.Images(images[0])[0]
    assert picture.width == 8 * 176 + 7 * 4 and picture.height > 976 + 16, "the 8-panel figure of a strip"
    log = (tmp_path / "train.log").read_text()
    assert "epoch 1/2  loss " in log and "pixel_auroc" in log and "epoch 2/2" in log
    assert "{" not in log.split("epoch 2/2")[1], "a readable line, not a dict"


def test_config_file_runs_again_and_flags_override_it(brn_dataset, tmp_path, capsys):
    first = tmp_path / "first"
    assert main(_cli_args(brn_dataset, first, "--epochs", "1", "--lr", "0.02", "--no-tensorboard")) == 0
    config = first / "config.yaml"
    assert "lr: 0.02" in config.read_text() and "base_width: 4" in config.read_text()
    second = tmp_path / "second"
    assert main(["--config", str(config), "--out", str(second), "--epochs", "2"]) == 0
    args = load_checkpoint(second / "last.pth")["train_args"]
    assert (args["lr"], args["epochs"], args["family_options"]["base_width"]) == (0.02, 2, 4)
    assert args["out"] == str(second) and not (second / "tensorboard").exists()

    bad = tmp_path / "bad.yaml"
    bad.write_text("epochs: 2\nno_such_setting: 1\n")
    assert main(["--config", str(bad), "--synthetic", "--out", str(tmp_path / "x")]) == 2
    assert "unknown setting 'no_such_setting'" in capsys.readouterr().err
    bad.write_text("epochs: [2\n")
    assert main(["--config", str(bad), "--synthetic", "--out", str(tmp_path / "x")]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_an_existing_run_is_kept_unless_resumed_or_forced(brn_dataset, tmp_path):
    config = _config(brn_dataset, tmp_path, epochs=1, save_every=1)
    train(config)
    with pytest.raises(InvalidInputError, match="already holds a run .*--resume.*--force"):
        train(config)
    (tmp_path / "mine.txt").write_text("not the run's")
    train(dataclasses.replace(config, force=True, save_every=0))
    assert not (tmp_path / "epoch_001.pth").exists() and (tmp_path / "mine.txt").exists()


# -- torchrun --------------------------------------------------------------------------------------------------


def test_torchrun_with_two_gloo_processes(brn_dataset, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "training.train", *_cli_args(brn_dataset, out, "--epochs", "4", "--eval-every", "4",
                                                  "--save-every", "2", "--lr", "0.003")]
    done = subprocess.run(command, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == ["best.pth", "config.yaml", "epoch_002.pth", "epoch_004.pth",
                                                     "last.pth", "report", "tensorboard", "train.log"]
    last = load_checkpoint(out / "last.pth")
    assert last["train_args"]["batch_size"] == 2 and "on cpu x 2" in (out / "train.log").read_text()
    losses = [loss for _, loss in last["epoch_losses"]]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    assert done.stdout.count("trained 4 epoch(s)") == 1, "rank 0 alone reports"
