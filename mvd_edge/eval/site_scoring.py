"""Score the N-camera matcher's events against a synthetic site's ground truth.

The events are the JSONL of the site matcher (the site view of :mod:`mvd_edge.match.events`): a ``start`` line
naming the cameras (``{name: {"modality", "source", "fps"}}``), one ``sighting`` per
camera per processed frame for each track that has a global id and was detected in that
frame (``camera``, ``frame`` -- that camera's own 0-based frame index --, ``track``,
``global_id``, ``box`` ``[x, y, w, h]``), ``identity`` lines (informational, not scored)
and an ``end`` line whose ``frames`` gives each camera's processed frames as runs
``[[first_frame, count], ...]``. Without an ``end`` line (a run that was killed) a camera's
processed frames are 0 .. its last sighted frame (none when it has no sighting). The
ground truth is a ``gt.json`` of :func:`mvd_edge.synth.site.write_synth_site`.

Definitions (``iou`` = 0.5 and ``min_visibility`` = 0.5 by default):

* **Ground-truth identity of a sighting.** The person of the ground-truth box of that
  camera and frame with the highest IoU with the sighting's box, if that IoU is >= ``iou``
  (any visibility); otherwise it has none (a false detection). As in ``score-matches``
  (:mod:`mvd_edge.eval.scoring`), a sighting whose ground-truth box is less than
  ``min_visibility`` visible is **don't care** for IDF1: it is neither a true nor a false
  prediction there (it still counts for the pair scores and the box scores below).
* **Global IDF1** (all cameras together). True observations: the ground-truth boxes at
  least ``min_visibility`` visible in the processed frames, labelled with their person
  id. Predicted observations: the sightings that have a global id, less the don't-care
  ones, labelled with their global id (a track sighted twice in one frame counts once). A
  prediction and a true observation *co-occur* when they are on the same camera and frame
  and their boxes' IoU is >= ``iou`` (the standard rule: a prediction may co-occur with two
  persons whose boxes overlap); each ``(camera, frame, person, global id)`` counts once.
  Global ids are mapped one-to-one onto persons so as to maximise the co-occurrences
  (Hungarian, :func:`mvd_edge.eval.mot.id_mapping`); ``IDTP`` is that maximum, ``IDF1 =
  2 IDTP / (|predicted| + |true|)``, ``IDP = IDTP / |predicted|``, ``IDR = IDTP / |true|``.
  Per camera, the same three numbers on that camera's observations under the global
  mapping.
* **MOTA** (CLEAR-MOT, :mod:`mvd_edge.eval.mot`), per camera: the true observations are
  the objects and the predicted observations the hypotheses, the global id being the
  hypothesis id, frame by frame in the camera's frame order; an identity switch is a
  person whose matched global id on that camera changes. Overall: the counts (misses,
  false positives, switches, objects) summed over the cameras.
* **The standard scores.** The don't-care rule above is this project's (synthetic
  occlusions); without it -- one camera, ``min_visibility=0`` or every ground-truth box
  visible -- the global IDF1 / IDP / IDR and MOTA are the standard ones of a tracker whose
  track ids are the global ids (Ristani et al. 2016; Bernardin & Stiefelhagen 2008), as
  motmetrics and TrackEval compute them (``tests/test_mot_reference.py``);
  :func:`mvd_edge.eval.mot.score_mot` scores MOT-style rows directly.
* **Per camera pair** ``(a, b)``, ``a < b`` by name, every pair of the events' cameras
  (co-located or not, same modality or not). For camera ``c`` and person ``p``,
  ``g_c(p)`` is the most frequent global id among ``c``'s sightings whose ground-truth
  identity is ``p`` (ties: the smallest id). For a global id ``g`` and camera ``c``, its
  *dominant person* on ``c`` is the most frequent ground-truth identity among its sightings
  on ``c`` that have one (ties: the smallest id; none when no sighting has one).

  - **Pair recall** = persons with ``g_a(p) == g_b(p)`` (both existing) / persons at least
    ``min_visibility`` visible in some processed frame of ``a`` and in some processed
    frame of ``b`` (not necessarily at the same time: cameras at different places see a
    person at different times).
  - **Pair precision** = global ids sighted on both ``a`` and ``b`` whose dominant persons on
    ``a`` and on ``b`` exist and are the same / global ids sighted on both.

  Each pair has ``kind`` (``cross-modal`` when the two cameras' modalities differ, else
  ``same-modality``) and ``co_located`` (same place). A score with nothing to count is
  ``None``. **Totals** are micro-averages over pairs (sums of the counts), for all pairs,
  per kind, and for co-located pairs vs pairs across places.
* **Per camera boxes.** Box precision / recall of the sightings against the ground truth
  in the processed frames (:func:`mvd_edge.eval.scoring.score_boxes`: one-to-one on IoU,
  boxes below ``min_visibility`` are don't care) and the share of sightings that carry a
  global id.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.util import read_json
from mvd_edge.eval.mot import (
    Frame,
    MotCounts,
    accumulate,
    check_thresholds,
    id_mapping,
    id_scores,
    id_true_positives,
    make_frame,
)
from mvd_edge.eval.scoring import event_list, gt_file, gt_identity, score_boxes, warn_other_sources, xywh_to_xyxy

__all__ = ["format_site_table", "load_site_ground_truth", "score_site"]

KINDS = ("cross-modal", "same-modality")


def _check_site_gt(gt: dict[str, Any], where: str) -> None:
    cams, frames = gt.get("cameras"), gt.get("frames")
    if not isinstance(cams, dict) or not cams or not isinstance(frames, dict):
        raise UsageError(f"{where}: a site ground truth needs 'cameras' and 'frames' mappings")
    for name, cam in cams.items():
        if not isinstance(frames.get(name), list):
            raise UsageError(f"{where}: camera {name!r} has no frames")
        if int(cam.get("n_frames", -1)) != len(frames[name]):
            raise UsageError(f"{where}: camera {name!r} says {cam.get('n_frames')} frames but lists "
                             f"{len(frames[name])}")


def load_site_ground_truth(path: str | Path) -> dict[str, Any]:
    """Read the ``gt.json`` of a synthetic site (the file or its folder), checking its format
    (:data:`mvd_edge.synth.site.SITE_GT_FORMAT`). A two-camera ``synth-video`` ground truth is
    refused with a message that says so."""
    from mvd_edge.synth.site import SITE_GT_FORMAT
    from mvd_edge.synth.video import GT_FORMAT

    p = gt_file(path)
    gt = read_json(p, UsageError, "a site ground truth")
    fmt = gt.get("format") if isinstance(gt, dict) else type(gt).__name__
    if fmt == GT_FORMAT:
        raise UsageError(f"{p} is the ground truth of a two-camera synth-video pair, not of a site (format "
                         f"{SITE_GT_FORMAT!r}): score two-stream events with score-matches, or render a site")
    if fmt != SITE_GT_FORMAT:
        raise UsageError(f"{p} is not a site ground truth (format {fmt!r}, expected {SITE_GT_FORMAT!r})")
    _check_site_gt(gt, str(p))
    gt["_path"] = str(p)
    return gt


def _read_site_events(events: str | Path | list[dict[str, Any]]) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """The events, their site ``start`` line and how to name them in a message."""
    from mvd_edge.match.events import EVENT_SCHEMA_VERSION, event_view

    evs, where = event_list(events, "the site matcher")
    start = next((e for e in evs if e.get("event") == "start"), None)
    view = event_view(start)
    if view != "site":
        two = view == "pair" or any(e.get("event") == "match" for e in evs[:1000])
        why = ("two-stream `mvd-edge match --ir/--rgb` events: score them against a synth-video gt.json"
               if two else "no site 'start' line")
        schema = None if start is None else start.get("schema")
        raise UsageError(f"{where} are not site matcher events (schema {schema!r}, view {view!r}, expected "
                         f"{EVENT_SCHEMA_VERSION!r} view 'site'): {why}")
    assert start is not None  # a site view needs its start line
    return evs, start, where


def _most_common(counts: Counter) -> int | None:
    """The most frequent key, the smallest on ties; None for no counts."""
    if not counts:
        return None
    top = max(counts.values())
    return min(k for k, v in counts.items() if v == top)


def _same_most_common(a: Counter, b: Counter) -> bool:
    """Whether both have counts and the same most frequent key."""
    top = _most_common(a)
    return top is not None and top == _most_common(b)


def _ratio(hits: int, n: int) -> float | None:
    return hits / n if n else None


def score_site(events: str | Path | list[dict[str, Any]], gt: str | Path | dict[str, Any], iou: float = 0.5,
               min_visibility: float = 0.5) -> dict[str, Any]:
    """Global IDF1 and MOTA, per camera pair precision/recall and per camera box, IDF1 and MOTA
    scores of site matcher events (definitions in the module docstring).

    ``events``: a ``site/1`` JSONL path or its events as dicts. ``gt``: a site ``gt.json`` (or
    its folder) or its dict.

    Returns ``{"idf1", "idp", "idr", "idtp", "predicted", "true", "dont_care", "global_ids",
    "identities", "complete" (the events have an end line), "mota", "mot": {"matches", "fp",
    "fn", "num_switches", "objects", "predictions"} (CLEAR-MOT counts, summed over cameras;
    ``matches`` without the switches), "cameras": {name: {"modality", "location", "frames",
    "sightings", "with_global_id", "identified", "box_precision", "box_recall", "tp", "fp",
    "fn" (box scores), "idf1", "idp", "idr", "mota", "mot"}}, "pairs": [{"a", "b", "kind",
    "co_located", "precision", "recall", "precision_hits", "precision_n", "recall_hits",
    "recall_n"}, ...], "totals": {"all" | "cross-modal" | "same-modality" | "co-located" |
    "across-locations": {"precision", "recall", "precision_hits", "precision_n",
    "recall_hits", "recall_n"}}, "iou", "min_visibility"}``.
    """
    check_thresholds(iou, min_visibility)
    if not isinstance(gt, dict):
        gt = load_site_ground_truth(gt)
    else:
        _check_site_gt(gt, "the ground truth")
    evs, start, where = _read_site_events(events)
    gt_cams, gt_frames = gt["cameras"], gt["frames"]
    sightings = _sightings(evs, where)
    end = next((e for e in reversed(evs) if e.get("event") == "end"), None)
    cams, processed = _cameras_and_frames(start, end, sightings, gt, where)

    # ground-truth identity of each sighting, and whether it is don't care
    labelled = []  # (camera, frame, global id or None, pid or None, care, box)
    for (c, f, _track), (gid, box) in sightings.items():
        boxes = gt_frames[c][f]
        pid = gt_identity(box, boxes, iou)
        vis = next((float(b[5]) for b in boxes if int(b[0]) == pid), 1.0) if pid is not None else 1.0
        labelled.append((c, f, gid, pid, pid is None or vis >= min_visibility, box))

    # true and predicted observations, per camera and frame; CLEAR-MOT and co-occurrences
    true_obs: dict[tuple[str, int], dict[int, list[float]]] = defaultdict(dict)
    for c in cams:
        for f in processed[c]:
            for b in gt_frames[c][f]:
                if float(b[5]) >= min_visibility:
                    true_obs[(c, f)].setdefault(int(b[0]), [float(v) for v in b[1:5]])
    preds: dict[tuple[str, int], list[tuple[int, list[float]]]] = defaultdict(list)
    for c, f, gid, _pid, care, box in labelled:
        if gid is not None and care:
            preds[(c, f)].append((gid, box))
    mot = {c: accumulate(_camera_frames(c, true_obs, preds), iou) for c in cams}
    total = sum(mot.values(), MotCounts())
    mapping = id_mapping(total.pairs)
    idtp, n_pred, n_true = id_true_positives(total.pairs, mapping), total.predictions, total.objects
    per_cam = {c: _camera_scores(c, gt, processed[c], labelled, mot[c], id_true_positives(mot[c].pairs, mapping),
                                 iou, min_visibility) for c in cams}
    pairs = _pair_scores(cams, gt_cams, labelled, true_obs)
    return {
        **id_scores(idtp, n_pred, n_true, empty=0.0),
        "idtp": idtp, "predicted": n_pred, "true": n_true, "mota": total.mota, "mot": _mot_counts(total),
        "dont_care": sum(1 for s in labelled if s[2] is not None and not s[4]),
        "global_ids": len({s[2] for s in labelled if s[2] is not None}),
        "identities": len({p for obs in true_obs.values() for p in obs}), "complete": end is not None,
        "cameras": per_cam, "pairs": pairs, "totals": _totals(pairs), "iou": iou, "min_visibility": min_visibility,
    }


def _sightings(evs: list[dict[str, Any]], where: str) -> dict[tuple[str, int, int], tuple[int | None, list[float]]]:
    """``{(camera, frame, track): (global id, box)}`` of the sighting events (the first of duplicates)."""
    sightings: dict[tuple[str, int, int], tuple[int | None, list[float]]] = {}
    for i, e in enumerate(evs):
        if e.get("event") != "sighting":
            continue
        try:
            key = (str(e["camera"]), int(e["frame"]), int(e["track"]))
            gid = None if e.get("global_id") is None else int(e["global_id"])
            box = [float(v) for v in e["box"]][:4]
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{where}: sighting event #{i} is malformed ({exc!r}): it needs camera, frame, track, "
                             f"global_id and box [x, y, w, h]") from None
        sightings.setdefault(key, (gid, box))
    return sightings


def _cameras_and_frames(start: dict[str, Any], end: dict[str, Any] | None, sightings: dict, gt: dict[str, Any],
                        where: str) -> tuple[list[str], dict[str, list[int]]]:
    """The events' cameras (sorted) and each one's processed frames, checked against the ground truth."""
    gt_cams, gt_frames = gt["cameras"], gt["frames"]
    ev_cams = dict(start.get("cameras") or {})
    end_frames = end.get("frames") if end is not None else None
    if end_frames is not None and not isinstance(end_frames, dict):
        raise UsageError(f"{where}: the end event's 'frames' must map camera -> [[first_frame, count], ...]")
    names = set(ev_cams) | {c for c, _, _ in sightings} | set(end_frames or {})
    unknown = sorted(names - set(gt_cams))
    if unknown:
        raise UsageError(f"{where}: camera(s) {unknown} are not in the ground truth {gt.get('_path', '')} "
                         f"(its cameras: {sorted(gt_cams)}): these events are from another site")
    for c, spec in ev_cams.items():
        m = spec.get("modality") if isinstance(spec, dict) else None
        if m is not None and str(m) != gt_cams[c]["modality"]:
            raise UsageError(f"{where}: camera {c!r} is {m} in the events but {gt_cams[c]['modality']} in the "
                             f"ground truth: these events are from another site")
    warn_other_sources([(f"camera {c}", spec.get("source"), gt["cameras"][c].get("video")) for c, spec in ev_cams.items()
                        if isinstance(spec, dict) and Path(str(spec.get("source"))).is_file()], gt, "site")
    cams = sorted(names)
    sighted = {c: [f for cc, f, _ in sightings if cc == c] for c in cams}
    if end_frames is not None:
        processed = {c: sorted({int(r[0]) + k for r in end_frames.get(c) or [] for k in range(int(r[1]))}) for c in cams}
    else:
        processed = {c: list(range(max(sighted[c], default=-1) + 1)) for c in cams}
    for c in cams:
        n_gt = len(gt_frames[c])
        outside = [f for f in (*processed[c], *sighted[c]) if not 0 <= f < n_gt]
        if outside:
            bad = max(outside) if max(outside) >= n_gt else min(outside)
            raise UsageError(f"{where}: the events reach frame {bad} of camera {c!r} but the ground truth has "
                             f"{n_gt} frames (0..{n_gt - 1}) there: these events are from another site")
    return cams, processed


def _camera_scores(c: str, gt: dict[str, Any], processed: list[int], labelled: list, mot: MotCounts, idtp: int,
                   iou: float, min_visibility: float) -> dict[str, Any]:
    """One camera's row of :func:`score_site`'s ``cameras``."""
    cam = gt["cameras"][c]
    mine = [s for s in labelled if s[0] == c]
    pred_boxes: dict[int, list[np.ndarray]] = defaultdict(list)
    for _c, f, _gid, _pid, _care, box in mine:
        pred_boxes[f].append(xywh_to_xyxy(box))
    boxes = score_boxes({f: np.stack(b) for f, b in pred_boxes.items()}, gt["frames"][c], iou, min_visibility,
                        frames=processed)
    return {
        "modality": cam["modality"], "location": cam.get("location"),
        "frames": len(processed), "sightings": len(mine),
        "with_global_id": _ratio(sum(1 for s in mine if s[2] is not None), len(mine)),
        "identified": _ratio(sum(1 for s in mine if s[3] is not None), len(mine)),
        "box_precision": boxes["precision"], "box_recall": boxes["recall"],
        "tp": boxes["tp"], "fp": boxes["fp"], "fn": boxes["fn"],
        **id_scores(idtp, mot.predictions, mot.objects),
        "mota": mot.mota, "mot": _mot_counts(mot),
    }


def _pair_scores(cams: list[str], gt_cams: dict[str, Any], labelled: list,
                 true_obs: dict[tuple[str, int], dict[int, list[float]]]) -> list[dict[str, Any]]:
    """Precision and recall of every camera pair (definitions in the module docstring)."""
    gid_of_pid: dict[str, dict[int, Counter]] = {c: defaultdict(Counter) for c in cams}
    pid_of_gid: dict[str, dict[int, Counter]] = {c: defaultdict(Counter) for c in cams}
    for c, _f, gid, pid, _care, _box in labelled:
        if gid is None:
            continue
        counts = pid_of_gid[c][gid]  # created even when pid is None: the id was sighted on c
        if pid is not None:
            counts[pid] += 1
            gid_of_pid[c][pid][gid] += 1
    visible = {c: {p for (cc, _), obs in true_obs.items() if cc == c for p in obs} for c in cams}
    pairs = []
    for i, a in enumerate(cams):
        for b in cams[i + 1:]:
            both = visible[a] & visible[b]
            r_hits = sum(_same_most_common(gid_of_pid[a].get(p, Counter()), gid_of_pid[b].get(p, Counter())) for p in both)
            shared = set(pid_of_gid[a]) & set(pid_of_gid[b])
            p_hits = sum(_same_most_common(pid_of_gid[a][g], pid_of_gid[b][g]) for g in shared)
            kind = KINDS[0] if gt_cams[a]["modality"] != gt_cams[b]["modality"] else KINDS[1]
            pairs.append({"a": a, "b": b, "kind": kind,
                          "co_located": gt_cams[a].get("location") == gt_cams[b].get("location"),
                          "precision": _ratio(p_hits, len(shared)), "recall": _ratio(r_hits, len(both)),
                          "precision_hits": p_hits, "precision_n": len(shared), "recall_hits": r_hits,
                          "recall_n": len(both)})
    return pairs


def _totals(pairs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Micro-averages of the pair scores: all pairs, per kind, co-located and across locations."""
    groups = {"all": pairs, **{k: [p for p in pairs if p["kind"] == k] for k in KINDS},
              "co-located": [p for p in pairs if p["co_located"]],
              "across-locations": [p for p in pairs if not p["co_located"]]}
    totals = {}
    for name, rows in groups.items():
        t = {k: sum(p[k] for p in rows) for k in ("precision_hits", "precision_n", "recall_hits", "recall_n")}
        totals[name] = {"precision": _ratio(t["precision_hits"], t["precision_n"]),
                        "recall": _ratio(t["recall_hits"], t["recall_n"]), **t}
    return totals


def _camera_frames(c: str, true_obs: dict[tuple[str, int], dict[int, list[float]]],
                   preds: dict[tuple[str, int], list[tuple[int, list[float]]]]) -> list[Frame]:
    """Camera ``c``'s frames for :func:`mvd_edge.eval.mot.accumulate`, in frame order: the true
    observations (person id, box) and the predictions (global id, box) of each frame."""
    return [make_frame(list(true_obs.get((c, f), {}).items()), preds.get((c, f), []))
            for f in sorted({f for cc, f in (*true_obs, *preds) if cc == c})]


def _mot_counts(m: MotCounts) -> dict[str, int]:
    return {"matches": m.matches, "fp": m.fp, "fn": m.fn, "num_switches": m.num_switches, "objects": m.objects,
            "predictions": m.predictions}


def _fmt(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"


def format_site_table(result: dict[str, Any], table: str = "pairs") -> list[list[str]]:
    """Rows of a table of :func:`score_site`'s result, the column names first.

    ``table="pairs"``: one row per camera pair, then one per total (``all``, per kind,
    co-located, across locations): pair, kind, co-located, precision (hits/n), recall (hits/n).
    ``table="cameras"``: one row per camera: modality, place, frames, sightings, box
    precision, box recall, MOTA, identity switches, IDF1 / IDP / IDR under the global mapping;
    then an ``all`` row with the overall MOTA and switches and the global IDF1.

    For rich: ``t = Table(*rows[0]); [t.add_row(*r) for r in rows[1:]]``.
    """
    def counted(row: dict[str, Any], key: str) -> str:
        return f"{_fmt(row[key])} ({row[f'{key}_hits']}/{row[f'{key}_n']})"

    if table == "pairs":
        return [["pair", "kind", "co-located", "precision", "recall"],
                *([f"{p['a']}-{p['b']}", p["kind"], "yes" if p["co_located"] else "no", counted(p, "precision"),
                   counted(p, "recall")] for p in result["pairs"]),
                *([f"total: {name}", "", "", counted(t, "precision"), counted(t, "recall")]
                  for name, t in result["totals"].items())]
    if table == "cameras":
        return [["camera", "modality", "place", "frames", "sightings", "box precision", "box recall", "MOTA",
                 "ID switches", "IDF1", "IDP", "IDR"],
                *([c, s["modality"], str(s["location"]), str(s["frames"]), str(s["sightings"]),
                   _fmt(s["box_precision"]), _fmt(s["box_recall"]), _fmt(s["mota"]), str(s["mot"]["num_switches"]),
                   _fmt(s["idf1"]), _fmt(s["idp"]), _fmt(s["idr"])] for c, s in result["cameras"].items()),
                ["all", "", "", "", str(sum(s["sightings"] for s in result["cameras"].values())), "", "",
                 _fmt(result["mota"]), str(result["mot"]["num_switches"]), _fmt(result["idf1"]), _fmt(result["idp"]),
                 _fmt(result["idr"])]]
    raise ValueError(f"table must be 'pairs' or 'cameras', got {table!r}")
