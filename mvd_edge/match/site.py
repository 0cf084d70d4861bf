"""The matcher for a site: N cameras of either modality, frames paired by capture time, one
global gallery of people.

* :class:`TimeSync` pairs frames by timestamp, not by queue order. Steps run on a clock of
  period ``1 / step_fps`` (default: the fastest camera's fps). At step time ``T`` a camera
  contributes its frame whose timestamp is within ``tolerance`` of ``T`` (default: half the
  step period); frames older than that are skipped (counted as ``late``), a newer one waits
  for its step. A camera that runs slower simply contributes to fewer steps, and a live
  camera that stalls or drops out contributes nothing until it is back: it never blocks the
  others (each live camera is waited for at most ``tolerance`` past ``T``). Files are read
  frame by frame without drops; a file that ends leaves the run, the run ends when all have.
  Timestamps: media time (``frame / fps``) for files and folders, capture time (monotonic
  clock) for cameras and URLs.
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
* :class:`SiteRunner`: sources, time pairing, matcher, events and sinks with ``start`` /
  ``step`` / ``close`` (and :meth:`SiteRunner.run`).

Events: the site view of the one event schema (:mod:`~mvd_edge.match.events`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.core.signals import interrupts_deferred
from mvd_edge.gallery.memory import IdentityMemory
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detector
from mvd_edge.match.events import box_xywh, start_event
from mvd_edge.match.pipeline import Matcher, SiteCamera, StageTimer
from mvd_edge.match.runner import Runner, rss_mb
from mvd_edge.match.sources import FramePacket, FrameSource
from mvd_edge.match.track import Track

__all__ = ["SiteCamera", "SitePolicy", "SiteRunner", "TimeSync", "site_matcher"]


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


# ---------------------------------------------------------------------------- time pairing


class TimeSync:
    """Frames of N sources paired by timestamp (see the module docstring).

    Args:
        sources: ``{camera name: FrameSource}`` (started).
        step_fps: steps per second (default: the fastest source's fps).
        tolerance: seconds a frame may be off its step time (default: half a step period).
        live_wait: live sources: at most this many seconds past a step's time are waited for
            a frame (default: ``tolerance``).
    """

    def __init__(self, sources: dict[str, FrameSource], step_fps: float | None = None,
                 tolerance: float | None = None, live_wait: float | None = None):
        if not sources:
            raise UsageError("TimeSync needs at least one source")
        self.sources = sources
        fps = step_fps or max(float(s.fps or 0.0) for s in sources.values()) or 15.0
        if not fps > 0:
            raise UsageError(f"step fps must be > 0, got {fps}")
        self.period = 1.0 / fps
        self.tolerance = self.period / 2 if tolerance is None else float(tolerance)
        self.live_wait = self.tolerance if live_wait is None else float(live_wait)
        self.pending: dict[str, FramePacket | None] = {n: None for n in sources}
        self.ended: set[str] = set()
        self.late = {n: 0 for n in sources}
        self.used = {n: 0 for n in sources}
        self.runs: dict[str, list[list[int]]] = {n: [] for n in sources}
        self.t0: float | None = None  # live: monotonic time of step 0
        self.step = 0

    def stamp(self, name: str, pkt: FramePacket) -> float:
        """A frame's timestamp on the common clock (seconds)."""
        src = self.sources[name]
        return float(pkt.captured) if src.live else float(pkt.time)

    @property
    def done(self) -> bool:
        return len(self.ended) == len(self.sources)

    def _origin(self) -> float:
        """Step 0's time: the earliest first frame of all sources (files: media time 0)."""
        if all(not s.live for s in self.sources.values()):
            return 0.0
        first = []
        for n in self.sources:
            pkt = self._peek(n, time.monotonic() + 30.0)
            if pkt is not None:
                first.append(self.stamp(n, pkt))
        return min(first) if first else time.monotonic()

    def _peek(self, name: str, deadline: float) -> FramePacket | None:
        """The next frame of ``name`` (kept pending), waiting until ``deadline``; None if none."""
        if self.pending[name] is not None:
            return self.pending[name]
        if name in self.ended:
            return None
        src = self.sources[name]
        while True:
            wait = max(0.0, deadline - time.monotonic())
            pkt = src.get(timeout=min(wait, 0.1) if src.live else 0.1)
            if pkt is None:
                self.ended.add(name)
                return None
            if pkt is not False:
                self.pending[name] = pkt
                return pkt
            if time.monotonic() >= deadline:
                return None  # nothing by the deadline: leave the source out of this step

    def next(self) -> tuple[float, dict[str, FramePacket]] | None:
        """The next step's time and its frames (cameras without a frame for it are absent);
        None when every source has ended."""
        if self.t0 is None:
            self.t0 = self._origin()
        while not self.done:
            T = self.t0 + self.step * self.period
            frames: dict[str, FramePacket] = {}
            for n, src in self.sources.items():
                # files: wait as long as it takes (a file never stalls); live: until T + live_wait
                deadline = (T + self.live_wait) if src.live else time.monotonic() + 60.0
                while True:
                    pkt = self._peek(n, deadline)
                    if pkt is None:
                        break
                    ts = self.stamp(n, pkt)
                    if ts < T - self.tolerance:
                        self.pending[n] = None
                        self.late[n] += 1
                        continue
                    if ts <= T + self.tolerance:
                        frames[n] = pkt
                        self.pending[n] = None
                        self._record(n, pkt.index)
                    break
            self.step += 1
            if frames:
                return T - self.t0, frames
            if all(self.sources[n].live for n in self.sources) and time.monotonic() > T + 1.0:
                # the whole site stalled: resume at the present rather than replay empty steps
                self.step = max(self.step, int((time.monotonic() - self.t0) / self.period))
        return None

    def _record(self, name: str, index: int) -> None:
        self.used[name] += 1
        runs = self.runs[name]
        if runs and runs[-1][0] + runs[-1][1] == index:
            runs[-1][1] += 1
        else:
            runs.append([int(index), 1])


# ---------------------------------------------------------------------------- the runner


class SiteRunner(Runner):
    """Sources + :class:`TimeSync` + a :class:`~mvd_edge.match.pipeline.Matcher` with the site rule + events and sinks (the life cycle of
    :class:`~mvd_edge.match.runner.Runner`).

    ``start()`` opens the sources and writes the ``start`` event; ``step()`` runs one time step
    (False when every source has ended); ``close()`` stops the sources, writes the ``end``
    event, closes the file and the sinks and returns the summary. :meth:`run` does all three;
    its ``on_step`` gets the runner.
    """

    def __init__(self, cameras: list[SiteCamera], embedder, detectors: dict[str, Detector], *,
                 config: MatcherConfig | None = None, events: str | Path | None = None, sinks=(), metrics=None,
                 sources: dict[str, FrameSource] | None = None, step_fps: float | None = None,
                 tolerance: float | None = None, queue_size: int = 8, open_timeout: float = 10.0,
                 max_offline: float | None = 30.0, realtime: bool = False, save: str | Path | None = None,
                 tile_height: int = 240, crops=None, matcher: Matcher | None = None):
        self.cameras = cameras
        # ``matcher``: one made by the caller (a subclass, e.g. a measuring script's oracle) for these cameras
        self.matcher = matcher if matcher is not None else site_matcher(embedder, cameras, detectors, config)
        if sources is None:
            sources = {c.name: FrameSource(c.spec, c.name, queue_size=queue_size, realtime=realtime,
                                           open_timeout=open_timeout, max_offline=max_offline) for c in cameras}
        super().__init__(sources, events=events, sinks=sinks, metrics=metrics)
        self.step_fps, self.tolerance = step_fps, tolerance
        self.sync: TimeSync | None = None
        self.save, self.tile_height = save, int(tile_height)
        self.crops = crops  # a sinks.CropSaver: crops of sighted people for `mvd-edge gallery build`
        self.video = None
        self._last_image: dict[str, np.ndarray | None] = {c.name: None for c in cameras}

    def _timer(self) -> StageTimer:
        return self.matcher.timer

    def _started(self) -> None:
        self.sync = TimeSync(self.sources, self.step_fps, self.tolerance)
        if self.save is not None:
            from mvd_edge.match.render import VideoSink

            self.video = VideoSink(self.save, 1.0 / self.sync.period)
        cams = {c.name: {"modality": c.modality.short, "source": self.sources[c.name].spec.label,
                         "fps": self.sources[c.name].fps} for c in self.cameras}
        self.writer.write(start_event("site", cams, self.matcher.embedder, self.matcher.config.as_dict()))

    def step(self) -> bool:
        nxt = self.sync.next()
        if nxt is None:
            errors = [f"{n}: {s.error}" for n, s in self.sources.items() if s.error]
            self.reason = "all sources ended" + (f" ({'; '.join(errors)})" if errors else "")
            return False
        self.first_step()
        t_step, frames = nxt
        with interrupts_deferred():  # a step is whole: its events, its video frame and its count
            for ev in self.matcher.step(frames).events:
                self.writer.write(ev)
                if self.crops is not None and ev["event"] == "sighting":
                    cam = ev["camera"]
                    self.crops.save(self.matcher.cameras[cam].modality.short, cam, ev["frame"], ev["global_id"],
                                    frames[cam].image, ev["box"])
            if self.video is not None:
                self._render(t_step, frames)
            self.steps += 1
        self.push_metrics()
        return True

    def _render(self, t_step: float, frames: dict[str, FramePacket]) -> None:
        from mvd_edge.match.render import render_site_grid

        t0 = time.perf_counter()
        for n, pkt in frames.items():
            self._last_image[n] = pkt.image
        m = self.matcher
        views = [(f"{c.name} ({c.modality.short})" + ("" if c.name in frames else " [no frame]"),
                  self._last_image[c.name], m.last_tracks[c.name] if c.name in frames else [],
                  m.policy.global_ids(c.name)) for c in self.cameras]
        canvas = render_site_grid(views, self.tile_height,
                                  header=f"step {self.steps}  t {t_step:.2f} s  people {m.policy.identities}")
        self.video.write(canvas)
        m.timer.add("render", time.perf_counter() - t0)

    def summary(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        sync = self.sync
        m = self.matcher
        return {
            "steps": self.steps, "ended": self.reason, "seconds": round(elapsed, 3),
            "steps_per_s": round((self.steps - 1) / elapsed, 2) if self.steps > 1 and elapsed > 0 else 0.0,
            "stage_ms": {st: round(m.timer.mean_ms(st), 3) for st in m.timer.stages()},
            "crops_embedded": m.crops_embedded, "global_ids": m.policy.identities, "gallery": len(m.policy.gallery),
            "tracks": dict(m.n_tracks), "events": dict(self.writer.counts),
            "cameras": {n: {"label": s.spec.label, "modality": m.cameras[n].modality.short, "fps": s.fps,
                            "frames_used": sync.used[n] if sync else 0, "late": sync.late[n] if sync else 0,
                            "dropped": s.dropped, "queue_depth": s.depth, **s.stats.as_dict(), "error": s.error}
                        for n, s in self.sources.items()},
            "rss_mb": {"start": round(self._rss_start, 1), "end": round(rss_mb(), 1)},
        }

    def _closing(self) -> dict[str, Any]:
        return self.summary()

    def _end_event(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {"event": "end", "frames": self.sync.runs if self.sync else {}, "summary": summary}

    def _closed_outputs(self, summary: dict[str, Any]) -> None:
        if self.video is not None:
            self.video.close()
            summary["video"] = str(self.video.path_written) if self.video.path_written else None
