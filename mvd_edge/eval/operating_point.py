"""The matcher's operating point: the cosine threshold (and margin) that reaches a pair precision.

``mvd-edge match`` reports an IR track and an RGB track as one person when the Hungarian
assignment pairs them, their similarity reaches ``threshold`` and, with ``margin`` > 0, beats
every other similarity of both tracks by ``margin`` (:mod:`mvd_edge.match.associate`). The
right threshold depends on the model (the tiny CPU models of this project pair people at
0.1-0.2, a ResNet-50 much higher), so it is measured per engine and stored in its sidecar.

How it is measured (numpy only): on labelled crops of identities the model has not been
selected on, many *scenes* are drawn, each with ``people`` identities seen by both modalities.
Each person's IR "track" is the normalised mean of ``track_images`` random IR crops of that
person (the matcher's feature banks average a track's crops too), likewise the RGB track. The
scene's IR x RGB cosine matrix is assigned with ``scipy.optimize.linear_sum_assignment``; every
assigned pair is kept with its similarity, its gap to the runner-up similarity of its row and
column, and whether the two tracks are the same person. For each margin of a small grid the
lowest threshold whose pair precision reaches ``target_precision`` is found; the
(threshold, margin) with the highest pair recall wins. When no threshold reaches the target the
one with the highest precision is returned with ``reached: False``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality

METHOD = "scene-assignment/1"
DEFAULT_PRECISION = 0.9
DEFAULT_MARGINS = (0.0, 0.02, 0.05)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def scene_pairs(feats: np.ndarray, pids: Sequence[int], modalities: Sequence[int], people: int = 6,
                scenes: int = 300, track_images: int = 4, seed: int = 0) -> dict[str, np.ndarray]:
    """Assigned pairs over random scenes -> ``{"sim", "gap", "correct"}`` arrays and the pair count.

    ``gap``: the pair's similarity minus the best other similarity of its IR row and RGB column
    (``+inf`` when the scene has one person). ``opportunities``: people per scene x scenes, the
    recall denominator (every person of a scene could be matched).
    """
    feats = np.asarray(feats, np.float64)
    pids = np.asarray(pids)
    mods = np.asarray(modalities)
    if feats.ndim != 2 or len(feats) != len(pids) or len(pids) != len(mods):
        raise UsageError(f"need [N, D] features with N identities and modalities, got {feats.shape}, "
                         f"{len(pids)}, {len(mods)}")
    ir_idx: dict[int, np.ndarray] = {}
    rgb_idx: dict[int, np.ndarray] = {}
    for p in np.unique(pids):
        ir = np.flatnonzero((pids == p) & (mods == int(Modality.INFRARED)))
        rgb = np.flatnonzero((pids == p) & (mods == int(Modality.VISIBLE)))
        if len(ir) and len(rgb):
            ir_idx[int(p)], rgb_idx[int(p)] = ir, rgb
    both = sorted(ir_idx)
    if len(both) < 2:
        raise UsageError(f"the operating point needs at least 2 identities seen in both modalities, got {len(both)}")
    if people < 1 or scenes < 1 or track_images < 1:
        raise UsageError(f"people, scenes and track_images must be >= 1, got {people}, {scenes}, {track_images}")
    k = min(people, len(both))
    rng = np.random.default_rng(seed)
    sims, gaps, correct = [], [], []

    def track(idx: np.ndarray) -> np.ndarray:
        pick = rng.choice(idx, size=min(track_images, len(idx)), replace=False)
        return _unit(feats[pick].mean(0))

    for _ in range(scenes):
        who = rng.choice(both, size=k, replace=False)
        ir = np.stack([track(ir_idx[int(p)]) for p in who])
        rgb = np.stack([track(rgb_idx[int(p)]) for p in who])
        # RGB tracks in a random order: the assignment must not be able to lean on positions
        order = rng.permutation(k)
        rgb = rgb[order]
        s = ir @ rgb.T
        rows, cols = linear_sum_assignment(-s)
        for r, c in zip(rows, cols):
            others = np.concatenate([np.delete(s[r], c), np.delete(s[:, c], r)])
            sims.append(s[r, c])
            gaps.append(s[r, c] - others.max() if len(others) else np.inf)
            correct.append(order[c] == r)
    return {"sim": np.asarray(sims), "gap": np.asarray(gaps), "correct": np.asarray(correct, bool),
            "opportunities": np.asarray(k * scenes), "people": np.asarray(k), "identities": np.asarray(len(both))}


def precision_recall(pairs: dict[str, np.ndarray], threshold: float, margin: float = 0.0) -> tuple[float, float, int]:
    """(pair precision, pair recall, pairs accepted) at ``threshold`` / ``margin`` (precision 1.0 when none)."""
    keep = pairs["sim"] >= threshold
    if margin > 0:
        keep &= pairs["gap"] >= margin
    n = int(keep.sum())
    hits = int((pairs["correct"] & keep).sum())
    return (hits / n if n else 1.0), hits / float(pairs["opportunities"]), n


def choose(pairs: dict[str, np.ndarray], target_precision: float = DEFAULT_PRECISION,
           margins: Sequence[float] = DEFAULT_MARGINS) -> dict[str, Any]:
    """Pick (threshold, margin) on assigned ``pairs`` (see :func:`scene_pairs`): most recall at the target precision."""
    if not 0.0 < target_precision <= 1.0:
        raise UsageError(f"target precision must be in (0, 1], got {target_precision}")
    candidates = np.unique(pairs["sim"])
    best: dict[str, Any] | None = None
    fallback: dict[str, Any] | None = None
    curve = []
    for m in sorted(set(float(x) for x in margins)):
        reached_here = None
        for t in candidates:  # ascending: the first threshold that reaches the target has the most recall
            p, r, n = precision_recall(pairs, float(t), m)
            if n and (fallback is None or (p, r) > (fallback["precision"], fallback["recall"])):
                fallback = {"threshold": float(t), "margin": m, "precision": p, "recall": r}
            if n and p >= target_precision and reached_here is None:
                reached_here = {"threshold": float(t), "margin": m, "precision": p, "recall": r}
        if reached_here is not None:
            curve.append(reached_here)
            if best is None or reached_here["recall"] > best["recall"]:
                best = reached_here
    chosen = best if best is not None else fallback
    if chosen is None:
        raise UsageError("no assigned pairs to choose an operating point from")
    return {**chosen, "reached": best is not None, "target_precision": float(target_precision), "per_margin": curve}


def operating_point(feats: np.ndarray, pids: Sequence[int], modalities: Sequence[int],
                    target_precision: float = DEFAULT_PRECISION, margins: Sequence[float] = DEFAULT_MARGINS,
                    people: int = 6, scenes: int = 300, track_images: int = 4, seed: int = 0) -> dict[str, Any]:
    """The (threshold, margin) with the highest pair recall whose pair precision reaches ``target_precision``."""
    pairs = scene_pairs(feats, pids, modalities, people=people, scenes=scenes, track_images=track_images, seed=seed)
    chosen = choose(pairs, target_precision, margins)
    at_half = precision_recall(pairs, 0.5, 0.0)
    return {
        **chosen,
        "method": METHOD,
        "people_per_scene": int(pairs["people"]),
        "scenes": int(scenes),
        "track_images": int(track_images),
        "seed": int(seed),
        "identities": int(pairs["identities"]),  # seen in both modalities
        "at_default_0.5": {"precision": at_half[0], "recall": at_half[1]},
    }
