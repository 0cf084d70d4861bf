"""Materials and the thermal (IR) brightness of a person's parts.

An infrared render never looks at colours: each part of a person gets the apparent
brightness of a warm surface seen through its material's *emissivity*, plus what the
surface reflects of its (cold) surroundings. Skin is warm and bright, hair mid-warm,
clothing as bright as its fabric's emissivity makes it, so two garments of one colour can
differ in IR and two of different colours can look the same. Patterns show in IR through
a small emissivity modulation of the pattern fabric (``pattern_emissivity_delta``).

This module owns :data:`MATERIALS` (emissivity range of each material), which materials
each kind of garment is made of (and how often), the draw of a material
(:func:`sample_material`) and the per-part brightness (:func:`part_brightness`) that the
rasteriser (:mod:`mvd_edge.synth.raster`) turns into its IR look-up table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # annotations only: identity imports this module for the materials
    from mvd_edge.synth.identity import Identity

__all__ = ["MATERIALS", "apparent", "part_brightness", "sample_material"]

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

# What each kind of garment is made of (and, where given, how often).
UPPER_MATERIALS = ("cotton", "wool", "polyester", "nylon", "down", "leather")
UPPER_MATERIAL_P = (0.34, 0.16, 0.2, 0.12, 0.1, 0.08)
LOWER_MATERIALS = ("denim", "cotton", "polyester", "wool", "leather")
LOWER_MATERIAL_P = (0.38, 0.27, 0.2, 0.1, 0.05)
SHOE_MATERIALS = ("leather", "rubber", "canvas")
BAG_MATERIALS = ("nylon", "canvas", "leather", "polyester")
HAT_MATERIALS = ("wool", "cotton", "polyester", "nylon")

_T_REFLECTED = 0.2  # apparent temperature reflected by low-emissivity surfaces (cold surroundings)


def sample_material(rng: np.random.Generator, names: Sequence[str],
                    p: Sequence[float] | None = None) -> tuple[str, float]:
    """One of ``names`` (probabilities ``p``) and an emissivity uniform in its :data:`MATERIALS` range."""
    name = str(names[int(rng.choice(len(names), p=p))])
    lo, hi = MATERIALS[name]
    return name, float(rng.uniform(lo, hi))


def apparent(emissivity: float, surface: float) -> float:
    """Apparent thermal brightness (0..1) of a surface: emitted + reflected."""
    return emissivity * surface + (1.0 - emissivity) * _T_REFLECTED


def part_brightness(idt: Identity) -> dict[str, float]:
    """Apparent brightness (0..1) of each part of ``idt`` in IR, independent of colours.

    Keys: ``skin``, ``hair``, ``upper``, ``upper2`` (the pattern fabric), ``lower``,
    ``shoes``, ``accessory``. The surface temperatures (second argument of
    :func:`apparent`) say how warm each part's surface is: skin most, a hat (on the head)
    more than a bag.
    """
    up = idt.upper
    acc = idt.accessory
    return {
        "skin": apparent(0.98, 0.93),
        "hair": apparent(0.9, 0.58),
        "upper": apparent(up.emissivity, 0.74),
        "upper2": apparent(float(np.clip(up.emissivity + up.pattern_emissivity_delta, 0.05, 0.99)), 0.74),
        "lower": apparent(idt.lower.emissivity, 0.66),
        "shoes": apparent(idt.shoes.emissivity, 0.45),
        "accessory": apparent(acc.emissivity, 0.62 if acc.kind == "hat" else 0.42),
    }
