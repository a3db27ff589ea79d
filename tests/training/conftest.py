"""Fixtures of the training tests, parametrized over every registered family: a tiny dataset and a tiny run."""

from __future__ import annotations

from pathlib import Path

import pytest

from training import list_training_families
from training.smoke import make_tiny_dataset, train_tiny


@pytest.fixture(scope="session", params=list_training_families())
def family_name(request) -> str:
    """Each registered family in turn."""
    return request.param


@pytest.fixture(scope="session")
def family_dataset(family_name, tmp_path_factory) -> Path:
    """The family's tiny synthetic dataset (its ``tiny_config().dataset``)."""
    return make_tiny_dataset(family_name, tmp_path_factory.mktemp(f"{family_name}-data") / "data")


@pytest.fixture(scope="session")
def family_run(family_name, family_dataset, tmp_path_factory):
    """The family's tiny configuration trained for a few steps (seconds)."""
    return train_tiny(family_name, family_dataset, tmp_path_factory.mktemp(f"{family_name}-run"))


@pytest.fixture(scope="session")
def brn_dataset(tmp_path_factory) -> Path:
    """brn's tiny dataset, for the tests of brn's own behaviour."""
    return make_tiny_dataset("brn", tmp_path_factory.mktemp("brn-data") / "data")
