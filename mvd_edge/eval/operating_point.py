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

The site matcher (:mod:`mvd_edge.match.site`) also matches tracks of the *same* modality (a
person seen by one RGB camera and later by another): ``kind="same"`` draws each scene's two
sides from one modality (RGB or IR, alternating scene by scene), the two tracks of a person
from disjoint crops, and gives the same-modality operating point (``same_modality`` in the
sidecar's operating point).

The *fast* point (``fast`` in the sidecar's operating point) is where the matcher may stop
waiting: the (threshold, margin) that reaches pair precision :data:`FAST_PRECISION` on tracks of
only :data:`FAST_TRACK_IMAGES` crops (the fewest a track is matched on, the matcher's ``bank.min_features``),
accepting at least :data:`FAST_MIN_PAIRS` pairs.
A pair that strong is reported after one step instead of ``hysteresis`` steps; an engine whose
tracks never reach that precision gets ``reached: False`` and ``match`` keeps the k-step wait.

The *early* point (``fast_early``) is the same on tracks of :data:`FAST_EARLY_TRACK_IMAGES` crop:
where a track that has not yet gathered ``min_features`` crops (a person who just came into
view, or came back as a new track) may already be paired, at its first crops. Single crops are
noisy, so a weak engine rarely reaches it (the demo's do not), and then new tracks wait for
their ``min_features`` crops as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality

METHOD = "scene-assignment/1"
DEFAULT_PRECISION = 0.9
DEFAULT_MARGINS = (0.0, 0.02, 0.05)
# crops averaged into a simulated track: the matcher's banks average a track's last 30 crops (and an
# EMA of all), so 4-crop tracks (the first default) were noisier than real ones and gave thresholds
# that cost recall: on the demo's engines and synth-video seeds 0-4, 16 raised the default-flag pair
# recall from 0.19 to 0.32 (MVD INT8, ground-truth boxes) and 0.41 to 0.45 (student), IDF1 up on 9 of
# the 10 engine x seed pairs, precision down 0.01-0.08 (README, "calibrate-threshold")
DEFAULT_TRACK_IMAGES = 16
# the fast-pairing point: pair precision on the shortest tracks the matcher pairs (min_features crops)
FAST_PRECISION = 0.99
FAST_TRACK_IMAGES = 3
FAST_MARGINS = (0.0, 0.02, 0.05, 0.1)
# the early point: the fast point on single-crop tracks, for tracks younger than min_features crops
FAST_EARLY_TRACK_IMAGES = 1
# ... on at least this many accepted pairs: on fewer, one pair more or less right moves the precision by
# more than the 0.01 the point is about (the demo's MVD engine "reached" 0.99 on 20 pairs without it)
FAST_MIN_PAIRS = 100


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def scene_pairs(feats: np.ndarray, pids: Sequence[int], modalities: Sequence[int], people: int = 6,
                scenes: int = 300, track_images: int = DEFAULT_TRACK_IMAGES, seed: int = 0, kind: str = "cross") -> dict[str, np.ndarray]:
    """Assigned pairs over random scenes -> ``{"sim", "gap", "correct"}`` arrays and the pair count.

    ``kind``: ``cross`` (IR tracks x RGB tracks) or ``same`` (two tracks of one modality per
    person, from disjoint crops; needs 2 crops of a person in that modality).

    ``gap``: the pair's similarity minus the best other similarity of its IR row and RGB column
    (``+inf`` when the scene has one person). ``opportunities``: people per scene x scenes, the
    recall denominator (every person of a scene could be matched).
    """
    feats, pids, mods = np.asarray(feats, np.float64), np.asarray(pids), np.asarray(modalities)
    if feats.ndim != 2 or len(feats) != len(pids) or len(pids) != len(mods):
        raise UsageError(f"need [N, D] features with N identities and modalities, got {feats.shape}, "
                         f"{len(pids)}, {len(mods)}")
    if kind not in ("cross", "same"):
        raise UsageError(f"kind must be 'cross' or 'same', got {kind!r}")
    if people < 1 or scenes < 1 or track_images < 1:
        raise UsageError(f"people, scenes and track_images must be >= 1, got {people}, {scenes}, {track_images}")
    by_mod: dict[Modality, dict[int, np.ndarray]] = {m: {} for m in Modality}
    for p in np.unique(pids):
        for m in Modality:
            idx = np.flatnonzero((pids == p) & (mods == int(m)))
            if len(idx) >= (2 if kind == "same" else 1):
                by_mod[m][int(p)] = idx
    if kind == "cross":
        pools = [sorted(set(by_mod[Modality.INFRARED]) & set(by_mod[Modality.VISIBLE]))]
        what = "seen in both modalities"
    else:
        same_mods = [m for m in Modality if len(by_mod[m]) >= 2]
        pools = [sorted(by_mod[m]) for m in same_mods]
        what = "with 2 or more crops of one modality"
    if not pools or max(len(pool) for pool in pools) < 2:
        raise UsageError(f"the operating point needs at least 2 identities {what}, got "
                         f"{max((len(pool) for pool in pools), default=0)}")
    k = min(people, min(len(pool) for pool in pools))  # every pool has >= 2 identities here
    rng = np.random.default_rng(seed)
    sims, gaps, correct = [], [], []

    def track(idx: np.ndarray) -> np.ndarray:
        pick = rng.choice(idx, size=min(track_images, len(idx)), replace=False)
        return unit(feats[pick].mean(0))

    def two_tracks(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        perm = rng.permutation(idx)
        half = len(perm) // 2
        return unit(feats[perm[:min(track_images, half)]].mean(0)), unit(feats[perm[half:][:track_images]].mean(0))

    for n_scene in range(scenes):
        if kind == "cross":
            who = rng.choice(pools[0], size=k, replace=False)
            ir = np.stack([track(by_mod[Modality.INFRARED][int(p)]) for p in who])
            rgb = np.stack([track(by_mod[Modality.VISIBLE][int(p)]) for p in who])
        else:  # one modality per scene, alternating; "ir"/"rgb" below are just the two sides
            m = same_mods[n_scene % len(same_mods)]
            who = rng.choice(sorted(by_mod[m]), size=k, replace=False)
            sides = [two_tracks(by_mod[m][int(p)]) for p in who]
            ir, rgb = np.stack([a for a, _ in sides]), np.stack([b for _, b in sides])
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
            "opportunities": np.asarray(k * scenes), "people": np.asarray(k),
            "identities": np.asarray(len(set().union(*pools)))}


def precision_recall(pairs: dict[str, np.ndarray], threshold: float, margin: float = 0.0) -> tuple[float, float, int]:
    """(pair precision, pair recall, pairs accepted) at ``threshold`` / ``margin`` (precision 1.0 when none)."""
    keep = pairs["sim"] >= threshold
    if margin > 0:
        keep &= pairs["gap"] >= margin
    n = int(keep.sum())
    hits = int((pairs["correct"] & keep).sum())
    return (hits / n if n else 1.0), hits / float(pairs["opportunities"]), n


def choose(pairs: dict[str, np.ndarray], target_precision: float = DEFAULT_PRECISION,
           margins: Sequence[float] = DEFAULT_MARGINS, min_pairs: int = 1) -> dict[str, Any]:
    """Pick (threshold, margin) on assigned ``pairs`` (see :func:`scene_pairs`): most recall at the target precision.

    A threshold reaches the target only if it accepts at least ``min_pairs`` pairs (a precision
    measured on a handful of pairs says little); ``accepted`` in the answer is that count."""
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
            row = {"threshold": float(t), "margin": m, "precision": p, "recall": r, "accepted": n}
            if n and (fallback is None or (p, r) > (fallback["precision"], fallback["recall"])):
                fallback = row
            if n >= min_pairs and p >= target_precision and reached_here is None:
                reached_here = row
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
                    people: int = 6, scenes: int = 300, track_images: int = DEFAULT_TRACK_IMAGES, seed: int = 0) -> dict[str, Any]:
    """The (threshold, margin) with the highest pair recall whose pair precision reaches ``target_precision``;
    ``same_modality``: the same for same-modality pairs (``kind="same"``), or None when the data
    has too few crops per person for it."""
    draw = partial(scene_pairs, feats, pids, modalities, people=people, scenes=scenes)
    pairs = draw(track_images=track_images, seed=seed)
    chosen = choose(pairs, target_precision, margins)
    at_half = precision_recall(pairs, 0.5, 0.0)
    try:
        same = choose(draw(track_images=track_images, seed=seed + 1, kind="same"), target_precision, margins)
        same = {k: same[k] for k in ("threshold", "margin", "precision", "recall", "reached")}
    except UsageError:
        same = None
    return {
        **chosen,
        "method": METHOD,
        "people_per_scene": int(pairs["people"]),
        "scenes": int(scenes),
        "track_images": int(track_images),
        "seed": int(seed),
        "identities": int(pairs["identities"]),  # seen in both modalities
        "at_default_0.5": {"precision": at_half[0], "recall": at_half[1]},
        "same_modality": same,
        "fast": _fast_point(draw(track_images=FAST_TRACK_IMAGES, seed=seed + 2), FAST_TRACK_IMAGES),
        "fast_early": _fast_point(draw(track_images=FAST_EARLY_TRACK_IMAGES, seed=seed + 3), FAST_EARLY_TRACK_IMAGES),
    }


def _fast_point(pairs: dict[str, np.ndarray], track_images: int) -> dict[str, Any]:
    """The fast-pairing point (precision :data:`FAST_PRECISION` on :data:`FAST_MIN_PAIRS`+ pairs) of ``pairs``."""
    c = choose(pairs, FAST_PRECISION, FAST_MARGINS, min_pairs=FAST_MIN_PAIRS)
    return {**{k: c[k] for k in ("threshold", "margin", "precision", "recall", "reached", "accepted")},
            "target_precision": FAST_PRECISION, "track_images": track_images, "min_pairs": FAST_MIN_PAIRS}
