"""The matcher's settings: one typed, nested config (:class:`MatcherConfig`), its loader and
:func:`resolve`, which fills what the user left at its default from the engine's sidecar.

Sections: ``track`` (the tracker), ``crop`` (which boxes are cut and embedded), ``bank`` (each
track's feature bank), ``association`` (when two tracks are one person: the pair rule),
``site`` (N cameras: identities, time steps), ``detector``, ``sources`` and ``outputs`` (what
``mvd-edge match`` reads and writes), and ``device``. Every field's default is written once,
here, and its range is checked once, when its section is built (so the Python API, scripts
and the CLI get the same one-line error naming the key).

Loading is the training config's machinery (:mod:`mvd_edge.core.config`): defaults, then a
YAML file, then ``key.path=value`` overrides (``mvd-edge match --set``); an unknown key is an
error naming it. The loader records where each value came from (:attr:`MatcherConfig.origin`),
and :func:`resolve` adds the engine sidecar's operating point for the keys nobody set.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from mvd_edge.core.config import ConfigError, explicit_keys, flatten, from_dict, load_config, set_key, to_dict
from mvd_edge.core.sizes import parse_size

__all__ = ["MatcherConfig", "Resolved", "load_matcher_config", "resolve"]

DEFAULT = "default"
SIDECAR = "engine sidecar"


def _num(default: Any, lo: float, hi: float, doc: str, open_lo: bool = False, open_hi: bool = False) -> Any:
    """A numeric field: its default, its range (``open_*``: the bound itself excluded) and what it does."""
    return field(default=default, metadata={"range": (lo, hi, open_lo, open_hi), "doc": doc})


def _opt(default: Any, doc: str, choices: tuple[str, ...] | None = None) -> Any:
    return field(default=default, metadata={"doc": doc, "choices": choices})


class _Section:
    """Range and choice checks of a section's fields (from their metadata), with messages naming ``section.key``."""

    NAME: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            v = getattr(self, f.name)
            key = f"{self.NAME}.{f.name}"
            if v is None:
                if "None" not in str(f.type):
                    raise ConfigError(f"{key} must be set")
                continue
            choices = f.metadata.get("choices")
            if choices and v not in choices:
                raise ConfigError(f"{key}: {v!r} is not one of {', '.join(choices)}")
            if "range" in f.metadata:
                _check_range(key, v, *f.metadata["range"])


def _check_range(key: str, v: Any, lo: float, hi: float, lo_open: bool, hi_open: bool) -> None:
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    ok = ok and (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)
    if ok and type(lo) is int:
        ok = float(v).is_integer()
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        kind = "an integer" if type(lo) is int else "a finite number"
        raise ConfigError(f"{key} must be {kind} in {interval}, got {v!r}")


@dataclass
class TrackConfig(_Section):
    """The per-stream tracker (:class:`~mvd_edge.match.track.ByteTracker`)."""

    NAME: ClassVar[str] = "track"
    high: float = _num(0.5, 0.0, 1.0, "detection score of the first association round")
    low: float = _num(0.1, 0.0, 1.0, "lowest detection score a track may take (second round)")
    # measured (benchmarks/tracking.py, docs): more recall with oracle and student than 2
    min_hits: int = _num(1, 1, 100_000, "detections before a track is confirmed")
    max_age: int = _num(30, 1, 100_000, "frames a track survives undetected")
    appearance: float = _num(1.0, 0.0, 100.0, "weight of re-id appearance where IoU is ambiguous (people "
                                              "crossing); 0: IoU only")
    split: float = _num(4.0, 0.0, 100.0, "a track whose new crops agree with its bank this many standard "
                                         "deviations below its usual agreement (and at least 0.1) gets a new id: "
                                         "the tracker moved it onto someone else; 0: never")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.low > self.high:
            raise ConfigError(f"track.low ({self.low}) must not exceed track.high ({self.high})")


@dataclass
class CropConfig(_Section):
    """Which tracks are cut out and embedded, and how."""

    NAME: ClassVar[str] = "crop"
    margin: float = _num(0.08, 0.0, 2.0, "grow each box by this share of its height on every side")
    aspect: float | None = _num(None, 0.0, 100.0, "then widen or heighten it to this width/height "
                                                  "(default: the embedder's input ratio)", open_lo=True)
    min_box_height: int = _num(32, 0, 100_000, "skip boxes lower than this (px)")
    max_occlusion: float = _num(0.3, 0.0, 1.0, "skip a crop more than this share covered by another box",
                                open_lo=True)
    occluded_bootstrap: bool = _opt(True, "still take occluded crops while the track has fewer than "
                                          "bank.min_features features")
    embed_every: int = _num(1, 1, 10_000, "embed each track (once it has bank.min_features) every N-th step")


@dataclass
class BankConfig(_Section):
    """Each track's feature bank (:class:`~mvd_edge.match.bank.FeatureBank`)."""

    NAME: ClassVar[str] = "bank"
    ema_momentum: float = _num(0.9, 0.0, 1.0, "EMA weight of a bank's old descriptor", open_hi=True)
    last_n: int = _num(30, 1, 100_000, "features kept per track")
    min_features: int = _num(3, 1, 100_000, "features a track needs before it is matched")


@dataclass
class AssociationConfig(_Section):
    """When an IR track and an RGB track are one person (:mod:`~mvd_edge.match.associate`); the site
    uses ``threshold`` (cross-modal), ``margin``, ``hysteresis`` and ``stickiness`` too."""

    NAME: ClassVar[str] = "association"
    threshold: float = _num(0.5, -1.0, 1.0, "cosine a cross-modal match needs (default: the engine's operating "
                                            "point from `calibrate-threshold`, else 0.5)")
    margin: float = _num(0.0, 0.0, 2.0, "a match must beat its tracks' other similarities by this much "
                                        "(default: the engine's, with its threshold)")
    hysteresis: int = _num(5, 1, 10_000, "steps a match must hold before it is reported / fail before it is dropped")
    stickiness: float = _num(0.05, 0.0, 2.0, "bonus of a held pair over a new candidate")
    max_gap: int = _num(5, 0, 100_000, "a track undetected for more steps is not matched")
    # chosen on validation pairs (benchmarks/tracking.py): +0.02 recall, -0.02 precision
    report_coast: int = _num(1, 0, 100_000, "report a held pair for up to this many steps the detector missed one "
                                            "of its people, with the tracker's predicted box; 0: off")
    fast_pairing: bool = _opt(True, "take the engine's calibrated fast and early points (when they reached "
                                    "their precision)")
    fast_threshold: float | None = _num(None, -1.0, 1.0, "a pair this similar is reported after fast_hysteresis "
                                                         "steps (default: the engine's fast point; unset: never)")
    fast_margin: float = _num(0.0, 0.0, 2.0, "the margin of the fast point")
    fast_hysteresis: int = _num(1, 1, 10_000, "steps of a fast pair")
    early_threshold: float | None = _num(None, -1.0, 1.0, "a new track with fewer than bank.min_features features "
                                                          "is paired at this similarity (default: the engine's "
                                                          "early point; unset: it waits)")
    early_margin: float = _num(0.0, 0.0, 2.0, "the margin of the early point")
    reid_threshold: float = _num(0.8, -1.0, 1.0, "cosine at which a new pair takes an ended pair's global id")
    reid_memory: int = _num(256, 0, 10_000_000, "ended global ids remembered for re-use")
    reid_memory_faiss_above: int = _num(4096, 1, 10**15, "past that many, they are searched with faiss "
                                                        "(mvd-edge[gallery])")


@dataclass
class SiteConfig(_Section):
    """N cameras (``match --cameras`` alone; :mod:`~mvd_edge.match.site`)."""

    NAME: ClassVar[str] = "site"
    same_threshold: float = _num(0.6, -1.0, 1.0, "cosine a same-modality match (RGB-RGB, IR-IR) needs (default: "
                                                 "the engine's same-modality point, else 0.6)")
    gallery_size: int = _num(10_000, 1, 10**9, "identities remembered (least recently seen forgotten first)")
    identity_momentum: float = _num(0.8, 0.0, 1.0, "EMA weight of an identity's old descriptor", open_hi=True)
    faiss_above: int = _num(5_000, 0, 10**15, "past this many identities, search a faiss shortlist "
                                             "(mvd-edge[gallery])")
    step_fps: float | None = _num(None, 1e-3, 1000.0, "time steps per second (default: the fastest camera's fps)")
    sync_tolerance: float | None = _num(None, 0.0, 60.0, "seconds a frame may be off its step (default: half a step)")


@dataclass
class DetectorConfig(_Section):
    """Person detectors (:func:`~mvd_edge.match.detect.make_detector`)."""

    NAME: ClassVar[str] = "detector"
    name: str = _opt("auto", "every stream: auto (RGB ssdlite+mog2, IR knn), ssdlite, ssdlite+mog2, mog2, knn, warm, "
                             "mog2+warm, knn+warm, hog, person-synth, or a YOLO-style .onnx")
    ir: str | None = _opt(None, "the IR stream's detector (default: name)")
    rgb: str | None = _opt(None, "the RGB stream's detector (default: name)")
    ir_boxes: str | None = _opt(None, "MOT box file for the IR stream (replaces its detector)")
    rgb_boxes: str | None = _opt(None, "MOT box file for the RGB stream")
    retrack: bool = _opt(False, "ignore track ids in box files; link boxes with our tracker")
    min_box_score: float | None = _num(None, 0.0, 1.0, "drop box-file rows with a lower score")
    layout: str = _opt("auto", "ONNX detector output", ("auto", "v8", "v5", "e2e"))
    size: str = _opt("640x640", "ONNX detector input HEIGHTxWIDTH if dynamic")
    conf: float = _num(0.35, 0.0, 1.0, "ONNX detector score threshold")
    hog_upscale: float = _num(1.0, 0.0, 8.0, "HOG: resize frames by this first (2 finds ~50 px people, 4x slower)",
                              open_lo=True)
    hog_threshold: float = _num(0.0, -100.0, 100.0, "HOG: SVM margin a window needs")
    tiles: int = _num(2, 1, 2, "ssdlite (auto on RGB): 1 runs the whole frame only, 2 also its left and right halves "
                               "(smaller people found, 2.5x the time)")
    every: int = _num(1, 1, 1000, "detect on every N-th frame of a stream, the tracker's prediction in between "
                                  "(sooner while a track is tentative); 1: every frame")

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            parse_size(self.size, "detector.size")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None


@dataclass
class SourcesConfig(_Section):
    """How frames are read (:class:`~mvd_edge.match.sources.FrameSource`)."""

    NAME: ClassVar[str] = "sources"
    realtime: bool = _opt(False, "files: play at their fps and drop frames when behind, like a live camera")
    queue_size: int = _num(8, 1, 10_000, "frames buffered per source")
    open_timeout: float = _num(10.0, 0.0, 1e6, "seconds to keep trying to open a live source")
    max_offline: float = _num(30.0, 0.0, 1e6, "seconds a live source may stay lost before the run fails")


@dataclass
class OutputsConfig(_Section):
    """What a run writes besides ``--events``."""

    NAME: ClassVar[str] = "outputs"
    video: str | None = _opt(None, "the annotated video (.mp4)")
    crops: str | None = _opt(None, "crops of matched people, DIR/<modality>/<global id>/..., for `gallery build`")
    summary_json: str | None = _opt(None, "the run summary")
    webhook: list[str] = field(default_factory=list, metadata={"doc": "POST every event to these http(s) URLs"})
    mqtt: list[str] = field(default_factory=list, metadata={"doc": "publish every event to these "
                                                                    "mqtt://host[:port]/topic (mvd-edge[site])"})
    sink_queue: int = _num(10_000, 1, 10_000_000, "events a network sink holds while its receiver is away")
    metrics_port: int | None = _num(None, 0, 65535, "serve Prometheus metrics on 127.0.0.1:PORT/metrics")
    profile: bool = _opt(False, "show per-stage timings live")


MATCHING = ("track", "crop", "bank", "association", "site")
"""The sections that decide what is matched (recorded in the events' ``start`` and the summary)."""


@dataclass
class MatcherConfig:
    """Every setting of the matcher and of ``mvd-edge match`` (see the module docstring)."""

    track: TrackConfig = field(default_factory=TrackConfig)
    crop: CropConfig = field(default_factory=CropConfig)
    bank: BankConfig = field(default_factory=BankConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    site: SiteConfig = field(default_factory=SiteConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    outputs: OutputsConfig = field(default_factory=OutputsConfig)
    device: str | None = None  # the engine's device (default: the engine's own)

    def __post_init__(self) -> None:
        # where each value came from ("file X", "--set", "engine sidecar"); keys absent: the default
        self.origin: dict[str, str] = {}

    def as_dict(self) -> dict[str, Any]:
        """The matching sections as a plain dict (the events' ``start`` and the summary record them;
        outputs are left out: their URLs may hold credentials)."""
        return {k: dataclasses.asdict(getattr(self, k)) for k in MATCHING}

    def updated(self, values: dict[str, Any], source: str = "--set") -> MatcherConfig:
        """A new, checked config with the dotted ``values`` (``{"association.threshold": 0.6}``) set,
        recorded as coming from ``source``; an unknown key is the :class:`ConfigError` ``--set`` gives."""
        data = to_dict(self)
        for key, value in values.items():
            set_key(data, key, value)
        out = from_dict(MatcherConfig, data)
        out.origin = {**self.origin, **{k: source for k in values}}
        return out

    def describe(self) -> list[str]:
        """One line per key: ``key = value  (where it came from)``, the value as ``--set`` takes it
        (``match --print-config``)."""
        return [f"{k} = {json.dumps(v)}  ({self.origin.get(k, DEFAULT)})" for k, v in flatten(to_dict(self)).items()]


def load_matcher_config(path: str | Path | None = None, sets: list[str] | None = None) -> MatcherConfig:
    """Defaults, then the YAML file ``path`` (if any), then the ``key.path=value`` ``sets``; every key
    and range is checked. :attr:`MatcherConfig.origin` records which keys the file and the sets gave."""
    cfg = load_config(MatcherConfig, path, sets)
    cfg.origin = explicit_keys(path, sets)
    return cfg


@dataclass
class Resolved:
    """:func:`resolve`'s answer: the config to run, the warnings to print and ``source``, one line
    saying where the thresholds came from (the run summary keeps it)."""

    config: MatcherConfig
    warnings: list[str]
    source: str


def resolve(cfg: MatcherConfig, info: dict | None, site: bool = False) -> Resolved:
    """Fill the operating point from the engine's sidecar ``info`` where the user set nothing.

    ``association.threshold``: the user's, else the sidecar's ``operating_point`` (a warning when it
    did not reach its target precision), else the default with a warning saying why there is none.
    ``association.margin``: the user's, else the sidecar's when its threshold is used (the two were
    chosen together), else the default. ``fast_*`` / ``early_*``: the user's, else the sidecar's
    ``fast`` / ``fast_early`` points when they reached their precision and ``association.fast_pairing``
    is on. ``site.same_threshold``: the user's, else ``operating_point.same_modality``, else the
    default (``site``: warn about it). A malformed operating point is an :class:`EngineError`."""
    from mvd_edge.runtime.sidecar import operating_point

    info = info or {}
    point = operating_point(info)
    a = cfg.association
    given = {k for k in cfg.origin if cfg.origin[k] != SIDECAR}
    changes: dict[str, Any] = {}
    notes: list[str] = []
    warnings: list[str] = []
    if "association.threshold" in given:
        notes.append(f"threshold from {cfg.origin['association.threshold']}")
    elif point:
        changes["association.threshold"] = point["threshold"]
        target = point.get("target_precision")
        if point.get("reached") is False:
            got = point.get("precision")
            warnings.append(f"the engine's operating point did not reach its target pair precision {target} "
                            f"(measured {got}); its threshold is the most precise one found")
            notes.append(f"threshold from the engine sidecar, pair precision {got} (target {target} not reached)")
        else:
            notes.append(f"threshold from the engine sidecar (pair precision {target} on "
                         f"{point.get('identities', '?')} held-out identities)" if target is not None
                         else "threshold from the engine sidecar")
    else:
        notes.append("default threshold")
        warnings.append(no_operating_point(info, f"the default threshold {a.threshold}"))
    if "association.margin" in given:
        notes.append(f"margin from {cfg.origin['association.margin']}")
    elif "association.threshold" not in given and "margin" in point:
        changes["association.margin"] = point["margin"]
        notes.append("margin from the engine sidecar")
    else:
        notes.append(f"margin {a.margin:g} (default)")
    for key, prefix, what in (("fast", "fast", "fast pairing"), ("fast_early", "early", "early pairing")):
        fast = point.get(key)
        if a.fast_pairing and fast and fast.get("reached") is True and f"association.{prefix}_threshold" not in given:
            changes[f"association.{prefix}_threshold"] = fast["threshold"]
            if f"association.{prefix}_margin" not in given:
                changes[f"association.{prefix}_margin"] = fast["margin"]
            notes.append(f"{what} at {fast['threshold']:.3f} (margin {fast['margin']:.3f}) from the sidecar")
    if site:
        notes.append(_same_threshold(cfg, info, point, given, changes, warnings))
    out = cfg.updated(changes, SIDECAR)
    return Resolved(out, warnings, "; ".join(notes))


def _same_threshold(cfg: MatcherConfig, info: dict, point: dict, given: set[str], changes: dict[str, Any],
                    warnings: list[str]) -> str:
    """:func:`resolve`'s same-modality threshold (site runs): the user's, the sidecar's, or the default."""
    default = cfg.site.same_threshold
    same = point.get("same_modality")
    if "site.same_threshold" in given:
        return f"same-modality threshold from {cfg.origin['site.same_threshold']}"
    if same:
        changes["site.same_threshold"] = same["threshold"]
        if same.get("reached") is False:
            warnings.append(f"the engine's same-modality threshold did not reach its target precision "
                            f"(precision {same.get('precision')})")
        return "same-modality threshold from the engine sidecar"
    if info.get("engine_file"):
        warnings.append(f"the engine has no same-modality operating point: using {default} "
                        "(re-run `mvd-edge calibrate-threshold` to measure one)")
    else:
        warnings.append(no_operating_point(info, f"the default same-modality threshold {default}"))
    return f"default same-modality threshold {default}"


def no_operating_point(info: dict | None, used: str) -> str:
    """The warning for a model without a calibrated threshold: why it is not known (no sidecar at
    all, which one is missing, or a sidecar never calibrated) and what is ``used`` instead."""
    info = info or {}
    calibrate = "calibrate one with `mvd-edge calibrate-threshold`"
    if info.get("engine_file"):
        return f"the engine {info['engine_file']} has no operating point in its sidecar (never calibrated): using " \
               f"{used} ({calibrate})"
    if info.get("missing_sidecar"):
        return f"the engine's sidecar {info['missing_sidecar']} is missing, so its calibrated threshold is not " \
               f"known: using {used} instead (restore the sidecar, or build-engine then {calibrate})"
    if info.get("backend") == "torch":
        return f"a checkpoint ({info.get('checkpoint', '.pt')}) has no sidecar, so no calibrated threshold: using " \
               f"{used} (build an engine, then {calibrate})"
    return f"no engine sidecar was read, so the calibrated threshold is not known: using {used} ({calibrate})"
