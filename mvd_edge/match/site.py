"""The matcher for a site: N cameras of either modality, frames paired by capture time, one
global gallery of people.

* :class:`SitePolicy`: the association rule of a site for the one
  :class:`~mvd_edge.match.pipeline.Matcher` (``Matcher.step(frames_by_camera)``: per camera a
  detector and a tracker, one embedding batch per step across all cameras, a feature bank per
  track), :func:`site_matcher` builds one: a gallery of global identities. Each identity keeps one descriptor per modality
  (the EMA of its tracks' descriptors). A track that has ``min_features`` features is
  compared with every identity: with the identity's descriptor of the *other* modality
  (cross-modal, IR <-> RGB, threshold ``threshold``) and of its *own* modality
  (same-modality, RGB <-> RGB or IR <-> IR, threshold ``same_threshold``); its score for an
  identity is the larger of the two similarities minus their thresholds. Tracks of one
  camera are assigned to distinct identities (Hungarian, scipy), and never to an identity
  held by another visible track of the same camera. Hysteresis: a track takes an identity
  after it was the best candidate ``hysteresis`` steps in a row; a track with no candidate
  for ``hysteresis`` steps founds a new identity; a held identity is given up for another
  only when that one beats it by ``margin`` for ``hysteresis`` steps in a row (a split /
  merge). Identities are remembered for ``gallery_size`` people (the least recently seen is
  forgotten first), so people are recognised across cameras and across hours.
* A site runs in :class:`~mvd_edge.match.runner.Runner` (frames paired by time,
  :class:`~mvd_edge.match.runner.TimeSync`), with the site view of the events.

Events: the site view of the one event schema (:mod:`~mvd_edge.match.events`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.modality import Modality
from mvd_edge.gallery.memory import IdentityMemory
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detector
from mvd_edge.match.events import box_xywh, start_event
from mvd_edge.match.pipeline import Matcher, SiteCamera
from mvd_edge.match.runner import rss_mb
from mvd_edge.match.sources import FramePacket
from mvd_edge.match.track import Track

__all__ = ["SiteCamera", "SitePolicy", "site_matcher"]


@dataclass
class _TrackState:
    gid: int | None = None
    candidate: int | None = None  # identity id, or -1 for "none": a new identity
    streak: int = 0


class SitePolicy:
    """The site rule for a :class:`~mvd_edge.match.pipeline.Matcher` of N cameras: global identities
    (see the module docstring). Events (the site view): ``identity`` when a track's global id is set
    or changed, then a ``sighting`` per camera for each track with a global id detected in its frame.

    ``gallery``: the identities (:class:`~mvd_edge.gallery.memory.IdentityMemory`, one descriptor
    per modality); ``states``: per camera, each track's identity and hysteresis."""

    def bind(self, matcher) -> None:
        self.m, self.c = matcher, matcher.config
        self.states: dict[str, dict[int, _TrackState]] = {n: {} for n in matcher.cameras}
        self.gallery = IdentityMemory(matcher.embedder.dim, tuple(Modality), self.c.site.gallery_size,
                                      self.c.site.faiss_above)
        self.next_gid = 1

    def track_new(self, camera: str, track_id: int) -> None:
        self.states[camera][track_id] = _TrackState()

    def track_removed(self, camera: str, track_id: int, reason: str) -> None:
        self.states[camera].pop(track_id, None)

    def associate(self, packets: dict[str, FramePacket], tracks: dict[str, list[Track]]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        for n in packets:
            events.extend(self._identify(n, packets[n], tracks[n]))
        for n, p in packets.items():
            for tr in tracks[n]:
                st = self.states[n].get(tr.id)
                if st is not None and st.gid is not None and tr.time_since_update == 0:
                    events.append({"event": "sighting", "step": self.m.frame, "camera": n, "frame": p.index,
                                   "time": round(float(p.time), 4), "track": int(tr.id), "global_id": int(st.gid),
                                   "box": box_xywh(tr.box)})
        return events

    @property
    def identities(self) -> int:
        return self.next_gid - 1

    def global_ids(self, camera: str) -> dict[int, int]:
        """``{track id: global id}`` of a camera's tracks that have one."""
        return {tid: st.gid for tid, st in self.states[camera].items() if st.gid is not None}

    # ------------------------------------------------------------------ the site view of a run (Runner)
    need_all = False  # a step takes the cameras that have a frame; the run ends when every source has

    def start_event(self, runner) -> dict[str, Any]:
        cams = {n: {"modality": c.modality.short, "source": runner.sources[n].spec.label,
                    "fps": runner.sources[n].fps} for n, c in self.m.cameras.items()}
        return start_event("site", cams, self.m.embedder, self.c.as_dict())

    def crops(self, ev: dict[str, Any]) -> list[tuple]:
        """``(modality, camera, frame, global id, box)`` of the person a ``sighting`` names."""
        if ev["event"] != "sighting":
            return []
        cam = ev["camera"]
        return [(self.m.cameras[cam].modality.short, cam, ev["frame"], ev["global_id"], ev["box"])]

    def render(self, runner, res) -> np.ndarray:
        from mvd_edge.match.render import render_site_grid

        last = runner.last  # each camera's newest frame: a camera without one this step shows its last
        views = [(f"{n} ({c.modality.short})" + ("" if n in res.frames else " [no frame]"), last[n].image if last[n] else None,
                  res.tracks[n] if n in res.frames else [], self.global_ids(n)) for n, c in self.m.cameras.items()]
        t_step = runner.sync.period * (runner.sync.step - 1)
        return render_site_grid(views, runner.tile_height,
                                header=f"step {res.frame}  t {t_step:.2f} s  people {self.identities}")

    def status(self, runner) -> list[str]:
        return [f"people {self.identities}", "frames " + " ".join(f"{n} {runner.sync.used[n]}" for n in runner.sources)]

    def finish(self, last) -> list[dict[str, Any]]:
        return []

    def end_event(self, runner, summary: dict[str, Any]) -> dict[str, Any]:
        return {"event": "end", "frames": runner.sync.runs if runner.sync else {}, "summary": summary}

    def summary(self, runner) -> dict[str, Any]:

        m, sync, steps, elapsed = self.m, runner.sync, runner.steps, runner.elapsed()
        return {
            "steps": steps, "ended": runner.reason, "seconds": round(elapsed, 3),
            "steps_per_s": round((steps - 1) / elapsed, 2) if steps > 1 and elapsed > 0 else 0.0,
            "stage_ms": {st: round(m.timer.mean_ms(st), 3) for st in m.timer.stages()},
            "crops_embedded": m.crops_embedded, "global_ids": self.identities, "gallery": len(self.gallery),
            "tracks": dict(m.n_tracks), "events": dict(runner.writer.counts),
            "cameras": {n: {"label": s.spec.label, "modality": m.cameras[n].modality.short, "fps": s.fps,
                            "frames_used": sync.used[n] if sync else 0, "late": sync.late[n] if sync else 0,
                            "dropped": s.dropped, "queue_depth": s.depth, **s.stats.as_dict(), "error": s.error}
                        for n, s in runner.sources.items()},
            "rss_mb": {"start": round(runner._rss_start, 1), "end": round(rss_mb(), 1)},
        }

    # ------------------------------------------------------------------ identification
    def _scores(self, modality: Modality, desc: np.ndarray,
                always: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The gallery rows scored ``[K]`` (ascending; every row on the exact path, else the faiss
        shortlist of both modalities plus the ``always`` rows: the tracks' own identities), their
        scores ``[T, K]`` (the better of the cross-modal and same-modality similarity minus its
        threshold; -inf where neither exists) and which kind won (True: same modality)."""
        c = self.c
        other = Modality.INFRARED if modality is Modality.VISIBLE else Modality.VISIBLE
        rows = self.gallery.candidates((other, modality), desc, always)
        if rows is None:  # exact search: every row
            cross = self.gallery.similarities(other, desc) - c.association.threshold
            same = self.gallery.similarities(modality, desc) - c.site.same_threshold
            rows = np.arange(cross.shape[1])
        else:
            cross = self.gallery.similarities_at(other, desc, rows) - c.association.threshold
            same = self.gallery.similarities_at(modality, desc, rows) - c.site.same_threshold
        return rows, np.maximum(cross, same), same > cross

    def _identify(self, cam: str, packet: FramePacket, tracks: list[Track]) -> list[dict[str, Any]]:
        c = self.c
        modality = self.m.cameras[cam].modality
        bank, states = self.m.banks[cam], self.states[cam]
        # identities are decided on tracks detected in this step: a track the tracker is only predicting
        # keeps its identity but neither claims nor blocks one, or a person whose old track still coasts
        # (lost when they vanished and came back elsewhere in the view) would found a second identity
        # for their new track (measured: a looped site grew by one id a pass; test_site)
        eligible = [tr for tr in tracks if tr.time_since_update == 0 and bank.count(tr.id) >= c.bank.min_features]
        if not eligible:
            return []
        desc = bank.descriptors([tr.id for tr in eligible])
        own_rows = np.array([self.gallery.row[g] for g in (states[tr.id].gid for tr in eligible) if g in self.gallery],
                            np.int64)
        rows, score, same = self._scores(modality, desc, own_rows)
        gids = self.gallery.gid[rows]
        live = np.flatnonzero(np.isfinite(score).any(axis=0))  # rows some track can match at all
        # one identity per track of this camera: assign the best identities jointly
        best: dict[int, tuple[int, float, bool]] = {}
        if live.size:
            sub = score[:, live]
            rs, cols = linear_sum_assignment(np.where(np.isfinite(sub), -sub, 1e6))
            for r, j in zip(rs, cols):
                if np.isfinite(sub[r, j]) and sub[r, j] >= 0:
                    best[r] = (int(gids[live[j]]), float(sub[r, j]), bool(same[r, live[j]]))
        held = {states[tr.id].gid for tr in tracks if tr.time_since_update == 0 and states[tr.id].gid is not None}
        events = []
        for r, tr in enumerate(eligible):
            st = states[tr.id]
            cand = best.get(r)
            if st.gid is not None:
                # keep the identity unless another beats it by the margin for k steps (a split / merge)
                own = self._own_score(score[r], rows, st.gid)
                beat = own + max(c.association.margin, c.association.stickiness)
                if cand is not None and cand[0] != st.gid and cand[1] > beat:
                    st.streak = st.streak + 1 if st.candidate == cand[0] else 1
                    st.candidate = cand[0]
                    if st.streak >= c.association.hysteresis:
                        events.append(self._assign(cam, packet, tr, st, cand[0], cand, "same" if cand[2] else "cross"))
                else:
                    st.candidate, st.streak = None, 0
                self._refresh(st.gid, modality, desc[r])
                continue
            want = -1 if cand is None or (cand[0] in held) else cand[0]
            st.streak = st.streak + 1 if st.candidate == want else 1
            st.candidate = want
            if st.streak < c.association.hysteresis:
                continue
            if want == -1:
                gid = self._new_identity()
                events.append(self._assign(cam, packet, tr, st, gid, None, "new"))
            else:
                events.append(self._assign(cam, packet, tr, st, want, cand, "same" if cand[2] else "cross"))
            held.add(st.gid)
            self._refresh(st.gid, modality, desc[r])
        return events

    def _own_score(self, score: np.ndarray, rows: np.ndarray, gid: int) -> float:
        """A track's score ``[K]`` (over gallery ``rows``, ascending) for the identity ``gid`` it holds; -inf if gone."""
        if gid not in self.gallery:
            return -np.inf
        r = self.gallery.row[gid]
        j = int(np.searchsorted(rows, r))
        return score[j] if j < len(rows) and rows[j] == r else -np.inf

    def _new_identity(self) -> int:
        gid = self.next_gid
        self.next_gid += 1
        self.gallery.add(gid)
        return gid

    def _refresh(self, gid: int, modality: Modality, d: np.ndarray) -> None:
        self.gallery.update(gid, modality, d, self.c.site.identity_momentum)

    def _assign(self, cam: str, packet: FramePacket, tr: Track, st: _TrackState, gid: int,
                cand: tuple[int, float, bool] | None, via: str) -> dict[str, Any]:
        st.gid, st.candidate, st.streak = gid, None, 0
        sim = None
        if cand is not None:
            thr = self.c.site.same_threshold if cand[2] else self.c.association.threshold
            sim = round(cand[1] + thr, 4)
        return {"event": "identity", "step": self.m.frame, "camera": cam, "frame": packet.index,
                "track": int(tr.id), "global_id": int(gid), "similarity": sim, "via": via}


def site_matcher(embedder, cameras: list[SiteCamera], detectors: dict[str, Detector],
                 config: MatcherConfig | None = None) -> Matcher:
    """A :class:`~mvd_edge.match.pipeline.Matcher` of ``cameras`` with the site rule."""
    return Matcher(embedder, cameras, detectors, config, SitePolicy())
