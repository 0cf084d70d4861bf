"""Synthetic multi-camera site (mvd_edge.synth.site) and the N-camera scorer (mvd_edge.eval.site_scoring)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
import yaml

from mvd_edge.core.errors import OutputExists, UsageError
from mvd_edge.eval.scoring import score_events
from mvd_edge.eval.site_scoring import format_site_table, load_site_ground_truth, score_site
from mvd_edge.synth.site import SITE_GT_FORMAT, default_placement, write_synth_site

FPS = {"rgb0": 10.0, "rgb1": 10.0, "ir0": 10.0, "ir1": 5.0}  # ir1 at half rate


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("site")
    gt = write_synth_site(out, rgb_cameras=2, ir_cameras=2, locations=2, n_ids=4, seconds=8.0, fps=FPS,
                          size=(144, 256), seed=0)
    return out, gt


# ---------------------------------------------------------------------------- renderer
def test_site_writes_videos_mot_cameras_file_and_gt(site):
    out, gt = site
    assert gt["format"] == SITE_GT_FORMAT and gt["n_ids"] == 4
    assert json.loads((out / "gt.json").read_text()) == gt
    cams = gt["cameras"]
    assert set(cams) == {"rgb0", "rgb1", "ir0", "ir1"}
    assert {c: (cams[c]["modality"], cams[c]["location"]) for c in cams} == {
        "rgb0": ("rgb", 0), "ir0": ("ir", 0), "rgb1": ("rgb", 1), "ir1": ("ir", 1)}
    assert cams["ir1"]["n_frames"] == 40 and cams["ir0"]["n_frames"] == 80  # half rate, half the frames
    site_yaml = yaml.safe_load((out / "site.yaml").read_text())
    assert set(site_yaml) == {"cameras"}
    for c, entry in site_yaml["cameras"].items():
        assert entry["modality"] == cams[c]["modality"] and entry["fps"] == FPS[c]
        assert entry["resolution"] == "256x144"
        assert entry["source"] == cams[c]["video"] and (out / entry["source"]).is_file()  # beside the cameras file
        assert len(gt["frames"][c]) == cams[c]["n_frames"] and cams[c]["size"] == [144, 256]
    from mvd_edge.match.sources import load_cameras

    specs = load_cameras(out / "site-boxes.yaml")  # the matcher's reader finds the files beside it
    assert {c: sp.modality for c, sp in specs.items()} == {c: cams[c]["modality"] for c in cams}
    assert all(Path(sp.target).is_file() and Path(sp.boxes) == out / f"{c}.mot.txt" for c, sp in specs.items())
    cap = cv2.VideoCapture(str(out / cams["ir1"]["video"]))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    assert n == 40
    mot = (out / cams["rgb0"]["boxes"]).read_text().splitlines()
    assert len(mot) == sum(len(b) for b in gt["frames"]["rgb0"]) > 0
    assert {int(line.split(",")[1]) for line in mot} <= {1, 2, 3, 4}


def test_site_boxes_lie_inside_the_frames(site):
    _, gt = site
    n = 0
    for c, frames in gt["frames"].items():
        h, w = gt["cameras"][c]["size"]
        for boxes in frames:
            for pid, x, y, bw, bh, vis in boxes:
                assert 1 <= pid <= 4 and 0 <= vis <= 1
                assert 0 <= x and 0 <= y and x + bw <= w and y + bh <= h and bw >= 4 and bh >= 1
                n += 1
    assert n > 100


def _ids_at(gt, cam, t, inside_only=False):
    """Persons in camera ``cam`` at time ``t`` (optionally only those whose box is clear of the frame edges)."""
    fps, w = gt["cameras"][cam]["fps"], gt["cameras"][cam]["size"][1]
    boxes = gt["frames"][cam][int(round(t * fps))]
    return {b[0] for b in boxes if not inside_only or (b[1] >= 2 and b[1] + b[3] <= w - 2)}


def test_co_located_cameras_see_the_same_people_at_the_same_time(site):
    _, gt = site
    seen = 0
    for a, b in (("rgb0", "ir0"), ("rgb1", "ir1")):
        for k in range(40):  # ir1's frames; times k / 5 s
            t = k / 5.0
            assert _ids_at(gt, a, t, inside_only=True) <= _ids_at(gt, b, t)
            assert _ids_at(gt, b, t, inside_only=True) <= _ids_at(gt, a, t)
            seen += len(_ids_at(gt, a, t, inside_only=True))
    assert seen > 20


def test_people_move_between_locations_over_time(site):
    _, gt = site
    at = {}  # (pid, location) -> times seen
    for c, cam in gt["cameras"].items():
        for k, boxes in enumerate(gt["frames"][c]):
            for b in boxes:
                at.setdefault((b[0], cam["location"]), set()).add(round(k / cam["fps"], 3))
    both = [p for p in range(1, 5) if (p, 0) in at and (p, 1) in at]
    assert both  # someone is seen at both places ...
    for p in both:  # ... never at both at once: they walk from one to the other
        assert not at[(p, 0)] & at[(p, 1)]
    assert all(v["end"] > v["start"] for v in gt["visits"])


def test_site_refuses_a_non_empty_folder_and_is_deterministic(tmp_path):
    kw = dict(rgb_cameras=1, ir_cameras=1, locations=1, n_ids=2, seconds=1.0, fps=5.0, size=(64, 96), seed=3)
    gt = write_synth_site(tmp_path / "s", **kw)
    with pytest.raises(OutputExists, match="not empty"):
        write_synth_site(tmp_path / "s", **kw)
    assert write_synth_site(tmp_path / "s", overwrite=True, **kw) == gt
    assert gt["cameras"]["rgb0"]["location"] == gt["cameras"]["ir0"]["location"] == 0


def test_site_argument_errors(tmp_path):
    with pytest.raises(UsageError, match="cannot cover 3 places"):
        write_synth_site(tmp_path / "a", rgb_cameras=1, ir_cameras=1, locations=3)
    with pytest.raises(UsageError, match=r"camera\(s\) \['ir7'\]"):
        write_synth_site(tmp_path / "b", fps={"ir7": 5.0})
    with pytest.raises(UsageError, match="placement"):
        write_synth_site(tmp_path / "c", placement={"rgb0": 0})
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_default_placement_spreads_modalities():
    assert default_placement(2, 2, 2) == {"rgb0": 0, "rgb1": 1, "ir0": 0, "ir1": 1}
    assert default_placement(1, 1, 2) == {"rgb0": 0, "ir0": 1}  # no empty place
    assert default_placement(1, 3, 2) == {"rgb0": 0, "ir0": 1, "ir1": 0, "ir2": 1}
    assert default_placement(3, 1, 3) == {"rgb0": 0, "rgb1": 1, "rgb2": 2, "ir0": 0}


def _perfect_events(gt, gid_base=100):
    evs = [{"event": "start", "schema": "site/1", "run_id": "r", "seq": 0, "config": {},
            "cameras": {c: {"modality": v["modality"], "source": v["video"], "fps": v["fps"]}
                        for c, v in gt["cameras"].items()}}]
    for c, frames in gt["frames"].items():
        for f, boxes in enumerate(frames):
            for b in boxes:
                evs.append({"event": "sighting", "step": f, "camera": c, "frame": f, "time": f / 10,
                            "track": int(b[0]), "global_id": gid_base + int(b[0]), "box": b[1:5]})
    evs.append({"event": "end", "frames": {c: [[0, v["n_frames"]]] for c, v in gt["cameras"].items()},
                "summary": {}})
    return evs


def test_perfect_events_on_a_rendered_site_score_one(site):
    out, gt = site
    r = score_site(_perfect_events(gt), out)  # the folder: read through load_site_ground_truth
    assert r["idf1"] == r["idp"] == r["idr"] == 1.0 and r["complete"]
    assert len(r["pairs"]) == 6 and {p["kind"] for p in r["pairs"]} == {"cross-modal", "same-modality"}
    for p in r["pairs"]:
        assert p["precision"] == p["recall"] == 1.0 and p["recall_n"] > 0
    assert all(c["box_precision"] == c["box_recall"] == 1.0 for c in r["cameras"].values())


# ---------------------------------------------------------------------------- scorer, hand-made ground truth
A = [10, 10, 20, 40]  # x, y, w, h
B = [100, 10, 20, 40]
FAR = [300, 10, 20, 40]  # overlaps nobody
EMPTY: list = []


def _cam(modality, location):
    return {"modality": modality, "location": location, "fps": 10.0, "n_frames": 4, "size": [100, 400],
            "video": "x.mp4", "boxes": "x.mot.txt"}


# rgb0 and ir0 at place 0 see persons 1 and 2 in frames 0-1; rgb1 at place 1 sees them in frames 2-3
P12_AB = [[1, *A, 1.0], [2, *B, 1.0]]
GT = {"format": SITE_GT_FORMAT, "seed": 0, "n_ids": 2,
      "cameras": {"rgb0": _cam("rgb", 0), "ir0": _cam("ir", 0), "rgb1": _cam("rgb", 1)},
      "frames": {"rgb0": [P12_AB, P12_AB, EMPTY, EMPTY],
                 "ir0": [[[1, *B, 1.0], [2, *A, 1.0]]] * 2 + [EMPTY, EMPTY],
                 "rgb1": [EMPTY, EMPTY, P12_AB, P12_AB]}}
WHERE = {"rgb0": {1: A, 2: B}, "ir0": {1: B, 2: A}, "rgb1": {1: A, 2: B}}
SEEN = {"rgb0": (0, 1), "ir0": (0, 1), "rgb1": (2, 3)}


def _events(gids, extra=(), end=True, frames_seen=SEEN):
    """``gids[camera][pid]`` -> global id of each sighting of ``pid`` on ``camera``."""
    evs = [{"event": "start", "schema": "site/1", "config": {},
            "cameras": {c: {"modality": GT["cameras"][c]["modality"], "source": c, "fps": 10.0} for c in GT["cameras"]}}]
    for c, frames in frames_seen.items():
        for f in frames:
            for pid in (1, 2):
                evs.append({"event": "sighting", "step": f, "camera": c, "frame": f, "time": f / 10, "track": pid,
                            "global_id": gids[c][pid], "box": WHERE[c][pid], "run_id": "r", "seq": len(evs)})
    evs += list(extra)
    if end:
        evs.append({"event": "end", "frames": {c: [[0, 4]] for c in GT["cameras"]}, "summary": {}})
    return evs


RIGHT = {"rgb0": {1: 7, 2: 8}, "ir0": {1: 7, 2: 8}, "rgb1": {1: 7, 2: 8}}


def _pair(r, a, b):
    return next(p for p in r["pairs"] if (p["a"], p["b"]) == (a, b))


def test_perfect_hand_made_events_score_one():
    r = score_site(_events(RIGHT), GT)
    assert r["idf1"] == 1.0 and r["idtp"] == r["true"] == r["predicted"] == 12
    assert [(p["a"], p["b"]) for p in r["pairs"]] == [("ir0", "rgb0"), ("ir0", "rgb1"), ("rgb0", "rgb1")]
    assert all(p["precision"] == p["recall"] == 1.0 for p in r["pairs"])
    assert _pair(r, "ir0", "rgb0")["co_located"] and not _pair(r, "ir0", "rgb1")["co_located"]
    assert _pair(r, "rgb0", "rgb1")["kind"] == "same-modality" and _pair(r, "ir0", "rgb1")["kind"] == "cross-modal"


def test_identities_swapped_on_one_camera():
    swapped = {**RIGHT, "rgb1": {1: 8, 2: 7}}  # at place 1, the gallery hands out each other's ids
    r = score_site(_events(swapped), GT)
    # co-occurrences: (7,1) 4, (8,2) 4, (8,1) 2, (7,2) 2 -> 7->1, 8->2, IDTP 8 of 12 predicted and 12 true
    assert r["idtp"] == 8 and r["idf1"] == pytest.approx(16 / 24) and r["idp"] == r["idr"] == pytest.approx(8 / 12)
    p = _pair(r, "ir0", "rgb0")
    assert (p["precision"], p["recall"]) == (1.0, 1.0)
    for a, b in (("ir0", "rgb1"), ("rgb0", "rgb1")):
        p = _pair(r, a, b)
        assert (p["precision_hits"], p["precision_n"], p["recall_hits"], p["recall_n"]) == (0, 2, 0, 2)
    t = r["totals"]
    assert (t["all"]["precision"], t["all"]["recall"]) == (pytest.approx(2 / 6), pytest.approx(2 / 6))
    assert t["cross-modal"]["recall"] == 0.5 and t["same-modality"]["recall"] == 0.0
    assert t["co-located"]["precision"] == 1.0 and t["across-locations"]["precision"] == 0.0
    assert r["cameras"]["rgb1"]["idf1"] == 0.0 and r["cameras"]["rgb0"]["idf1"] == 1.0
    rows = format_site_table(r)
    assert rows[0][:2] == ["pair", "kind"] and ["ir0-rgb1", "cross-modal", "no", "0.000 (0/2)", "0.000 (0/2)"] in rows
    assert format_site_table(r, "cameras")[-1][-3:] == ["0.667", "0.667", "0.667"]


def test_new_id_at_the_second_place_and_a_false_sighting():
    ids = {**RIGHT, "rgb1": {1: 9, 2: 8}}  # person 1 not recognised at place 1
    false = {"event": "sighting", "step": 0, "camera": "rgb0", "frame": 0, "time": 0.0, "track": 99,
             "global_id": 7, "box": FAR}
    r = score_site(_events(ids, extra=[false]), GT)
    # co-occurrences (7,1) 4, (8,2) 6, (9,1) 2 -> IDTP 10; 13 predicted (the false one too), 12 true
    assert r["idtp"] == 10 and r["idf1"] == pytest.approx(20 / 25)
    assert r["idp"] == pytest.approx(10 / 13) and r["idr"] == pytest.approx(10 / 12)
    for a, b in (("ir0", "rgb1"), ("rgb0", "rgb1")):
        p = _pair(r, a, b)  # only id 8 is on both; it is person 2 on both; person 1 has 7 vs 9
        assert (p["precision_hits"], p["precision_n"], p["recall_hits"], p["recall_n"]) == (1, 1, 1, 2)
    assert r["totals"]["all"]["precision"] == 1.0 and r["totals"]["all"]["recall"] == pytest.approx(4 / 6)
    cam = r["cameras"]["rgb0"]
    assert (cam["tp"], cam["fp"], cam["fn"]) == (4, 1, 0) and cam["box_precision"] == pytest.approx(0.8)
    assert cam["identified"] == pytest.approx(4 / 5) and cam["with_global_id"] == 1.0


def test_low_visibility_sightings_are_dont_care():
    gt = json.loads(json.dumps(GT))
    gt["frames"]["rgb1"][3] = [[1, *A, 0.3], [2, *B, 1.0]]
    r = score_site(_events(RIGHT), gt)
    assert r["dont_care"] == 1 and r["true"] == r["predicted"] == 11 and r["idf1"] == 1.0


def test_killed_run_scores_frames_up_to_the_last_sighting():
    seen = {"rgb0": (0, 1), "ir0": (0, 1), "rgb1": (2,)}  # killed during frame 3
    r = score_site(_events(RIGHT, end=False, frames_seen=seen), GT)
    assert not r["complete"] and r["true"] == r["predicted"] == 10 and r["idf1"] == 1.0
    assert r["cameras"]["rgb1"]["frames"] == 3 and r["cameras"]["ir0"]["frames"] == 2
    with_end = score_site(_events(RIGHT, frames_seen=seen), GT)  # the end line says all 4 frames were processed
    assert with_end["complete"] and with_end["true"] == 12 and with_end["idr"] == pytest.approx(10 / 12)


def test_events_file_and_ground_truth_folder(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(e) + "\n" for e in _events(RIGHT)))
    assert score_site(events, tmp_path)["idf1"] == 1.0
    kind, r = score_events(events, tmp_path)  # the one front end sees a site's ground truth
    assert kind == "site" and r["idf1"] == 1.0 and r["pairs"]
    assert load_site_ground_truth(tmp_path / "gt.json")["_path"] == str(tmp_path / "gt.json")


def test_two_stream_events_and_ground_truth_are_refused(tmp_path):
    two = [{"event": "start", "schema": 1, "ir_source": "ir.mp4", "rgb_source": "rgb.mp4"},
           {"event": "match", "frame": 0, "ir_frame": 0, "rgb_frame": 0, "global_id": 1, "ir_box": A, "rgb_box": B},
           {"event": "end", "frames": 1, "steps": [[0, 0, 1]], "summary": {}}]
    with pytest.raises(UsageError, match="not site matcher events.*two-stream"):
        score_site(two, GT)
    two[0].update(schema="site/1", view="pair")  # the pair view of today's schema
    with pytest.raises(UsageError, match="not site matcher events.*view 'pair'.*two-stream"):
        score_site(two, GT)
    (tmp_path / "gt.json").write_text(json.dumps({"format": "mvd-edge-synth-video", "version": 1, "streams": {}}))
    with pytest.raises(UsageError, match="two-camera synth-video"):
        load_site_ground_truth(tmp_path)
    with pytest.raises(UsageError, match="no events"):
        score_site([], GT)


def test_unknown_cameras_and_frames_beyond_the_ground_truth_are_refused():
    evs = _events(RIGHT)
    evs[0]["cameras"]["lobby"] = {"modality": "rgb", "source": "x", "fps": 10.0}
    with pytest.raises(UsageError, match=r"\['lobby'\] are not in the ground truth"):
        score_site(evs, GT)
    late = {"event": "sighting", "step": 4, "camera": "ir0", "frame": 4, "time": 0.4, "track": 1, "global_id": 7,
            "box": B}
    with pytest.raises(UsageError, match="frame 4 of camera 'ir0'.*4 frames"):
        score_site(_events(RIGHT, extra=[late]), GT)
    evs = _events(RIGHT)
    evs[0]["cameras"]["ir0"]["modality"] = "rgb"
    with pytest.raises(UsageError, match="'ir0' is rgb in the events but ir"):
        score_site(evs, GT)


def test_thresholds_are_checked():
    with pytest.raises(UsageError, match=r"iou must be in \(0, 1\]"):
        score_site(_events(RIGHT), GT, iou=0.0)
    with pytest.raises(UsageError, match=r"min_visibility must be in \[0, 1\]"):
        score_site(_events(RIGHT), GT, min_visibility=1.5)
