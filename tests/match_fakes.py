"""Fakes for the matcher tests: scripted captures and a cheap coloured-block world.

Not a test module (no ``test_`` prefix); imported by ``tests/test_match_*.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import cv2
import numpy as np

from mvd_edge.match.detect import Detections, Detector
from mvd_edge.match.sources import FrameSource, SourceSpec

# distinct, saturated BGR key colours (one per identity)
KEY_COLORS: tuple[tuple[int, int, int], ...] = (
    (0, 0, 230), (0, 200, 0), (230, 0, 0), (0, 220, 220), (220, 0, 220), (220, 220, 0), (0, 128, 255), (255, 0, 128),
)


class ScriptedCapture:
    """A capture whose reads follow a script: a list of frames, ``None`` items are corrupt
    frames (read OK, image None), ``"fail"`` items are failed reads."""

    def __init__(self, script: Sequence, fps: float = 15.0, declare_count: bool = True, seekable: bool = True):
        self.script = list(script)
        self.declare_count, self.seekable = declare_count, seekable
        self.pos = 0
        self.fps = fps
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self):
        if self.pos >= len(self.script):
            return False, None
        item = self.script[self.pos]
        self.pos += 1
        if isinstance(item, str) and item == "fail":
            return False, None
        return True, item

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(len(self.script)) if self.declare_count else 0.0
        if prop == cv2.CAP_PROP_POS_FRAMES:
            return float(self.pos)
        return self.fps

    def set(self, prop: int, value: float) -> bool:
        if prop != cv2.CAP_PROP_POS_FRAMES or not self.seekable:
            return False
        self.pos = int(value)
        return True

    def release(self) -> None:
        self.released = True


class ClosedCapture:
    def isOpened(self) -> bool:  # noqa: N802
        return False

    def read(self):
        return False, None

    def get(self, prop: int) -> float:
        return 0.0

    def release(self) -> None:
        pass


def opener(captures: Sequence) -> Callable[[SourceSpec], object]:
    """``open_fn`` returning the given captures in turn (``None`` = the open fails); the last repeats."""
    items = list(captures)
    lock = threading.Lock()
    state = {"n": 0}

    def open_fn(spec: SourceSpec):
        with lock:
            k = min(state["n"], len(items) - 1)
            state["n"] += 1
        item = items[k]
        return ClosedCapture() if item is None else item

    open_fn.calls = state  # type: ignore[attr-defined]
    return open_fn


class BlockWorld:
    """``n`` coloured people-shaped blocks walking back and forth in two views of ``size``; frame ``k`` and
    its boxes are a pure function of ``k`` (identity ``i`` has colour ``KEY_COLORS[i]`` in both views,
    so a colour histogram embedder matches them)."""

    def __init__(self, n: int = 4, size: tuple[int, int] = (120, 200), period: int = 120, seed: int = 0,
                 churn: int = 0):
        """``churn`` > 0: each person is away for ``churn`` frames out of every ``3 * churn`` (at its
        own offset per view), so tracks end and new ones start all the time."""
        self.n, self.size, self.period, self.churn = n, size, period, churn
        self.offsets = {s: [int(v) for v in np.random.default_rng([seed, j]).integers(0, 10_000, n)]
                        for j, s in enumerate(("ir", "rgb"))}
        rng = np.random.default_rng(seed)
        self.params = {s: [(rng.uniform(0, 1), rng.uniform(0.6, 1.4), rng.uniform(0.25, 0.75)) for _ in range(n)]
                       for s in ("ir", "rgb")}
        # each person walks in their own slot of the width (a different slot per view): no occlusion
        self.slots = {s: rng.permutation(n) for s in ("ir", "rgb")}
        h, w = size
        yy, xx = np.mgrid[0:h, 0:w]
        self.bg = {"ir": (40 + 20 * np.sin(xx / 17.0) + 10 * np.cos(yy / 11.0)).astype(np.uint8),
                   "rgb": (90 + 30 * np.cos(xx / 23.0)).astype(np.uint8)}

    def boxes(self, stream: str, k: int) -> list[tuple[int, np.ndarray]]:
        """[(identity, x1y1x2y2)] fully inside the frame."""
        h, w = self.size
        bw, bh = int(0.12 * w), int(0.6 * h)
        slot_w = w / self.n
        out = []
        for i, (phase, speed, yc) in enumerate(self.params[stream]):
            if self.churn and ((k + self.offsets[stream][i]) // self.churn) % 3 == 2:
                continue
            u = (phase + speed * k / self.period) % 2.0
            u = u if u < 1.0 else 2.0 - u  # back and forth
            x0 = self.slots[stream][i] * slot_w
            x1 = int(round(x0 + u * max(0.0, slot_w - bw - 2))) + 1
            y1 = int(round(yc * (h - bh)))
            out.append((i, np.array([x1, y1, x1 + bw, y1 + bh], np.float32)))
        return out

    def frame(self, stream: str, k: int) -> np.ndarray:
        img = np.repeat(self.bg[stream][..., None], 3, axis=2).copy()
        for i, b in self.boxes(stream, k):
            x1, y1, x2, y2 = (int(v) for v in b)
            img[y1:y2, x1:x2] = KEY_COLORS[i]
            img[y1:y1 + (y2 - y1) // 5, x1:x2] = (60, 60, 60)  # a "head" band
        return img


class BlockCapture:
    """Live-like capture of a :class:`BlockWorld` stream, ``n_frames`` long."""

    def __init__(self, world: BlockWorld, stream: str, n_frames: int, fps: float = 15.0):
        self.world, self.stream, self.n, self.fps, self.k = world, stream, n_frames, fps, 0

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def read(self):
        if self.k >= self.n:
            return False, None
        img = self.world.frame(self.stream, self.k)
        self.k += 1
        return True, img

    def get(self, prop: int) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def release(self) -> None:
        pass


class BlockDetector(Detector):
    """Detects the world's blocks by frame index (``with_ids``: also their identities as track ids)."""

    name = "blocks"

    def __init__(self, world: BlockWorld, stream: str, with_ids: bool = False):
        self.world, self.stream, self.has_ids = world, stream, with_ids

    def detect(self, image, frame_index: int) -> Detections:
        bx = self.world.boxes(self.stream, frame_index)
        return Detections(np.array([b for _, b in bx], np.float32), np.ones(len(bx), np.float32),
                          np.array([i + 1 for i, _ in bx]) if self.has_ids else None)


def block_sources(world: BlockWorld, n_frames: int, live: bool = False, queue_size: int = 8) -> dict[str, FrameSource]:
    return {s: FrameSource(SourceSpec("file", f"blocks-{s}", f"blocks-{s}"), name=s, queue_size=queue_size,
                           open_fn=lambda spec, s=s: BlockCapture(world, s, n_frames), live=live)
            for s in ("ir", "rgb")}


def drain(src, timeout: float = 10.0) -> list:
    """Every packet a started source delivers until it ends (``None``); ``False`` (no frame yet) skipped."""
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        pkt = src.get(timeout=0.2)
        if pkt is None:
            return out
        if pkt is not False:
            out.append(pkt)
    raise AssertionError("source did not end in time")
