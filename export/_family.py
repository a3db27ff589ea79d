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
import onnx
from torch import nn

from runtime.core import Registry, TensorSpec

EXPORT_FAMILIES: Registry = Registry("export", "export.families")


@dataclass(frozen=True)
class LayerSpec:
    """One exportable layer of a family: its module and its named inputs and outputs.

    ``inputs[0]`` is the image input; a ``str`` dimension is dynamic (the batch).
    ``diagnostics`` are further outputs of ``module``, after ``outputs``: every graph
    is built and compared with PyTorch with them (the parity report shows them),
    and they are removed from the graphs written to the bundle.
    """

    module: nn.Module
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    diagnostics: tuple[TensorSpec, ...] = ()

    @property
    def all_outputs(self) -> tuple[TensorSpec, ...]:
        """What ``module`` returns, in order: the contract outputs, then the diagnostics."""
        return (*self.outputs, *self.diagnostics)

    def example_shape(self) -> tuple[int, ...]:
        return (1, *self.inputs[0].shape[1:])


@dataclass(frozen=True)
class Quality:
    """A task metric that guards INT8: its name, direction and allowed loss against PyTorch FP32."""

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
    #: labelled synthetic images the parity report and the INT8 guard use by default
    parity_images: ClassVar[int] = 16
    #: the reference design's full-graph size per precision (MiB), shown beside ours in the report
    reference_mib: ClassVar[dict[str, float]] = {}

    @abc.abstractmethod
    def layer(self, network: nn.Module, layer: str, mode: str, variant: str) -> LayerSpec:
        """The module of ``layer`` ("base", "patch", "full") in ``mode`` around the trained ``network``."""

    @abc.abstractmethod
    def layer_inputs(self, layer: str, tensors: np.ndarray, variant: str, per_image: int) -> np.ndarray:
        """Graph-input tensors (N, C, H, W) of the full image -> the inputs ``layer`` takes (e.g. some patches)."""

    @abc.abstractmethod
    def quality(self) -> tuple[Quality, ...]:
        """The metrics that guard INT8 with their default allowed losses; the first is the main one.

        INT8 passes when no guard loses more than it allows (``--max-metric-drop`` overrides).
        """

    @abc.abstractmethod
    def metrics(self, outputs: dict[str, np.ndarray], labels: Sequence[Any], variant: str) -> dict[str, float]:
        """Task metrics of full-image graph outputs (by name) against the samples' labels."""

    def int8_float_nodes(self, model: onnx.ModelProto) -> list[str]:
        """Nodes of an FP32 graph that INT8 always keeps in float (the accuracy search may add more)."""
        return []

    def differences(self, layer: str, outputs: dict[str, np.ndarray],
                    reference: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per output name, the elementwise abs difference of a graph's outputs from PyTorch's (float64)."""
        return {name: np.abs(outputs[name].astype(np.float64) - reference[name]) for name in outputs}

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
