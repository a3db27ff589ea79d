"""The runtime's building blocks that training, export and model families share (public, documented, torch-free).

Training and export use these names and never the runtime's ``_private``
modules, so the runtime can reorganise its insides freely:

* manifest: :class:`Manifest`, :class:`Preprocess`, :class:`HeatmapPost`,
  :class:`KeypointsPost`, :class:`GraphEntry`, :class:`Accuracy`, :class:`TensorSpec`,
  :func:`parse_manifest`, :func:`read_manifest`, :data:`SCHEMA_VERSION`,
  :data:`MANIFEST_NAME`, :func:`sha256_file`, :func:`graph_payload_sha256`;
* images: :func:`read_image`, :class:`ColorOrder` (PNG/JPEG plane order), :func:`to_chw`, :func:`list_images`,
  :func:`write_tiff`, :func:`write_png`, :func:`atomic_write` (the one helper
  that writes files atomically), :func:`prepare` / :func:`read_source` /
  :func:`to_tensor` (manifest-driven pre-processing), :func:`letterbox`, :func:`letterbox_fit`,
  :class:`Transform`;
* geometry: :class:`TilingPlan`, :func:`calculate_positions`;
* metrics: :func:`auroc`, :func:`segmentation_aurocs`, :func:`keypoint_metrics`, :func:`angle_errors`,
  :func:`heatmap_agreement`, :func:`keypoint_agreement` (a graph's results against a reference's);
* families: :class:`Registry`, :data:`FAMILIES`, :class:`RuntimeFamily`,
  :class:`LabelledImage`, :class:`Result`, :class:`HeatmapResult`, :class:`KeypointsResult`;
* pictures: :func:`colormap`, :func:`overlay`, :func:`grey`, :func:`outline`, :func:`labelled_panels`;
* command lines: :func:`check_output_dir`, :func:`check_output_file`, and :class:`Predictor` / :func:`infer_files` (the loop of
  ``python -m runtime.infer`` over files and folders, for any model that runs one image);
* publishing a folder: :func:`publish_folder` (staging, lock, SIGTERM-safe rename), and its
  pieces :func:`check_destination`, :func:`make_staging`, :func:`move_into_place`,
  :func:`publish_lock`, :class:`TerminationGuard`.
"""

from runtime._cli import Predictor, infer_files
from runtime._errors import BackendError, ExportError, InvalidInputError, ModelLoadError, SdkError
from runtime._family import LabelledImage, RuntimeFamily
from runtime._imageio import (COLOR_ORDERS, ColorOrder, atomic_write, check_output_dir, check_output_file, list_images, read_image,
                               to_chw, write_png, write_tiff)
from runtime._letterbox import Transform, fit as letterbox_fit, letterbox
from runtime._publish import (TerminationGuard, check_destination, make_staging, move_into_place, publish_folder,
                              publish_lock)
from runtime._manifest import (
    DTYPES,
    Accuracy,
    LAYERS,
    MANIFEST_NAME,
    PRECISIONS,
    SCHEMA_VERSION,
    GraphEntry,
    HeatmapPost,
    KeypointsPost,
    Manifest,
    Postprocess,
    Preprocess,
    TensorSpec,
    graph_payload,
    graph_payload_sha256,
    model_metadata,
    parse_manifest,
    read_manifest,
    sha256_file,
)
from runtime._metrics import (HIT_RADII, angle_errors, auroc, heatmap_agreement, keypoint_agreement, keypoint_metrics,
                              segmentation_aurocs)
from runtime._options import Precision
from runtime._preprocess import prepare, read_source, to_tensor
from runtime._registry import FAMILIES, Registry, get_family, list_families
from runtime._results import HeatmapResult, KeypointsResult, Result
from runtime._tiling import TilingPlan, calculate_positions
from runtime._visualize import colormap, grey, labelled_panels, outline, overlay

__all__ = [
    "Accuracy", "BackendError", "COLOR_ORDERS", "ColorOrder", "DTYPES", "HIT_RADII", "ExportError", "FAMILIES", "GraphEntry", "HeatmapPost", "HeatmapResult",
    "InvalidInputError", "KeypointsPost", "KeypointsResult", "LAYERS", "LabelledImage", "MANIFEST_NAME", "Manifest", "ModelLoadError",
    "PRECISIONS", "Postprocess", "Precision", "Predictor", "Preprocess", "Registry", "Result", "RuntimeFamily", "SCHEMA_VERSION",
    "SdkError", "TensorSpec", "TerminationGuard", "TilingPlan", "Transform", "angle_errors", "atomic_write", "auroc", "calculate_positions", "check_destination", "check_output_dir", "check_output_file", "colormap",
    "get_family", "graph_payload", "graph_payload_sha256", "grey", "heatmap_agreement", "infer_files", "keypoint_agreement", "keypoint_metrics", "labelled_panels", "letterbox", "letterbox_fit", "list_families",
    "list_images", "make_staging", "model_metadata", "move_into_place", "outline", "overlay", "parse_manifest", "prepare", "read_image", "read_manifest",
    "publish_folder", "publish_lock", "read_source", "segmentation_aurocs", "sha256_file", "to_chw", "to_tensor", "write_png", "write_tiff",
]
