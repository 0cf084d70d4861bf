"""Person detectors: the packaged CNN (default), background subtraction (:mod:`.foreground`),
OpenCV HOG, an ONNX YOLO-style model, or boxes from a MOT file.

Detector names (``make_detector(detector=...)``, ``mvd-edge match --set detector.name=`` /
``detector.ir=`` / ``detector.rgb=``): ``auto`` -- the best measured one for the stream's modality
(:data:`DEFAULT_DETECTORS`: ``person-synth`` for both; ``docs/detectors``);
``mog2``, ``knn``, ``warm``, ``mog2+warm``, ``knn+warm`` (:class:`~.foreground.ForegroundDetector`);
``hog``; ``person-synth`` (the packaged detector trained on synthetic scenes, :data:`PERSON_SYNTH`);
or the path of a YOLO-style ``.onnx`` model.

Every detector has ``detect(image, frame_index) -> Detections``; ``image`` is uint8 BGR
``[H, W, 3]`` and ``frame_index`` the source's 0-based frame number (only the MOT reader
uses it). Boxes are float32 ``[N, 4]`` as ``x1, y1, x2, y2`` in the image's pixels.

ONNX detector: expected model
-----------------------------
One float32 input ``[1, 3, H, W]`` (RGB, scaled to 0..1, letterboxed to ``H x W`` with grey
114 padding; a dynamic ``H``/``W`` is taken as ``detector.size``, default 640), and a
first output in one of these layouts (``layout="auto"`` picks by shape):

* ``v8``: ``[1, 4 + C, N]`` -- YOLOv8/YOLO11 (Ultralytics) export: rows ``cx, cy, w, h``
  then C class scores (no objectness). Chosen when the middle axis is the smaller one.
* ``v5``: ``[1, N, 5 + C]`` -- YOLOv5/YOLOv7 export: ``cx, cy, w, h, objectness`` then C
  class scores; score = objectness x class score. Chosen for ``[1, N, K]`` with K >= 7.
* ``e2e``: ``[1, N, 6]`` -- suppression already inside the model (e.g. Ultralytics ``nms=True``,
  YOLOv10, the peak suppression of ``train-detector --layout e2e``): ``x1, y1, x2, y2, score,
  class``. Chosen for K == 6 (a single-class v5 model has K == 6 too: pass ``layout="v5"``
  for it). NMS runs on it too (a no-op on outputs an NMS already cleaned).

Coordinates are in the letterboxed input's pixels. The person class is ``person_class``
(0 in COCO). Score threshold, then NMS on the person boxes.

MOT box files
-------------
Lines ``frame,id,x,y,w,h[,score[,...]]`` (MOT-challenge det/gt style; frames 1-based,
``x, y`` the top-left corner, comma or space separated, ``#`` comments). ``id = -1``
means no identity (a detector's output): the matcher's tracker then links the boxes.
When every row has an id >= 0 the file is taken as a tracker's output and, unless
re-tracking is asked for, its ids are the track ids. Rows with ``score < min_score``
are dropped (MOT ground truth uses score 0 for "ignore": use ``min_score=0.5`` there).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mvd_edge.core.errors import UsageError

__all__ = ["DEFAULT_DETECTORS", "DETECTOR_NAMES", "DETECTOR_SOURCES", "PERSON_SYNTH", "SSDLITE", "SYNTHETIC_ONLY",
           "UNTRAINED_DEFAULTS", "Detections", "Detector", "HogDetector", "MotBoxes", "MotRow", "OnnxDetector",
           "SsdDetector", "box_iou", "clip_boxes", "intersection_over_first", "iter_mot", "letterbox", "make_detector",
           "nms", "read_mot"]


#: The default detector per stream modality (``auto``), chosen by measurement on real footage
#: (``benchmarks/real_footage.py``, ``docs/real_footage``). RGB: the packaged real-world CNN with
#: its weaker boxes confirmed by the fixed camera's background model. IR: no person detector
#: trained on real thermal images is packaged, and the CNN (trained on colour photographs) finds
#: nobody on the benchmark's thermal-like proxy of the same video, where the background model
#: ``knn`` is the best measured. ``auto`` never means a detector trained only on synthetic data
#: (:data:`SYNTHETIC_ONLY`). The best detectors that need no training on the synthetic scenes are
#: ``mog2+warm`` (IR) and ``knn`` (RGB), see :data:`UNTRAINED_DEFAULTS`.
DEFAULT_DETECTORS = {"ir": "knn", "rgb": "ssdlite+mog2"}
UNTRAINED_DEFAULTS = {"ir": "mog2+warm", "rgb": "knn"}
#: What each named detector learnt from (``match --help`` and the README say the same).
DETECTOR_SOURCES = {
    "ssdlite+mog2": "ssdlite, its weaker boxes confirmed by a MOG2 background model (fixed cameras)",
    "ssdlite": "SSDLite-MobileNetV2 trained on real photographs (packaged, MIT)",
    "hog": "OpenCV's HOG people detector, trained on real photographs",
    "mog2": "no training: the fixed camera's background model",
    "knn": "no training: the fixed camera's background model",
    "warm": "no training: warm blobs of a thermal image",
    "mog2+warm": "no training: background model and warm blobs",
    "knn+warm": "no training: background model and warm blobs",
    "person-synth": "trained on this project's synthetic scenes ONLY (the demo's videos), not for real cameras",
}
DETECTOR_NAMES = ("auto", *DETECTOR_SOURCES)
#: Detectors that never saw a real image: ``auto`` must never resolve to one of these.
SYNTHETIC_ONLY = frozenset({"person-synth"})
#: ``ssdlite``: the packaged real-world person detector (``scripts/convert_ssdlite.py`` made it;
#: source, licence, conversion and sha256 in ``person-ssdlite.json`` beside it).
SSDLITE = Path(__file__).resolve().parent.parent / "assets" / "person-ssdlite.onnx"
#: ``ssdlite`` settings chosen on the real-footage benchmark's own ground truth (docs/real_footage).
SSDLITE_SETTINGS = {"conf": 0.3, "tiles": 2}
#: ``ssdlite+mog2`` (:class:`~.foreground.BackgroundConfirmed`): the CNN runs down to ``floor``;
#: boxes under ``sure`` need ``min_foreground``; background blobs from people ``blob_height`` of
#: the frame tall. Chosen on the benchmark's own ground truth (docs/real_footage).
CONFIRMED_SETTINGS = {"floor": 0.3, "sure": 0.6, "min_foreground": 0.5, "snap": 0.5, "covered": 0.3,
                      "blob_height": 0.09}
#: ``person-synth``: the packaged detector ``mvd-edge train-detector`` trained on synthetic scenes
#: (``mvd_edge/assets/person-synth.onnx``, how it was made in ``person-synth.json`` beside it).
PERSON_SYNTH = Path(__file__).resolve().parent.parent / "assets" / "person-synth.onnx"


@dataclass
class Detections:
    """``boxes`` float32 ``[N, 4]`` x1, y1, x2, y2; ``scores`` float32 ``[N]`` in 0..1 (HOG's
    SVM margin is mapped to ``1 - exp(-margin)``); ``ids`` int64 ``[N]`` external track ids or None."""

    boxes: np.ndarray
    scores: np.ndarray
    ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        if self.ids is not None:
            self.ids = np.asarray(self.ids, np.int64).reshape(-1)
        if len(self.scores) != len(self.boxes) or (self.ids is not None and len(self.ids) != len(self.boxes)):
            raise ValueError("Detections: boxes, scores and ids must have the same length")

    def __len__(self) -> int:
        return len(self.boxes)

    @classmethod
    def empty(cls) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


class Detector:
    """Interface: ``detect(image, frame_index) -> Detections``."""

    name = "detector"

    def detect(self, image: np.ndarray, frame_index: int) -> Detections:  # pragma: no cover - interface
        raise NotImplementedError


def _intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]`` intersection areas of x1y1x2y2 boxes."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)


def clip_boxes(boxes: np.ndarray, h: float, w: float) -> np.ndarray:
    """x1y1x2y2 ``boxes`` clipped, in place, to a frame ``w`` wide and ``h`` high; returns them."""
    boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
    boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
    return boxes


def _visible(boxes: np.ndarray) -> np.ndarray:
    """Which x1y1x2y2 boxes are more than a pixel wide and high (a box clipped to a frame edge may not be)."""
    return (boxes[:, 2] - boxes[:, 0] > 1) & (boxes[:, 3] - boxes[:, 1] > 1)


def _detector_session(path: str | Path, device: str, threads: int | None, backend: str = "ort", **options):
    """A session of the detector model at ``path``: ONNX Runtime's, or ``backend="openvino"``'s stand-in for one
    (:class:`mvd_edge.runtime.ov_backend.OvSession`; ``options`` are ONNX Runtime's and do not apply)."""
    from mvd_edge.deploy.formats import engine_format

    if not engine_format(backend, what="detector backend").reads_onnx:
        raise UsageError(f"the detector runs on ONNX Runtime (ort) or OpenVINO (openvino), not {backend!r}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"detector model not found: {p}")
    if backend == "openvino":
        from mvd_edge.runtime.ov_backend import OvSession

        return OvSession(p, device=device, threads=threads)
    from mvd_edge.runtime.ort_backend import make_session

    # no spinning: in the matcher the detector takes turns with the embedder on the same cores
    return make_session(p, device=device, threads=threads, spin=False, **options)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of x1y1x2y2 boxes: ``[N, 4]`` x ``[M, 4]`` -> ``[N, M]`` float32."""
    a = np.asarray(a, np.float32).reshape(-1, 4)
    b = np.asarray(b, np.float32).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    inter = _intersections(a, b)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression (x1y1x2y2 boxes), best score first."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float32), kind="stable")
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        if order.size == 1:
            break
        rest = order[1:]
        order = rest[box_iou(boxes[i:i + 1], boxes[rest])[0] <= iou]
    return np.asarray(keep, np.int64)


class HogDetector(Detector):
    """OpenCV's HOG + linear SVM people detector (``cv2.HOGDescriptor_getDefaultPeopleDetector``).

    Finds upright people about 100 px tall or more (the model's window is 64 x 128) at
    ``upscale`` x the frame size (``upscale=2`` finds people down to ~50 px, 4x slower;
    ``0.5`` is ~4x faster for large people).

    Args:
        hit_threshold: SVM margin a window needs (higher: fewer, surer detections).
        win_stride: window step in pixels at each scale (8: standard; 4: finer, slower).
        scale: pyramid step (1.05 standard; 1.1 faster).
        upscale: resize factor applied to the frame before detection.
        nms_iou: IoU above which overlapping detections are merged (kept: the strongest).
        min_score: drop detections below this score (``1 - exp(-margin)``).
        shrink: ``(left/right, top, bottom)`` fractions cut from the 64x128-shaped window so
            the box hugs the person (HOG windows carry a margin around the body).
    """

    name = "hog"

    def __init__(self, hit_threshold: float = 0.0, win_stride: int = 8, scale: float = 1.05, upscale: float = 1.0,
                 nms_iou: float = 0.4, min_score: float = 0.0,
                 shrink: tuple[float, float, float] = (0.2, 0.11, 0.11)):
        if upscale <= 0:
            raise UsageError(f"upscale must be > 0, got {upscale}")
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor_getDefaultPeopleDetector())
        self.hit_threshold, self.win_stride = float(hit_threshold), (int(win_stride), int(win_stride))
        self.scale, self.upscale = float(scale), float(upscale)
        self.nms_iou, self.min_score = float(nms_iou), float(min_score)
        self.shrink = tuple(float(v) for v in shrink)

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        img = image
        if self.upscale != 1.0:
            img = cv2.resize(image, None, fx=self.upscale, fy=self.upscale,
                             interpolation=cv2.INTER_LINEAR if self.upscale > 1 else cv2.INTER_AREA)
        rects, weights = self.hog.detectMultiScale(img, hitThreshold=self.hit_threshold, winStride=self.win_stride,
                                                   padding=(8, 8), scale=self.scale)
        if len(rects) == 0:
            return Detections.empty()
        r = np.asarray(rects, np.float32).reshape(-1, 4) / self.upscale
        w = np.asarray(weights, np.float32).reshape(-1)
        sx, st, sb = self.shrink
        boxes = np.stack([r[:, 0] + sx * r[:, 2], r[:, 1] + st * r[:, 3],
                          r[:, 0] + (1 - sx) * r[:, 2], r[:, 1] + (1 - sb) * r[:, 3]], axis=1)
        scores = 1.0 - np.exp(-np.clip(w, 0, None))
        keep = scores >= self.min_score
        boxes, scores = boxes[keep], scores[keep]
        k = nms(boxes, scores, self.nms_iou)
        return Detections(boxes[k], scores[k])


class OnnxDetector(Detector):
    """A YOLO-style person detector run with ONNX Runtime (see the module docstring for the
    expected input and outputs).

    Args:
        path: the ``.onnx`` model.
        conf: score threshold. iou: NMS IoU. person_class: class index of "person".
        layout: ``auto``, ``v8``, ``v5`` or ``e2e``. size: ``(H, W)`` for a dynamic input.
        device: ``cpu`` or ``cuda``. threads: ONNX Runtime intra-op threads.
        backend: ``ort`` (ONNX Runtime) or ``openvino`` (OpenVINO, cpu).
    """

    name = "onnx"

    def __init__(self, path: str | Path, conf: float = 0.35, iou: float = 0.5, person_class: int = 0,
                 layout: str = "auto", size: tuple[int, int] = (640, 640), device: str = "cpu",
                 threads: int | None = None, backend: str = "ort"):
        if layout not in ("auto", "v8", "v5", "e2e"):
            raise UsageError(f"detector layout must be auto, v8, v5 or e2e, got {layout!r}")
        p = Path(path)
        self.session = _detector_session(p, device, threads, backend)
        inp = self.session.get_inputs()[0]
        shape = list(inp.shape)
        if len(shape) != 4:
            raise UsageError(f"{p}: expected one image input [1, 3, H, W], got {inp.name} {shape}")
        out0 = self.session.get_outputs()[0]
        if len(out0.shape) != 3:
            raise UsageError(f"{p}: its output {out0.name} {list(out0.shape)} is not a detector's ([1, 4+C, N], "
                             "[1, N, 5+C] or [1, N, 6]); is it a re-id engine? Pass it as --model, and a detector "
                             "as --set detector.name=FILE")
        h = shape[2] if isinstance(shape[2], int) and shape[2] > 0 else int(size[0])
        w = shape[3] if isinstance(shape[3], int) and shape[3] > 0 else int(size[1])
        self.input_name, self.input_hw = inp.name, (int(h), int(w))
        self.conf, self.iou, self.person_class, self.layout = float(conf), float(iou), int(person_class), layout

    def decode(self, out: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Raw first output -> (boxes x1y1x2y2 in input pixels, scores, nms_done)."""
        out = np.asarray(out, np.float32)
        if out.ndim == 3:
            if out.shape[0] != 1:
                raise UsageError(f"detector output batch must be 1, got shape {list(out.shape)}")
            out = out[0]
        if out.ndim != 2:
            raise UsageError(f"detector output must be [1, C, N] or [1, N, K], got shape {list(out.shape)}")
        layout = self.layout
        if layout == "auto":
            if out.shape[0] < out.shape[1] and out.shape[0] >= 5:
                layout = "v8"
            elif out.shape[1] == 6:
                layout = "e2e"
            elif out.shape[1] >= 7:
                layout = "v5"
            else:
                raise UsageError(f"cannot tell the detector output layout from shape {list(out.shape)}; "
                                 "set detector.layout to v8, v5 or e2e (--set detector.layout=v8)")
        if layout == "v8":
            rows = out.T if out.shape[0] < out.shape[1] else out
            if self.person_class >= rows.shape[1] - 4:
                raise UsageError(f"person class {self.person_class} out of range for {rows.shape[1] - 4} classes")
            return _cxcywh(rows[:, :4]), rows[:, 4 + self.person_class], False
        if layout == "v5":
            if self.person_class >= out.shape[1] - 5:
                raise UsageError(f"person class {self.person_class} out of range for {out.shape[1] - 5} classes")
            return _cxcywh(out[:, :4]), out[:, 4] * out[:, 5 + self.person_class], False
        if out.shape[1] < 6:
            raise UsageError(f"e2e detector output needs 6 columns (x1, y1, x2, y2, score, class), got {out.shape[1]}")
        keep = np.round(out[:, 5]).astype(np.int64) == self.person_class
        return out[keep, :4], out[keep, 4], True

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        rgb, r, left, top = letterbox(image, self.input_hw)
        x = np.ascontiguousarray(rgb.transpose(2, 0, 1)[None].astype(np.float32) * (1.0 / 255.0))
        out = self.session.run(None, {self.input_name: x})[0]
        boxes, scores, _ = self.decode(out)
        keep = scores >= self.conf
        boxes, scores = boxes[keep], scores[keep]
        if len(boxes):  # e2e outputs too: in-graph peak suppression can leave duplicates, and NMS is idempotent
            k = nms(boxes, scores, self.iou)
            boxes, scores = boxes[k], scores[k]
        boxes = clip_boxes((boxes - np.array([left, top, left, top], np.float32)) / r, *image.shape[:2])
        ok = _visible(boxes)
        return Detections(boxes[ok], np.clip(scores[ok], 0, 1))


class SsdDetector(Detector):
    """A TensorFlow-Object-Detection-API SSD person detector (the packaged ``ssdlite``:
    SSDLite-MobileNetV2 trained on real photographs) run with ONNX Runtime (``backend="ort"``) or
    OpenVINO (``backend="openvino"``).

    The ONNX graph holds the backbone and box heads only (``scripts/convert_ssdlite.py`` cuts the
    TensorFlow graph there), so it is a plain float graph the project's INT8 path can calibrate;
    the box decoding against the graph's anchors and the NMS run here in numpy.

    Input: each tile resized with ``cv2.resize`` (bilinear) to ``size`` x ``size``, RGB, scaled to
    -1..1 (the graph's own preprocessing constants). Output 0: box codes ``[B, A, 1, 4]``
    (``ty, tx, th, tw`` of TF's Faster-RCNN box coder, scale factors 10, 10, 5, 5); output 1:
    class scores after the sigmoid ``[B, A, 2]`` (background, person).

    ``tiles``: 1 runs the whole frame; 2 also runs the left and right halves (each a square-ish
    crop of the frame's full height), which finds people about half as tall (300 px of network
    input over 576 px of frame leaves a 60 px person 31 px tall) at 3x the network time.
    Boxes from every pass are merged by NMS; a box cut by a tile's inner edge is dropped when
    another pass sees it whole.
    """

    name = "ssdlite"

    def __init__(self, path: str | Path, anchors: np.ndarray, conf: float = 0.3, iou: float = 0.6,
                 size: int = 300, tiles: int = 1, device: str = "cpu", threads: int | None = None,
                 backend: str = "ort"):
        if tiles not in (1, 2):
            raise UsageError(f"tiles must be 1 or 2, got {tiles}")
        # "all": ONNX Runtime's layout optimisations take this NHWC graph from 44 to 11 ms a window
        # (one thread here); the re-id engines keep "extended", which their parity checks were made with
        self.session = _detector_session(path, device, threads, backend, optimization="all")
        self.input_name = self.session.get_inputs()[0].name
        self.anchors = np.asarray(anchors, np.float32).reshape(-1, 4)  # ymin, xmin, ymax, xmax in 0..1
        self.conf, self.iou, self.size, self.tiles = float(conf), float(iou), int(size), int(tiles)

    def _windows(self, h: int, w: int) -> list[tuple[int, int, int, int]]:
        """Pixel windows ``(x0, y0, x1, y1)`` the network sees: the frame, then the tiles."""
        wins = [(0, 0, w, h)]
        if self.tiles == 2 and w > h // 2:
            tw = min(w, max(h, w // 2 + w // 8))  # each half plus an overlap, at most the frame
            wins += [(0, 0, tw, h), (w - tw, 0, w, h)]
        return wins

    def preprocess(self, image: np.ndarray, wins: list[tuple[int, int, int, int]]) -> np.ndarray:
        """BGR uint8 frame -> float32 ``[len(wins), size, size, 3]`` network input."""
        batch = np.empty((len(wins), self.size, self.size, 3), np.float32)
        for k, (x0, y0, x1, y1) in enumerate(wins):
            tile = cv2.resize(image[y0:y1, x0:x1], (self.size, self.size), interpolation=cv2.INTER_LINEAR)
            batch[k] = tile[:, :, ::-1]
        return batch * np.float32(2.0 / 255.0) - np.float32(1.0)

    def decode(self, codes: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One window's raw outputs -> (boxes ymin, xmin, ymax, xmax in 0..1, person scores)."""
        a = self.anchors
        ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        yc_a, xc_a = a[:, 0] + ha / 2, a[:, 1] + wa / 2
        t = np.asarray(codes, np.float32).reshape(-1, 4)
        yc, xc = t[:, 0] / 10 * ha + yc_a, t[:, 1] / 10 * wa + xc_a
        h, w = np.exp(t[:, 2] / 5) * ha, np.exp(t[:, 3] / 5) * wa
        boxes = np.stack([yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], axis=1)
        return boxes, np.asarray(scores, np.float32).reshape(len(boxes), -1)[:, -1]

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        h, w = image.shape[:2]
        wins = self._windows(h, w)
        codes, scores = self.session.run(None, {self.input_name: self.preprocess(image, wins)})[:2]
        all_boxes, all_scores, cut = [], [], []
        for k, (x0, y0, x1, y1) in enumerate(wins):
            b, s = self.decode(codes[k], scores[k])
            keep = s >= self.conf
            b, s = b[keep], s[keep]
            px = clip_boxes(np.stack([x0 + b[:, 1] * (x1 - x0), y0 + b[:, 0] * (y1 - y0),
                                      x0 + b[:, 3] * (x1 - x0), y0 + b[:, 2] * (y1 - y0)], axis=1), h, w)
            # touching an edge of the tile that is not an edge of the frame: the person may be cut
            margin = 2.0
            inner_cut = ((x0 > 0) & (px[:, 0] <= x0 + margin)) | ((x1 < w) & (px[:, 2] >= x1 - margin))
            all_boxes.append(px)
            all_scores.append(s)
            cut.append(inner_cut)
        boxes, scores_, cut_ = np.concatenate(all_boxes), np.concatenate(all_scores), np.concatenate(cut)
        if len(boxes) == 0:
            return Detections.empty()
        if cut_.any() and (~cut_).any():  # a cut box inside a whole one is the same person
            whole = boxes[~cut_]
            inside = intersection_over_first(boxes[cut_], whole).max(axis=1) >= 0.7
            drop = np.zeros(len(boxes), bool)
            drop[np.flatnonzero(cut_)[inside]] = True
            boxes, scores_ = boxes[~drop], scores_[~drop]
        k = nms(boxes, scores_, self.iou)
        boxes, scores_ = boxes[k], scores_[k]
        ok = _visible(boxes)
        return Detections(boxes[ok], np.clip(scores_[ok], 0, 1))


def intersection_over_first(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``[N, M]``: the part of each box of ``a`` covered by each box of ``b`` (x1y1x2y2)."""
    area = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    return _intersections(a, b) / np.maximum(area[:, None], 1e-9)


def load_ssdlite(device: str = "cpu", conf: float | None = None, tiles: int | None = None,
                 threads: int | None = None, backend: str = "ort") -> SsdDetector:
    """The packaged real-world person detector (:data:`SSDLITE`) with :data:`SSDLITE_SETTINGS`
    where ``conf`` / ``tiles`` are not given, on ``backend`` (``ort`` or ``openvino``)."""
    anchors = SSDLITE.with_suffix(".anchors.npy")
    if not SSDLITE.is_file() or not anchors.is_file():
        raise UsageError(f"the packaged detector is missing ({SSDLITE}): reinstall mvd-edge")
    return SsdDetector(SSDLITE, np.load(anchors), conf=SSDLITE_SETTINGS["conf"] if conf is None else conf,
                       tiles=int(SSDLITE_SETTINGS["tiles"] if tiles is None else tiles), device=device,
                       threads=threads, backend=backend)


def letterbox(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float, float, float]:
    """BGR uint8 frame -> (RGB uint8 ``[H, W, 3]`` of ``size``, scale, left, top): resized to fit,
    centred, padded with grey 114 (the YOLO convention; the ONNX detector's input)."""
    H, W = size
    h, w = image.shape[:2]
    r = min(H / h, W / w)
    nh, nw = int(round(h * r)), int(round(w * r))
    top, left = (H - nh) // 2, (W - nw) // 2
    canvas = np.full((H, W, 3), 114, np.uint8)
    canvas[top:top + nh, left:left + nw] = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB), r, float(left), float(top)


def _cxcywh(b: np.ndarray) -> np.ndarray:
    return np.stack([b[:, 0] - b[:, 2] / 2, b[:, 1] - b[:, 3] / 2, b[:, 0] + b[:, 2] / 2, b[:, 1] + b[:, 3] / 2], axis=1)


@dataclass(frozen=True)
class MotRow:
    """One MOT line: ``frame`` 0-based, ``x, y`` the top-left corner; ``score`` 1 and ``visibility``
    None when the line does not give them (``visibility`` is column 9, ``-1`` there means none)."""

    frame: int
    id: int
    x: float
    y: float
    w: float
    h: float
    score: float
    visibility: float | None


def iter_mot(path: str | Path) -> Iterator[MotRow]:
    """The rows of a MOT box file with a positive width and height (see the module docstring).

    A line that does not parse, or a frame below 1 (MOT frames are 1-based), is a
    :class:`UsageError` naming the line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"boxes file not found: {p}")
    try:
        text = p.read_text()
    except UnicodeDecodeError:
        raise UsageError(f"{p}: not a text file; expected MOT rows 'frame,id,x,y,w,h[,score,...]'") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = [v for v in line.replace(",", " ").split() if v]
        try:
            frame, tid = int(float(parts[0])), int(float(parts[1]))
            x, y, w, h = (float(v) for v in parts[2:6])
            score = float(parts[6]) if len(parts) > 6 else 1.0
            vis = float(parts[8]) if len(parts) > 8 else None
        except (ValueError, IndexError):
            shown = raw if len(raw) <= 80 else raw[:77] + "..."
            raise UsageError(f"{p}:{lineno}: expected MOT 'frame,id,x,y,w,h[,score,...]', got {shown!r}") from None
        if not all(np.isfinite(v) for v in (x, y, w, h, score)):
            raise UsageError(f"{p}:{lineno}: a box value is not a finite number: {raw[:80]!r}")
        if frame < 1:
            raise UsageError(f"{p}:{lineno}: MOT frames are 1-based, got {frame}")
        if w > 0 and h > 0:
            yield MotRow(frame - 1, tid, x, y, w, h, score, None if vis is None or vis < 0 else min(vis, 1.0))


def read_mot(path: str | Path, min_score: float | None = None) -> dict[int, Detections]:
    """Read a MOT box file -> ``{frame (0-based): Detections}`` (x1y1x2y2 boxes).

    ``ids`` are set on every frame's Detections when all rows of the file carry an id >= 0.
    """
    rows: dict[int, list[tuple[int, float, float, float, float, float]]] = {}
    all_ids = True
    for r in iter_mot(path):
        if min_score is not None and r.score < min_score:
            continue
        all_ids &= r.id >= 0
        rows.setdefault(r.frame, []).append((r.id, r.x, r.y, r.w, r.h, r.score))
    out: dict[int, Detections] = {}
    for k, rs in rows.items():
        a = np.asarray(rs, np.float64)
        boxes = np.stack([a[:, 1], a[:, 2], a[:, 1] + a[:, 3], a[:, 2] + a[:, 4]], axis=1)
        out[k] = Detections(boxes, np.clip(a[:, 5], 0, 1), a[:, 0].astype(np.int64) if all_ids else None)
    return out


class MotBoxes(Detector):
    """Boxes from a MOT file, looked up by the source's frame index (see the module docstring).

    ``use_ids=False`` drops the file's ids so the matcher's tracker links the boxes."""

    name = "boxes"

    def __init__(self, path: str | Path, min_score: float | None = None, use_ids: bool = True):
        self.path = Path(path)
        self.frames = read_mot(self.path, min_score)
        if not self.frames:
            raise UsageError(f"{self.path}: no boxes")
        self.has_ids = use_ids and all(d.ids is not None for d in self.frames.values())
        if not self.has_ids:
            for d in self.frames.values():
                d.ids = None
        self.frames_asked = self.frames_hit = 0  # how many frames were looked up, and how many had boxes

    def detect(self, image: np.ndarray | None, frame_index: int) -> Detections:
        self.frames_asked += 1
        d = self.frames.get(int(frame_index))
        if d is None:
            return Detections.empty()
        self.frames_hit += 1
        if image is not None:  # clip to the frame
            b = clip_boxes(d.boxes.copy(), *image.shape[:2])
            ok = _visible(b)
            return Detections(b[ok], d.scores[ok], None if d.ids is None else d.ids[ok])
        return d


def make_detector(boxes: str | Path | None = None, detector: str | Path | None = None, *,
                  modality: str = "rgb", retrack: bool = False, min_score: float | None = None,
                  hog_upscale: float = 1.0, hog_threshold: float = 0.0, onnx_layout: str = "auto",
                  onnx_size: Sequence[int] = (640, 640), onnx_conf: float = 0.35, device: str = "cpu",
                  ssdlite_tiles: int | None = None) -> Detector:
    """Boxes file if given, else ``detector``: a name of :data:`DETECTOR_NAMES` (``None`` =
    ``auto``: :data:`DEFAULT_DETECTORS` for ``modality``, ``"ir"`` or ``"rgb"``) or an ONNX path.
    ``ssdlite_tiles``: :class:`SsdLiteDetector`'s ``tiles`` (None: :data:`SSDLITE_SETTINGS`)."""
    if boxes is not None:
        return MotBoxes(boxes, min_score=min_score, use_ids=not retrack)
    if modality not in DEFAULT_DETECTORS:
        raise UsageError(f"modality must be 'ir' or 'rgb', got {modality!r}")
    name = "auto" if detector is None else str(detector)
    key = DEFAULT_DETECTORS[modality] if name.lower() == "auto" else name.lower()
    if key == "hog":
        return HogDetector(hit_threshold=hog_threshold, upscale=hog_upscale)
    if key in ("ssdlite", "ssdlite+mog2"):
        cnn = load_ssdlite(device=device, conf=None if key == "ssdlite" else CONFIRMED_SETTINGS["floor"],
                           tiles=ssdlite_tiles)
        if key == "ssdlite":
            return cnn
        from mvd_edge.match.foreground import BackgroundConfirmed, ForegroundDetector

        c = CONFIRMED_SETTINGS
        background = ForegroundDetector("mog2", shadows=modality == "rgb", normalise=modality == "ir",
                                        min_height=c["blob_height"])
        return BackgroundConfirmed(cnn, background, sure=c["sure"], min_foreground=c["min_foreground"],
                                   snap=c["snap"], covered=c["covered"])
    if key == "person-synth":
        if not PERSON_SYNTH.is_file():
            raise UsageError(f"the packaged detector is missing ({PERSON_SYNTH}): reinstall mvd-edge, or train one "
                             "with `mvd-edge train-detector`")
        det = OnnxDetector(PERSON_SYNTH, conf=onnx_conf, layout="auto", device=device)
        det.name = "person-synth"
        return det
    if key in DETECTOR_NAMES:
        from mvd_edge.match.foreground import ForegroundDetector

        # thermal images have no shadows; their gain/offset drift (AGC, flat-field jumps) is undone,
        # which on RGB streams cost 0.01-0.03 box recall and was not needed for day/night (docs/detectors)
        return ForegroundDetector(key, shadows=modality == "rgb", normalise=modality == "ir")
    if not name.lower().endswith(".onnx") and not Path(name).is_file():
        raise UsageError(f"unknown detector {name!r}: use one of {', '.join(DETECTOR_NAMES)} or a .onnx model")
    return OnnxDetector(name, conf=onnx_conf, layout=onnx_layout, size=(int(onnx_size[0]), int(onnx_size[1])),
                        device=device)
