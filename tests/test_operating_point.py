"""The matcher's operating point: threshold/margin search on hand-built pairs and feature sets."""

from __future__ import annotations

import numpy as np
import pytest

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.eval.operating_point import (
    FAST_EARLY_TRACK_IMAGES,
    FAST_PRECISION,
    FAST_TRACK_IMAGES,
    choose,
    operating_point,
    precision_recall,
    scene_pairs,
)

IR, RGB = int(Modality.INFRARED), int(Modality.VISIBLE)


def _pairs():
    return {"sim": np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4]),
            "gap": np.array([0.3, 0.2, 0.01, 0.1, 0.02, 0.3]),
            "correct": np.array([True, True, False, True, False, False]),
            "opportunities": np.asarray(5), "people": np.asarray(5)}


def test_precision_recall_by_hand():
    pairs = _pairs()
    assert precision_recall(pairs, 0.4) == (0.5, 0.6, 6)
    assert precision_recall(pairs, 0.6) == (0.75, 0.6, 4)
    assert precision_recall(pairs, 0.8) == (1.0, 0.4, 2)
    assert precision_recall(pairs, 0.4, margin=0.05) == (0.75, 0.6, 4)
    assert precision_recall(pairs, 0.95) == (1.0, 0.0, 0)


def test_choose_finds_the_known_answer():
    pairs = _pairs()
    no_margin = choose(pairs, 0.9, margins=(0.0,))
    assert (no_margin["threshold"], no_margin["precision"], no_margin["recall"]) == (0.8, 1.0, 0.4)
    assert choose(pairs, 0.7, margins=(0.0,))["threshold"] == 0.6
    both = choose(pairs, 0.9, margins=(0.0, 0.05))  # the margin filters the two near-tie false pairs
    assert (both["threshold"], both["margin"], both["precision"], both["recall"]) == (0.5, 0.05, 1.0, 0.6)
    assert both["reached"] and len(both["per_margin"]) == 2
    unreachable = choose({**pairs, "correct": np.zeros(6, bool)}, 0.9, margins=(0.0,))
    assert not unreachable["reached"]
    with pytest.raises(UsageError):
        choose(pairs, 0.0)


def _orthogonal_set(cos_same):
    """Identity p: IR crop e_p, RGB crop cos*e_p + sin*e_(n+p); different people are orthogonal."""
    n = len(cos_same)
    feats, pids, mods = [], [], []
    for p, c in enumerate(cos_same):
        ir = np.zeros(2 * n)
        ir[p] = 1.0
        rgb = np.zeros(2 * n)
        rgb[p], rgb[n + p] = c, np.sqrt(1 - c * c)
        feats += [ir, rgb]
        pids += [p, p]
        mods += [IR, RGB]
    return np.stack(feats), pids, mods


def test_operating_point_on_a_feature_set_with_a_known_answer():
    cos_same = [0.35, 0.5, 0.62, 0.7, 0.8, 0.9, 0.55, 0.41]
    feats, pids, mods = _orthogonal_set(cos_same)
    op = operating_point(feats, pids, mods, people=4, scenes=50, track_images=1, seed=1)
    # every assigned pair is right, so the lowest similarity ever assigned is the threshold
    assert op["reached"] and op["precision"] == 1.0 and op["recall"] == 1.0
    assert op["threshold"] == pytest.approx(min(cos_same)) and op["margin"] == 0.0
    assert op["at_default_0.5"]["recall"] < 1.0  # 0.5 would drop the people below it


def test_scene_pairs_count_and_random_rgb_order():
    feats, pids, mods = _orthogonal_set([0.9] * 6)
    pairs = scene_pairs(feats, pids, mods, people=6, scenes=10, track_images=1, seed=0)
    assert len(pairs["sim"]) == 60 and int(pairs["opportunities"]) == 60 and pairs["correct"].all()
    with pytest.raises(UsageError, match="both modalities"):
        scene_pairs(feats[:1], pids[:1], mods[:1])


def test_same_modality_pairs_come_from_one_modality_and_disjoint_crops():
    """Hand-built features: a person's RGB crops lie at cosine 0.9 to each other, their IR crops
    at 0.9 too, the two modalities of one person at 0.3 and different people at 0. The
    same-modality point must find ~0.9 (cross-modal: ~0.3) at precision 1."""
    rng = np.random.default_rng(0)
    n_ids, per = 8, 6
    dim = 4 * n_ids
    feats, pids, mods = [], [], []
    for p in range(n_ids):
        base = np.zeros(dim)
        base[4 * p] = 1.0
        for m, axis in ((RGB, 1), (IR, 2)):
            side = np.zeros(dim)
            side[4 * p + axis] = 1.0
            for _ in range(per):
                v = np.sqrt(0.3) * base + np.sqrt(0.6) * side + np.sqrt(0.1) * rng.normal(size=dim) / np.sqrt(dim)
                feats.append(v / np.linalg.norm(v))
                pids.append(p)
                mods.append(m)
    feats = np.asarray(feats)
    same = scene_pairs(feats, pids, mods, people=4, scenes=50, track_images=3, kind="same")
    assert same["correct"].all() and same["sim"].min() > 0.8
    cross = scene_pairs(feats, pids, mods, people=4, scenes=50, track_images=3)
    assert cross["correct"].all() and 0.2 < cross["sim"].mean() < 0.45
    point = operating_point(feats, pids, mods, people=4, scenes=50, track_images=3)
    assert point["same_modality"]["precision"] == 1.0 and point["same_modality"]["threshold"] > 0.8
    assert point["threshold"] < 0.45
    # one crop per person and modality: no same-modality pairs to learn from
    one = [i for i in range(len(pids)) if i % per == 0]
    single = operating_point(feats[one], [pids[i] for i in one], [mods[i] for i in one], people=4, scenes=20)
    assert single["same_modality"] is None
    with pytest.raises(UsageError, match="2 or more crops"):
        scene_pairs(feats[one], [pids[i] for i in one], [mods[i] for i in one], kind="same")


def _people(noise: float, crops: int, seed: int, n: int = 12, d: int = 64):
    """``n`` people with orthonormal centres; each crop (per modality) = centre + ``noise`` x unit noise."""
    rng = np.random.default_rng(seed)
    centres = np.linalg.qr(rng.normal(size=(d, d)))[0][:n]
    feats, pids, mods = [], [], []
    for p in range(n):
        for m in (IR, RGB):
            for _ in range(crops):
                f = centres[p] + noise * rng.normal(size=d) / np.sqrt(d)
                feats.append(f / np.linalg.norm(f))
                pids.append(p)
                mods.append(m)
    return np.stack(feats), pids, mods


def test_fast_point_needs_high_precision_on_three_crop_tracks():
    # well separated people: every 3-crop track is assigned right, so the fast point is reached
    feats, pids, mods = _people(0.2, 6, seed=0)
    op = operating_point(feats, pids, mods, people=4, scenes=60, seed=0)
    fast = op["fast"]
    assert fast["reached"] and fast["precision"] >= FAST_PRECISION
    assert fast["track_images"] == FAST_TRACK_IMAGES and fast["target_precision"] == FAST_PRECISION
    early = op["fast_early"]  # single crops of these people are separable too
    assert early["reached"] and early["precision"] >= FAST_PRECISION and early["track_images"] == FAST_EARLY_TRACK_IMAGES
    # noise features: nobody is separable, no threshold gets 0.99 -> not reached, match keeps waiting
    noise = np.random.default_rng(0).normal(size=feats.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    op = operating_point(noise, pids, mods, people=4, scenes=60, seed=0)
    assert not op["fast"]["reached"] and op["fast"]["precision"] < FAST_PRECISION
    assert not op["fast_early"]["reached"]


def test_early_point_is_missed_where_single_crops_are_too_noisy_but_three_are_not():
    # each crop = centre + strong noise: one crop is often nearer another person, the mean of 3 rarely
    feats, pids, mods = _people(2.5, 8, seed=1)
    op = operating_point(feats, pids, mods, people=6, scenes=200, seed=0)
    assert op["fast"]["reached"] and op["fast"]["recall"] > 0.9
    assert not op["fast_early"]["reached"]


def test_a_precision_measured_on_too_few_pairs_does_not_reach_the_target():
    # 5 very similar right pairs on top, then a mix at 60 % precision: 0.99 holds on the 5 only
    sim = np.array([0.95] * 5 + [0.5] * 100)
    correct = np.array([True] * 5 + [True] * 60 + [False] * 40)
    pairs = {"sim": sim, "gap": np.full(len(sim), 1.0), "correct": correct, "opportunities": np.asarray(105)}
    few = choose(pairs, 0.99, margins=(0.0,))
    assert few["reached"] and few["threshold"] == 0.95 and few["accepted"] == 5
    enough = choose(pairs, 0.99, margins=(0.0,), min_pairs=20)
    assert not enough["reached"] and enough["precision"] == 1.0  # the best found is still reported, not reached
