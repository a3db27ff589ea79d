"""The generic pipeline's hooks that brn does not use but other recipes do (moving average, clipping,
per-step schedules, autocast, early stopping, a min-direction selection metric, a validation split).

A subclass of the brn training part stands in for such a family.
"""

from __future__ import annotations

import shutil

import pytest
import torch

import training.train as train_module
from training import Direction, Optimization, SchedulerInterval
from training.checkpoint import build_from_checkpoint, load_checkpoint
from training.families.brn import BrnTraining
from training.train import TrainConfig, train


class _Recipe(BrnTraining):
    """brn with another update rule, selection direction or stopping rule."""

    def __init__(self, *, ema: bool = False, stop_after: int | None = None, direction: Direction = Direction.MAX):
        self.ema = ema
        self.stop_after = stop_after
        self.direction = direction

    @property
    def selection_metric(self):
        return super().selection_metric[0], self.direction

    def make_optimizer_and_scheduler(self, network, options, *, epochs, lr):
        if not self.ema:
            return super().make_optimizer_and_scheduler(network, options, epochs=epochs, lr=lr)
        optimizer = torch.optim.SGD(network.parameters(), lr=lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return Optimization(optimizer, scheduler, interval=SchedulerInterval.STEP, grad_clip_norm=0.5,
                            ema_decay=0.5, autocast_dtype=torch.bfloat16)

    def should_stop(self, history, options):
        return self.stop_after is not None and len(history) >= self.stop_after


@pytest.fixture()
def use_recipe(monkeypatch):
    def use(recipe: _Recipe) -> None:
        monkeypatch.setattr(train_module, "get_training_family", lambda name: recipe)
    return use


def _config(dataset, out, **changes) -> TrainConfig:
    from training.families.brn.options import BrnOptions

    settings = dict(epochs=3, steps_per_epoch=2, batch_size=2, eval_every=1, lr=0.01, seed=2, progress=False,
                    family_options=BrnOptions(base_width=4))
    return TrainConfig(out=out, data=dataset, **{**settings, **changes})


def test_moving_average_clipping_step_schedule_and_autocast(brn_dataset, tmp_path, use_recipe, monkeypatch):
    use_recipe(_Recipe(ema=True))
    clipped = []
    clip = torch.nn.utils.clip_grad_norm_
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_",
                        lambda params, norm: clipped.append(norm) or clip(params, norm))
    result = train(_config(brn_dataset, tmp_path))

    assert clipped == [0.5] * 6
    last = torch.load(result.last, weights_only=True)
    assert last["optimizer_state_dict"]["param_groups"][0]["lr"] == pytest.approx(0.01 * 0.5 ** 6)
    assert {"network_state_dict", "ema_state_dict"} <= set(last)
    averaged, raw = last["model_state_dict"], last["network_state_dict"]
    assert averaged.keys() == raw.keys()
    assert any(not torch.equal(averaged[k], raw[k]) for k in raw), "the deployed weights are the average"
    best = torch.load(result.best, weights_only=True)
    assert "network_state_dict" not in best
    _, network = build_from_checkpoint(load_checkpoint(result.best))  # the average loads as a plain network
    assert network is not None


def test_resume_restores_the_moving_average(brn_dataset, tmp_path, use_recipe, monkeypatch):
    use_recipe(_Recipe(ema=True))
    straight = train(_config(brn_dataset, tmp_path / "straight", eval_every=2))
    one_epoch = train_module._train_one_epoch

    def interrupted(run, epoch, losses):
        if epoch == 2:
            raise KeyboardInterrupt
        one_epoch(run, epoch, losses)

    monkeypatch.setattr(train_module, "_train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_config(brn_dataset, tmp_path / "resumed", eval_every=2))
    monkeypatch.setattr(train_module, "_train_one_epoch", one_epoch)
    resumed = train(_config(brn_dataset, tmp_path / "resumed", eval_every=2, resume=True))

    assert resumed.losses == straight.losses[-2:]
    a = torch.load(straight.last, weights_only=True)
    b = torch.load(resumed.last, weights_only=True)
    for key in ("model_state_dict", "network_state_dict"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), (key, name)


def test_early_stopping_ends_the_run(brn_dataset, tmp_path, use_recipe):
    use_recipe(_Recipe(stop_after=1))
    result = train(_config(brn_dataset, tmp_path))
    assert len(result.losses) == 2 and result.best_epoch == 0
    assert torch.load(result.last, weights_only=True)["epoch"] == 0


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
