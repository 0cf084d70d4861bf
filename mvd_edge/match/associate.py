"""Cross-modal association: which IR track is which RGB track, held steady over time.

Each step (:meth:`CrossModalAssociator.update`):

1. cosine similarity ``S[i, r]`` between the descriptors of the eligible IR tracks and
   RGB tracks (their feature banks); pairs already reported get ``stickiness`` added, so
   a held match is not flipped by noise;
2. one-to-one assignment maximising the total similarity (Hungarian,
   ``scipy.optimize.linear_sum_assignment``); assigned pairs with ``S >= threshold`` are
   this step's *candidates* (with ``margin`` > 0, a candidate must also beat every other
   similarity of its IR track and of its RGB track by ``margin``: a relative test that
   does not depend on the model's cosine scale);
3. hysteresis: a candidate pair is *reported* (gets a global id, ``start``) once it has
   been a candidate in ``k`` consecutive steps and neither of its tracks is in another
   reported pair; a reported pair is *dropped* (``end``) after it failed to be a
   candidate in ``k`` consecutive steps in which both its tracks were eligible, or at
   once when one of its tracks ends. While one of its tracks is not eligible (e.g. not
   detected for a few frames) a reported pair is *dormant*: held as it is (no evidence
   either way), but it gives way (``superseded``) to a new pair of its eligible track that
   has held for k steps (the person came back into the other view as a new track).
   With ``fast_threshold`` set, a candidate whose similarity reaches it (and, with
   ``fast_margin`` > 0, beats the runner-up by that much) needs only ``fast_hysteresis``
   steps: evidence strong enough that waiting adds nothing. ``calibrate-threshold`` measures
   that point per engine (pair precision 0.99 on tracks of 3 crops); an engine that never
   reaches it keeps the k-step wait for every pair.
   *Early* tracks (``update(..., early=...)``: tracks that have not yet gathered the features an
   ordinary match needs) are left out of that assignment. After it, an early track may pair
   with a track no candidate claimed, where their similarity reaches ``early_threshold`` (and
   ``threshold``) and beats the runner-up by ``early_margin``, the most similar such pairs
   first: a candidate reported after ``fast_hysteresis`` steps. So a young track never changes
   the established tracks' assignment. The engine's ``fast_early`` point (pair precision 0.99 on
   single-crop tracks) sets it; None (the default, and engines that do not reach it) leaves
   early tracks out altogether.

Global identities: a reported pair takes the global id one of its tracks carried in an
earlier pair that ended because the *other* track ended (the older id if both did), so a
person who leaves one camera and comes back keeps their id through the other camera's
track; a pair dropped for low similarity was probably wrong and passes its id on to no one.
A pair of two new tracks is compared with the held pairs whose two tracks are both out of
sight (same-modality cosine of each side, averaged): at or above ``reid_threshold`` it
supersedes the most similar one and keeps its id (the person's tracks restarted in both
streams while the old ones still coast). Otherwise it is compared the same way with recently
ended global ids and takes the best one back; otherwise a new id is issued. The ended ids
live in a :class:`mvd_edge.gallery.IdentityMemory` (exact numpy search; a faiss shortlist past
``memory_faiss_above`` entries, with the same answers).

:class:`PairPolicy` is this rule as the association policy of a
:class:`~mvd_edge.match.pipeline.Matcher` of the two cameras ``ir`` and ``rgb``: it writes the pair
view of the events (:mod:`~mvd_edge.match.events`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.errors import UsageError
from mvd_edge.gallery.memory import IdentityMemory
from mvd_edge.match.config import AssociationConfig
from mvd_edge.match.events import StepRuns, box_xywh, start_event

if TYPE_CHECKING:  # annotations only: the associator itself needs no OpenCV
    from mvd_edge.match.sources import FramePacket
    from mvd_edge.match.track import Track

__all__ = ["STREAMS", "CrossModalAssociator", "PairPolicy", "PairUpdate", "ReportedPair", "reportable"]

STREAMS = ("ir", "rgb")


@dataclass
class ReportedPair:
    ir_track: int
    rgb_track: int
    global_id: int
    similarity: float
    fails: int = 0
    steps: int = 0


@dataclass(frozen=True)
class PairUpdate:
    """A change: ``kind`` is ``start`` or ``end``; ``reason`` for ends: ``similarity``
    (failed k steps), ``track_ended`` (a track was removed), ``track_split`` (a track was given a
    new id: its appearance changed), ``superseded`` (a dormant pair replaced by a new pair of one
    of its tracks, or, with both its tracks out of sight, by a new pair of two new tracks that
    takes its global id) or ``shutdown``."""

    kind: str
    ir_track: int
    rgb_track: int
    global_id: int
    similarity: float
    reason: str = ""


def _runner_up(s: np.ndarray, a: int, b: int) -> float:
    """The best similarity of row ``a`` or column ``b`` other than ``s[a, b]`` (-inf if none)."""
    row = np.delete(s[a], b)
    col = np.delete(s[:, b], a)
    rest = np.concatenate([row, col])
    return float(rest.max()) if rest.size else float("-inf")


class CrossModalAssociator:
    """See the module docstring; ``config``: :class:`~mvd_edge.match.config.AssociationConfig`, whose fields
    say what each setting does (``hysteresis`` is k) and where their ranges are checked."""

    def __init__(self, config: AssociationConfig | None = None):
        c = config or AssociationConfig()
        self.fast_threshold = c.fast_threshold
        self.fast_margin, self.fast_k = c.fast_margin, c.fast_hysteresis
        self.early_threshold, self.early_margin = c.early_threshold, c.early_margin
        self.threshold, self.k, self.stickiness = c.threshold, c.hysteresis, c.stickiness
        self.margin = c.margin
        self.reid_threshold, self.max_gallery = c.reid_threshold, c.reid_memory
        self._memory_faiss_above = c.reid_memory_faiss_above
        self.reported: dict[tuple[int, int], ReportedPair] = {}
        self.streaks: dict[tuple[int, int], int] = {}
        self.track_gid: dict[tuple[str, int], int] = {}
        self._gallery: IdentityMemory | None = None  # ended gids (made at the first one: it knows the dim)
        self._active_desc: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._next_gid = 1

    @property
    def global_ids_issued(self) -> int:
        return self._next_gid - 1

    def pairs(self) -> list[ReportedPair]:
        return list(self.reported.values())

    def update(self, ir_ids: list[int], ir_desc: np.ndarray, rgb_ids: list[int], rgb_desc: np.ndarray,
               early: tuple[set[int], set[int]] | None = None) -> list[PairUpdate]:
        """One step with the eligible tracks' descriptors (float32 ``[K, D]``, L2-normalised); ``early``:
        the ids among them (IR, RGB) that are early tracks (see the module docstring)."""
        changes: list[PairUpdate] = []
        sims, cand, fast = {}, {}, set()  # fast: the candidates strong enough for the short wait
        ir_d: dict[int, np.ndarray] = {}
        rgb_d: dict[int, np.ndarray] = {}
        if ir_ids and rgb_ids:
            sims, cand, fast = self._candidates(ir_ids, ir_desc, rgb_ids, rgb_desc, early or (set(), set()))
            ir_d = {t: np.asarray(ir_desc[i], np.float32) for i, t in enumerate(ir_ids)}
            rgb_d = {t: np.asarray(rgb_desc[j], np.float32) for j, t in enumerate(rgb_ids)}
        # held pairs: refresh, count a failure, or wait (a track not eligible now: no evidence either way)
        for key, p in list(self.reported.items()):
            p.steps += 1
            if key in cand:
                p.fails = 0
                p.similarity = cand[key]
                self._active_desc[p.global_id] = (ir_d[key[0]], rgb_d[key[1]])
            elif key[0] in ir_d and key[1] in rgb_d:
                p.fails += 1
                p.similarity = sims[key] if key in sims else float(ir_d[key[0]] @ rgb_d[key[1]])
                if p.fails >= self.k:
                    changes.append(self._end(key, "similarity"))
        changes.extend(self._promote(cand, fast, ir_d, rgb_d))
        return changes

    def _candidates(self, ir_ids: list[int], ir_desc: np.ndarray, rgb_ids: list[int], rgb_desc: np.ndarray,
                    early: tuple[set[int], set[int]]) -> tuple[dict, dict, set]:
        """This step's assignment: ``(similarity of each assigned pair, the candidates among them with
        their similarity, the candidates strong enough for the short wait)`` (steps 1-2 and early tracks)."""
        early_ir, early_rgb = early
        sims: dict[tuple[int, int], float] = {}
        cand: dict[tuple[int, int], float] = {}
        fast: set[tuple[int, int]] = set()
        s = np.asarray(ir_desc, np.float32) @ np.asarray(rgb_desc, np.float32).T
        bonus = np.zeros_like(s)
        ir_pos = {t: i for i, t in enumerate(ir_ids)}
        rgb_pos = {t: j for j, t in enumerate(rgb_ids)}
        for (i, r) in self.reported:
            if i in ir_pos and r in rgb_pos:
                bonus[ir_pos[i], rgb_pos[r]] = self.stickiness
        y_ir = np.array([t in early_ir for t in ir_ids], bool)
        y_rgb = np.array([t in early_rgb for t in rgb_ids], bool)
        # 1. the established tracks, assigned as if there were no early tracks
        er, ec = np.flatnonzero(~y_ir), np.flatnonzero(~y_rgb)
        claimed_ir, claimed_rgb = set(), set()  # tracks of this step's candidates
        if len(er) and len(ec):
            rows, cols = linear_sum_assignment(-(s + bonus)[np.ix_(er, ec)])
            for a, b in zip(er[rows], ec[cols]):
                key = (ir_ids[a], rgb_ids[b])
                sims[key] = float(s[a, b])
                held = s[a, b] + bonus[a, b]
                gap = held - _runner_up(s, a, b)
                if held >= self.threshold and (self.margin <= 0.0 or gap >= self.margin):
                    cand[key] = float(s[a, b])
                    claimed_ir.add(a)
                    claimed_rgb.add(b)
                    if (self.fast_threshold is not None and s[a, b] >= self.fast_threshold
                            and (self.fast_margin <= 0.0 or gap >= self.fast_margin)):
                        fast.add(key)
        # 2. early tracks: only with tracks no candidate claimed, only at the early point (and the
        # threshold), strongest first; such a pair needs only the short wait
        if self.early_threshold is not None and (y_ir.any() or y_rgb.any()):
            ok = (y_ir[:, None] | y_rgb[None, :]) & (s >= max(self.threshold, self.early_threshold))
            for a, b in sorted(zip(*np.nonzero(ok)), key=lambda ab: (-s[ab], ab)):
                if a in claimed_ir or b in claimed_rgb:
                    continue
                if self.early_margin > 0.0 and s[a, b] - _runner_up(s, a, b) < self.early_margin:
                    continue
                key = (ir_ids[a], rgb_ids[b])
                sims[key] = cand[key] = float(s[a, b])
                fast.add(key)
                claimed_ir.add(a)
                claimed_rgb.add(b)
        return sims, cand, fast

    def _promote(self, cand: dict, fast: set, ir_d: dict, rgb_d: dict) -> list[PairUpdate]:
        """Count the candidates' streaks and report those that held long enough (taking a global id)."""
        changes: list[PairUpdate] = []
        self.streaks = {key: self.streaks.get(key, 0) + 1 for key in cand if key not in self.reported}
        # a track is busy while its reported pair is active (both tracks eligible now); a pair
        # with a track not eligible is dormant and gives way to a new pair that has held k steps
        active = {key for key in self.reported if key[0] in ir_d and key[1] in rgb_d}
        busy_ir = {i for i, _ in active}
        busy_rgb = {r for _, r in active}
        for key in sorted(self.streaks, key=lambda k: -cand[k]):
            i, r = key
            need = self.fast_k if key in fast else self.k
            if self.streaks[key] >= need and i not in busy_ir and r not in busy_rgb:
                for old in [q for q in self.reported if q[0] == i or q[1] == r]:
                    changes.append(self._end(old, "superseded"))
                gid = None
                if (("ir", i) not in self.track_gid and ("rgb", r) not in self.track_gid
                        and (lost := self._lost_pair(ir_d[i], rgb_d[r], ir_d, rgb_d)) is not None):
                    gid = self.reported[lost].global_id  # the person's two tracks both restarted
                    self._active_desc.pop(gid, None)  # the id goes on: not into the memory of ended ids
                    changes.append(self._end(lost, "superseded"))
                if gid is None:
                    gid = self._global_id(i, r, ir_d.get(i), rgb_d.get(r))
                self.reported[key] = ReportedPair(i, r, gid, cand[key])
                self.track_gid[("ir", i)] = gid
                self.track_gid[("rgb", r)] = gid
                self._active_desc[gid] = (ir_d[i], rgb_d[r])
                busy_ir.add(i)
                busy_rgb.add(r)
                del self.streaks[key]
                changes.append(PairUpdate("start", i, r, gid, cand[key]))
        return changes

    def remove_track(self, stream: str, track_id: int, reason: str = "track_ended") -> list[PairUpdate]:
        """A tracker ended a track (or split it: ``reason="track_split"``): end its pair and forget it
        (``stream``: ``ir``/``rgb``)."""
        if stream not in ("ir", "rgb"):
            raise ValueError(f"stream must be 'ir' or 'rgb', got {stream!r}")
        idx = 0 if stream == "ir" else 1
        changes = [self._end(key, reason) for key in list(self.reported) if key[idx] == track_id]
        self.streaks = {k: v for k, v in self.streaks.items() if k[idx] != track_id}
        self.track_gid.pop((stream, track_id), None)
        return changes

    def close(self) -> list[PairUpdate]:
        """End every reported pair (at the end of a run)."""
        return [self._end(key, "shutdown") for key in list(self.reported)]

    # ------------------------------------------------------------------ internals
    def _end(self, key: tuple[int, int], reason: str) -> PairUpdate:
        p = self.reported.pop(key)
        if reason == "similarity":  # the pair was probably wrong: its tracks do not carry its id on
            for k in (("ir", key[0]), ("rgb", key[1])):
                if self.track_gid.get(k) == p.global_id:
                    del self.track_gid[k]
        desc = self._active_desc.pop(p.global_id, None)
        if desc is not None and p.global_id not in {q.global_id for q in self.reported.values()}:
            if self.max_gallery > 0:
                if self._gallery is None:
                    self._gallery = IdentityMemory(desc[0].shape[0], parts=2, capacity=self.max_gallery,
                                                   faiss_above=self._memory_faiss_above)
                self._gallery.put(p.global_id, *desc)
        return PairUpdate("end", p.ir_track, p.rgb_track, p.global_id, p.similarity, reason)

    def _lost_pair(self, ir_desc: np.ndarray, rgb_desc: np.ndarray, ir_d: dict, rgb_d: dict) -> tuple[int, int] | None:
        """The held pair neither of whose tracks is eligible now (the person is out of sight in both
        streams) that looks most like a new pair of two new tracks -- the same-modality cosine of each
        side, averaged, at or above ``reid_threshold`` -- or None."""
        best, best_score = None, self.reid_threshold
        for key, p in self.reported.items():
            desc = self._active_desc.get(p.global_id)
            if key[0] in ir_d or key[1] in rgb_d or desc is None:
                continue
            score = 0.5 * (float(ir_desc @ desc[0]) + float(rgb_desc @ desc[1]))
            if score >= best_score:
                best, best_score = key, score
        return best

    def _global_id(self, i: int, r: int, ir_desc: np.ndarray | None, rgb_desc: np.ndarray | None) -> int:
        in_use = {p.global_id for p in self.reported.values()}
        prior = [g for g in (self.track_gid.get(("ir", i)), self.track_gid.get(("rgb", r)))
                 if g is not None and g not in in_use]
        if prior:
            gid = min(prior)
            if self._gallery is not None:
                self._gallery.pop(gid)
            return gid
        if ir_desc is not None and rgb_desc is not None and self._gallery is not None and len(self._gallery):
            hit = self._gallery.take(ir_desc, rgb_desc, threshold=self.reid_threshold)
            if hit is not None:
                return hit[0]
        gid = self._next_gid
        self._next_gid += 1
        return gid


def reportable(t: Track | None, coast: int) -> bool:
    """Whether track ``t`` has a box to report this frame: it was detected, or the detector has
    missed it for at most ``coast`` frames and the tracker predicts where it is (a Kalman track;
    ids from a box file predict nothing)."""
    if t is None:
        return False
    return t.time_since_update == 0 or (t.kalman is not None and t.time_since_update <= coast)


class PairPolicy:
    """The pair rule for a :class:`~mvd_edge.match.pipeline.Matcher` of the cameras ``ir`` and ``rgb``.

    Each step the tracks that have ``bank.min_features`` features and were detected within
    ``association.max_gap`` steps (with an early point set, also the tracks detected now that are
    still gathering their first features) go to the :class:`CrossModalAssociator`. Events (the pair
    view): ``pair_start`` / ``pair_end`` for its changes (ended and split tracks included), then a
    ``match`` for each reported pair whose two tracks have a box to report. ``pair_times``: the
    events also carry the RGB frame's time (set for streams paired by time)."""

    def bind(self, matcher) -> None:
        if set(matcher.cameras) != set(STREAMS):
            raise UsageError(f"the pair rule needs the cameras 'ir' and 'rgb', got {sorted(matcher.cameras)}")
        self.m, self.c = matcher, matcher.config
        self.associator = CrossModalAssociator(self.c.association)
        self.changes: list[PairUpdate] = []  # since the last step's events
        self.pair_times = False
        self.runs = StepRuns()  # the (ir_frame, rgb_frame) pairs processed

    def track_new(self, camera: str, track_id: int) -> None:
        pass

    def track_removed(self, camera: str, track_id: int, reason: str) -> None:
        self.changes.extend(self.associator.remove_track(camera, track_id, reason=reason))

    def associate(self, packets: dict[str, FramePacket], tracks: dict[str, list[Track]]) -> list[dict[str, Any]]:
        c, banks = self.c, self.m.banks
        ir, rgb = packets["ir"], packets["rgb"]
        self.runs.add(ir.index, rgb.index)
        eligible = {s: [tr.id for tr in tracks[s] if tr.time_since_update <= c.association.max_gap
                        and banks[s].count(tr.id) >= c.bank.min_features] for s in STREAMS}
        early = {s: [] for s in STREAMS}
        if c.association.early_threshold is not None:  # tracks detected now, still gathering their first features
            early = {s: [tr.id for tr in tracks[s] if tr.time_since_update == 0
                         and 0 < banks[s].count(tr.id) < c.bank.min_features] for s in STREAMS}
        ids = {s: eligible[s] + early[s] for s in STREAMS}
        changes, self.changes = self.changes, []
        changes.extend(self.associator.update(ids["ir"], banks["ir"].descriptors(ids["ir"]),
                                              ids["rgb"], banks["rgb"].descriptors(ids["rgb"]),
                                              early=(set(early["ir"]), set(early["rgb"]))))
        by_id = {s: {tr.id: tr for tr in tracks[s]} for s in STREAMS}
        events = [self._event("pair_" + ch.kind, ir, rgb, ch.ir_track, ch.rgb_track, ch.global_id, ch.similarity,
                              by_id, reason=ch.reason if ch.kind == "end" else None) for ch in changes]
        coast = c.association.report_coast
        for p in self.associator.pairs():
            if reportable(by_id["ir"].get(p.ir_track), coast) and reportable(by_id["rgb"].get(p.rgb_track), coast):
                events.append(self._event("match", ir, rgb, p.ir_track, p.rgb_track, p.global_id, p.similarity, by_id,
                                          coast=coast))
        return events

    def _event(self, kind: str, ir: FramePacket, rgb: FramePacket, i: int, r: int, gid: int, sim: float,
               by_id: dict[str, dict[int, Track]], reason: str | None = None, coast: int = 0) -> dict[str, Any]:
        ti, tr = by_id["ir"].get(i), by_id["rgb"].get(r)
        ev = {"event": kind, "frame": self.m.frame, "ir_frame": ir.index, "rgb_frame": rgb.index,
              "time": round(float(ir.time), 4), "ir_track": int(i), "rgb_track": int(r), "global_id": int(gid),
              "similarity": round(float(sim), 4),
              "ir_box": box_xywh(ti.box) if reportable(ti, coast) else None,
              "rgb_box": box_xywh(tr.box) if reportable(tr, coast) else None}
        if self.pair_times:
            ev["rgb_time"] = round(float(rgb.time), 4)
        predicted = [s for s, t in (("ir", ti), ("rgb", tr)) if reportable(t, coast) and t.time_since_update > 0]
        if predicted:
            ev["predicted"] = predicted
        if reason is not None:
            ev["reason"] = reason
        return ev

    # ------------------------------------------------------------------ the pair view of a run (Runner)
    need_all = True  # a step needs both frames; the run ends when one source ends

    def start_event(self, runner) -> dict[str, Any]:
        srcs = runner.sources
        self.pair_times = not runner.sync.lockstep
        fields = {"pairing": "time", "warning": runner.sync.warning} if self.pair_times else {}
        cams = {s: {"modality": s, "source": srcs[s].spec.label, "fps": srcs[s].fps} for s in STREAMS}
        return start_event("pair", cams, self.m.embedder, self.c.as_dict(), **fields,
                           ir_source=srcs["ir"].spec.label, rgb_source=srcs["rgb"].spec.label,
                           fps={s: srcs[s].fps for s in STREAMS}, detector=self._detector_names())

    def _detector_names(self) -> dict[str, str]:
        return {s: getattr(self.m.detectors[s], "name", type(self.m.detectors[s]).__name__) for s in STREAMS}

    def crops(self, ev: dict[str, Any]) -> list[tuple]:
        """``(modality, camera, frame, global id, box)`` of the people an event names: both of a ``match``."""
        if ev["event"] != "match":
            return []
        return [(s, s, ev[f"{s}_frame"], ev["global_id"], ev[f"{s}_box"]) for s in STREAMS]

    def render(self, runner, res) -> np.ndarray:
        from mvd_edge.match.render import render_side_by_side

        ir, rgb = res.frames["ir"], res.frames["rgb"]
        pairs = self.associator.pairs()
        header = f"frame {res.frame}  ir {ir.index}  rgb {rgb.index}  pairs {len(pairs)}"
        return render_side_by_side(ir.image, rgb.image, res.tracks["ir"], res.tracks["rgb"], pairs,
                                   height=runner.render_height, header=header)

    def status(self, runner) -> list[str]:
        return [f"pairs {len(self.associator.reported)}", f"matches {runner.writer.counts.get('match', 0)}"]

    def end_event(self, runner, summary: dict[str, Any]) -> dict[str, Any]:
        return {"event": "end", "frames": runner.steps, "steps": self.runs.runs, "steps_truncated": self.runs.truncated,
                "summary": summary}

    def summary(self, runner) -> dict[str, Any]:
        from mvd_edge.match.runner import rss_mb

        m, tm, srcs, n, elapsed = self.m, self.m.timer, runner.sources, runner.steps, runner.elapsed()
        work = sum(tm.total.get(st, 0.0) for st in tm.stages() if not st.startswith(("wait.", "embed.")))
        lat_ms = sorted(1000 * v for v in runner.lat)
        summary = {
            "frames": n, "ended": runner.reason, "seconds": round(elapsed, 3),
            "wall_seconds": round(time.monotonic() - (runner._t_start or 0.0), 3),
            "fps": round((n - 1) / elapsed, 2) if n > 1 and elapsed > 0 else 0.0,
            "fps_compute": round(n / work, 2) if work > 0 else 0.0,
            "stage_ms": {st: round(tm.mean_ms(st), 3) for st in tm.stages()},
            "latency_ms": {"p50": round(lat_ms[len(lat_ms) // 2], 1),
                           "p95": round(lat_ms[int(0.95 * (len(lat_ms) - 1))], 1)} if lat_ms else {},
            "crops_embedded": m.crops_embedded, "tracks": dict(m.n_tracks),
            "pairs_now": len(self.associator.reported), "global_ids": self.associator.global_ids_issued,
            "events": dict(runner.writer.counts),
            "events_path": str(runner.events_path) if runner.events_path is not None else None,
            "video": None,
            "sources": {s: {"label": srcs[s].spec.label, "fps": srcs[s].fps, "dropped": srcs[s].dropped,
                            **srcs[s].stats.as_dict(), "gaps": [list(g) for g in srcs[s].gaps],
                            "gap_times": [list(g) for g in srcs[s].gap_times],
                            "error": srcs[s].error} for s in STREAMS},
            "rss_mb": {"start": round(runner._rss_start, 1), "end": round(rss_mb(), 1)},
            "config": self.c.as_dict(), "detector": self._detector_names(),
        }
        if runner.sync is not None and not runner.sync.lockstep:
            sync = runner.sync
            summary["pairing"] = {"by": "time", "step_s": round(sync.period, 6), "tolerance_s": round(sync.tolerance, 6),
                                  "unpaired_steps": runner.unpaired, "skipped": dict(sync.late)}
        return summary

    def finish(self, last: dict[str, FramePacket | None]) -> list[dict[str, Any]]:
        """``pair_end`` events (reason ``shutdown``) for the pairs still held (``last``: each stream's last frame)."""
        ir, rgb = last["ir"], last["rgb"]
        out = []
        for ch in self.associator.close():
            out.append({"event": "pair_end", "frame": self.m.frame, "ir_frame": ir.index if ir else None,
                        "rgb_frame": rgb.index if rgb else None, "time": round(float(ir.time), 4) if ir else None,
                        **({"rgb_time": round(float(rgb.time), 4) if rgb else None} if self.pair_times else {}),
                        "ir_track": ch.ir_track, "rgb_track": ch.rgb_track, "global_id": ch.global_id,
                        "similarity": round(ch.similarity, 4), "ir_box": None, "rgb_box": None, "reason": ch.reason})
        return out
