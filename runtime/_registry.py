"""Registries of model families, one per layer of the SDK, all keyed by the family's name.

A family is one key (``"brn"``) with one small module per layer that needs it,
each registered under that key: the torch-free runtime part here
(``runtime/families/<name>.py``), the training part (``training/families/``)
and the export part (``export/families/``). The name stored in a checkpoint or
a manifest is the key everywhere; ``tests/test_registries.py`` fails when the
registries disagree on the keys.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from runtime._errors import ModelLoadError

T = TypeVar("T")


class Registry(Generic[T]):
    """Family name -> that family's part for one layer; the built-in parts register on first use.

    Every public module (or sub-package) of ``package`` is imported on first
    use, and registers its family when imported: adding a family to a layer is
    adding its module, nothing else.

    Args:
        layer: what the parts are ("runtime", "training", "export"), for messages.
        package: the package that holds one module per family.
    """

    def __init__(self, layer: str, package: str) -> None:
        self.layer = layer
        self.package = package
        self._items: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator (or call) adding a family's part under ``name``; a name can be registered once."""
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.layer} family {name!r} is already registered")
            self._items[name] = item
            return item
        return add

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.name.startswith("_"):
                importlib.import_module(f"{self.package}.{module.name}")

    def get(self, name: str) -> T:
        """The part registered under ``name``.

        Raises:
            ModelLoadError: for a name no family was registered under.
        """
        self._load()
        if not isinstance(name, str) or name not in self._items:
            raise ModelLoadError(f"unknown model family {name!r}; known families: {self.names()}")
        return self._items[name]

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)


FAMILIES: Registry = Registry("runtime", "runtime.families")


def get_family(name: str):
    """The runtime part of a family (a :class:`runtime.RuntimeFamily`), by the name a manifest carries.

    Raises:
        ModelLoadError: for a name no family was registered under.

    Example:
        >>> runtime.get_family("brn").description
        'UNet that segments defects ...'
    """
    return FAMILIES.get(name)


def list_families() -> list[str]:
    """Names of every registered family."""
    return FAMILIES.names()
