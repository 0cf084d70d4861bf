"""Camera-stream matcher: people seen by an IR camera matched to people seen by an RGB camera.

torch-free (numpy, OpenCV, scipy, onnxruntime through :mod:`mvd_edge.runtime`).

Pipeline, one step per pair of frames::

    sources (threads, bounded queues) -> detect -> track (per stream) -> crops
      -> Embedder (one batch for both streams) -> per-track feature banks
      -> cross-modal assignment (cosine + Hungarian + threshold + hysteresis) -> events

* :mod:`.sources`: camera/file/URL/folder sources with reconnect and drop counting.
* :mod:`.detect`: HOG people detector, ONNX YOLO-style detector, MOT box files.
* :mod:`.track`: a small IoU + Kalman multi-object tracker (ByteTrack-style two-stage).
* :mod:`.bank`: per-track feature banks (EMA plus the last N features).
* :mod:`.associate`: cross-modal association with global identities.
* :mod:`.pipeline`: :class:`MatchPipeline` (one step) and :func:`run_match` (the loop).
* :mod:`.events`: the JSONL event schema. :mod:`.render`: side-by-side annotated video.
"""

from mvd_edge.match.associate import CrossModalAssociator, PairUpdate
from mvd_edge.match.bank import FeatureBank
from mvd_edge.match.detect import Detections, HogDetector, MotBoxes, OnnxDetector, make_detector
from mvd_edge.match.events import EVENT_SCHEMA_VERSION, EventWriter, read_events
from mvd_edge.match.pipeline import MatchConfig, MatchPipeline, run_match
from mvd_edge.match.sources import FramePacket, FrameSource, SourceError, SourceSpec, load_cameras, parse_source
from mvd_edge.match.track import ByteTracker, PassthroughTracker, Track

__all__ = [
    "EVENT_SCHEMA_VERSION",
    "ByteTracker",
    "CrossModalAssociator",
    "Detections",
    "EventWriter",
    "FeatureBank",
    "FramePacket",
    "FrameSource",
    "HogDetector",
    "MatchConfig",
    "MatchPipeline",
    "MotBoxes",
    "OnnxDetector",
    "PairUpdate",
    "PassthroughTracker",
    "SourceError",
    "SourceSpec",
    "Track",
    "load_cameras",
    "make_detector",
    "parse_source",
    "read_events",
    "run_match",
]
