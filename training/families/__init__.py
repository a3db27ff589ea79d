"""Built-in model families (training parts); importing this package registers them in ``TRAINING_FAMILIES``."""

from training._family import TRAINING_FAMILIES
from training.families import brn

__all__ = ["TRAINING_FAMILIES", "brn"]
