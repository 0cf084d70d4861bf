"""Person crops from video for calibration (boxes from the matcher's MOT reader or HOG detector).

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
    from mvd_edge.quant.manifest import ManifestError

    if not video.is_file():
        raise ManifestError(f"calibration video not found: {video}")
    cap = cv2.VideoCapture(str(video))
    if not cap.isOpened():
        raise ManifestError(f"cannot open video {video} with OpenCV (unsupported codec or corrupt file)")
    return cap


def clip_box(box: Sequence[float], width: int, height: int) -> Box | None:
    """Round and clip ``(x, y, w, h)`` to the frame; ``None`` if nothing is left."""
    x0 = max(0, int(round(box[0])))
    y0 = max(0, int(round(box[1])))
    x1 = min(width, int(round(box[0] + box[2])))
    y1 = min(height, int(round(box[1] + box[3])))
    if x1 <= x0 or y1 <= y0:
        return None
    return (x0, y0, x1 - x0, y1 - y0)


def collect_video_boxes(video: Path, boxes: Path | None, every: int, min_size: tuple[int, int]
                        ) -> tuple[list[tuple[int, int | None, Box]], dict]:
    """Boxes on frames ``0, every, 2*every, ...`` -> ``([(frame, track_id | None, box)], info)``."""
    from mvd_edge.match.detect import HogDetector, MotBoxes
    from mvd_edge.quant.manifest import ManifestError

    try:  # the matcher's detectors: MOT box files (with their ids) or OpenCV's HOG people detector
        detector = MotBoxes(boxes) if boxes is not None else HogDetector(upscale=2.0)
    except (ValueError, FileNotFoundError) as exc:
        raise ManifestError(str(exc)) from None
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
                det = detector.detect(frame, frame_idx)
                ids = det.ids if det.ids is not None else [None] * len(det.boxes)
                raw = [(None if t is None else int(t), (float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])))
                       for t, b in zip(ids, det.boxes)]
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
        raise ManifestError(f"no frame could be decoded from {video}")
    return found, {"frames_decoded": frame_idx, "frames_sampled": sampled, "boxes_dropped_small": dropped,
                   "frame_size": size}


def read_video_crops(video: Path, wanted: Sequence[tuple[int, Box]]) -> Iterator[np.ndarray]:
    """Crops ``frame[y:y+h, x:x+w]`` (uint8 BGR) for ``[(frame, box)]``, yielded in the given order."""
    from mvd_edge.quant.manifest import ManifestError

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
