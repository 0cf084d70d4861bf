"""Synthetic IR/RGB video pairs with ground truth, for the camera-stream matcher.

The same ``n_ids`` people walk through two different views at the same time: one
rendered as a visible (RGB) camera, one as a thermal-like infrared camera (B == G == R,
as in :mod:`mvd_edge.synth.raster`). Each person paces back and forth across each view
at their own depth, speed and timing, leaves the frame at the ends of each pass and
comes back (so tracks end and restart), and people occlude each other.

Files written by :func:`write_synth_video` into ``out``::

    ir.mp4, rgb.mp4       the two streams (MPEG-4 'mp4v'; MJPG ``.avi`` where OpenCV
                          here cannot write mp4)
    gt.json               ground truth (schema below)
    ir.mot.txt, rgb.mot.txt   (``mot=True``) the same boxes in MOT-challenge format, for
                          ``mvd-edge match --set detector.ir_boxes=... --set detector.rgb_boxes=...``

Ground truth JSON::

    {"format": "mvd-edge-synth-video", "version": 1,
     "fps": 15.0, "frames": 300, "size": [height, width], "seed": 0,
     "n_ids": 6, "identity_seed": 7919,
     "effects": {"shake": 0.0, "illumination": 0.0, "thermal_drift": 0.0},  # SynthVideoRenderer
     "look_alikes": [[1, 2], ...],   # pairs of ids that look alike across modalities
     "streams": {"ir":  {"modality": "ir",  "video": "ir.mp4",  "mot": "ir.mot.txt",
                         "boxes": [[[id, x, y, w, h, visibility], ...],   # frame 0
                                   ...]},                                  # one list per frame
                 "rgb": {... same ...}}}

Frames are 0-based in JSON and 1-based in MOT files (the MOT convention). Identity ids
are 1..n_ids and mean the same person in both streams. A box is the person's tight
extent clipped to the frame (pixels, float); ``visibility`` (0..1) is the fraction of the
person's silhouette that is inside the frame and not hidden by a nearer person. People
whose visible part is narrower than 4 px are left out.

The people are drawn from ``sample_identities(n_ids, IDENTITY_SEED_BASE + seed)``, so
with the default seeds they are not the identities of the synthetic training set
(which uses ``sample_identities(n, seed)`` with small seeds).

``look_alikes`` lists the pairs of people that :func:`mvd_edge.synth.lookalike.look_alike`
finds: across modalities they differ only by a few percent in body proportions, and a
matcher may confuse them. About 1 draw of 6 people in 35 has such a pair (seed 2 among
seeds 0-15); a score on such a draw says more about the draw than about the model. It is
``[]`` when the IR view is rendered in colour (``ir_modality="rgb"``): then colour tells
everyone apart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm import tqdm

from mvd_edge.core.errors import MvdEdgeError, UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.synth.camera import CameraStyle, camera_response, render_background, sample_camera_style
from mvd_edge.synth.identity import Identity, sample_identities
from mvd_edge.synth.lookalike import look_alike_pairs
from mvd_edge.synth.raster import VIEWS, paste, render_sprite

__all__ = [
    "GT_FORMAT",
    "IDENTITY_SEED_BASE",
    "STREAMS",
    "SynthVideoRenderer",
    "open_video_writer",
    "record",
    "write_mot",
    "write_synth_video",
]

GT_FORMAT = "mvd-edge-synth-video"
IDENTITY_SEED_BASE = 7919
STREAMS: tuple[str, ...] = ("ir", "rgb")
_WALK_TAG, _CAM_TAG, _NOISE_TAG, _POSE_TAG, _SHAKE_TAG = 0x3A1, 0x3A2, 0x3A3, 0x3A4, 0x3A5
# per stream: (person height at the far depth, height gained at the near depth, foot y far, foot y near), / frame height
_GEOMETRY = {"ir": (0.40, 0.28, 0.60, 0.95), "rgb": (0.36, 0.30, 0.63, 0.96)}


@dataclass(frozen=True)
class _Walk:
    """One person's motion in one view."""

    depth: float  # 0 far .. 1 near
    depth_amp: float
    depth_period: float  # seconds
    depth_phase: float
    speed: float  # px / s along the pass
    start: float  # px along the back-and-forth path at t = 0
    views: tuple[str, ...]  # rendered view per pass (cycled)


class VideoWriteError(MvdEdgeError, RuntimeError):
    """OpenCV on this machine cannot encode video (no mp4v or MJPG writer)."""


def open_video_writer(path: Path, fps: float, size_wh: tuple[int, int]) -> tuple[cv2.VideoWriter, Path]:
    """A ``cv2.VideoWriter`` for ``path`` (.mp4 'mp4v'); falls back to MJPG ``.avi`` beside it.

    Returns the writer and the path actually written. Raises RuntimeError if neither opens.
    """
    path = Path(path)
    tries = [(path, "mp4v")] if path.suffix.lower() != ".avi" else []
    tries.append((path.with_suffix(".avi"), "MJPG"))
    for p, fourcc in tries:
        writer = cv2.VideoWriter(str(p), cv2.VideoWriter_fourcc(*fourcc), float(fps), size_wh)
        if writer.isOpened():
            return writer, p
        writer.release()
    raise VideoWriteError(f"OpenCV here cannot write video to {path} (tried mp4v .mp4 and MJPG .avi)")


class SynthVideoRenderer:
    """Renders frame ``k`` of both streams with its ground truth (deterministic in the arguments).

    Args:
        n_ids: number of people (>= 1).
        fps: frames per second (> 0).
        size: ``(height, width)`` of both streams (each >= 64).
        seed: non-negative integer.
        ir_modality: how the "ir" view is rendered: INFRARED (default) or VISIBLE (a colour
            rendering of the same view, to check the matcher with a colour-only embedder).
        identities: the people (default: ``sample_identities(n_ids, IDENTITY_SEED_BASE + seed)``);
            when given, ``n_ids`` must be their number. ``seed`` still sets the cameras and walks.

    Camera effects (all 0 = off, the default), to test detectors that model a fixed background:

    * ``shake``: camera shake, in pixels: every frame of both streams is shifted by a vibration
      (two sines of random frequency) plus jitter, up to about ``shake`` px each way; the
      ground-truth boxes move with it.
    * ``illumination``: RGB day/night: the light level ramps down to ``1 - illumination`` of
      its start over the clip, and at 60 % of the clip the lights switch (a step of half that
      ramp back up). IR is not affected.
    * ``thermal_drift``: IR drift in grey levels: the offset drifts by up to ``thermal_drift``
      levels and the gain by ``thermal_drift`` % over the clip, with a flat-field correction
      jump (offset step of ``thermal_drift / 2``) every 8 s, as uncooled cameras do. RGB is
      not affected.
    """

    def __init__(self, n_ids: int = 6, fps: float = 15.0, size: tuple[int, int] = (360, 640), seed: int = 0,
                 ir_modality: Modality | str = Modality.INFRARED, identities: Sequence[Identity] | None = None,
                 shake: float = 0.0, illumination: float = 0.0, thermal_drift: float = 0.0,
                 duration: float = 20.0):
        if isinstance(n_ids, bool) or int(n_ids) < 1:
            raise UsageError(f"n_ids must be >= 1, got {n_ids!r}")
        if not fps > 0:
            raise UsageError(f"fps must be > 0, got {fps!r}")
        h, w = int(size[0]), int(size[1])
        if h < 64 or w < 64:
            raise UsageError(f"size must be at least 64x64, got {size!r}")
        if isinstance(seed, bool) or int(seed) < 0:
            raise UsageError(f"seed must be a non-negative integer, got {seed!r}")
        for name, v, hi in (("shake", shake, 0.2 * min(h, w)), ("illumination", illumination, 0.95),
                            ("thermal_drift", thermal_drift, 120.0)):
            if not 0 <= float(v) <= hi:
                raise UsageError(f"{name} must be in [0, {hi:g}], got {v!r}")
        if not duration > 0:
            raise UsageError(f"duration must be > 0, got {duration!r}")
        self.shake, self.illumination, self.thermal_drift = float(shake), float(illumination), float(thermal_drift)
        self.duration = float(duration)  # seconds over which the illumination / drift effects run
        self.n_ids, self.fps, self.size, self.seed = int(n_ids), float(fps), (h, w), int(seed)
        self.modality = {"ir": Modality.parse(ir_modality), "rgb": Modality.VISIBLE}
        if identities is None:
            self.identity_seed: int | None = IDENTITY_SEED_BASE + self.seed
            self.identities: list[Identity] = sample_identities(self.n_ids, self.identity_seed)
        else:
            if len(identities) != self.n_ids:
                raise ValueError(f"n_ids is {self.n_ids} but {len(identities)} identities were given")
            self.identity_seed, self.identities = None, list(identities)
        self.styles: dict[str, CameraStyle] = {}
        self.backgrounds: dict[str, np.ndarray] = {}
        self.walks: dict[str, list[_Walk]] = {}
        for si, name in enumerate(STREAMS):
            rng = np.random.default_rng([_CAM_TAG, self.seed, si])
            style = sample_camera_style(self.modality[name], rng)
            self.styles[name] = style
            self.backgrounds[name] = render_background(style, (h, w), rng)
            self.walks[name] = [self._plan(si, pid) for pid in range(self.n_ids)]

    # ------------------------------------------------------------------ geometry
    def _plan(self, si: int, pid: int) -> _Walk:
        rng = np.random.default_rng([_WALK_TAG, self.seed, si, pid])
        # spread depths so people are not all in one row
        base = (pid + rng.uniform(0.1, 0.9)) / self.n_ids
        views = tuple(str(VIEWS[int(rng.choice(3, p=(0.25, 0.25, 0.5)))]) for _ in range(8))
        return _Walk(depth=float(np.clip(base, 0.02, 0.98)), depth_amp=float(rng.uniform(0.0, 0.08)),
                     depth_period=float(rng.uniform(6.0, 14.0)), depth_phase=float(rng.uniform(0, 2 * math.pi)),
                     speed=float(rng.uniform(0.09, 0.17) * self.size[1]), start=float(rng.uniform(0.0, 1.0)),
                     views=views)

    def _person_state(self, stream: str, pid: int, t: float) -> tuple[float, float, float, int, str, float]:
        """(foot x, foot y, height, facing, view, walking phase) of person ``pid`` at time ``t``."""
        H, W = self.size
        walk = self.walks[stream][pid]
        g = _GEOMETRY[stream]
        z = float(np.clip(walk.depth + walk.depth_amp * math.sin(2 * math.pi * t / walk.depth_period + walk.depth_phase),
                          0.0, 1.0))
        height = H * (g[0] + g[1] * z)
        foot_y = H * (g[2] + (g[3] - g[2]) * z)
        margin = 0.45 * height  # sprite half-width is 0.28 h: fully out of the frame at the turn
        length = W + 2 * margin
        s = (walk.start * 2 * length + walk.speed * t) % (2 * length)
        n_pass = int((walk.start * 2 * length + walk.speed * t) // length)
        if s < length:
            x, facing = s - margin, 1
        else:
            x, facing = 2 * length - s - margin, -1
        view = walk.views[n_pass % len(walk.views)]
        stride = 0.9 * height  # px per walking cycle
        phase = ((walk.start * 2 * length + walk.speed * t) / stride) % 1.0
        return x, foot_y, height, facing, view, phase

    # ------------------------------------------------------------------ rendering
    def render(self, stream: str, frame: int) -> tuple[np.ndarray, list[list[float]]]:
        """Frame ``frame`` (0-based) of ``stream`` (``"ir"``/``"rgb"``).

        Returns ``(image, boxes)``: uint8 BGR ``[H, W, 3]`` (IR: B == G == R) and
        ``[[id, x, y, w, h, visibility], ...]`` (ids 1-based, boxes clipped to the frame).
        """
        if stream not in STREAMS:
            raise ValueError(f"stream must be one of {STREAMS}, got {stream!r}")
        H, W = self.size
        t = frame / self.fps
        modality = self.modality[stream]
        people = []
        for pid in range(self.n_ids):
            x, foot_y, height, facing, view, phase = self._person_state(stream, pid, t)
            hpx = max(8, int(round(height)))
            sw = max(4, int(round(0.56 * hpx)))
            if x + sw / 2 < 0 or x - sw / 2 >= W:
                continue
            pose_rng = np.random.default_rng([_POSE_TAG, self.seed, STREAMS.index(stream), pid])
            bgr, alpha = render_sprite(self.identities[pid], modality, hpx, phase, view, pose_rng, facing=facing)
            people.append((foot_y, pid, bgr, alpha, int(round(x - sw / 2)), int(round(foot_y - hpx))))
        people.sort(key=lambda p: p[0])  # far (small foot y) first
        bg = self.backgrounds[stream]
        img = bg.copy()
        occupied = np.zeros((H, W), np.float32)
        boxes: list[list[float]] = []
        # visibility: nearest first, each takes what the nearer ones left uncovered
        for _, pid, _bgr, alpha, x0, y0 in reversed(people):
            h, w = alpha.shape
            total = float(alpha.sum())
            ya, xa = max(0, y0), max(0, x0)
            yb, xb = min(H, y0 + h), min(W, x0 + w)
            if ya >= yb or xa >= xb or total <= 0:
                continue
            a = alpha[ya - y0:yb - y0, xa - x0:xb - x0]
            occ = occupied[ya:yb, xa:xb]
            seen = a * (1.0 - occ)
            vis = float(seen.sum()) / total
            occupied[ya:yb, xa:xb] = np.minimum(1.0, occ + a)
            rows = np.flatnonzero(a.max(axis=1) > 0.1)
            cols = np.flatnonzero(a.max(axis=0) > 0.1)
            if rows.size == 0 or cols.size < 4:
                continue
            bx, by = xa + cols[0], ya + rows[0]
            boxes.append([pid + 1, float(bx), float(by), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1),
                          round(min(1.0, vis), 4)])
        for _, _pid, bgr, alpha, x0, y0 in people:
            src = bgr.astype(np.float32) if modality is Modality.VISIBLE else bgr[..., 0].astype(np.float32)
            paste(img, src, alpha, y0, x0)
        boxes.sort(key=lambda b: b[0])
        if self.shake > 0:
            img, boxes = self._shake(img, boxes, frame)
        return self._camera(stream, img, frame), boxes

    def shake_offset(self, frame: int) -> tuple[float, float]:
        """The camera's ``(dx, dy)`` shift in pixels at ``frame`` (both streams shake alike)."""
        if self.shake <= 0:
            return 0.0, 0.0
        p = np.random.default_rng([_SHAKE_TAG, self.seed]).uniform(0.0, 1.0, 6)
        j = np.random.default_rng([_SHAKE_TAG, self.seed, frame]).standard_normal(2)
        t = frame / self.fps
        dx = 0.45 * math.sin(2 * math.pi * (1.5 + 3 * p[0]) * t + 6.3 * p[1]) + 0.25 * math.sin(
            2 * math.pi * (0.2 + 0.3 * p[2]) * t) + 0.15 * float(j[0])
        dy = 0.45 * math.sin(2 * math.pi * (1.5 + 3 * p[3]) * t + 6.3 * p[4]) + 0.25 * math.sin(
            2 * math.pi * (0.2 + 0.3 * p[5]) * t + 1.0) + 0.15 * float(j[1])
        return self.shake * dx, self.shake * dy

    def _shake(self, img: np.ndarray, boxes: list[list[float]], frame: int) -> tuple[np.ndarray, list[list[float]]]:
        H, W = self.size
        dx, dy = self.shake_offset(frame)
        m = np.float32([[1, 0, dx], [0, 1, dy]])
        img = cv2.warpAffine(img, m, (W, H), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        moved = []
        for pid, x, y, w, h, vis in boxes:
            x0, y0 = max(0.0, x + dx), max(0.0, y + dy)
            x1, y1 = min(float(W), x + w + dx), min(float(H), y + h + dy)
            if x1 - x0 >= 4 and y1 - y0 >= 1:
                moved.append([pid, round(x0, 2), round(y0, 2), round(x1 - x0, 2), round(y1 - y0, 2), vis])
        return img, moved

    def _camera(self, stream: str, img: np.ndarray, frame: int) -> np.ndarray:
        style = self.styles[stream]
        rng = np.random.default_rng([_NOISE_TAG, self.seed, STREAMS.index(stream), frame])
        noise = rng.standard_normal(img.shape, dtype=np.float32) * style.noise
        sigma = style.blur * (self.size[0] / 360.0 * 1.5)  # the styles' blur is given at 128 px crop height
        t = frame / self.fps
        u = min(1.0, t / self.duration)  # 0 .. 1 over the clip
        if style.modality is Modality.VISIBLE:
            light = 1.0
            if self.illumination > 0:  # day -> night ramp, lights switched on at 60 %
                light = 1.0 - self.illumination * u + (0.5 * self.illumination * 0.6 if u >= 0.6 else 0.0)
            offset = 128.0 + style.brightness + 3.0 * math.sin(0.7 * t)
            return camera_response(img, style, style.contrast, offset, sigma, noise, light=light)
        gain = style.gain * (1.0 + 0.03 * math.sin(0.5 * t))  # slow AGC drift
        offset = style.offset
        if self.thermal_drift > 0:  # housing warms up; flat-field correction every 8 s
            gain *= 1.0 + 0.01 * self.thermal_drift * u
            offset += self.thermal_drift * (math.sin(1.3 * math.pi * u) + 0.5 * (int(t // 8.0) % 2))
        fpn = np.random.default_rng([_NOISE_TAG, self.seed, 99]).standard_normal(img.shape[1], dtype=np.float32)
        return camera_response(img, style, gain, offset, sigma, noise, fpn * style.fpn)


def record(out: Path, cameras: Mapping[str, tuple[SynthVideoRenderer, str, float, int]], progress: bool, desc: str
           ) -> tuple[dict[str, Path], dict[str, list[list[list[float]]]]]:
    """Render and write ``out/<name>.mp4`` for each ``name: (renderer, stream, fps, n_frames)``.

    Returns the paths written (see :func:`open_video_writer`) and each video's boxes, one list a frame.
    """
    videos: dict[str, Path] = {}
    boxes: dict[str, list[list[list[float]]]] = {}
    with tqdm(total=sum(c[3] for c in cameras.values()), desc=desc, unit="frame", disable=not progress) as bar:
        for name, (renderer, stream, fps, n_frames) in cameras.items():
            writer, videos[name] = open_video_writer(out / f"{name}.mp4", fps, renderer.size[::-1])
            boxes[name] = []
            try:
                for k in range(n_frames):
                    img, b = renderer.render(stream, k)
                    writer.write(img)
                    boxes[name].append(b)
                    bar.update(1)
            finally:
                writer.release()
    return videos, boxes


def write_mot(path: Path, per_frame_boxes: list[list[list[float]]]) -> Path:
    """Write ``[[id, x, y, w, h, vis], ...]`` per 0-based frame as MOT-challenge lines.

    Line format (MOT ground-truth style, frames 1-based): ``frame,id,x,y,w,h,1,1,visibility``.
    """
    path = Path(path)
    with path.open("w") as f:
        for k, boxes in enumerate(per_frame_boxes):
            for pid, x, y, w, h, vis in boxes:
                f.write(f"{k + 1},{int(pid)},{x:.1f},{y:.1f},{w:.1f},{h:.1f},1,1,{vis:.3f}\n")
    return path


def write_synth_video(out: Path, n_ids: int = 6, seconds: float = 20.0, seed: int = 0, fps: float = 15.0,
                      size: tuple[int, int] = (360, 640), mot: bool = True, progress: bool = False,
                      ir_modality: Modality | str = Modality.INFRARED, shake: float = 0.0,
                      illumination: float = 0.0, thermal_drift: float = 0.0) -> dict[str, Any]:
    """Render and write a synthetic IR/RGB video pair with ground truth (see the module docstring).

    Args:
        out: output folder (created; files of the same names are overwritten).
        n_ids: people (>= 1). seconds: duration (> 0). seed: non-negative integer.
        fps: frame rate. size: ``(height, width)``. mot: also write MOT box files.
        progress: show a tqdm bar. ir_modality, shake, illumination, thermal_drift: see
            :class:`SynthVideoRenderer`.

    Returns:
        ``{"out", "frames", "fps", "size", "videos": {"ir": path, "rgb": path}, "gt": path,
        "mot": {"ir": path, "rgb": path} | None, "boxes": {"ir": n, "rgb": n}, "look_alikes": [[id, id], ...]}``.
    """
    if not seconds > 0:
        raise UsageError(f"seconds must be > 0, got {seconds!r}")
    renderer = SynthVideoRenderer(n_ids=n_ids, fps=fps, size=size, seed=seed, ir_modality=ir_modality, shake=shake,
                                  illumination=illumination, thermal_drift=thermal_drift, duration=seconds)
    n_frames = max(1, int(round(seconds * fps)))
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    H, W = renderer.size
    paths, per_frame = record(out, {s: (renderer, s, fps, n_frames) for s in STREAMS}, progress, "synth-video")
    mot_paths = {s: write_mot(out / f"{s}.mot.txt", per_frame[s]) for s in STREAMS} if mot else None
    gt = {
        "format": GT_FORMAT, "version": 1, "fps": float(fps), "frames": n_frames, "size": [H, W], "seed": int(seed),
        "n_ids": int(n_ids), "identity_seed": renderer.identity_seed,
        "effects": {"shake": renderer.shake, "illumination": renderer.illumination,
                    "thermal_drift": renderer.thermal_drift},
        "look_alikes": [] if renderer.modality["ir"] is Modality.VISIBLE else
        [[i + 1, j + 1] for i, j in look_alike_pairs(renderer.identities)],
        "streams": {s: {"modality": renderer.modality[s].short, "video": paths[s].name,
                        "mot": mot_paths[s].name if mot_paths else None, "boxes": per_frame[s]} for s in STREAMS},
    }
    gt_path = out / "gt.json"
    gt_path.write_text(json.dumps(gt, separators=(",", ":")) + "\n")
    return {"out": str(out), "frames": n_frames, "fps": float(fps), "size": [H, W],
            "videos": {s: str(paths[s]) for s in STREAMS}, "gt": str(gt_path),
            "mot": {s: str(p) for s, p in mot_paths.items()} if mot_paths else None,
            "boxes": {s: sum(len(b) for b in per_frame[s]) for s in STREAMS}, "look_alikes": gt["look_alikes"]}
