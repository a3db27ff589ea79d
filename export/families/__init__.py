"""Model families, export parts: one module per family, each registering itself in ``EXPORT_FAMILIES``
when imported (``get_export_family`` imports them all on first use)."""
