"""A short real training run, checkpoints and the training CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime import ModelLoadError, SdkError, get_family
from training.checkpoint import REQUIRED_KEYS, build_from_checkpoint, load_checkpoint
from training.data import DefectPatchDataset
from training.defects import DefectConfig
from training.losses import FocalLoss
from training.train import TrainConfig, main, train


def _fixed_batch(dataset_root, n=16):
    from runtime._dataset import training_images

    ds = DefectPatchDataset(training_images(dataset_root), get_family("brn").image_type("strip"), length=n,
                            seed=123, defects=DefectConfig(defect_rate=1.0))
    xs, masks = zip(*(ds[i] for i in range(n)))
    return torch.stack(xs), torch.stack(masks)


def test_training_lowers_the_loss_on_a_fixed_batch(tiny_run, tiny_dataset):
    checkpoint = load_checkpoint(tiny_run.best)
    _, trained = build_from_checkpoint(checkpoint)
    torch.manual_seed(checkpoint["seed"])  # train() builds its initial network right after seeding
    initial = get_family("brn").build_network(checkpoint["arch"]).eval()
    x, mask = _fixed_batch(tiny_dataset)
    loss = FocalLoss()  # gamma fixed at 2, so the schedule cannot fake a fall
    with torch.no_grad():
        before, after = loss(initial(x), mask).item(), loss(trained(x), mask).item()
    assert after < 0.85 * before
    assert len(tiny_run.losses) == 18 and np.isfinite(tiny_run.losses).all()


def test_checkpoint_is_a_plain_dict_loadable_with_weights_only(tiny_run):
    data = torch.load(tiny_run.best, weights_only=True)
    assert set(REQUIRED_KEYS) <= set(data)
    assert data["family"] == "brn" and data["image_type"] == "strip"
    assert (data["img_height"], data["img_width"]) == (128, 128)
    assert data["arch"]["base_width"] == 4
    assert {"pixel_auroc", "image_auroc"} <= set(data["metrics"])
    assert {"torch", "numpy"} <= set(data["versions"]) and data["train_args"]["seed"] == 0
    last = torch.load(tiny_run.last, weights_only=True)
    assert {"optimizer_state_dict", "scheduler_state_dict", "torch_rng_state"} <= set(last)


def test_rebuilt_network_reproduces_the_saved_weights(tiny_run):
    checkpoint = load_checkpoint(tiny_run.best)
    _, network = build_from_checkpoint(checkpoint)
    for name, tensor in network.state_dict().items():
        assert torch.equal(tensor, checkpoint["model_state_dict"][name])


def test_resume_continues_from_last_epoch(tiny_dataset, tmp_path):
    config = dict(out=tmp_path, data=tiny_dataset, base_width=2, steps_per_epoch=1, batch_size=2, eval_every=10,
                  progress=False)
    train(TrainConfig(epochs=1, **config))
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 0
    result = train(TrainConfig(epochs=2, resume=True, **config))
    assert torch.load(tmp_path / "last.pth", weights_only=True)["epoch"] == 1
    assert len(result.losses) == 1, "only the second epoch runs after resuming"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"data": None}, "exactly one of --data DIR or --synthetic"),
        ({"num_defects_range": (1, 3)}, "2 <= MIN <= MAX"),
        ({"epochs": 0}, "--epochs must be at least 1"),
    ],
)
def test_bad_settings_are_refused(tiny_dataset, tmp_path, changes, match):
    config = TrainConfig(out=tmp_path, data=tiny_dataset, progress=False)
    for key, value in changes.items():
        setattr(config, key, value)
    with pytest.raises(SdkError, match=match):
        train(config)


def test_cli_reports_a_missing_dataset(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err


def test_load_checkpoint_names_missing_keys(tmp_path):
    torch.save({"family": "brn"}, tmp_path / "x.pth")
    with pytest.raises(ModelLoadError, match="lacks keys"):
        load_checkpoint(tmp_path / "x.pth")
