"""The project's MOTA and IDF1 (mvd_edge.eval.mot, and site scoring through it) against an independent scorer:
motmetrics' two shipped MOT sequences, its published numbers and motmetrics itself run here."""

from __future__ import annotations

import importlib.resources
import sys

import numpy as np
import pytest

from mvd_edge.core.errors import MissingExtra, UsageError
from mvd_edge.eval.mot import motmetrics_reference, score_mot
from mvd_edge.eval.site_scoring import score_site
from mvd_edge.synth.site import SITE_GT_FORMAT

# motmetrics 1.4's reader under pandas 3 (a deprecation inside motmetrics, not in the numbers)
pytestmark = pytest.mark.filterwarnings("ignore:Operation with tuple is deprecated")

# motmetrics' and TrackEval's numbers for its shipped tracker (IoU >= 0.5)
PUBLISHED = {"TUD-Campus": {"idf1": 0.557659, "mota": 0.526462},
             "TUD-Stadtmitte": {"idf1": 0.644619, "mota": 0.564014}}
KEYS = ("mota", "idf1", "idp", "idr", "num_switches", "fp", "fn", "matches", "objects", "predictions")


@pytest.fixture(scope="module")
def mm():
    """motmetrics (the test extra), with the NumPy 2 shim it needs."""
    motmetrics = pytest.importorskip("motmetrics")
    if not hasattr(np, "asfarray"):  # motmetrics 1.4 calls np.asfarray, which NumPy 2 removed
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
    return motmetrics


def _sequence(name: str) -> tuple[np.ndarray, np.ndarray, str, str]:
    folder = importlib.resources.files("motmetrics") / "data" / name
    gt_path, test_path = str(folder / "gt.txt"), str(folder / "test.txt")
    return (np.loadtxt(gt_path, delimiter=",", ndmin=2), np.loadtxt(test_path, delimiter=",", ndmin=2), gt_path,
            test_path)


def _motmetrics_live(mm, gt_path: str, test_path: str) -> dict:
    """motmetrics on the files, its own way (its reader, its comparison, its metric names)."""
    acc = mm.utils.compare_to_groundtruth(mm.io.loadtxt(gt_path), mm.io.loadtxt(test_path), "iou", distth=0.5)
    s = mm.metrics.create().compute(acc, metrics=["mota", "idf1", "idp", "idr", "num_switches", "num_false_positives",
                                                  "num_misses", "num_matches", "num_objects", "num_predictions"],
                                    return_dataframe=False)
    return {"mota": s["mota"], "idf1": s["idf1"], "idp": s["idp"], "idr": s["idr"], "num_switches": s["num_switches"],
            "fp": s["num_false_positives"], "fn": s["num_misses"], "matches": s["num_matches"],
            "objects": s["num_objects"], "predictions": s["num_predictions"]}


def _one_camera_site(gt_rows, hyp_rows) -> tuple[list[dict], dict]:
    """A one-camera site whose global ids are the tracker's ids (MOT frames are 1-based, a site's 0-based)."""
    n = int(max(gt_rows[:, 0].max(), hyp_rows[:, 0].max()))
    frames: list[list] = [[] for _ in range(n)]
    for f, i, x, y, w, h, *_ in gt_rows:
        frames[int(f) - 1].append([int(i), x, y, w, h, 1.0])
    gt = {"format": SITE_GT_FORMAT, "cameras": {"cam": {"modality": "rgb", "location": 0, "n_frames": n}},
          "frames": {"cam": frames}}
    evs = [{"event": "start", "schema": "site/1", "cameras": {"cam": {"modality": "rgb"}}}]
    evs += [{"event": "sighting", "camera": "cam", "frame": int(f) - 1, "track": int(i), "global_id": int(i),
             "box": [x, y, w, h]} for f, i, x, y, w, h, *_ in hyp_rows]
    evs.append({"event": "end", "frames": {"cam": [[0, n]]}})
    return evs, gt


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_tud_sequences_score_as_motmetrics(mm, name):
    gt, hyp, gt_path, test_path = _sequence(name)
    ours = score_mot(gt, hyp, iou=0.5)
    for k, v in PUBLISHED[name].items():
        assert ours[k] == pytest.approx(v, abs=1e-6), k
    live = _motmetrics_live(mm, gt_path, test_path)
    assert live["mota"] == pytest.approx(PUBLISHED[name]["mota"], abs=1e-6)  # the shim and this motmetrics agree
    for k in KEYS:
        assert ours[k] == pytest.approx(live[k], abs=1e-6), k
    assert ours["num_switches"] > 0 and ours["fp"] > 0 and ours["fn"] > 0
    ref = motmetrics_reference(gt, hyp, iou=0.5)
    assert {k: ref[k] for k in KEYS} == pytest.approx({k: live[k] for k in KEYS}, abs=1e-12)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_one_camera_site_scores_the_standard_mota_and_idf1(mm, name):
    gt, hyp, gt_path, test_path = _sequence(name)
    live = _motmetrics_live(mm, gt_path, test_path)
    r = score_site(*_one_camera_site(gt, hyp))
    for k in ("idf1", "idp", "idr", "mota"):
        assert r[k] == pytest.approx(live[k], abs=1e-6), k
        assert r["cameras"]["cam"][k] == pytest.approx(live[k], abs=1e-6), k
    assert r["idf1"] == pytest.approx(PUBLISHED[name]["idf1"], abs=1e-6)
    assert r["mota"] == pytest.approx(PUBLISHED[name]["mota"], abs=1e-6)
    assert r["mot"]["num_switches"] == live["num_switches"] and r["mot"]["fp"] == live["fp"]
    assert r["mot"]["fn"] == live["fn"] and r["true"] == live["objects"] and r["predicted"] == live["predictions"]


def test_labelled_frames_only(mm):
    gt, hyp, _, _ = _sequence("TUD-Stadtmitte")
    every = sorted({int(f) for f in gt[:, 0]})[::20]
    labelled = gt[np.isin(gt[:, 0], every)]  # ground truth on every 20th frame only
    ours = score_mot(labelled, hyp, frames=every)
    assert ours["frames"] == len(every) and ours["predictions"] == int(np.isin(hyp[:, 0], every).sum())
    ref = motmetrics_reference(labelled, hyp, frames=every)
    assert {k: ours[k] for k in KEYS} == pytest.approx({k: ref[k] for k in KEYS}, abs=1e-12)
    junk = np.array([[f + 1, 999, 0, 0, 50, 50, -1, -1, -1, -1] for f in every], float)  # on frames not scored
    assert score_mot(labelled, np.vstack([hyp, junk]), frames=every) == ours
    assert score_mot(labelled, hyp)["fp"] > ours["fp"]  # without frames, every tracked frame is scored


# Two persons over four frames (boxes x, y, w, h):
#   frame 1: person 1 at A by id 7 (A_TALL, IoU 2/3), person 2 at B by id 9
#   frame 2: id 8 appears exactly on A; person 1 keeps id 7 (still IoU >= 0.5): id 8 is a false positive
#   frame 3: as frame 1 (a scorer that re-assigned every frame by IoU alone would count 7 -> 8 -> 7: two switches)
#   frame 4: id 7 is gone, id 8 takes person 1: an identity switch; person 2 is missed; id 5 far from anyone: a false
#            positive
A, A_TALL, B, FAR = (0, 0, 10, 10), (0, 0, 10, 15), (100, 0, 10, 10), (200, 200, 10, 10)
HAND_GT = [(f, 1, *A) for f in (1, 2, 3, 4)] + [(f, 2, *B) for f in (1, 2, 3, 4)]
HAND_HYP = [(1, 7, *A_TALL), (1, 9, *B), (2, 7, *A_TALL), (2, 8, *A), (2, 9, *B), (3, 7, *A_TALL), (3, 9, *B),
            (4, 8, *A), (4, 5, *FAR)]
# CLEAR-MOT: 8 objects, 7 pairs of which 1 switch, 1 miss, 2 false positives -> MOTA 1 - (1 + 2 + 1) / 8.
# IDF1: co-occurrences (7, 1): 3 frames, (8, 1): 2 (frame 2 too), (9, 2): 3 -> 7->1, 9->2, IDTP 6 of 9 and 8.
HAND = {"mota": 0.5, "idf1": 12 / 17, "idp": 6 / 9, "idr": 6 / 8, "num_switches": 1, "fp": 2, "fn": 1,
        "matches": 6, "objects": 8, "predictions": 9}


def test_hand_made_switch_false_positives_and_kept_correspondence():
    ours = score_mot(HAND_GT, HAND_HYP)
    assert {k: ours[k] for k in KEYS} == pytest.approx(HAND)
    # an object's last hypothesis is remembered across frames where it is missed: 7 -> (miss) -> 8 is a switch
    gap = score_mot([(1, 1, *A), (2, 1, *A), (3, 1, *A)], [(1, 7, *A), (3, 8, *A)])
    assert (gap["num_switches"], gap["fn"], gap["matches"]) == (1, 1, 1) and gap["mota"] == pytest.approx(1 / 3)
    # at IoU 0.7 A_TALL no longer pairs with A: id 7 is a false positive in frames 1-3, person 1 is missed in frames
    # 1 and 3 and has id 8 in frames 2 and 4 (its only hypothesis: no switch); person 2 and id 5 as before
    strict = score_mot(HAND_GT, HAND_HYP, iou=0.7)
    assert (strict["fp"], strict["fn"], strict["num_switches"], strict["mota"]) == (4, 3, 0, 1 - 7 / 8)


def test_hand_made_case_in_motmetrics(mm):
    assert {k: motmetrics_reference(HAND_GT, HAND_HYP)[k] for k in KEYS} == pytest.approx(HAND)


def test_motmetrics_missing_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "motmetrics", None)  # what `import motmetrics` finds when it is not installed
    with pytest.raises(MissingExtra, match="pip install motmetrics"):
        motmetrics_reference(HAND_GT, HAND_HYP)


def test_hand_made_site_two_cameras_sum_their_counts():
    rows = np.array([(*r, 1, -1, -1, -1) for r in HAND_GT], float)
    evs, gt = _one_camera_site(rows, np.array(HAND_HYP, float))
    r = score_site(evs, gt)
    assert (r["mota"], r["mot"]["num_switches"], r["mot"]["fp"], r["mot"]["fn"]) == (0.5, 1, 2, 1)
    assert r["idf1"] == pytest.approx(12 / 17)
    # a second camera sees the same scene, but the matcher gave persons 1 and 2 each other's global ids there (7 <-> 9):
    # each camera alone has the same CLEAR-MOT counts (switches are per camera), so they double and MOTA stays 0.5;
    # the global IDF1 maps ids across cameras: co-occurrences (7, 1) 3, (7, 2) 3, (9, 1) 3, (9, 2) 3, (8, 1) 2 + 2
    # -> 8->1 and 7 or 9 ->2, IDTP 7 of 18 predicted and 16 true
    gt["cameras"]["cam2"], gt["frames"]["cam2"] = gt["cameras"]["cam"], gt["frames"]["cam"]
    sightings = [e for e in evs if e["event"] == "sighting"]
    evs2 = [{**evs[0], "cameras": {"cam": {"modality": "rgb"}, "cam2": {"modality": "rgb"}}}, *sightings,
            *({**e, "camera": "cam2", "global_id": {7: 9, 9: 7}.get(e["global_id"], e["global_id"])} for e in sightings),
            {"event": "end", "frames": {"cam": [[0, 4]], "cam2": [[0, 4]]}}]
    r2 = score_site(evs2, gt)
    assert r2["mot"] == {k: 2 * v for k, v in r["mot"].items()} and r2["mota"] == 0.5
    assert r2["cameras"]["cam2"]["mota"] == 0.5 and r2["cameras"]["cam2"]["mot"]["num_switches"] == 1
    assert r2["idtp"] == 7 and r2["idf1"] == pytest.approx(14 / 34)


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match=r"iou must be in \(0, 1\]"):
        score_mot(HAND_GT, HAND_HYP, iou=0)
    with pytest.raises(UsageError, match="hypothesis row #0 is not"):
        score_mot(HAND_GT, [(1, 7, 0, 0)])
    empty = score_mot([], [])
    assert empty["mota"] is None and empty["idf1"] is None and empty["objects"] == 0
