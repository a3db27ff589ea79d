"""Run exported model bundles on ONNX Runtime or OpenVINO, without torch."""

from runtime._errors import BackendError, ExportError, InvalidInputError, ModelLoadError, SdkError
from runtime._registry import FamilySpec, ImageType, get_family, list_families

__all__ = [
    "BackendError",
    "ExportError",
    "FamilySpec",
    "ImageType",
    "InvalidInputError",
    "ModelLoadError",
    "SdkError",
    "get_family",
    "list_families",
]
