"""Exception hierarchy shared by every package of the SDK.

Library code raises these; command-line front ends catch :class:`SdkError`,
print its message and exit non-zero.
"""


class SdkError(Exception):
    """Base class of every error the SDK raises on purpose."""


class InvalidInputError(SdkError, ValueError):
    """An image, array or argument does not fit what the model expects."""


class ModelLoadError(SdkError):
    """A checkpoint, graph or manifest is missing, unreadable, tampered or inconsistent."""


class BackendError(SdkError):
    """An inference backend failed or is not usable for the requested device."""


class ExportError(SdkError):
    """An export step failed its own verification (parity, checker, zero channels)."""
