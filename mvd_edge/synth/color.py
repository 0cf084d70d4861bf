"""Colours: the BGR colour type, the common clothing palette and random colour draws.

Shared by the people (:mod:`mvd_edge.synth.identity`: garments, shoes, accessories) and
the cameras (:mod:`mvd_edge.synth.camera`: clothing-coloured accents in a background), so
neither has to reach into the other for it. Colours show only in visible renders; the IR
render never reads them (see :mod:`mvd_edge.synth.thermal`).
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

__all__ = ["CLOTH_PALETTE", "Color", "jitter_color", "luma", "random_cloth_color"]

Color = tuple[int, int, int]
"""A BGR colour, each channel 0..255."""

#: Common clothing colours (BGR).
CLOTH_PALETTE: tuple[Color, ...] = (
    (28, 28, 30), (232, 232, 232), (128, 128, 128), (72, 72, 72), (92, 44, 22),
    (176, 104, 44), (228, 184, 132), (44, 40, 196), (36, 30, 128), (64, 140, 60),
    (44, 110, 110), (40, 200, 228), (30, 120, 236), (180, 150, 236), (128, 52, 110),
    (40, 70, 120), (150, 190, 214), (110, 158, 180), (140, 128, 30), (200, 200, 170),
)


def jitter_color(c: Sequence[int], rng: np.random.Generator, amount: float) -> Color:
    """``c`` plus Gaussian noise of ``amount`` per channel (3 normal draws), clipped to 0..255."""
    v = np.clip(np.asarray(c, np.float64) + rng.normal(0.0, amount, 3), 0, 255)
    return (int(v[0]), int(v[1]), int(v[2]))


def random_cloth_color(rng: np.random.Generator, palette: Sequence[Color]) -> Color:
    """A jittered ``palette`` colour (3 times in 4) or else a random saturated one."""
    if rng.random() < 0.75:
        return jitter_color(palette[int(rng.integers(len(palette)))], rng, 12.0)
    hsv = np.array([[[rng.integers(0, 180), rng.integers(60, 256), rng.integers(50, 250)]]], np.uint8)
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return (int(b), int(g), int(r))


def luma(c: Sequence[int]) -> float:
    """Brightness of a BGR colour (Rec. 601 weights)."""
    return 0.114 * c[0] + 0.587 * c[1] + 0.299 * c[2]
