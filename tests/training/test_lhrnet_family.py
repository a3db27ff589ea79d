"""lhrnet's training part on the engine."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from runtime.families.lhrnet import POINTS, read_split
from training import get_training_family
from training.families.lhrnet.losses import KEYPOINTS
from training.families.lhrnet.targets import decode
from training.train import TrainConfig, train

FAMILY = get_training_family("lhrnet")


@pytest.fixture(scope="module")
def lhrnet_dataset(tmp_path_factory):
    tiny = FAMILY.tiny_config()
    return FAMILY.synthetic_dataset(tmp_path_factory.mktemp("lhrnet") / "data", "256x512", 3, tiny.dataset)


def test_samples_are_letterboxed_inputs_whose_targets_decode_to_the_labels(lhrnet_dataset):
    options = FAMILY.tiny_config().options
    dataset = FAMILY.train_dataset(lhrnet_dataset, "256x512", options, 4, seed=0)
    plain = FAMILY.train_dataset(lhrnet_dataset, "256x512", type(options)(augment=False), 4, seed=0)
    tensor, targets = plain[1]
    assert tensor.shape == (4, 256, 512) and 0 <= tensor.min() and tensor.max() <= 1
    assert set(tensor[3].unique().tolist()) <= {0.0, 1.0}, "the fourth channel is the validity mask"
    # The targets of a perfect network decode back to the label, mapped into the letterbox.
    heat = targets["heatmaps"][None]
    offsets = torch.zeros(1, 2, 2, 64, 128)
    for k in range(2):
        col, row = targets["cells"][k].tolist()
        offsets[0, k, :, row, col] = targets["offsets"][k]
    angle = targets["angle"][None, :, None, None].expand(1, 2, 64, 128)
    decoded = decode(heat, offsets, angle, tensor[None, 3:])
    pre = FAMILY.runtime.input_spec("256x512")
    samples = read_split(lhrnet_dataset, "train")
    rng = np.random.default_rng([0, 0, 1])
    path, label = samples[int(rng.integers(len(samples)))]
    from runtime.core import letterbox

    transform = letterbox(np.zeros((3, label.height, label.width), np.float32), pre.height, pre.width, 255.0)[2]
    np.testing.assert_allclose(decoded.points[0].numpy(), transform.to_input(label.points), atol=1e-3)
    assert decoded.angle.item() == pytest.approx(label.angle, abs=1e-3)
    a, b = dataset[2], dataset[2]
    assert torch.equal(a[0], b[0]), "a sample is a pure function of (seed, epoch, index)"
    fresh = FAMILY.train_dataset(lhrnet_dataset, "256x512", type(options)(fresh_scenes=True), 2, seed=0)
    first, second = fresh[0][0], fresh[1][0]
    assert first.shape == (4, 256, 512) and not torch.equal(first, second)


def test_the_recipe_is_adamw_with_warm_up_and_restarts():
    network = FAMILY.build_network(FAMILY.arch_from_options(FAMILY.tiny_config().options))
    optimization = FAMILY.make_optimizer_and_scheduler(network, FAMILY.default_options(), epochs=160, lr=3e-4)
    assert isinstance(optimization.optimizer, torch.optim.AdamW)
    group = optimization.optimizer.param_groups[0]
    assert (group["weight_decay"], group["betas"], group["eps"]) == (0.05, (0.9, 0.999), 1e-8)
    assert group["lr"] == pytest.approx(1e-5)
    d = FAMILY.defaults
    assert (d.ema_decay, d.grad_clip, d.amp, d.guard_metric, d.keep, d.save_every) == (0.9997, 1.0, "auto", "mae", 5, 1)
    assert FAMILY.selection_metric[0] == "hit@5px" and FAMILY.metric_direction("mae").value == "min"


def test_a_tiny_run_on_the_engine_lowers_the_loss(lhrnet_dataset, tmp_path):
    tiny = FAMILY.tiny_config()
    result = train(TrainConfig(out=tmp_path, family="lhrnet", data=lhrnet_dataset, variant=tiny.variant,
                               epochs=tiny.epochs, steps_per_epoch=tiny.steps_per_epoch, batch_size=tiny.batch_size,
                               progress=False, family_options=tiny.options, device="cpu", workers=0,
                               tensorboard=True, picture_every=tiny.epochs, save_every=0, **tiny.settings))
    assert np.mean(result.losses[-3:]) < np.mean(result.losses[:3])
    assert {"mae", "rmse", "hit@1px", "hit@2px", "hit@5px", "mae_slot", "mae_part", "angle_error"} <= set(result.metrics)
    assert result.best_epoch >= 0 and (tmp_path / "best.pth").is_file()


def test_synthetic_samples_are_labelled_source_images():
    images, labels = FAMILY.synthetic_samples("256x512", 3, seed=0)
    assert images.shape == (3, 3, 300, 750) and images.dtype == np.float32 and images.max() <= 255
    assert all(label.points.shape == (len(POINTS), 2) and (label.width, label.height) == (750, 300)
               for label in labels)
    again, _ = FAMILY.synthetic_samples("256x512", 2, seed=0)
    np.testing.assert_array_equal(again, images[:2])
    assert KEYPOINTS == POINTS
