"""Tiny end-to-end runs of any registered family, for tests and fixtures: dataset -> checkpoint -> bundle.

Each step uses the family's :meth:`~training.TrainingFamily.tiny_config` (a very
narrow network, a few steps, a few small images), so a whole round trip takes
seconds on a CPU. The pytest fixtures and the CTest fixture build on these::

    bundle = build_tiny_bundle("brn", tmp / "bundle")
    images = sample_images("brn", count=2, seed=0)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from training._family import get_training_family
from training.train import TrainConfig, TrainResult, train

if TYPE_CHECKING:
    from export import BuildResult

__all__ = ["build_tiny_bundle", "export_tiny", "make_tiny_dataset", "sample_images", "train_tiny"]

#: the seed of the tiny datasets (the training seed is 0)
DATASET_SEED = 3


def make_tiny_dataset(family: str, out: str | Path, *, seed: int = DATASET_SEED) -> Path:
    """A few small labelled images of ``family`` in its layout (its ``tiny_config().dataset``).

    Args:
        family: the model family.
        out: the dataset folder to create (replaced when it exists).
        seed: the same seed writes the same bytes.

    Returns:
        ``out`` as a :class:`~pathlib.Path`.

    Raises:
        ModelLoadError: an unknown family.

    Example:
        >>> make_tiny_dataset("brn", tmp_path / "data")
    """
    part = get_training_family(family)
    tiny = part.tiny_config()
    return part.synthetic_dataset(Path(out), part.check_variant(tiny.variant), seed, tiny.dataset, overwrite=True)


def train_tiny(family: str, dataset_root: str | Path, out: str | Path, *, seed: int = 0) -> TrainResult:
    """Train ``family``'s tiny configuration on ``dataset_root`` (seconds) into ``out``.

    Args:
        family: the model family.
        dataset_root: a dataset in the family's layout, e.g. from :func:`make_tiny_dataset`.
        out: the folder for ``last.pth`` and ``best.pth``.
        seed: the training seed.

    Returns:
        The :class:`~training.train.TrainResult` (``.best`` is the checkpoint to export).

    Raises:
        SdkError: an unknown family or an unreadable dataset.

    Example:
        >>> train_tiny("brn", make_tiny_dataset("brn", tmp_path / "data"), tmp_path / "run").best
    """
    part = get_training_family(family)
    tiny = part.tiny_config()
    return train(TrainConfig(out=Path(out), family=family, data=Path(dataset_root), variant=tiny.variant,
                             epochs=tiny.epochs, steps_per_epoch=tiny.steps_per_epoch, batch_size=tiny.batch_size,
                             eval_every=tiny.epochs, seed=seed, progress=False, family_options=tiny.options,
                             **{"device": "cpu", "workers": 0, "tensorboard": False, "save_every": 0, "force": True,
                                **tiny.settings}))


def export_tiny(checkpoint: str | Path, out: str | Path, *, layers: Sequence[str] | None = None,
                precisions: Sequence[str] = ("fp32",)) -> BuildResult:
    """Export a (tiny) checkpoint with few parity and calibration images.

    Args:
        checkpoint: a checkpoint written by ``training.train``.
        out: the bundle folder (replaced when it exists).
        layers: the graph layers to build (None: every layer the checkpoint's family has).
        precisions: the precisions to build.

    Returns:
        The export's ``BuildResult`` (``.bundle`` is the folder).

    Raises:
        SdkError: when the export or its verification fails.

    Example:
        >>> export_tiny(run.best, tmp_path / "bundle", precisions=("fp32", "int8")).bundle
    """
    from export import BuildOptions, build, get_export_family
    from training.checkpoint import load_checkpoint

    if layers is None:
        layers = (*get_export_family(load_checkpoint(checkpoint)["family"]).lower_layers, "full")
    return build(BuildOptions(checkpoint=Path(checkpoint), out=Path(out), layers=tuple(layers),
                              precisions=tuple(precisions), parity_images=4, calibration_synthetic=4, force=True))


def build_tiny_bundle(family: str, out: str | Path, *, layers: Sequence[str] | None = None,
                      precisions: Sequence[str] = ("fp32",)) -> Path:
    """A tiny dataset, a few training steps and an export of ``family``: a bundle in ``out`` (seconds).

    The dataset and checkpoints live in a temporary folder next to ``out`` and
    are removed at the end.

    Args:
        family: the model family.
        out: the bundle folder (replaced when it exists).
        layers: the graph layers to build (None: every layer the family has).
        precisions: the precisions to build.

    Returns:
        The bundle folder.

    Raises:
        SdkError: an unknown family, or a failed training or export.

    Example:
        >>> session = runtime.Session(build_tiny_bundle("brn", tmp_path / "bundle"))
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=f".{out.name}-tiny-") as tmp:
        data = make_tiny_dataset(family, Path(tmp) / "data")
        run = train_tiny(family, data, Path(tmp) / "run")
        return export_tiny(run.best, out, layers=layers, precisions=precisions).bundle


def sample_images(family: str, count: int, seed: int) -> list[np.ndarray]:
    """``count`` synthetic source images of ``family``'s default variant, as users pass them.

    Args:
        family: the model family.
        count: how many images.
        seed: the same seed gives the same images.

    Returns:
        (C, H, W) float32 arrays in the family's source range.

    Raises:
        ModelLoadError: an unknown family.

    Example:
        >>> image = sample_images("brn", 2, seed=0)[0]
        >>> image.ndim, image.dtype
        (3, dtype('float32'))
    """
    part = get_training_family(family)
    images, _ = part.synthetic_samples(part.check_variant(part.tiny_config().variant), count, seed)
    return [np.ascontiguousarray(image) for image in images]
