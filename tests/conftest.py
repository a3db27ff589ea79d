"""Shared fixtures.

``family`` is parametrized over the family registry: a test that takes it (or
``family_bundle``) runs for every registered family, so a new family is tested
by registering it. ``tiny_dataset`` / ``tiny_run`` / ``tiny_bundle`` are the brn
family's, for tests of brn's own contract. All are session-scoped so the suite
trains and exports each family once.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

import runtime


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("openvino") is None:
        skip = pytest.mark.skip(reason="openvino is not installed (pip install 'edge-vision-sdk[openvino]')")
        for item in items:
            if "openvino" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(scope="session", params=runtime.list_families())
def family(request) -> str:
    """The name of each registered family in turn."""
    return request.param


@pytest.fixture(scope="session")
def family_bundle(family, tmp_path_factory) -> Path:
    """A tiny trained model of ``family`` exported with every layer it has, in every precision."""
    from training.smoke import build_tiny_bundle

    return build_tiny_bundle(family, tmp_path_factory.mktemp(f"bundle-{family}") / family,
                             precisions=("fp32", "fp16", "int8"))


@pytest.fixture(scope="session")
def family_images(family) -> list:
    """Source images of ``family`` as its users pass them (float32 CHW in the source range)."""
    from training.smoke import sample_images

    return sample_images(family, 3, seed=5)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A small synthetic brn dataset."""
    from training.smoke import make_tiny_dataset

    return make_tiny_dataset("brn", tmp_path_factory.mktemp("data") / "brn")


@pytest.fixture(scope="session")
def tiny_run(tiny_dataset, tmp_path_factory):
    """A brn of base width 4 trained for a few steps (seconds): enough signal for its metrics to mean something."""
    from training.smoke import train_tiny

    return train_tiny("brn", tiny_dataset, tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tiny_run) -> Path:
    return tiny_run.best


@pytest.fixture(scope="session")
def tiny_bundle(tiny_checkpoint, tmp_path_factory):
    """Every brn layer in every precision, verified against PyTorch."""
    from export import BuildOptions, build

    out = tmp_path_factory.mktemp("bundles") / "brn"
    return build(BuildOptions(checkpoint=tiny_checkpoint, out=out, layers=("base", "patch", "full"),
                              parity_images=4, calibration_synthetic=4))
