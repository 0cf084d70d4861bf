"""Detection on every N-th frame (``detector.every``): the tracker coasts on its predictions in between."""

from __future__ import annotations

import numpy as np
from match_fakes import BlockDetector, BlockWorld

from mvd_edge.match.baselines import ColorHistogramEmbedder
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detections, box_iou
from mvd_edge.match.pipeline import pair_matcher
from mvd_edge.match.track import ByteTracker


def _walker(k: int) -> Detections:
    """One person walking right at 5 px per frame."""
    return Detections(np.array([[10 + 5 * k, 20, 40 + 5 * k, 100]], np.float32), np.ones(1, np.float32))


def test_coast_moves_a_seen_track_on_its_prediction_and_keeps_it_visible():
    tr = ByteTracker(min_hits=1)
    for k in range(6):
        (track,) = tr.update(_walker(k))
    for k in (6, 7):
        (coasted,) = tr.coast()
        assert coasted.id == track.id and coasted.visible and coasted.det_index == -1
        assert box_iou(coasted.box[None], _walker(k).boxes)[0, 0] > 0.8  # moved with the walker, not left behind
    (again,) = tr.update(_walker(8))
    assert again.id == track.id and again.visible


def test_coast_ages_a_track_already_missed():
    tr = ByteTracker(min_hits=1, max_age=3)
    tr.update(_walker(0))
    tr.update(Detections.empty())
    (t,) = tr.coast()
    assert t.time_since_update == 2 and not t.visible
    tr.coast()
    assert tr.update(Detections.empty()) == [] and tr.removed == [t.id]


class _Counting(BlockDetector):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frames: list[int] = []

    def detect(self, image, frame_index: int) -> Detections:
        self.frames.append(frame_index)
        return super().detect(image, frame_index)


class _CountingEmbedder(ColorHistogramEmbedder):
    crops = 0

    def embed(self, crops):
        self.crops += len(crops)
        return super().embed(crops)


def _run(world: BlockWorld, every: int, steps: int, with_ids: bool = False):
    detectors = {s: _Counting(world, s, with_ids) for s in ("ir", "rgb")}
    embedder = _CountingEmbedder()
    m = pair_matcher(embedder, detectors, MatcherConfig().updated({"detector.every": every,
                                                                     "association.hysteresis": 3}))
    results, boxes = [], []  # boxes copied per step: the tracker updates its Track objects in place
    for k in range(steps):
        results.append(m.step({s: world.frame(s, k) for s in ("ir", "rgb")}))
        boxes.append({s: np.array([t.box for t in ts if t.visible], np.float32).reshape(-1, 4)
                      for s, ts in results[-1].tracks.items()})
    return detectors, embedder, results, boxes


def test_the_matcher_detects_every_nth_step_tracks_in_between_and_still_pairs_everyone():
    world = BlockWorld(n=3, seed=5)
    detectors, embedder, results, boxes = _run(world, every=3, steps=60)
    assert detectors["ir"].frames == detectors["rgb"].frames == list(range(0, 60, 3))
    # every step reports every person, at the tracker's prediction between detections
    for k, by_camera in enumerate(boxes):
        for s, b in by_camera.items():
            truth = np.array([b for _, b in world.boxes(s, k)], np.float32)
            assert len(b) == len(truth) and box_iou(truth, b).max(axis=1).min() > 0.8
    # nothing is embedded on a step without detections
    _, every_frame_embedder, full, _ = _run(world, every=1, steps=60)
    assert 0 < embedder.crops < every_frame_embedder.crops
    paired = {(e["ir_track"], e["rgb_track"]) for r in results for e in r.events if e["event"] == "match"}
    paired_full = {(e["ir_track"], e["rgb_track"]) for r in full for e in r.events if e["event"] == "match"}
    assert len(paired) == 3 and paired == paired_full


def test_box_files_are_read_on_every_frame_whatever_the_setting():
    detectors, *_ = _run(BlockWorld(n=2), every=4, steps=10, with_ids=True)
    assert detectors["ir"].frames == list(range(10))


def test_detector_tiles_reaches_the_ssdlite_of_auto_and_of_match():
    from mvd_edge.cli.match import _detector_options
    from mvd_edge.match.detect import make_detector

    assert make_detector(None, "auto", modality="rgb").cnn.tiles == 2  # the default: the frame and its halves
    one = make_detector(None, "auto", modality="rgb", ssdlite_tiles=1)
    assert one.cnn.tiles == 1 and one.cnn._windows(576, 768) == [(0, 0, 768, 576)]
    d = MatcherConfig().updated({"detector.tiles": 1}).detector
    assert make_detector(None, "ssdlite", modality="rgb", **_detector_options(d)).tiles == 1
