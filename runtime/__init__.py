"""Run exported model bundles on ONNX Runtime, OpenVINO or libruntime, without torch.

    session = runtime.Session("bundles/brn")          # verified, ready for repeated calls
    result = session.run("image.tiff")                # -> the family's result, e.g. HeatmapResult
    runtime.infer("bundles/brn", images)              # one shot
    runtime.infer("bundles/lhrnet", "scene.png").points["slot"]   # a KeypointsResult: (x, y) in the image's pixels
    runtime.evaluate("bundles/brn", "data/brn")       # the family's metrics and ms per image

CLIs: ``python -m runtime.infer MODEL INPUTS... --out DIR`` and
``python -m runtime.evaluate MODEL DATASET``. The manifest is described in
``runtime/MANIFEST.md``; the building blocks training and export share are in
:mod:`runtime.core`.
"""

from runtime._errors import BackendError, ExportError, InvalidInputError, ModelLoadError, SdkError
from runtime._evaluate import evaluate
from runtime._family import RuntimeFamily
from runtime._options import (
    Backend,
    GraphOptimization,
    InferencePrecision,
    PerformanceHint,
    Precision,
    SessionOptions,
)
from runtime._registry import get_family, list_families
from runtime._results import HeatmapResult, KeypointsResult, Result
from runtime._session import Session, infer

__all__ = [
    "Backend",
    "BackendError",
    "ExportError",
    "GraphOptimization",
    "HeatmapResult",
    "KeypointsResult",
    "InferencePrecision",
    "InvalidInputError",
    "ModelLoadError",
    "PerformanceHint",
    "Precision",
    "Result",
    "RuntimeFamily",
    "SdkError",
    "Session",
    "SessionOptions",
    "evaluate",
    "get_family",
    "infer",
    "list_families",
]
