"""Every layer's family registry holds the same keys: a family is runtime, training and export parts or none."""

from __future__ import annotations

import runtime
from export import get_export_family, list_export_families
from training import get_training_family, list_training_families


def test_the_three_registries_agree():
    assert runtime.list_families() == list_training_families() == list_export_families()
    assert runtime.list_families(), "no family registered"


def test_each_part_is_registered_under_its_own_name():
    for name in runtime.list_families():
        assert runtime.get_family(name).name == name
        assert get_training_family(name).name == name
        assert get_export_family(name).name == name


def test_a_registry_discovers_family_modules_by_itself(tmp_path, monkeypatch):
    """A family is added by writing its module: the registry imports it, no list to edit."""
    from runtime.core import Registry

    package = tmp_path / "somefamilies"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "_helpers.py").write_text("raise AssertionError('private modules are not families')\n")
    (package / "toy.py").write_text("from tests_registry_probe import REGISTRY\nREGISTRY.register('toy')(object())\n")
    probe = tmp_path / "tests_registry_probe.py"
    registry = Registry("probe", "somefamilies")
    monkeypatch.syspath_prepend(str(tmp_path))
    probe.write_text("")
    import tests_registry_probe

    monkeypatch.setattr(tests_registry_probe, "REGISTRY", registry, raising=False)
    assert registry.names() == ["toy"]
