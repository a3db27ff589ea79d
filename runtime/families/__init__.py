"""Model families, runtime parts: one module per family, each registering itself in ``FAMILIES`` when imported.

``runtime.get_family`` imports every public module of this package on first use.
"""
