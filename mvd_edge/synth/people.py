"""Procedural people: identities, their sprites and re-id style crops, in RGB and IR.

An :class:`Identity` is a frozen bundle of appearance parameters (build, hair,
garments, shoes, accessory). The same identity renders

* in :attr:`Modality.VISIBLE` with colours (BGR), and
* in :attr:`Modality.INFRARED` as a thermal-like image: one channel replicated to
  B = G = R, skin warm (bright), clothing brightness given by each garment's
  *material emissivity* (never by its colour), cool background, thermal blur and
  sensor noise.

So cross-modal matching has to rely on shape and pattern cues (build, hair style,
garment lengths, stripes/checks/logo, accessories): learnable, but not trivial.
Patterns show in IR through a small emissivity modulation of the pattern fabric.

Drawing is done with OpenCV primitives on a small label map at 2-4x supersampling
(label + shade per pixel), coloured through a per-label lookup table and area-
downsampled, which gives anti-aliased edges and an alpha matte cheaply (a 128 x 64
crop takes well under a millisecond or two).

Everything random comes from an explicit ``numpy.random.Generator``; identity ``i``
of ``sample_identities(n, seed)`` depends only on ``(seed, i)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np

from mvd_edge.core.modality import Modality

__all__ = [
    "ACCESSORIES",
    "COAT_LENGTH",
    "HAIR_STYLES",
    "LOOK_ALIKE_TOLERANCE",
    "LOWER_KINDS",
    "MATERIALS",
    "PATTERNS",
    "SLEEVES",
    "VIEWS",
    "Accessory",
    "Body",
    "CameraStyle",
    "Color",
    "Hair",
    "Identity",
    "LowerGarment",
    "Shoes",
    "UpperGarment",
    "cross_modal_traits",
    "look_alike",
    "look_alike_pairs",
    "render_background",
    "render_crop",
    "render_sprite",
    "sample_camera_style",
    "sample_identities",
    "sample_identity",
]

Color = tuple[int, int, int]
"""A BGR colour, each channel 0..255."""

VIEWS: tuple[str, ...] = ("front", "back", "side")
HAIR_STYLES: tuple[str, ...] = ("bald", "short", "medium", "long", "ponytail")
PATTERNS: tuple[str, ...] = ("plain", "hstripes", "vstripes", "checks", "logo")
SLEEVES: tuple[str, ...] = ("none", "short", "long")
LOWER_KINDS: tuple[str, ...] = ("trousers", "shorts", "skirt")
ACCESSORIES: tuple[str, ...] = ("none", "backpack", "shoulder_bag", "hat")

#: Material name -> (min, max) thermal emissivity. Only IR renders use it.
MATERIALS: dict[str, tuple[float, float]] = {
    "cotton": (0.78, 0.95),
    "wool": (0.70, 0.88),
    "denim": (0.70, 0.86),
    "canvas": (0.65, 0.85),
    "polyester": (0.50, 0.72),
    "rubber": (0.40, 0.60),
    "nylon": (0.30, 0.52),
    "leather": (0.25, 0.45),
    "down": (0.18, 0.36),
}

_UPPER_MATERIALS = ("cotton", "wool", "polyester", "nylon", "down", "leather")
_UPPER_MAT_P = (0.34, 0.16, 0.2, 0.12, 0.1, 0.08)
_LOWER_MATERIALS = ("denim", "cotton", "polyester", "wool", "leather")
_LOWER_MAT_P = (0.38, 0.27, 0.2, 0.1, 0.05)
_SHOE_MATERIALS = ("leather", "rubber", "canvas")
_BAG_MATERIALS = ("nylon", "canvas", "leather", "polyester")
_HAT_MATERIALS = ("wool", "cotton", "polyester", "nylon")

# Label values of the supersampled label map.
_BG, _SKIN, _HAIR, _UPPER, _UPPER2, _LOWER, _SHOES, _ACC = range(8)
_N_LABELS = 8

# Common clothing colours (BGR).
_CLOTH_PALETTE: tuple[Color, ...] = (
    (28, 28, 30), (232, 232, 232), (128, 128, 128), (72, 72, 72), (92, 44, 22),
    (176, 104, 44), (228, 184, 132), (44, 40, 196), (36, 30, 128), (64, 140, 60),
    (44, 110, 110), (40, 200, 228), (30, 120, 236), (180, 150, 236), (128, 52, 110),
    (40, 70, 120), (150, 190, 214), (110, 158, 180), (140, 128, 30), (200, 200, 170),
)
_LOWER_PALETTE: tuple[Color, ...] = (
    (120, 72, 40), (90, 50, 30), (150, 110, 70), (30, 30, 32), (60, 60, 64),
    (128, 128, 128), (110, 158, 180), (70, 100, 120), (220, 220, 220), (50, 70, 40),
)
_HAIR_COLORS: tuple[Color, ...] = ((20, 20, 24), (25, 35, 55), (40, 60, 95), (90, 150, 190), (160, 160, 165))
_HAIR_COLOR_P = (0.45, 0.25, 0.15, 0.08, 0.07)
_T_REFLECTED = 0.2  # apparent temperature reflected by low-emissivity surfaces (cold surroundings)


# --------------------------------------------------------------------------- identity


@dataclass(frozen=True)
class Body:
    """Build of a person; lengths are fractions of the person's full height.

    ``stature`` (metres) is not visible in a crop (crops are rescaled); it is there
    for scenes that draw several people at a common scale.
    """

    stature: float
    shoulder_width: float  # 0.21 .. 0.27
    hip_width: float  # 0.17 .. 0.225
    head_size: float  # head height, 0.12 .. 0.14
    leg_length: float  # crotch to sole, 0.44 .. 0.50
    girth: float  # torso depth seen from the side, 0.12 .. 0.16
    skin: Color


@dataclass(frozen=True)
class Hair:
    """Hair style (one of :data:`HAIR_STYLES`) and colour; hair is mid-warm in IR."""

    style: str
    color: Color


@dataclass(frozen=True)
class UpperGarment:
    """Shirt / jacket / coat.

    ``pattern`` is one of :data:`PATTERNS`; ``color2`` the pattern colour;
    ``pattern_freq`` cycles over the torso height (stripes, checks); ``pattern_phase``
    in [0, 1). ``sleeves`` is one of :data:`SLEEVES`. ``length`` is how far the hem
    reaches below the hip (fraction of height; 0 = at the hip, > 0.06 = coat).
    ``emissivity`` is the fabric's; the pattern fabric has ``emissivity +
    pattern_emissivity_delta`` (what makes the pattern visible in IR).
    """

    color: Color
    color2: Color
    pattern: str
    pattern_freq: float
    pattern_phase: float
    sleeves: str
    length: float
    material: str
    emissivity: float
    pattern_emissivity_delta: float


@dataclass(frozen=True)
class LowerGarment:
    """Trousers / shorts / skirt; ``length`` is the fraction of the leg it covers."""

    kind: str
    length: float
    color: Color
    material: str
    emissivity: float


@dataclass(frozen=True)
class Shoes:
    """Shoes: colour (RGB only) and material (IR only)."""

    color: Color
    material: str
    emissivity: float


@dataclass(frozen=True)
class Accessory:
    """One of :data:`ACCESSORIES`; ``side`` (+1/-1) is where a shoulder bag hangs."""

    kind: str
    color: Color
    material: str
    emissivity: float
    side: int


@dataclass(frozen=True)
class Identity:
    """All appearance parameters of one person (immutable, hashable)."""

    body: Body
    hair: Hair
    upper: UpperGarment
    lower: LowerGarment
    shoes: Shoes
    accessory: Accessory


def _jitter_color(c: Sequence[int], rng: np.random.Generator, amount: float) -> Color:
    v = np.clip(np.asarray(c, np.float64) + rng.normal(0.0, amount, 3), 0, 255)
    return (int(v[0]), int(v[1]), int(v[2]))


def _random_cloth_color(rng: np.random.Generator, palette: Sequence[Color]) -> Color:
    if rng.random() < 0.75:
        return _jitter_color(palette[int(rng.integers(len(palette)))], rng, 12.0)
    hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(50, 250)]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return (int(b), int(g), int(r))


def _luma(c: Sequence[int]) -> float:
    return 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]


def _contrasting_color(base: Color, rng: np.random.Generator) -> Color:
    """A pattern colour clearly distinct from ``base`` (luma or chroma)."""
    for _ in range(12):
        c = _random_cloth_color(rng, _CLOTH_PALETTE)
        if abs(_luma(c) - _luma(base)) > 55 or np.abs(np.subtract(c, base)).sum() > 260:
            return c
    return (235, 235, 235) if _luma(base) < 128 else (25, 25, 25)


def _material(rng: np.random.Generator, names: Sequence[str], p: Sequence[float] | None = None) -> tuple[str, float]:
    name = str(names[int(rng.choice(len(names), p=p))])
    lo, hi = MATERIALS[name]
    return name, float(rng.uniform(lo, hi))


def _pick(rng: np.random.Generator, options: Sequence[str], p: Sequence[float]) -> str:
    return str(options[int(rng.choice(len(options), p=p))])


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one random identity from ``rng`` (a loosely realistic population)."""
    female = rng.random() < 0.45
    tone = rng.random()
    skin = np.array([178, 196, 232]) * (1 - tone) + np.array([62, 88, 128]) * tone
    body = Body(
        stature=float(np.clip(rng.normal(1.64 if female else 1.76, 0.07), 1.45, 2.0)),
        shoulder_width=float(rng.uniform(0.205, 0.24) if female else rng.uniform(0.23, 0.27)),
        hip_width=float(rng.uniform(0.19, 0.225) if female else rng.uniform(0.17, 0.2)),
        head_size=float(rng.uniform(0.12, 0.14)),
        leg_length=float(rng.uniform(0.44, 0.5)),
        girth=float(rng.uniform(0.12, 0.16)),
        skin=_jitter_color(skin, rng, 6.0),
    )
    hair_p = (0.0, 0.12, 0.25, 0.4, 0.23) if female else (0.1, 0.62, 0.2, 0.04, 0.04)
    hair = Hair(
        style=_pick(rng, HAIR_STYLES, hair_p),
        color=_jitter_color(_HAIR_COLORS[int(rng.choice(len(_HAIR_COLORS), p=_HAIR_COLOR_P))], rng, 8.0),
    )

    color = _random_cloth_color(rng, _CLOTH_PALETTE)
    pattern = _pick(rng, PATTERNS, (0.34, 0.2, 0.13, 0.15, 0.18))
    mat, emis = _material(rng, _UPPER_MATERIALS, _UPPER_MAT_P)
    delta = float(rng.uniform(0.14, 0.26))
    if emis + delta > 0.98 or (emis - delta >= 0.12 and rng.random() < 0.5):
        delta = -delta
    coat = rng.random() < 0.22
    upper = UpperGarment(
        color=color,
        color2=_contrasting_color(color, rng),
        pattern=pattern,
        pattern_freq=float(rng.uniform(2.5, 4.5) if pattern == "checks" else rng.uniform(2.5, 6.0)),
        pattern_phase=float(rng.random()),
        sleeves=_pick(rng, SLEEVES, (0.1, 0.4, 0.5)),
        length=float(rng.uniform(0.07, 0.17) if coat else rng.uniform(0.0, 0.035)),  # coat: > COAT_LENGTH
        material=mat,
        emissivity=emis,
        pattern_emissivity_delta=delta,
    )

    kind = _pick(rng, LOWER_KINDS, (0.55, 0.15, 0.3) if female else (0.8, 0.2, 0.0))
    length = {"trousers": 1.0, "shorts": float(rng.uniform(0.28, 0.45)), "skirt": float(rng.uniform(0.3, 0.75))}[kind]
    mat, emis = _material(rng, _LOWER_MATERIALS, _LOWER_MAT_P)
    lower = LowerGarment(kind=kind, length=length, color=_random_cloth_color(rng, _LOWER_PALETTE), material=mat,
                         emissivity=emis)

    mat, emis = _material(rng, _SHOE_MATERIALS)
    shoes = Shoes(color=_random_cloth_color(rng, ((25, 25, 25), (230, 230, 230), (40, 60, 90), (90, 90, 90))),
                  material=mat, emissivity=emis)

    akind = _pick(rng, ACCESSORIES, (0.4, 0.25, 0.2, 0.15))
    mat, emis = _material(rng, _HAT_MATERIALS if akind == "hat" else _BAG_MATERIALS)
    accessory = Accessory(kind=akind, color=_random_cloth_color(rng, _CLOTH_PALETTE), material=mat, emissivity=emis,
                          side=1 if rng.random() < 0.5 else -1)
    return Identity(body=body, hair=hair, upper=upper, lower=lower, shoes=shoes, accessory=accessory)


_IDENTITY_TAG = 0x1D


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def sample_identities(n: int, seed: int) -> list[Identity]:
    """``n`` identities; identity ``i`` depends only on ``(seed, i)``, not on ``n``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    seed = _check_seed(seed)
    return [sample_identity(np.random.default_rng([_IDENTITY_TAG, seed, i])) for i in range(int(n))]


COAT_LENGTH = 0.06
"""An upper garment whose hem reaches more than this below the hip (fraction of height) is a coat."""


#: How close two people's continuous cross-modal traits must be for them to count as look-alikes:
#: stripe/check cycles over the torso, hem of a coat (fraction of height), shorts/skirt length
#: (fraction of the leg). Judgement calls: about a third of each trait's range.
LOOK_ALIKE_TOLERANCE: dict[str, float] = {"pattern_freq": 1.0, "coat_length": 0.04, "lower_length": 0.12}


def cross_modal_traits(identity: Identity) -> tuple[str, ...]:
    """The discrete traits of ``identity`` that show in both modalities.

    Colours show only in RGB and emissivities only in IR, so across modalities people
    can be told apart only by shape and pattern: hair style, upper-garment pattern,
    sleeves, coat or not, lower-garment kind and accessory kind. (Which shoulder a bag
    hangs on is left out: it flips between front and back views and under the training's
    horizontal flips.) Body proportions differ between people by a few percent of the
    height only.
    """
    return (identity.hair.style, identity.upper.pattern, identity.upper.sleeves,
            "coat" if identity.upper.length > COAT_LENGTH else "no coat", identity.lower.kind,
            identity.accessory.kind)


def look_alike(a: Identity, b: Identity) -> bool:
    """Whether ``a`` and ``b`` look alike across modalities: the same :func:`cross_modal_traits`,
    and stripe/check frequency, coat length and shorts/skirt length within
    :data:`LOOK_ALIKE_TOLERANCE` (a logo or a plain garment has no frequency to tell)."""
    if cross_modal_traits(a) != cross_modal_traits(b):
        return False
    tol = LOOK_ALIKE_TOLERANCE
    if a.upper.pattern in ("hstripes", "vstripes", "checks") and \
            abs(a.upper.pattern_freq - b.upper.pattern_freq) >= tol["pattern_freq"]:
        return False
    if a.upper.length > COAT_LENGTH and abs(a.upper.length - b.upper.length) >= tol["coat_length"]:
        return False
    return a.lower.kind == "trousers" or abs(a.lower.length - b.lower.length) < tol["lower_length"]


def look_alike_pairs(identities: Sequence[Identity]) -> list[tuple[int, int]]:
    """Index pairs ``(i, j)``, ``i < j``, of people that :func:`look_alike`: across modalities
    they differ only by a few percent in body proportions (and small differences in pattern
    or garment length), so even a good cross-modal model may confuse them, like two people
    in the same uniform."""
    n = len(identities)
    return [(i, j) for i in range(n) for j in range(i + 1, n) if look_alike(identities[i], identities[j])]


# --------------------------------------------------------------------------- drawing

_SHIFT = 4
_ONE = 1 << _SHIFT


def _p(x: float, y: float) -> tuple[int, int]:
    return (int(round(x * _ONE)), int(round(y * _ONE)))


class _Canvas:
    """Label + shade map (uint8, H x W x 2) drawn with OpenCV primitives, subpixel."""

    def __init__(self, h: int, w: int) -> None:
        self.img = np.zeros((h, w, 2), np.uint8)
        self.img[..., 1] = 255

    def poly(self, pts: Sequence[tuple[float, float]], label: int, shade: int = 255) -> None:
        arr = np.array([_p(x, y) for x, y in pts], np.int32)
        cv2.fillPoly(self.img, [arr], (label, shade), cv2.LINE_8, _SHIFT)

    def line(self, a: tuple[float, float], b: tuple[float, float], thick: float, label: int, shade: int = 255) -> None:
        cv2.line(self.img, _p(*a), _p(*b), (label, shade), max(1, int(round(thick))), cv2.LINE_8, _SHIFT)

    def polyline(self, pts: Sequence[tuple[float, float]], thick: float, label: int, shade: int = 255) -> None:
        for a, b in zip(pts[:-1], pts[1:]):
            self.line(a, b, thick, label, shade)

    def ellipse(self, c: tuple[float, float], axes: tuple[float, float], label: int, shade: int = 255,
                angle: float = 0.0, start: float = 0.0, end: float = 360.0) -> None:
        ax = (max(1, int(round(axes[0] * _ONE))), max(1, int(round(axes[1] * _ONE))))
        cv2.ellipse(self.img, _p(*c), ax, angle, start, end, (label, shade), -1, cv2.LINE_8, _SHIFT)

    def circle(self, c: tuple[float, float], r: float, label: int, shade: int = 255) -> None:
        cv2.circle(self.img, _p(*c), max(1, int(round(r * _ONE))), (label, shade), -1, cv2.LINE_8, _SHIFT)


def _polyline_prefix(pts: Sequence[tuple[float, float]], frac: float) -> list[tuple[float, float]]:
    """The first ``frac`` (by length) of a polyline."""
    seg = [math.dist(a, b) for a, b in zip(pts[:-1], pts[1:])]
    target = max(0.0, min(1.0, frac)) * sum(seg)
    out = [pts[0]]
    for (a, b), length in zip(zip(pts[:-1], pts[1:]), seg):
        if target >= length:
            out.append(b)
            target -= length
            continue
        t = target / length if length > 0 else 0.0
        out.append((a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])))
        break
    return out


@dataclass(frozen=True)
class _PatternFrame:
    cx: float
    half_width: float
    top: float
    bottom: float
    logo: bool


class _Limbs:
    """Sleeve / trouser covering of arms and legs for one identity."""

    def __init__(self, idt: Identity) -> None:
        # fraction of the arm (shoulder to wrist, by length) the sleeve covers
        self.sleeve = {"none": 0.0, "short": 0.23, "long": 1.0}[idt.upper.sleeves]
        self.lower_kind = idt.lower.kind
        self.lower_len = idt.lower.length


def _draw_arm(cv: _Canvas, pts: list[tuple[float, float]], t_up: float, t_fore: float, hand_r: float,
              limbs: _Limbs, shade: int) -> None:
    """Arm polyline shoulder -> elbow -> wrist with skin, sleeve and hand."""
    cv.line(pts[0], pts[1], t_up, _SKIN, shade)
    cv.line(pts[1], pts[2], t_fore, _SKIN, shade)
    if limbs.sleeve > 0:
        cv.polyline(_polyline_prefix(pts, limbs.sleeve), t_up * 1.15, _UPPER, shade)
    cv.circle(pts[2], hand_r, _SKIN, shade)


def _leg_profile_poly(nodes: Sequence[tuple[float, float, float]], y0: float, y1: float,
                      widen: float = 0.0) -> list[tuple[float, float]]:
    """Polygon of a leg between heights y0 < y1; ``nodes`` = (y, x_center, half_width)."""
    ys = np.array([n[0] for n in nodes])
    xs = np.array([n[1] for n in nodes])
    hws = np.array([n[2] for n in nodes]) + widen
    inner = [y for y in ys if y0 < y < y1]
    yy = np.array([y0, *inner, y1])
    xc = np.interp(yy, ys, xs)
    hw = np.interp(yy, ys, hws)
    left = list(zip(xc - hw, yy))
    right = list(zip(xc + hw, yy))
    return left + right[::-1]


def _draw_front_back(cv: _Canvas, idt: Identity, H: float, W: float, phase: float, back: bool,
                     spread: float, stance: float) -> _PatternFrame:
    b = idt.body
    limbs = _Limbs(idt)
    cx = (W - 1) / 2  # OpenCV pixel centres are integers: this is the mirror axis
    s = math.sin(2 * math.pi * phase)
    build = b.shoulder_width / 0.245
    top = 0.025 * H
    hh = b.head_size * H
    hw = 0.78 * hh
    head_cy = top + hh / 2
    shoulder_y = top + hh + 0.035 * H
    hip_y = H * (1 - b.leg_length)
    ground = 0.995 * H
    sw = b.shoulder_width * H
    hpw = b.hip_width * H
    waist_y = shoulder_y + 0.62 * (hip_y - shoulder_y)
    ww = min(sw * 0.8, hpw * 0.98)
    hem_y = hip_y - 0.02 * H + idt.upper.length * H
    hem_w = hpw * (1.0 + 2.0 * max(0.0, idt.upper.length - 0.04))

    # legs
    shoe_h = 0.03 * H
    leg_nodes = []
    for sx in (-1, 1):
        lift = 0.035 * H * max(0.0, sx * s)
        ankle_y = ground - shoe_h - lift
        x_hip = cx + sx * hpw * 0.25
        x_ank = cx + sx * (hpw * 0.2 + stance * H)
        knee_y = (hip_y + ankle_y) / 2
        nodes = [(hip_y - 0.04 * H, x_hip, hpw * 0.26), (knee_y, (x_hip + x_ank) / 2, 0.036 * H * build ** 0.5),
                 (ankle_y, x_ank, 0.026 * H)]
        leg_nodes.append((nodes, x_ank, ankle_y))
    for nodes, x_ank, ankle_y in leg_nodes:
        y_top, y_bot = nodes[0][0], nodes[-1][0]
        if limbs.lower_kind == "trousers":
            cv.poly(_leg_profile_poly(nodes, y_top, y_bot + 0.004 * H), _LOWER)
        else:
            cv.poly(_leg_profile_poly(nodes, y_top, y_bot), _SKIN)
            if limbs.lower_kind == "shorts":
                y_cut = hip_y + limbs.lower_len * (y_bot - hip_y)
                cv.poly(_leg_profile_poly(nodes, y_top, y_cut, widen=0.008 * H), _LOWER)
        cv.ellipse((x_ank, ankle_y + 0.016 * H), (0.036 * H, 0.019 * H), _SHOES)
    # pelvis / skirt
    if limbs.lower_kind == "skirt":
        y_hem = hip_y + limbs.lower_len * (ground - hip_y)
        flare = hpw * (0.62 + 0.35 * limbs.lower_len)
        cv.poly([(cx - hpw * 0.5, hip_y - 0.06 * H), (cx + hpw * 0.5, hip_y - 0.06 * H),
                 (cx + flare, y_hem), (cx - flare, y_hem)], _LOWER)
    else:
        cv.poly([(cx - hpw * 0.5, hip_y - 0.06 * H), (cx + hpw * 0.5, hip_y - 0.06 * H),
                 (cx + hpw * 0.5, hip_y + 0.01 * H), (cx, hip_y + 0.035 * H), (cx - hpw * 0.5, hip_y + 0.01 * H)],
                _LOWER)

    # neck and torso
    cv.line((cx, head_cy), (cx, shoulder_y), 0.42 * hw, _SKIN)
    torso = []
    for sx in (-1, 1):
        side = [(cx + sx * sw * 0.18, shoulder_y - 0.012 * H), (cx + sx * sw * 0.5, shoulder_y + 0.022 * H),
                (cx + sx * sw * 0.45, shoulder_y + 0.1 * H), (cx + sx * ww / 2, waist_y),
                (cx + sx * hem_w / 2, hem_y)]
        torso.extend(side if sx < 0 else side[::-1])
    cv.poly(torso, _UPPER)

    acc = idt.accessory
    if acc.kind == "backpack":
        if back:
            y0, y1 = shoulder_y + 0.015 * H, shoulder_y + 0.6 * (hip_y - shoulder_y) + 0.03 * H
            cv.poly([(cx - sw * 0.33, y0 + 0.02 * H), (cx - sw * 0.28, y0), (cx + sw * 0.28, y0),
                     (cx + sw * 0.33, y0 + 0.02 * H), (cx + sw * 0.36, y1), (cx - sw * 0.36, y1)], _ACC)
            cv.poly([(cx - sw * 0.25, y1 - 0.09 * H), (cx + sw * 0.25, y1 - 0.09 * H),
                     (cx + sw * 0.27, y1 - 0.01 * H), (cx - sw * 0.27, y1 - 0.01 * H)], _ACC, 200)
        else:
            for sx in (-1, 1):
                cv.line((cx + sx * sw * 0.27, shoulder_y - 0.006 * H), (cx + sx * sw * 0.3, shoulder_y + 0.17 * H),
                        0.022 * H, _ACC)

    # long hair falls over the back (back view) or over the shoulders (front view)
    style = idt.hair.style
    if back and style == "long":
        cv.poly([(cx - hw * 0.55, head_cy), (cx + hw * 0.55, head_cy), (cx + hw * 0.6, shoulder_y + 0.12 * H),
                 (cx - hw * 0.6, shoulder_y + 0.12 * H)], _HAIR)
    if back and style == "ponytail":
        cv.ellipse((cx, top + hh * 1.05), (hw * 0.17, hh * 0.42), _HAIR)
    if not back and style == "long":
        for sx in (-1, 1):
            cv.poly([(cx + sx * hw * 0.3, head_cy), (cx + sx * hw * 0.56, head_cy),
                     (cx + sx * hw * 0.66, shoulder_y + 0.08 * H), (cx + sx * hw * 0.38, shoulder_y + 0.08 * H)],
                    _HAIR)

    # arms
    t_up, t_fore = 0.058 * H * build, 0.046 * H * build
    l_up, l_fore = 0.175 * H, 0.15 * H
    for sx in (-1, 1):
        swing = 0.45 * s * sx
        sh = (cx + sx * (sw * 0.5 - t_up * 0.45), shoulder_y + 0.03 * H)
        el = (sh[0] + sx * math.sin(spread) * l_up, sh[1] + l_up * math.cos(swing) * math.cos(spread))
        fore_sw = swing + 0.25 * abs(swing)
        wr = (el[0] + sx * math.sin(spread * 1.3) * l_fore, el[1] + l_fore * math.cos(fore_sw) * math.cos(spread))
        _draw_arm(cv, [sh, el, wr], t_up, t_fore, 0.026 * H, limbs, 235)

    # head and hair
    if back:
        cv.ellipse((cx, head_cy), (hw / 2, hh / 2), _SKIN)
        if style != "bald":
            cover = 0.92 if style in ("short",) else 1.02
            cv.ellipse((cx, head_cy - hh * (1 - cover) * 0.5 - 0.02 * hh), (hw * 0.53, hh * 0.5 * cover), _HAIR)
    else:
        if style in ("medium", "long"):
            cv.ellipse((cx, head_cy - 0.02 * hh), (hw * 0.57, hh * 0.54), _HAIR)
            cv.ellipse((cx, head_cy + 0.07 * hh), (hw * 0.41, hh * 0.43), _SKIN)
        else:
            cv.ellipse((cx, head_cy), (hw / 2, hh / 2), _SKIN)
            if style in ("short", "ponytail"):
                cv.ellipse((cx, head_cy - 0.06 * hh), (hw * 0.53, hh * 0.46), _HAIR, start=180, end=360)
        for sx in (-1, 1):
            cv.circle((cx + sx * 0.2 * hw, head_cy + 0.02 * hh), 0.055 * hh, _SKIN, 110)
        cv.line((cx - 0.12 * hw, head_cy + 0.27 * hh), (cx + 0.12 * hw, head_cy + 0.27 * hh), 0.03 * hh, _SKIN, 170)
    if acc.kind == "hat":
        cv.ellipse((cx, head_cy - 0.12 * hh), (hw * 0.56, hh * 0.44), _ACC, start=180, end=360)
        cv.ellipse((cx, head_cy - 0.12 * hh), (hw * (0.64 if not back else 0.56), hh * 0.07), _ACC)

    if acc.kind == "shoulder_bag":
        sb = acc.side if not back else -acc.side
        cv.line((cx - sb * sw * 0.3, shoulder_y - 0.005 * H), (cx + sb * hpw * 0.5, hip_y - 0.05 * H), 0.014 * H, _ACC)
        bx = cx + sb * (hpw * 0.5 + 0.025 * H)
        cv.poly([(bx - 0.05 * H, hip_y - 0.07 * H), (bx + 0.05 * H, hip_y - 0.07 * H),
                 (bx + 0.05 * H, hip_y + 0.02 * H), (bx - 0.05 * H, hip_y + 0.02 * H)], _ACC)
    return _PatternFrame(cx=cx, half_width=sw / 2, top=shoulder_y, bottom=hem_y, logo=not back)


def _draw_side(cv: _Canvas, idt: Identity, H: float, W: float, phase: float, f: int,
               spread: float, stance: float) -> _PatternFrame:
    b = idt.body
    limbs = _Limbs(idt)
    cx = (W - 1) / 2  # OpenCV pixel centres are integers: this is the mirror axis
    w = 2 * math.pi * phase
    s, c = math.sin(w), math.cos(w)
    build = b.shoulder_width / 0.245
    hip_y0 = H * (1 - b.leg_length)
    ground = 0.995 * H
    shoe_h = 0.03 * H
    leg_len = ground - shoe_h - hip_y0
    l1 = l2 = leg_len / 2
    amp = 0.4 + 0.8 * stance
    # (thigh angle from vertical, knee flex, shade) of the far and the near leg; the leg
    # that swings forward (angle increasing) has its knee bent
    legs = [(-amp * s, 0.65 * max(0.0, -c), 200), (amp * s, 0.65 * max(0.0, c), 255)]
    drops = [l1 * math.cos(a) + l2 * math.cos(a - fl) for a, fl, _ in legs]
    oy = leg_len - max(drops)  # body bob: the lowest foot touches the ground

    top = 0.025 * H + oy
    hh = b.head_size * H
    head_cy = top + hh / 2
    shoulder_y = top + hh + 0.035 * H
    hip_y = hip_y0 + oy
    d = b.girth * H
    waist_y = shoulder_y + 0.62 * (hip_y - shoulder_y)
    hem_y = hip_y - 0.02 * H + idt.upper.length * H
    flare = 1.0 + 2.5 * max(0.0, idt.upper.length - 0.04)
    t_up, t_fore = 0.052 * H * build, 0.042 * H * build
    l_up, l_fore = 0.175 * H, 0.15 * H

    def arm(sign: float, shade: int) -> None:
        ang = sign * (0.32 + 1.5 * spread) * s
        sh = (cx - f * d * 0.08, shoulder_y + 0.03 * H)
        el = (sh[0] + f * l_up * math.sin(ang), sh[1] + l_up * math.cos(ang))
        fa = ang + 0.3 + 0.2 * max(0.0, sign * s)
        wr = (el[0] + f * l_fore * math.sin(fa), el[1] + l_fore * math.cos(fa))
        _draw_arm(cv, [sh, el, wr], t_up, t_fore, 0.025 * H, limbs, shade)

    def leg(a: float, flex: float, shade: int) -> None:
        hip = (cx, hip_y - 0.02 * H)
        knee = (hip[0] + f * l1 * math.sin(a), hip_y + l1 * math.cos(a))
        ank = (knee[0] + f * l2 * math.sin(a - flex), knee[1] + l2 * math.cos(a - flex))
        pts = [hip, knee, ank]
        t_th, t_sh = 0.082 * H * build ** 0.5, 0.056 * H
        if limbs.lower_kind == "trousers":
            cv.line(hip, knee, t_th, _LOWER, shade)
            cv.line(knee, ank, t_sh * 1.05, _LOWER, shade)
        else:
            cv.line(hip, knee, t_th, _SKIN, shade)
            cv.line(knee, ank, t_sh, _SKIN, shade)
            if limbs.lower_kind == "shorts":
                cv.polyline(_polyline_prefix(pts, limbs.lower_len), t_th * 1.15, _LOWER, shade)
        cv.ellipse((ank[0] + f * 0.03 * H, ank[1] + 0.014 * H), (0.05 * H, 0.02 * H), _SHOES, shade)

    acc = idt.accessory
    near_bag = acc.kind == "shoulder_bag" and acc.side * f > 0

    def bag() -> None:
        bx = cx + (0.01 * H if near_bag else -0.01 * H)
        cv.poly([(bx - 0.04 * H, hip_y - 0.08 * H), (bx + 0.04 * H, hip_y - 0.08 * H),
                 (bx + 0.045 * H, hip_y + 0.015 * H), (bx - 0.045 * H, hip_y + 0.015 * H)], _ACC,
                255 if near_bag else 205)

    arm(1.0, 200)
    leg(*legs[0])
    if acc.kind == "shoulder_bag" and not near_bag:
        bag()
    cv.poly([(cx - d * 0.47, hip_y - 0.06 * H), (cx + d * 0.47, hip_y - 0.06 * H),
             (cx + d * 0.47, hip_y + 0.02 * H), (cx - d * 0.47, hip_y + 0.02 * H)], _LOWER)
    leg(*legs[1])
    if limbs.lower_kind == "skirt":
        y_hem = hip_y + limbs.lower_len * (ground - hip_y)
        spread_x = d * (0.55 + 0.45 * limbs.lower_len)
        cv.poly([(cx - d * 0.5, hip_y - 0.06 * H), (cx + d * 0.5, hip_y - 0.06 * H),
                 (cx + spread_x, y_hem), (cx - spread_x, y_hem)], _LOWER)

    cv.line((cx + f * 0.05 * hh, head_cy), (cx, shoulder_y), 0.045 * H, _SKIN)
    fx = float(f)
    torso = [(cx - fx * d * 0.35, shoulder_y - 0.015 * H), (cx + fx * d * 0.22, shoulder_y - 0.015 * H),
             (cx + fx * d * 0.5, shoulder_y + 0.045 * H), (cx + fx * d * 0.44, waist_y),
             (cx + fx * d * 0.5 * flare, hem_y), (cx - fx * d * 0.5 * flare, hem_y),
             (cx - fx * d * 0.42, waist_y), (cx - fx * d * 0.52, shoulder_y + 0.05 * H)]
    cv.poly(torso, _UPPER)

    style = idt.hair.style
    hcx = cx + fx * 0.06 * hh
    if style == "long":
        cv.poly([(hcx - fx * 0.05 * hh, head_cy), (hcx - fx * 0.48 * hh, head_cy),
                 (cx - fx * d * 0.62, shoulder_y + 0.11 * H), (cx - fx * d * 0.2, shoulder_y + 0.11 * H)], _HAIR)
    if acc.kind == "backpack":
        x0, x1 = cx - fx * d * 0.4, cx - fx * (d * 0.5 + 0.085 * H)
        y0, y1 = shoulder_y + 0.01 * H, shoulder_y + 0.6 * (hip_y - shoulder_y) + 0.03 * H
        cv.poly([(x0, y0), (x1 + fx * 0.015 * H, y0), (x1, y0 + 0.03 * H), (x1, y1), (x0, y1)], _ACC)
        cv.line((cx - fx * d * 0.25, shoulder_y - 0.008 * H), (cx + fx * d * 0.4, shoulder_y + 0.13 * H), 0.02 * H,
                _ACC)
    # head: skin, hair sector over the back/top, nose
    cv.ellipse((hcx, head_cy), (0.44 * hh, 0.5 * hh), _SKIN)
    cv.circle((hcx + fx * 0.42 * hh, head_cy + 0.05 * hh), 0.08 * hh, _SKIN)
    if style != "bald":
        start, end = (130.0, 335.0) if f > 0 else (205.0, 410.0)
        if style == "short":
            start, end = (150.0, 330.0) if f > 0 else (210.0, 390.0)
        cv.ellipse((hcx - fx * 0.03 * hh, head_cy - 0.02 * hh), (0.47 * hh, 0.52 * hh), _HAIR, start=start, end=end)
        if style == "ponytail":
            cv.ellipse((hcx - fx * 0.5 * hh, head_cy + 0.15 * hh), (0.14 * hh, 0.34 * hh), _HAIR, angle=fx * 25)
    cv.circle((hcx + fx * 0.25 * hh, head_cy - 0.02 * hh), 0.05 * hh, _SKIN, 110)
    if acc.kind == "hat":
        cv.ellipse((hcx, head_cy - 0.12 * hh), (0.5 * hh, 0.44 * hh), _ACC, start=180, end=360)
        cv.ellipse((hcx + fx * 0.25 * hh, head_cy - 0.12 * hh), (0.5 * hh, 0.07 * hh), _ACC)

    arm(-1.0, 255)
    if near_bag:
        cv.line((cx - fx * d * 0.3, shoulder_y), (cx, hip_y - 0.06 * H), 0.014 * H, _ACC)
        bag()
    return _PatternFrame(cx=cx, half_width=d / 2, top=shoulder_y, bottom=hem_y, logo=False)


def _pattern_mask(idt: Identity, frame: _PatternFrame, h: int, w: int) -> np.ndarray | None:
    """Bool (h, w) mask where the upper garment shows the pattern colour/fabric."""
    up = idt.upper
    if up.pattern == "plain":
        return None
    u = (np.arange(w, dtype=np.float32) - frame.cx) / (2 * frame.half_width)  # ~[-0.5, 0.5] over the torso
    v = (np.arange(h, dtype=np.float32) - frame.top) / max(1.0, frame.bottom - frame.top)  # 0..1
    if up.pattern == "logo":
        if not frame.logo:
            return None
        cu = (np.abs(u) < 0.2)[None, :]
        cvv = ((v > 0.16) & (v < 0.42))[:, None]
        return cu & cvv
    fv = up.pattern_freq
    fu = up.pattern_freq * 0.8
    hs = ((v * fv + up.pattern_phase) % 1.0 < 0.5)[:, None]
    vs = ((u * fu + up.pattern_phase) % 1.0 < 0.5)[None, :]
    if up.pattern == "hstripes":
        return np.broadcast_to(hs, (h, w))
    if up.pattern == "vstripes":
        return np.broadcast_to(vs, (h, w))
    return hs ^ vs  # checks


def _apparent(emissivity: float, surface: float) -> float:
    """Apparent thermal brightness (0..1) of a surface: emitted + reflected."""
    return emissivity * surface + (1.0 - emissivity) * _T_REFLECTED


def _thermal_lut(idt: Identity) -> np.ndarray:
    """Per-label apparent brightness (float32, shape (8,)), independent of colours."""
    up = idt.upper
    lut = np.zeros(_N_LABELS, np.float32)
    lut[_SKIN] = _apparent(0.98, 0.93)
    lut[_HAIR] = _apparent(0.9, 0.58)
    lut[_UPPER] = _apparent(up.emissivity, 0.74)
    lut[_UPPER2] = _apparent(float(np.clip(up.emissivity + up.pattern_emissivity_delta, 0.05, 0.99)), 0.74)
    lut[_LOWER] = _apparent(idt.lower.emissivity, 0.66)
    lut[_SHOES] = _apparent(idt.shoes.emissivity, 0.45)
    acc = idt.accessory
    lut[_ACC] = _apparent(acc.emissivity, 0.62 if acc.kind == "hat" else 0.42)
    return lut


def _visible_lut(idt: Identity) -> np.ndarray:
    """Per-label BGR colour (float32, shape (8, 3))."""
    lut = np.zeros((_N_LABELS, 3), np.float32)
    lut[_SKIN] = idt.body.skin
    lut[_HAIR] = idt.hair.color
    lut[_UPPER] = idt.upper.color
    lut[_UPPER2] = idt.upper.color2
    lut[_LOWER] = idt.lower.color
    lut[_SHOES] = idt.shoes.color
    lut[_ACC] = idt.accessory.color
    return lut


def _check_view(view: str) -> str:
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    return view


def _render_sprite_float(identity: Identity, modality: Modality, height_px: int, phase: float, view: str,
                         rng: np.random.Generator | None, facing: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Float sprite: VISIBLE -> (h, w, 3) BGR 0..255; INFRARED -> (h, w) 0..255; alpha (h, w)."""
    if height_px < 8:
        raise ValueError(f"height_px must be >= 8, got {height_px}")
    _check_view(view)
    if facing is not None and facing not in (-1, 1):
        raise ValueError(f"facing must be +1 (right), -1 (left) or None, got {facing!r}")
    if rng is not None:
        spread = float(rng.uniform(0.04, 0.16))
        stance = float(rng.uniform(0.0, 0.02))
        side_f = 1 if rng.random() < 0.5 else -1
    else:
        spread, stance, side_f = 0.1, 0.01, 1
    if facing is None:
        facing = side_f
    phase = float(phase) % 1.0
    h = int(height_px)
    w = max(4, int(round(0.56 * h)))
    ss = max(2, min(8, math.ceil(160 / h)))
    H, W = h * ss, w * ss
    cv = _Canvas(H, W)
    if view == "side":
        frame = _draw_side(cv, identity, H, W, phase, facing, spread, stance)
    else:
        frame = _draw_front_back(cv, identity, H, W, phase, view == "back", spread, stance)
    label = cv.img[..., 0]
    mask = _pattern_mask(identity, frame, H, W)
    if mask is not None:
        label = label.copy()
        label[(label == _UPPER) & mask] = _UPPER2
    alpha = cv2.resize((label > 0).astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    # shading is smooth: apply it after downsampling (cheaper than at full resolution)
    shade = cv2.resize(np.ascontiguousarray(cv.img[..., 1]), (w, h), interpolation=cv2.INTER_AREA).astype(np.float32) * (1.0 / 255.0)
    table = np.zeros((256, 1, 3) if modality is Modality.VISIBLE else (256, 1), np.float32)
    if modality is Modality.VISIBLE:
        table[:_N_LABELS, 0] = _visible_lut(identity)
        img_hi = cv2.LUT(cv2.merge((label, label, label)), table)
        xs = (np.arange(w, dtype=np.float32) + 0.5 - w / 2) / (0.3 * h)
        ys = (np.arange(h, dtype=np.float32) + 0.5) / h
        factor = shade * np.outer(1.06 - 0.12 * ys, np.clip(1.0 - 0.45 * xs * xs, 0.55, 1.0))
    else:
        table[:_N_LABELS, 0] = _thermal_lut(identity) * 255.0
        img_hi = cv2.LUT(label, table)
        factor = 1.0 - 0.25 * (1.0 - shade)
    img = cv2.resize(img_hi, (w, h), interpolation=cv2.INTER_AREA)  # premultiplied by coverage
    nz = alpha > 1e-3
    inv = np.zeros_like(alpha)
    inv[nz] = 1.0 / alpha[nz]
    factor = factor * inv  # un-premultiply and shade in one go
    img = img * (factor[..., None] if img.ndim == 3 else factor)
    return img.astype(np.float32), np.clip(alpha, 0.0, 1.0)


def render_sprite(identity: Identity, modality: Modality | str, height_px: int, phase: float, view: str,
                  rng: np.random.Generator | None, *, facing: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The person alone (no background), for compositing.

    Args:
        identity: who.
        modality: VISIBLE (colour) or INFRARED (thermal-like, B = G = R).
        height_px: sprite height in pixels (the person spans it, head to sole); the
            width is ``round(0.56 * height_px)`` with the person centred.
        phase: walking-cycle phase in [0, 1) (taken modulo 1): legs and arms swing.
        view: ``"front"``, ``"back"`` or ``"side"``.
        rng: small pose jitter (arm spread, stance) and, for ``"side"`` with
            ``facing=None``, the walking direction; ``None`` gives a fixed pose.
        facing: side view only: +1 walks to the right (+x), -1 to the left.

    Returns:
        ``(bgr, alpha)``: ``bgr`` uint8 (h, w, 3), straight (not premultiplied)
        colour; ``alpha`` float32 (h, w) in [0, 1]. IR brightness is on a nominal
        scale (apparent temperature x 255) before any camera gain.
    """
    modality = Modality.parse(modality)
    img, alpha = _render_sprite_float(identity, modality, height_px, phase, view, rng, facing)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return out, alpha


# --------------------------------------------------------------------------- cameras


@dataclass(frozen=True)
class CameraStyle:
    """Look of one camera. Visible fields: ``wall``, ``floor``, ``accents``, ``tint``,
    ``brightness``, ``contrast``. IR fields: ``bg_level``, ``floor_delta``,
    ``warm_prob``, ``gain``, ``offset``, ``fpn``. Shared: ``horizon``, ``noise``,
    ``blur`` (sigma in pixels at 128 px crop height; IR blur is always applied).
    """

    modality: Modality
    indoor: bool
    wall: Color
    floor: Color
    accents: tuple[Color, ...]
    horizon: float
    tint: tuple[float, float, float]
    brightness: float
    contrast: float
    noise: float
    blur: float
    bg_level: float
    floor_delta: float
    warm_prob: float
    gain: float
    offset: float
    fpn: float


_INDOOR_WALLS: tuple[Color, ...] = ((200, 210, 215), (170, 180, 190), (150, 160, 150), (210, 200, 180),
                                    (120, 130, 140), (190, 190, 190))
_INDOOR_FLOORS: tuple[Color, ...] = ((110, 120, 130), (80, 90, 110), (150, 150, 150), (60, 80, 100), (130, 140, 120))
_OUTDOOR_WALLS: tuple[Color, ...] = ((60, 110, 70), (120, 120, 115), (90, 100, 110), (150, 140, 130),
                                     (50, 80, 60), (170, 160, 150))
_OUTDOOR_FLOORS: tuple[Color, ...] = ((100, 100, 100), (90, 95, 105), (120, 125, 130), (70, 80, 85), (80, 110, 120))


def sample_camera_style(modality: Modality | str, rng: np.random.Generator, indoor: bool | None = None) -> CameraStyle:
    """Draw a random camera look for ``modality`` (indoor/outdoor random if ``None``)."""
    modality = Modality.parse(modality)
    if indoor is None:
        indoor = bool(rng.random() < 0.5)
    walls = _INDOOR_WALLS if indoor else _OUTDOOR_WALLS
    floors = _INDOOR_FLOORS if indoor else _OUTDOOR_FLOORS
    accents = tuple(_random_cloth_color(rng, _CLOTH_PALETTE if k == 0 else walls + floors) for k in range(3))
    t = rng.normal(0.0, 0.035, 3)
    return CameraStyle(
        modality=modality,
        indoor=indoor,
        wall=_jitter_color(walls[int(rng.integers(len(walls)))], rng, 10.0),
        floor=_jitter_color(floors[int(rng.integers(len(floors)))], rng, 10.0),
        accents=accents,
        horizon=float(rng.uniform(0.55, 0.85)),
        tint=(float(1 + t[0]), float(1 + t[1]), float(1 + t[2])),
        brightness=float(rng.uniform(-25, 20)),
        contrast=float(rng.uniform(0.8, 1.15)),
        noise=float(rng.uniform(1.5, 4.0)),
        blur=float(rng.uniform(0.7, 1.3) if modality is Modality.INFRARED else rng.uniform(0.0, 0.5)),
        bg_level=float(rng.uniform(0.14, 0.36) if indoor else rng.uniform(0.08, 0.3)),
        floor_delta=float(rng.uniform(-0.06, 0.06)),
        warm_prob=float(rng.uniform(0.05, 0.3)),
        gain=float(rng.uniform(0.85, 1.2)),
        offset=float(rng.uniform(-25, 15)),
        fpn=float(rng.uniform(0.0, 2.0)),
    )


def _low_freq(rng: np.random.Generator, h: int, w: int, channels: int, grid: tuple[int, int] = (3, 2)) -> np.ndarray:
    """Smooth unit-variance-ish noise (float32, (h, w) or (h, w, c)) by bicubic upsampling."""
    shape = (grid[0], grid[1]) if channels == 1 else (grid[0], grid[1], channels)
    small = rng.standard_normal(shape, dtype=np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def render_background(style: CameraStyle, size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Random textured background for ``style``.

    Returns float32 in grey levels (0..255 nominal): VISIBLE (h, w, 3) BGR; INFRARED
    (h, w) apparent temperature x 255 (before the camera's gain/offset).
    """
    h, w = size
    hy = int(round(h * float(np.clip(style.horizon + rng.normal(0.0, 0.04), 0.3, 0.95))))
    n_rect = int(rng.integers(0, 4))
    if style.modality is Modality.VISIBLE:
        img = np.empty((h, w, 3), np.float32)
        img[:hy] = np.asarray(style.wall, np.float32) + rng.normal(0.0, 8.0, 3).astype(np.float32)
        img[hy:] = np.asarray(style.floor, np.float32) + rng.normal(0.0, 8.0, 3).astype(np.float32)
        img += _low_freq(rng, h, w, 1)[..., None] * 12.0 + _low_freq(rng, h, w, 3) * 4.0
        for _ in range(n_rect):
            color = style.accents[int(rng.integers(len(style.accents)))]
            x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
            rw, rh = int(rng.integers(w // 8, w // 2 + 1)), int(rng.integers(h // 8, h // 2 + 1))
            col = tuple(float(c) * float(rng.uniform(0.8, 1.1)) for c in color)
            cv2.rectangle(img, (x0, y0), (x0 + rw, y0 + rh), col, -1)
        img += _low_freq(rng, h, w, 1, (8, 4))[..., None] * 5.0  # fine shading texture
        return img
    base = style.bg_level * 255.0 + rng.normal(0.0, 6.0)
    img = np.empty((h, w), np.float32)
    img[:hy] = base
    img[hy:] = base + style.floor_delta * 255.0
    img += _low_freq(rng, h, w, 1) * 10.0
    for _ in range(n_rect):
        x0, y0 = int(rng.integers(-w // 4, w)), int(rng.integers(-h // 4, h))
        rw, rh = int(rng.integers(w // 8, w // 2 + 1)), int(rng.integers(h // 8, h // 2 + 1))
        cv2.rectangle(img, (x0, y0), (x0 + rw, y0 + rh), float(base + rng.normal(0.0, 14.0)), -1)
    if rng.random() < style.warm_prob:  # radiator, lamp, engine: a warm distractor
        c = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        ax = (int(rng.integers(2, max(3, w // 5))), int(rng.integers(2, max(3, h // 6))))
        cv2.ellipse(img, c, ax, 0.0, 0.0, 360.0, float(rng.uniform(0.55, 0.8) * 255.0), -1)
    return img


def _paste(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray, y: int, x: int) -> None:
    """Alpha-blend ``src`` (straight colour) into ``dst`` at top-left (y, x), clipped."""
    h, w = alpha.shape
    H, W = dst.shape[:2]
    y0, x0 = max(0, y), max(0, x)
    y1, x1 = min(H, y + h), min(W, x + w)
    if y0 >= y1 or x0 >= x1:
        return
    a = alpha[y0 - y:y1 - y, x0 - x:x1 - x]
    s = src[y0 - y:y1 - y, x0 - x:x1 - x]
    d = dst[y0:y1, x0:x1]
    if d.ndim == 3:
        a = a[..., None]
    d += a * (s - d)


def render_crop(identity: Identity, modality: Modality | str, rng: np.random.Generator,
                size: tuple[int, int] = (128, 64), camera_style: CameraStyle | None = None, *,
                view: str | None = None, facing: int | None = None) -> np.ndarray:
    """A re-id style person crop.

    Random background (``camera_style``'s, or a random camera's), the person filling
    75-95 % of the height with a small translation, random walking phase and view
    (unless ``view`` is given), then camera effects: VISIBLE gets tint, brightness/
    contrast jitter, optional blur and noise; INFRARED gets the camera's gain/offset
    with per-frame AGC jitter, thermal blur, column fixed-pattern and temporal noise.

    The geometric draws (view, phase, scale, shift, pose) are taken from ``rng``
    first and in the same way for both modalities, so the same seed gives the same
    pose in RGB and IR (co-registered pairs, as in RegDB).

    Args:
        identity: who.
        modality: VISIBLE or INFRARED.
        rng: the only source of randomness.
        size: ``(height, width)`` of the crop, each >= 16.
        camera_style: camera look; must have the same modality.
        view: force ``"front"``/``"back"``/``"side"``; ``None`` = random.
        facing: side view walking direction (+1 right, -1 left); ``None`` = random.

    Returns:
        uint8 (height, width, 3) BGR; for INFRARED B == G == R.
    """
    modality = Modality.parse(modality)
    H, W = int(size[0]), int(size[1])
    if H < 16 or W < 8:
        raise ValueError(f"size must be (height >= 16, width >= 8), got {size!r}")
    if camera_style is not None and camera_style.modality is not modality:
        raise ValueError(f"camera_style is for {camera_style.modality.name}, the crop for {modality.name}")
    if view is not None:
        _check_view(view)
    # geometry: identical draws for both modalities
    v_draw = VIEWS[int(rng.choice(3, p=(0.4, 0.35, 0.25)))]
    view = view or v_draw
    phase = float(rng.random())
    fill = float(rng.uniform(0.75, 0.95))
    dx = float(rng.normal(0.0, 0.04)) * W
    dy = float(rng.normal(0.0, 0.025)) * H
    sprite_rng = np.random.default_rng(int(rng.integers(2**62)))
    sh = max(8, int(round(fill * H)))
    fg, alpha = _render_sprite_float(identity, modality, sh, phase, view, sprite_rng, facing)
    # camera and background
    style = camera_style if camera_style is not None else sample_camera_style(modality, rng)
    img = render_background(style, (H, W), rng)
    sw = alpha.shape[1]
    _paste(img, fg, alpha, int(round((H - sh) / 2 + dy)), int(round((W - sw) / 2 + dx)))
    scale = H / 128.0
    if modality is Modality.VISIBLE:
        contrast = style.contrast * float(rng.uniform(0.85, 1.15))
        bright = style.brightness + float(rng.normal(0.0, 10.0))
        img = (img - 128.0) * contrast + (128.0 + bright)
        img *= np.asarray(style.tint, np.float32)
        sigma = style.blur + (float(rng.uniform(0.3, 1.0)) if rng.random() < 0.35 else 0.0)
        if sigma * scale > 0.25:
            img = cv2.GaussianBlur(img, (0, 0), sigma * scale)
        img += rng.standard_normal(img.shape, dtype=np.float32) * (style.noise * float(rng.uniform(0.7, 1.3)))
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)
    gain = style.gain * float(rng.uniform(0.92, 1.08))
    offset = style.offset + float(rng.normal(0.0, 6.0))
    img = img * gain + offset
    img = cv2.GaussianBlur(img, (0, 0), style.blur * scale * float(rng.uniform(0.85, 1.15)))
    img += (rng.standard_normal(W, dtype=np.float32) * style.fpn)[None, :]
    img += rng.standard_normal(img.shape, dtype=np.float32) * (style.noise * float(rng.uniform(0.7, 1.3)))
    gray = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return cv2.merge((gray, gray, gray))
