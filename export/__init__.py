"""Turn a checkpoint into a bundle of verified, layered ONNX graphs."""

from export._build import BuildOptions, BuildResult, Layer, Mode, Precision, build

__all__ = ["BuildOptions", "BuildResult", "Layer", "Mode", "Precision", "build"]
