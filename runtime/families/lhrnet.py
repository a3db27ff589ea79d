"""``lhrnet``, runtime part: a part and the slot it fits into, and their angle, in any image (torch-free).

Input contract: an RGB image of any size from 8x8 pixels up (3 or 4 channels,
CHW or HWC, 0..255), letterboxed into 256x512 (bilinear, centred, padding 255)
with a validity mask as a fourth channel, scaled to 0..1. The full graph decodes
in the graph and returns ``points`` (B, 2, 2) x, y in input pixels (slot, part),
``scores`` (B, 2) and ``angle`` (B,) degrees; :meth:`Lhrnet.decode` undoes the
letterbox, so a :class:`~runtime.KeypointsResult` holds source pixels::

    result = runtime.Session("bundles/lhrnet").run("scene.png")
    result.points["slot"], result.points["part"]   # (x, y) in the image's pixels
    result.scores["part"], result.found("part")    # peak score, and whether it passed the threshold
    result.angle                                   # the part's rotation relative to the slot, degrees

``python -m runtime.infer`` writes per image ``<stem>_points.png`` (the image with
both points and the angle) and, with ``--visualize``, ``<stem>_letterbox.png``
(:func:`letterbox_figure`: the same, above the 256x512 graph input with its
padding hatched); the points themselves are in ``summary.csv``.

Dataset format (a user's own data trains and evaluates the same way)::

    <root>/images/...                      the images (PNG, JPEG or TIFF, any size, RGB)
    <root>/train.json, <root>/valid.json   one file per split:
    {"format": "lhrnet-keypoints/1", "points": ["slot", "part"],
     "images": [{"file": "images/000123.png", "width": 640, "height": 480,
                 "slot": [x, y], "part": [x, y], "angle": degrees,
                 "symmetry": 1, "kinds": ["decoys"]}, ...]}

Points are in the image's pixels, continuous (0 is the left/top edge of the
first pixel, whose centre is 0.5). ``angle`` is the part's rotation relative to
the slot, degrees in (-180, 180]; ``symmetry`` (default 1) is the rotational
symmetry order of the outline, so angles are compared modulo 360 / symmetry;
``kinds`` (optional) tags the scene for per-kind error reports. Metrics:
:func:`runtime.core.keypoint_metrics` (distances in source pixels).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from runtime._errors import BackendError, InvalidInputError
from runtime._family import LabelledImage, RuntimeFamily
from runtime._imageio import ColorOrder, write_png
from runtime._letterbox import Transform, letterbox
from runtime._manifest import KeypointsPost, Postprocess, Preprocess
from runtime._metrics import HIT_RADII, keypoint_agreement, keypoint_metrics
from runtime._registry import FAMILIES
from runtime._results import KeypointsResult, Result

__all__ = ["FAMILY", "FORMAT", "HEIGHT", "KeypointLabel", "Lhrnet", "MIN_SIZE", "NAME", "PAD_VALUE", "POINTS",
           "VARIANT", "WIDTH", "canvas_panel", "draw_keypoints", "letterbox_figure", "read_entry", "read_split"]

NAME = "lhrnet"
#: the keypoints, in the order of every K axis
POINTS = ("slot", "part")
HEIGHT, WIDTH = 256, 512
PAD_VALUE = 255.0
#: the fewest source pixels on a side: a smaller image is blown up 32x or more to fill the 256 rows,
#: and holds no structure left to localise at the heads' 4-pixel stride (refused, not guessed at)
MIN_SIZE = 8
VARIANT = "256x512"
FORMAT = "lhrnet-keypoints/1"
_SPLITS = ("train", "valid")
_ENTRY_KEYS = {"file", "width", "height", "slot", "part", "angle"}
_OPTIONAL_KEYS = {"symmetry", "kinds"}
#: drawing colours of the keypoints (RGB)
COLOURS = {"slot": (40, 220, 60), "part": (255, 150, 20)}


@dataclass(frozen=True)
class KeypointLabel:
    """The truth of one image: the points (K, 2) in source pixels, the angle and what the scene holds."""

    points: np.ndarray
    angle: float
    symmetry: int = 1
    kinds: tuple[str, ...] = ()
    width: int = 0
    height: int = 0


def read_split(root: str | Path, split: str) -> list[tuple[Path, KeypointLabel]]:
    """The images and labels of ``<root>/<split>.json``, validated.

    Raises:
        InvalidInputError: naming the file, the entry and the field: a missing or unreadable
            file, a wrong format tag or point list, missing or unknown fields, values that are
            not finite numbers, points outside their image, a missing image file.
    """
    root = Path(root)
    path = root / f"{split}.json"
    if not path.is_file():
        raise InvalidInputError(f"no {split!r} split in {root}; expected {path} (format {FORMAT}, see "
                                f"runtime.families.lhrnet)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InvalidInputError(f"{path}: expected a JSON object with \"format\": \"{FORMAT}\"")
    if data.get("points") != list(POINTS):
        raise InvalidInputError(f"{path}: \"points\" must be {list(POINTS)}, got {data.get('points')!r}")
    images = data.get("images")
    if not isinstance(images, list) or not images:
        raise InvalidInputError(f"{path}: \"images\" must be a non-empty list")
    return [_entry(root, path, i, entry) for i, entry in enumerate(images)]


def read_entry(root: str | Path, split: str, index: int, entry: Any) -> tuple[Path, KeypointLabel]:
    """One entry of ``<root>/<split>.json`` (its ``images[index]``), validated as :func:`read_split` does.

    :func:`read_split` stops at the first bad entry; a dataset check calls this per entry to list them all.

    Raises:
        InvalidInputError: naming the split file, the entry and the field (see :func:`read_split`).
    """
    root = Path(root)
    return _entry(root, root / f"{split}.json", index, entry)


def _entry(root: Path, path: Path, index: int, entry: Any) -> tuple[Path, KeypointLabel]:
    where = f"{path} image {index}"
    if not isinstance(entry, dict):
        raise InvalidInputError(f"{where}: expected an object, got {type(entry).__name__}")
    missing, unknown = _ENTRY_KEYS - set(entry), set(entry) - _ENTRY_KEYS - _OPTIONAL_KEYS
    if missing or unknown:
        raise InvalidInputError(f"{where}: missing fields {sorted(missing)}, unknown fields {sorted(unknown)}; "
                                f"expected {sorted(_ENTRY_KEYS)} and optionally {sorted(_OPTIONAL_KEYS)}")
    file = entry["file"]
    if not isinstance(file, str) or not file or Path(file).is_absolute() or ".." in Path(file).parts:
        raise InvalidInputError(f"{where}: \"file\" must be a path inside {root}, got {file!r}")
    image = root / file
    if not image.is_file():
        raise InvalidInputError(f"{where}: image file not found: {image}")
    width, height = (_integer(entry[k], f"{where} \"{k}\"", low=1) for k in ("width", "height"))
    points = np.array([_point(entry[name], f"{where} \"{name}\"", width, height) for name in POINTS])
    angle = _number(entry["angle"], f"{where} \"angle\"")
    symmetry = _integer(entry.get("symmetry", 1), f"{where} \"symmetry\"", low=1)
    kinds = entry.get("kinds", [])
    if not isinstance(kinds, list) or not all(isinstance(k, str) for k in kinds):
        raise InvalidInputError(f"{where}: \"kinds\" must be a list of strings, got {kinds!r}")
    return image, KeypointLabel(points, angle, symmetry, tuple(kinds), width, height)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidInputError(f"{where} must be a finite number, got {value!r}")
    return float(value)


def _integer(value: Any, where: str, *, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise InvalidInputError(f"{where} must be an integer >= {low}, got {value!r}")
    return value


def _point(value: Any, where: str, width: int, height: int) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise InvalidInputError(f"{where} must be [x, y], got {value!r}")
    x, y = (_number(v, where) for v in value)
    if not (0 <= x <= width and 0 <= y <= height):
        raise InvalidInputError(f"{where} = [{x}, {y}] lies outside the {width}x{height} image")
    return x, y


def draw_keypoints(image: np.ndarray, points: dict[str, Sequence[float]], *, angle: float | None = None,
                   truth: dict[str, Sequence[float]] | None = None, caption: str = "",
                   names: bool = False) -> np.ndarray:
    """(H, W, 3) uint8 ``image`` with each point as a cross in a circle in its colour (truth as thin circles).

    The angle, when given, is drawn from the part: a thin white line at 0 degrees (the slot's
    orientation) and a line in the part's colour at ``angle`` (counter-clockwise as displayed).
    ``names`` writes each point's name beside it.
    """
    from PIL import Image, ImageDraw

    figure = Image.fromarray(np.ascontiguousarray(image, np.uint8))
    draw = ImageDraw.Draw(figure)
    size = max(4.0, 0.015 * max(figure.size))
    for name, (x, y) in (truth or {}).items():
        draw.ellipse([x - 1.6 * size, y - 1.6 * size, x + 1.6 * size, y + 1.6 * size], outline=(255, 255, 255))
    for name, (x, y) in points.items():
        colour = COLOURS.get(name, (255, 0, 0))
        draw.ellipse([x - size, y - size, x + size, y + size], outline=colour, width=2)
        draw.line([x - size, y, x + size, y], fill=colour, width=1)
        draw.line([x, y - size, x, y + size], fill=colour, width=1)
        if names:
            draw.text((x + 1.2 * size, y + 0.6 * size), name, fill=colour, stroke_width=1, stroke_fill=(0, 0, 0))
    if angle is not None and "part" in points:
        x, y = points["part"]
        radians = math.radians(angle)
        draw.line([x, y, x + 3 * size, y], fill=(255, 255, 255), width=1)
        draw.line([x, y, x + 3 * size * math.cos(radians), y - 3 * size * math.sin(radians)],
                  fill=COLOURS["part"], width=2)
    if caption:
        draw.text((4, 4), caption, fill=(255, 255, 255))
    return np.asarray(figure)


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C, h, w) channels in 0..255 -> (h, w, 3) uint8 of the first three."""
    return np.clip(np.round(np.moveaxis(np.asarray(image[:3], np.float32), 0, -1)), 0, 255).astype(np.uint8)


def _describe_points(result: KeypointsResult) -> str:
    parts = [f"{name} ({x:.1f}, {y:.1f}) score {result.scores[name]:.2f}"
             + ("" if result.found(name) else " (below threshold)") for name, (x, y) in result.points.items()]
    if result.angle is not None:
        parts.append(f"angle {result.angle:.1f} deg")
    return ", ".join(parts)


#: the box the source panel of :func:`letterbox_figure` is scaled into (width, height), display only
_SOURCE_BOX = (2 * WIDTH, 2 * HEIGHT)
_HATCH = np.array([70, 110, 200], np.float32)  # the padding's stripes (RGB)
_IMAGE_EDGE = (230, 40, 200)  # the outline of the image on the canvas


def letterbox_figure(image: np.ndarray, result: KeypointsResult, pre: Preprocess) -> np.ndarray:
    """What the model saw and what it found: an (H, W, 3) uint8 figure in two labelled panels, one above the other.

    Top: the source image with both points and the angle (in source pixels, as ``result``
    holds them), scaled for display to fit 1024x512 (pixels enlarged without smoothing).
    Bottom: the graph's input canvas exactly as ``pre`` letterboxes the image (its RGB
    channels before scaling), the padding hatched in blue, the image's outline in
    magenta, and the points mapped onto it (``Transform.to_input``).

    Args:
        image: the source channels (C, h, w) in 0..255, as :func:`runtime.core.read_source` returns them.
        result: the image's result.
        pre: the letterbox pre-processing the points were found with (``manifest.preprocess``).

    Example:
        >>> figure = letterbox_figure(image, session.run(image), session.manifest.preprocess)
    """
    from PIL import Image, ImageDraw, ImageFont

    rgb = _rgb(image)
    h, w = rgb.shape[:2]
    d = min(_SOURCE_BOX[0] / w, _SOURCE_BOX[1] / h)
    size = (max(1, round(w * d)), max(1, round(h * d)))
    shown = np.asarray(Image.fromarray(rgb).resize(size, Image.NEAREST if d >= 1 else Image.BILINEAR))
    source = draw_keypoints(shown, {n: (x * d, y * d) for n, (x, y) in result.points.items()}, angle=result.angle,
                            names=True)
    canvas, transform, located = canvas_panel(image, result, pre)
    captions = [
        [f"source {w}x{h} px", _describe_points(result)],
        [f"graph input {pre.width}x{pre.height}: letterbox scale {transform.scale_x:.4g}, image "
         f"{transform.resized_width}x{transform.resized_height} at ({transform.pad_x}, {transform.pad_y}) "
         f"outlined, padding ({pre.pad_value:g}) hatched",
         "points: " + ", ".join(f"{n} ({x:.1f}, {y:.1f})" for n, (x, y) in located.items())],
    ]
    panels = [source, canvas]
    font = ImageFont.load_default()
    line, margin = 14, 6
    width = max(max(p.shape[1] for p in panels), 560) + 2 * margin
    height = sum(p.shape[0] + line * len(c) + 2 * margin for p, c in zip(panels, captions)) + margin
    figure = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(figure)
    y = margin
    for panel, caption in zip(panels, captions):
        for text in caption:
            draw.text((margin, y), text, fill=(0, 0, 0), font=font)
            y += line
        y += margin // 2
        figure.paste(Image.fromarray(panel), (margin, y))
        y += panel.shape[0] + margin + margin // 2
    return np.asarray(figure)


def canvas_panel(image: np.ndarray, result: KeypointsResult, pre: Preprocess
                 ) -> tuple[np.ndarray, Transform, dict[str, tuple[float, float]]]:
    """The graph's input canvas as a picture: (pre.height, pre.width, 3) uint8, the padding hatched, the
    image outlined and the points drawn where the graph found them; with the letterbox transform and
    those points in canvas pixels."""
    from PIL import Image, ImageDraw

    if pre.resize != "letterbox" or pre.pad_value is None:
        raise InvalidInputError(f"a letterbox figure needs a letterbox pre-processing, got resize={pre.resize!r}")
    canvas, valid, transform = letterbox(np.asarray(image[:3], np.float32), pre.height, pre.width,
                                         float(pre.pad_value))
    shown = np.moveaxis(canvas, 0, -1)
    rows, cols = np.mgrid[0:pre.height, 0:pre.width]
    stripes = (valid == 0) & (((rows + cols) // 6) % 2 == 0)
    shown[stripes] = 0.5 * shown[stripes] + 0.5 * _HATCH
    picture = Image.fromarray(np.clip(np.round(shown), 0, 255).astype(np.uint8))
    # Just outside the image: no image pixel is covered, and an edge on the canvas border is not drawn.
    ImageDraw.Draw(picture).rectangle([transform.pad_x - 1, transform.pad_y - 1,
                                       transform.pad_x + transform.resized_width,
                                       transform.pad_y + transform.resized_height], outline=_IMAGE_EDGE)
    located = {name: tuple(float(v) for v in transform.to_input(np.asarray(point, np.float64)))
               for name, point in result.points.items()}
    return draw_keypoints(np.asarray(picture), located, angle=result.angle, names=True), transform, located


class Lhrnet(RuntimeFamily):
    name = NAME
    description = "Lite-HRNet-18 + LiteFPN: a part, the slot it fits into, and their relative angle"
    result_type = KeypointsResult
    summary_fields = ("slot_x", "slot_y", "slot_score", "part_x", "part_y", "part_score", "angle")
    selection_metric = ("hit@5px", "max")
    evaluation_split = "valid"
    metric_directions = {"mae": "min", "rmse": "min", **{f"hit@{r}px": "max" for r in HIT_RADII},
                         **{f"mae_{p}": "min" for p in POINTS}, "angle_error": "min"}

    def variants(self) -> Sequence[str]:
        return (VARIANT,)

    def input_spec(self, variant: str) -> Preprocess:
        return Preprocess(resize="letterbox", height=HEIGHT, width=WIDTH, read_channels=(0, 1, 2),
                          channel_names=("R", "G", "B", "valid"), append_mask=True, accepted_channels=(3, 4),
                          accepted_layouts=("CHW", "HWC"), source_range=(0.0, 255.0), scale=1.0 / 255.0,
                          pad_value=PAD_VALUE, min_size=MIN_SIZE, color_order=ColorOrder.RGB)  # ordinary photos

    def postprocess_spec(self, variant: str) -> Postprocess:
        return KeypointsPost(points=POINTS, points_output="points", scores_output="scores", angle_output="angle",
                             score_threshold=0.1)

    def decode(self, outputs: dict[str, np.ndarray], transforms: Sequence[Transform], post: Postprocess, *,
               sources: Sequence[str], threshold: float | None = None) -> list[Result]:
        assert isinstance(post, KeypointsPost)
        threshold = post.score_threshold if threshold is None else threshold
        points, scores = outputs[post.points_output], outputs[post.scores_output]
        angles = outputs[post.angle_output].reshape(len(points)) if post.angle_output else None
        for name, values in ((post.points_output, points), (post.scores_output, scores),
                             (post.angle_output, angles)):
            if values is not None and not np.isfinite(values).all():
                bad = [src for src, v in zip(sources, values) if not np.isfinite(v).all()]
                raise BackendError(f"the graph returned non-finite {name!r} for {', '.join(bad)}; expected finite "
                                   f"values (a broken or wrongly quantized graph)")
        results = []
        for i, (transform, source) in enumerate(zip(transforms, sources)):
            located = transform.to_source(points[i])
            results.append(KeypointsResult(
                source, {name: (float(x), float(y)) for name, (x, y) in zip(post.points, located)},
                {name: float(s) for name, s in zip(post.points, scores[i])},
                None if angles is None else float(angles[i]), float(threshold)))
        return results

    def labelled_images(self, root: Path, split: str) -> list[LabelledImage]:
        return [LabelledImage(image, label) for image, label in read_split(root, split)]

    def read_label(self, item: LabelledImage, image_hw: tuple[int, int]) -> KeypointLabel:
        label = item.label
        if (label.height, label.width) != tuple(image_hw):
            raise InvalidInputError(f"{item.image} is {image_hw[1]}x{image_hw[0]} but its label says "
                                    f"{label.width}x{label.height}")
        return label

    def metrics(self, results: Sequence[Result], labels: Sequence[Any]) -> dict[str, float]:
        predicted = np.array([[r.points[name] for name in POINTS] for r in results])
        truth = np.stack([label.points for label in labels])
        angles = [r.angle for r in results]
        with_angle = all(a is not None for a in angles)
        return keypoint_metrics(predicted, truth, POINTS,
                                predicted_angle=np.array(angles, np.float64) if with_angle else None,
                                true_angle=np.array([label.angle for label in labels]),
                                symmetry=np.array([label.symmetry for label in labels]))

    def agreement(self, results: Sequence[Result], reference: Sequence[Result]) -> dict[str, float]:
        """Points found alike, how far they moved and the angle's change (:func:`keypoint_agreement`)."""
        def arrays(rs):
            angles = [r.angle for r in rs]
            return (np.array([[r.points[n] for n in POINTS] for r in rs]),
                    np.array([[r.found(n) for n in POINTS] for r in rs]),
                    None if any(a is None for a in angles) else np.array(angles, np.float64))

        (points, found, angles), (ref_points, ref_found, ref_angles) = arrays(results), arrays(reference)
        return keypoint_agreement(points, ref_points, found, ref_found, angles, ref_angles)

    def write_outputs(self, result: Result, image: np.ndarray, out_dir: Path, stem: str, *,
                      visualize: bool) -> list[Path]:
        """``<stem>_points.png`` (the source image, both points, the angle); with ``visualize`` also
        ``<stem>_letterbox.png`` (:func:`letterbox_figure`). The values are in the CLI's summary.csv."""
        assert isinstance(result, KeypointsResult)
        written = [write_png(out_dir / f"{stem}_points.png",
                             draw_keypoints(_rgb(image), result.points, angle=result.angle))]
        if visualize:
            figure = letterbox_figure(image, result, self.input_spec(VARIANT))
            written.append(write_png(out_dir / f"{stem}_letterbox.png", figure))
        return written


FAMILY = FAMILIES.register(NAME)(Lhrnet())
