"""Model families, training parts: one module or package per family, each registering itself in
``TRAINING_FAMILIES`` when imported (``get_training_family`` imports them all on first use)."""

from training._family import TRAINING_FAMILIES

__all__ = ["TRAINING_FAMILIES"]
