"""Camera-stream matcher: people matched across IR and RGB cameras, a pair or a site of N.

torch-free (numpy, OpenCV, scipy, onnxruntime through :mod:`mvd_edge.runtime`). One step per time step::

    sources (threads, bounded queues) -> detect -> track (per camera) -> crops
      -> Embedder (one batch for all cameras) -> per-track feature banks -> policy -> events -> outputs

* :mod:`.sources` (camera/file/URL/folder, reconnects, drops, media time), :mod:`.detect` and
  :mod:`.foreground` (detectors), :mod:`.track` (ByteTrack-style tracker), :mod:`.bank` (feature banks);
* :mod:`.pipeline`: :class:`Matcher`, one step over N cameras with the association rule a policy:
  :mod:`.associate` (:class:`PairPolicy`, IR x RGB pairs) or :mod:`.site` (:class:`SitePolicy`, global
  identities); :mod:`.config`: :class:`MatcherConfig` and :func:`resolve` against the engine's sidecar;
* :mod:`.runner`: :class:`Runner` and :class:`TimeSync`, driving the outputs (one protocol): :mod:`.events`
  (the event schema and file), :mod:`.sinks` (webhook, MQTT, crops, metrics), :mod:`.render` (video, window).

The names below are loaded on first use (PEP 562 module ``__getattr__``): importing
``mvd_edge.match`` or one of its light sub-modules does not pull in OpenCV, scipy and the
whole pipeline, which keeps ``mvd-edge --help`` fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# the sub-module that defines each public name
_MODULES = {
    "associate": ("CrossModalAssociator", "PairPolicy", "PairUpdate"),
    "bank": ("FeatureBank",),
    "config": ("MatcherConfig", "load_matcher_config", "resolve"),
    "detect": ("Detections", "HogDetector", "MotBoxes", "OnnxDetector", "make_detector"),
    "events": ("EVENT_SCHEMA_VERSION", "EventWriter", "read_events"),
    "foreground": ("ForegroundDetector",),
    "pipeline": ("Matcher", "run_match"),
    "runner": ("Runner", "TimeSync"),
    "sinks": ("MatchMetrics", "MqttSink", "WebhookSink"),
    "site": ("SiteCamera", "SitePolicy"),
    "sources": ("FramePacket", "FrameSource", "SourceError", "SourceSpec", "load_cameras", "parse_source"),
    "track": ("ByteTracker", "PassthroughTracker", "Track"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}
__all__ = [
    "ByteTracker", "CrossModalAssociator", "Detections", "EVENT_SCHEMA_VERSION", "EventWriter", "FeatureBank",
    "ForegroundDetector", "FramePacket", "FrameSource", "HogDetector", "MatchMetrics", "Matcher", "MatcherConfig",
    "MotBoxes", "MqttSink", "OnnxDetector", "PairPolicy", "PairUpdate", "PassthroughTracker", "SiteCamera",
    "SitePolicy", "Runner", "SourceError", "SourceSpec", "TimeSync", "Track", "WebhookSink", "load_cameras",
    "load_matcher_config", "make_detector", "parse_source", "read_events", "resolve", "run_match",
]

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names come from __getattr__
    from mvd_edge.match.associate import CrossModalAssociator, PairPolicy, PairUpdate
    from mvd_edge.match.bank import FeatureBank
    from mvd_edge.match.config import MatcherConfig, load_matcher_config, resolve
    from mvd_edge.match.detect import Detections, HogDetector, MotBoxes, OnnxDetector, make_detector
    from mvd_edge.match.events import EVENT_SCHEMA_VERSION, EventWriter, read_events
    from mvd_edge.match.foreground import ForegroundDetector
    from mvd_edge.match.pipeline import Matcher, run_match
    from mvd_edge.match.runner import Runner, TimeSync
    from mvd_edge.match.sinks import MatchMetrics, MqttSink, WebhookSink
    from mvd_edge.match.site import SiteCamera, SitePolicy
    from mvd_edge.match.sources import FramePacket, FrameSource, SourceError, SourceSpec, load_cameras, parse_source
    from mvd_edge.match.track import ByteTracker, PassthroughTracker, Track


def __getattr__(name: str):
    """Import the sub-module that defines ``name`` on first access and cache the value here."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
