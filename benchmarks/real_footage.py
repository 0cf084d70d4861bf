"""Real footage: person detectors and trackers on a real pedestrian video, and the IR/RGB matcher on a
labelled proxy of it.

The video is OpenCV's ``vtest.avi`` (768x576, 795 frames, 10 fps, a static outdoor camera over a
campus, 1-8 people; Apache-2.0 AND BSD-3-Clause, from Debian's ``opencv-doc`` package). Nobody here
made it. ``--video`` takes it from a path; without one it is fetched once into ``--cache`` with
``apt-get download opencv-doc`` + ``dpkg -x`` (no root needed). Elsewhere: the same file is
``samples/data/vtest.avi`` in OpenCV's source tree (github.com/opencv/opencv).

Ground truth (``benchmarks/data/vtest/gt.txt``, MOT format): people boxed by eye on 40 frames (every
20th from frame 10), with identities kept across those frames; how it was made is in
``benchmarks/data/vtest/README.md``.

Sections (``--sections``, all by default):

* ``detection``: every detector's precision / recall / F1 at IoU 0.5 on the labelled frames (one
  to one, Hungarian on IoU) and its ms per frame (``detect`` alone, over every frame it ran on).
  Background models run over every frame (they learn the scene); the others only on the labelled
  frames. ``haar`` is OpenCV's full-body Haar cascade, measured for comparison only.
* ``speed``: the default RGB detector's frames per second on 200 frames, ONNX Runtime on 1 and 2
  threads, 3 interleaved runs each (min / median / max).
* ``tracking``: the default detector's boxes on every frame, linked by the project's tracker and by
  the ``trackers`` library's ByteTrack and OC-SORT (Apache-2.0; ``pip install --no-deps trackers
  supervision pydeprecate defusedxml``, since its dependencies replace opencv-python-headless),
  scored on the labelled frames by ``motmetrics`` (independent; MOTA, IDF1) beside the project's
  own scorer (:mod:`mvd_edge.eval.mot`).
* ``proxy``: no real paired IR/RGB video is reachable here, so the matcher is measured on a PROXY:
  ``vtest.avi`` as the RGB stream and a thermal-like rendering of it as the IR stream (grey,
  inverted, contrast-stretched, blurred, noisy, cropped by a known offset and at half the
  resolution), where the true pairs follow from the known transform. ``--engine`` (repeatable)
  names the re-id engines; pair precision / recall / IDF1 are scored on the labelled frames.

Writes ``OUT/real_footage.json``, prints the tables and saves ``OUT/frame-*.png`` (ground truth green,
default detector red). One command from a fresh clone: ``bash benchmarks/real_footage.sh``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from mvd_edge.eval.scoring import box_counts
from mvd_edge.match.detect import DEFAULT_DETECTORS, DETECTOR_SOURCES, Detections, HogDetector, iter_mot, make_detector

ROOT = Path(__file__).resolve().parents[1]
GT = ROOT / "benchmarks" / "data" / "vtest" / "gt.txt"
DETECTORS = ("auto", "ssdlite", "mog2", "knn", "hog", "haar", "person-synth")
ALL_SECTIONS = {"detection", "speed", "tracking", "proxy"}
IR_DETECTORS = ("auto", "ssdlite", "ssdlite+mog2", "mog2", "knn", "mog2+warm", "person-synth")
STATEFUL = ("mog2", "knn")  # name parts of detectors that learn the scene: run on every frame
# the proxy IR camera: crop (x0, y0) of the RGB frame, then this scale (a lower-resolution sensor)
PROXY_CROP, PROXY_SCALE = (48, 24), 0.5


def fetch_vtest(cache: Path) -> Path:
    """``vtest.avi`` from Debian's opencv-doc package, cached in ``cache``."""
    out = cache / "vtest.avi"
    if out.is_file():
        return out
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise SystemExit("no apt-get/dpkg here: pass --video with OpenCV's samples/data/vtest.avi "
                         "(github.com/opencv/opencv)")
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        print("fetching vtest.avi: apt-get download opencv-doc (about 95 MB) ...", flush=True)
        subprocess.run(["apt-get", "download", "opencv-doc"], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("opencv-doc_*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(Path(tmp) / "x")], check=True)
        found = next(Path(tmp, "x").rglob("vtest.avi"))
        shutil.copy(found, out)
    return out


def load_gt(path: Path) -> dict[int, list[list[float]]]:
    """MOT ground truth -> ``{frame (0-based): [[id, x, y, w, h, 1.0], ...]}``."""
    gt: dict[int, list[list[float]]] = {}
    for r in iter_mot(path):
        gt.setdefault(r.frame, []).append([r.id, r.x, r.y, r.w, r.h, 1.0])
    return gt


class HaarDetector:
    """OpenCV's full-body Haar cascade (shipped in opencv-python's ``cv2.data``); a reference only."""

    name = "haar"

    def __init__(self):
        self.cascade = cv2.CascadeClassifier(str(Path(cv2.data.haarcascades) / "haarcascade_fullbody.xml"))

    def detect(self, image: np.ndarray, frame_index: int = 0) -> Detections:
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        r = self.cascade.detectMultiScale(grey, scaleFactor=1.05, minNeighbors=3, minSize=(24, 48))
        if len(r) == 0:
            return Detections.empty()
        r = np.asarray(r, np.float32).reshape(-1, 4)
        return Detections(np.concatenate([r[:, :2], r[:, :2] + r[:, 2:]], axis=1), np.ones(len(r), np.float32))


def build_detector(name: str, modality: str = "rgb"):
    if name == "haar":
        return HaarDetector()
    if name == "hog":
        return HogDetector(upscale=1.5)  # vtest's people are 50-110 px tall: HOG's 128 px window needs the upscale
    return make_detector(detector=name, modality=modality)


def read_frames(video: Path, limit: int | None) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(video))
    frames = []
    while limit is None or len(frames) < limit:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    if not frames:
        raise SystemExit(f"{video}: no frames could be read")
    return frames


def box_scores(pred: dict[int, np.ndarray], gt: dict[int, list[list[float]]]) -> dict:
    """Precision, recall, F1 (and tp, fp, fn) at IoU 0.5 of boxes ``{frame: [N, 4] x1y1x2y2}`` against the
    labelled ones (:func:`load_gt`), one to one per frame, over the labelled frames."""
    tp = fp = fn = 0
    for f, rows in gt.items():
        a, b, c = box_counts(pred.get(f, np.zeros((0, 4), np.float32)), rows, 0.5, 0.0)
        tp, fp, fn = tp + a, fp + b, fn + c
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    return {"precision": p, "recall": r, "f1": 2 * p * r / (p + r) if p + r else 0.0, "tp": tp, "fp": fp, "fn": fn}


def run_detector(name: str, frames: list[np.ndarray], gt: dict[int, list[list[float]]],
                 modality: str = "rgb") -> tuple[dict, dict]:
    """(score row, {frame: Detections}) of one detector; stateful detectors see every frame."""
    det = build_detector(name, modality)
    real = DEFAULT_DETECTORS[modality] if name == "auto" else name
    every = any(p in real.split("+") for p in STATEFUL)
    todo = range(len(frames)) if every else sorted(f for f in gt if f < len(frames))
    out, seconds = {}, 0.0
    for f in todo:
        t0 = time.perf_counter()
        d = det.detect(frames[f], f)
        seconds += time.perf_counter() - t0
        out[f] = d
    ms = 1000 * seconds / max(len(todo), 1)
    label = {"auto": f"auto ({real})", "hog": "hog (upscale 1.5)"}.get(name, name)
    labelled = {f: rows for f, rows in gt.items() if f < len(frames)}
    row = {"detector": label, **box_scores({f: out[f].boxes for f in labelled}, labelled), "ms_per_frame": ms,
           "fps": 1000 / ms if ms else None, "frames_run": len(todo),
           "trained_on": "OpenCV's Haar full-body cascade (real photographs)" if name == "haar"
           else DETECTOR_SOURCES.get(real, "")}
    return row, out


def run_speed(frames: list[np.ndarray], repeats: int = 3, n: int = 200) -> list[dict]:
    """Frames per second of the default RGB detector over ``n`` frames, ONNX Runtime on 1 and on 2 threads,
    ``repeats`` runs each, interleaved (so a load change hits both alike): min / median / max."""
    from mvd_edge.match.detect import load_ssdlite
    from mvd_edge.match.foreground import BackgroundConfirmed

    base = make_detector(modality="rgb")
    fps: dict[int, list[float]] = {1: [], 2: []}
    for _ in range(repeats):
        for threads in fps:
            det = base
            if isinstance(base, BackgroundConfirmed):
                det = make_detector(modality="rgb")
                det.cnn = load_ssdlite(conf=det.cnn.conf, threads=threads)
            t0 = time.perf_counter()
            for k, img in enumerate(frames[:n]):
                det.detect(img, k)
            fps[threads].append(min(n, len(frames)) / (time.perf_counter() - t0))
    return [{"detector": f"auto ({DEFAULT_DETECTORS['rgb']})", "threads": t, "fps_min": min(v),
             "fps_median": float(np.median(v)), "fps_max": max(v), "runs": len(v)} for t, v in fps.items()]


# ---------------------------------------------------------------------------------------------- tracking
def track_rows(name: str, dets: dict[int, Detections], n_frames: int,
               every: int = 1) -> list[tuple[int, int, float, float, float, float]]:
    """MOT rows ``(frame 1-based, id, x, y, w, h)`` of one tracker over every frame's detections (``every`` > 1,
    the project's tracker only: detections on every ``every``-th frame, its predictions in between, as
    ``detector.every`` runs the matcher)."""
    from mvd_edge.match.config import MatcherConfig
    from mvd_edge.match.pipeline import default_tracker

    rows = []
    if name == "mvd-edge":
        tracker = default_tracker(None, MatcherConfig())
        for f in range(n_frames):
            tracks = tracker.update(dets.get(f, Detections.empty())) if f % every == 0 else tracker.coast()
            for t in tracks:
                if t.time_since_update == 0:
                    x1, y1, x2, y2 = (float(v) for v in t.box)
                    rows.append((f + 1, int(t.id), x1, y1, x2 - x1, y2 - y1))
        return rows
    import supervision as sv
    import trackers

    # the peers' score split set to ours (MatcherConfig().track.high): their defaults (0.6 / 0.7) assume a
    # YOLO's scores, and this detector scores the boxes it confirms by motion below 0.5
    high = MatcherConfig().track.high
    tracker = {"bytetrack": lambda: trackers.ByteTrackTracker(frame_rate=10.0, high_conf_det_threshold=high,
                                                              track_activation_threshold=high),
               "ocsort": lambda: trackers.OCSORTTracker(frame_rate=10.0, high_conf_det_threshold=high)}[name]()
    for f in range(n_frames):
        d = dets.get(f, Detections.empty())
        out = tracker.update(sv.Detections(xyxy=d.boxes.astype(np.float64).reshape(-1, 4),
                                           confidence=d.scores.astype(np.float64)))
        for box, tid in zip(out.xyxy, out.tracker_id):
            if int(tid) >= 0:
                x1, y1, x2, y2 = (float(v) for v in box)
                rows.append((f + 1, int(tid), x1, y1, x2 - x1, y2 - y1))
    return rows


def run_tracking(dets: dict[int, Detections], gt_path: Path, n_frames: int,
                 sparse: dict[int, dict[int, Detections]] | None = None) -> list[dict]:
    """MOT scores of the trackers on ``dets`` (every frame's detections), and of the project's tracker on
    each ``sparse[k]`` (the detector run on every k-th frame only). ``box_f1``: the reported boxes
    against the labelled ones, the detection score of what the pipeline outputs."""
    from mvd_edge.eval.mot import motmetrics_reference, score_mot

    gt_rows = [(r.frame + 1, r.id, r.x, r.y, r.w, r.h) for r in iter_mot(gt_path) if r.frame < n_frames]
    frames = sorted({r[0] for r in gt_rows})
    labelled = {f: rows for f, rows in load_gt(gt_path).items() if f < n_frames}
    runs = [("mvd-edge", dets, 1), ("bytetrack", dets, 1), ("ocsort", dets, 1),
            *((f"mvd-edge, detect every {k}", d, k) for k, d in (sparse or {}).items())]
    out = []
    for label, d, every in runs:
        try:
            rows = track_rows(label.split(",")[0], d, n_frames, every)
        except ImportError as exc:
            raise SystemExit(f"tracking section: {exc}; install the peers with "
                             "`pip install --no-deps trackers supervision pydeprecate defusedxml`") from None
        ref = motmetrics_reference(gt_rows, rows, iou=0.5, frames=frames)
        own = score_mot(gt_rows, rows, iou=0.5, frames=frames)
        out.append({"tracker": label, "detect_every": every, "scored_by": "motmetrics",
                    **{k: ref[k] for k in ("mota", "idf1", "num_switches", "fp", "fn")},
                    "box_f1": box_scores(_boxes_by_frame(rows), labelled)["f1"],
                    "mvd_edge_scorer": {k: own[k] for k in ("mota", "idf1", "num_switches")}})
    return out


def _boxes_by_frame(rows: list[tuple]) -> dict[int, np.ndarray]:
    """A tracker's MOT rows ``(frame 1-based, id, x, y, w, h)`` as ``{frame 0-based: [N, 4] x1y1x2y2}``."""
    out: dict[int, list] = {}
    for f, _, x, y, w, h in rows:
        out.setdefault(f - 1, []).append([x, y, x + w, y + h])
    return {f: np.array(b, np.float32) for f, b in out.items()}


# ---------------------------------------------------------------------------------------------- proxy
def thermal_proxy(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A thermal-looking IR frame from an RGB one: cropped by PROXY_CROP, scaled by PROXY_SCALE, grey,
    inverted and contrast-stretched, blurred, with sensor noise (3-channel grey, as IR cameras send)."""
    x0, y0 = PROXY_CROP
    crop = frame[y0:, x0:]
    small = cv2.resize(crop, None, fx=PROXY_SCALE, fy=PROXY_SCALE, interpolation=cv2.INTER_AREA)
    grey = 255.0 - cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey = 255.0 * ((grey - 40.0) / 180.0).clip(0, 1) ** 1.4  # warm = bright, a gamma like an AGC curve
    grey = cv2.GaussianBlur(grey, (0, 0), 1.2) + rng.normal(0, 3.0, grey.shape)
    g = grey.clip(0, 255).astype(np.uint8)
    return cv2.merge([g, g, g])


def proxy_box(box: list[float], shape: tuple[int, int]) -> tuple[list[float], float]:
    """An RGB ``[x, y, w, h]`` box in the proxy IR frame, and the part of it still inside that frame."""
    x0, y0 = PROXY_CROP
    x, y, w, h = box
    a = np.array([x - x0, y - y0, x - x0 + w, y - y0 + h]) * PROXY_SCALE
    b = a.copy()
    b[[0, 2]] = b[[0, 2]].clip(0, shape[1])
    b[[1, 3]] = b[[1, 3]].clip(0, shape[0])
    vis = float((b[2] - b[0]) * (b[3] - b[1]) / max((a[2] - a[0]) * (a[3] - a[1]), 1e-9))
    return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])], vis


def proxy_frames(frames: list[np.ndarray]) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [thermal_proxy(f, rng) for f in frames]


def proxy_gt(gt: dict[int, list[list[float]]], shape: tuple[int, int], min_visibility: float = 0.5) -> dict:
    """The ground truth in the proxy IR frame (people at least ``min_visibility`` inside it)."""
    out: dict[int, list[list[float]]] = {}
    for f, rows in gt.items():
        out[f] = []
        for pid, x, y, w, h, _ in rows:
            b, vis = proxy_box([x, y, w, h], shape)
            if vis >= min_visibility:
                out[f].append([pid, *b, 1.0])
    return out


def write_proxy(frames: list[np.ndarray], ir: list[np.ndarray], gt: dict[int, list[list[float]]], work: Path,
                video: Path) -> Path:
    """Write the proxy IR video and a synth-video style ``gt.json`` (people only on the labelled frames)."""
    from mvd_edge.synth.video import GT_FORMAT

    work.mkdir(parents=True, exist_ok=True)
    h, w = ir[0].shape[:2]
    vw = cv2.VideoWriter(str(work / "ir.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    for img in ir:
        vw.write(img)
    vw.release()
    rgb = work / "rgb.avi"
    if rgb.is_symlink() or rgb.exists():
        rgb.unlink()
    rgb.symlink_to(video.resolve())
    boxes = {"ir": [[] for _ in frames], "rgb": [[] for _ in frames]}
    for f, rows in gt.items():
        if f >= len(frames):
            continue
        for pid, x, y, bw, bh, _ in rows:
            boxes["rgb"][f].append([int(pid), x, y, bw, bh, 1.0])
            b, vis = proxy_box([x, y, bw, bh], (h, w))
            if vis > 0:
                boxes["ir"][f].append([int(pid), *b, vis])
    H, W = frames[0].shape[:2]
    doc = {"format": GT_FORMAT, "version": 1, "fps": 10.0, "frames": len(frames), "size": [H, W], "seed": -1,
           "proxy": "vtest.avi as RGB; IR = thermal_proxy(RGB) (benchmarks/real_footage.py); people only on "
                    "the labelled frames", "look_alikes": [],
           "streams": {"ir": {"modality": "ir", "video": "ir.avi", "mot": None, "boxes": boxes["ir"]},
                       "rgb": {"modality": "rgb", "video": "rgb.avi", "mot": None, "boxes": boxes["rgb"]}}}
    (work / "gt.json").write_text(json.dumps(doc))
    return work


def run_proxy(work: Path, gt_frames: set[int], engine: Path, detector: str | None) -> dict:
    from mvd_edge.eval.scoring import score_matches
    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.match.events import read_events
    from mvd_edge.match.pipeline import run_match
    from mvd_edge.runtime import load_embedder

    emb = load_embedder(engine)
    config = resolve(MatcherConfig(), emb.info).config
    dets = {s: make_detector(detector=detector, modality=s) for s in ("ir", "rgb")}
    events = work / f"events-{engine.stem}.jsonl"
    if events.exists():
        events.unlink()
    t0 = time.perf_counter()
    res = run_match(str(work / "ir.avi"), str(work / "rgb.avi"), emb, dets, events=events, status=False, config=config)
    seconds = time.perf_counter() - t0
    # score on the labelled frames only: elsewhere the proxy has no ground truth
    evs = [e for e in read_events(events) if e.get("event") != "match" or int(e["rgb_frame"]) in gt_frames]
    sc = score_matches(evs, work / "gt.json")
    return {"engine": str(engine), "detector": detector or "auto", "precision": sc["precision"],
            "recall": sc["recall"], "idf1": sc["idf1"], "reported_pairs": sc["reported_pairs"],
            "opportunities": sc["opportunities"], "fps": res.get("fps"), "seconds": seconds}


# ---------------------------------------------------------------------------------------------- output
def draw(frame: np.ndarray, gt_rows: list[list[float]], det: Detections, path: Path) -> None:
    img = frame.copy()
    for _, x, y, w, h, _ in gt_rows:
        cv2.rectangle(img, (int(x), int(y)), (int(x + w), int(y + h)), (0, 200, 0), 2)
    for b, s in zip(det.boxes, det.scores):
        x1, y1, x2, y2 = (int(v) for v in b)
        cv2.rectangle(img, (x1, y1), (x2, y2), (0, 0, 255), 1)
        cv2.putText(img, f"{s:.2f}", (x1, max(10, y1 - 3)), cv2.FONT_HERSHEY_SIMPLEX, 0.35, (0, 0, 255), 1)
    cv2.imwrite(str(path), img)


def table(rows: list[dict], cols: list[str]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--video", type=Path, help="vtest.avi (default: fetched into --cache)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mvd-edge")
    ap.add_argument("--gt", type=Path, default=GT)
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "real_footage")
    ap.add_argument("--frames", type=int, help="only the first N frames (a quick check)")
    ap.add_argument("--detectors", default=",".join(DETECTORS))
    ap.add_argument("--sections", default=",".join(sorted(ALL_SECTIONS)))
    ap.add_argument("--engine", type=Path, action="append", default=[], help="re-id engine for the proxy (repeatable)")
    ap.add_argument("--work", type=Path, default=Path("runs/real_footage"), help="the proxy videos and events")
    ap.add_argument("--png", type=int, default=3, help="frames drawn as PNG")
    ap.add_argument("--detect-every", default="3", help="tracking section: also the project's tracker with the "
                                                       "default detector on every k-th frame only, per k ('' none)")
    args = ap.parse_args(argv)
    sections = set(args.sections.split(","))
    video = args.video or fetch_vtest(args.cache)
    gt = load_gt(args.gt)
    frames = read_frames(video, args.frames)
    args.out.mkdir(parents=True, exist_ok=True)
    result: dict = {"video": video.name, "frames": len(frames), "labelled_frames": sum(f < len(frames) for f in gt),
                    "people": sum(len(v) for f, v in gt.items() if f < len(frames)), "machine": platform.processor()
                    or platform.machine(), "cpu_count": os.cpu_count(),
                    "load_average_at_start": os.getloadavg()[0]}  # speeds are only as good as the CPU was free
    default_dets = None
    if "detection" in sections or "tracking" in sections:
        rows = []
        names = args.detectors.split(",") if "detection" in sections else ["auto"]
        for name in names:
            print(f"detector {name} ...", flush=True)
            row, dets = run_detector(name, frames, gt)
            rows.append(row)
            if name == "auto":
                default_dets = dets
        result["detection"] = rows
        print(table(rows, ["detector", "precision", "recall", "f1", "fps", "trained_on"]))
        labelled = sorted(f for f in gt if f < len(frames))
        for f in labelled[:: max(1, len(labelled) // max(args.png, 1))][: args.png]:
            draw(frames[f], gt[f], default_dets[f], args.out / f"frame-{f:03d}.png")
    if "speed" in sections:
        result["speed"] = run_speed(frames)
        print(table(result["speed"], ["detector", "threads", "fps_min", "fps_median", "fps_max"]))
    if "tracking" in sections:
        sparse = {}
        for k in (int(v) for v in args.detect_every.split(",") if v.strip()):
            print(f"detector auto on every {k}th frame ...", flush=True)
            sparse[k] = {f * k: d for f, d in run_detector("auto", frames[::k], {})[1].items()}
        result["tracking"] = run_tracking(default_dets, args.gt, len(frames), sparse)
        print(table(result["tracking"], ["tracker", "scored_by", "mota", "idf1", "num_switches", "fp", "fn",
                                         "box_f1"]))
    if "proxy" in sections:
        ir = proxy_frames(frames)
        gti = proxy_gt(gt, ir[0].shape[:2])
        rows = []
        for name in IR_DETECTORS:
            print(f"proxy IR detector {name} ...", flush=True)
            rows.append(run_detector(name, ir, gti, modality="ir")[0])
        result["proxy_ir_detection"] = rows
        print("PROXY IR (a thermal-like rendering of vtest.avi):")
        print(table(rows, ["detector", "precision", "recall", "f1", "fps"]))
    if "proxy" in sections and args.engine:
        work = write_proxy(frames, ir, gt, args.work, video)
        result["proxy"] = [run_proxy(work, {f for f in gt}, e, None) for e in args.engine]
        print("PROXY (vtest.avi as RGB, a thermal-like rendering as IR):")
        print(table(result["proxy"], ["engine", "detector", "precision", "recall", "idf1", "reported_pairs"]))
    result["load_average_at_end"] = os.getloadavg()[0]
    out = args.out / "real_footage.json"
    # a run of some sections updates theirs and keeps the others' (each section records its own load)
    old = json.loads(out.read_text()) if out.is_file() and set(sections) != ALL_SECTIONS else {}
    for name in sections:
        old.pop(name, None)
    old.setdefault("runs", {})
    old["runs"][",".join(sorted(sections))] = {k: result.pop(k) for k in ("load_average_at_start",
                                                                        "load_average_at_end")}
    old.update(result)
    out.write_text(json.dumps(old, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
