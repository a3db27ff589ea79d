"""``brn``, runtime part: three-channel contrastive defect segmentation of line-scan strips.

Each sample stacks three aligned acquisitions, Target, Ref1 and Ref2 (file
channels 0, 1, 2; a 4th channel is the production mask and is not read). The
network marks what is present in Target and absent from both references; the
full-image graph returns ``[heatmap, 0, 0]`` at the input size (the two zero
channels are a production contract). Metrics: image- and pixel-level AUROC.

Channel order in files: a TIFF (float32 in 0..255, CHW or HWC) holds Target,
Ref1, Ref2 (and the mask) as channels 0, 1, 2 (3). A PNG/JPEG holds them as
production's OpenCV writes its BGR arrays: Target in the *blue* plane, Ref1 in
green, Ref2 in red (:data:`COLOR_ORDER` ``"bgr"``, the manifest's
``preprocess.color_order``); a PNG whose red plane is Target would be read with
Target and Ref2 swapped. Arrays passed to a session are taken as they are:
channel 0 is Target.

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
from runtime._imageio import ColorOrder, list_images, write_png, write_tiff
from runtime._letterbox import Transform
from runtime._manifest import HeatmapPost, Postprocess, Preprocess
from runtime._metrics import heatmap_agreement, segmentation_aurocs
from runtime._registry import FAMILIES
from runtime._results import HeatmapResult, Result
from runtime._tiling import TilingPlan
from runtime._visualize import (auto_contrast, colormap, colour_bar, composite, diverging, grey, labelled_panels,
                                legend, outline, overlay, with_gain)

NAME = "brn"
CHANNELS = ("target", "ref1", "ref2")
OUTPUT = "output"
DEFECT_CATEGORY = "bright_spots"  # the synthetic datasets' defect folder
#: PNG/JPEG files hold Target in the blue plane, Ref1 green, Ref2 red: production writes its BGR arrays with OpenCV.
COLOR_ORDER = ColorOrder.BGR


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


def mask_path(image: Path) -> Path:
    """Where the dataset layout keeps the mask of ``<root>/<split>/<defect>/<stem>.*``:
    ``<root>/ground_truth/<defect>/<stem>_mask.tiff`` (the file may not exist)."""
    category = image.parent
    return category.parent.parent / "ground_truth" / category.name / f"{image.stem}_mask.tiff"


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


#: what the colours of the composite panel mean (R = Target, G = Ref1, B = Ref2; brighter than the others)
COMPOSITE_LEGEND = (
    (None, "R Target, G Ref1, B Ref2:"),
    ((255, 40, 40), "Target only: a defect"),
    ((40, 220, 40), "Ref1 only"),
    ((50, 90, 255), "Ref2 only"),
    ((255, 230, 40), "Target + Ref1"),
    ((255, 40, 255), "Target + Ref2"),
    ((40, 230, 230), "Ref1 + Ref2"),
    ((170, 170, 170), "all three: background"),
    (None, "darker: the opposite colour"),
    (None, "(a dark defect shows cyan)"),
)
#: the outline of the ground truth
TRUTH_COLOUR = (0, 255, 0)
#: the most the difference panels and the composite are stretched: a difference of 32 levels (the faintest
#: defects the reference project trained on were +-30) reaches full brightness, while a defect-free strip's
#: few levels of misregistration stay dim instead of filling the panel
MAX_DIFFERENCE_GAIN = 8.0


def double_detection(diff1: np.ndarray, diff2: np.ndarray) -> np.ndarray:
    """Signed min(diff1, diff2) by magnitude where both differences have the same sign, else 0.

    Non-zero only where Target differs from *both* references in the same direction,
    as a real defect does; a Target between its two references is no defect.
    """
    same = np.sign(diff1) == np.sign(diff2)
    return np.where(same, np.sign(diff1) * np.minimum(np.abs(diff1), np.abs(diff2)), 0.0).astype(np.float32)


def panels(image: np.ndarray, heatmap: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """The figure users expect: 8 labelled panels side by side -> (16 + H + bands, 8 W + gaps, 3) uint8.

    Target, Ref1, Ref2 in grey; Target-Ref1, Target-Ref2 and the double detection
    (:func:`double_detection`) signed (black 0, warm where Target is brighter, cool
    where darker), each auto-contrasted with its stretch in its label ("Target-Ref1
    (x6.3)": shown 6.3 times stronger than the grey panels); the heatmap (0..1, a
    colour bar below it); and the RGB composite (R = Target, G = Ref1, B = Ref2, their
    differences stretched, a legend below it: red is what only Target holds).

    Args:
        image: (3+, H, W) Target, Ref1, Ref2 in 0..255 (as the runtime reads them).
        heatmap: (H, W) defect probabilities in 0..1.
        mask: the (H, W) boolean ground truth, or None; its outline is drawn in green on
            Target and on the heatmap.

    Returns:
        The figure as an (h, w, 3) uint8 array.

    Example:
        >>> figure = panels(image, session.run(image).heatmap)
        >>> figure.shape[1] == 8 * image.shape[2] + 7 * 4
        True
    """
    target, ref1, ref2 = (np.asarray(c, np.float32) for c in image[:3])
    diff1, diff2 = target - ref1, target - ref2
    shown_target, shown_heatmap = grey(target), colormap(heatmap)
    if mask is not None:
        shown_target = outline(shown_target, mask, TRUTH_COLOUR)
        shown_heatmap = outline(shown_heatmap, mask, TRUTH_COLOUR)
    named = [("Target", shown_target), ("Ref1", grey(ref1)), ("Ref2", grey(ref2))]
    for name, diff in (("Target-Ref1", diff1), ("Target-Ref2", diff2),
                       ("double detection", double_detection(diff1, diff2))):
        stretched, gain = auto_contrast(diff, full_scale=255.0, max_gain=MAX_DIFFERENCE_GAIN)
        named.append((with_gain(name, gain), diverging(stretched)))
    rgb, gain = composite(np.stack([target, ref1, ref2]), full_scale=255.0, max_gain=MAX_DIFFERENCE_GAIN)
    named += [("heatmap", shown_heatmap), (with_gain("RGB composite", gain), rgb)]
    width = target.shape[1]
    below = [None] * 6 + [colour_bar(width), legend(COMPOSITE_LEGEND, width)]
    return labelled_panels(named, below)


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
                          accepted_layouts=("CHW", "HWC"), source_range=(0.0, 255.0), scale=1.0 / 255.0,
                          color_order=COLOR_ORDER)

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
                mask = mask_path(image)
                if not mask.is_file():
                    raise InvalidInputError(f"defect image {image} has no mask; expected {mask}")
                items.append(LabelledImage(image, mask))
        if not items:
            raise InvalidInputError(f"no images under {split_dir}")
        return items

    def read_label(self, item: LabelledImage, image_hw: tuple[int, int]) -> np.ndarray:
        return read_mask(item.label, *image_hw)

    def find_label(self, image: Path) -> LabelledImage | None:
        """The mask of a defect image of a dataset (:func:`mask_path`) when that file exists, else None."""
        mask = mask_path(Path(image))
        return LabelledImage(Path(image), mask) if mask.is_file() else None

    def metrics(self, results: Sequence[Result], labels: Sequence[Any]) -> dict[str, float]:
        return segmentation_aurocs(np.stack(labels), np.stack([r.heatmap for r in results]))

    def agreement(self, results: Sequence[Result], reference: Sequence[Result]) -> dict[str, float]:
        """Decision agreement, pixel F1 of the masks and score shifts (:func:`heatmap_agreement`)."""
        return heatmap_agreement(np.stack([r.mask for r in results]), np.stack([r.mask for r in reference]),
                                 np.array([r.score for r in results]), np.array([r.score for r in reference]))

    def describe(self, summaries: Sequence[dict[str, Any]]) -> str:
        return f"{sum(int(row['defect_pixels']) > 0 for row in summaries)} with defects"

    def write_outputs(self, result: Result, image: np.ndarray, out_dir: Path, stem: str, *,
                      visualize: bool, label: np.ndarray | None = None) -> list[Path]:
        """``<stem>_heatmap.tiff``, ``<stem>_overlay.png``; with ``visualize`` also ``<stem>_panels.png``
        (:func:`panels`, the ground truth ``label`` outlined when given)."""
        return write_heatmap_outputs(result, image, out_dir, stem, panels if visualize else None, label)


def decode_heatmaps(outputs: dict[str, np.ndarray], post: Postprocess, *, sources: Sequence[str],
                    threshold: float | None) -> list[HeatmapResult]:
    """The heatmap channel of the heatmap output, clipped to its range, as one result per image."""
    assert isinstance(post, HeatmapPost)
    output = outputs[post.output]
    threshold = post.threshold if threshold is None else threshold
    heatmaps = np.clip(output[:, post.channel], *post.range)
    return [HeatmapResult.from_heatmap(h, threshold, s) for h, s in zip(heatmaps, sources)]


def write_heatmap_outputs(result: Result, image: np.ndarray, out_dir: Path, stem: str, figure=None,
                          mask: np.ndarray | None = None) -> list[Path]:
    """``<stem>_heatmap.tiff``, ``<stem>_overlay.png`` (channel 0 in grey, the defects in red) and, when
    ``figure`` is given, ``<stem>_panels.png``: ``figure(image, heatmap, mask)``."""
    assert isinstance(result, HeatmapResult)
    written = [write_tiff(out_dir / f"{stem}_heatmap.tiff", result.heatmap),
               write_png(out_dir / f"{stem}_overlay.png", overlay(image[0], result.heatmap, result.threshold))]
    if figure is not None:
        written.append(write_png(out_dir / f"{stem}_panels.png", figure(image, result.heatmap, mask)))
    return written


FAMILY = FAMILIES.register(NAME)(Brn())
