"""Fixed-camera person detectors: background subtraction (MOG2 / KNN) and thermal warm blobs.

For a camera that does not move, what changes is people. :class:`ForegroundDetector`
turns each frame into a foreground mask and the mask into person boxes:

1. work on a copy shrunk by ``scale`` (0.5: a 640 x 360 frame becomes 320 x 180);
2. *normalise*: a gain and offset fitted (robustly) from the frame to the background
   reference (learnt while the model learns, then kept until it re-learns) are undone, so a day/night brightness change or a thermal
   camera's AGC drift does not turn the whole frame into foreground;
3. the mask: ``mog2`` / ``knn`` -- OpenCV's ``BackgroundSubtractorMOG2`` / ``KNN`` with
   shadows marked and dropped; ``warm`` (thermal streams) -- pixels warmer than the
   frame's own background level by ``warm_k`` robust deviations (median + k * MAD, at
   least ``warm_delta`` grey levels): no model to learn, people standing still are found
   from the first frame; ``mog2+warm`` / ``knn+warm`` -- both masks together;
4. morphology: opening removes speckle, a tall closing joins head, body and legs;
5. connected components, each gated by height (fraction of the frame), aspect
   (height / width) and fill (mask pixels / box area); a blob too wide for one person of
   its height is split at the deepest valleys of its column profile (people walking side
   by side), and each part's box is re-fitted to its own pixels.

Camera shake is not compensated: on the synthetic streams a shake of up to 10 px changes
box precision/recall by less than 0.01 (the work image is half size and the opening
removes the thin edge slivers a shift leaves); a global-shift estimate by phase
correlation was tried and removed: the walking people, not the background, set the
estimate, and it cost 0.05 recall on still cameras.

If, after step 2, more than ``max_foreground`` of the frame is still foreground (a
light switched, the camera was moved), the frame yields no boxes and the background model
re-learns quickly for ``relearn_frames`` frames (``resets`` counts these events).

Scores are ``0.5 + 0.5 * fill``: a solid blob scores near 1, a ragged one near 0.6.
"""

from __future__ import annotations

import cv2
import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.match.detect import Detections, Detector, clip_boxes, intersection_over_first

__all__ = ["FOREGROUND_METHODS", "BackgroundConfirmed", "ForegroundDetector"]

FOREGROUND_METHODS = ("mog2", "knn", "warm", "mog2+warm", "knn+warm")


class ForegroundDetector(Detector):
    """Person boxes from a fixed camera's foreground (see the module docstring).

    Args:
        method: ``mog2``, ``knn``, ``warm``, ``mog2+warm`` or ``knn+warm``.
        scale: resize factor for the work image (0 < scale <= 1).
        history: frames the MOG2/KNN model remembers.
        var_threshold: MOG2 squared Mahalanobis distance (KNN: squared distance) for foreground;
            ``None``: OpenCV's default for the method.
        warm_k, warm_delta: warm mode threshold = median + max(warm_k * 1.4826 * MAD, warm_delta).
        min_height, max_height: person box height as a fraction of the frame height.
        min_aspect, max_aspect: allowed box height / width.
        min_fill: fraction of the box a blob must cover.
        person_aspect: height / width of one person (the synthetic people's median is 2.9).
        normalise: undo a global gain + offset change before the mask (step 2).
        shadows: let MOG2/KNN mark shadows (dropped from the mask); ``None``: on for colour
            frames, off for grey (thermal) ones.
        norm_offset: a frame is corrected only where the fitted gain + offset change moves the
            scene's grey levels (5th to 95th percentile) by more than this.
        close_height: height of the closing kernel, a fraction of the work image height.
        split_width, valley: a blob wider than ``split_width`` people of its height is split
            where its column profile falls below ``valley`` of the peaks on either side.
        max_foreground: foreground fraction above which a frame counts as a global change.
        relearn_frames: frames of fast learning after such a change (and at the start).
    """

    def __init__(self, method: str = "mog2", *, scale: float = 0.5, history: int = 300,
                 var_threshold: float | None = None, warm_k: float = 4.0, warm_delta: float = 14.0,
                 min_height: float = 0.12, max_height: float = 1.0, min_aspect: float = 1.0,
                 max_aspect: float = 6.0, min_fill: float = 0.25, person_aspect: float = 2.6,
                 normalise: bool = True, max_foreground: float = 0.45,
                 relearn_frames: int = 10, shadows: bool | None = None, norm_offset: float = 6.0, close_height: float = 0.1, split_width: float = 1.3,
                 valley: float = 0.8):
        if method not in FOREGROUND_METHODS:
            raise UsageError(f"foreground method must be one of {', '.join(FOREGROUND_METHODS)}, got {method!r}")
        if not 0 < scale <= 1:
            raise UsageError(f"scale must be in (0, 1], got {scale}")
        if not 0 < min_height < max_height:
            raise UsageError(f"need 0 < min_height < max_height, got {min_height}, {max_height}")
        if not 0 < min_aspect < max_aspect:
            raise UsageError(f"need 0 < min_aspect < max_aspect, got {min_aspect}, {max_aspect}")
        if not 0 < max_foreground <= 1:
            raise UsageError(f"max_foreground must be in (0, 1], got {max_foreground}")
        self.method, self.name = method, method
        self.scale, self.history = float(scale), int(history)
        self.var_threshold = var_threshold
        self.warm_k, self.warm_delta = float(warm_k), float(warm_delta)
        self.min_height, self.max_height = float(min_height), float(max_height)
        self.min_aspect, self.max_aspect = float(min_aspect), float(max_aspect)
        self.min_fill, self.person_aspect = float(min_fill), float(person_aspect)
        self.normalise = bool(normalise)
        self.max_foreground, self.relearn_frames = float(max_foreground), int(relearn_frames)
        self.shadows, self.norm_offset, self.close_height = shadows, float(norm_offset), float(close_height)
        self.split_width, self.valley = float(split_width), float(valley)
        self.resets = 0
        self._model = None
        self._ref: np.ndarray | None = None  # float32 grey background at work size, learnt in the fast phase
        self._fast = self.relearn_frames
        self._frames = 0
        self._correcting = False
        self._kernel_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ state
    def _new_model(self, grey: bool):
        shadows = (not grey) if self.shadows is None else bool(self.shadows)  # thermal images have no shadows
        # KNN samples with OpenCV's process-wide random generator: without a seed a run's boxes depend
        # on what ran before in the process (measured: IDF1 0.253 vs 0.267 on one pair in a worker pool)
        cv2.setRNGSeed(0)
        if self.method.startswith("knn"):
            m = cv2.createBackgroundSubtractorKNN(history=self.history, detectShadows=shadows)
            if self.var_threshold is not None:
                m.setDist2Threshold(float(self.var_threshold))
            return m
        m = cv2.createBackgroundSubtractorMOG2(history=self.history, detectShadows=shadows)
        if self.var_threshold is not None:
            m.setVarThreshold(float(self.var_threshold))
        return m

    # ------------------------------------------------------------------ steps
    def _normalise(self, work: np.ndarray, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Undo the global gain/offset of ``gray`` against the reference (and the same on ``work``)."""
        ref = self._ref
        if ref is None:
            return work, gray
        g = gray[::3, ::3].astype(np.float32).ravel()
        r = ref[::3, ::3].ravel()
        # robust two-point fit g ~ a r + b: medians of the reference's darker and brighter halves
        # (people and noise move medians little; a least-squares fit on a flat thermal scene
        # is ill-conditioned and swings the gain from frame to frame)
        split = float(np.median(r))
        dark, bright = r <= split, r > split
        a, b = 1.0, float(np.median(g) - split)
        if dark.any() and bright.any():
            r_lo, r_hi = float(np.median(r[dark])), float(np.median(r[bright]))
            g_lo, g_hi = float(np.median(g[dark])), float(np.median(g[bright]))
            if r_hi - r_lo >= 10.0:
                a = (g_hi - g_lo) / (r_hi - r_lo)
                b = g_lo - a * r_lo
        lo, hi = np.percentile(r, (5, 95))  # the change the fit predicts over the scene's grey range
        change = max(abs((a - 1.0) * lo + b), abs((a - 1.0) * hi + b))
        # hysteresis: on above norm_offset, off below half of it (toggling would flicker the frame)
        self._correcting = 0.2 < a < 5.0 and change > self.norm_offset * (0.5 if self._correcting else 1.0)
        if self._correcting:
            work = np.clip((work.astype(np.float32) - b) / a, 0, 255).astype(np.uint8)
            gray = np.clip((gray.astype(np.float32) - b) / a, 0, 255).astype(np.uint8)
        return work, gray

    def _warm_mask(self, gray: np.ndarray) -> np.ndarray:
        med = float(np.median(gray[::2, ::2]))
        mad = float(np.median(np.abs(gray[::2, ::2].astype(np.float32) - med)))
        thr = med + max(self.warm_k * 1.4826 * mad, self.warm_delta)
        return np.where(gray > thr, 255, 0).astype(np.uint8)

    def foreground(self, image: np.ndarray) -> np.ndarray:
        """The cleaned uint8 foreground mask (0/255) at work size; updates the background model."""
        h, w = image.shape[:2]
        size = (max(16, int(round(w * self.scale))), max(16, int(round(h * self.scale))))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA) if self.scale != 1 else image
        gray = cv2.cvtColor(work, cv2.COLOR_BGR2GRAY) if work.ndim == 3 else work
        if self.method != "warm" and self.normalise:
            work, gray = self._normalise(work, gray)
        masks = []
        if self.method != "warm":
            if self._model is None:
                self._model = self._new_model(grey=_is_grey(work))
            rate = 0.1 if self._fast > 0 else -1.0
            src = gray if self.method.endswith("+warm") or work.ndim == 2 else work
            m = self._model.apply(src, learningRate=rate)
            masks.append(np.where(m == 255, 255, 0).astype(np.uint8))  # 127 = shadow: dropped
        if self.method.endswith("warm"):
            masks.append(self._warm_mask(gray))
        mask = masks[0] if len(masks) == 1 else cv2.bitwise_or(masks[0], masks[1])
        ref = gray.astype(np.float32)
        if self._ref is None or self._ref.shape != ref.shape:
            self._ref = ref
        elif self._fast > 0:  # the reference is learnt with the model, where nothing moves, then kept:
            bg = mask == 0  # (following the corrected frames would let the correction drift with itself)
            self._ref[bg] += 0.2 * (ref[bg] - self._ref[bg])
        fraction = float(np.count_nonzero(mask)) / mask.size
        if self._fast > 0:
            self._fast -= 1
        if fraction > self.max_foreground and self.method != "warm":
            if self._fast == 0 and self._frames > self.relearn_frames:
                self.resets += 1
            self._fast = self.relearn_frames
            self._ref = ref
            mask[:] = 0
        self._frames += 1
        opening, closing = self._kernels(mask.shape[0])
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, opening)
        return cv2.morphologyEx(mask, cv2.MORPH_CLOSE, closing)

    def _kernels(self, height: int) -> tuple[np.ndarray, np.ndarray]:
        """(opening, closing) structuring elements for a work image ``height`` rows high (built once)."""
        if self._kernel_cache is None or self._kernel_cache[0] != height:
            k = max(1, int(round(3 * self.scale * 2)))
            kw, kh = max(3, k + 2), max(5, int(round(height * self.close_height)) | 1)
            self._kernel_cache = (height, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)),
                                  cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kw, kh)))
        return self._kernel_cache[1], self._kernel_cache[2]

    def _boxes(self, mask: np.ndarray) -> tuple[list[list[float]], list[float]]:
        H = mask.shape[0]
        n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        boxes, scores = [], []
        for i in range(1, n):
            x, y, w, h, area = (int(v) for v in stats[i])
            if h < self.min_height * H or h > self.max_height * H:
                continue
            parts = [(x, x + w)]
            if w * self.person_aspect > self.split_width * h:  # wider than one person of this height: split
                comp = labels[y:y + h, x:x + w] == i
                parts = _split_columns(comp, max(2, int(round(w * self.person_aspect / h)) + 1), x, self.valley)
            for xa, xb in parts:
                comp = labels[y:y + h, xa:xb] == i
                rows = np.flatnonzero(comp.any(axis=1))
                cols = np.flatnonzero(comp.any(axis=0))
                if rows.size == 0 or cols.size == 0:
                    continue
                bx0, bx1 = xa + cols[0], xa + cols[-1] + 1
                by0, by1 = y + rows[0], y + rows[-1] + 1
                bw, bh = bx1 - bx0, by1 - by0
                if bh < self.min_height * H or not self.min_aspect <= bh / max(bw, 1) <= self.max_aspect:
                    continue
                fill = float(comp[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].sum()) / (bw * bh)
                if fill < self.min_fill:
                    continue
                boxes.append([bx0, by0, bx1, by1])
                scores.append(0.5 + 0.5 * min(1.0, fill))
        return boxes, scores

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        return self.detect_with_mask(image)[0]

    def detect_with_mask(self, image: np.ndarray) -> tuple[Detections, np.ndarray]:
        """(person boxes, the foreground mask at work size they came from)."""
        mask = self.foreground(image)
        return self._mask_boxes(mask, image.shape[:2]), mask

    def _mask_boxes(self, mask: np.ndarray, frame_hw: tuple[int, int]) -> Detections:
        boxes, scores = self._boxes(mask)
        if not boxes:
            return Detections.empty()
        h, w = frame_hw
        sy, sx = h / mask.shape[0], w / mask.shape[1]
        b = clip_boxes(np.asarray(boxes, np.float32) * np.array([sx, sy, sx, sy], np.float32), h, w)
        return Detections(b, np.asarray(scores, np.float32))


def _is_grey(img: np.ndarray) -> bool:
    if img.ndim == 2 or img.shape[2] == 1:
        return True
    s = img[::7, ::7].astype(np.int16)  # video codecs leave a few levels of chroma noise on grey frames
    return bool(np.abs(s[..., 0] - s[..., 1]).mean() < 3 and np.abs(s[..., 1] - s[..., 2]).mean() < 3)


def _split_columns(comp: np.ndarray, parts: int, x0: int, valley: float = 0.8) -> list[tuple[int, int]]:
    """Cut a blob (bool ``[h, w]``) into at most ``parts`` column ranges at valleys of its column
    profile: a cut goes where the (smoothed) profile falls below ``valley`` times the lower of
    the highest columns on either side, deepest valleys first, cuts at least a third of a
    part's width apart."""
    w = comp.shape[1]
    prof = comp.sum(axis=0).astype(np.float32)
    k = max(3, (w // (4 * parts)) | 1)
    prof = np.convolve(prof, np.ones(k, np.float32) / k, mode="same")
    gap = max(2, w // (3 * parts))
    cuts: list[int] = []
    for c in np.argsort(prof[gap:w - gap], kind="stable") + gap:
        c = int(c)
        if any(abs(c - d) < gap for d in cuts):
            continue
        lo = max([d for d in cuts if d < c], default=0)
        hi = min([d for d in cuts if d > c], default=w)
        if prof[c] < valley * min(prof[lo:c].max(), prof[c + 1:hi].max()):
            cuts.append(c)
        if len(cuts) == parts - 1:
            break
    edges = [0, *sorted(cuts), w]
    return [(x0 + a, x0 + b) for a, b in zip(edges[:-1], edges[1:]) if b - a >= 2]


class BackgroundConfirmed(Detector):
    """A person CNN for a fixed camera, its weaker boxes confirmed by the camera's background model.

    A CNN trained on real photographs (the packaged ``ssdlite``) finds people standing still and
    people in groups, where a background model fails; a background model finds the small and
    partly hidden people the CNN scores low, but also whatever else moves. Together:

    * a CNN box scoring ``sure`` or more is kept; one scoring between the CNN's own threshold and
      ``sure`` is kept when at least ``min_foreground`` of it is foreground (it moves, as people do);
    * ``snap``: a kept box over enough foreground moves that far (0: not at all, 1: all the way)
      towards the extent of the foreground around it (the CNN's boxes are loose by a few pixels on
      people 50-100 px tall, which IoU 0.5 does not forgive);
    * a foreground blob no kept box covers (``covered`` of its area) is added, scored below ``sure``
      (``add_blobs``).

    Measured on real footage (``benchmarks/real_footage.py``, ``docs/real_footage``): each step pays.
    The name is the two detectors' names joined by ``+`` (``ssdlite+mog2``).
    """

    def __init__(self, cnn: Detector, background: ForegroundDetector, *, sure: float = 0.5,
                 min_foreground: float = 0.4, snap: float = 0.5, add_blobs: bool = True, covered: float = 0.3):
        if not 0 <= snap <= 1:
            raise UsageError(f"snap must be in [0, 1], got {snap}")
        self.cnn, self.background = cnn, background
        self.sure, self.min_foreground, self.snap = float(sure), float(min_foreground), float(snap)
        self.add_blobs, self.covered = bool(add_blobs), float(covered)
        self.name = f"{getattr(cnn, 'name', 'cnn')}+{background.method}"

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        found = self.cnn.detect(image, frame_index)
        blobs, mask = self.background.detect_with_mask(image)
        h, w = image.shape[:2]
        to_mask = np.array([mask.shape[1] / w, mask.shape[0] / h] * 2, np.float32)
        keep = (found.scores >= self.sure) | (_box_fractions(mask, found.boxes * to_mask) >= self.min_foreground)
        boxes, scores = found.boxes[keep], found.scores[keep]
        if self.snap > 0 and len(boxes):
            boxes = (1 - self.snap) * boxes + self.snap * _foreground_extents(mask, boxes * to_mask) / to_mask
        if self.add_blobs and len(blobs):
            free = (intersection_over_first(blobs.boxes, boxes).max(axis=1) < self.covered if len(boxes)
                    else np.ones(len(blobs), bool))
            boxes = np.concatenate([boxes, blobs.boxes[free]])
            scores = np.concatenate([scores, blobs.scores[free] * np.float32(self.sure * 0.99)])
        return Detections(boxes, scores)


def _foreground_extents(mask: np.ndarray, boxes: np.ndarray, grow: float = 0.15, min_fill: float = 0.2,
                        line: float = 0.1) -> np.ndarray:
    """Each box (``mask`` pixels) replaced by the extent of the foreground around it: the rows and
    columns, within the box grown by ``grow`` each side, that are more than ``line`` foreground.
    A box with less than ``min_fill`` of its area foreground (someone standing still) is kept."""
    out = boxes.copy()
    H, W = mask.shape[:2]
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        bw, bh = x2 - x1, y2 - y1
        X1, X2 = int(max(0, x1 - grow * bw)), int(min(W, x2 + grow * bw))
        Y1, Y2 = int(max(0, y1 - grow * bh)), int(min(H, y2 + grow * bh))
        region = mask[Y1:Y2, X1:X2] > 0
        if region.size == 0 or region.sum() < min_fill * bw * bh:
            continue
        cols = np.flatnonzero(region.mean(axis=0) > line)
        rows = np.flatnonzero(region.mean(axis=1) > line)
        if len(cols) >= 2 and len(rows) >= 2:
            out[i] = [X1 + cols[0], Y1 + rows[0], X1 + cols[-1] + 1, Y1 + rows[-1] + 1]
    return out


def _box_fractions(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Foreground fraction of each x1y1x2y2 box (in ``mask`` pixels), from one integral image."""
    if len(boxes) == 0:
        return np.zeros(0, np.float32)
    ii = cv2.integral((mask > 0).astype(np.uint8))
    H, W = mask.shape[:2]
    b = np.round(boxes).astype(np.int64)
    x1, x2 = np.clip(b[:, 0], 0, W), np.clip(b[:, 2], 0, W)
    y1, y2 = np.clip(b[:, 1], 0, H), np.clip(b[:, 3], 0, H)
    area = np.maximum((x2 - x1) * (y2 - y1), 1)
    inside = ii[y2, x2] - ii[y1, x2] - ii[y2, x1] + ii[y1, x1]
    return (inside / area).astype(np.float32)
