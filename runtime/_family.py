"""What the runtime asks of a model family: its input contract, decoding, labels, metrics and pictures.

Generic code (``Session``, ``evaluate``, the CLI) reads the manifest and asks
the family; it never knows a family's channels, outputs or metrics itself.
A family subclasses :class:`RuntimeFamily` once, torch-free, in
``runtime/families/<name>.py`` and registers an instance under its name.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from runtime._letterbox import Transform
from runtime._manifest import Postprocess, Preprocess
from runtime._results import Result


@dataclass(frozen=True)
class LabelledImage:
    """One evaluation image and the file (or files) its ground truth is read from (None: no label needed)."""

    image: Path
    label: Any = None


class RuntimeFamily(abc.ABC):
    """The torch-free part of a model family."""

    #: registry key, stored in checkpoints and manifests
    name: ClassVar[str]
    #: one line for people
    description: ClassVar[str]
    #: the family's result type (a :class:`Result` subclass)
    result_type: ClassVar[type[Result]]
    #: columns :meth:`Result.summary` adds to the CLI's summary.csv, in order
    summary_fields: ClassVar[tuple[str, ...]]
    #: the metric that ranks models and its direction ("max" or "min")
    selection_metric: ClassVar[tuple[str, str]]
    #: the direction of every metric :meth:`metrics` reports
    metric_directions: ClassVar[dict[str, str]] = {}
    #: the labelled split ``runtime.evaluate`` reads when none is given
    evaluation_split: ClassVar[str] = "test"

    # -- contract written into the manifest by the export ---------------------------------
    @abc.abstractmethod
    def variants(self) -> Sequence[str]:
        """Names of the input geometries the family knows (the first is the default)."""

    @abc.abstractmethod
    def input_spec(self, variant: str) -> Preprocess:
        """How an image of ``variant`` becomes the graph input (the manifest's ``preprocess``)."""

    @abc.abstractmethod
    def postprocess_spec(self, variant: str) -> Postprocess:
        """Named outputs of the full-image graph and how to read them (the manifest's ``postprocess``)."""

    # -- inference ---------------------------------------------------------------------------
    @abc.abstractmethod
    def decode(self, outputs: dict[str, np.ndarray], transforms: Sequence[Transform], post: Postprocess, *,
               sources: Sequence[str], threshold: float | None = None) -> list[Result]:
        """Graph outputs of a batch (by name) -> one result per image, in source-image coordinates.

        Args:
            outputs: every graph output, batch first.
            transforms: per image, where it lies on the graph's input canvas.
            post: the manifest's post-processing.
            sources: per image, where it came from (a path or ``"array[i]"``).
            threshold: the caller's decision threshold; None: the manifest's.

        Raises:
            BackendError: outputs no result can be made of (e.g. non-finite points).
        """

    # -- evaluation ------------------------------------------------------------------------------
    @abc.abstractmethod
    def labelled_images(self, root: Path, split: str) -> list[LabelledImage]:
        """The images of a labelled dataset split, each with where its ground truth is.

        Raises:
            InvalidInputError: a missing split or label.
        """

    @abc.abstractmethod
    def read_label(self, item: LabelledImage, image_hw: tuple[int, int]) -> Any:
        """The ground truth of ``item`` for an image of ``image_hw``."""

    def find_label(self, image: Path) -> LabelledImage | None:
        """Where the ground truth of one image file is, when the file lies in a dataset of the family's layout.

        The CLIs' figures outline it (:meth:`write_outputs` ``label``). None (the default): not found.
        """
        return None

    @abc.abstractmethod
    def metrics(self, results: Sequence[Result], labels: Sequence[Any]) -> dict[str, float]:
        """Task metrics of a split (names as the family documents them).

        Raises:
            ValueError: when the metrics are undefined on these labels (e.g. only one class).
        """

    def agreement(self, results: Sequence[Result], reference: Sequence[Result]) -> dict[str, float]:
        """How closely ``results`` agree with ``reference`` results of the same images, as users act on them.

        The export records these figures for every graph against PyTorch FP32 (its guards may
        name them) and ``runtime.evaluate`` shows them against FP32. Every family reports
        ``decision_agreement``, the share of decisions (defective or not, point found or not) that
        are the same. The default: no figures.
        """
        return {}

    # -- outputs for people ------------------------------------------------------------------------
    def describe(self, summaries: Sequence[dict[str, Any]]) -> str:
        """A few words for the CLI's closing line from the processed images' :meth:`Result.summary` rows."""
        return ""

    @abc.abstractmethod
    def write_outputs(self, result: Result, image: np.ndarray, out_dir: Path, stem: str, *,
                      visualize: bool) -> list[Path]:
        """Write the per-image files of ``python -m runtime.infer`` and return their paths.

        Args:
            result: the image's result.
            image: the channels the graph read, (C, h, w) in the source range.
            out_dir: the output folder.
            stem: a file-name stem unique in ``out_dir``.
            visualize: also write the family's figure.

        A family whose :meth:`find_label` finds labels also takes ``label=`` (the image's
        :meth:`read_label`, passed only when there is one) and draws it on its figure.
        """
