"""Who a synthetic person is: the appearance traits and the random draw of a population.

An :class:`Identity` is a frozen bundle of appearance parameters (build, hair, garments,
shoes, accessory). The same identity renders in :attr:`Modality.VISIBLE` with its colours
and in :attr:`Modality.INFRARED` from its materials' emissivities only
(:mod:`mvd_edge.synth.thermal`), so cross-modal matching has to rely on shape and pattern
cues (build, hair style, garment lengths, stripes/checks/logo, accessories): learnable,
but not trivial. Drawing is :mod:`mvd_edge.synth.raster`'s, which identities look alike
across modalities :mod:`mvd_edge.synth.lookalike`'s.

This module owns the trait vocabularies (:data:`HAIR_STYLES`, :data:`PATTERNS`, ...), the
trait dataclasses and :func:`sample_identity` / :func:`sample_identities`. Everything
random comes from an explicit ``numpy.random.Generator``; identity ``i`` of
``sample_identities(n, seed)`` depends only on ``(seed, i)``. The order of the draws in
:func:`sample_identity` is part of the output: changing it changes every synthetic set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mvd_edge.synth.color import CLOTH_PALETTE, Color, jitter_color, luma, random_cloth_color
from mvd_edge.synth.thermal import (
    BAG_MATERIALS,
    HAT_MATERIALS,
    LOWER_MATERIAL_P,
    LOWER_MATERIALS,
    SHOE_MATERIALS,
    UPPER_MATERIAL_P,
    UPPER_MATERIALS,
    sample_material,
)

__all__ = [
    "ACCESSORIES",
    "COAT_LENGTH",
    "HAIR_STYLES",
    "LOWER_KINDS",
    "PATTERNS",
    "SLEEVES",
    "Accessory",
    "Body",
    "Hair",
    "Identity",
    "LowerGarment",
    "Shoes",
    "UpperGarment",
    "sample_identities",
    "sample_identity",
]

HAIR_STYLES: tuple[str, ...] = ("bald", "short", "medium", "long", "ponytail")
PATTERNS: tuple[str, ...] = ("plain", "hstripes", "vstripes", "checks", "logo")
SLEEVES: tuple[str, ...] = ("none", "short", "long")
LOWER_KINDS: tuple[str, ...] = ("trousers", "shorts", "skirt")
ACCESSORIES: tuple[str, ...] = ("none", "backpack", "shoulder_bag", "hat")

COAT_LENGTH = 0.06
"""An upper garment whose hem reaches more than this below the hip (fraction of height) is a coat."""

# Common colours of trousers, shorts and skirts (BGR).
_LOWER_PALETTE: tuple[Color, ...] = (
    (120, 72, 40), (90, 50, 30), (150, 110, 70), (30, 30, 32), (60, 60, 64),
    (128, 128, 128), (110, 158, 180), (70, 100, 120), (220, 220, 220), (50, 70, 40),
)
_HAIR_COLORS: tuple[Color, ...] = ((20, 20, 24), (25, 35, 55), (40, 60, 95), (90, 150, 190), (160, 160, 165))
_HAIR_COLOR_P = (0.45, 0.25, 0.15, 0.08, 0.07)


# --------------------------------------------------------------------------- traits


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


# --------------------------------------------------------------------------- sampling


def _contrasting_color(base: Color, rng: np.random.Generator) -> Color:
    """A pattern colour clearly distinct from ``base`` (luma or chroma)."""
    for _ in range(12):
        c = random_cloth_color(rng, CLOTH_PALETTE)
        if abs(luma(c) - luma(base)) > 55 or np.abs(np.subtract(c, base)).sum() > 260:
            return c
    return (235, 235, 235) if luma(base) < 128 else (25, 25, 25)


def _pick(rng: np.random.Generator, options: Sequence[str], p: Sequence[float]) -> str:
    """One of ``options`` with probabilities ``p`` (one draw)."""
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
        skin=jitter_color(skin, rng, 6.0),
    )
    hair_p = (0.0, 0.12, 0.25, 0.4, 0.23) if female else (0.1, 0.62, 0.2, 0.04, 0.04)
    hair = Hair(
        style=_pick(rng, HAIR_STYLES, hair_p),
        color=jitter_color(_HAIR_COLORS[int(rng.choice(len(_HAIR_COLORS), p=_HAIR_COLOR_P))], rng, 8.0),
    )

    color = random_cloth_color(rng, CLOTH_PALETTE)
    pattern = _pick(rng, PATTERNS, (0.34, 0.2, 0.13, 0.15, 0.18))
    mat, emis = sample_material(rng, UPPER_MATERIALS, UPPER_MATERIAL_P)
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
    mat, emis = sample_material(rng, LOWER_MATERIALS, LOWER_MATERIAL_P)
    lower = LowerGarment(kind=kind, length=length, color=random_cloth_color(rng, _LOWER_PALETTE), material=mat,
                         emissivity=emis)

    mat, emis = sample_material(rng, SHOE_MATERIALS)
    shoes = Shoes(color=random_cloth_color(rng, ((25, 25, 25), (230, 230, 230), (40, 60, 90), (90, 90, 90))),
                  material=mat, emissivity=emis)

    akind = _pick(rng, ACCESSORIES, (0.4, 0.25, 0.2, 0.15))
    mat, emis = sample_material(rng, HAT_MATERIALS if akind == "hat" else BAG_MATERIALS)
    accessory = Accessory(kind=akind, color=random_cloth_color(rng, CLOTH_PALETTE), material=mat, emissivity=emis,
                          side=1 if rng.random() < 0.5 else -1)
    return Identity(body=body, hair=hair, upper=upper, lower=lower, shoes=shoes, accessory=accessory)


_IDENTITY_TAG = 0x1D


def sample_identities(n: int, seed: int) -> list[Identity]:
    """``n`` identities; identity ``i`` depends only on ``(seed, i)``, not on ``n``."""
    for name, value in (("n", n), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return [sample_identity(np.random.default_rng([_IDENTITY_TAG, int(seed), i])) for i in range(int(n))]
