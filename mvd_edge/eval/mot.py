"""Standard multi-object tracking scores: CLEAR-MOT (MOTA) and the identity scores (IDF1).

The definitions are the usual ones, as ``motmetrics`` and TrackEval compute them
(``tests/test_mot_reference.py`` checks both sequences that motmetrics ships):

* A ground-truth box and a hypothesis box of one frame **can pair** when their IoU is
  >= ``iou`` (boxes are ``x, y, w, h``; the right edge is ``x + w``).
* **CLEAR-MOT** (Bernardin & Stiefelhagen 2008), frame by frame in frame order: an object
  whose last matched hypothesis id is in this frame and can still pair with it keeps it;
  the other objects and hypotheses are paired by a Hungarian assignment that makes as many
  pairs as possible and, among those, minimises the summed ``1 - IoU``. A pair is a
  **switch** when the object's last matched hypothesis (in any earlier frame) has another
  id, else a **match**. Objects left unpaired are misses (``fn``), hypotheses left unpaired
  false positives (``fp``). ``MOTA = 1 - (fn + fp + num_switches) / objects``, ``objects``
  being the ground-truth boxes. ``matches`` does not include the switches (motmetrics'
  ``num_matches``): ``matches + num_switches + fn == objects``.
* **IDF1** (Ristani et al. 2016): hypothesis ids are mapped one to one onto object ids so as
  to maximise the frames where the two can pair (Hungarian); ``IDTP`` is that maximum,
  ``IDF1 = 2 IDTP / (predictions + objects)``, ``IDP = IDTP / predictions``,
  ``IDR = IDTP / objects``.

:func:`score_mot` scores MOT-style rows; :func:`accumulate` and :func:`id_mapping` are the
two steps, which :func:`mvd_edge.eval.site_scoring.score_site` runs per camera of a site.
:func:`motmetrics_reference` computes the same numbers with motmetrics (when installed), to
print beside them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.errors import MissingExtra, UsageError

__all__ = ["MotCounts", "accumulate", "check_thresholds", "id_mapping", "id_scores", "id_true_positives",
           "make_frame", "motmetrics_reference", "score_mot"]

# one frame: object ids, their boxes [N, 4] x y w h, hypothesis ids, their boxes [M, 4]
Frame = tuple[Sequence[int], np.ndarray, Sequence[int], np.ndarray]


@dataclass
class MotCounts:
    """CLEAR-MOT counts of a sequence and the co-occurrences the identity scores need.

    ``pairs[(hypothesis id, object id)]``: the frames where the two can pair (each frame
    once)."""

    objects: int = 0
    predictions: int = 0
    matches: int = 0
    num_switches: int = 0
    fp: int = 0
    fn: int = 0
    pairs: Counter = field(default_factory=Counter)

    @property
    def mota(self) -> float | None:
        """``1 - (fn + fp + num_switches) / objects``; None without objects."""
        return 1 - (self.fn + self.fp + self.num_switches) / self.objects if self.objects else None

    def __add__(self, other: MotCounts) -> MotCounts:
        return MotCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))


def make_frame(objects: Sequence[tuple[int, Sequence[float]]], hyps: Sequence[tuple[int, Sequence[float]]]) -> Frame:
    """A :data:`Frame` of the ``(id, [x, y, w, h])`` of its objects and of its hypotheses."""
    return ([i for i, _ in objects], np.array([b for _, b in objects], np.float64).reshape(-1, 4),
            [i for i, _ in hyps], np.array([b for _, b in hyps], np.float64).reshape(-1, 4))


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from mvd_edge.match.detect import box_iou

    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    return box_iou(np.hstack([a[:, :2], a[:, :2] + a[:, 2:]]), np.hstack([b[:, :2], b[:, :2] + b[:, 2:]]))


def accumulate(frames: Iterable[Frame], iou: float = 0.5) -> MotCounts:
    """CLEAR-MOT counts and co-occurrences of a sequence of frames, given in frame order
    (definitions in the module docstring)."""
    counts = MotCounts()
    last: dict[int, int] = {}  # object id -> its last matched hypothesis id
    for gt_ids, gt_boxes, hyp_ids, hyp_boxes in frames:
        n, m = len(gt_ids), len(hyp_ids)
        counts.objects += n
        counts.predictions += m
        ious = _iou_xywh(gt_boxes, hyp_boxes)
        ok = ious >= iou
        counts.pairs.update({(hyp_ids[j], gt_ids[i]) for i, j in zip(*np.nonzero(ok))})
        paired: dict[int, int] = {}  # object index -> hypothesis index
        for i, g in enumerate(gt_ids):  # 1. last frame's correspondences that still hold
            j = next((j for j in range(m) if hyp_ids[j] == last.get(g) and ok[i, j]
                      and j not in paired.values()), None)
            if j is not None:
                paired[i] = j
        rows = [i for i in range(n) if i not in paired]
        cols = [j for j in range(m) if j not in paired.values()]
        if rows and cols:  # 2. Hungarian on the rest: most pairs, then least 1 - IoU
            sub = np.ix_(rows, cols)
            cost = np.where(ok[sub], 1.0 - ious[sub], len(rows) + len(cols) + 1.0)
            for r, k in zip(*linear_sum_assignment(cost)):
                i, j = rows[r], cols[k]
                if ok[i, j]:
                    if gt_ids[i] in last and last[gt_ids[i]] != hyp_ids[j]:
                        counts.num_switches += 1
                    paired[i] = j
        for i, j in paired.items():
            last[gt_ids[i]] = hyp_ids[j]
        counts.matches += len(paired)
        counts.fn += n - len(paired)
        counts.fp += m - len(paired)
    counts.matches -= counts.num_switches
    return counts


def id_mapping(pairs: Counter) -> dict[int, int]:
    """The one-to-one map of hypothesis ids onto object ids that maximises the summed
    co-occurrences ``pairs[(hypothesis id, object id)]`` (Hungarian); ids with no
    co-occurrence with their partner stay unmapped."""
    hyps = sorted({h for h, _ in pairs})
    objs = sorted({g for _, g in pairs})
    if not hyps:
        return {}
    hi, gi = {h: k for k, h in enumerate(hyps)}, {g: k for k, g in enumerate(objs)}
    m = np.zeros((len(hyps), len(objs)))
    for (h, g), n in pairs.items():
        m[hi[h], gi[g]] = n
    rows, cols = linear_sum_assignment(-m)
    return {hyps[r]: objs[k] for r, k in zip(rows, cols) if m[r, k] > 0}


def id_true_positives(pairs: Counter, mapping: dict[int, int] | None = None) -> int:
    """IDTP: the co-occurrences ``pairs`` that ``mapping`` (default: :func:`id_mapping` of them) keeps."""
    return sum(pairs[hg] for hg in (id_mapping(pairs) if mapping is None else mapping).items())


def id_scores(idtp: int, predictions: int, objects: int, empty: float | None = None) -> dict[str, float | None]:
    """``{"idf1", "idp", "idr"}`` of ``idtp`` identity true positives; a ratio with nothing to
    count is ``empty``."""
    return {"idf1": 2 * idtp / (predictions + objects) if predictions + objects else empty,
            "idp": idtp / predictions if predictions else empty, "idr": idtp / objects if objects else empty}


def check_thresholds(iou: float, min_visibility: float = 0.0) -> None:
    """:class:`UsageError` unless ``0 < iou <= 1`` and ``0 <= min_visibility <= 1`` (the scorers' two thresholds)."""
    if not 0 < iou <= 1:
        raise UsageError(f"iou must be in (0, 1], got {iou}")
    if not 0 <= min_visibility <= 1:
        raise UsageError(f"min_visibility must be in [0, 1], got {min_visibility}")


def _by_frame(gt_rows: Iterable[Sequence[float]], hyp_rows: Iterable[Sequence[float]],
              frames: Iterable[int] | None) -> Iterator[tuple[int, Frame]]:
    """``(frame, (object ids, boxes, hypothesis ids, boxes))`` for each scored frame in order."""
    by: dict[int, tuple[list, list]] = defaultdict(lambda: ([], []))
    for side, rows in ((0, gt_rows), (1, hyp_rows)):
        for k, row in enumerate(rows):
            try:
                f, i, x, y, w, h = (float(v) for v in list(row)[:6])
            except (TypeError, ValueError) as exc:
                raise UsageError(f"{('ground-truth', 'hypothesis')[side]} row #{k} is not (frame, id, x, y, w, h): "
                                 f"{row!r} ({exc})") from None
            by[int(f)][side].append((int(i), (x, y, w, h)))
    for f in sorted(by) if frames is None else sorted({int(f) for f in frames}):
        yield f, make_frame(*by.get(f, ([], [])))


def score_mot(gt_rows: Iterable[Sequence[float]], hyp_rows: Iterable[Sequence[float]], iou: float = 0.5,
              frames: Iterable[int] | None = None) -> dict[str, Any]:
    """MOTA and IDF1 of a tracker's boxes against ground truth (definitions in the module docstring).

    Rows are MOT-style ``(frame, id, x, y, w, h, ...)`` (frame numbers as in the file, boxes
    top-left corner and size; further columns are ignored). ``frames``: score only these
    frames (e.g. the frames that were labelled); rows of other frames are ignored. Default:
    every frame with a row.

    Returns ``{"mota", "idf1", "idp", "idr", "num_switches", "fp", "fn", "matches" (without
    the switches), "objects", "predictions", "idtp", "frames", "iou"}``; a ratio with nothing
    to count is None.
    """
    check_thresholds(iou)
    scored = list(_by_frame(gt_rows, hyp_rows, frames))
    counts = accumulate((fr for _, fr in scored), iou)
    idtp = id_true_positives(counts.pairs)
    return {"mota": counts.mota, **id_scores(idtp, counts.predictions, counts.objects),
            "num_switches": counts.num_switches, "fp": counts.fp, "fn": counts.fn, "matches": counts.matches,
            "objects": counts.objects, "predictions": counts.predictions, "idtp": idtp, "frames": len(scored),
            "iou": iou}


def _motmetrics():
    try:
        import motmetrics
    except ModuleNotFoundError as exc:
        if exc.name != "motmetrics":
            raise
        raise MissingExtra("the motmetrics reference needs motmetrics: pip install motmetrics") from exc
    if not hasattr(np, "asfarray"):  # motmetrics 1.4 calls np.asfarray, which NumPy 2 removed
        np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)
    return motmetrics


def motmetrics_reference(gt_rows: Iterable[Sequence[float]], hyp_rows: Iterable[Sequence[float]],
                         iou: float = 0.5, frames: Iterable[int] | None = None) -> dict[str, Any]:
    """:func:`score_mot`'s numbers (same arguments, same frames, same keys but ``frames`` and
    ``iou``) computed by motmetrics, to print beside them. Needs ``pip install motmetrics``
    (:class:`~mvd_edge.core.errors.MissingExtra` otherwise); pandas and motmetrics are imported
    here only."""
    check_thresholds(iou)
    mm = _motmetrics()
    acc = mm.MOTAccumulator(auto_id=False)
    for f, (gt_ids, gt_boxes, hyp_ids, hyp_boxes) in _by_frame(gt_rows, hyp_rows, frames):
        acc.update(gt_ids, hyp_ids, mm.distances.iou_matrix(gt_boxes, hyp_boxes, max_iou=1.0 - iou), frameid=f)
    names = {"mota": "mota", "idf1": "idf1", "idp": "idp", "idr": "idr", "num_switches": "num_switches",
             "fp": "num_false_positives", "fn": "num_misses", "matches": "num_matches", "objects": "num_objects",
             "predictions": "num_predictions", "idtp": "idtp"}
    s = mm.metrics.create().compute(acc, metrics=list(names.values()), return_dataframe=False)
    out: dict[str, Any] = {}
    for key, name in names.items():
        v = float(s[name])
        out[key] = None if not np.isfinite(v) else v if key in ("mota", "idf1", "idp", "idr") else int(round(v))
    return out
