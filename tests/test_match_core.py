"""Detectors, MOT files, tracker, feature banks and cross-modal association."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mvd_edge.match.associate import CrossModalAssociator
from mvd_edge.match.bank import FeatureBank
from mvd_edge.match.config import AssociationConfig, MatcherConfig
from mvd_edge.match.detect import Detections, HogDetector, MotBoxes, OnnxDetector, box_iou, nms, read_mot
from mvd_edge.match.track import ByteTracker, PassthroughTracker


def test_box_iou_and_nms():
    a = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], np.float32)
    iou = box_iou(a, a)
    assert iou[0, 0] == pytest.approx(1.0) and iou[0, 1] == pytest.approx(50 / 150)
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)
    boxes = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [50, 50, 60, 60]], np.float32)
    assert sorted(nms(boxes, np.array([0.9, 0.8, 0.7]), 0.5).tolist()) == [0, 2]


def test_read_mot(tmp_path):
    p = tmp_path / "boxes.txt"
    p.write_text("# comment\n1,3,10,20,30,60,0.9\n1,4,100,20,30,60,0.2\n3 3 12 20 30 60 1 -1 -1 -1\n\n")
    frames = read_mot(p)
    assert sorted(frames) == [0, 2]
    d0 = frames[0]
    np.testing.assert_allclose(d0.boxes[0], [10, 20, 40, 80])
    assert d0.ids.tolist() == [3, 4]
    assert list(read_mot(p, min_score=0.5)[0].ids) == [3]
    p.write_text("1,-1,10,20,30,60,0.9\n2,5,0,0,5,5\n")
    assert all(d.ids is None for d in read_mot(p).values())  # not every row has an id: a detector's output
    p.write_text("0,1,10,20,30,60\n")
    with pytest.raises(ValueError, match="1-based"):
        read_mot(p)
    p.write_text("1,1,abc\n")
    with pytest.raises(ValueError, match=":1: expected MOT"):
        read_mot(p)
    with pytest.raises(FileNotFoundError):
        read_mot(tmp_path / "none.txt")


def test_mot_boxes_clip_to_frame_and_retrack(tmp_path):
    p = tmp_path / "b.txt"
    p.write_text("1,7,-10,5,30,40\n1,8,90,5,30,40\n")
    det = MotBoxes(p)
    assert det.has_ids
    d = det.detect(np.zeros((50, 100, 3), np.uint8), 0)
    np.testing.assert_allclose(d.boxes, [[0, 5, 20, 45], [90, 5, 100, 45]])
    assert len(det.detect(np.zeros((50, 100, 3), np.uint8), 5)) == 0
    assert not MotBoxes(p, use_ids=False).has_ids


def _onnx_detector(out: np.ndarray, layout: str = "auto") -> OnnxDetector:
    det = OnnxDetector.__new__(OnnxDetector)
    det.conf, det.iou, det.person_class, det.layout, det.input_hw = 0.3, 0.5, 0, layout, (64, 64)
    return det


def test_onnx_output_layouts_decode():
    # v8: [1, 4 + C, N] cx, cy, w, h, class scores
    v8 = np.zeros((1, 6, 10), np.float32)
    v8[0, :, 0] = [32, 32, 10, 20, 0.9, 0.1]
    boxes, scores, done = _onnx_detector(v8).decode(v8)
    np.testing.assert_allclose(boxes[0], [27, 22, 37, 42])
    assert scores[0] == pytest.approx(0.9) and not done
    # v5: [1, N, 5 + C] with objectness
    v5 = np.zeros((1, 10, 7), np.float32)
    v5[0, 0] = [32, 32, 10, 20, 0.5, 0.8, 0.2]
    boxes, scores, _ = _onnx_detector(v5).decode(v5)
    assert scores[0] == pytest.approx(0.4)
    # e2e: [1, N, 6] x1, y1, x2, y2, score, class; other classes dropped
    e2e = np.array([[[1, 2, 3, 4, 0.9, 0], [5, 6, 7, 8, 0.8, 2]]], np.float32)
    boxes, scores, done = _onnx_detector(e2e).decode(e2e)
    assert done and boxes.tolist() == [[1, 2, 3, 4]]
    with pytest.raises(ValueError, match="layout"):
        _onnx_detector(np.zeros((1, 3, 4), np.float32)).decode(np.zeros((1, 3, 4), np.float32))


def test_onnx_detector_end_to_end(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    # a "model" that ignores the image and outputs two v8-style candidates (one person, one other class)
    const = np.zeros((1, 6, 8), np.float32)
    const[0, :, 0] = [320, 320, 100, 200, 0.9, 0.0]
    const[0, :, 1] = [100, 100, 50, 50, 0.1, 0.95]
    graph = helper.make_graph(
        [helper.make_node("ReduceSum", ["images"], ["s"], keepdims=0),
         helper.make_node("Mul", ["s", "zero"], ["z"]),
         helper.make_node("Add", ["c", "z"], ["output0"])],
        "fake_yolo",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 640, 640])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 6, 8])],
        [numpy_helper.from_array(const, "c"), numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "det.onnx"
    onnx.save(model, path)
    det = OnnxDetector(path)
    d = det.detect(np.zeros((320, 640, 3), np.uint8))  # letterboxed: scale 1, 160 px pad on top
    assert len(d) == 1
    np.testing.assert_allclose(d.boxes[0], [270, 60, 370, 260], atol=1e-3)
    with pytest.raises(FileNotFoundError):
        OnnxDetector(tmp_path / "missing.onnx")


def test_hog_finds_synthetic_people():
    from mvd_edge.synth.video import SynthVideoRenderer

    r = SynthVideoRenderer(n_ids=3, seed=1, size=(360, 640))
    img, gt = r.render("rgb", 40)
    d = HogDetector().detect(img, 40)
    g = np.array([[b[1], b[2], b[1] + b[3], b[2] + b[4]] for b in gt if b[5] > 0.7])
    assert len(g) and len(d)
    assert (box_iou(d.boxes, g).max(axis=0) >= 0.4).sum() >= 1


def _dets(boxes, scores=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Detections(boxes, np.ones(len(boxes)) if scores is None else scores)


def test_tracker_keeps_ids_through_motion_and_misses():
    tr = ByteTracker(min_hits=2, max_age=3)
    ids = None
    for k in range(12):
        a = [10 + 3 * k, 10, 40 + 3 * k, 80]
        b = [200 - 3 * k, 10, 230 - 3 * k, 80]
        boxes = [a, b] if k not in (5, 6) else [a]  # b is missed for two frames
        out = tr.update(_dets(boxes))
        if k == 1:
            ids = {t.id for t in out}
            assert len(ids) == 2
        if k >= 1:
            assert {t.id for t in out} == ids
        if k == 5:
            coasting = [t for t in out if t.time_since_update > 0]
            assert len(coasting) == 1
    for _ in range(4):
        tr.update(_dets([]))
    assert tr.tracks == []


def test_tracker_tentative_tracks_and_low_scores():
    tr = ByteTracker(high=0.5, low=0.1, min_hits=2)
    assert tr.update(_dets([[0, 0, 10, 20]], np.array([0.9]))) == []  # tentative
    out = tr.update(_dets([[1, 0, 11, 20]], np.array([0.9])))
    assert len(out) == 1 and out[0].confirmed
    tid = out[0].id
    out = tr.update(_dets([[2, 0, 12, 20]], np.array([0.3])))  # low score extends the track
    assert [t.id for t in out] == [tid] and out[0].time_since_update == 0
    assert tr.update(_dets([[100, 0, 110, 20]], np.array([0.3])))[0].time_since_update == 1  # but starts none
    assert len(tr.tracks) == 1


def test_passthrough_tracker():
    tr = PassthroughTracker(max_age=1)
    out = tr.update(Detections(np.array([[0, 0, 5, 5]]), np.ones(1), np.array([7])))
    assert [t.id for t in out] == [7]
    tr.update(Detections.empty())
    tr.update(Detections.empty())
    assert tr.removed == [7]
    with pytest.raises(ValueError, match="ids"):
        tr.update(_dets([[0, 0, 1, 1]]))


def test_feature_bank():
    bank = FeatureBank(3, momentum=0.5, last_n=2)
    e = np.eye(3, dtype=np.float32)
    bank.update(1, e[0])
    bank.update(1, e[1])
    bank.update(1, e[1])
    assert bank.count(1) == 3
    d = bank.descriptor(1)
    assert np.linalg.norm(d) == pytest.approx(1.0)
    # ema = [0.25, 0.75, 0]; last 2 = e1, e1
    ema = np.array([0.25, 0.75, 0]) / np.linalg.norm([0.25, 0.75, 0])
    want = (ema + e[1]) / np.linalg.norm(ema + e[1])
    np.testing.assert_allclose(d, want, atol=1e-6)
    assert bank.descriptors([1, 1]).shape == (2, 3) and bank.descriptors([]).shape == (0, 3)
    bank.remove(1)
    assert 1 not in bank and len(bank) == 0
    with pytest.raises(ValueError):
        bank.update(2, np.ones(4))


def _unit(*v):
    v = np.asarray(v, np.float32)
    return v / np.linalg.norm(v)


E = np.eye(4, dtype=np.float32)


def test_association_hysteresis_and_one_to_one():
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=3))
    ir, rgb = E[[0, 1]], E[[0, 1]]
    assert a.update([1, 2], ir, [10, 20], rgb) == []
    assert a.update([1, 2], ir, [10, 20], rgb) == []
    ch = a.update([1, 2], ir, [10, 20], rgb)  # third step: reported
    assert sorted((c.kind, c.ir_track, c.rgb_track) for c in ch) == [("start", 1, 10), ("start", 2, 20)]
    assert {p.global_id for p in a.pairs()} == {1, 2}
    # one-to-one: two IR tracks like the same RGB track -> only one gets it
    b = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1))
    ch = b.update([1, 2], np.stack([E[0], _unit(1, 0.1, 0, 0)]), [10], E[[0]])
    assert [(c.ir_track, c.rgb_track) for c in ch] == [(1, 10)]
    # below threshold: never reported
    c = CrossModalAssociator(AssociationConfig(threshold=0.9, hysteresis=1))
    assert c.update([1], _unit(1, 1, 0, 0)[None], [10], E[[0]]) == []


def test_margin_refuses_a_pair_whose_track_has_a_close_runner_up():
    # IR track 1 is 0.80 like RGB 10 and 0.72 like RGB 20 (whose own partner, IR 2, is clear):
    # the assignment gives 1 -> 10 and 2 -> 20; with a margin of 0.1, 1 -> 10 is not clear enough
    ir = np.stack([_unit(0.8, 0.72, 0.2, 0), E[1]])
    rgb = E[[0, 1]]
    s = ir @ rgb.T
    assert s[0, 0] - s[0, 1] < 0.1 and s[1, 1] - max(s[0, 1], s[1, 0]) > 0.1
    plain = CrossModalAssociator(AssociationConfig(threshold=0.3, hysteresis=1))
    assert sorted((c.ir_track, c.rgb_track) for c in plain.update([1, 2], ir, [10, 20], rgb)) == [(1, 10), (2, 20)]
    strict = CrossModalAssociator(AssociationConfig(threshold=0.3, hysteresis=1, margin=0.1))
    assert [(c.ir_track, c.rgb_track) for c in strict.update([1, 2], ir, [10, 20], rgb)] == [(2, 20)]
    # the column counts too: RGB 10 equally like two IR tracks -> no clear pair for it
    twin = CrossModalAssociator(AssociationConfig(threshold=0.3, hysteresis=1, margin=0.05))
    assert twin.update([1, 2], np.stack([E[0], E[0]]), [10], E[[0]]) == []
    # a single pair has no runner-up: the threshold alone decides
    solo = CrossModalAssociator(AssociationConfig(threshold=0.3, hysteresis=1, margin=0.5))
    assert len(solo.update([1], E[[0]], [10], E[[0]])) == 1
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="association.margin"):
            MatcherConfig().updated({"association.margin": bad})


@pytest.mark.parametrize("key, bad", [
    ("association.threshold", 5.0), ("association.threshold", -1.5), ("association.reid_threshold", 2.0),
    ("association.hysteresis", 0), ("association.hysteresis", 2.5), ("bank.ema_momentum", 1.0), ("bank.last_n", 0),
    ("crop.embed_every", 0), ("crop.margin", -0.1), ("crop.aspect", 0.0), ("crop.max_occlusion", 0.0),
    ("crop.max_occlusion", 1.5), ("bank.min_features", 0), ("association.max_gap", -1), ("track.high", 1.2),
    ("track.min_hits", 0), ("track.max_age", 0), ("association.stickiness", float("inf")),
    ("association.fast_threshold", 1.5), ("association.fast_margin", -0.1), ("association.fast_hysteresis", 0),
    ("association.report_coast", -1), ("association.early_threshold", -2.0), ("association.early_margin", 3.0),
    ("site.same_threshold", 1.5), ("site.gallery_size", 0), ("site.identity_momentum", 1.0), ("site.faiss_above", -1),
    ("detector.conf", 1.5), ("sources.queue_size", 0), ("outputs.metrics_port", 70_000),
])
def test_matcher_config_checks_every_range_naming_the_key(key, bad):
    from mvd_edge.core.config import ConfigError

    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}( must be|: expected)"):
        MatcherConfig().updated({key: bad})


def test_matcher_config_accepts_edges_and_orders_track_thresholds():
    from mvd_edge.core.config import ConfigError

    MatcherConfig().updated({"association.threshold": -1.0, "association.margin": 2.0, "bank.ema_momentum": 0.0,
                             "crop.max_occlusion": 1.0, "association.max_gap": 0, "crop.min_box_height": 0,
                             "crop.aspect": None, "track.low": 0.5, "track.high": 0.5, "site.faiss_above": 0})
    with pytest.raises(ConfigError, match=r"track.low .* must not exceed track.high"):
        MatcherConfig().updated({"track.low": 0.6, "track.high": 0.5})
    with pytest.raises(ConfigError, match="association.threshold: expected a number, got True"):
        MatcherConfig().updated({"association.threshold": True})


def test_association_drops_after_k_failures_and_holds_while_unseen():
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=2))
    for _ in range(2):
        a.update([1], E[[0]], [10], E[[0]])
    assert len(a.pairs()) == 1
    for _ in range(5):  # IR track not eligible (not seen): the pair is held
        assert a.update([], E[:0], [10], E[[0]]) == []
    assert len(a.pairs()) == 1
    assert a.update([1], E[[1]], [10], E[[0]]) == []  # one failure
    ch = a.update([1], E[[1]], [10], E[[0]])  # second: dropped
    assert [(c.kind, c.reason) for c in ch] == [("end", "similarity")]
    assert a.pairs() == []


def test_global_id_survives_a_track_restart_and_a_dormant_pair_gives_way():
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=2))
    for _ in range(2):
        a.update([1], E[[0]], [10], E[[0]])
    gid = a.pairs()[0].global_id
    # the IR person walks out: IR track 1 is unseen (pair dormant); they come back as IR track 2
    for _ in range(2):
        ch = a.update([2], E[[0]], [10], E[[0]])
    kinds = [(c.kind, c.reason, c.ir_track, c.global_id) for c in ch]
    assert kinds == [("end", "superseded", 1, gid), ("start", "", 2, gid)]
    # the tracker ends IR track 2: the pair ends; the RGB track keeps the id for its next partner
    ch = a.remove_track("ir", 2)
    assert [(c.kind, c.reason) for c in ch] == [("end", "track_ended")]
    for _ in range(2):
        ch = a.update([3], E[[0]], [10], E[[0]])
    assert ch[0].kind == "start" and ch[0].global_id == gid


def test_global_id_comes_back_by_appearance_and_wrong_pairs_pass_nothing_on():
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1, reid_threshold=0.9))
    a.update([1], E[[0]], [10], E[[0]])
    gid = a.pairs()[0].global_id
    a.remove_track("ir", 1)
    a.remove_track("rgb", 10)
    a.update([2], E[[1]], [20], E[[1]])  # someone else: a new id
    assert a.pairs()[0].global_id != gid
    ch = a.update([3, 2], E[[0, 1]], [30, 20], E[[0, 1]])  # the first person, both tracks new: id back
    assert [c.global_id for c in ch if c.kind == "start"] == [gid]
    # a pair dropped for low similarity does not hand its id to its tracks' next partners
    b = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1, reid_memory=0))
    b.update([1], E[[0]], [10], E[[0]])
    wrong = b.pairs()[0].global_id
    b.update([1], E[[1]], [10], E[[0]])  # fails: dropped
    b.update([1, 2], E[[1, 0]], [10, 20], E[[2, 1]])
    assert all(p.global_id != wrong for p in b.pairs()) and b.pairs()
    assert a.close() and a.pairs() == []
    with pytest.raises(ValueError):
        a.remove_track("thermal", 1)


def test_box_overlap_is_the_largest_share_covered_by_one_other_box():
    from mvd_edge.core.preprocess import box_overlap

    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 4, 4], [100, 100, 110, 110]], np.float32)
    ov = box_overlap(boxes)
    assert np.allclose(ov, [0.5, 0.5, 1.0, 0.0])  # box 0 is half covered by 1 (and 16 % by 2): the max
    assert box_overlap(boxes[:1]).tolist() == [0.0] and box_overlap(np.zeros((0, 4))).shape == (0,)


def test_conflicts_are_the_gated_pairs_with_an_alternative():
    from mvd_edge.match.track import conflicts

    gated = np.array([[1, 1, 0, 0],   # track 0 overlaps detections 0 and 1: ambiguous
                      [0, 1, 0, 0],   # track 1 only det 1, but det 1 is shared: in the group
                      [0, 0, 1, 0],   # track 2 / det 2: alone, decided by IoU
                      [0, 0, 0, 0]], bool)
    rows, cols = conflicts(gated)
    assert rows.tolist() == [0, 1] and cols.tolist() == [0, 1]
    rows, cols = conflicts(np.eye(3, dtype=bool))
    assert rows.size == 0 and cols.size == 0


def _crossing(weight):
    """Two people side by side swap places between two frames, so IoU alone prefers the swap."""
    person = {}  # track id -> person, learnt from the first frame
    feat = {0: np.array([1.0, 0.0], np.float32), 1: np.array([0.0, 1.0], np.float32)}
    calls = []
    det_person = [0, 1]

    def appearance(track_ids, det_idx):
        calls.append((list(track_ids), [int(j) for j in det_idx]))
        tf = [feat[person[t]] if t in person else np.zeros(2, np.float32) for t in track_ids]  # unknown yet: zero
        return np.stack(tf), np.stack([feat[det_person[j]] for j in det_idx])

    tr = ByteTracker(min_hits=1, appearance_weight=weight)
    a, b = [0, 0, 20, 40], [10, 0, 30, 40]
    for _ in range(3):
        out = tr.update(_dets([a, b]), appearance)
    for t in out:
        person[t.id] = 0 if t.box[0] < 5 else 1
    calls.clear()
    a2, b2 = [8, 0, 28, 40], [2, 0, 22, 40]  # A moved right by 8, B left by 8
    out = tr.update(_dets([a2, b2]), appearance)
    got = {person[t.id]: (0 if t.box[0] > 5 else 1) for t in out}  # person -> whose detection it took
    return got, calls


def test_tracker_uses_appearance_where_iou_is_ambiguous():
    got, calls = _crossing(weight=1.0)
    assert got == {0: 0, 1: 1}  # each track kept its person
    assert len(calls) == 1 and sorted(calls[0][1]) == [0, 1]  # asked once, for the two contested detections
    swapped, calls0 = _crossing(weight=0.0)
    assert swapped == {0: 1, 1: 0} and calls0 == []  # IoU alone swaps them: the test can fail


def test_tracker_asks_for_no_appearance_without_a_conflict():
    calls = []

    def appearance(track_ids, det_idx):  # pragma: no cover - must not be called
        calls.append(track_ids)
        raise AssertionError

    tr = ByteTracker(min_hits=1)
    for k in range(5):
        tr.update(_dets([[10 + 2 * k, 10, 40 + 2 * k, 80], [200, 10, 230, 80]]), appearance)
    assert calls == [] and len(tr.tracks) == 2 and tr.appearance_decisions == 0


def test_detection_features_are_embedded_once_per_frame():
    from mvd_edge.match.pipeline import DetectionFeatures, embed_tracks
    from mvd_edge.match.track import Track

    class Counting:
        def __init__(self):
            self.seen = 0

        def embed(self, crops):
            self.seen += len(crops)
            out = np.zeros((len(crops), 4), np.float32)
            for i, c in enumerate(crops):
                out[i, int(c[0, 0, 0]) % 4] = 1.0
            return out

    emb, bank = Counting(), FeatureBank(4)
    img = np.zeros((100, 100, 3), np.uint8)
    for i in range(3):
        img[:, 30 * i:30 * i + 20] = i + 1
    dets = _dets([[0, 0, 20, 50], [30, 0, 50, 50], [60, 0, 80, 50]])
    crop = lambda im, box: im[int(box[1]):int(box[3]), int(box[0]):int(box[2])].copy()  # noqa: E731
    feats = DetectionFeatures(emb, img, dets, bank, crop)
    tf, df = feats([5], np.array([0, 1]))
    assert emb.seen == 2 and not tf.any() and df.argmax(axis=1).tolist() == [1, 2]  # unknown track: a zero row
    tracks = {1: Track(1, dets.boxes[0], 1.0, det_index=0), 2: Track(2, dets.boxes[2], 1.0, det_index=2)}
    chosen = [(1, crop(img, dets.boxes[0])), (2, crop(img, dets.boxes[2]))]
    assert embed_tracks(emb, [("s", chosen, feats, tracks, bank, 0.0)]) == (1, [])  # det 0 reused, det 2 embedded
    assert emb.seen == 3
    assert bank.descriptor(1).argmax() == 1 and bank.descriptor(2).argmax() == 3


def test_bank_flags_a_feature_far_below_its_own_agreement():
    rng = np.random.default_rng(0)
    base = rng.normal(size=16).astype(np.float32)
    other = rng.normal(size=16).astype(np.float32)
    unit = lambda v: (v / np.linalg.norm(v)).astype(np.float32)  # noqa: E731
    bank = FeatureBank(16)
    for _ in range(8):
        bank.update(1, unit(base + 0.05 * rng.normal(size=16)))
    n, mean, std = bank.agreement(1)
    assert n == 7 and 0.95 < mean <= 1.0 and std < 0.05
    assert not bank.is_outlier(1, unit(base + 0.05 * rng.normal(size=16)), sigmas=4.0)
    assert bank.is_outlier(1, unit(other), sigmas=4.0)
    assert not bank.is_outlier(1, unit(other), sigmas=4.0, min_count=10)  # too little history yet
    assert not bank.is_outlier(2, unit(other), sigmas=4.0)  # unknown track


def test_split_gives_a_switched_track_a_new_id_and_ends_its_pair():
    """A track the tracker moved onto another person is split: new id, fresh bank, pair ended."""
    from mvd_edge.match.pipeline import pair_matcher
    from mvd_edge.match.sources import FramePacket

    feat = {"a": np.eye(8, dtype=np.float32)[0], "b": np.eye(8, dtype=np.float32)[1]}
    who = {"ir": "a", "rgb": "a"}

    class Emb:
        dim, spec, stage_times = 8, None, {}

        def embed(self, crops):
            return np.stack([feat[who[str(c[0, 0, 0] and "rgb" or "ir")]] for c in crops])

    class Box:
        name = "box"

        def __init__(self, value):
            self.value = value

        def detect(self, image, k):
            return _dets([[10, 10, 60, 130]])

    pipe = pair_matcher(Emb(), {"ir": Box(0), "rgb": Box(1)}, MatcherConfig().updated(
        {"association.threshold": 0.5, "association.hysteresis": 1, "bank.min_features": 1}))
    imgs = {"ir": np.zeros((200, 200, 3), np.uint8), "rgb": np.ones((200, 200, 3), np.uint8)}
    events = []
    for k in range(12):
        if k == 8:
            who["rgb"] = "b"  # the RGB track now covers someone else (split on the 3rd such crop: k = 10)
        r = pipe.step({"ir": FramePacket(k, k / 15, imgs["ir"]), "rgb": FramePacket(k, k / 15, imgs["rgb"])})
        events += r.events
    starts = [e for e in events if e["event"] == "pair_start"]
    ends = [e for e in events if e["event"] == "pair_end"]
    assert len(starts) == 1 and len(ends) == 1 and ends[0]["reason"] == "track_split"
    assert ends[0]["rgb_track"] == starts[0]["rgb_track"]
    assert pipe.trackers["rgb"].splits == 1 and pipe.trackers["ir"].splits == 0
    assert r.tracks["rgb"][0].id != starts[0]["rgb_track"]  # the track goes on under a new id
    assert not [e for e in r.events if e["event"] == "match"]  # and is not matched to the IR person


def test_pipeline_pairs_young_tracks_only_with_an_early_point():
    """With ``early_threshold`` a pair of tracks with one crop each is reported at the first frame;
    without, it waits for ``min_features`` crops."""
    from mvd_edge.match.pipeline import pair_matcher
    from mvd_edge.match.sources import FramePacket

    class Emb:
        dim, spec, stage_times = 8, None, {}

        def embed(self, crops):
            return np.stack([np.eye(8, dtype=np.float32)[0] for _ in crops])

    class Box:
        name = "box"

        def detect(self, image, k):
            return _dets([[10, 10, 60, 130]])

    def first_start(**kw):
        pipe = pair_matcher(Emb(), {"ir": Box(), "rgb": Box()},
                             MatcherConfig().updated({"association.threshold": 0.5, "association.hysteresis": 1,
                                                      "bank.min_features": 3, **kw}))
        img = np.zeros((200, 200, 3), np.uint8)
        for k in range(6):
            r = pipe.step({"ir": FramePacket(k, k / 15, img), "rgb": FramePacket(k, k / 15, img)})
            if any(e["event"] == "pair_start" for e in r.events):
                return k
        return None

    assert first_start() == 2  # the third frame: both tracks have min_features crops
    assert first_start(**{"association.early_threshold": 0.9}) == 0
    assert first_start(**{"bank.min_features": 1}) == 0  # one crop is enough for an ordinary match here


def test_fast_pairing_reports_a_strong_pair_at_once_and_makes_weak_ones_wait():
    # IR 1 ~ RGB 10 at cosine 1 (above the fast point); IR 2 ~ RGB 20 at 0.6 (above the threshold only)
    rgb = np.stack([E[0], _unit(0, 0.6, 0.8, 0)])
    ir = np.stack([E[0], _unit(0, 1, 0, 0)])
    s = ir @ rgb.T
    assert s[0, 0] == pytest.approx(1.0) and s[1, 1] == pytest.approx(0.6)
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=3, fast_threshold=0.9))
    first = a.update([1, 2], ir, [10, 20], rgb)
    assert [(c.kind, c.ir_track, c.rgb_track) for c in first] == [("start", 1, 10)]
    assert a.update([1, 2], ir, [10, 20], rgb) == []
    assert [(c.ir_track, c.rgb_track) for c in a.update([1, 2], ir, [10, 20], rgb)] == [(2, 20)]  # k = 3 steps
    # without a fast point every pair waits k steps (the default: engines without one are unchanged)
    b = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=3))
    assert b.update([1, 2], ir, [10, 20], rgb) == [] and b.update([1, 2], ir, [10, 20], rgb) == []
    assert len(b.update([1, 2], ir, [10, 20], rgb)) == 2
    # the fast margin: a strong pair whose RGB track is nearly as like another IR track waits
    twin_ir = np.stack([E[0], _unit(0.95, 0.31, 0, 0)])
    c = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=2, fast_threshold=0.9, fast_margin=0.1))
    assert c.update([1, 2], twin_ir, [10], E[[0]]) == []
    assert [(u.ir_track, u.rgb_track) for u in c.update([1, 2], twin_ir, [10], E[[0]])] == [(1, 10)]
    d = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=2, fast_threshold=0.9))  # no fast margin: at once
    assert [(u.ir_track, u.rgb_track) for u in d.update([1, 2], twin_ir, [10], E[[0]])] == [(1, 10)]
    for bad in ({"fast_hysteresis": 0}, {"fast_threshold": float("nan")}):
        with pytest.raises(ValueError):
            AssociationConfig(**bad)


def test_early_tracks_pair_at_the_early_point_and_nowhere_else():
    # RGB 10 is an early track (1 crop) of the person IR 1 is: paired at once at the early point
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=3, early_threshold=0.9))
    assert [(c.kind, c.ir_track, c.rgb_track) for c in a.update([1], E[[0]], [10], E[[0]], early=(set(), {10}))] \
        == [("start", 1, 10)]
    # without an early point (the default; engines that do not reach one) early tracks are never paired
    b = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1))
    assert all(b.update([1], E[[0]], [10], E[[0]], early=(set(), {10})) == [] for _ in range(5))
    # an early track under the early point does not take an established track's assignment:
    # IR 1 ~ RGB 20 (early) at 0.85 would win the assignment against RGB 10 (established) at 0.8
    rgb = np.stack([_unit(0.8, 0.6, 0, 0), _unit(0.85, 0, 0.53, 0)])
    c = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=2, early_threshold=0.9))
    assert c.update([1], E[[0]], [10, 20], rgb, early=(set(), {20})) == []
    assert [(u.ir_track, u.rgb_track) for u in c.update([1], E[[0]], [10, 20], rgb, early=(set(), {20}))] == [(1, 10)]
    # the early margin: two early RGB tracks alike to IR 1 -> neither is sure enough
    twins = np.stack([E[0], _unit(0.99, 0.14, 0, 0)])
    d = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1, early_threshold=0.9, early_margin=0.05))
    assert d.update([1], E[[0]], [10, 20], twins, early=(set(), {10, 20})) == []
    e = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1, early_threshold=0.9))
    assert [(u.ir_track, u.rgb_track) for u in e.update([1], E[[0]], [10, 20], twins, early=(set(), {10, 20}))] \
        == [(1, 10)]
    # a young track only takes tracks the established assignment left free: IR 1 ~ RGB 10 at 0.99 holds
    # although early IR 2 is at 0.92 with RGB 10 (above the early point) and barred from RGB 20 (0.30)
    ir = np.stack([_unit(0.99, 0.10, 0.0995, 0), _unit(0.92, 0.30, 0.252, 0)])
    f = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=2, early_threshold=0.9))
    for _ in range(2):
        ch = f.update([1, 2], ir, [10, 20], E[[0, 1]], early=({2}, set()))
    assert [(u.kind, u.ir_track, u.rgb_track) for u in ch] == [("start", 1, 10)] and len(f.reported) == 1
    # an early point below the threshold does not lower it: 0.6 is under threshold 0.7
    g = CrossModalAssociator(AssociationConfig(threshold=0.7, hysteresis=1, early_threshold=0.2))
    assert g.update([1], E[[0]], [10], _unit(0.6, 0.8, 0, 0)[None], early=(set(), {10})) == []
    for bad in ({"early_threshold": float("inf")}, {"early_margin": -0.1}):
        with pytest.raises(ValueError):
            AssociationConfig(**bad)


def test_a_new_pair_keeps_the_id_of_a_pair_lost_in_both_streams():
    a = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1))
    assert [(c.kind, c.global_id) for c in a.update([1], E[[0]], [10], E[[0]])] == [("start", 1)]
    assert a.update([], E[:0], [], E[:0]) == []  # out of sight in both streams: the pair is held, dormant
    # the person comes back as two new tracks while the old ones still coast: same id, old pair superseded
    ch = a.update([2], E[[0]], [20], E[[0]])
    assert [(c.kind, c.ir_track, c.rgb_track, c.global_id, c.reason) for c in ch] == \
        [("end", 1, 10, 1, "superseded"), ("start", 2, 20, 1, "")]
    # someone else coming in gets a new id and leaves a dormant pair of another person alone
    b = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1))
    b.update([1], E[[0]], [10], E[[0]])
    b.update([], E[:0], [], E[:0])
    ch = b.update([2], E[[1]], [20], E[[1]])
    assert [(c.kind, c.global_id) for c in ch] == [("start", 2)] and (1, 10) in b.reported
    # a held pair with a track still in sight is not taken over (its person is still there)
    c = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1))
    c.update([1], E[[0]], [10], E[[0]])
    ch = c.update([1, 2], np.stack([E[1], E[0]]), [20], E[[0]])  # IR 1 in sight (looking elsewhere)
    assert (1, 10) in c.reported and [(u.kind, u.global_id) for u in ch] == [("start", 2)]
    # the id taken over does not pass through the memory of ended ids: with room for one, the
    # remembered id of someone else stays there, and they get it back
    d = CrossModalAssociator(AssociationConfig(threshold=0.5, hysteresis=1, reid_memory=1))
    d.update([1, 2], E[[0, 1]], [10, 20], E[[0, 1]])  # ids 1 (person E0) and 2 (person E1)
    d.remove_track("ir", 2)
    d.remove_track("rgb", 20)  # id 2 ends: remembered
    d.update([], E[:0], [], E[:0])
    assert [(u.kind, u.global_id) for u in d.update([3], E[[0]], [30], E[[0]])] == [("end", 1), ("start", 1)]
    assert [(u.kind, u.global_id) for u in d.update([3, 4], E[[0, 1]], [30, 40], E[[0, 1]])] == [("start", 2)]
