"""Built-in model families (export parts); importing this package registers them."""

from export.families import brn

__all__ = ["brn"]
