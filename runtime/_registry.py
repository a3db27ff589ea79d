"""The model-family registry shared by training, export and runtime.

A family is registered once, by name, with a :class:`FamilySpec`: the torch-free
facts every package needs (image types, channels, scaling, how the network is
built). The name stored in a checkpoint or a manifest is the key everywhere.
Adding a family means adding one module under ``runtime/families/`` (plus its
network under ``training/networks/``) and importing it in that package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable

from runtime._errors import ModelLoadError
from runtime._tiling import TilingPlan


@dataclass(frozen=True)
class ImageType:
    """A production image geometry and the patch the network sees."""

    name: str
    height: int
    width: int
    patch_height: int
    patch_width: int
    min_rows: int = 1
    min_cols: int = 1

    def tiling(self) -> TilingPlan:
        return TilingPlan.create(self.height, self.width, self.patch_height, self.patch_width,
                                 self.min_rows, self.min_cols)


@dataclass(frozen=True)
class FamilySpec:
    """Everything the SDK needs to know about a model family, without torch."""

    name: str
    description: str
    input_channels: tuple[str, ...]
    image_types: dict[str, ImageType]
    default_image_type: str
    #: "module:function" that builds the torch network from an architecture config.
    network_factory: str
    #: default architecture config (the checkpoint stores the one actually used).
    default_config: dict[str, Any] = field(default_factory=dict)
    #: input scaling the network was trained with: x_net = x_file * scale.
    input_scale: float = 1.0 / 255.0

    def image_type(self, name: str) -> ImageType:
        try:
            return self.image_types[name]
        except KeyError:
            raise ValueError(f"unknown image type {name!r} for family {self.name!r}; "
                             f"expected one of {sorted(self.image_types)}") from None

    def build_network(self, config: dict[str, Any] | None = None) -> Any:
        """Build the (torch) network; imports torch only when called."""
        module_name, func_name = self.network_factory.split(":")
        factory: Callable[..., Any] = getattr(importlib.import_module(module_name), func_name)
        return factory(**{**self.default_config, **(config or {})})


_FAMILIES: dict[str, FamilySpec] = {}


def register_family(spec: FamilySpec) -> FamilySpec:
    """Add ``spec`` to the registry; a name can be registered once."""
    if spec.name in _FAMILIES:
        raise ValueError(f"family {spec.name!r} is already registered")
    _FAMILIES[spec.name] = spec
    return spec


def get_family(name: str) -> FamilySpec:
    """Look a family up by the name a checkpoint or manifest carries.

    Raises:
        ModelLoadError: for a name no family was registered under.
    """
    import runtime.families  # noqa: F401  (registers the built-in families)

    try:
        return _FAMILIES[name]
    except KeyError:
        raise ModelLoadError(f"unknown model family {name!r}; known families: {sorted(_FAMILIES)}") from None


def list_families() -> list[str]:
    import runtime.families  # noqa: F401

    return sorted(_FAMILIES)
