"""Torch networks of the registered model families (one module per family)."""
