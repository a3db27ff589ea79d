"""Built-in model families; importing this package registers them."""

from runtime.families import brn

__all__ = ["brn"]
