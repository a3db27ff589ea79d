"""Shared fixtures: a tiny dataset, a briefly trained light checkpoint and its exported bundle.

They are session-scoped so the whole suite trains and exports once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("openvino") is None:
        skip = pytest.mark.skip(reason="openvino is not installed (pip install 'edge-vision-sdk[openvino]')")
        for item in items:
            if "openvino" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    from training.make_dataset import make_dataset

    return make_dataset(tmp_path_factory.mktemp("data") / "strips", seed=3, n_train=8, n_test_good=2,
                        n_test_defect=3)


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """A base-width-4 brn trained for a few steps (seconds): enough signal for AUROC to mean something."""
    from training.train import TrainConfig, train

    out = tmp_path_factory.mktemp("run")
    return train(TrainConfig(out=out, data=tiny_dataset, base_width=4, epochs=3, steps_per_epoch=6, batch_size=8,
                             eval_every=3, seed=0, progress=False))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run.best


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint, tmp_path_factory):
    """Every layer in every precision, verified against PyTorch."""
    from export import BuildOptions, build

    out = tmp_path_factory.mktemp("bundles") / "brn"
    return build(BuildOptions(checkpoint=tiny_checkpoint, out=out, layers=("base", "patch", "full"),
                              parity_images=4, calibration_synthetic=4))
