"""Synthetic IR/RGB video pairs with ground truth."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from mvd_edge.match.detect import read_mot
from mvd_edge.synth import look_alike_pairs, sample_identities
from mvd_edge.synth.video import GT_FORMAT, SynthVideoRenderer, write_synth_video


def test_write_synth_video_files_and_ground_truth(tmp_path):
    s = write_synth_video(tmp_path / "v", n_ids=4, seconds=1.0, seed=2, fps=10, size=(144, 256))
    assert s["frames"] == 10
    gt = json.loads((tmp_path / "v" / "gt.json").read_text())
    assert gt["format"] == GT_FORMAT and gt["frames"] == 10 and gt["size"] == [144, 256] and gt["n_ids"] == 4
    people = sample_identities(4, gt["identity_seed"])
    assert gt["look_alikes"] == s["look_alikes"] == [[i + 1, j + 1] for i, j in look_alike_pairs(people)]
    for stream in ("ir", "rgb"):
        cap = cv2.VideoCapture(s["videos"][stream])
        n = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            assert frame.shape == (144, 256, 3)
            n += 1
        assert n == 10
        boxes = gt["streams"][stream]["boxes"]
        assert len(boxes) == 10
        for frame_boxes in boxes:
            for pid, x, y, w, h, vis in frame_boxes:
                assert 1 <= pid <= 4 and 0 <= vis <= 1
                assert x >= 0 and y >= 0 and x + w <= 256 and y + h <= 144 and w >= 4
        mot = read_mot(s["mot"][stream])
        assert sum(len(d) for d in mot.values()) == sum(len(b) for b in boxes)
        k = next(k for k, b in enumerate(boxes) if b)
        np.testing.assert_allclose(mot[k].boxes[0][:2], boxes[k][0][1:3], atol=0.06)
        assert mot[k].ids[0] == boxes[k][0][0]


def test_renderer_is_deterministic_thermal_and_shows_everyone():
    r = SynthVideoRenderer(n_ids=6, seed=0)
    ir, boxes_ir = r.render("ir", 30)
    rgb, boxes_rgb = r.render("rgb", 30)
    assert ir.shape == rgb.shape == (360, 640, 3)
    assert np.array_equal(ir[..., 0], ir[..., 1]) and np.array_equal(ir[..., 1], ir[..., 2])  # B == G == R
    assert not np.array_equal(rgb[..., 0], rgb[..., 2])
    ir2, boxes2 = SynthVideoRenderer(n_ids=6, seed=0).render("ir", 30)
    assert np.array_equal(ir, ir2) and boxes2 == boxes_ir
    assert SynthVideoRenderer(n_ids=6, seed=1).render("ir", 30)[1] != boxes_ir
    # over the clip every person is seen in both views, and people leave and come back
    seen = {"ir": set(), "rgb": set()}
    for k in range(0, 300, 5):
        for s in seen:
            seen[s] |= {b[0] for b in r.render(s, k)[1] if b[5] > 0.5}
    assert seen["ir"] == seen["rgb"] == set(range(1, 7))


def test_people_are_not_the_training_identities():
    from mvd_edge.synth import sample_identities

    r = SynthVideoRenderer(n_ids=3, seed=0)
    assert r.identities != sample_identities(3, 0)


def test_given_identities_are_the_people_and_the_seed_still_sets_the_scene():
    from mvd_edge.synth import sample_identities

    people = sample_identities(3, 5)
    r = SynthVideoRenderer(n_ids=3, seed=0, identities=people)
    assert r.identities == people and r.identity_seed is None
    default = SynthVideoRenderer(n_ids=3, seed=0)
    assert r.walks == default.walks and r.styles == default.styles  # same scene
    assert not np.array_equal(r.render("rgb", 40)[0], default.render("rgb", 40)[0])  # other people
    with pytest.raises(ValueError, match="identities"):
        SynthVideoRenderer(n_ids=2, identities=people)


def test_colour_ir_view_for_baseline_checks():
    r = SynthVideoRenderer(n_ids=2, seed=0, ir_modality="rgb")
    img, _ = r.render("ir", 0)
    assert not np.array_equal(img[..., 0], img[..., 2])


def test_bad_arguments():
    with pytest.raises(ValueError):
        SynthVideoRenderer(n_ids=0)
    with pytest.raises(ValueError):
        SynthVideoRenderer(size=(32, 32))
    with pytest.raises(ValueError):
        SynthVideoRenderer().render("thermal", 0)


def test_ground_truth_names_look_alikes(tmp_path):
    gt = json.loads(open(write_synth_video(tmp_path / "v", n_ids=6, seconds=0.2, seed=2, size=(72, 128))["gt"]).read())
    assert gt["look_alikes"] == [[1, 2]]  # 1-based ids, as the boxes
    colour = write_synth_video(tmp_path / "c", n_ids=6, seconds=0.2, seed=2, size=(72, 128), ir_modality="rgb")
    assert colour["look_alikes"] == []  # colour shows in both views: nobody looks alike
