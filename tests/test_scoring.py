"""score-matches: pair precision/recall and IDF1 on hand-made ground truth."""

from __future__ import annotations

import json

import pytest

from mvd_edge.eval.scoring import best_setting, load_ground_truth, meets_target, score_events, score_matches

A = [10, 10, 20, 40]  # x, y, w, h
B = [100, 10, 20, 40]


def _gt(frames_ir, frames_rgb):
    return {"format": "mvd-edge-synth-video", "version": 1, "fps": 10.0, "frames": len(frames_ir), "size": [100, 200],
            "streams": {"ir": {"boxes": frames_ir}, "rgb": {"boxes": frames_rgb}}}


def _match(f, ir_box, rgb_box, gid, ir_track=1, rgb_track=1):
    return {"event": "match", "frame": f, "ir_frame": f, "rgb_frame": f, "time": f / 10, "ir_track": ir_track,
            "rgb_track": rgb_track, "global_id": gid, "similarity": 0.9, "ir_box": ir_box, "rgb_box": rgb_box}


def _end(n):
    return {"event": "end", "frames": n, "steps": [[0, 0, n]], "summary": {}}


# two people, 4 frames; person 1 at A in IR and B in RGB, person 2 at B in IR and A in RGB
GT = _gt([[[1, *A, 1.0], [2, *B, 1.0]]] * 4, [[[1, *B, 1.0], [2, *A, 0.9]]] * 4)


def test_perfect_events_score_one():
    evs = [_match(f, A, B, 7, 1, 1) for f in range(4)] + [_match(f, B, A, 8, 2, 2) for f in range(4)] + [_end(4)]
    r = score_matches(evs, GT)
    assert r["precision"] == r["recall"] == r["idf1"] == 1.0
    assert r["opportunities"] == 8 and r["reported_pairs"] == 8 and r["global_ids"] == 2


def test_one_front_end_scores_pair_events_as_pairs(tmp_path):
    (tmp_path / "gt.json").write_text(json.dumps(GT))
    evs = [_match(f, A, B, 7, 1, 1) for f in range(4)] + [_end(4)]
    kind, r = score_events(evs, tmp_path)
    assert kind == "pair" and r == score_matches(evs, GT) and r["precision"] == 1.0 and r["recall"] == 0.5


def test_wrong_pairs_missing_frames_and_id_switches():
    evs = [
        _match(0, A, B, 1), _match(1, A, B, 1),  # person 1, correct
        _match(2, A, A, 2),                      # IR person 1 with RGB person 2: wrong
        _match(3, A, B, 3),                      # person 1 again, correct, but a new global id
        _end(4),
    ]
    r = score_matches(evs, GT)
    assert r["precision"] == pytest.approx(3 / 4)
    assert r["recall"] == pytest.approx(3 / 8)
    # IDF1: predicted boxes: 8 (4 events x 2); true: 16 (8 opportunities x 2)
    # gid 1 -> person 1 co-occurs 4 times; gid 3 -> person 1 twice (but person 1 is taken by gid 1);
    # gid 2 -> person 1 once (IR), person 2 once (RGB): gid 2 <-> person 2 gives 1. IDTP = 5
    assert r["idtp"] == 5 and r["idf1"] == pytest.approx(2 * 5 / (8 + 16))
    assert r["per_identity"][1]["global_ids"] == [1, 2, 3]


def test_boxes_need_iou_and_low_visibility_is_not_an_opportunity():
    gt = _gt([[[1, *A, 1.0]], [[1, *A, 1.0]]], [[[1, *B, 1.0]], [[1, *B, 0.2]]])
    off = [A[0] + 12, A[1], A[2], A[3]]  # IoU with A = 8*40 / (2*800 - 320) = 0.25
    r = score_matches([_match(0, off, B, 1), _match(1, A, B, 1), _end(2)], gt)
    assert r["opportunities"] == 1  # frame 1: the RGB view shows only 20 % of the person
    assert r["precision"] == 0.5 and r["recall"] == 0.0
    r = score_matches([_match(0, off, B, 1), _end(2)], gt, iou=0.2)
    assert r["precision"] == 1.0 and r["recall"] == 1.0


def test_events_without_end_use_aligned_frames_and_files(tmp_path):
    ev_path = tmp_path / "ev.jsonl"
    ev_path.write_text("\n".join(json.dumps(e) for e in [{"event": "start"}, _match(0, A, B, 1), _match(1, A, B, 1)]))
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(GT))
    r = score_matches(ev_path, tmp_path)  # a folder means its gt.json
    assert r["frames"] == 2 and r["opportunities"] == 4 and r["recall"] == 0.5
    with pytest.raises(ValueError, match="not a synth-video ground truth"):
        bad = tmp_path / "bad.json"
        bad.write_text("{}")
        load_ground_truth(bad)
    with pytest.raises(FileNotFoundError):
        load_ground_truth(tmp_path / "none.json")
    ev_path.write_text("not json\n")
    with pytest.raises(ValueError, match=":1: not JSON"):
        score_matches(ev_path, GT)


@pytest.fixture(scope="module")
def colour_pair(tmp_path_factory):
    """A short pair where both views are rendered in colour (so a colour histogram separates people)."""
    from mvd_edge.synth.video import write_synth_video

    out = tmp_path_factory.mktemp("colour-pair")
    write_synth_video(out, n_ids=3, seconds=4.0, seed=2, size=(180, 320), ir_modality="rgb")
    return out


def test_separability_of_a_colour_embedder_on_a_colour_pair_is_high(colour_pair):
    from mvd_edge.eval.scoring import embedding_separability
    from mvd_edge.match.baselines import ColorHistogramEmbedder

    r = embedding_separability(ColorHistogramEmbedder(), colour_pair, every=1)
    assert r["identities"] == 3 and r["chance"] == pytest.approx(1 / 3)
    assert r["identity_assignment"] == 1.0
    assert min(r["crop_top1"].values()) > 0.8
    assert r["same_cosine"] > r["other_cosine"]
    assert r["crops"]["ir"] > 20 and r["crops"]["rgb"] > 20
    assert r["misassigned"] == [] and r["look_alikes"] == []  # colour in both views


def test_separability_names_the_misassigned_people(colour_pair, tmp_path):
    """Relabel people 1 and 2 in the RGB ground truth: a perfect embedder now 'assigns' IR 1 to RGB 2."""
    import shutil

    from mvd_edge.eval.scoring import embedding_separability
    from mvd_edge.match.baselines import ColorHistogramEmbedder

    for f in colour_pair.iterdir():
        shutil.copy(f, tmp_path / f.name)
    gt = json.loads((tmp_path / "gt.json").read_text())
    swap = {1: 2, 2: 1, 3: 3}
    gt["streams"]["rgb"]["boxes"] = [[[swap[b[0]], *b[1:]] for b in frame] for frame in gt["streams"]["rgb"]["boxes"]]
    gt["look_alikes"] = [[2, 3]]  # copied from the ground truth as it is
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    r = embedding_separability(ColorHistogramEmbedder(), tmp_path, every=1)
    assert r["misassigned"] == [[1, 2], [2, 1]] and r["identity_assignment"] == pytest.approx(1 / 3)
    assert r["look_alikes"] == [[2, 3]]


def test_separability_of_a_random_embedder_is_near_chance(colour_pair):
    import numpy as np

    from mvd_edge.eval.scoring import embedding_separability

    class Noise:
        spec = None

        def __init__(self):
            self.rng = np.random.default_rng(0)

        def embed(self, crops):
            return self.rng.standard_normal((len(crops), 32)).astype(np.float32)

    r = embedding_separability(Noise(), colour_pair, every=1)
    assert max(r["crop_top1"].values()) < 0.6  # chance is 1/3: a crop leaking into its own descriptor would show
    with pytest.raises(ValueError, match="every"):
        embedding_separability(Noise(), colour_pair, every=0)


def _row(th, mg, idf1, precision=0.5):
    return {"threshold": th, "margin": mg, "precision": precision, "recall": 0.5, "idf1": idf1}


def test_best_setting_is_the_best_mean_over_validation_videos():
    v1 = [_row(0.3, 0.0, 0.9), _row(0.4, 0.0, 0.5), _row(0.3, 0.1, 0.6)]
    v2 = [_row(0.4, 0.0, 0.8), _row(0.3, 0.1, 0.7), _row(0.3, 0.0, 0.1)]  # other order: matched by setting
    assert best_setting([v1]) == (0.3, 0.0)
    assert best_setting([v1, v2]) == (0.4, 0.0)  # means 0.5, 0.65, 0.65 (+ float noise): a tie, the first wins
    v2[1]["precision"] = 0.9  # ... unless the other has the higher precision
    assert best_setting([v1, v2]) == (0.3, 0.1)
    v2[1]["precision"], v2[0]["precision"] = 0.1, 0.9
    assert best_setting([v1, v2]) == (0.4, 0.0)
    assert best_setting([v1, v2], key="recall") == (0.4, 0.0)  # recall all 0.5: the best precision
    assert best_setting([[_row(0.3, 0.0, 0.2), _row(0.4, 0.0, 0.2)]]) == (0.3, 0.0)  # all equal: the first
    with pytest.raises(ValueError, match="same settings"):
        best_setting([v1, v2[:2]])
    with pytest.raises(ValueError, match="same settings"):
        best_setting([v1, v2 + [v2[0]]])
    with pytest.raises(ValueError, match="at least one"):
        best_setting([])


def test_best_setting_for_a_target_counts_the_videos_that_meet_it_and_nan_is_worst():
    def row(th, p, r, idf1):
        return {"threshold": th, "margin": 0.0, "precision": p, "recall": r, "idf1": idf1}

    v1 = [row(0.2, 0.95, 0.85, 0.80), row(0.3, 0.99, 0.70, 0.95)]
    v2 = [row(0.2, 0.92, 0.81, 0.80), row(0.3, 0.80, 0.95, 0.95)]
    assert best_setting([v1, v2]) == (0.3, 0.0)  # best mean IDF1, but meets the target nowhere
    assert best_setting([v1, v2], target=(0.9, 0.8)) == (0.2, 0.0)  # meets it on both
    assert best_setting([[row(0.2, 0.5, 0.5, float("nan")), row(0.3, 0.5, 0.5, 0.1)]]) == (0.3, 0.0)
    assert meets_target(row(0.2, 0.9, 0.8, 0.0), (0.9, 0.8))  # the bounds themselves meet it
    assert not meets_target(row(0.2, 0.899, 0.95, 0.0), (0.9, 0.8))
    assert not meets_target(row(0.2, 0.95, 0.799, 0.0), (0.9, 0.8))


def test_events_of_another_video_are_an_error_or_a_loud_warning(tmp_path):
    from mvd_edge.eval.scoring import GroundTruthWarning

    for name, gt in (("short", GT), ("here", GT)):
        (tmp_path / name).mkdir()
        g = json.loads(json.dumps(gt))
        for s in ("ir", "rgb"):
            g["streams"][s]["video"] = f"{s}.mp4"
        (tmp_path / name / "gt.json").write_text(json.dumps(g))
    # events that run past the ground truth's frames
    long = [_match(f, A, B, 1) for f in range(6)]
    with pytest.raises(ValueError, match="reach frame 5 but the ground truth .* has 4 frames"):
        score_matches(long, tmp_path / "short")
    # events whose sources are other files than the videos beside gt.json
    start = {"event": "start", "ir_source": str(tmp_path / "elsewhere" / "ir.mp4"),
             "rgb_source": str(tmp_path / "here" / "rgb.mp4")}
    with pytest.warns(GroundTruthWarning, match="ir source .*elsewhere.* meaningless"):
        score_matches([start, _match(0, A, B, 1), _end(1)], tmp_path / "here")
    ok = {"event": "start", "ir_source": str(tmp_path / "here" / "ir.mp4"), "rgb_source": str(tmp_path / "here" / "rgb.mp4")}
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", GroundTruthWarning)
        assert score_matches([ok, _match(0, A, B, 1), _end(1)], tmp_path / "here")["reported_pairs"] == 1
