"""What the export asks of a model family: wrappers per layer and mode, samples, the quality guard, checks.

Generic code (``export/_build.py``) traces, simplifies, converts, quantizes,
compares and hashes; it never knows a family's layers, outputs or metrics. A
family subclasses :class:`ExportFamily` once in ``export/families/<name>.py``
and registers an instance under its name in :data:`EXPORT_FAMILIES`.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import numpy as np
from torch import nn

from runtime.core import Registry, TensorSpec

EXPORT_FAMILIES: Registry = Registry("export", "export.families")


@dataclass(frozen=True)
class LayerSpec:
    """One exportable layer of a family: its module and its named inputs and outputs.

    ``inputs[0]`` is the image input; a ``str`` dimension is dynamic (the batch).
    """

    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def example_shape(self) -> tuple[int, ...]:
        return (1, *self.inputs[0].shape[1:])


@dataclass(frozen=True)
class Quality:
    """The task metric that guards INT8 (and reports every precision): its name, direction and allowed loss."""

    metric: str
    direction: str  # "max": higher is better; "min": lower is better
    max_drop: float

    def loss(self, reference: float, value: float) -> float:
        """How much worse ``value`` is than ``reference`` (positive: worse)."""
        return reference - value if self.direction == "max" else value - reference


class ExportFamily(abc.ABC):
    """The export part of a model family."""

    #: registry key
    name: ClassVar[str]
    #: full-image modes the family can build (the first is the default)
    modes: ClassVar[tuple[str, ...]]
    #: layers the family can build besides "full"
    lower_layers: ClassVar[tuple[str, ...]]
    #: max abs difference of an FP32 graph output against PyTorch, per output name ("*": any other)
    fp32_tolerance: ClassVar[dict[str, float]] = {"*": 1e-4}

    @abc.abstractmethod
    def layer(self, network: nn.Module, layer: str, mode: str, variant: str) -> LayerSpec:
        """The module of ``layer`` ("base", "patch", "full") in ``mode`` around the trained ``network``."""

    @abc.abstractmethod
    def layer_inputs(self, layer: str, tensors: np.ndarray, variant: str, per_image: int) -> np.ndarray:
        """Graph-input tensors (N, C, H, W) of the full image -> the inputs ``layer`` takes (e.g. some patches)."""

    @abc.abstractmethod
    def quality(self, max_drop: float | None) -> Quality:
        """The INT8 guard (``max_drop`` None: the family's default allowed loss)."""

    @abc.abstractmethod
    def metrics(self, outputs: dict[str, np.ndarray], labels: Sequence[Any], variant: str) -> dict[str, float]:
        """Task metrics of full-image graph outputs (by name) against the samples' labels."""

    def check_outputs(self, layer: str, outputs: dict[str, np.ndarray]) -> dict[str, Any]:
        """Structural checks of a graph's outputs; raise ExportError on a broken contract, return facts to report."""
        return {}

    def tiling(self, variant: str, mode: str) -> dict[str, Any] | None:
        """The manifest's informative ``tiling`` of the full-image graph, or None."""
        return None

    def mode_report(self, network: nn.Module, tensors: np.ndarray, labels: Sequence[Any], variant: str,
                    mode: str, reference: dict[str, np.ndarray]) -> dict[str, Any] | None:
        """Optional comparison of ``mode`` with the family's default mode, for the report."""
        return None


def get_export_family(name: str) -> ExportFamily:
    """The export part of a family.

    Raises:
        ModelLoadError: for an unknown name.
    """
    return EXPORT_FAMILIES.get(name)


def list_export_families() -> list[str]:
    return EXPORT_FAMILIES.names()
