"""``brn``, runtime part: three-channel contrastive defect segmentation of line-scan strips.

Each sample stacks three aligned acquisitions, Target, Ref1 and Ref2 (file
channels 0, 1, 2; a 4th channel is the production mask and is not read). The
network marks what is present in Target and absent from both references; the
full-image graph returns ``[heatmap, 0, 0]`` at the input size (the two zero
channels are a production contract). Metrics: image- and pixel-level AUROC.

Datasets use the layout::

    <root>/train/good/*.tiff
    <root>/test/good/*.tiff
    <root>/test/<defect>/*.tiff            e.g. test/bright_spots/007.tiff
    <root>/ground_truth/<defect>/<stem>_mask.tiff
    <root>/valid/...                        optional, same shape as test/
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import tifffile

from runtime._errors import InvalidInputError
from runtime._family import LabelledImage, RuntimeFamily
from runtime._imageio import list_images, write_png, write_tiff
from runtime._letterbox import Transform
from runtime._manifest import HeatmapPost, Postprocess, Preprocess
from runtime._metrics import segmentation_aurocs
from runtime._registry import FAMILIES
from runtime._results import HeatmapResult, Result
from runtime._tiling import TilingPlan
from runtime._visualize import colormap, grey, labelled_panels, outline, overlay

NAME = "brn"
CHANNELS = ("target", "ref1", "ref2")
OUTPUT = "output"
DEFECT_CATEGORY = "bright_spots"  # the synthetic datasets' defect folder


@dataclass(frozen=True)
class ImageType:
    """A production image geometry and the patch the network sees."""

    name: str
    height: int
    width: int
    patch_height: int
    patch_width: int
    min_rows: int = 1
    min_cols: int = 1

    def tiling(self) -> TilingPlan:
        return TilingPlan.create(self.height, self.width, self.patch_height, self.patch_width,
                                 self.min_rows, self.min_cols)


IMAGE_TYPES = {
    # 9 rows instead of ceil(976/128) = 8 so that neighbouring patches overlap
    # by 22 px and each keeps only its well-supported centre.
    "strip": ImageType("strip", 976, 176, 128, 128, min_rows=9),
    "square": ImageType("square", 256, 256, 256, 256),
    "mvtec": ImageType("mvtec", 1024, 1024, 256, 256),
}


def image_type(name: str) -> ImageType:
    try:
        return IMAGE_TYPES[name]
    except KeyError:
        raise InvalidInputError(f"unknown image type {name!r} for family {NAME!r}; "
                                f"expected one of {sorted(IMAGE_TYPES)}") from None


def training_images(root: str | Path) -> list[Path]:
    """The defect-free images under ``<root>/train/good``.

    Raises:
        InvalidInputError: when the folder is missing or holds no image.
    """
    folder = Path(root) / "train" / "good"
    paths = list_images(folder) if folder.is_dir() else []
    if not paths:
        raise InvalidInputError(f"no training images in {folder}; expected <dataset>/train/good/*.tiff")
    return paths


def read_mask(path: Path | None, height: int, width: int) -> np.ndarray:
    """The (H, W) boolean ground truth in ``path`` (all False for None, a good image)."""
    if path is None:
        return np.zeros((height, width), dtype=bool)
    try:
        mask = np.squeeze(tifffile.imread(path))
    except Exception as exc:  # tifffile raises many types for a corrupt file
        raise InvalidInputError(f"cannot read mask {path}: {exc}") from exc
    if mask.shape != (height, width):
        raise InvalidInputError(f"mask {path} has shape {mask.shape}, expected ({height}, {width})")
    return mask > 0


def panels(image: np.ndarray, heatmap: np.ndarray, truth: np.ndarray | None = None) -> np.ndarray:
    """The 7 panels users expect, side by side, each labelled -> (16 + H, 7 W + gaps, 3) uint8.

    Target, Ref1, Ref2, |Target-Ref1|, |Target-Ref2|, the double detection
    min(|Target-Ref1|, |Target-Ref2|) (bright only where Target differs from both
    references, as a real defect does) and the heatmap. With a ground-truth
    mask ``truth``, its outline is drawn in green on Target and on the heatmap.
    """
    target, ref1, ref2 = (np.asarray(c, np.float32) for c in image[:3])
    diff1, diff2 = np.abs(target - ref1), np.abs(target - ref2)
    shown_target, shown_heatmap = grey(target), colormap(heatmap)
    if truth is not None:
        shown_target, shown_heatmap = outline(shown_target, truth), outline(shown_heatmap, truth)
    return labelled_panels([("Target", shown_target), ("Ref1", grey(ref1)), ("Ref2", grey(ref2)),
                            ("|Target-Ref1|", grey(diff1)), ("|Target-Ref2|", grey(diff2)),
                            ("double detection", grey(np.minimum(diff1, diff2))),
                            ("heatmap", shown_heatmap)])


class Brn(RuntimeFamily):
    name = NAME
    description = "UNet that segments defects present in Target and absent in Ref1 and Ref2"
    result_type = HeatmapResult
    summary_fields = ("score", "defect_pixels")
    selection_metric = ("pixel_auroc", "max")
    metric_directions = {"image_auroc": "max", "pixel_auroc": "max"}

    def variants(self) -> Sequence[str]:
        return tuple(IMAGE_TYPES)

    def input_spec(self, variant: str) -> Preprocess:
        t = image_type(variant)
        return Preprocess(resize="exact", height=t.height, width=t.width, read_channels=(0, 1, 2),
                          channel_names=CHANNELS, append_mask=False, accepted_channels=(3, 4),
                          accepted_layouts=("CHW", "HWC"), source_range=(0.0, 255.0), scale=1.0 / 255.0)

    def postprocess_spec(self, variant: str) -> Postprocess:
        return HeatmapPost(output=OUTPUT, channel=0, range=(0.0, 1.0), threshold=0.5, zero_channels=(1, 2))

    def decode(self, outputs: dict[str, np.ndarray], transforms: Sequence[Transform], post: Postprocess, *,
               sources: Sequence[str], threshold: float | None = None) -> list[Result]:
        return decode_heatmaps(outputs, post, sources=sources, threshold=threshold)

    def labelled_images(self, root: Path, split: str) -> list[LabelledImage]:
        root = Path(root)
        split_dir = root / split
        if not split_dir.is_dir():
            raise InvalidInputError(f"no {split!r} split in {root}; expected {split_dir}/good and "
                                    f"{split_dir}/<defect>")
        items: list[LabelledImage] = []
        for category in sorted(p for p in split_dir.iterdir() if p.is_dir()):
            for image in list_images(category):
                if category.name == "good":
                    items.append(LabelledImage(image, None))
                    continue
                mask = root / "ground_truth" / category.name / f"{image.stem}_mask.tiff"
                if not mask.is_file():
                    raise InvalidInputError(f"defect image {image} has no mask; expected {mask}")
                items.append(LabelledImage(image, mask))
        if not items:
            raise InvalidInputError(f"no images under {split_dir}")
        return items

    def read_label(self, item: LabelledImage, image_hw: tuple[int, int]) -> np.ndarray:
        return read_mask(item.label, *image_hw)

    def metrics(self, results: Sequence[Result], labels: Sequence[Any]) -> dict[str, float]:
        return segmentation_aurocs(np.stack(labels), np.stack([r.heatmap for r in results]))

    def describe(self, summaries: Sequence[dict[str, Any]]) -> str:
        return f"{sum(int(row['defect_pixels']) > 0 for row in summaries)} with defects"

    def write_outputs(self, result: Result, image: np.ndarray, out_dir: Path, stem: str, *,
                      visualize: bool) -> list[Path]:
        return write_heatmap_outputs(result, image, out_dir, stem, panels if visualize else None)


def decode_heatmaps(outputs: dict[str, np.ndarray], post: Postprocess, *, sources: Sequence[str],
                    threshold: float | None) -> list[HeatmapResult]:
    """The heatmap channel of the heatmap output, clipped to its range, as one result per image."""
    assert isinstance(post, HeatmapPost)
    output = outputs[post.output]
    threshold = post.threshold if threshold is None else threshold
    heatmaps = np.clip(output[:, post.channel], *post.range)
    return [HeatmapResult.from_heatmap(h, threshold, s) for h, s in zip(heatmaps, sources)]


def write_heatmap_outputs(result: Result, image: np.ndarray, out_dir: Path, stem: str, figure=None) -> list[Path]:
    """``<stem>_heatmap.tiff``, ``<stem>_overlay.png`` (channel 0 in grey, the defects in red), the figure."""
    assert isinstance(result, HeatmapResult)
    written = [write_tiff(out_dir / f"{stem}_heatmap.tiff", result.heatmap),
               write_png(out_dir / f"{stem}_overlay.png", overlay(image[0], result.heatmap, result.threshold))]
    if figure is not None:
        written.append(write_png(out_dir / f"{stem}_panels.png", figure(image, result.heatmap)))
    return written


FAMILY = FAMILIES.register(NAME)(Brn())
