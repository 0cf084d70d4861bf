"""Frame sources: each read in its own thread into a bounded queue.

A source is given as text (``--ir``/``--rgb``) and parsed by :func:`parse_source`:

* ``camN`` or a bare index ``N``: local camera N (``cv2.VideoCapture(N)``);
* a name from a cameras file (:func:`load_cameras`);
* ``rtsp://``, ``rtsps://``, ``http://``, ``https://``, ``rtmp://``, ``udp://``, ``tcp://`` URLs
  (FFmpeg backend, with open/read time-outs);
* an image folder (``*.jpg``/``*.png``/``*.bmp``/``*.tif``, sorted by name);
* a video file.

Cameras and URLs are *live*: when a read fails the source is released and reopened
with exponential backoff (``backoff_start`` doubling up to ``backoff_max`` seconds) and
gives up (error) after ``max_offline`` seconds without a frame; when the consumer falls
behind, the oldest queued frame is dropped and counted. Files and folders are *offline*:
the reader waits for the consumer (no drops) unless ``realtime=True`` (paced at the file's
fps and dropping like a live camera).

Video time (files and folders): every frame carries its media time, the container's
timestamp (``CAP_PROP_POS_MSEC``, measured from the first frame's; for a folder, the number in
the image's name) while it is there and increasing, else the count of frames read (failed
reads included) times ``1 / fps``, and its ``index`` is that time
in frames (``round(time * fps)``), so a frame keeps its number in the file whatever was lost
before it. A jump of more than half a frame period over one period is a *gap*: how many
frames, how many seconds and where are recorded in :attr:`FrameSource.gaps` /
:attr:`FrameSource.gap_times` (and logged). A frame whose time is not after the last one
(a demuxer that went back after damage) is never delivered twice. A failed read is retried
up to ``max_bad_reads`` times in a row (a damaged frame is skipped and decoding goes on);
when reading stops short of the frame count the container declares, the source seeks past
the damage, and only when nothing new can be read after it does the file end, with an error
that says where it broke off.

A source that never opens is an error after ``open_timeout`` seconds (live) or at once
(files, folders). Corrupt frames (``None``, empty, not uint8, wrong number of channels,
or a size other than the stream's first frame) are skipped and counted.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from mvd_edge.core.errors import MvdEdgeError, UsageError

__all__ = [
    "IMAGE_SUFFIXES",
    "URL_SCHEMES",
    "Capture",
    "FramePacket",
    "FrameQueue",
    "FrameSource",
    "ImageFolderCapture",
    "SourceError",
    "SourceSpec",
    "SourceStats",
    "load_cameras",
    "open_capture",
    "parse_source",
]

URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_CAMERA_KEYS = {"source", "resolution", "fps", "modality", "boxes"}
_log = logging.getLogger(__name__)


class SourceError(MvdEdgeError, RuntimeError):
    """A source could not be opened, or stayed offline too long."""


class Capture(Protocol):
    """What :class:`FrameSource` needs from a capture (``cv2.VideoCapture`` has it)."""

    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def read(self) -> tuple[bool, Any]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source. ``kind``: ``camera`` (target: int index), ``url``, ``file`` or ``folder``."""

    kind: str
    target: str | int
    label: str
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    modality: str | None = None  # cameras file: "rgb" or "ir" (a site's cameras need it)
    boxes: str | None = None  # cameras file: a MOT box file for this camera (instead of a detector)

    @property
    def live(self) -> bool:
        return self.kind in ("camera", "url")


def _parse_resolution(text: Any, where: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UsageError(f"{where}: resolution must look like WIDTHxHEIGHT (e.g. 640x480), got {text!r}") from None
    if w < 1 or h < 1:
        raise UsageError(f"{where}: resolution must be positive, got {text!r}")
    return w, h


def load_cameras(path: str | Path) -> dict[str, SourceSpec]:
    """Read a cameras file: ``name -> source`` with optional resolution and fps.

    YAML, either at top level or under a ``cameras:`` key::

        cameras:
          lobby_ir: cam0                      # short form: just the source
          lobby_rgb:
            source: rtsp://10.0.0.5/stream1   # camN, index, URL, file or folder
            resolution: 1280x720              # WIDTHxHEIGHT, optional (cameras: requested size)
            fps: 15                           # optional (cameras: requested; files: overrides)
            modality: rgb                     # rgb or ir: needed by a site (`match --cameras` alone)
            boxes: lobby_rgb.mot.txt          # optional: MOT boxes instead of a detector

    Relative ``source`` and ``boxes`` paths are taken from the cameras file's folder when
    they exist there. Unknown keys are an error. Names may not themselves be names of other cameras.
    """
    from mvd_edge.core.yamlsafe import load_yaml

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"cameras file not found: {p}")
    data = load_yaml(p)  # one-line UsageError: syntax, size, aliases, a camera named twice
    if isinstance(data, dict) and set(data) == {"cameras"}:
        data = data["cameras"]
    if not isinstance(data, dict) or not data:
        raise UsageError(f"{p}: expected a mapping of camera name -> source (optionally under 'cameras:')")
    out: dict[str, SourceSpec] = {}
    for name, entry in data.items():
        where = f"{p}: camera {name!r}"
        if isinstance(entry, (str, int)):
            entry = {"source": entry}
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: expected a source string or a mapping with 'source'")
        unknown = set(entry) - _CAMERA_KEYS
        if unknown:
            raise UsageError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_CAMERA_KEYS)}")
        if "source" not in entry:
            raise UsageError(f"{where}: missing 'source'")
        source = str(entry["source"])
        if not Path(source).is_absolute() and (p.parent / source).exists():
            source = str(p.parent / source)
        base = parse_source(source, cameras=None, check_exists=False)
        width = height = None
        if entry.get("resolution") is not None:
            width, height = _parse_resolution(entry["resolution"], where)
        fps = None
        if entry.get("fps") is not None:
            try:
                fps = float(entry["fps"])
            except (TypeError, ValueError):
                raise UsageError(f"{where}: fps must be a number, got {entry['fps']!r}") from None
            if not fps > 0:
                raise UsageError(f"{where}: fps must be > 0, got {fps}")
        modality = None
        if entry.get("modality") is not None:
            from mvd_edge.core.modality import Modality

            try:
                modality = Modality.parse(str(entry["modality"])).short
            except UsageError:
                raise UsageError(f"{where}: modality must be rgb or ir, got {entry['modality']!r}") from None
        boxes = None
        if entry.get("boxes") is not None:
            b = Path(str(entry["boxes"]))
            boxes = str(b if b.is_absolute() or not (p.parent / b).exists() else p.parent / b)
        out[str(name)] = SourceSpec(base.kind, base.target, f"{name} ({base.label})", width, height, fps, modality,
                                    boxes)
    return out


def parse_source(text: str, cameras: dict[str, SourceSpec] | None = None, check_exists: bool = True) -> SourceSpec:
    """``camN`` | ``N`` | camera name | URL | image folder | video file -> :class:`SourceSpec`.

    Raises FileNotFoundError for a path that does not exist and ValueError for text that
    is none of the above.
    """
    s = str(text).strip()
    if not s:
        raise UsageError("empty source")
    if cameras and s in cameras:
        return cameras[s]
    low = s.lower()
    if low.startswith("cam") and low[3:].isdigit():
        return SourceSpec("camera", int(low[3:]), s)
    if s.isdigit():
        return SourceSpec("camera", int(s), f"cam{int(s)}")
    if low.startswith(URL_SCHEMES):
        return SourceSpec("url", s, s)
    p = Path(s).expanduser()
    if p.is_dir():
        return SourceSpec("folder", str(p), s)
    if p.is_file():
        return SourceSpec("file", str(p), s)
    if not check_exists:
        return SourceSpec("folder" if s.endswith("/") else "file", str(p), s)
    if p.suffix or "/" in s or "\\" in s:
        raise FileNotFoundError(f"source not found: {s}")
    names = f" (cameras file names: {', '.join(sorted(cameras))})" if cameras else ""
    raise UsageError(f"unknown source {s!r}: use camN, a camera index, a name from --cameras{names}, "
                     f"a video file, an image folder or an rtsp/http URL")


class ImageFolderCapture:
    """A folder of images read in name order, with the ``cv2.VideoCapture`` reading interface.

    When every name ends in a number and the numbers increase in name order (``000.png``,
    ``frame_0001.jpg``, ...), they are frame numbers: ``CAP_PROP_POS_MSEC`` is the time of the
    image last read, ``(number - first number) / fps``, so a missing number is a gap in time.
    Otherwise the position in name order is the frame number."""

    def __init__(self, folder: str | Path, fps: float | None = None):
        self.folder = Path(folder)
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) \
            if self.folder.is_dir() else []
        self.fps = float(fps) if fps else 15.0
        self.pos = 0
        self.size: tuple[int, int] | None = None  # (height, width) of the first decodable image
        self.resized: list[str] = []  # names of images resized to it
        found = [re.search(r"(\d+)$", p.stem) for p in self.files]
        numbers = [int(m.group(1)) for m in found if m]
        ok = len(numbers) == len(self.files) and all(b > a for a, b in zip(numbers, numbers[1:]))
        self.numbers = [n - numbers[0] for n in numbers] if ok and numbers else list(range(len(self.files)))

    def isOpened(self) -> bool:  # noqa: N802
        return bool(self.files)

    def read(self) -> tuple[bool, np.ndarray | None]:
        if self.pos >= len(self.files):
            return False, None
        path = self.files[self.pos]
        self.pos += 1
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None:  # an unreadable image is a corrupt frame (None), not the end; said by name
            _log.warning("%s: cannot decode %s: skipped (corrupt frame)", self.folder, path.name)
        elif self.size is None:
            self.size = img.shape[:2]
        elif img.shape[:2] != self.size:
            # a folder is one camera's frames: an image of another size is resized to the first one's, not dropped
            if not self.resized:
                _log.warning("%s: %s is %dx%d but the folder's first image is %dx%d: images of other sizes are "
                             "resized to %dx%d", self.folder, path.name, img.shape[1], img.shape[0], self.size[1],
                             self.size[0], self.size[1], self.size[0])
            self.resized.append(path.name)
            img = cv2.resize(img, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        return True, img

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_FRAME_COUNT:
            return float(self.numbers[-1] + 1) if self.numbers else 0.0
        if prop == cv2.CAP_PROP_POS_MSEC:
            return 1000.0 * self.numbers[self.pos - 1] / self.fps if self.pos else 0.0
        return 0.0

    def release(self) -> None:
        self.pos = len(self.files)


def open_capture(spec: SourceSpec, timeout_s: float = 10.0) -> Capture:
    """Open ``spec`` with OpenCV (or :class:`ImageFolderCapture`); the result may be not opened."""
    if spec.kind == "folder":
        return ImageFolderCapture(spec.target, spec.fps)
    if spec.kind == "url":
        ms = int(max(1.0, timeout_s) * 1000)
        cap = cv2.VideoCapture(str(spec.target), cv2.CAP_FFMPEG,
                               [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    elif spec.kind == "camera":
        cap = cv2.VideoCapture(int(spec.target))
    else:
        cap = cv2.VideoCapture(str(spec.target))
    if cap.isOpened() and spec.kind == "camera":
        if spec.width and spec.height:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, spec.width)
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, spec.height)
        if spec.fps:
            cap.set(cv2.CAP_PROP_FPS, spec.fps)
    return cap


@dataclass
class FramePacket:
    """One frame: ``index`` (0-based frame number: for files and folders its media time in
    frames, ``round(time * fps)``, so frames lost before it do not shift it; for live sources
    the count of frames read, corrupt ones included), ``time`` (seconds: media time for files
    and folders, see the module docstring; seconds since the source started for live sources)
    and ``image`` (uint8 BGR ``[H, W, 3]``)."""

    index: int
    time: float
    image: np.ndarray
    captured: float = field(default_factory=time.monotonic)


_END = object()


class FrameQueue:
    """A bounded FIFO of frames. ``put(drop_oldest=True)`` never blocks: when full, the
    oldest frame is dropped and counted; ``put(drop_oldest=False)`` waits for room."""

    def __init__(self, maxsize: int):
        if maxsize < 1:
            raise UsageError(f"queue size must be >= 1, got {maxsize}")
        self.maxsize = int(maxsize)
        self._items: deque = deque()
        self._cond = threading.Condition()
        self.dropped = 0
        self._closed = False

    def __len__(self) -> int:
        with self._cond:
            return sum(1 for x in self._items if x is not _END)

    def put(self, item: FramePacket, drop_oldest: bool, stop: threading.Event | None = None) -> bool:
        """False if the queue was closed (or ``stop`` set) before the item went in."""
        with self._cond:
            while len(self._items) >= self.maxsize and not drop_oldest:
                if self._closed or (stop is not None and stop.is_set()):
                    return False
                self._cond.wait(0.1)
            if self._closed:
                return False
            if len(self._items) >= self.maxsize:
                self._items.popleft()
                self.dropped += 1
            self._items.append(item)
            self._cond.notify_all()
            return True

    def put_end(self) -> None:
        with self._cond:
            self._items.append(_END)  # may exceed maxsize by one: the end marker is never dropped
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> FramePacket | None | bool:
        """The next frame; ``None`` at the end of the stream; ``False`` on time-out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._cond.wait(remaining)
            item = self._items[0]
            if item is _END:
                return None  # stays: every later get() also sees the end
            self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


@dataclass
class SourceStats:
    frames: int = 0  # frames read (good and corrupt)
    delivered: int = 0  # good frames put in the queue
    corrupt: int = 0
    read_failures: int = 0
    unreadable: int = 0  # frames of a damaged file that could not be read (also counted in corrupt)
    missing: int = 0  # files: frames missing by time (gaps: unreadable frames and holes in the timestamps)
    repeated: int = 0  # files: frames not delivered because their time (or image) was delivered already
    outages: int = 0  # times a live source was lost
    reconnects: int = 0  # times it came back (frames flowing again)
    open_attempts: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def _prop(cap: Capture, prop: int) -> float:
    """A capture's property; 0.0 where it reports none (some report neither fps nor a frame count)."""
    try:
        value = float(cap.get(prop) or 0.0)
    except Exception:  # noqa: BLE001 - a capture that throws reports nothing
        return 0.0
    return value if math.isfinite(value) else 0.0


class FrameSource:
    """Reads one source in a daemon thread into a :class:`FrameQueue`.

    Args:
        spec: what to open (see :func:`parse_source`).
        name: label for messages (``"ir"``/``"rgb"``).
        queue_size: frames held at most (>= 1).
        open_fn: ``spec -> Capture`` (default :func:`open_capture`); tests inject fakes.
        live: override ``spec.live`` (live: reconnect and drop-oldest; offline: EOF ends, no drops).
        realtime: offline sources only: pace at the source fps and drop like a live source.
        open_timeout: live: seconds to keep trying the first open (with backoff) before failing.
        max_offline: live: seconds without a frame (reconnecting) before giving up; None = never.
        backoff_start, backoff_max: reconnect delays (seconds), doubling.
        max_bad_reads: files: failed reads in a row retried before the source seeks past the
            damage (or ends).

    Use :meth:`start`, then :meth:`get` until it returns ``None``; :attr:`error` holds why a
    source ended early.
    """

    def __init__(self, spec: SourceSpec, name: str = "source", queue_size: int = 8,
                 open_fn: Callable[[SourceSpec], Capture] | None = None, live: bool | None = None,
                 realtime: bool = False, open_timeout: float = 10.0, max_offline: float | None = 30.0,
                 backoff_start: float = 0.25, backoff_max: float = 4.0, max_bad_reads: int = 32):
        self.spec = spec
        self.name = name
        self.live = spec.live if live is None else bool(live)
        self.realtime = bool(realtime) and not self.live
        self.drop_oldest = self.live or self.realtime
        self.queue = FrameQueue(queue_size)
        self._open_fn = open_fn or (lambda s: open_capture(s, timeout_s=min(open_timeout, 10.0)))
        self.open_timeout = float(open_timeout)
        self.max_offline = max_offline
        self.backoff_start = float(backoff_start)
        self.backoff_max = float(backoff_max)
        self.stats = SourceStats()
        self.fps: float = float(spec.fps or 0.0)
        self.error: str | None = None
        self.opened = threading.Event()
        self.finished = threading.Event()
        self._stop = threading.Event()
        self._shape: tuple[int, ...] | None = None
        self.max_bad_reads = max(1, int(max_bad_reads))
        self.declared_frames = 0  # files: the frame count the container declares (0: unknown)
        self.gaps: list[tuple[int, int]] = []  # files: [first, end) frame numbers missing (damage or holes)
        self.gap_times: list[tuple[float, float]] = []  # files: the same gaps in seconds: [from, to)
        # files: the media clock (see the module docstring)
        self._container_clock = True  # the capture's timestamps are used while they increase
        self._reads = 0  # reads since the last good frame (failed ones included)
        self._last: tuple[int, float] | None = None  # (index, time) of the last frame delivered
        self._recent: deque = deque(maxlen=64)  # digests of the last frames delivered (repeats after a seek)
        self._after_seek = 0  # frames still checked against _recent after a seek
        self._clock_seen = False  # the container's timestamps have increased once
        self._ms0 = (0.0, 0.0)  # the container's timestamp (ms) and the media time of the first frame
        self._failed = 0  # failed reads (and frames seeked past) since the last delivered frame
        self._corrupt_since = 0  # corrupt frames since the last delivered frame
        self._seek_base, self._jump = -1, 1  # where _resync seeks from, and its next step
        self._thread = threading.Thread(target=self._run, name=f"mvd-source-{name}", daemon=True)
        self._t0 = time.monotonic()

    # ------------------------------------------------------------------ control
    def start(self) -> "FrameSource":
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self, join_timeout: float = 2.0) -> None:
        self._stop.set()
        self.queue.close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(join_timeout)

    def wait_open(self, timeout: float | None = None) -> None:
        """Block until the first frame source opened; raise :class:`SourceError` if it failed.

        ``timeout`` defaults to ``open_timeout`` plus a small margin (an OpenCV open call can
        itself take a while)."""
        limit = self.open_timeout + 5.0 if timeout is None else timeout
        deadline = time.monotonic() + limit
        while not self.opened.is_set():
            if self.finished.is_set():
                if self.error:
                    raise SourceError(self.error)
                raise SourceError(f"{self.name} source {self.spec.label} ended before it opened")
            if time.monotonic() > deadline:
                self.stop(0.1)
                raise SourceError(f"{self.name} source {self.spec.label} did not open within {limit:.1f} s")
            self.opened.wait(0.05)

    def get(self, timeout: float | None = None) -> FramePacket | None | bool:
        """Next frame, ``None`` when the source has ended, ``False`` on time-out."""
        return self.queue.get(timeout)

    @property
    def depth(self) -> int:
        return len(self.queue)

    @property
    def dropped(self) -> int:
        return self.queue.dropped

    # ------------------------------------------------------------------ thread
    def _try_open(self) -> Capture | None:
        self.stats.open_attempts += 1
        try:
            cap = self._open_fn(self.spec)
        except Exception as exc:  # noqa: BLE001 - reported below, with the source's name
            self._last_open_error = f"{type(exc).__name__}: {exc}"
            return None
        if cap is None or not cap.isOpened():
            if cap is not None:
                cap.release()
            self._last_open_error = "OpenCV could not open it"
            return None
        fps = float(self.spec.fps) if self.spec.fps else _prop(cap, cv2.CAP_PROP_FPS)
        self.fps = fps if fps > 0 and math.isfinite(fps) else (self.fps or 15.0)
        if not self.live:
            self.declared_frames = max(0, int(_prop(cap, cv2.CAP_PROP_FRAME_COUNT)))
        return cap

    def _resync(self, cap: Capture) -> tuple[bool, Any]:
        """Reading a file failed ``max_bad_reads`` times in a row: end of file, or damage to skip?

        When the container declares more frames than were reached, seek past the failure (frame
        by frame for 8 frames, then in doubling steps: 16, 32, ...; each call goes on from where
        the last one stopped) and return the first frame that decodes; the caller drops it if it
        is one already delivered (the demuxer went back). When nothing after the failure
        decodes, the source ends with an :attr:`error` that says where the file broke off,
        rather than as a normal end of file. Returns ``(ok, frame)`` like ``cap.read()``.
        """
        start = self._last[0] + 1 if self._last else 0  # the first frame not delivered
        if not self.declared_frames or start >= self.declared_frames - 1:  # the last frame may be short
            return False, None
        if self._seek_base != start:
            self._seek_base, self._jump = start, 1
        while start + self._jump < self.declared_frames and not self._stop.is_set():
            target = start + self._jump
            self._jump = self._jump + 1 if self._jump < 8 else self._jump * 2
            try:
                ok = bool(cap.set(cv2.CAP_PROP_POS_FRAMES, target))
                ok, frame = cap.read() if ok else (False, None)
            except Exception:  # noqa: BLE001 - a capture that throws is a failed seek
                ok, frame = False, None
            if ok:
                self._reads = target - (self._last[0] if self._last else -1)
                self._failed += target - start
                self._after_seek = 16
                return True, frame
        if self.stats.repeated:  # what followed the damage had all been read already
            # the demuxer numbered the frames after the damage as if none were lost: the frames the
            # container declares but never gave are missing, and its timestamps do not say where
            short = self.declared_frames - start
            t_from = self._last[1] + 1.0 / self.fps if self._last else 0.0
            self.gaps.append((start, self.declared_frames))
            self.gap_times.append((round(t_from, 6), round(t_from + short / self.fps, 6)))
            self.stats.missing += short
            self.stats.unreadable += short
            self.stats.corrupt += short
            _log.warning("%s source %s: %d of the %d frames the container declares were lost to damage; its "
                         "timestamps go on as if none were, so where they were lost is unknown", self.name,
                         self.spec.label, short, self.declared_frames)
            return False, None
        at = f" ({start / self.fps:.3f} s)" if self.fps else ""
        self.error = (f"{self.name} source {self.spec.label}: the file breaks off at frame {start} of the "
                      f"{self.declared_frames} it declares{at} (damaged or truncated); nothing after it could be read")
        return False, None

    def _next_index(self) -> int:
        """The frame number the next read should have (files)."""
        return (self._last[0] if self._last else -1) + max(1, self._reads)

    def _media_time(self, cap: Capture) -> float | None:
        """The time of the frame just read (files; see the module docstring); None: not after the
        last delivered frame's time (a repeat)."""
        last = self._last
        guess = (last[1] + self._reads / self.fps) if last else (self._reads - 1) / self.fps
        if not self._container_clock:
            return guess
        try:
            ms = float(cap.get(cv2.CAP_PROP_POS_MSEC))
        except Exception:  # noqa: BLE001 - a capture without timestamps
            ms = float("nan")
        if not (math.isfinite(ms) and ms >= 0):
            self._container_clock = False
            return guess
        if last is None:  # the first frame: the container's clock is measured from it
            self._ms0 = (ms, guess)
            return guess
        t = self._ms0[1] + (ms - self._ms0[0]) / 1000.0
        if t > last[1]:
            self._clock_seen = True
            return t
        if not self._clock_seen:  # the second frame is not later: the capture has no timestamps
            self._container_clock = False
            return guess
        return None

    def _deliverable(self, cap: Capture, good: np.ndarray) -> tuple[int, float] | None:
        """``(index, time)`` of a good frame just read from a file (gaps recorded), or None when it
        was delivered already (counted in ``repeated``)."""
        t = self._media_time(cap)
        digest = hashlib.blake2b(np.ascontiguousarray(good[::4, ::4]).tobytes(), digest_size=8).digest()
        if self._after_seek > 0:
            self._after_seek -= 1
            if t is not None and digest in self._recent:
                t = None
        if t is None:
            self.stats.repeated += 1
            self._reads = 0
            return None
        self._recent.append(digest)
        last = self._last
        index = max(int(round(t * self.fps)), last[0] + 1 if last else 0)
        first = last[0] + 1 if last else 0
        if index > first:
            missing = index - first
            t_from = last[1] + 1.0 / self.fps if last else 0.0
            self.gaps.append((first, index))
            self.gap_times.append((round(t_from, 6), round(t, 6)))
            self.stats.missing += missing
            if self._failed:
                lost = max(0, missing - self._corrupt_since)
                self.stats.unreadable += lost
                self.stats.corrupt += lost
            _log.warning("%s source %s: %d frame%s (%.3f s) missing before frame %d at %.3f s%s", self.name,
                         self.spec.label, missing, "s" if missing != 1 else "", t - t_from, index, t,
                         " (damaged)" if self._failed else "")
        self._last = (index, t)
        self._reads = self._failed = self._corrupt_since = 0
        return index, t

    def _open_with_backoff(self, limit: float | None, what: str, start_delay: float | None = None) -> Capture | None:
        """Open, retrying with backoff until ``limit`` seconds have passed (None: forever)."""
        self._last_open_error = ""
        start = time.monotonic()
        delay = self.backoff_start if start_delay is None else start_delay
        tries = 0
        while not self._stop.is_set():
            tries += 1
            cap = self._try_open()
            if cap is not None:
                return cap
            if not self.live:
                break
            elapsed = time.monotonic() - start
            if limit is not None and elapsed + delay > limit:
                break
            self._stop.wait(delay)
            delay = min(self.backoff_max, delay * 2)
        if self._stop.is_set():
            return None
        elapsed = time.monotonic() - start
        self.error = (f"{self.name} source {self.spec.label}: {what} ({self._last_open_error}; "
                      f"{tries} attempt{'s' if tries != 1 else ''} in {elapsed:.1f} s)")
        return None

    def _check(self, frame: Any) -> np.ndarray | None:
        """A valid uint8 BGR frame, or None (corrupt)."""
        if not isinstance(frame, np.ndarray) or frame.size == 0 or frame.dtype != np.uint8:
            return None
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        elif frame.ndim == 3 and frame.shape[2] == 4:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
        elif frame.ndim == 3 and frame.shape[2] == 1:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.shape[0] < 8 or frame.shape[1] < 8:
            return None
        if self._shape is None:
            self._shape = frame.shape
        elif frame.shape != self._shape:
            return None
        return frame

    def _run(self) -> None:
        self._cap = None  # the capture being read (released at the end, whatever ends the thread)
        try:
            what = "cannot open" if not self.live else f"cannot open within {self.open_timeout:.1f} s"
            self._cap = self._open_with_backoff(self.open_timeout if self.live else None, what)
            if self._cap is None:
                return
            self.opened.set()
            if self.live:
                self._read_live()
            else:
                self._read_file()
        except Exception as exc:  # noqa: BLE001 - surfaced to the consumer through .error
            self.error = f"{self.name} source {self.spec.label}: {type(exc).__name__}: {exc}"
        finally:
            if self._cap is not None:
                try:
                    self._cap.release()
                except Exception:  # noqa: BLE001
                    pass
            self.finished.set()
            self.queue.put_end()

    def _read(self) -> tuple[bool, Any]:
        try:
            return self._cap.read()
        except Exception:  # noqa: BLE001 - a capture that throws is a failed read
            return False, None

    def _read_file(self) -> None:
        """A file or folder: every frame with its media time, damaged frames skipped (see the module docstring)."""
        while not self._stop.is_set():
            ok, frame = self._read()
            self._reads += 1
            if not ok:
                self._failed += 1
                end = self.declared_frames and self._next_index() >= self.declared_frames
                if self._failed <= self.max_bad_reads and not end:
                    continue  # a damaged frame: decoding goes on with the next one
                ok, frame = self._resync(self._cap)  # end of file / folder, or damage to seek past
                if not ok:
                    return
            self.stats.frames += 1
            good = self._check(frame)
            if good is None:
                self.stats.corrupt += 1
                self._corrupt_since += 1
                continue
            stamp = self._deliverable(self._cap, good)
            if stamp is None:
                continue
            index, t = stamp
            if self.realtime:
                lag = self._t0 + t - time.monotonic()
                if lag > 0:
                    self._stop.wait(lag)
            if not self.queue.put(FramePacket(index, t, good), self.drop_oldest, self._stop):
                return
            self.stats.delivered += 1

    def _read_live(self) -> None:
        """A camera or URL: frames as they come; a lost one is reopened with backoff until ``max_offline``."""
        offline_since: float | None = None
        delay = self.backoff_start  # grows over consecutive outages, reset by a good frame
        while not self._stop.is_set():
            ok, frame = self._read()
            if not ok:
                self.stats.read_failures += 1
                if offline_since is None:
                    offline_since = time.monotonic()
                    self.stats.outages += 1
                self._cap.release()
                self._cap = None
                limit = None
                if self.max_offline is not None:
                    limit = self.max_offline - (time.monotonic() - offline_since)
                    if limit <= 0:
                        self.error = (f"{self.name} source {self.spec.label}: offline for more than "
                                      f"{self.max_offline:.1f} s, giving up")
                        return
                self._stop.wait(min(delay, limit) if limit is not None else delay)
                delay = min(self.backoff_max, delay * 2)
                self._cap = self._open_with_backoff(limit, f"lost and not back within {self.max_offline} s",
                                                    start_delay=delay)
                if self._cap is None:
                    return
                self._shape = None  # a reopened camera may come back at another size
                continue
            if offline_since is not None:
                self.stats.reconnects += 1
                offline_since = None
                delay = self.backoff_start
            index = self.stats.frames
            self.stats.frames += 1
            good = self._check(frame)
            if good is None:
                self.stats.corrupt += 1
                continue
            if not self.queue.put(FramePacket(index, time.monotonic() - self._t0, good), self.drop_oldest,
                                  self._stop):
                return
            self.stats.delivered += 1
