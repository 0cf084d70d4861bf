"""Score matcher events against synthetic ground truth (``mvd-edge score-matches EVENTS GT``).

:func:`score_events` is the one front end: a site's ``gt.json`` scores the events with
:func:`mvd_edge.eval.site_scoring.score_site`, a synth-video pair's with :func:`score_matches`
(below). The ground-truth helpers both use (:func:`gt_identity`, :func:`xywh_to_xyxy`,
:func:`box_counts`, :func:`score_boxes`) are here.

Definitions of the pair scores (all over the frame pairs the matcher processed; ``iou`` = 0.5 and
``min_visibility`` = 0.5 by default):

* **Ground-truth identity of a reported box.** In frame ``f`` of stream ``s``, a box
  reported by the matcher takes the identity of the ground-truth box of that frame with
  the highest IoU, if that IoU is >= ``iou`` (any visibility); otherwise it has none.
* **Reported pair.** Each ``match`` event: ``(ir_frame, rgb_frame, ir_box, rgb_box,
  global_id)``. It is **correct** when both boxes have a ground-truth identity and it is
  the same one.
* **Opportunity.** A processed frame pair ``(ir_frame, rgb_frame)`` and an identity ``p``
  that is visible in both frames with ``visibility >= min_visibility``.
* **Pair precision** = correct reported pairs / reported pairs.
* **Pair recall** = opportunities covered by at least one correct reported pair of that
  identity in that frame pair / opportunities.
* **IDF1 of global identities** (cross-modal). Observations: for every opportunity, its
  two ground-truth boxes (IR and RGB) form the truth set, labelled with the identity; for
  every reported pair, its two boxes form the prediction set, labelled with the global id
  (a box reported twice in a frame counts once), except the boxes of correct pairs that
  are not opportunities (the person is less than ``min_visibility`` visible in one of the
  frames): those are "don't care", neither true nor false. A predicted observation and a true one
  *co-occur* when they are in the same stream and frame and the predicted box has that
  true identity (IoU rule above). Global ids are mapped one-to-one onto identities so as
  to maximise the co-occurrences (Hungarian); ``IDTP`` is that maximum,
  ``IDF1 = 2 IDTP / (|predicted| + |true|)``, with ``IDP = IDTP / |predicted|`` and
  ``IDR = IDTP / |true|`` (as in Ristani et al., 2016, on these observation sets).

The processed frame pairs come from the ``end`` event's ``steps``; an events file
without one (a run that was killed) is scored on the pairs ``(k, k)`` for every frame
``k`` from 0 to the last reported frame.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.errors import UsageError
from mvd_edge.core.util import read_json
from mvd_edge.eval.mot import check_thresholds, id_scores, id_true_positives
from mvd_edge.eval.operating_point import unit

__all__ = ["GroundTruthWarning", "best_setting", "box_counts", "embedding_separability", "gt_identity",
           "is_site_ground_truth", "load_ground_truth", "meets_target", "score_boxes", "score_events", "score_matches",
           "xywh_to_xyxy"]


def load_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read a ``gt.json`` written by ``mvd-edge synth-video`` (see :mod:`mvd_edge.synth.video`)."""
    from mvd_edge.synth.video import GT_FORMAT

    p = gt_file(path)
    if not p.is_file():
        raise FileNotFoundError(f"ground truth not found: {p}")
    gt = read_json(p, UsageError, "a synth-video ground truth", fmt=GT_FORMAT)
    for s in ("ir", "rgb"):
        if s not in gt.get("streams", {}):
            raise UsageError(f"{p}: no '{s}' stream")
    gt["_path"] = str(p)  # where it was read from: score_matches checks the events came from its videos
    return gt


def gt_file(path: str | Path) -> Path:
    """A ``gt.json`` given as the file or its folder."""
    p = Path(path)
    return p / "gt.json" if p.is_dir() else p


class GroundTruthWarning(UserWarning):
    """The events do not seem to come from the videos this ground truth describes."""


def warn_other_sources(sources: list[tuple[str, Any, Any]], gt: dict[str, Any], what: str) -> None:
    """Warn (:class:`GroundTruthWarning`) for each ``(label, events' source, ground truth's video)`` whose
    source is another file than that video beside ``gt.json`` (URLs and unnamed videos are not checked)."""
    if "_path" not in gt:
        return
    for label, src, video in sources:
        if not src or not video or "://" in str(src):
            continue
        want = (Path(gt["_path"]).parent / video).resolve()
        if Path(str(src)).resolve() != want:
            warnings.warn(f"the events' {label} source is {src}, but this ground truth describes {want}: scores "
                          f"against another {what}'s ground truth are meaningless", GroundTruthWarning, stacklevel=4)


def event_list(events: str | Path | list[dict[str, Any]], runner: str) -> tuple[list[dict[str, Any]], str]:
    """The events (a JSONL path or the dicts) and how to name them in a message; :class:`UsageError` when
    there are none (``runner``: what should have written them)."""
    from mvd_edge.match.events import read_events

    where = "the events" if isinstance(events, list) else str(events)
    evs = events if isinstance(events, list) else list(read_events(events))
    if not evs:
        raise UsageError(f"{where}: no events (an empty file: did {runner} run to its first frame?)")
    return evs, where


def check_events_match_ground_truth(evs: list[dict[str, Any]], gt: dict[str, Any], n_gt: int) -> None:
    """Refuse events that run past the ground truth's last frame; warn (:func:`warn_other_sources`) when
    their sources are other files than the videos beside ``gt.json``."""
    last = max((int(e.get(f"{s}_frame", -1)) for e in evs if e.get("event") == "match" for s in ("ir", "rgb")),
               default=-1)
    if last >= n_gt:
        raise UsageError(f"the events reach frame {last} but the ground truth {gt.get('_path', '')} has {n_gt} "
                         f"frames: these events are from another video")
    start = next((e for e in evs if e.get("event") == "start"), None)
    if start is not None:  # a camera index (digits) is no file to compare
        warn_other_sources([(s, start.get(f"{s}_source"), gt["streams"][s].get("video")) for s in ("ir", "rgb")
                            if not str(start.get(f"{s}_source")).isdigit()], gt, "video")


def xywh_to_xyxy(box: list[float]) -> np.ndarray:
    """``[x, y, w, h]`` (events, ground truth) -> float32 ``[x1, y1, x2, y2]``."""
    x, y, w, h = (float(v) for v in box[:4])
    return np.array([x, y, x + w, y + h], np.float32)


def gt_xyxy(gts: list[list[float]]) -> np.ndarray:
    """Ground-truth boxes ``[[id, x, y, w, h, visibility], ...]`` -> float32 ``[N, 4]`` x1, y1, x2, y2."""
    return np.array([xywh_to_xyxy(b[1:5]) for b in gts], np.float32).reshape(-1, 4)


def gt_identity(box: list[float] | None, gts: list[list[float]], iou_min: float) -> int | None:
    """The person id of the ground-truth box (``[id, x, y, w, h, visibility]``) with the highest IoU
    with ``box`` (``[x, y, w, h]``), if that IoU is >= ``iou_min``; else (or for no box) None."""
    if box is None or not gts:
        return None
    from mvd_edge.match.detect import box_iou

    iou = box_iou(xywh_to_xyxy(box)[None], gt_xyxy(gts))[0]
    j = int(iou.argmax())
    return int(gts[j][0]) if iou[j] >= iou_min else None


def is_site_ground_truth(gt: str | Path) -> bool:
    """A site's gt.json (``mvd-edge-site-gt/1``, the file or its folder) rather than a video pair's."""
    from mvd_edge.synth.site import SITE_GT_FORMAT

    p = gt_file(gt)
    if not p.is_file():
        return False
    with p.open() as f:
        return SITE_GT_FORMAT in f.read(4096)


def score_events(events: str | Path | list[dict[str, Any]], gt: str | Path, iou: float = 0.5,
                 min_visibility: float = 0.5) -> tuple[str, dict[str, Any]]:
    """Score a pair's or a site's events against its ground truth: ``("site", score_site(...))``
    for a site's ``gt.json``, else ``("pair", score_matches(...))``."""
    if is_site_ground_truth(gt):
        from mvd_edge.eval.site_scoring import score_site  # it builds on this module

        return "site", score_site(events, gt, iou=iou, min_visibility=min_visibility)
    return "pair", score_matches(events, gt, iou=iou, min_visibility=min_visibility)


def box_counts(pred: np.ndarray, gts: list[list[float]], iou: float = 0.5,
               min_visibility: float = 0.5) -> tuple[int, int, int]:
    """``(tp, fp, fn)`` of one frame's predicted boxes against its ground truth.

    ``pred``: ``[N, 4]`` x1, y1, x2, y2. ``gts``: ``[[id, x, y, w, h, visibility], ...]``.
    Predictions and ground-truth boxes are paired one to one (Hungarian on IoU, pairs below
    ``iou`` dropped). A ground-truth box less than ``min_visibility`` visible is "don't
    care": missing it is no miss, and a prediction paired with it is neither true nor false.
    """
    from mvd_edge.match.detect import box_iou

    pred = np.asarray(pred, np.float32).reshape(-1, 4)
    g = gt_xyxy(gts)
    care = np.array([float(b[5]) >= min_visibility for b in gts], bool)
    tp = 0
    matched_p, matched_g = np.zeros(len(pred), bool), np.zeros(len(g), bool)
    if len(pred) and len(g):
        m = box_iou(pred, g)
        rows, cols = linear_sum_assignment(-np.where(m >= iou, m, 0.0))  # pairs below iou cannot count
        for r, c in zip(rows, cols):
            if m[r, c] >= iou:
                matched_p[r], matched_g[c] = True, True
                tp += int(care[c])
    return tp, int((~matched_p).sum()), int((care & ~matched_g).sum())  # fp: unpaired predictions


def score_boxes(pred: dict[int, np.ndarray], gt_boxes: list[list[list[float]]], iou: float = 0.5,
                min_visibility: float = 0.5, frames: list[int] | None = None) -> dict[str, Any]:
    """Box precision / recall of a detector over frames (see :func:`box_counts`).

    ``pred``: ``{frame (0-based): [N, 4] x1y1x2y2}``; ``gt_boxes``: one stream's ``boxes``
    from ``gt.json``; ``frames``: the frames scored (default: every frame in ``pred``).
    """
    check_thresholds(iou, min_visibility)
    tp = fp = fn = 0
    for f in (sorted(pred) if frames is None else frames):
        if not 0 <= f < len(gt_boxes):
            raise UsageError(f"frame {f} is not in the ground truth ({len(gt_boxes)} frames)")
        a, b, c = box_counts(pred.get(f, np.zeros((0, 4), np.float32)), gt_boxes[f], iou, min_visibility)
        tp, fp, fn = tp + a, fp + b, fn + c
    return {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "tp": tp, "fp": fp, "fn": fn, "iou": iou, "min_visibility": min_visibility}


def score_matches(events: str | Path | list[dict[str, Any]], gt: str | Path | dict[str, Any], iou: float = 0.5,
                  min_visibility: float = 0.5) -> dict[str, Any]:
    """Pair precision/recall and IDF1 of global identities (definitions in the module docstring).

    Returns ``{"precision", "recall", "idf1", "idp", "idr", "reported_pairs", "correct_pairs",
    "opportunities", "covered", "frames", "global_ids", "identities", "idtp", "per_identity":
    {id: {"opportunities", "covered", "recall", "global_ids"}}, "iou", "min_visibility"}``.
    """
    check_thresholds(iou, min_visibility)
    if not isinstance(gt, dict):
        gt = load_ground_truth(gt)
    evs, _ = event_list(events, "`mvd-edge match --events`")
    boxes = {s: gt["streams"][s]["boxes"] for s in ("ir", "rgb")}
    n_gt = min(len(boxes["ir"]), len(boxes["rgb"]))
    check_events_match_ground_truth(evs, gt, n_gt)

    def frame_boxes(s: str, f: int) -> list[list[float]]:
        return boxes[s][f] if 0 <= f < len(boxes[s]) else []

    matches = [e for e in evs if e.get("event") == "match"]
    frame_pairs = _frame_pairs(evs, matches, n_gt)
    opp = _opportunities(frame_pairs, frame_boxes, min_visibility)
    opp_of = Counter(pid for ids in opp.values() for pid in ids)  # identity -> its opportunities
    n_opp = sum(opp_of.values())
    correct, covered, pred_obs = _reported_pairs(matches, frame_boxes, opp, iou)
    # IDF1: co-occurrence of (global id, identity) among true observations
    true_obs = {(s, f, pid) for (fi, fr), ids in opp.items() for pid in ids for s, f in (("ir", fi), ("rgb", fr))}
    co = Counter((gid, pid) for (s, f, _), (gid, pid) in pred_obs.items() if pid is not None and (s, f, pid) in true_obs)
    idtp = id_true_positives(co)
    n_pred, n_true = len(pred_obs), len(true_obs)
    covered_of = Counter(pid for _, _, pid in covered)
    per_id = {pid: {"opportunities": opp_of[pid], "covered": covered_of[pid], "recall": covered_of[pid] / opp_of[pid],
                    "global_ids": sorted({g for (g, p) in co if p == pid})} for pid in sorted(opp_of)}
    return {
        "precision": correct / len(matches) if matches else 0.0, "recall": len(covered) / n_opp if n_opp else 0.0,
        **id_scores(idtp, n_pred, n_true, empty=0.0),
        "reported_pairs": len(matches), "correct_pairs": correct, "opportunities": n_opp, "covered": len(covered),
        "frames": len(frame_pairs), "global_ids": len({g for g, _ in pred_obs.values()}), "identities": len(opp_of), "idtp": idtp,
        "per_identity": per_id, "iou": iou, "min_visibility": min_visibility,
    }


def _frame_pairs(evs: list[dict[str, Any]], matches: list[dict[str, Any]], n_gt: int) -> list[tuple[int, int]]:
    """The (ir_frame, rgb_frame) pairs processed: the end event's ``steps``, else ``(k, k)`` up to the last match."""
    end = next((e for e in reversed(evs) if e.get("event") == "end"), None)
    if end is not None and end.get("steps") is not None:  # runs [ir_frame, rgb_frame, count] (match.events.StepRuns)
        return [(int(a) + k, int(b) + k) for a, b, n in end["steps"] for k in range(int(n))]
    last = max((int(e["ir_frame"]) for e in matches), default=-1)
    return [(k, k) for k in range(min(last + 1, n_gt))]


def _opportunities(frame_pairs: list[tuple[int, int]], frame_boxes, min_visibility: float) -> dict:
    """``{(ir_frame, rgb_frame): {identities visible enough in both}}`` (pairs with none left out)."""
    opp: dict[tuple[int, int], set[int]] = {}
    for fi, fr in frame_pairs:
        both = ({int(b[0]) for b in frame_boxes("ir", fi) if b[5] >= min_visibility}
                & {int(b[0]) for b in frame_boxes("rgb", fr) if b[5] >= min_visibility})
        if both:
            opp[(fi, fr)] = both
    return opp


def _reported_pairs(matches: list[dict[str, Any]], frame_boxes, opp: dict, iou: float):
    """``(correct pairs, covered opportunities {(ir_frame, rgb_frame, id)}, predicted observations
    {(stream, frame, box): (global id, its ground-truth identity)})`` of the ``match`` events."""
    correct = 0
    covered: set[tuple[int, int, int]] = set()
    pred_obs: dict[tuple[str, int, tuple[float, ...]], tuple[int, int | None]] = {}
    for e in matches:
        fi, fr = int(e["ir_frame"]), int(e["rgb_frame"])
        pi = gt_identity(e.get("ir_box"), frame_boxes("ir", fi), iou)
        pr = gt_identity(e.get("rgb_box"), frame_boxes("rgb", fr), iou)
        gid = int(e["global_id"])
        if pi is not None and pi == pr:
            correct += 1
            if pi not in opp.get((fi, fr), ()):
                continue  # a correct pair of a person not visible enough in both frames: don't care
            covered.add((fi, fr, pi))
        for s, f, b, p in (("ir", fi, e.get("ir_box"), pi), ("rgb", fr, e.get("rgb_box"), pr)):
            if b is not None:
                pred_obs.setdefault((s, f, tuple(round(float(v), 1) for v in b)), (gid, p))
    return correct, covered, pred_obs


def embedding_separability(embedder, video: str | Path, *, every: int = 2, max_overlap: float = 0.3,
                           min_visibility: float = 0.6, crop_margin: float = 0.08) -> dict[str, Any]:
    """How well an embedder tells the people of a synth-video pair apart across modalities,
    independent of tracking, thresholds and hysteresis (an upper bound on what the matcher
    can do with it).

    Every ``every``-th frame of both streams, each ground-truth person box that is at least
    ``min_visibility`` visible and at most ``max_overlap`` covered by another box is cut out
    as the matcher cuts it (:func:`mvd_edge.core.preprocess.box_crop`) and embedded. Per stream
    and identity, the mean of its L2-normalised features is its *identity descriptor*.

    Returns ``{"crop_top1": {"ir->rgb", "rgb->ir"}`` (share of crops whose nearest identity
    descriptor of the other stream, by cosine, is their own), ``"identity_assignment"``
    (share of identities that a one-to-one Hungarian assignment of the IR descriptors to the
    RGB descriptors gets right), ``"chance"`` (1 / identities), ``"same_cosine"`` (mean
    cosine of an identity's IR and RGB descriptors), ``"other_cosine"`` (mean over
    identities of the highest cosine to another identity's descriptor in the other stream),
    ``"misassigned"`` (the ``[ir_id, rgb_id]`` pairs that assignment got wrong),
    ``"look_alikes"`` (the ground truth's pairs of people who look alike across modalities,
    ``[]`` for older files), ``"crops": {"ir", "rgb"}``, ``"identities"``}``.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    root = Path(video)
    gt = load_ground_truth(root)
    root = root if root.is_dir() else root.parent
    spec = getattr(embedder, "spec", None)
    aspect = spec.width / spec.height if spec is not None else None  # as the matcher: the box's own ratio
    feats: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for s in ("ir", "rgb"):
        crops, pids = _clear_crops(root / gt["streams"][s]["video"], gt["streams"][s]["boxes"], every, max_overlap,
                                   min_visibility, crop_margin, aspect)
        feats[s] = unit(np.asarray(embedder.embed(crops), np.float32))  # an Embedder batches by its max_batch
        labels[s] = np.array(pids, np.int64)
    ids = sorted(set(labels["ir"].tolist()) & set(labels["rgb"].tolist()))
    if not ids:
        raise UsageError(f"{root}: no identity has a clear crop in both streams")
    desc = {s: unit(np.stack([feats[s][labels[s] == p].mean(axis=0) for p in ids])) for s in ("ir", "rgb")}
    top1 = {}
    for s, o in (("ir", "rgb"), ("rgb", "ir")):
        keep = np.isin(labels[s], ids)
        nearest = np.asarray(ids)[(feats[s][keep] @ desc[o].T).argmax(axis=1)]
        top1[f"{s}->{o}"] = float((nearest == labels[s][keep]).mean())
    sim = desc["ir"] @ desc["rgb"].T
    rows, cols = linear_sum_assignment(-sim)
    off = sim - 2.0 * np.eye(len(ids))
    return {
        "crop_top1": top1,
        "identity_assignment": float(np.mean(rows == cols)),
        "misassigned": [[ids[r], ids[c]] for r, c in zip(rows.tolist(), cols.tolist()) if r != c],
        "look_alikes": [[int(a), int(b)] for a, b in gt.get("look_alikes", [])],
        "chance": 1.0 / len(ids),
        "same_cosine": float(np.mean(np.diag(sim))),
        "other_cosine": float(np.mean(off.max(axis=1))) if len(ids) > 1 else float("nan"),
        "crops": {s: int(np.isin(labels[s], ids).sum()) for s in ("ir", "rgb")},
        "identities": len(ids),
    }


def _clear_crops(path: Path, frames: list, every: int, max_overlap: float, min_visibility: float,
                 crop_margin: float, aspect: float | None) -> tuple[list[np.ndarray], list[int]]:
    """The matcher's crops of the clear ground-truth boxes of every ``every``-th frame of a video, with their ids."""
    import cv2

    from mvd_edge.core.preprocess import box_crop, box_overlap

    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise FileNotFoundError(f"cannot open {path}")
    crops, pids = [], []
    try:
        for k, boxes in enumerate(frames):
            ok, img = cap.read()
            if not ok:
                break
            if k % every or not boxes:
                continue
            xyxy = gt_xyxy(boxes)
            for b, box, ov in zip(boxes, xyxy, box_overlap(xyxy)):
                if b[5] < min_visibility or ov > max_overlap:
                    continue
                crop = box_crop(img, box, crop_margin, aspect)
                if crop is not None:
                    crops.append(crop)
                    pids.append(int(b[0]))
    finally:
        cap.release()
    return crops, pids


def meets_target(row: dict[str, Any], target: tuple[float, float]) -> bool:
    """Whether a scored matcher run (``{"precision", "recall", ...}``) reaches ``target = (precision, recall)``."""
    return row["precision"] >= target[0] and row["recall"] >= target[1]


def best_setting(grids: list[list[dict[str, Any]]], key: str = "idf1",
                 target: tuple[float, float] | None = None) -> tuple[float, float]:
    """The matcher setting to use, chosen on validation videos.

    ``grids`` has one list per video of rows ``{"threshold", "margin", "precision", "recall",
    "idf1"}`` (the same settings in each). Returns the ``(threshold, margin)`` of the best
    mean ``key`` over the videos; with ``target = (precision, recall)``, first of the most
    videos on which the setting reaches both. Ties go to the higher mean precision, then to
    the first setting in the first video's order. NaN scores count as the worst.
    """
    if not grids or not grids[0]:
        raise ValueError("best_setting needs at least one video with at least one setting")
    order = [(r["threshold"], r["margin"]) for r in grids[0]]
    per: dict[tuple[float, float], list[dict[str, Any]]] = {k: [] for k in order}
    for rows in grids:
        seen = {(r["threshold"], r["margin"]): r for r in rows}
        if len(seen) != len(rows) or set(seen) != set(order):
            raise ValueError("best_setting: every video must have been run with the same settings, once each")
        for k in order:
            per[k].append(seen[k])

    def mean(rows: list[dict[str, Any]], field: str) -> float:
        m = float(np.mean([float(r[field]) for r in rows]))
        return -math.inf if math.isnan(m) else round(m, 9)  # rounded: equal but for float noise is a tie

    def rank(k: tuple[float, float]) -> tuple[float, float, float]:
        rows = per[k]
        met = 0.0 if target is None else float(sum(meets_target(r, target) for r in rows))
        return (met, mean(rows, key), mean(rows, "precision"))

    return max(order, key=rank)  # max keeps the first of equal keys
