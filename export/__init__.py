"""Turn a checkpoint into a bundle of verified, layered ONNX graphs."""

from export._build import BuildOptions, BuildResult, Layer, Precision, build
from export._family import ExportFamily, LayerSpec, Quality, get_export_family, list_export_families

__all__ = ["BuildOptions", "BuildResult", "ExportFamily", "Layer", "LayerSpec", "Precision", "Quality", "build",
           "get_export_family", "list_export_families"]
