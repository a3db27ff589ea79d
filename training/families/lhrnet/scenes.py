"""Synthetic assembly scenes for ``lhrnet``: a slot cut into a textured surface, its part elsewhere, exact labels.

A scene is drawn with numpy only, vectorised (on the 2-core EPYC development
box, one core: about 11 ms for 512x171, 17 ms for 512x256, 36 ms for 512x512;
about 90 ms for the default mix of sizes, 0.7 Mpx on average), in this order:

* a source size: a height from ``heights`` and an aspect ratio (width /
  height) from ``aspects``, so a 256x512 letterbox pads above and below (wider
  than 2:1), left and right (narrower), or not at all (exactly 2:1);
* a textured background (:class:`Background`): brushed metal, PCB-like traces,
  moulded plastic or woven fabric, lit from a random direction;
* decoy slots (probability ``decoys``, 1 to ``max_decoys``): the same outline at
  another size (x0.6..0.78 or x1.25..1.5) or another outline at about the same size;
* the slot: an industrial outline (:class:`Outline`) cut into the surface, with
  a darker floor, ambient occlusion along its walls, the shadow the wall on the
  light's side casts onto the floor, and a bevel shaded by the light (the wall
  facing the light is the lit edge); with probability ``highlighted_edge`` its
  rim also carries a bright specular line;
* the part: the same outline scaled by ``part_scale`` (0.9..1.1) and turned by
  a small angle (``+-part_angle``; with probability ``rotated_part`` by
  ``part_angle..rotated_part_angle`` either way), in its own material, raised:
  a soft drop shadow away from the light and a bevel lit on the light's side;
* a lighting gradient and hotspot, value noise ("Perlin") and heavy sensor noise
  with probability ``noise``, optical blur and sensor noise.

Labels (the contract of :meth:`Scene.label`)
    * Coordinates are continuous source pixels, x right and y down: 0 is the
      left/top edge of the first pixel, a pixel centre is at ``i + 0.5`` (the
      convention of :class:`runtime.core.Transform`).
    * The centre of an outline is the centroid of its area. Every outline is a
      polygon (arcs as 24 chords per quarter turn; at the largest sizes a chord
      strays < 0.1 px from its arc) whose centroid (shoelace formula) is put at
      the placement's centre, so the label is that centroid exactly. The polygon
      is drawn by exact area coverage along x with 8 sub-rows per pixel along y;
      the coverage mask's centroid matches the label within 0.05 px (worst
      case: long edges parallel to the rows), typically 0.005 px.
    * ``angle`` is the part's rotation relative to the slot in degrees,
      counter-clockwise as the image is displayed (y down: turning (1, 0) by
      +90 gives (0, -1), pointing up). Turning the part about its centre by
      ``-angle`` (clockwise by ``angle``) aligns it with the slot.
    * ``symmetry`` is the order n of the outline's rotational symmetry: 2 for
      the rectangles (rounded, chamfered; never square) and the circle with two
      flats, 1 for the keyed, D-, L- and T-shapes. An n-fold outline looks the
      same after 360/n degrees, so its angle is only defined modulo 360/n;
      ``angle`` is reduced into the principal range (-180/n, 180/n]
      (:func:`relative_angle`), and metrics compare angles modulo 360/n.
    * Both outlines (and their shadows) lie at least ``margin`` inside the
      image, and no two outlines (slot, part, decoys) overlap: their
      circumscribed circles are apart by 15 % of the radii.
    * ``kinds``: what makes the scene hard, among ``"decoys"``, ``"rotated_part"``,
      ``"noise"`` (value noise and heavy sensor noise), ``"highlighted_edge"``;
      ``["plain"]`` when none applies.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from runtime.core import InvalidInputError
from training.families.lhrnet.augment import gaussian_blur

__all__ = ["Background", "Outline", "Placement", "Scene", "SceneKind", "SceneOptions", "Shape", "make_shape",
           "polygon_coverage", "relative_angle", "render_scene"]


class Outline(str, enum.Enum):
    """The industrial outlines a slot (and its part) can have."""

    ROUNDED_RECT = "rounded_rect"
    CHAMFERED_RECT = "chamfered_rect"
    KEYED = "keyed"
    D_SHAPE = "d_shape"
    CIRCLE_FLATS = "circle_flats"
    L_SHAPE = "l_shape"
    T_SHAPE = "t_shape"


class Background(str, enum.Enum):
    """The surface the slot is cut into."""

    BRUSHED_METAL = "brushed_metal"
    PCB = "pcb"
    PLASTIC = "plastic"
    FABRIC = "fabric"


class SceneKind(str, enum.Enum):
    """Tags of a scene, for error-by-kind reports."""

    PLAIN = "plain"
    DECOYS = "decoys"
    ROTATED_PART = "rotated_part"
    NOISE = "noise"
    HIGHLIGHTED_EDGE = "highlighted_edge"


@dataclass(frozen=True)
class SceneOptions:
    """How scenes are drawn (SPEC rates by default).

    Attributes:
        heights: source heights to draw from (pixels).
        aspects: source aspect ratios (width / height) to draw from.
        max_width: a wider source is shrunk (aspect kept) to this width.
        size: a fixed (height, width) instead of ``heights`` and ``aspects``.
        outlines: the outlines a slot may have.
        backgrounds: the surfaces.
        shape_size: (min, max) circumradius of the slot, as a fraction of the image's shorter side.
        part_scale: (min, max) size of the part relative to the slot.
        part_angle: largest rotation of the part relative to the slot, degrees, either way.
        rotated_part: probability of a strongly rotated part instead.
        rotated_part_angle: largest rotation of a strongly rotated part (at least ``part_angle``).
        decoys: probability of decoy slots.
        max_decoys: most decoys in one scene (at least 1 when there are decoys).
        highlighted_edge: probability of a specular line along the slot's rim.
        noise: probability of value noise and heavy sensor noise.
        lighting: strongest lighting gradient (relative brightness change from the centre to the edge).
        blur: (min, max) sigma of the optical blur, pixels.
        sensor_noise: (min, max) standard deviation of the sensor noise, grey levels.
        heavy_noise: (min, max) standard deviation of the sensor noise of a ``noise`` scene.
        margin: outlines and shadows keep this fraction of the shorter side from the border.
    """

    heights: tuple[int, ...] = (240, 300, 360, 480, 600, 720, 960, 1080)
    aspects: tuple[float, ...] = (1.0, 1.25, 4 / 3, 1.5, 16 / 9, 2.0, 2.25, 2.5, 3.0)
    max_width: int = 1920
    size: tuple[int, int] | None = None
    outlines: tuple[Outline, ...] = tuple(Outline)
    backgrounds: tuple[Background, ...] = tuple(Background)
    shape_size: tuple[float, float] = (0.08, 0.15)
    part_scale: tuple[float, float] = (0.9, 1.1)
    part_angle: float = 15.0
    rotated_part: float = 0.1
    rotated_part_angle: float = 60.0
    decoys: float = 0.3
    max_decoys: int = 3
    highlighted_edge: float = 0.1
    noise: float = 0.2
    lighting: float = 0.3
    blur: tuple[float, float] = (0.0, 1.0)
    sensor_noise: tuple[float, float] = (0.5, 3.0)
    heavy_noise: tuple[float, float] = (6.0, 14.0)
    margin: float = 0.03

    def __post_init__(self) -> None:
        # Accept plain strings for the enums (a config file, a CLI) and lists for tuples.
        object.__setattr__(self, "outlines", tuple(_enum(Outline, o, "outline") for o in self.outlines))
        object.__setattr__(self, "backgrounds", tuple(_enum(Background, b, "background") for b in self.backgrounds))
        for name in ("heights", "aspects", "shape_size", "part_scale", "blur", "sensor_noise", "heavy_noise"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.size is not None:
            object.__setattr__(self, "size", tuple(self.size))
        self._validate()

    def _validate(self) -> None:
        if not self.outlines or not self.backgrounds:
            raise InvalidInputError("scene options need at least one outline and one background")
        if self.size is not None:
            if len(self.size) != 2 or not all(isinstance(v, int) and v >= _MIN_SIDE for v in self.size):
                raise InvalidInputError(f"scene size must be (height, width) with both >= {_MIN_SIDE}, "
                                        f"got {self.size!r}")
        else:
            if not self.heights or not all(isinstance(h, int) and h >= _MIN_SIDE for h in self.heights):
                raise InvalidInputError(f"scene heights must be integers >= {_MIN_SIDE}, got {self.heights!r}")
            if not self.aspects or not all(0.25 <= a <= 8 for a in self.aspects):
                raise InvalidInputError(f"scene aspects (width / height) must lie in 0.25..8, got {self.aspects!r}")
            if self.max_width < _MIN_SIDE:
                raise InvalidInputError(f"scene max_width must be >= {_MIN_SIDE}, got {self.max_width!r}")
        for name in ("rotated_part", "decoys", "highlighted_edge", "noise"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InvalidInputError(f"scene option {name} is a probability in 0..1, got {value!r}")
        _check_range(self.shape_size, "shape_size", 0.02, 0.2)
        _check_range(self.part_scale, "part_scale", 0.5, 1.5)
        _check_range(self.blur, "blur", 0.0, 10.0)
        _check_range(self.sensor_noise, "sensor_noise", 0.0, 64.0)
        _check_range(self.heavy_noise, "heavy_noise", 0.0, 64.0)
        if not 0.0 <= self.part_angle <= self.rotated_part_angle <= 180.0:
            raise InvalidInputError(f"scene angles need 0 <= part_angle <= rotated_part_angle <= 180, got "
                                    f"{self.part_angle!r} and {self.rotated_part_angle!r}")
        if self.max_decoys < 1:
            raise InvalidInputError(f"scene max_decoys must be >= 1, got {self.max_decoys!r}")
        if not 0.0 <= self.lighting <= 0.9:
            raise InvalidInputError(f"scene lighting must be in 0..0.9, got {self.lighting!r}")
        if not 0.0 <= self.margin <= 0.1:
            raise InvalidInputError(f"scene margin must be in 0..0.1 of the shorter side, got {self.margin!r}")

    def to_dict(self) -> dict[str, Any]:
        """The options as JSON-ready values (enums as their strings)."""
        return {
            name: ([m.value for m in value] if name in ("outlines", "backgrounds")
                   else list(value) if isinstance(value, tuple) else value)
            for name, value in self.__dict__.items()
        }


_MIN_SIDE = 64


def _enum(kind: type[enum.Enum], value: Any, what: str) -> Any:
    try:
        return kind(value)
    except ValueError:
        raise InvalidInputError(f"unknown {what} {value!r}; expected one of {[m.value for m in kind]}") from None


def _check_range(value: tuple[float, ...], name: str, low: float, high: float) -> None:
    if len(value) != 2 or not low <= value[0] <= value[1] <= high:
        raise InvalidInputError(f"scene option {name} must be (min, max) with {low} <= min <= max <= {high}, "
                                f"got {value!r}")


# --- outlines ----------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Shape:
    """An outline in its own frame: a polygon with its area centroid at (0, 0) and circumradius 1.

    Attributes:
        outline: which outline it is.
        vertices: (N, 2) x, y (y down, like the image), the polygon's corners in order.
        symmetry: the order of its rotational symmetry (it looks the same after 360 / symmetry degrees).
    """

    outline: Outline
    vertices: np.ndarray
    symmetry: int


@dataclass(frozen=True, eq=False)
class Placement:
    """A :class:`Shape` in an image: centred at ``centre``, turned by ``rotation`` degrees, ``radius`` pixels.

    ``rotation`` is counter-clockwise as displayed; ``radius`` is the outline's
    circumradius about its centre (the centroid of its area), in pixels.
    """

    shape: Shape
    centre: tuple[float, float]
    rotation: float
    radius: float

    def vertices(self) -> np.ndarray:
        """(N, 2) polygon corners in image pixels (continuous coordinates)."""
        return _rotate(self.shape.vertices, self.rotation) * self.radius + np.asarray(self.centre, np.float64)


def relative_angle(degrees: float, symmetry: int = 1) -> float:
    """``degrees`` reduced modulo 360 / ``symmetry`` into (-180 / symmetry, 180 / symmetry].

    Example:
        >>> relative_angle(350.0), relative_angle(100.0, 2), relative_angle(-90.0, 2)
        (-10.0, -80.0, 90.0)
    """
    period = 360.0 / symmetry
    half = period / 2.0
    if -half < degrees <= half:
        return float(degrees) + 0.0  # already reduced: returned exactly
    reduced = half - math.fmod(half - degrees, period)
    if reduced > half:
        reduced -= period
    elif reduced <= -half:
        reduced += period
    return reduced + 0.0  # no -0.0


def _rotate(points: np.ndarray, degrees: float) -> np.ndarray:
    # Counter-clockwise as displayed with y down: (x, y) -> (x c + y s, -x s + y c).
    theta = math.radians(degrees)
    c, s = math.cos(theta), math.sin(theta)
    return np.stack([points[:, 0] * c + points[:, 1] * s, -points[:, 0] * s + points[:, 1] * c], axis=1)


_ARC_STEPS = 24  # chords per quarter turn


def _arc(cx: float, cy: float, r: float, start: float, end: float) -> list[tuple[float, float]]:
    steps = max(2, int(math.ceil(abs(end - start) / 90.0 * _ARC_STEPS)))
    angles = np.radians(np.linspace(start, end, steps + 1))
    return list(zip(cx + r * np.cos(angles), cy + r * np.sin(angles)))


def _rounded_rect(rng: np.random.Generator) -> tuple[list, int]:
    a = 1.0
    b = a / rng.uniform(1.3, 2.2)
    r = rng.uniform(0.1, 0.6) * b
    corners = [(a - r, b - r, 0), (-a + r, b - r, 90), (-a + r, -b + r, 180), (a - r, -b + r, 270)]
    points = [p for cx, cy, start in corners for p in _arc(cx, cy, r, start, start + 90)]
    return points, 2


def _chamfered_rect(rng: np.random.Generator) -> tuple[list, int]:
    a = 1.0
    b = a / rng.uniform(1.25, 2.0)
    c = rng.uniform(0.15, 0.45) * b
    return [(a, -b + c), (a, b - c), (a - c, b), (-a + c, b), (-a, b - c), (-a, -b + c), (-a + c, -b),
            (a - c, -b)], 2


def _keyed(rng: np.random.Generator) -> tuple[list, int]:
    # A rectangle with a key (a notch or a tab) on one long side, off centre: no symmetry at all.
    a = 1.0
    b = a / rng.uniform(1.2, 1.8)
    width = rng.uniform(0.3, 0.5) * 2 * a
    depth = rng.uniform(0.35, 0.6) * b
    centre = rng.uniform(-0.35, 0.35) * a
    edge = b - depth if rng.random() < 0.6 else b + depth
    left, right = centre - width / 2, centre + width / 2
    return [(-a, -b), (a, -b), (a, b), (right, b), (right, edge), (left, edge), (left, b), (-a, b)], 1


def _d_shape(rng: np.random.Generator) -> tuple[list, int]:
    # A circle with one flat (a D-cut shaft).
    flat = rng.uniform(0.35, 0.7)
    start = math.degrees(math.acos(flat))
    return _arc(0.0, 0.0, 1.0, start, 360.0 - start), 1


def _circle_flats(rng: np.random.Generator) -> tuple[list, int]:
    # A circle with two parallel flats (a double-D).
    flat = rng.uniform(0.55, 0.85)
    start = math.degrees(math.acos(flat))
    return _arc(0.0, 0.0, 1.0, start, 180.0 - start) + _arc(0.0, 0.0, 1.0, 180.0 + start, 360.0 - start), 2


def _l_shape(rng: np.random.Generator) -> tuple[list, int]:
    w, h = 1.0, rng.uniform(0.55, 1.0)
    t = rng.uniform(0.35, 0.55) * min(w, h)
    return [(0.0, 0.0), (w, 0.0), (w, t), (t, t), (t, h), (0.0, h)], 1


def _t_shape(rng: np.random.Generator) -> tuple[list, int]:
    bar, stem = rng.uniform(0.25, 0.4), rng.uniform(0.25, 0.45)
    length = rng.uniform(0.4, 0.8)
    return [(-0.5, 0.0), (0.5, 0.0), (0.5, bar), (stem / 2, bar), (stem / 2, bar + length),
            (-stem / 2, bar + length), (-stem / 2, bar), (-0.5, bar)], 1


_OUTLINES: dict[Outline, Callable[[np.random.Generator], tuple[list, int]]] = {
    Outline.ROUNDED_RECT: _rounded_rect,
    Outline.CHAMFERED_RECT: _chamfered_rect,
    Outline.KEYED: _keyed,
    Outline.D_SHAPE: _d_shape,
    Outline.CIRCLE_FLATS: _circle_flats,
    Outline.L_SHAPE: _l_shape,
    Outline.T_SHAPE: _t_shape,
}


def make_shape(outline: Outline | str, rng: np.random.Generator) -> Shape:
    """A random instance of ``outline`` (its proportions drawn from ``rng``), centred on its area centroid.

    Example:
        >>> shape = make_shape("d_shape", np.random.default_rng(0))
        >>> shape.symmetry, float(np.abs(shape.vertices).max()) <= 1.0
        (1, True)
    """
    outline = _enum(Outline, outline, "outline")
    points, symmetry = _OUTLINES[outline](rng)
    vertices = np.asarray(points, np.float64)
    vertices = vertices - _centroid(vertices)
    vertices /= np.linalg.norm(vertices, axis=1).max()
    return Shape(outline, vertices, symmetry)


def _centroid(vertices: np.ndarray) -> np.ndarray:
    x, y = vertices[:, 0], vertices[:, 1]
    x1, y1 = np.roll(x, -1), np.roll(y, -1)
    cross = x * y1 - x1 * y
    area = cross.sum() / 2.0
    return np.array([((x + x1) * cross).sum(), ((y + y1) * cross).sum()]) / (6.0 * area)


def polygon_coverage(vertices: np.ndarray, height: int, width: int, *, origin: tuple[int, int] = (0, 0),
                     supersample: int = 8) -> np.ndarray:
    """The fraction of each pixel a polygon covers: (height, width) float32 in 0..1.

    Exact along x (the length of each sub-row's spans inside each pixel),
    ``supersample`` sub-rows per pixel along y; even-odd rule.

    Args:
        vertices: (N, 2) x, y corners in continuous pixel coordinates.
        height: rows of the window.
        width: columns of the window.
        origin: (row, column) of the window's first pixel in the image.
        supersample: sub-rows per pixel.

    Example:
        >>> square = np.array([[1.0, 1.0], [3.0, 1.0], [3.0, 3.0], [1.0, 3.0]])
        >>> float(polygon_coverage(square, 4, 4).sum())
        4.0
    """
    v = np.asarray(vertices, np.float64)
    # Work only on the rows and columns the polygon's bounding box touches.
    top, left = origin
    row0 = max(top, int(math.floor(v[:, 1].min())))
    col0 = max(left, int(math.floor(v[:, 0].min())))
    row1 = min(top + height, int(math.ceil(v[:, 1].max())))
    col1 = min(left + width, int(math.ceil(v[:, 0].max())))
    out = np.zeros((height, width), np.float32)
    if row1 <= row0 or col1 <= col0:
        return out
    out[row0 - top:row1 - top, col0 - left:col1 - left] = _coverage(v, row0, col0, row1 - row0, col1 - col0,
                                                                     supersample)
    return out


def _coverage(v: np.ndarray, row0: int, col0: int, height: int, width: int, supersample: int) -> np.ndarray:
    ax, ay = v[:, 0], v[:, 1]
    bx, by = np.roll(ax, -1), np.roll(ay, -1)
    slanted = ay != by  # a horizontal edge never crosses a sub-row under the half-open rule
    ax, ay, bx, by = ax[slanted], ay[slanted], bx[slanted], by[slanted]
    ys = row0 + (np.arange(height * supersample) + 0.5) / supersample
    crosses = (ay[None, :] <= ys[:, None]) != (by[None, :] <= ys[:, None])
    count = int(crosses.sum(axis=1).max()) if crosses.size else 0
    if count == 0:
        return np.zeros((height, width), np.float32)
    xs = np.where(crosses, ax + (ys[:, None] - ay) * ((bx - ax) / (by - ay)), np.inf)
    xs = np.sort(xs, axis=1)[:, :count]
    xs[~np.isfinite(xs)] = col0  # rows with fewer crossings: empty spans
    left, right = xs[:, 0::2, None], xs[:, 1::2, None]
    edges = col0 + np.arange(width + 1, dtype=np.float64)
    inside = (np.clip(edges, left, right) - left).sum(axis=1)  # length inside, left of each pixel edge
    coverage = np.diff(inside, axis=1)
    return coverage.reshape(height, supersample, width).mean(axis=1).astype(np.float32)


# --- the scene ---------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Scene:
    """One rendered scene and its truth.

    Attributes:
        image: (H, W, 3) uint8 RGB.
        slot: where the slot is.
        part: where the part is.
        decoys: where the decoy slots are.
        background: the surface.
        kinds: the scene's tags (see the module notes).
        masks: with ``render_scene(..., masks=True)``: ``{"slot", "part"}`` -> (H, W)
            float32 coverage the outlines were drawn with; otherwise None.
    """

    image: np.ndarray
    slot: Placement
    part: Placement
    decoys: tuple[Placement, ...]
    background: Background
    kinds: tuple[str, ...]
    masks: dict[str, np.ndarray] | None = None

    @property
    def symmetry(self) -> int:
        return self.slot.shape.symmetry

    @property
    def angle(self) -> float:
        """The part's rotation relative to the slot (degrees, counter-clockwise as displayed), reduced."""
        return relative_angle(self.part.rotation - self.slot.rotation, self.symmetry)

    @property
    def scale(self) -> float:
        """The part's size relative to the slot's."""
        return self.part.radius / self.slot.radius

    def label(self) -> dict[str, Any]:
        """The dataset entry of the scene (without ``file``): width, height, slot, part, angle, symmetry, kinds."""
        height, width = self.image.shape[:2]
        return {"width": width, "height": height,
                "slot": [float(self.slot.centre[0]), float(self.slot.centre[1])],
                "part": [float(self.part.centre[0]), float(self.part.centre[1])],
                "angle": self.angle, "symmetry": self.symmetry, "kinds": list(self.kinds)}


def render_scene(rng: np.random.Generator, options: SceneOptions | None = None, *, masks: bool = False) -> Scene:
    """Draw one assembly scene (see the module notes for what it holds and what the labels mean).

    Args:
        rng: the random generator; the scene is a pure function of its state.
        options: how scenes are drawn (None: the SPEC's rates).
        masks: also return the coverage masks the slot and part were drawn with (tests, pictures).

    Returns:
        A :class:`Scene`; ``scene.label()`` is its dataset entry.

    Example:
        >>> scene = render_scene(np.random.default_rng(0), SceneOptions(size=(256, 512)))
        >>> scene.image.shape, sorted(scene.label())
        ((256, 512, 3), ['angle', 'height', 'kinds', 'part', 'slot', 'symmetry', 'width'])
    """
    options = options or SceneOptions()
    height, width = _draw_size(rng, options)
    background = options.backgrounds[int(rng.integers(len(options.backgrounds)))]
    outline = options.outlines[int(rng.integers(len(options.outlines)))]
    light_angle = math.radians(rng.uniform(0.0, 360.0))
    light = (math.cos(light_angle), math.sin(light_angle))  # image-frame direction towards the light

    rotated = bool(rng.random() < options.rotated_part)
    if rotated:
        delta = rng.uniform(options.part_angle, options.rotated_part_angle) * (1.0 if rng.random() < 0.5 else -1.0)
    else:
        delta = rng.uniform(-options.part_angle, options.part_angle)
    wants_decoys = int(rng.integers(1, options.max_decoys + 1)) if rng.random() < options.decoys else 0
    highlighted = bool(rng.random() < options.highlighted_edge)
    noisy = bool(rng.random() < options.noise)

    slot, part, decoys = _place(rng, height, width, make_shape(outline, rng), delta, wants_decoys, options)

    image = _BACKGROUNDS[background](rng, height, width)
    for decoy in decoys:
        _draw_slot(image, decoy, light, rng, highlight=False)
    slot_mask = _draw_slot(image, slot, light, rng, highlight=highlighted)
    part_mask = _draw_part(image, part, light, rng)
    _illuminate(image, rng, light, options.lighting)
    if noisy:
        image *= (1.0 + rng.uniform(0.1, 0.25) * _fractal_noise(rng, height, width))[..., None]
    image = gaussian_blur(image, rng.uniform(*options.blur))
    sigma = rng.uniform(*(options.heavy_noise if noisy else options.sensor_noise))
    if sigma > 0:
        _add_sensor_noise(image, rng, sigma)
    pixels = (np.clip(image, 0.0, 255.0) + 0.5).astype(np.uint8)

    kinds = [kind.value for kind, present in ((SceneKind.DECOYS, bool(decoys)), (SceneKind.ROTATED_PART, rotated),
                                              (SceneKind.NOISE, noisy), (SceneKind.HIGHLIGHTED_EDGE, highlighted))
             if present] or [SceneKind.PLAIN.value]
    drawn = None
    if masks:
        drawn = {"slot": _full_mask(slot_mask, height, width), "part": _full_mask(part_mask, height, width)}
    return Scene(pixels, slot, part, tuple(decoys), background, tuple(kinds), drawn)


def _add_sensor_noise(image: np.ndarray, rng: np.random.Generator, sigma: float) -> None:
    # One Gaussian field, read at a different random offset for each channel: as good as
    # independent noise per channel to the eye and to a network, at a third of the cost.
    height, width = image.shape[:2]
    noise = rng.standard_normal((height, width), dtype=np.float32) * np.float32(sigma)
    for channel in range(3):
        shift = (int(rng.integers(height)), int(rng.integers(width))) if channel else (0, 0)
        image[..., channel] += np.roll(noise, shift, axis=(0, 1))


def _draw_size(rng: np.random.Generator, options: SceneOptions) -> tuple[int, int]:
    if options.size is not None:
        return options.size
    height = options.heights[int(rng.integers(len(options.heights)))]
    aspect = options.aspects[int(rng.integers(len(options.aspects)))]
    width = int(round(height * aspect))
    if width > options.max_width:
        width = options.max_width
        height = max(_MIN_SIDE, int(round(width / aspect)))
    return height, max(_MIN_SIDE, width)


# --- placement ---------------------------------------------------------------------------

_SPACING = 1.15  # circumscribed circles of two outlines stay this far apart, relative to the sum of the radii
_REACH = 1.35  # an outline's shadow and bevel reach this far, relative to its radius


def _place(rng: np.random.Generator, height: int, width: int, shape: Shape, delta: float, wants_decoys: int,
           options: SceneOptions) -> tuple[Placement, Placement, list[Placement]]:
    short = min(height, width)
    margin = max(2.0, options.margin * short)
    scale = rng.uniform(*options.part_scale)
    rotation = rng.uniform(0.0, 360.0)
    for attempt in range(400):
        # Shrink a little every 25 failures: a crowded small image still fits in the end.
        radius = rng.uniform(*options.shape_size) * short * 0.9 ** (attempt // 25)
        slot_centre = _random_centre(rng, height, width, radius * _REACH + margin)
        part_centre = _random_centre(rng, height, width, radius * scale * _REACH + margin)
        if slot_centre is None or part_centre is None:
            continue
        if math.dist(slot_centre, part_centre) >= _SPACING * radius * (1 + scale) + margin:
            break
    else:
        raise InvalidInputError(f"cannot place a slot and its part in a {width}x{height} image")
    slot = Placement(shape, slot_centre, rotation, radius)
    part = Placement(shape, part_centre, rotation + delta, radius * scale)

    placed = [slot, part]
    decoys = []
    others = [o for o in options.outlines if o != shape.outline] or [shape.outline]
    for _ in range(wants_decoys):
        if rng.random() < 0.5:
            decoy_shape = shape  # the same outline at a clearly different size
            factor = rng.uniform(0.6, 0.78) if rng.random() < 0.5 else rng.uniform(1.25, 1.5)
        else:
            decoy_shape = make_shape(others[int(rng.integers(len(others)))], rng)
            factor = rng.uniform(0.85, 1.15)
        decoy_radius = radius * factor
        decoy_rotation = rng.uniform(0.0, 360.0)
        for _ in range(30):
            centre = _random_centre(rng, height, width, decoy_radius * _REACH + margin)
            if centre is not None and all(math.dist(centre, p.centre) >= _SPACING * (decoy_radius + p.radius) + margin
                                          for p in placed):
                decoy = Placement(decoy_shape, centre, decoy_rotation, decoy_radius)
                placed.append(decoy)
                decoys.append(decoy)
                break
    return slot, part, decoys


def _random_centre(rng: np.random.Generator, height: int, width: int, reach: float) -> tuple[float, float] | None:
    if 2 * reach >= min(height, width):
        return None
    return float(rng.uniform(reach, width - reach)), float(rng.uniform(reach, height - reach))


# --- drawing -----------------------------------------------------------------------------


def _window(vertices: np.ndarray, pad: float, height: int, width: int) -> tuple[int, int, int, int]:
    x0 = max(0, int(math.floor(vertices[:, 0].min() - pad)))
    x1 = min(width, int(math.ceil(vertices[:, 0].max() + pad)))
    y0 = max(0, int(math.floor(vertices[:, 1].min() - pad)))
    y1 = min(height, int(math.ceil(vertices[:, 1].max() + pad)))
    return y0, y1, x0, x1


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    # Mean over a (2r+1)^2 box, zero outside (windows are padded past the outline), by cumulative sums.
    if radius < 1:
        return a
    k = 2 * radius + 1
    for axis in (0, 1):
        pad = [(0, 0), (0, 0)]
        pad[axis] = (radius + 1, radius)
        c = np.cumsum(np.pad(a, pad), axis=axis, dtype=np.float32)
        a = (c[k:] - c[:-k]) / k if axis == 0 else (c[:, k:] - c[:, :-k]) / k
    return a


def _shift(a: np.ndarray, dx: float, dy: float) -> np.ndarray:
    # out[y, x] = a[y + dy, x + dx] (rounded to whole pixels), zero where that falls outside.
    dx, dy = int(round(dx)), int(round(dy))
    h, w = a.shape
    out = np.zeros_like(a)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] = \
        a[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
    return out


def _slope(coverage: np.ndarray, radius: int, light: tuple[float, float]) -> np.ndarray:
    # How much a bevel of the given radius (the twice box-blurred outline as a height map) rises
    # towards the light, normalised so that the steepest part of the bevel gives about +-1.
    height_map = _box_blur(_box_blur(coverage, radius), radius)
    gy, gx = np.gradient(height_map)
    return (gx * light[0] + gy * light[1]) * (2 * radius + 1)


def _draw_slot(image: np.ndarray, placement: Placement, light: tuple[float, float], rng: np.random.Generator, *,
               highlight: bool) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    r = placement.radius
    depth = r * rng.uniform(0.1, 0.25)
    bevel = max(1, int(round(r * rng.uniform(0.025, 0.06))))
    occlusion = max(2, int(round(r * rng.uniform(0.08, 0.15))))
    vertices = placement.vertices()
    window = _window(vertices, depth + 2 * (occlusion + bevel) + 3, *image.shape[:2])
    y0, y1, x0, x1 = window
    coverage = polygon_coverage(vertices, y1 - y0, x1 - x0, origin=(y0, x0))
    region = image[y0:y1, x0:x1]

    # A floor point is in shadow when the way towards the light leaves the cavity (hits its wall).
    shadow = coverage * (1.0 - _shift(coverage, light[0] * depth, light[1] * depth))
    occluded = np.clip(2.0 * _box_blur(_box_blur(coverage, occlusion), occlusion) - 1.0, 0.0, 1.0)
    floor = rng.uniform(0.35, 0.65) * (0.55 + 0.45 * occluded) * (1.0 - rng.uniform(0.4, 0.7) * shadow)
    tint = (1.0 + rng.uniform(-0.08, 0.08, 3)).astype(np.float32)
    # A cavity's wall facing the light (slope < 0 there) is the lit edge, the opposite wall is dark.
    relief = np.clip(1.0 - rng.uniform(0.5, 0.9) * _slope(coverage, bevel, light), 0.2, 2.0)
    # The floor lies deeper, out of the surface's focus: its texture is washed out towards its mean.
    weight = coverage / max(float(coverage.sum()), 1e-6)
    mean = (region * weight[..., None]).sum(axis=(0, 1))
    region += (coverage * np.float32(rng.uniform(0.4, 0.9)))[..., None] * (mean - region)
    gain = (1.0 - coverage)[..., None] + (coverage * floor)[..., None] * tint
    region *= gain * relief[..., None]
    if highlight:
        width_px = max(1, int(round(r * 0.03)))
        rim = _box_blur(coverage, width_px)
        line = np.clip(4.0 * rim * (1.0 - rim), 0.0, 1.0)[..., None] * np.float32(rng.uniform(0.7, 0.95))
        colour = np.array([255.0, 250.0, rng.uniform(200.0, 250.0)], np.float32)
        region *= 1.0 - line
        region += line * colour
    return coverage, window


_LUMA = (0.299, 0.587, 0.114)
_PART_COLOURS = np.array([
    [185, 185, 180], [150, 152, 155], [45, 45, 48], [70, 72, 78], [205, 165, 85], [200, 45, 35], [35, 90, 190],
    [230, 190, 40], [40, 150, 70], [235, 120, 30], [235, 235, 228],
], np.float32)


def _draw_part(image: np.ndarray, placement: Placement, light: tuple[float, float],
               rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    r = placement.radius
    lift = r * rng.uniform(0.08, 0.2)
    soft = max(1, int(round(r * rng.uniform(0.03, 0.08))))
    bevel = max(1, int(round(r * rng.uniform(0.04, 0.08))))
    vertices = placement.vertices()
    window = _window(vertices, lift + 2 * (soft + bevel) + 3, *image.shape[:2])
    y0, y1, x0, x1 = window
    h, w = y1 - y0, x1 - x0
    coverage = polygon_coverage(vertices, h, w, origin=(y0, x0))
    region = image[y0:y1, x0:x1]

    # The ground is in shadow where the way towards the light passes under the raised part.
    shadow = _box_blur(_box_blur(_shift(coverage, light[0] * lift, light[1] * lift), soft), soft)
    region *= (1.0 - rng.uniform(0.35, 0.65) * shadow)[..., None]

    colour = _PART_COLOURS[int(rng.integers(len(_PART_COLOURS)))] * np.float32(rng.uniform(0.85, 1.1))
    colour = _contrasting(colour, region, coverage)
    streaks = rng.standard_normal((h, w), dtype=np.float32)
    streaks = _box_blur(streaks, 1) if rng.random() < 0.5 else _streaks(streaks, max(2, int(r * 0.2)))
    texture = 1.0 + np.float32(rng.uniform(0.02, 0.08)) * streaks / max(float(streaks.std()), 1e-6)
    slope = _slope(coverage, bevel, light)
    yy = (np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - placement.centre[1]) / r
    xx = (np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - placement.centre[0]) / r
    sheen = 1.0 + rng.uniform(0.0, 0.12) * (xx * light[0] + yy * light[1])
    relief = np.clip(1.0 + rng.uniform(0.5, 0.9) * slope, 0.2, 2.0) * sheen * texture
    specular = np.clip(slope, 0.0, 1.0) ** 3 * np.float32(rng.uniform(30.0, 90.0))
    body = colour * relief[..., None] + specular[..., None]
    region *= (1.0 - coverage)[..., None]
    region += body * coverage[..., None]
    return coverage, window


def _contrasting(colour: np.ndarray, region: np.ndarray, coverage: np.ndarray) -> np.ndarray:
    # Keep the part's brightness at least ~40 grey levels from the surface under it.
    weight = coverage / max(float(coverage.sum()), 1e-6)
    ground = float(sum((region[..., k] * weight).sum() * _LUMA[k] for k in range(3)))
    luma = float(sum(colour[k] * _LUMA[k] for k in range(3)))
    if abs(luma - ground) >= 40.0:
        return colour
    target = ground - 55.0 if ground > 120.0 else ground + 55.0
    return np.clip(colour * np.float32(max(target, 10.0) / max(luma, 1.0)), 0.0, 255.0)


def _streaks(noise: np.ndarray, length: int) -> np.ndarray:
    # Noise smeared along x: brushing marks.
    k = 2 * length + 1
    c = np.cumsum(np.pad(noise, ((0, 0), (length + 1, length))), axis=1, dtype=np.float32)
    return (c[:, k:] - c[:, :-k]) / k


def _full_mask(drawn: tuple[np.ndarray, tuple[int, int, int, int]], height: int, width: int) -> np.ndarray:
    coverage, (y0, y1, x0, x1) = drawn
    mask = np.zeros((height, width), np.float32)
    mask[y0:y1, x0:x1] = coverage
    return mask


def _illuminate(image: np.ndarray, rng: np.random.Generator, light: tuple[float, float], strength: float) -> None:
    # A gradient brighter towards the light, a soft hotspot and a vignette; all separable, so cheap.
    height, width = image.shape[:2]
    half = 0.5 * max(height, width)
    x = ((np.arange(width, dtype=np.float32) + 0.5 - width / 2) / half)[None, :]
    y = ((np.arange(height, dtype=np.float32) + 0.5 - height / 2) / half)[:, None]
    gradient = rng.uniform(0.0, strength)
    field = 1.0 + gradient * (x * light[0] + y * light[1]) - rng.uniform(0.0, 0.15) * (x * x + y * y)
    if rng.random() < 0.5:
        cx, cy = rng.uniform(-0.8, 0.8, size=2)
        spread = rng.uniform(0.2, 0.7)
        hotspot = np.exp(-((x - cx) / spread) ** 2) * np.exp(-((y - cy) / spread) ** 2)  # separable: cheap
        field = field + rng.uniform(0.05, 0.25) * hotspot
    image *= field.astype(np.float32)[..., None]


# --- backgrounds -------------------------------------------------------------------------


def _lerp_taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray]:
    # Lower sample index and weight of each of n_out outputs spread evenly over n_in inputs (ends aligned).
    positions = np.linspace(0.0, n_in - 1.0, n_out)
    low = np.minimum(positions.astype(np.int64), n_in - 2)
    return low, (positions - low).astype(np.float32)


def _upsample(coarse: np.ndarray, height: int, width: int) -> np.ndarray:
    # Bilinear upsampling by gathers, not matrix products: BLAS threads thrash on a busy machine.
    rows, weight = _lerp_taps(height, coarse.shape[0])
    tall = coarse[rows] * (1.0 - weight)[:, None] + coarse[rows + 1] * weight[:, None]
    cols, weight = _lerp_taps(width, coarse.shape[1])
    return tall[:, cols] * (1.0 - weight) + tall[:, cols + 1] * weight


def _value_noise(rng: np.random.Generator, height: int, width: int, cell: float) -> np.ndarray:
    # Random values on a coarse lattice, bilinearly upsampled.
    rows, cols = int(height / cell) + 2, int(width / cell) + 2
    return _upsample(rng.standard_normal((rows, cols), dtype=np.float32), height, width)


def _fractal_noise(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    # Value noise over four octaves ("Perlin" noise), about unit standard deviation.
    cell = rng.uniform(0.15, 0.4) * min(height, width)
    total = np.zeros((height, width), np.float32)
    for octave in range(4):
        total += _value_noise(rng, height, width, max(2.0, cell / 2 ** octave)) * np.float32(0.55 ** octave)
    return total / max(float(total.std()), 1e-6)


def _brushed_metal(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    horizontal = rng.random() < 0.5
    rows, cols = (height, width) if horizontal else (width, height)
    unit = min(height, width) / 360.0
    length = rng.uniform(20.0, 80.0) * unit
    coarse = rng.standard_normal((rows, int(cols / length) + 2), dtype=np.float32)
    taps, weight = _lerp_taps(cols, coarse.shape[1])
    long_marks = coarse[:, taps] * (1.0 - weight) + coarse[:, taps + 1] * weight
    fine_marks = _streaks(rng.random((rows, cols), dtype=np.float32) - np.float32(0.5), max(2, int(length / 4)))
    field = long_marks * np.float32(rng.uniform(0.03, 0.07)) + fine_marks * np.float32(rng.uniform(0.35, 1.0))
    if not horizontal:
        field = field.T
    field += _value_noise(rng, height, width, rng.uniform(0.2, 0.5) * min(height, width)) * np.float32(0.04)
    grey = np.float32(rng.uniform(110.0, 200.0))
    tint = (1.0 + rng.uniform(-0.04, 0.04, 3)).astype(np.float32)
    return (grey * (1.0 + field))[..., None] * tint


_MASK_COLOURS = np.array([[35, 95, 55], [20, 70, 40], [25, 55, 110], [28, 30, 32], [120, 30, 30], [60, 110, 60]],
                         np.float32)
_METAL_COLOURS = np.array([[200, 200, 195], [215, 175, 90], [190, 150, 110]], np.float32)


def _pcb(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    unit = min(height, width) / 360.0
    mask = _MASK_COLOURS[int(rng.integers(len(_MASK_COLOURS)))] * np.float32(rng.uniform(0.85, 1.15))
    trace = np.minimum(mask * 1.35 + 14.0, 255.0)
    metal = _METAL_COLOURS[int(rng.integers(len(_METAL_COLOURS)))]
    silk = np.array([235.0, 235.0, 225.0], np.float32)
    image = np.empty((height, width, 3), np.float32)
    image[:] = mask
    area = height * width / (360.0 * 640.0)
    for _ in range(int(np.clip(rng.integers(12, 30) * area, 8, 90))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        half = max(1.0, rng.uniform(0.8, 2.5) * unit)
        horizontal = rng.random() < 0.5
        for _ in range(int(rng.integers(1, 5))):
            step = rng.uniform(20.0, 220.0) * unit * (1 if rng.random() < 0.5 else -1)
            nx, ny = (x + step, y) if horizontal else (x, y + step)
            _fill_rect(image, min(x, nx) - half, min(y, ny) - half, max(x, nx) + half, max(y, ny) + half, trace)
            x, y, horizontal = nx, ny, not horizontal
    for _ in range(int(np.clip(rng.integers(15, 45) * area, 8, 120))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(3.0, 12.0, size=2) * unit
        _fill_rect(image, x - w / 2, y - h / 2, x + w / 2, y + h / 2, metal)
    for _ in range(int(np.clip(rng.integers(10, 35) * area, 5, 100))):
        _via(image, rng.uniform(0, width), rng.uniform(0, height), rng.uniform(2.0, 4.5) * unit, metal)
    thickness = max(1.0, round(unit))
    for _ in range(int(rng.integers(2, 7))):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        w, h = rng.uniform(20.0, 90.0, size=2) * unit
        for x0, y0, x1, y1 in ((x, y, x + w, y + thickness), (x, y + h - thickness, x + w, y + h),
                               (x, y, x + thickness, y + h), (x + w - thickness, y, x + w, y + h)):
            _fill_rect(image, x0, y0, x1, y1, silk)
    shading = 1.0 + _value_noise(rng, height, width, rng.uniform(0.2, 0.5) * min(height, width)) * np.float32(0.04)
    image *= shading[..., None]
    return image


def _fill_rect(image: np.ndarray, x0: float, y0: float, x1: float, y1: float, colour: np.ndarray) -> None:
    height, width = image.shape[:2]
    c0, c1 = max(0, int(round(x0))), min(width, int(round(x1)))
    r0, r1 = max(0, int(round(y0))), min(height, int(round(y1)))
    if c1 > c0 and r1 > r0:
        image[r0:r1, c0:c1] = colour


def _via(image: np.ndarray, x: float, y: float, radius: float, metal: np.ndarray) -> None:
    height, width = image.shape[:2]
    c0, c1 = max(0, int(x - radius - 1)), min(width, int(x + radius + 2))
    r0, r1 = max(0, int(y - radius - 1)), min(height, int(y + radius + 2))
    if c1 <= c0 or r1 <= r0:
        return
    d = np.hypot(np.arange(c0, c1)[None, :] + 0.5 - x, np.arange(r0, r1)[:, None] + 0.5 - y).astype(np.float32)
    ring = np.clip(radius - d + 0.5, 0.0, 1.0)[..., None]
    hole = np.clip(radius * 0.45 - d + 0.5, 0.0, 1.0)[..., None]
    region = image[r0:r1, c0:c1]
    region *= 1.0 - ring
    region += ring * metal
    region *= 1.0 - hole
    region += hole * np.float32(25.0)


_PLASTIC_COLOURS = np.array([[60, 62, 66], [30, 30, 32], [200, 190, 170], [225, 225, 220], [40, 80, 150],
                             [150, 40, 35], [70, 120, 80], [150, 150, 150], [215, 150, 50]], np.float32)


def _plastic(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    colour = _PLASTIC_COLOURS[int(rng.integers(len(_PLASTIC_COLOURS)))] * np.float32(rng.uniform(0.85, 1.1))
    mottling = _value_noise(rng, height, width, rng.uniform(0.1, 0.3) * min(height, width))
    # Uniform noise (cheaper to draw than Gaussian) smoothed over 3x3: spark-eroded mould texture.
    grain = _box_blur(rng.random((height, width), dtype=np.float32) - np.float32(0.5), 1)
    field = 1.0 + mottling * np.float32(rng.uniform(0.02, 0.05)) + grain * np.float32(rng.uniform(0.1, 0.35))
    if rng.random() < 0.3:  # moulded ribs
        period = rng.uniform(8.0, 30.0) * min(height, width) / 360.0
        ribs = np.cos(2 * np.pi * np.arange(width, dtype=np.float32) / np.float32(period))[None, :]
        field = field + np.float32(rng.uniform(0.02, 0.06)) * ribs
    return field[..., None] * colour


_STEP_BITS = 6
_THREAD_STEPS = 1 << _STEP_BITS
_THREADS = 512
_FABRIC_COLOURS = np.array([[40, 55, 95], [55, 55, 60], [25, 25, 28], [90, 95, 70], [120, 110, 95], [30, 70, 60]],
                           np.float32)


def _fabric(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    period = rng.uniform(3.0, 7.0) * max(1.0, min(height, width) / 360.0)
    theta = rng.uniform(0.0, np.pi)
    c, s = np.float32(math.cos(theta) / period), np.float32(math.sin(theta) / period)
    x = np.arange(width, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    # In thread periods, shifted to be positive (so truncation is floor).
    corners = [(cx, cy) for cx in (0.0, float(width)) for cy in (0.0, float(height))]
    u_offset = np.float32(1.0 - min(cx * c + cy * s for cx, cy in corners))
    v_offset = np.float32(1.0 - min(cy * c - cx * s for cx, cy in corners))
    u, v = (x * c + u_offset) + y * s, (y * c + v_offset) - x * s
    # A thread's profile across it, sqrt(sin(pi t)) for t in 0..1, from a table of 64 steps,
    # times a brightness of its own (threads differ), both looked up by one index per pixel.
    profile = np.sqrt(np.sin(np.pi * (np.arange(_THREAD_STEPS) + 0.5) / _THREAD_STEPS)).astype(np.float32)
    twill = int(rng.integers(2, 4))  # 2: plain weave; 3: twill
    warp_lut = (profile[None, :] * (1.0 + rng.uniform(-0.12, 0.12, (_THREADS, 1)))).astype(np.float32).ravel()
    weft_lut = (profile[None, :] * (1.0 + rng.uniform(-0.12, 0.12, (_THREADS, 1)))).astype(np.float32).ravel()
    # thread index * steps + step within the thread; powers of two, so shifts and masks (int division is slow)
    su = (u * _THREAD_STEPS).astype(np.int32)
    sv = (v * _THREAD_STEPS).astype(np.int32)
    over = (((su >> _STEP_BITS) + (sv >> _STEP_BITS)) % twill) == 0
    mask = _THREADS * _THREAD_STEPS - 1
    pattern = np.where(over, np.take(warp_lut, su & mask), np.take(weft_lut, sv & mask))
    fibre = (rng.random((height, width), dtype=np.float32) - np.float32(0.5)) * np.float32(0.17)
    field = 0.6 + 0.4 * pattern + fibre
    colour = _FABRIC_COLOURS[int(rng.integers(len(_FABRIC_COLOURS)))] * np.float32(rng.uniform(0.8, 1.5))
    return field[..., None] * colour


_BACKGROUNDS: dict[Background, Callable[[np.random.Generator, int, int], np.ndarray]] = {
    Background.BRUSHED_METAL: _brushed_metal,
    Background.PCB: _pcb,
    Background.PLASTIC: _plastic,
    Background.FABRIC: _fabric,
}
