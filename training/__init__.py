"""Train model families of the SDK and write checkpoints the export understands.

    python -m training.make_dataset --family brn --out data/brn     # a synthetic dataset
    python -m training.train --family brn --data data/brn --out runs/brn

Each family's training part is a :class:`TrainingFamily` registered under the
family's name (``training/families/<name>/``); generic code asks it for the
network, data, loss, optimiser, metrics, pictures and report sections. The
engine every family trains on is ``training.train`` (CLI and ``train()``) over
the private ``_engine``, ``_config``, ``_device``, ``_distributed``, ``_data``,
``_stopping``, ``_checkpointing`` and ``_monitor`` modules; ``training.report``
writes a run's report; ``training.checkpoint`` reads and writes checkpoints;
``training.smoke`` holds tiny end-to-end runs for tests.
"""

from training._family import (
    TRAINING_FAMILIES,
    Direction,
    Loss,
    Optimization,
    ReportSection,
    SchedulerInterval,
    TinyConfig,
    TrainDefaults,
    TrainingFamily,
    get_training_family,
    list_training_families,
)

__all__ = [
    "Direction",
    "Loss",
    "Optimization",
    "ReportSection",
    "SchedulerInterval",
    "TRAINING_FAMILIES",
    "TinyConfig",
    "TrainDefaults",
    "TrainingFamily",
    "get_training_family",
    "list_training_families",
]
