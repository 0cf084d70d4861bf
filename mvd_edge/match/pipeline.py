"""The matcher: :class:`MatchPipeline` (one step per pair of frames) and :func:`run_match` (the loop).

A step: detect people in both frames, track them per stream, crop the tracks detected in
this frame (skipping boxes that are too small or largely covered by another box), embed
all crops of both streams in one batch, update the tracks' feature banks, and associate
IR tracks with RGB tracks (:class:`~mvd_edge.match.associate.CrossModalAssociator`).
Every stage is timed; the Embedder's own stage times (preprocess/infer/postprocess) are
recorded as ``embed.<stage>``.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.preprocess import box_crop, box_overlap
from mvd_edge.core.signals import interrupts_deferred
from mvd_edge.match.associate import CrossModalAssociator, PairUpdate, ReportedPair
from mvd_edge.match.bank import FeatureBank
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detections, Detector, box_iou
from mvd_edge.match.events import EventWriter, StepRuns, box_xywh, start_event
from mvd_edge.match.runner import Runner, rss_mb
from mvd_edge.match.sources import FramePacket, FrameSource, SourceError, SourceSpec, parse_source
from mvd_edge.match.track import ByteTracker, PassthroughTracker, Track

__all__ = ["MatchPipeline", "StageTimer", "StepResult", "rss_mb", "run_match"]

STREAMS = ("ir", "rgb")
_log = logging.getLogger(__name__)


class StageTimer:
    """Seconds per stage: total, count, last and an exponential moving average (bounded memory)."""

    def __init__(self, alpha: float = 0.1):
        self.alpha = alpha
        self.total: dict[str, float] = {}
        self.count: dict[str, int] = {}
        self.last: dict[str, float] = {}
        self.ewma: dict[str, float] = {}

    def add(self, stage: str, seconds: float) -> None:
        self.total[stage] = self.total.get(stage, 0.0) + seconds
        self.count[stage] = self.count.get(stage, 0) + 1
        self.last[stage] = seconds
        prev = self.ewma.get(stage)
        self.ewma[stage] = seconds if prev is None else prev + self.alpha * (seconds - prev)

    def mean_ms(self, stage: str) -> float:
        n = self.count.get(stage, 0)
        return 1000.0 * self.total.get(stage, 0.0) / n if n else 0.0

    def stages(self) -> list[str]:
        return list(self.total)


@dataclass
class StepResult:
    frame: int
    ir: FramePacket
    rgb: FramePacket
    tracks: dict[str, list[Track]]
    pairs: list[ReportedPair]
    events: list[dict[str, Any]]
    n_crops: int
    seconds: float


class MatchPipeline:
    """One matcher instance: detectors, trackers, banks and the associator for an IR/RGB pair.

    Args:
        embedder: an :class:`mvd_edge.runtime.Embedder` (any backend/precision).
        detectors: ``{"ir": Detector, "rgb": Detector}``.
        config: :class:`MatcherConfig`.
        trackers: ``{"ir": tracker, "rgb": tracker}``; default: :class:`PassthroughTracker`
            for a detector that yields ids (a MOT file with track ids), else :class:`ByteTracker`.
    """

    def __init__(self, embedder, detectors: dict[str, Detector], config: MatcherConfig | None = None,
                 trackers: dict[str, Any] | None = None):
        self.embedder = embedder
        self.config = config or MatcherConfig()
        c = self.config
        missing = set(STREAMS) - set(detectors)
        if missing:
            raise ValueError(f"detectors needed for {sorted(missing)}")
        self.detectors = detectors
        self.trackers = trackers or {s: default_tracker(detectors[s], c) for s in STREAMS}
        self.banks = {s: FeatureBank(embedder.dim, c.bank.ema_momentum, c.bank.last_n) for s in STREAMS}
        self.associator = CrossModalAssociator(c.association)
        self.timer = StageTimer()
        spec = getattr(embedder, "spec", None)
        self.aspect = c.crop.aspect or (spec.width / spec.height if spec is not None else None)
        self.frame = 0
        self.crops_embedded = 0
        self.tracks_seen = {s: set() for s in STREAMS}  # ids, bounded: pruned when tracks end
        self.n_tracks = {s: 0 for s in STREAMS}
        self.last_tracks: dict[str, list[Track]] = {s: [] for s in STREAMS}
        self.pair_times = False  # events also carry the RGB frame's time (set for streams paired by time)

    def _crop(self, img: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The re-id crop of ``box`` (x1y1x2y2): margin, aspect, border replication; None if too small."""
        c = self.config
        return box_crop(img, box, c.crop.margin, self.aspect, c.crop.min_box_height)

    def _tick(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timer.add(stage, t1 - t0)
        return t1

    def step(self, ir: FramePacket, rgb: FramePacket) -> StepResult:
        c = self.config
        start = t = time.perf_counter()
        packets = {"ir": ir, "rgb": rgb}
        dets: dict[str, Detections] = {}
        for s in STREAMS:
            dets[s] = self.detectors[s].detect(packets[s].image, packets[s].index)
            t = self._tick(f"detect.{s}", t)
        events: list[dict[str, Any]] = []
        changes: list[PairUpdate] = []
        tracks: dict[str, list[Track]] = {}
        before = dict(self.embedder.stage_times)
        feats = {s: DetectionFeatures(self.embedder, packets[s].image, dets[s], self.banks[s], self._crop)
                 for s in STREAMS}
        for s in STREAMS:
            tracker = self.trackers[s]
            tracks[s] = tracker.update(dets[s], feats[s] if c.track.appearance > 0 else None)
            for tid in tracker.removed:
                self.banks[s].remove(tid)
                self.tracks_seen[s].discard(tid)
                changes.extend(self.associator.remove_track(s, tid))
            for tr in tracks[s]:
                if tr.id not in self.tracks_seen[s]:
                    self.tracks_seen[s].add(tr.id)
                    self.n_tracks[s] += 1
        appearance_s = sum(f.seconds for f in feats.values())
        t1 = time.perf_counter()
        self.timer.add("track", t1 - t - appearance_s)
        t = t1
        by_id = {s: {tr.id: tr for tr in tracks[s]} for s in STREAMS}
        # crops of the tracks detected in this frame
        chosen = {s: track_crops(packets[s].image, tracks[s], dets[s], self.banks[s], c, self.frame, self._crop)
                  for s in STREAMS}
        n_crops = sum(len(v) for v in chosen.values())
        t = self._tick("crop", t)
        n_embedded, splits = embed_tracks(self.embedder, [(s, chosen[s], feats[s], by_id[s], self.banks[s],
                                                           split_sigmas(self.trackers[s], c)) for s in STREAMS])
        for s, tid, f in splits:
            changes.extend(self._split(s, tid, f))
        if splits:
            by_id = {s: {tr.id: tr for tr in tracks[s]} for s in STREAMS}
        n_embedded += sum(f.crops_embedded for f in feats.values())
        if n_embedded:
            for k, v in self.embedder.stage_times.items():
                self.timer.add(f"embed.{k}", v - before.get(k, 0.0))
        t1 = time.perf_counter()
        if n_embedded or n_crops:
            self.timer.add("embed", t1 - t + appearance_s)
        t = t1
        self.crops_embedded += n_embedded
        # association
        eligible = {s: [tr.id for tr in tracks[s] if tr.time_since_update <= c.association.max_gap
                        and self.banks[s].count(tr.id) >= c.bank.min_features] for s in STREAMS}
        early = {s: [] for s in STREAMS}
        if c.association.early_threshold is not None:  # tracks detected now, still gathering their first features
            early = {s: [tr.id for tr in tracks[s] if tr.time_since_update == 0
                         and 0 < self.banks[s].count(tr.id) < c.bank.min_features] for s in STREAMS}
        ids = {s: eligible[s] + early[s] for s in STREAMS}
        changes.extend(self.associator.update(ids["ir"], self.banks["ir"].descriptors(ids["ir"]),
                                              ids["rgb"], self.banks["rgb"].descriptors(ids["rgb"]),
                                              early=(set(early["ir"]), set(early["rgb"]))))
        t = self._tick("associate", t)
        for ch in changes:
            events.append(self._event("pair_" + ch.kind, ir, rgb, ch.ir_track, ch.rgb_track, ch.global_id,
                                      ch.similarity, by_id, reason=ch.reason if ch.kind == "end" else None))
        pairs = self.associator.pairs()
        for p in pairs:
            ti, tr = by_id["ir"].get(p.ir_track), by_id["rgb"].get(p.rgb_track)
            if reportable(ti, c.association.report_coast) and reportable(tr, c.association.report_coast):
                events.append(self._event("match", ir, rgb, p.ir_track, p.rgb_track, p.global_id, p.similarity, by_id,
                                          coast=c.association.report_coast))
        self._tick("events", t)
        self.last_tracks = tracks
        result = StepResult(self.frame, ir, rgb, tracks, pairs, events, n_embedded, time.perf_counter() - start)
        self.frame += 1
        return result

    def _split(self, s: str, tid: int, feature: np.ndarray) -> list[PairUpdate]:
        """Track ``tid`` of stream ``s`` now follows someone else: a new id, a new bank starting from
        ``feature``, and the old id's pair ended (reason ``track_split``)."""
        new = self.trackers[s].split(tid)
        self.banks[s].remove(tid)
        self.banks[s].update(new, feature)
        self.tracks_seen[s].discard(tid)
        self.tracks_seen[s].add(new)
        self.n_tracks[s] += 1
        return self.associator.remove_track(s, tid, reason="track_split")

    def _event(self, kind: str, ir: FramePacket, rgb: FramePacket, i: int, r: int, gid: int, sim: float,
               by_id: dict[str, dict[int, Track]], reason: str | None = None, coast: int = 0) -> dict[str, Any]:
        ti, tr = by_id["ir"].get(i), by_id["rgb"].get(r)
        ev = {"event": kind, "frame": self.frame, "ir_frame": ir.index, "rgb_frame": rgb.index,
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

    def finish(self, ir: FramePacket | None, rgb: FramePacket | None) -> list[dict[str, Any]]:
        """``pair_end`` events (reason ``shutdown``) for the pairs still held."""
        out = []
        for ch in self.associator.close():
            out.append({"event": "pair_end", "frame": self.frame, "ir_frame": ir.index if ir else None,
                        "rgb_frame": rgb.index if rgb else None, "time": round(float(ir.time), 4) if ir else None,
                        **({"rgb_time": round(float(rgb.time), 4) if rgb else None} if self.pair_times else {}),
                        "ir_track": ch.ir_track, "rgb_track": ch.rgb_track, "global_id": ch.global_id,
                        "similarity": round(ch.similarity, 4), "ir_box": None, "rgb_box": None, "reason": ch.reason})
        return out


def reportable(t: Track | None, coast: int) -> bool:
    """Whether track ``t`` has a box to report this frame: it was detected, or the detector has
    missed it for at most ``coast`` frames and the tracker predicts where it is (a Kalman track;
    ids from a box file predict nothing)."""
    if t is None:
        return False
    return t.time_since_update == 0 or (t.kalman is not None and t.time_since_update <= coast)


def default_tracker(detector: Detector, c: MatcherConfig):
    """:class:`PassthroughTracker` for a detector that yields ids (a MOT file with track ids), else :class:`ByteTracker`."""
    if getattr(detector, "has_ids", False):
        return PassthroughTracker(max_age=c.track.max_age)
    return ByteTracker(high=c.track.high, low=c.track.low, min_hits=c.track.min_hits, max_age=c.track.max_age,
                       appearance_weight=c.track.appearance)


def split_sigmas(tracker, c: MatcherConfig) -> float:
    """``c.track.split`` for a tracker that can split tracks, 0 for one that cannot (ids from a box file)."""
    return c.track.split if hasattr(tracker, "split") else 0.0


class DetectionFeatures:
    """Re-id features of one frame's detections, embedded on demand and kept for the frame.

    It is the tracker's ``appearance`` callback (:meth:`ByteTracker.update`): asked for the
    detections of ambiguous pairs, it crops and embeds them (``crop(img, box)``, None: too
    small, an unknown zero feature) and returns them with the tracks' bank descriptors (zero
    for a track with no bank yet). :meth:`feature` then gives a track the feature of the
    detection it was matched to, so the banks do not embed the same crop again."""

    def __init__(self, embedder, img: np.ndarray, dets: Detections, bank: FeatureBank,
                 crop: Callable[[np.ndarray, np.ndarray], np.ndarray | None]):
        self.embedder, self.img, self.dets, self.bank, self.crop = embedder, img, dets, bank, crop
        self.cache: dict[int, np.ndarray] = {}
        self.crops_embedded = 0
        self.seconds = 0.0

    def __call__(self, track_ids: list[int], det_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        t0 = time.perf_counter()
        zero = np.zeros(self.bank.dim, np.float32)
        tf = np.stack([self.bank.descriptor(t) if t in self.bank else zero for t in track_ids])
        need = [int(j) for j in det_indices if int(j) not in self.cache]
        pieces = [(j, self.crop(self.img, self.dets.boxes[j])) for j in need]
        ok = [(j, c) for j, c in pieces if c is not None]
        if ok:
            for (j, _), f in zip(ok, self.embedder.embed([c for _, c in ok])):
                self.cache[j] = np.asarray(f, np.float32)
            self.crops_embedded += len(ok)
        for j, c in pieces:
            if c is None:
                self.cache[j] = zero
        self.seconds += time.perf_counter() - t0
        return tf, np.stack([self.cache[int(j)] for j in det_indices])

    def feature(self, track: Track) -> np.ndarray | None:
        """The embedding of the detection ``track`` was matched to in this frame, if one was made."""
        f = self.cache.get(track.det_index) if track.det_index >= 0 else None
        return f if f is not None and f.any() else None


def embed_tracks(embedder, jobs: list[tuple[Any, list[tuple[int, np.ndarray]], DetectionFeatures,
                                            dict[int, Track], FeatureBank, float]],
                 split_confirm: int = 3) -> tuple[int, list[tuple[Any, int, np.ndarray]]]:
    """Update the banks with the crops :func:`track_crops` chose, in one embedding batch; a crop
    whose detection the tracker already embedded (:class:`DetectionFeatures`) is not embedded
    again. ``jobs``: ``(key, [(track id, crop)], features, tracks by id, bank, split_sigmas)`` per
    stream or camera. ``split_sigmas`` > 0: a feature that is an outlier for its bank
    (:meth:`FeatureBank.is_outlier`) is kept out of it, and the ``split_confirm``-th outlier in
    a row is returned as a split (0: every feature goes into its bank).

    Returns ``(crops embedded here, [(key, track id, feature)] to split)``."""
    found: list[tuple[Any, FeatureBank, float, int, np.ndarray]] = []
    crops: list[np.ndarray] = []
    owners: list[tuple[Any, FeatureBank, float, int]] = []
    for key, chosen, feats, by_id, bank, sigmas in jobs:
        for tid, crop in chosen:
            f = feats.feature(by_id[tid])
            if f is not None:
                found.append((key, bank, sigmas, tid, f))
            else:
                crops.append(crop)
                owners.append((key, bank, sigmas, tid))
    if crops:
        found.extend((*owner, f) for owner, f in zip(owners, embedder.embed(crops)))
    splits = []
    for key, bank, sigmas, tid, f in found:
        if sigmas > 0 and bank.is_outlier(tid, f, sigmas, confirm=split_confirm):
            splits.append((key, tid, f))
        elif not (sigmas > 0 and bank.outliers(tid)):  # a feature under suspicion stays out of the bank
            bank.update(tid, f)
    return len(crops), splits


def track_crops(img: np.ndarray, tracks: list[Track], dets: Detections, bank: FeatureBank, c: MatcherConfig,
                step: int, crop: Callable[[np.ndarray, np.ndarray], np.ndarray | None]) -> list[tuple[int, np.ndarray]]:
    """``(track id, re-id crop)`` for the tracks of one frame that should be embedded now.

    A track is embedded when it was detected in this frame, its box is not more than
    ``max_occlusion`` covered by another detection (unless it still bootstraps its first
    ``min_features``), and, once it has ``min_features``, on every ``embed_every``-th step.
    ``crop(img, box)`` cuts the re-id crop (None: too small)."""
    visible = [tr for tr in tracks if tr.time_since_update == 0]
    if not visible:
        return []
    occ = box_overlap(np.concatenate([np.array([tr.box for tr in visible], np.float32).reshape(-1, 4),
                                      _unmatched_boxes(dets, visible)]))[:len(visible)]
    out = []
    for tr, o in zip(visible, occ):
        if bank.count(tr.id) >= c.bank.min_features and (step + tr.id) % c.crop.embed_every:
            continue
        if o > c.crop.max_occlusion and (not c.crop.occluded_bootstrap or bank.count(tr.id) >= c.bank.min_features):
            continue
        piece = crop(img, tr.box)
        if piece is not None:
            out.append((tr.id, piece))
    return out


def _unmatched_boxes(dets: Detections, visible: list[Track]) -> np.ndarray:
    """Detections not used by a visible track (they still occlude)."""
    if len(dets) == 0:
        return np.zeros((0, 4), np.float32)
    if not visible:
        return dets.boxes
    iou = box_iou(dets.boxes, np.array([t.box for t in visible], np.float32))
    return dets.boxes[iou.max(axis=1) < 0.9]


# ---------------------------------------------------------------------------- the loop


def _as_source(src: str | SourceSpec | FrameSource, name: str, cameras: dict | None, **kw) -> FrameSource:
    if isinstance(src, FrameSource):
        return src
    spec = src if isinstance(src, SourceSpec) else parse_source(str(src), cameras)
    return FrameSource(spec, name=name, **kw)


def _status_text(pipe: MatchPipeline, srcs: dict[str, FrameSource], steps: int, fps: float, writer: EventWriter,
                 profile: bool):
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    tm = pipe.timer
    det = tm.ewma.get("detect.ir", 0.0) + tm.ewma.get("detect.rgb", 0.0)
    emb = tm.ewma.get("embed", 0.0)
    parts = [f"frame {steps}", f"{fps:5.1f} fps",
             f"detect {1000 * det:5.1f} ms", f"track {1000 * tm.ewma.get('track', 0):4.1f}",
             f"embed {1000 * emb:5.1f}", f"assoc {1000 * tm.ewma.get('associate', 0):4.1f}",
             "queue " + " ".join(f"{s} {srcs[s].depth}/{srcs[s].queue.maxsize}" for s in STREAMS),
             "drops " + " ".join(f"{s} {srcs[s].dropped}" for s in STREAMS),
             f"pairs {len(pipe.associator.reported)}", f"matches {writer.counts.get('match', 0)}"]
    bad = sum(srcs[s].stats.corrupt for s in STREAMS)
    rec = sum(srcs[s].stats.reconnects for s in STREAMS)
    if bad:
        parts.append(f"corrupt {bad}")
    if rec:
        parts.append(f"reconnects {rec}")
    line = Text(" | ".join(parts))
    if not profile:
        return line
    table = Table(title="per stage (ms): moving average / mean / last", title_justify="left", show_edge=False)
    for col in ("stage", "avg", "mean", "last", "rate (/s)"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for st in tm.stages():
        avg = tm.ewma[st]
        table.add_row(st, f"{1000 * avg:.2f}", f"{tm.mean_ms(st):.2f}", f"{1000 * tm.last[st]:.2f}",
                      f"{1 / avg:.0f}" if avg > 0 else "-")
    return Group(line, table)


class PairRunner(Runner):
    """One IR and one RGB source + :class:`MatchPipeline`, until one source ends (see
    :class:`~mvd_edge.match.runner.Runner` for the life cycle, :func:`run_match` for the arguments).

    Pairing: two files (or folders) at different frame rates are paired by media time, as a site
    pairs its cameras (:class:`~mvd_edge.match.site.TimeSync`): one step per frame of the slower
    stream, with the frame of the faster one within half of its frame period of the same time
    (the faster stream's other frames are skipped, counted in ``summary["pairing"]``), and a
    warning. Otherwise (the same rate, or a live source) frames are taken in lockstep, one from
    each source per step. ``result``: the last step's :class:`StepResult`; ``error``: the
    message of a source that failed for good (``run`` then raises it)."""

    def __init__(self, ir: str | SourceSpec | FrameSource, rgb: str | SourceSpec | FrameSource, embedder,
                 detectors: dict[str, Detector], *, config: MatcherConfig | None = None,
                 cameras: dict[str, SourceSpec] | None = None, events: str | Path | None = None,
                 save: str | Path | None = None, show: bool = False, realtime: bool = False, queue_size: int = 8,
                 open_timeout: float = 10.0, max_offline: float | None = 30.0, render_height: int = 360,
                 status: bool = True, profile: bool = False, console=None, sinks: Sequence = (), metrics=None,
                 crops=None):
        from mvd_edge.match.render import Window

        window = Window() if show else None  # fail before opening anything
        kw = dict(queue_size=queue_size, realtime=realtime, open_timeout=open_timeout, max_offline=max_offline)
        srcs = {"ir": _as_source(ir, "ir", cameras, **kw), "rgb": _as_source(rgb, "rgb", cameras, **kw)}
        super().__init__(srcs, events=events, sinks=sinks, metrics=metrics)
        self.pipe = MatchPipeline(embedder, detectors, config)
        self.embedder, self.detectors, self.events_path = embedder, detectors, events
        self.save, self.window, self.render_height = save, window, render_height
        self.status, self.profile, self.console = status and console is not None, profile, console
        self.crops = crops
        self.video = None
        self.live = None
        self.runs = StepRuns()
        self.error: str | None = None
        self.result: StepResult | None = None
        self.last: dict[str, FramePacket | None] = {"ir": None, "rgb": None}
        self.lat: deque = deque(maxlen=2000)
        self._last_refresh = 0.0
        self.sync = None  # a TimeSync when the two streams are paired by time
        self.unpaired = 0  # time pairing: steps of the slower stream without a frame of the other

    def _timer(self) -> StageTimer:
        return self.pipe.timer

    def step_result(self) -> StepResult | None:
        return self.result

    def _started(self) -> None:
        srcs = self.sources
        if self.save is not None:
            from mvd_edge.match.render import VideoSink

            self.video = VideoSink(self.save, srcs["ir"].fps)
        fps = {s: float(srcs[s].fps or 0.0) for s in STREAMS}
        start_extra: dict[str, Any] = {}
        if not any(srcs[s].live for s in STREAMS) and min(fps.values()) > 0 \
                and abs(fps["ir"] - fps["rgb"]) > 1e-3 * max(fps.values()):
            from mvd_edge.match.site import TimeSync  # site builds on this module: imported when needed

            slow, fast = min(fps.values()), max(fps.values())
            self.sync = TimeSync(srcs, step_fps=slow, tolerance=0.5 / fast)
            warning = (f"the streams' frame rates differ (ir {fps['ir']:g} fps, rgb {fps['rgb']:g} fps): frames "
                       f"are paired by time, one pair per {1 / slow:.3f} s, within {0.5 / fast:.3f} s")
            _log.warning(warning)
            start_extra = {"pairing": "time", "warning": warning}
            self.pipe.pair_times = True
        cams = {s: {"modality": s, "source": srcs[s].spec.label, "fps": srcs[s].fps} for s in STREAMS}
        self.writer.write(start_event("pair", cams, self.embedder, self.pipe.config.as_dict(), **start_extra,
                                      ir_source=srcs["ir"].spec.label, rgb_source=srcs["rgb"].spec.label,
                                      fps={s: srcs[s].fps for s in STREAMS},
                                      detector={s: getattr(self.detectors[s], "name", type(self.detectors[s]).__name__)
                                                for s in STREAMS}))
        if self.status:
            from rich.live import Live

            self.live = Live(console=self.console, auto_refresh=False, transient=False)
            self.live.start()

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        self.push_metrics(force)
        if self.live is not None and (force or now - self._last_refresh > 0.25):
            el, n = self.elapsed(), self.steps
            self.live.update(_status_text(self.pipe, self.sources, n, (n - 1) / el if el > 0 and n > 1 else 0.0,
                                          self.writer, self.profile), refresh=True)
            self._last_refresh = now

    def _next_frame(self, s: str) -> FramePacket | None | bool:
        """The next frame of stream ``s``; None: the source ended; False: the run's time is up."""
        t0 = time.perf_counter()
        while True:
            pkt = self.sources[s].get(timeout=0.1)
            if pkt is not False:
                self.pipe.timer.add("wait." + s, time.perf_counter() - t0)
                return pkt
            self._refresh()
            if self.out_of_time():
                return False

    def _ended(self, s: str) -> bool:
        self.error = self.sources[s].error
        self.reason = f"{s} source ended" + (f": {self.error}" if self.error else "")
        return False

    def _next_pair(self) -> dict[str, FramePacket] | str | None:
        """The next pair of frames; a stream's name when it ended; None when the run's time is up."""
        if self.sync is None:  # lockstep
            pkts: dict[str, FramePacket] = {}
            for s in STREAMS:
                pkt = self._next_frame(s)
                if pkt is False:
                    return None
                if pkt is None:
                    return s
                pkts[s] = pkt
            return pkts
        while True:  # by time
            for s in STREAMS:
                if s in self.sync.ended:
                    return s
            t0 = time.perf_counter()
            nxt = self.sync.next()
            self.pipe.timer.add("wait.sync", time.perf_counter() - t0)
            if nxt is None:
                return next((s for s in STREAMS if s in self.sync.ended), STREAMS[0])
            frames = nxt[1]
            if len(frames) == len(STREAMS):
                return frames
            self.unpaired += 1
            self._refresh()
            if self.out_of_time():
                return None

    def step(self) -> bool:
        pkts = self._next_pair()
        if pkts is None:
            self.reason = f"--duration {self.deadline - self._t_start:g} s reached"
            return False
        if isinstance(pkts, str):
            return self._ended(pkts)
        self.first_step()
        with interrupts_deferred():  # a step is whole: its events, its video frame and its count
            return self._process(pkts)

    def _process(self, pkts: dict[str, FramePacket]) -> bool:
        pipe = self.pipe
        res = pipe.step(pkts["ir"], pkts["rgb"])
        self.lat.append(time.monotonic() - min(pkts["ir"].captured, pkts["rgb"].captured))
        self.steps += 1
        self.last.update(pkts)
        self.runs.add(pkts["ir"].index, pkts["rgb"].index)
        t = time.perf_counter()
        for ev in res.events:
            self.writer.write(ev)
            if self.crops is not None and ev["event"] == "match":
                for s in STREAMS:
                    self.crops.save(s, s, ev[f"{s}_frame"], ev["global_id"], pkts[s].image, ev[f"{s}_box"])
        t = pipe._tick("write", t)
        self.result = res
        if self.video is not None or self.window is not None:
            from mvd_edge.match.render import render_side_by_side

            header = f"frame {res.frame}  ir {pkts['ir'].index}  rgb {pkts['rgb'].index}  pairs {len(res.pairs)}"
            canvas = render_side_by_side(pkts["ir"].image, pkts["rgb"].image, res.tracks["ir"], res.tracks["rgb"],
                                         res.pairs, height=self.render_height, header=header)
            t = pipe._tick("render", t)
            if self.video is not None:
                self.video.write(canvas)
                t = pipe._tick("save", t)
            if self.window is not None and not self.window.show(canvas):
                self.reason = "window closed"
                return False
        self._refresh()
        return True

    def _closing(self) -> dict[str, Any]:
        elapsed = self.elapsed()
        for ev in self.pipe.finish(self.last["ir"], self.last["rgb"]):
            self.writer.write(ev)
        summary = _summary(self.pipe, self.sources, self.steps, elapsed, time.monotonic() - (self._t_start or 0.0),
                           self.writer, self.reason, self.lat, self._rss_start, self.video, self.events_path)
        if self.sync is not None:
            summary["pairing"] = {"by": "time", "step_s": round(self.sync.period, 6),
                                  "tolerance_s": round(self.sync.tolerance, 6), "unpaired_steps": self.unpaired,
                                  "skipped": dict(self.sync.late)}
        return summary

    def _end_event(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {"event": "end", "frames": self.steps, "steps": self.runs.runs, "steps_truncated": self.runs.truncated,
                "summary": summary}

    def _closed_outputs(self, summary: dict[str, Any]) -> None:
        if self.video is not None:
            self.video.close()
        if self.window is not None:
            self.window.close()
        if self.live is not None:
            self._refresh(force=True)
            self.live.stop()

    def run(self, max_steps: int | None = None, duration: float | None = None,
            on_step: Callable[[StepResult], None] | None = None) -> dict[str, Any]:
        summary = super().run(max_steps, duration, on_step)
        if self.error is not None:
            exc = SourceError(self.error)
            exc.summary = summary  # type: ignore[attr-defined]
            raise exc
        return summary


def run_match(ir: str | SourceSpec | FrameSource, rgb: str | SourceSpec | FrameSource, embedder,
              detectors: dict[str, Detector], *, config: MatcherConfig | None = None,
              cameras: dict[str, SourceSpec] | None = None, events: str | Path | None = None,
              save: str | Path | None = None, show: bool = False, max_frames: int | None = None,
              duration: float | None = None, realtime: bool = False, queue_size: int = 8,
              open_timeout: float = 10.0, max_offline: float | None = 30.0, render_height: int = 360,
              status: bool = True, profile: bool = False, console=None,
              on_step: Callable[[StepResult], None] | None = None, sinks: Sequence = (),
              metrics=None, crops=None) -> dict[str, Any]:
    """Run the matcher on two sources until one ends, ``max_frames`` steps or ``duration`` seconds
    (a :class:`PairRunner`'s ``run``).

    ``ir``/``rgb``: source text (see :func:`~mvd_edge.match.sources.parse_source`), a
    :class:`SourceSpec` or a ready :class:`FrameSource` (not started). ``events``: JSONL
    path (:mod:`~mvd_edge.match.events`). ``save``: annotated side-by-side video. ``show``:
    a window (needs OpenCV with GUI and a display). ``status``: a live status line on
    ``console`` (rich); ``profile``: per-stage figures live too. ``on_step``: called with
    each :class:`StepResult` (tests, embedding in other programs). ``sinks``: network event
    sinks (:mod:`~mvd_edge.match.sinks`) that get every event the file gets; closed (with up to
    10 s to deliver their backlog) at the end, their counters in ``summary["sinks"]``.
    ``metrics``: a :class:`~mvd_edge.match.sinks.MatchMetrics` updated a few times per second.
    ``crops``: a :class:`~mvd_edge.match.sinks.CropSaver` that keeps crops of matched people
    (both modalities) for ``mvd-edge gallery build``.

    Returns a summary dict (frames, fps, per-stage ms, sources' counters, pairs, global ids,
    events written, reason the run ended). Raises :class:`SourceError` (a RuntimeError) when
    a source never opens or fails for good; the summary is then in ``exc.summary``.
    """
    if max_frames is not None and max_frames < 1:
        raise UsageError(f"--max-frames must be >= 1, got {max_frames}")
    if duration is not None and not duration > 0:
        raise UsageError(f"--duration must be > 0, got {duration}")
    runner = PairRunner(ir, rgb, embedder, detectors, config=config, cameras=cameras, events=events, save=save,
                        show=show, realtime=realtime, queue_size=queue_size, open_timeout=open_timeout,
                        max_offline=max_offline, render_height=render_height, status=status, profile=profile,
                        console=console, sinks=sinks, metrics=metrics, crops=crops)
    return runner.run(max_frames, duration, on_step)


def _summary(pipe: MatchPipeline, srcs: dict[str, FrameSource], n: int, elapsed: float, wall: float,
             writer: EventWriter, reason: str, lat: deque, rss_start: float, sink, events) -> dict[str, Any]:
    tm = pipe.timer
    work = sum(tm.total.get(st, 0.0) for st in tm.stages() if not st.startswith(("wait.", "embed.")))
    lat_ms = sorted(1000 * v for v in lat)
    return {
        "frames": n,
        "ended": reason,
        "seconds": round(elapsed, 3),
        "wall_seconds": round(wall, 3),
        "fps": round((n - 1) / elapsed, 2) if n > 1 and elapsed > 0 else 0.0,
        "fps_compute": round(n / work, 2) if work > 0 else 0.0,
        "stage_ms": {st: round(tm.mean_ms(st), 3) for st in tm.stages()},
        "latency_ms": {"p50": round(lat_ms[len(lat_ms) // 2], 1), "p95": round(lat_ms[int(0.95 * (len(lat_ms) - 1))], 1)}
        if lat_ms else {},
        "crops_embedded": pipe.crops_embedded,
        "tracks": dict(pipe.n_tracks),
        "pairs_now": len(pipe.associator.reported),
        "global_ids": pipe.associator.global_ids_issued,
        "events": dict(writer.counts),
        "events_path": str(events) if events is not None else None,
        "video": str(sink.path_written) if sink is not None and sink.path_written else None,
        "sources": {s: {"label": srcs[s].spec.label, "fps": srcs[s].fps, "dropped": srcs[s].dropped,
                        **srcs[s].stats.as_dict(), "gaps": [list(g) for g in srcs[s].gaps],
                        "gap_times": [list(g) for g in srcs[s].gap_times],
                        "error": srcs[s].error} for s in STREAMS},
        "rss_mb": {"start": round(rss_start, 1), "end": round(rss_mb(), 1)},
        "config": pipe.config.as_dict(),
        "detector": {s: getattr(pipe.detectors[s], "name", type(pipe.detectors[s]).__name__) for s in STREAMS},
    }
