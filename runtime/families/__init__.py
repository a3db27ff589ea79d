"""Built-in model families (runtime parts); importing this package registers them."""

from runtime.families import brn

__all__ = ["brn"]
