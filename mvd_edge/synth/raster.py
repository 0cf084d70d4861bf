"""Drawing people: label-map sprites in RGB and IR, and alpha compositing.

A person is drawn with OpenCV primitives on a small label map at 2-8x supersampling
(label + shade per pixel: skin, hair, upper garment and its pattern fabric, lower
garment, shoes, accessory), coloured through a per-label lookup table and area-
downsampled, which gives anti-aliased edges and an alpha matte cheaply (a 128 x 64 crop
takes well under a millisecond or two). The lookup table is what differs between the
modalities: :attr:`Modality.VISIBLE` uses the identity's colours (BGR),
:attr:`Modality.INFRARED` one channel of apparent brightness from
:func:`mvd_edge.synth.thermal.part_brightness` (never the colours), replicated to B = G = R.

This module owns the views (:data:`VIEWS`), the front/back and side drawings with their
walking cycle, the garment patterns, :func:`render_sprite` (the person alone, for the
videos and the crops) and :func:`paste`, the one alpha blend both the crops
(:mod:`mvd_edge.synth.camera`) and the videos (:mod:`mvd_edge.synth.video`) composite with.
Backgrounds and camera effects are :mod:`mvd_edge.synth.camera`'s.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np

from mvd_edge.core.modality import Modality
from mvd_edge.synth.identity import Identity
from mvd_edge.synth.thermal import part_brightness

__all__ = ["VIEWS", "check_view", "paste", "render_sprite", "render_sprite_float"]

VIEWS: tuple[str, ...] = ("front", "back", "side")

# Label values of the supersampled label map.
_BG, _SKIN, _HAIR, _UPPER, _UPPER2, _LOWER, _SHOES, _ACC = range(8)
_N_LABELS = 8
# The label of each part that thermal.part_brightness gives a brightness for.
_PART_LABEL = {"skin": _SKIN, "hair": _HAIR, "upper": _UPPER, "upper2": _UPPER2, "lower": _LOWER,
               "shoes": _SHOES, "accessory": _ACC}

# --------------------------------------------------------------------------- canvas

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

    def trapezoid(self, cx: float, y0: float, half0: float, y1: float, half1: float, label: int,
                  shade: int = 255) -> None:
        """Quadrilateral symmetric about x = ``cx``: half-width ``half0`` at ``y0``, ``half1`` at ``y1``."""
        self.poly([(cx - half0, y0), (cx + half0, y0), (cx + half1, y1), (cx - half1, y1)], label, shade)

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


class _Figure:
    """One identity's layout on the supersampled canvas (pixels), the same in every view; ``oy`` moves
    it down (the side view's bob)."""

    def __init__(self, idt: Identity, H: float, W: float, view: str, oy: float = 0.0) -> None:
        b = idt.body
        self.idt, self.H = idt, H
        self.cx = (W - 1) / 2  # OpenCV pixel centres are integers: this is the mirror axis
        self.build = b.shoulder_width / 0.245
        # fraction of the arm (shoulder to wrist, by length) the sleeve covers
        self.sleeve = {"none": 0.0, "short": 0.23, "long": 1.0}[idt.upper.sleeves]
        self.lower_kind, self.lower_len = idt.lower.kind, idt.lower.length
        self.top = 0.025 * H + oy
        self.hh = b.head_size * H  # head height
        self.head_cy = self.top + self.hh / 2
        self.shoulder_y = self.top + self.hh + 0.035 * H
        self.hip_y = H * (1 - b.leg_length) + oy
        self.ground = 0.995 * H
        self.waist_y = self.shoulder_y + 0.62 * (self.hip_y - self.shoulder_y)
        self.hem_y = self.hip_y - 0.02 * H + idt.upper.length * H
        # widths: shoulders, hips and head (front and back), torso depth (side)
        self.sw, self.hpw, self.hw, self.d = b.shoulder_width * H, b.hip_width * H, 0.78 * self.hh, b.girth * H
        # where the garment pattern goes: half the torso's width, and a logo on the front only
        self.half_width, self.logo = (self.d if view == "side" else self.sw) / 2, view == "front"


def _draw_arm(cv: _Canvas, g: _Figure, pts: list[tuple[float, float]], t_up: float, t_fore: float, hand_r: float,
              shade: int) -> None:
    """Arm polyline shoulder -> elbow -> wrist with skin, sleeve and hand."""
    cv.line(pts[0], pts[1], t_up, _SKIN, shade)
    cv.line(pts[1], pts[2], t_fore, _SKIN, shade)
    if g.sleeve > 0:
        cv.polyline(_polyline_prefix(pts, g.sleeve), t_up * 1.15, _UPPER, shade)
    cv.circle(pts[2], hand_r, _SKIN, shade)


def _leg_profile_poly(nodes: Sequence[tuple[float, float, float]], y0: float, y1: float,
                      widen: float = 0.0) -> list[tuple[float, float]]:
    """Polygon of a leg between heights y0 < y1; ``nodes`` = (y, x_center, half_width)."""
    ys, xs, hws = np.array(nodes, np.float64).T
    yy = np.array([y0, *(y for y in ys if y0 < y < y1), y1])
    xc = np.interp(yy, ys, xs)
    hw = np.interp(yy, ys, hws + widen)
    return list(zip(xc - hw, yy)) + list(zip(xc + hw, yy))[::-1]


def _skirt(cv: _Canvas, g: _Figure, width: float, flare_base: float, flare_gain: float) -> None:
    """A skirt from the hips (``width`` across) to its hem, flaring with its length."""
    y_hem = g.hip_y + g.lower_len * (g.ground - g.hip_y)
    cv.trapezoid(g.cx, g.hip_y - 0.06 * g.H, width * 0.5, y_hem, width * (flare_base + flare_gain * g.lower_len),
                 _LOWER)


def _hat(cv: _Canvas, g: _Figure, x: float, brim_x: float, crown_half_width: float, brim_half_width: float) -> None:
    y = g.head_cy - 0.12 * g.hh
    cv.ellipse((x, y), (crown_half_width, g.hh * 0.44), _ACC, start=180, end=360)
    cv.ellipse((brim_x, y), (brim_half_width, g.hh * 0.07), _ACC)


# --------------------------------------------------------------------------- front and back views


def _front_legs(cv: _Canvas, g: _Figure, s: float, stance: float) -> None:
    """Both legs (skin, trousers or shorts) with their shoes, and the pelvis or the skirt."""
    H, cx, hip_y, hpw = g.H, g.cx, g.hip_y, g.hpw
    shoe_h = 0.03 * H
    for sx in (-1, 1):
        lift = 0.035 * H * max(0.0, sx * s)
        ankle_y = g.ground - shoe_h - lift
        x_hip = cx + sx * hpw * 0.25
        x_ank = cx + sx * (hpw * 0.2 + stance * H)
        knee_y = (hip_y + ankle_y) / 2
        nodes = [(hip_y - 0.04 * H, x_hip, hpw * 0.26), (knee_y, (x_hip + x_ank) / 2, 0.036 * H * g.build ** 0.5),
                 (ankle_y, x_ank, 0.026 * H)]
        y_top, y_bot = nodes[0][0], nodes[-1][0]
        if g.lower_kind == "trousers":
            cv.poly(_leg_profile_poly(nodes, y_top, y_bot + 0.004 * H), _LOWER)
        else:
            cv.poly(_leg_profile_poly(nodes, y_top, y_bot), _SKIN)
            if g.lower_kind == "shorts":
                y_cut = hip_y + g.lower_len * (y_bot - hip_y)
                cv.poly(_leg_profile_poly(nodes, y_top, y_cut, widen=0.008 * H), _LOWER)
        cv.ellipse((x_ank, ankle_y + 0.016 * H), (0.036 * H, 0.019 * H), _SHOES)
    if g.lower_kind == "skirt":
        _skirt(cv, g, hpw, 0.62, 0.35)
    else:
        cv.poly([(cx - hpw * 0.5, hip_y - 0.06 * H), (cx + hpw * 0.5, hip_y - 0.06 * H),
                 (cx + hpw * 0.5, hip_y + 0.01 * H), (cx, hip_y + 0.035 * H), (cx - hpw * 0.5, hip_y + 0.01 * H)],
                _LOWER)


def _front_torso(cv: _Canvas, g: _Figure) -> None:
    """Neck and upper garment."""
    H, cx, shoulder_y, sw = g.H, g.cx, g.shoulder_y, g.sw
    cv.line((cx, g.head_cy), (cx, shoulder_y), 0.42 * g.hw, _SKIN)
    ww = min(sw * 0.8, g.hpw * 0.98)
    hem_w = g.hpw * (1.0 + 2.0 * max(0.0, g.idt.upper.length - 0.04))
    torso = []
    for sx in (-1, 1):
        side = [(cx + sx * sw * 0.18, shoulder_y - 0.012 * H), (cx + sx * sw * 0.5, shoulder_y + 0.022 * H),
                (cx + sx * sw * 0.45, shoulder_y + 0.1 * H), (cx + sx * ww / 2, g.waist_y),
                (cx + sx * hem_w / 2, g.hem_y)]
        torso.extend(side if sx < 0 else side[::-1])
    cv.poly(torso, _UPPER)


def _front_backpack(cv: _Canvas, g: _Figure, back: bool) -> None:
    """The pack seen from behind, its straps from the front."""
    H, cx, shoulder_y, sw = g.H, g.cx, g.shoulder_y, g.sw
    if back:
        y0, y1 = shoulder_y + 0.015 * H, shoulder_y + 0.6 * (g.hip_y - shoulder_y) + 0.03 * H
        cv.poly([(cx - sw * 0.33, y0 + 0.02 * H), (cx - sw * 0.28, y0), (cx + sw * 0.28, y0),
                 (cx + sw * 0.33, y0 + 0.02 * H), (cx + sw * 0.36, y1), (cx - sw * 0.36, y1)], _ACC)
        cv.trapezoid(cx, y1 - 0.09 * H, sw * 0.25, y1 - 0.01 * H, sw * 0.27, _ACC, 200)
    else:
        for sx in (-1, 1):
            cv.line((cx + sx * sw * 0.27, shoulder_y - 0.006 * H), (cx + sx * sw * 0.3, shoulder_y + 0.17 * H),
                    0.022 * H, _ACC)


def _front_long_hair(cv: _Canvas, g: _Figure, back: bool) -> None:
    """Long hair falls over the back (back view) or over the shoulders (front view)."""
    H, cx, head_cy, shoulder_y, hw, style = g.H, g.cx, g.head_cy, g.shoulder_y, g.hw, g.idt.hair.style
    if back and style == "long":
        cv.trapezoid(cx, head_cy, hw * 0.55, shoulder_y + 0.12 * H, hw * 0.6, _HAIR)
    if back and style == "ponytail":
        cv.ellipse((cx, g.top + g.hh * 1.05), (hw * 0.17, g.hh * 0.42), _HAIR)
    if not back and style == "long":
        for sx in (-1, 1):
            cv.poly([(cx + sx * hw * 0.3, head_cy), (cx + sx * hw * 0.56, head_cy),
                     (cx + sx * hw * 0.66, shoulder_y + 0.08 * H), (cx + sx * hw * 0.38, shoulder_y + 0.08 * H)],
                    _HAIR)


def _front_arms(cv: _Canvas, g: _Figure, s: float, spread: float) -> None:
    H, sw = g.H, g.sw
    t_up, t_fore = 0.058 * H * g.build, 0.046 * H * g.build
    l_up, l_fore = 0.175 * H, 0.15 * H
    for sx in (-1, 1):
        swing = 0.45 * s * sx
        sh = (g.cx + sx * (sw * 0.5 - t_up * 0.45), g.shoulder_y + 0.03 * H)
        el = (sh[0] + sx * math.sin(spread) * l_up, sh[1] + l_up * math.cos(swing) * math.cos(spread))
        fore_sw = swing + 0.25 * abs(swing)
        wr = (el[0] + sx * math.sin(spread * 1.3) * l_fore, el[1] + l_fore * math.cos(fore_sw) * math.cos(spread))
        _draw_arm(cv, g, [sh, el, wr], t_up, t_fore, 0.026 * H, 235)


def _front_head(cv: _Canvas, g: _Figure, back: bool) -> None:
    """Head and hair; from the front also the eyes and the mouth."""
    cx, head_cy, hh, hw, style = g.cx, g.head_cy, g.hh, g.hw, g.idt.hair.style
    if back:
        cv.ellipse((cx, head_cy), (hw / 2, hh / 2), _SKIN)
        if style != "bald":
            cover = 0.92 if style in ("short",) else 1.02
            cv.ellipse((cx, head_cy - hh * (1 - cover) * 0.5 - 0.02 * hh), (hw * 0.53, hh * 0.5 * cover), _HAIR)
        return
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


def _draw_front_back(cv: _Canvas, idt: Identity, H: float, W: float, phase: float, back: bool,
                     spread: float, stance: float) -> _Figure:
    """Draw the person from the front or the back, far parts first; returns its figure (for the pattern)."""
    g = _Figure(idt, H, W, "back" if back else "front")
    cx, hip_y, sw, hpw = g.cx, g.hip_y, g.sw, g.hpw
    s = math.sin(2 * math.pi * phase)
    acc = idt.accessory
    _front_legs(cv, g, s, stance)
    _front_torso(cv, g)
    if acc.kind == "backpack":
        _front_backpack(cv, g, back)
    _front_long_hair(cv, g, back)
    _front_arms(cv, g, s, spread)
    _front_head(cv, g, back)
    if acc.kind == "hat":
        _hat(cv, g, cx, cx, g.hw * 0.56, g.hw * (0.64 if not back else 0.56))
    if acc.kind == "shoulder_bag":
        sb = acc.side if not back else -acc.side
        cv.line((cx - sb * sw * 0.3, g.shoulder_y - 0.005 * H), (cx + sb * hpw * 0.5, hip_y - 0.05 * H), 0.014 * H, _ACC)
        bx = cx + sb * (hpw * 0.5 + 0.025 * H)
        cv.trapezoid(bx, hip_y - 0.07 * H, 0.05 * H, hip_y + 0.02 * H, 0.05 * H, _ACC)
    return g


# --------------------------------------------------------------------------- side view


def _side_arm(cv: _Canvas, g: _Figure, f: int, s: float, spread: float, sign: float, shade: int) -> None:
    """The arm that swings forward when ``sign * s`` > 0 (``s``: sine of the walking phase)."""
    H = g.H
    l_up, l_fore = 0.175 * H, 0.15 * H
    ang = sign * (0.32 + 1.5 * spread) * s
    sh = (g.cx - f * g.d * 0.08, g.shoulder_y + 0.03 * H)
    el = (sh[0] + f * l_up * math.sin(ang), sh[1] + l_up * math.cos(ang))
    fa = ang + 0.3 + 0.2 * max(0.0, sign * s)
    wr = (el[0] + f * l_fore * math.sin(fa), el[1] + l_fore * math.cos(fa))
    _draw_arm(cv, g, [sh, el, wr], 0.052 * H * g.build, 0.042 * H * g.build, 0.025 * H, shade)


def _side_leg(cv: _Canvas, g: _Figure, f: int, seg: float, a: float, flex: float, shade: int) -> None:
    """One leg: thigh ``a`` from the vertical, knee bent ``flex``; thigh and shin ``seg`` long."""
    H = g.H
    hip = (g.cx, g.hip_y - 0.02 * H)
    knee = (hip[0] + f * seg * math.sin(a), g.hip_y + seg * math.cos(a))
    ank = (knee[0] + f * seg * math.sin(a - flex), knee[1] + seg * math.cos(a - flex))
    t_th, t_sh = 0.082 * H * g.build ** 0.5, 0.056 * H
    if g.lower_kind == "trousers":
        cv.line(hip, knee, t_th, _LOWER, shade)
        cv.line(knee, ank, t_sh * 1.05, _LOWER, shade)
    else:
        cv.line(hip, knee, t_th, _SKIN, shade)
        cv.line(knee, ank, t_sh, _SKIN, shade)
        if g.lower_kind == "shorts":
            cv.polyline(_polyline_prefix([hip, knee, ank], g.lower_len), t_th * 1.15, _LOWER, shade)
    cv.ellipse((ank[0] + f * 0.03 * H, ank[1] + 0.014 * H), (0.05 * H, 0.02 * H), _SHOES, shade)


def _side_bag(cv: _Canvas, g: _Figure, near: bool) -> None:
    H, hip_y = g.H, g.hip_y
    bx = g.cx + (0.01 * H if near else -0.01 * H)
    cv.trapezoid(bx, hip_y - 0.08 * H, 0.04 * H, hip_y + 0.015 * H, 0.045 * H, _ACC, 255 if near else 205)


def _side_torso(cv: _Canvas, g: _Figure, fx: float) -> None:
    """Neck, upper garment, long hair over the back and a backpack."""
    H, cx, hh, head_cy, shoulder_y, d, idt = g.H, g.cx, g.hh, g.head_cy, g.shoulder_y, g.d, g.idt
    cv.line((cx + fx * 0.05 * hh, head_cy), (cx, shoulder_y), 0.045 * H, _SKIN)
    flare = 1.0 + 2.5 * max(0.0, idt.upper.length - 0.04)
    torso = [(cx - fx * d * 0.35, shoulder_y - 0.015 * H), (cx + fx * d * 0.22, shoulder_y - 0.015 * H),
             (cx + fx * d * 0.5, shoulder_y + 0.045 * H), (cx + fx * d * 0.44, g.waist_y),
             (cx + fx * d * 0.5 * flare, g.hem_y), (cx - fx * d * 0.5 * flare, g.hem_y),
             (cx - fx * d * 0.42, g.waist_y), (cx - fx * d * 0.52, shoulder_y + 0.05 * H)]
    cv.poly(torso, _UPPER)
    if idt.hair.style == "long":
        hcx = cx + fx * 0.06 * hh
        cv.poly([(hcx - fx * 0.05 * hh, head_cy), (hcx - fx * 0.48 * hh, head_cy),
                 (cx - fx * d * 0.62, shoulder_y + 0.11 * H), (cx - fx * d * 0.2, shoulder_y + 0.11 * H)], _HAIR)
    if idt.accessory.kind == "backpack":
        x0, x1 = cx - fx * d * 0.4, cx - fx * (d * 0.5 + 0.085 * H)
        y0, y1 = shoulder_y + 0.01 * H, shoulder_y + 0.6 * (g.hip_y - shoulder_y) + 0.03 * H
        cv.poly([(x0, y0), (x1 + fx * 0.015 * H, y0), (x1, y0 + 0.03 * H), (x1, y1), (x0, y1)], _ACC)
        cv.line((cx - fx * d * 0.25, shoulder_y - 0.008 * H), (cx + fx * d * 0.4, shoulder_y + 0.13 * H), 0.02 * H,
                _ACC)


def _side_head(cv: _Canvas, g: _Figure, f: int) -> None:
    """Head: skin, hair sector over the back/top, nose, ponytail."""
    hh, head_cy, style = g.hh, g.head_cy, g.idt.hair.style
    fx = float(f)
    hcx = g.cx + fx * 0.06 * hh
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


def _draw_side(cv: _Canvas, idt: Identity, H: float, W: float, phase: float, f: int,
               spread: float, stance: float) -> _Figure:
    """Draw the person from the side, facing ``f`` (+1 right), far parts first; returns its figure."""
    w = 2 * math.pi * phase
    s, c = math.sin(w), math.cos(w)
    leg_len = 0.995 * H - 0.03 * H - H * (1 - idt.body.leg_length)
    seg = leg_len / 2  # thigh and shin
    amp = 0.4 + 0.8 * stance
    # (thigh angle from vertical, knee flex, shade) of the far and the near leg; the leg
    # that swings forward (angle increasing) has its knee bent
    legs = [(-amp * s, 0.65 * max(0.0, -c), 200), (amp * s, 0.65 * max(0.0, c), 255)]
    drops = [seg * math.cos(a) + seg * math.cos(a - fl) for a, fl, _ in legs]
    g = _Figure(idt, H, W, "side", oy=leg_len - max(drops))  # body bob: the lowest foot touches the ground
    cx, hip_y, fx, d = g.cx, g.hip_y, float(f), g.d
    acc = idt.accessory
    near_bag = acc.kind == "shoulder_bag" and acc.side * f > 0
    _side_arm(cv, g, f, s, spread, 1.0, 200)
    _side_leg(cv, g, f, seg, *legs[0])
    if acc.kind == "shoulder_bag" and not near_bag:
        _side_bag(cv, g, near=False)
    cv.trapezoid(cx, hip_y - 0.06 * H, d * 0.47, hip_y + 0.02 * H, d * 0.47, _LOWER)
    _side_leg(cv, g, f, seg, *legs[1])
    if g.lower_kind == "skirt":
        _skirt(cv, g, d, 0.55, 0.45)
    _side_torso(cv, g, fx)
    _side_head(cv, g, f)
    if acc.kind == "hat":
        hcx = cx + fx * 0.06 * g.hh
        _hat(cv, g, hcx, hcx + fx * 0.25 * g.hh, 0.5 * g.hh, 0.5 * g.hh)
    _side_arm(cv, g, f, s, spread, -1.0, 255)
    if near_bag:
        cv.line((cx - fx * d * 0.3, g.shoulder_y), (cx, hip_y - 0.06 * H), 0.014 * H, _ACC)
        _side_bag(cv, g, near=True)
    return g


def _pattern_mask(g: _Figure, h: int, w: int) -> np.ndarray | None:
    """Bool (h, w) mask where the upper garment shows the pattern colour/fabric."""
    up = g.idt.upper
    if up.pattern == "plain":
        return None
    u = (np.arange(w, dtype=np.float32) - g.cx) / (2 * g.half_width)  # ~[-0.5, 0.5] over the torso
    v = (np.arange(h, dtype=np.float32) - g.shoulder_y) / max(1.0, g.hem_y - g.shoulder_y)  # 0..1
    if up.pattern == "logo":
        if not g.logo:
            return None
        return (np.abs(u) < 0.2)[None, :] & ((v > 0.16) & (v < 0.42))[:, None]
    hs = ((v * up.pattern_freq + up.pattern_phase) % 1.0 < 0.5)[:, None]
    vs = ((u * (up.pattern_freq * 0.8) + up.pattern_phase) % 1.0 < 0.5)[None, :]
    if up.pattern == "hstripes":
        return np.broadcast_to(hs, (h, w))
    if up.pattern == "vstripes":
        return np.broadcast_to(vs, (h, w))
    return hs ^ vs  # checks


# --------------------------------------------------------------------------- colouring


def _thermal_lut(idt: Identity) -> np.ndarray:
    """Per-label apparent brightness (float32, shape (8,)), independent of colours."""
    lut = np.zeros(_N_LABELS, np.float32)
    for part, value in part_brightness(idt).items():
        lut[_PART_LABEL[part]] = value
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


# --------------------------------------------------------------------------- sprites


def check_view(view: str) -> str:
    """``view`` if it is one of :data:`VIEWS`, else ValueError."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    return view


def render_sprite_float(identity: Identity, modality: Modality, height_px: int, phase: float, view: str,
                        rng: np.random.Generator | None, facing: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Float sprite: VISIBLE -> (h, w, 3) BGR 0..255; INFRARED -> (h, w) 0..255; alpha (h, w)."""
    if height_px < 8:
        raise ValueError(f"height_px must be >= 8, got {height_px}")
    check_view(view)
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
        figure = _draw_side(cv, identity, H, W, phase, facing, spread, stance)
    else:
        figure = _draw_front_back(cv, identity, H, W, phase, view == "back", spread, stance)
    label = cv.img[..., 0]
    mask = _pattern_mask(figure, H, W)
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
    img, alpha = render_sprite_float(identity, modality, height_px, phase, view, rng, facing)
    out = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    if out.ndim == 2:
        out = np.repeat(out[..., None], 3, axis=2)
    return out, alpha


def paste(dst: np.ndarray, src: np.ndarray, alpha: np.ndarray, y: int, x: int) -> None:
    """Alpha-blend ``src`` (straight colour, float) into ``dst`` (float, in place) at top-left (y, x), clipped.

    ``dst`` and ``src`` are both (h, w, 3) or both (h, w); ``alpha`` is (h, w) in [0, 1].
    """
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
