"""The compiled libruntime module, or a skip that says why it is missing."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def native():
    """``runtime._native`` (skipped when the module is not built, e.g. a checkout never pip-installed)."""
    from runtime._backends.native import native_module

    try:
        return native_module()
    except ImportError as exc:
        pytest.skip(f"runtime._native is not built: {exc}")
