"""The matcher: :class:`Matcher` (one step per time step over N cameras, with the association rule
as a policy) and :func:`run_match` (the loop of a pair of cameras, ``ir`` and ``rgb``).

A step: detect people in each camera's frame, track them per camera, crop the tracks detected in
this frame (skipping boxes that are too small or largely covered by another box), embed all crops
of all cameras in one batch, update the tracks' feature banks, and hand the tracks to the policy
(the association rule, see :class:`Matcher`). Every stage is timed; the Embedder's own stage times
(preprocess/infer/postprocess) are recorded as ``embed.<stage>``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.core.preprocess import box_crop, box_overlap
from mvd_edge.match.associate import PairPolicy
from mvd_edge.match.bank import FeatureBank
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detections, Detector, box_iou
from mvd_edge.match.runner import Runner
from mvd_edge.match.sources import FramePacket, FrameSource, SourceSpec, parse_source
from mvd_edge.match.track import ByteTracker, PassthroughTracker, Track

__all__ = ["PAIR_CAMERAS", "Matcher", "SiteCamera", "StageTimer", "StepResult", "pair_matcher", "run_match"]



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


@dataclass(frozen=True)
class SiteCamera:
    """One camera: ``name``, ``modality`` and what to read (``spec``). A pair is the two cameras
    :data:`PAIR_CAMERAS`, ``ir`` and ``rgb``."""

    name: str
    modality: Modality
    spec: SourceSpec | None = None


PAIR_CAMERAS = (SiteCamera("ir", Modality.INFRARED), SiteCamera("rgb", Modality.VISIBLE))


@dataclass
class StepResult:
    """One step: its number, the frames and tracks of the cameras that had a frame, its events."""

    frame: int
    frames: dict[str, FramePacket]
    tracks: dict[str, list[Track]]
    events: list[dict[str, Any]]
    n_crops: int
    seconds: float


class Matcher:
    """Detect, track, crop, embed and bank on N cameras, then the association rule: one :meth:`step`
    per time step.

    The rule is a policy object (``policy``): :class:`~mvd_edge.match.associate.PairPolicy` (two
    cameras ``ir`` and ``rgb``: IR x RGB pairs of tracks, Hungarian with hysteresis and fast /
    early pairing) or :class:`~mvd_edge.match.site.SitePolicy` (N cameras: global identities). It
    is told of every track the trackers start (``track_new(camera, id)``) and end or split
    (``track_removed(camera, id, reason)``, reason ``track_ended`` or ``track_split``), and gives
    each step's events (``associate(packets, tracks)``) once the banks are up to date.

    Args:
        embedder: an :class:`mvd_edge.runtime.Embedder` (any backend/precision).
        cameras: the cameras (names unique), e.g. :data:`PAIR_CAMERAS`.
        detectors: ``{camera name: Detector}``.
        config: :class:`~mvd_edge.match.config.MatcherConfig`.
        policy: the association rule (see above); bound to this matcher here.
        trackers: ``{camera name: tracker}``; default: :class:`PassthroughTracker` for a detector
            that yields ids (a MOT file with track ids), else :class:`ByteTracker`.
    """

    def __init__(self, embedder, cameras, detectors: dict[str, Detector], config: MatcherConfig | None, policy,
                 trackers: dict[str, Any] | None = None):
        names = [c.name for c in cameras]
        if len(set(names)) != len(names) or not names:
            raise UsageError(f"camera names must be unique and at least one, got {names}")
        missing = set(names) - set(detectors)
        if missing:
            raise UsageError(f"no detector for camera(s) {sorted(missing)}")
        self.embedder, self.cameras = embedder, {c.name: c for c in cameras}
        self.config = c = config or MatcherConfig()
        self.detectors = detectors
        self.trackers = trackers or {n: default_tracker(detectors[n], c) for n in names}
        self.banks = {n: FeatureBank(embedder.dim, c.bank.ema_momentum, c.bank.last_n) for n in names}
        self.timer = StageTimer()
        spec = getattr(embedder, "spec", None)
        self.aspect = c.crop.aspect or (spec.width / spec.height if spec is not None else None)
        self.frame = 0  # the step number
        self.crops_embedded = 0
        self.tracks_seen: dict[str, set[int]] = {n: set() for n in names}  # ids, pruned when tracks end
        self.n_tracks = {n: 0 for n in names}
        self.skipped = {n: 0 for n in names}  # steps since camera n ran its detector, modulo detector.every
        self.policy = policy
        policy.bind(self)

    def _crop(self, img: np.ndarray, box: np.ndarray) -> np.ndarray | None:
        """The re-id crop of ``box`` (x1y1x2y2): margin, aspect, border replication; None if too small."""
        c = self.config
        return box_crop(img, box, c.crop.margin, self.aspect, c.crop.min_box_height)

    def _tick(self, stage: str, t0: float) -> float:
        t1 = time.perf_counter()
        self.timer.add(stage, t1 - t0)
        return t1

    def step(self, frames: dict[str, FramePacket | np.ndarray]) -> StepResult:
        """One time step with the frames of the cameras that have one (``{camera name: FramePacket or
        uint8 BGR image}``; others are left out). Stages are timed (``detect.<camera>``, ``track``,
        ``crop``, ``embed``, the Embedder's own ``embed.<stage>``, ``associate``)."""
        unknown = set(frames) - set(self.cameras)
        if unknown:
            raise UsageError(f"frames for unknown camera(s) {sorted(unknown)}; cameras: {sorted(self.cameras)}")
        packets = {n: f if isinstance(f, FramePacket) else FramePacket(self.frame, float(self.frame), f)
                   for n, f in frames.items()}
        start = t = time.perf_counter()
        dets: dict[str, Detections] = {}
        coasting = set()  # cameras whose detector skips this step: their tracks move on predictions
        for n, p in packets.items():
            if self._detects_now(n):
                dets[n] = self.detectors[n].detect(p.image, p.index)
            else:
                dets[n] = Detections.empty()
                coasting.add(n)
            t = self._tick(f"detect.{n}", t)  # a skipped step counts 0 ms: the mean stays per frame
        before = dict(self.embedder.stage_times)
        feats = {n: DetectionFeatures(self.embedder, packets[n].image, dets[n], self.banks[n], self._crop)
                 for n in packets}
        tracks = {n: self._track(n, dets[n], feats[n], n in coasting) for n in packets}
        appearance_s = sum(f.seconds for f in feats.values())
        t1 = time.perf_counter()
        self.timer.add("track", t1 - t - appearance_s)
        t = t1
        detected = {n: p for n, p in packets.items() if n not in coasting}
        n_crops, n_embedded, crop_s = self._embed(detected, dets, tracks, feats)
        if n_embedded:
            for k, v in self.embedder.stage_times.items():
                self.timer.add(f"embed.{k}", v - before.get(k, 0.0))
        t1 = time.perf_counter()
        if n_embedded or n_crops:
            self.timer.add("embed", t1 - t - crop_s + appearance_s)
        t = t1
        self.crops_embedded += n_embedded
        events = self.policy.associate(packets, tracks)
        self._tick("associate", t)
        result = StepResult(self.frame, packets, tracks, events, n_embedded, time.perf_counter() - start)
        self.frame += 1
        return result

    def _detects_now(self, n: str) -> bool:
        """Whether camera ``n`` runs its detector this step: on every ``detector.every``-th of its steps, and
        sooner while its tracker holds a tentative track; always with a tracker that cannot coast (box files)."""
        tracker, every = self.trackers[n], self.config.detector.every
        if every <= 1 or not hasattr(tracker, "coast"):
            return True
        due = self.skipped[n] == 0 or any(not tr.confirmed for tr in tracker.tracks)
        self.skipped[n] = (1 if due else self.skipped[n] + 1) % every
        return due

    def _track(self, n: str, dets: Detections, feats: DetectionFeatures, coast: bool) -> list[Track]:
        """Camera ``n``'s tracks after this frame's detections (``coast``: no detection, the tracker's
        predictions); the policy hears of ended and new tracks."""
        tracker = self.trackers[n]
        tracks = tracker.coast() if coast else tracker.update(dets, feats if self.config.track.appearance > 0 else None)
        for tid in tracker.removed:
            self.banks[n].remove(tid)
            self.tracks_seen[n].discard(tid)
            self.policy.track_removed(n, tid, "track_ended")
        for tr in tracks:
            if tr.id not in self.tracks_seen[n]:
                self.tracks_seen[n].add(tr.id)
                self.n_tracks[n] += 1
                self.policy.track_new(n, tr.id)
        return tracks

    def _embed(self, packets: dict[str, FramePacket], dets: dict[str, Detections], tracks: dict[str, list[Track]],
               feats: dict[str, DetectionFeatures]) -> tuple[int, int, float]:
        """Crop the tracks detected now and embed them in one batch across cameras into their banks;
        splits tracks that turned into someone else. Returns ``(crops chosen, crops embedded, seconds
        spent choosing and cutting the crops)``."""
        c = self.config
        t0 = time.perf_counter()
        by_id = {n: {tr.id: tr for tr in tracks[n]} for n in packets}
        chosen = {n: track_crops(packets[n].image, tracks[n], dets[n], self.banks[n], c, self.frame, self._crop)
                  for n in packets}
        n_crops = sum(len(v) for v in chosen.values())
        crop_s = time.perf_counter() - t0
        self.timer.add("crop", crop_s)
        n_embedded, splits = embed_tracks(self.embedder, [(n, chosen[n], feats[n], by_id[n], self.banks[n],
                                                           split_sigmas(self.trackers[n], c)) for n in packets])
        for n, tid, f in splits:
            self._split(n, tid, f)
        return n_crops, n_embedded + sum(f.crops_embedded for f in feats.values()), crop_s

    def _split(self, n: str, tid: int, feature: np.ndarray) -> None:
        """Track ``tid`` of camera ``n`` now follows someone else: a new id and a new bank starting from
        ``feature``; the policy hears the old id ended (``track_split``) and the new one started."""
        new = self.trackers[n].split(tid)
        self.banks[n].remove(tid)
        self.banks[n].update(new, feature)
        self.tracks_seen[n].discard(tid)
        self.tracks_seen[n].add(new)
        self.n_tracks[n] += 1
        self.policy.track_removed(n, tid, "track_split")
        self.policy.track_new(n, new)


def pair_matcher(embedder, detectors: dict[str, Detector], config: MatcherConfig | None = None,
                 trackers: dict[str, Any] | None = None) -> Matcher:
    """A :class:`Matcher` of the two cameras ``ir`` and ``rgb`` with the pair rule."""
    return Matcher(embedder, PAIR_CAMERAS, detectors, config, PairPolicy(), trackers)


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


def run_match(ir: str | SourceSpec | FrameSource, rgb: str | SourceSpec | FrameSource, embedder,
              detectors: dict[str, Detector], *, config: MatcherConfig | None = None,
              cameras: dict[str, SourceSpec] | None = None, max_frames: int | None = None,
              duration: float | None = None, status: bool = True, on_step: Callable[[Runner], None] | None = None,
              **outputs: Any) -> dict[str, Any]:
    """Run the matcher on two sources until one ends, ``max_frames`` steps or ``duration`` seconds
    (a :class:`~mvd_edge.match.runner.Runner` of a :func:`pair_matcher`).

    ``ir``/``rgb``: source text (see :func:`~mvd_edge.match.sources.parse_source`, with the names of
    ``cameras``), a :class:`SourceSpec` or a ready :class:`FrameSource` (not started); read as
    ``config.sources`` says. ``outputs``: the :class:`~mvd_edge.match.runner.Runner`'s outputs
    (``events``, ``save``, ``show``, ``sinks``, ``metrics``, ``crops``, ``render_height``, ``console``
    and ``profile`` for the ``status`` line). ``on_step``: called with the runner after each step
    (``runner.result``: the step's :class:`StepResult`).

    Returns a summary dict (frames, fps, per-stage ms, sources' counters, pairs, global ids,
    events written, reason the run ended). Raises :class:`SourceError` (a RuntimeError) when
    a source never opens or fails for good; the summary is then in ``exc.summary``.
    """
    srcs = {n: s if isinstance(s, (SourceSpec, FrameSource)) else parse_source(str(s), cameras)
            for n, s in (("ir", ir), ("rgb", rgb))}
    runner = Runner(pair_matcher(embedder, detectors, config), srcs, status=status, **outputs)
    return runner.run(max_frames, duration, on_step)
