"""Every layer's family registry holds the same keys: a family is runtime, training and export parts or none."""

from __future__ import annotations

import importlib

import pytest

import runtime
from training import get_training_family, list_training_families


def test_runtime_and_training_registries_agree():
    assert list_training_families() == runtime.list_families()


def test_each_part_is_registered_under_its_own_name():
    for name in runtime.list_families():
        assert runtime.get_family(name).name == name
        assert get_training_family(name).name == name


def test_export_registry_agrees():
    try:
        export = importlib.import_module("export")
    except ImportError as exc:
        pytest.skip(f"export cannot be imported: {exc}")
    if not hasattr(export, "list_export_families"):
        pytest.skip("export.list_export_families() does not exist yet")
    assert export.list_export_families() == runtime.list_families()
