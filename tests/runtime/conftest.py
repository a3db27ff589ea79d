"""Fixtures of the runtime tests: integer-valued strips (lossless as uint8), bundle copies to tamper with, and
every family's labelled tiny dataset."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

H, W = 976, 176


def make_strip(seed: int, defect: bool = True) -> np.ndarray:
    """A (3, H, W) float32 strip with integer values in 0..255: a stripe texture, noise and a Target-only spot."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    base = 110 + 40 * np.sin(x / 7.0) + 20 * np.cos(y / 13.0)
    image = np.stack([base + rng.normal(0, 4, (H, W)) for _ in range(3)])
    if defect:
        cy, cx = rng.integers(50, H - 50), rng.integers(20, W - 20)
        image[0, cy - 2:cy + 3, cx - 2:cx + 3] += 80
    return np.clip(np.round(image), 0, 255).astype(np.float32)


@pytest.fixture(scope="session")
def strips() -> np.ndarray:
    """(4, 3, H, W) float32 integer-valued strips, two with a defect."""
    return np.stack([make_strip(i, defect=i % 2 == 0) for i in range(4)])


@pytest.fixture(scope="session")
def bundle(tiny_bundle) -> Path:
    return tiny_bundle.bundle


def _copy_bundle(bundle: Path, copy: Path) -> Path:
    copy.mkdir()
    for item in bundle.iterdir():
        if item.name.startswith("model.") or item.suffix in (".json", ".md"):
            shutil.copy2(item, copy / item.name)
    return copy


@pytest.fixture()
def bundle_copy(bundle, tmp_path) -> Path:
    """A private copy of the tiny bundle (full-image graphs only) that a test may modify."""
    return _copy_bundle(bundle, tmp_path / "bundle")


@pytest.fixture()
def family_bundle_copy(family_bundle, tmp_path) -> Path:
    """A private copy of ``family``'s tiny bundle (full-image graphs only) that a test may modify."""
    return _copy_bundle(family_bundle, tmp_path / "bundle")


@pytest.fixture(scope="session")
def family_dataset(family, tmp_path_factory) -> Path:
    """A small labelled dataset of ``family`` in its own layout (the one its tiny bundle was trained on)."""
    from training.smoke import make_tiny_dataset

    return make_tiny_dataset(family, tmp_path_factory.mktemp(f"data-{family}") / family)
