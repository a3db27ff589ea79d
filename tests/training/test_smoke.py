"""``training.smoke``: the tiny round trips fixtures are built on, for every family."""

from __future__ import annotations

import importlib
import json

import pytest

from training import get_training_family
from training.checkpoint import load_checkpoint
from training.smoke import DATASET_SEED, build_tiny_bundle, make_tiny_dataset


def _files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_dataset_is_deterministic(family_name, family_dataset, tmp_path):
    again = make_tiny_dataset(family_name, tmp_path / "again", seed=DATASET_SEED)
    assert _files(again) == _files(family_dataset)


def test_tiny_run_trains_the_tiny_config(family_name, family_run):
    tiny = get_training_family(family_name).tiny_config()
    checkpoint = load_checkpoint(family_run.best)
    assert checkpoint["train_args"]["epochs"] == tiny.epochs
    assert checkpoint["train_args"]["steps_per_epoch"] == tiny.steps_per_epoch
    assert family_run.last.is_file() and family_run.metrics


def _export_or_skip():
    try:
        return importlib.import_module("export")
    except ImportError as exc:  # the export package is being switched to the family registries
        pytest.skip(f"export cannot be imported: {exc}")


def test_build_tiny_bundle_round_trip(family_name, tmp_path):
    _export_or_skip()
    bundle = build_tiny_bundle(family_name, tmp_path / "bundle")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["family"] == family_name
    assert (bundle / "model.fp32.onnx").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"], "the dataset and run are removed"
