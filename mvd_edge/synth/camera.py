"""Cameras: their look, their backgrounds, and the re-id crops they take of a person.

A :class:`CameraStyle` is one camera's look: visible cameras a wall/floor palette, tint,
brightness and contrast; infrared cameras a background temperature, warm distractors, a
gain/offset and column fixed-pattern noise (IR images are always blurred, as thermal
optics are). :func:`render_background` draws a random textured scene for a style, and
:func:`render_crop` makes a re-id style crop: background, a sprite from
:mod:`mvd_edge.synth.raster` pasted in, then the camera's effects. The synthetic videos
(:mod:`mvd_edge.synth.video`) use the styles and backgrounds with their own per-frame
camera effects.

This module owns the camera palettes, :func:`sample_camera_style`, the backgrounds, the
distribution of the views a re-id camera sees (:func:`sample_crop_view`) and the crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from mvd_edge.core.modality import Modality
from mvd_edge.synth.color import CLOTH_PALETTE, Color, jitter_color, random_cloth_color
from mvd_edge.synth.identity import Identity
from mvd_edge.synth.raster import VIEWS, check_view, paste, render_sprite_float

__all__ = ["CameraStyle", "camera_response", "render_background", "render_crop", "sample_camera_style",
           "sample_crop_view"]

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
    accents = tuple(random_cloth_color(rng, CLOTH_PALETTE if k == 0 else walls + floors) for k in range(3))
    t = rng.normal(0.0, 0.035, 3)
    return CameraStyle(
        modality=modality,
        indoor=indoor,
        wall=jitter_color(walls[int(rng.integers(len(walls)))], rng, 10.0),
        floor=jitter_color(floors[int(rng.integers(len(floors)))], rng, 10.0),
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


def sample_crop_view(rng: np.random.Generator) -> str:
    """The view of a person in a re-id crop: front 40 %, back 35 %, side 25 % (one draw of ``rng``).

    :func:`render_crop` draws it for every crop; the data-set writers draw it once per
    tracklet (identity and camera) and pass it as ``view``.
    """
    return VIEWS[int(rng.choice(3, p=(0.4, 0.35, 0.25)))]


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
        check_view(view)
    # geometry: identical draws for both modalities
    v_draw = sample_crop_view(rng)
    view = view or v_draw
    phase = float(rng.random())
    fill = float(rng.uniform(0.75, 0.95))
    dx = float(rng.normal(0.0, 0.04)) * W
    dy = float(rng.normal(0.0, 0.025)) * H
    sprite_rng = np.random.default_rng(int(rng.integers(2**62)))
    sh = max(8, int(round(fill * H)))
    fg, alpha = render_sprite_float(identity, modality, sh, phase, view, sprite_rng, facing)
    # camera and background
    style = camera_style if camera_style is not None else sample_camera_style(modality, rng)
    img = render_background(style, (H, W), rng)
    sw = alpha.shape[1]
    paste(img, fg, alpha, int(round((H - sh) / 2 + dy)), int(round((W - sw) / 2 + dx)))
    scale = H / 128.0
    fpn = None
    if modality is Modality.VISIBLE:
        gain = style.contrast * float(rng.uniform(0.85, 1.15))
        offset = 128.0 + (style.brightness + float(rng.normal(0.0, 10.0)))
        sigma = (style.blur + (float(rng.uniform(0.3, 1.0)) if rng.random() < 0.35 else 0.0)) * scale
    else:  # infrared: per-frame AGC jitter of gain and offset, column fixed-pattern noise
        gain = style.gain * float(rng.uniform(0.92, 1.08))
        offset = style.offset + float(rng.normal(0.0, 6.0))
        sigma = style.blur * scale * float(rng.uniform(0.85, 1.15))
        fpn = rng.standard_normal(W, dtype=np.float32) * style.fpn
    noise = rng.standard_normal(img.shape, dtype=np.float32) * (style.noise * float(rng.uniform(0.7, 1.3)))
    return camera_response(img, style, gain, offset, sigma, noise, fpn)


def camera_response(img: np.ndarray, style: CameraStyle, gain: float, offset: float, sigma: float,
                    noise: np.ndarray, fpn: np.ndarray | None = None, light: float = 1.0) -> np.ndarray:
    """The image a camera of ``style`` makes of the scene ``img`` (float grey levels), uint8 BGR.

    Visible: contrast ``gain`` about mid-grey, then ``offset``, the light level ``light``, the
    style's tint and a blur of ``sigma`` px if over 0.25. Infrared: ``gain`` and ``offset``, a
    blur of ``sigma`` px always (thermal optics), the column pattern ``fpn`` (one value a column),
    B = G = R. Then the sensor ``noise`` (an array like ``img``).
    """
    if style.modality is Modality.VISIBLE:
        img = (img - 128.0) * gain + offset
        if light != 1.0:
            img = img * light
        img *= np.asarray(style.tint, np.float32)
        if sigma > 0.25:
            img = cv2.GaussianBlur(img, (0, 0), sigma)
        img += noise
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)
    img = cv2.GaussianBlur(img * gain + offset, (0, 0), sigma)
    img += fpn[None, :]
    img += noise
    gray = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    return cv2.merge((gray, gray, gray))
