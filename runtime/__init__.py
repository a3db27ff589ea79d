"""Run exported model bundles on ONNX Runtime or OpenVINO, without torch.

    session = runtime.Session("bundles/brn")          # verified, ready for repeated calls
    result = session.run("strip.tiff")                # -> HeatmapResult(score, mask, ...)
    runtime.infer("bundles/brn", images)              # one shot
    runtime.evaluate("bundles/brn", "data/strips")    # AUROC and ms per image

CLIs: ``python -m runtime.infer MODEL INPUTS... --out DIR`` and
``python -m runtime.evaluate MODEL DATASET``. The manifest is described in
``runtime/MANIFEST.md``.
"""

from runtime._errors import BackendError, ExportError, InvalidInputError, ModelLoadError, SdkError
from runtime._evaluate import evaluate
from runtime._options import (
    Backend,
    GraphOptimization,
    InferencePrecision,
    PerformanceHint,
    Precision,
    SessionOptions,
)
from runtime._registry import FamilySpec, ImageType, get_family, list_families
from runtime._results import HeatmapResult
from runtime._session import Session, infer

__all__ = [
    "Backend",
    "BackendError",
    "ExportError",
    "FamilySpec",
    "GraphOptimization",
    "HeatmapResult",
    "ImageType",
    "InferencePrecision",
    "InvalidInputError",
    "ModelLoadError",
    "PerformanceHint",
    "Precision",
    "SdkError",
    "Session",
    "SessionOptions",
    "evaluate",
    "get_family",
    "infer",
    "list_families",
]
