"""Person crops from video for calibration: MOT box files, OpenCV's HOG people detector, frame reading.

Frames are read sequentially with ``cv2.VideoCapture`` (seeking is unreliable for many
codecs), so a frame index always means "the k-th decoded frame, 0-based".
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, w, h in pixels


def _open(video: Path) -> cv2.VideoCapture:
    from mvd_edge.calib.manifest import ManifestError

    if not video.is_file():
        raise ManifestError(f"calibration video not found: {video}")
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ManifestError(f"cannot open video {video} with OpenCV (unsupported codec or corrupt file)")
    return cap


def read_mot_boxes(path: Path) -> dict[int, list[tuple[int, tuple[float, float, float, float]]]]:
    """MOT-format boxes ``frame,id,x,y,w,h[,...]`` (1-based frames) -> ``{frame0: [(id, (x, y, w, h))]}``.

    Frame keys are converted to 0-based. Blank lines and ``#`` comments are skipped.
    """
    from mvd_edge.calib.manifest import ManifestError

    if not path.is_file():
        raise ManifestError(f"boxes file not found: {path}")
    out: dict[int, list[tuple[int, tuple[float, float, float, float]]]] = {}
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = [p for p in line.replace(" ", ",").split(",") if p]
        try:
            frame, tid = int(float(parts[0])), int(float(parts[1]))
            x, y, w, h = (float(v) for v in parts[2:6])
        except (ValueError, IndexError):
            raise ManifestError(f"{path}:{lineno}: expected MOT 'frame,id,x,y,w,h,...', got {raw!r}") from None
        if frame < 1:
            raise ManifestError(f"{path}:{lineno}: MOT frames are 1-based, got frame {frame}")
        out.setdefault(frame - 1, []).append((tid, (x, y, w, h)))
    return out


def clip_box(box: Sequence[float], width: int, height: int) -> Box | None:
    """Round and clip ``(x, y, w, h)`` to the frame; ``None`` if nothing is left."""
    x0 = max(0, int(round(box[0])))
    y0 = max(0, int(round(box[1])))
    x1 = min(width, int(round(box[0] + box[2])))
    y1 = min(height, int(round(box[1] + box[3])))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


class HogPeopleDetector:
    """OpenCV's default HOG + linear SVM people detector (64x128 window).

    Frames shorter than ``min_height`` pixels are upscaled for detection so small frames
    still fit the window; boxes are mapped back to the original frame.
    """

    def __init__(self, min_height: int = 256, hit_threshold: float = 0.0):
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.min_height = min_height
        self.hit_threshold = hit_threshold

    def __call__(self, frame: np.ndarray) -> list[tuple[float, float, float, float]]:
        scale = max(1.0, self.min_height / frame.shape[0])
        img = cv2.resize(frame, None, fx=scale, fy=scale) if scale > 1.0 else frame
        rects, _ = self.hog.detectMultiScale(img, hitThreshold=self.hit_threshold, winStride=(8, 8),
                                             padding=(8, 8), scale=1.05)
        return [tuple(float(v) / scale for v in r) for r in rects]  # type: ignore[misc]


def collect_video_boxes(video: Path, boxes: Path | None, every: int, min_size: tuple[int, int]
                        ) -> tuple[list[tuple[int, int | None, Box]], dict]:
    """Boxes on frames ``0, every, 2*every, ...`` -> ``([(frame, track_id | None, box)], info)``."""
    mot = read_mot_boxes(boxes) if boxes is not None else None
    detector = HogPeopleDetector() if mot is None else None
    cap = _open(video)
    found: list[tuple[int, int | None, Box]] = []
    frame_idx, sampled, dropped = 0, 0, 0
    size = None
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if frame_idx % every == 0:
                sampled += 1
                h, w = frame.shape[:2]
                size = [h, w]
                raw = [(tid, b) for tid, b in mot.get(frame_idx, [])] if mot is not None else \
                    [(None, b) for b in detector(frame)]  # type: ignore[misc]
                for tid, b in sorted(raw, key=lambda tb: (tb[0] if tb[0] is not None else -1, tb[1])):
                    cb = clip_box(b, w, h)
                    if cb is None or cb[3] < min_size[0] or cb[2] < min_size[1]:
                        dropped += 1
                        continue
                    found.append((frame_idx, tid, cb))
            frame_idx += 1
    finally:
        cap.release()
    if frame_idx == 0:
        from mvd_edge.calib.manifest import ManifestError

        raise ManifestError(f"no frame could be decoded from {video}")
    return found, {"frames_decoded": frame_idx, "frames_sampled": sampled, "boxes_dropped_small": dropped,
                   "frame_size": size}


def read_video_crops(video: Path, wanted: Sequence[tuple[int, Box]]) -> Iterator[np.ndarray]:
    """Crops ``frame[y:y+h, x:x+w]`` (uint8 BGR) for ``[(frame, box)]``, yielded in the given order."""
    from mvd_edge.calib.manifest import ManifestError

    need: dict[int, list[int]] = {}
    for i, (f, _) in enumerate(wanted):
        need.setdefault(int(f), []).append(i)
    crops: dict[int, np.ndarray] = {}
    last = max(need)
    cap = _open(video)
    try:
        frame_idx = 0
        while frame_idx <= last:
            ok, frame = cap.read()
            if not ok:
                raise ManifestError(f"{video}: ended at frame {frame_idx}, the manifest needs frame {last}; "
                                    f"the video changed since the manifest was built")
            for i in need.get(frame_idx, ()):
                x, y, w, h = wanted[i][1]
                crop = frame[y:y + h, x:x + w]
                if crop.shape[0] != h or crop.shape[1] != w:
                    raise ManifestError(f"{video}: box {wanted[i][1]} lies outside frame {frame_idx} "
                                        f"({frame.shape[1]}x{frame.shape[0]})")
                crops[i] = np.ascontiguousarray(crop)
            frame_idx += 1
    finally:
        cap.release()
    for i in range(len(wanted)):
        yield crops.pop(i)
