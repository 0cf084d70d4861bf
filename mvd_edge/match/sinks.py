"""Event sinks beside the JSONL file: a webhook (HTTP POST) and MQTT, plus Prometheus metrics.

Every event the matcher writes goes to the JSONL file (:class:`~mvd_edge.match.events.EventWriter`)
and to each sink given to it. Delivery to a network sink never blocks the matcher: events go
into a bounded in-memory queue that a background thread drains.

Delivery guarantee (both sinks): **at least once, in order, per run**, as long as the receiver
comes back before the queue fills. Each event carries ``run_id`` (one per matcher run) and
``seq`` (0, 1, 2, ... in write order); a receiver that keeps the highest ``seq`` per ``run_id``
it has stored drops the rare resend (a delivery whose acknowledgement was lost) and sees every
event exactly once. When the queue is full the oldest undelivered event is dropped and counted
(``dropped`` in :attr:`EventSink.stats`, reported in the run summary): the matcher never stalls
on a dead receiver.

* :class:`WebhookSink`: ``POST`` of one JSON event per request (``Content-Type:
  application/json``, header ``Idempotency-Key: <run_id>-<seq>``); any 2xx is delivery, anything
  else (refused connection, timeout, 5xx) is retried with exponential backoff. Standard library
  only (``urllib``).
* :class:`MqttSink`: publishes each event to a topic with QoS 1 through ``paho-mqtt``
  (``pip install 'mvd-edge[site]'``), which keeps unacknowledged messages and resends them
  after a reconnect.
* :class:`MatchMetrics`: Prometheus gauges and counters (per-camera fps, queue depth, dropped
  and corrupt frames; mean latency per stage; events by kind; sink backlog) served on a local
  port by ``prometheus_client``.
"""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.match.events import Output

__all__ = ["CropSaver", "EventSink", "MatchMetrics", "MqttSink", "WebhookSink", "make_sink", "new_run_id"]


def new_run_id() -> str:
    """A fresh run id (time-ordered prefix + random suffix)."""
    return time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:8]


class EventSink:
    """Base class: a bounded queue drained by one background thread calling :meth:`_deliver`.

    Args:
        name: label for messages and metrics.
        max_queue: events held at most while the receiver is away (>= 1); past it the oldest
            is dropped and counted.
        backoff_start, backoff_max: seconds between retries of a failed delivery (doubling).
    """

    def __init__(self, name: str, max_queue: int = 10_000, backoff_start: float = 0.05, backoff_max: float = 2.0):
        if max_queue < 1:
            raise UsageError(f"{name}: the queue must hold at least 1 event, got {max_queue}")
        self.name = name
        self.max_queue = int(max_queue)
        self.backoff_start, self.backoff_max = float(backoff_start), float(backoff_max)
        self.stats = {"queued": 0, "delivered": 0, "retries": 0, "dropped": 0}
        self.last_error: str | None = None
        self._queue: deque[dict[str, Any]] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._abandon = False
        self._thread = threading.Thread(target=self._run, name=f"mvd-sink-{name}", daemon=True)
        self._started = False

    # ------------------------------------------------------------------ producer side
    def write(self, event: dict[str, Any]) -> None:
        """Queue one event (never blocks); starts the delivery thread on first use."""
        with self._cond:
            if not self._started:
                self._thread.start()
                self._started = True
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.stats["dropped"] += 1
            self._queue.append(event)
            self.stats["queued"] += 1
            self._cond.notify()

    @property
    def backlog(self) -> int:
        with self._cond:
            return len(self._queue)

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued for up to ``timeout`` seconds, then stop; returns how many
        events were left undelivered (also added to ``stats["dropped"]``)."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._started:
            self._thread.join(timeout)
        with self._cond:
            self._abandon = True
            left = len(self._queue)
            self._queue.clear()
            self.stats["dropped"] += left
            self._cond.notify_all()
        if self._started:
            self._thread.join(1.0)
        self._shutdown()
        return left

    # ------------------------------------------------------------------ delivery thread
    def _run(self) -> None:
        delay = self.backoff_start
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if self._abandon or (self._closing and not self._queue):
                    return
                event = self._queue[0]
            try:
                self._deliver(event)
            except Exception as exc:  # noqa: BLE001 - any failure is retried; the last one is kept for the summary
                self.last_error = f"{type(exc).__name__}: {exc}"
                self.stats["retries"] += 1
                with self._cond:
                    if self._abandon:
                        return
                    self._cond.wait(delay)
                delay = min(self.backoff_max, delay * 2)
                continue
            delay = self.backoff_start
            with self._cond:
                if self._queue and self._queue[0] is event:
                    self._queue.popleft()
                self.stats["delivered"] += 1

    def _deliver(self, event: dict[str, Any]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _shutdown(self) -> None:  # noqa: B027 - optional hook
        """Release connections (after the thread stopped)."""

    def summary(self) -> dict[str, Any]:
        return {"sink": self.name, **self.stats, "backlog": self.backlog, "last_error": self.last_error}


class WebhookSink(EventSink):
    """POST each event as JSON to ``url`` (http/https), retried until a 2xx answer."""

    @staticmethod
    def check_url(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise UsageError(f"outputs.webhook {url!r}: expected an http:// or https:// URL")
        return url

    def __init__(self, url: str, timeout: float = 5.0, headers: dict[str, str] | None = None, **kw):
        self.check_url(url)
        super().__init__(f"webhook {url}", **kw)
        self.url, self.timeout = url, float(timeout)
        self.headers = dict(headers or {})

    def _deliver(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        key = f"{event.get('run_id', '')}-{event.get('seq', '')}"
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "Idempotency-Key": key,
                                              **self.headers})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - the user's URL
                resp.read()
                status = resp.status
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"HTTP {exc.code}") from None
        if not 200 <= status < 300:
            raise RuntimeError(f"HTTP {status}")


def _import_paho():
    try:
        import paho.mqtt.client as mqtt  # noqa: PLC0415
    except ImportError as exc:
        raise UsageError("MQTT needs paho-mqtt: pip install 'mvd-edge[site]'") from exc
    return mqtt


class MqttSink(EventSink):
    """Publish each event to ``topic`` on an MQTT broker (QoS 1) with ``paho-mqtt`` (>= 2.0).

    ``url``: ``mqtt://host[:port]/topic/path`` (port 1883 by default). paho reconnects by
    itself and resends unacknowledged QoS 1 messages; this sink's queue holds events while
    the broker is away and a publish is a delivery only once the broker acknowledged it.
    """

    @staticmethod
    def parse_url(url: str) -> tuple[str, int, str]:
        """``mqtt://host[:port]/topic`` -> (host, port, topic)."""
        parts = urlsplit(url)
        topic = parts.path.lstrip("/")
        try:
            port = parts.port or 1883
        except ValueError:
            port = -1
        if parts.scheme != "mqtt" or not parts.hostname or not topic or port < 1:
            raise UsageError(f"outputs.mqtt {url!r}: expected mqtt://host[:port]/topic")
        return parts.hostname, port, topic

    def __init__(self, url: str, qos: int = 1, client_id: str | None = None, ack_timeout: float = 5.0, **kw):
        host, port, topic = self.parse_url(url)
        if qos not in (0, 1, 2):
            raise UsageError(f"MQTT QoS must be 0, 1 or 2, got {qos}")
        mqtt = _import_paho()
        super().__init__(f"mqtt {url}", **kw)
        self.topic, self.qos, self.ack_timeout = topic, int(qos), float(ack_timeout)
        self._connected = threading.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"mvd-edge-{uuid.uuid4().hex[:8]}",
                             clean_session=False)
        client.reconnect_delay_set(min_delay=1, max_delay=4)
        client.on_connect = lambda c, u, flags, rc, props=None: self._connected.set() if not rc.is_failure else None
        client.on_disconnect = lambda c, u, flags, rc, props=None: self._connected.clear()
        self.client = client
        client.connect_async(host, port, keepalive=30)
        client.loop_start()

    def _deliver(self, event: dict[str, Any]) -> None:
        if not self._connected.wait(self.ack_timeout):
            raise RuntimeError("not connected to the broker")
        info = self.client.publish(self.topic, json.dumps(event, separators=(",", ":")), qos=self.qos)
        info.wait_for_publish(self.ack_timeout)
        if not info.is_published():
            # paho keeps the message and resends it after a reconnect: wait for that rather than
            # publishing it a second time
            deadline = time.monotonic() + 60.0
            while not info.is_published():
                if self._abandon or time.monotonic() > deadline:
                    raise RuntimeError("the broker did not acknowledge the event")
                info.wait_for_publish(0.2)

    def _shutdown(self) -> None:
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()


def make_sink(url: str, max_queue: int = 10_000) -> EventSink:
    """``http(s)://...`` -> :class:`WebhookSink`, ``mqtt://...`` -> :class:`MqttSink`."""
    scheme = urlsplit(url).scheme
    if scheme in ("http", "https"):
        return WebhookSink(url, max_queue=max_queue)
    if scheme == "mqtt":
        return MqttSink(url, max_queue=max_queue)
    raise UsageError(f"unknown event sink {url!r}: use http(s)://host/path or mqtt://host[:port]/topic")


class MatchMetrics(Output):
    """Prometheus metrics of a matcher run, served at ``http://ADDR:PORT/metrics``.

    ``port=0`` picks a free port (see :attr:`port`). Needs ``prometheus-client``
    (``pip install 'mvd-edge[site]'``). Call :meth:`update` with the run's state (cheap; the
    matcher calls it a few times per second) and :meth:`close` at the end.
    """

    def __init__(self, port: int = 9108, addr: str = "127.0.0.1"):
        try:
            import prometheus_client as prom  # noqa: PLC0415
        except ImportError as exc:
            raise UsageError("outputs.metrics_port needs prometheus-client: pip install 'mvd-edge[site]'") from exc
        if not 0 <= int(port) <= 65535:
            raise UsageError(f"outputs.metrics_port must be in [0, 65535], got {port}")
        self.registry = reg = prom.CollectorRegistry()
        g = lambda name, doc, labels=(): prom.Gauge(name, doc, labels, registry=reg)  # noqa: E731
        self.fps = g("mvd_edge_camera_fps", "frames per second delivered by the camera", ["camera"])
        self.depth = g("mvd_edge_camera_queue_depth", "frames waiting in the camera's queue", ["camera"])
        self.dropped = g("mvd_edge_camera_dropped_frames", "frames dropped so far (queue full)", ["camera"])
        self.corrupt = g("mvd_edge_camera_corrupt_frames", "corrupt or unreadable frames so far", ["camera"])
        self.frames = g("mvd_edge_frames_processed", "frame steps processed so far")
        self.stage_latency = g("mvd_edge_stage_latency_ms", "moving mean of the time per step of each stage", ["stage"])
        self.events = g("mvd_edge_events", "events written so far, by kind", ["kind"])
        self.backlog = g("mvd_edge_sink_backlog", "events queued for a sink and not yet delivered", ["sink"])
        self.sink_dropped = g("mvd_edge_sink_dropped", "events a sink dropped (queue full)", ["sink"])
        try:
            self._server, self._thread = prom.start_http_server(int(port), addr=addr, registry=reg)
        except OSError as exc:
            raise UsageError(f"outputs.metrics_port {port}: cannot listen on {addr}:{port} ({exc.strerror or exc})") from None
        self.port = int(self._server.server_port)
        self._last_observed = float("-inf")

    def update(self, *, cameras: dict[str, dict[str, float]], frames: int, stage_ms: dict[str, float],
               events: dict[str, int], sinks: list[EventSink] = ()) -> None:
        """``cameras``: ``{name: {"fps", "depth", "dropped", "corrupt"}}``."""
        for cam, v in cameras.items():
            self.fps.labels(cam).set(v.get("fps", 0.0))
            self.depth.labels(cam).set(v.get("depth", 0))
            self.dropped.labels(cam).set(v.get("dropped", 0))
            self.corrupt.labels(cam).set(v.get("corrupt", 0))
        self.frames.set(frames)
        for st, ms in stage_ms.items():
            self.stage_latency.labels(st).set(ms)
        for kind, n in events.items():
            self.events.labels(kind).set(n)
        for s in sinks:
            self.backlog.labels(s.name).set(s.backlog)
            self.sink_dropped.labels(s.name).set(s.stats["dropped"])

    # ------------------------------------------------------------------ an output of a run
    live = True

    def step(self, run, result=None, force: bool = False) -> None:
        """:meth:`update` from the run's state, at most every 0.25 s unless ``force``."""
        now = time.monotonic()
        if not force and now - self._last_observed < 0.25:
            return
        self._last_observed = now
        timer = run.matcher.timer
        self.update(cameras={n: {"fps": src.fps, "depth": src.depth, "dropped": src.dropped,
                                 "corrupt": src.stats.corrupt} for n, src in run.sources.items()},
                    frames=run.steps, stage_ms={st: timer.mean_ms(st) for st in timer.stages()},
                    events=dict(run.writer.counts), sinks=list(run.sinks))

    def end(self, run, summary: dict[str, Any]) -> None:
        self.step(run, force=True)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class CropSaver(Output):
    """Re-id crops of matched people, written for a gallery: ``DIR/<modality>/<global id>/<camera>_f<frame>.jpg``.

    ``mvd-edge gallery build DIR`` indexes them (the id is the crop's folder: the global id; the
    modality comes from the folder above). At most one crop per ``every`` frames per (camera,
    global id) and ``per_id`` crops per (modality, global id) are written, so a long run stays bounded.
    """

    def __init__(self, folder: str | Path, every: int = 10, per_id: int = 50, margin: float = 0.08):
        if every < 1 or per_id < 1:
            raise UsageError(f"crop saving needs every >= 1 and per_id >= 1, got {every}, {per_id}")
        self.folder, self.every, self.per_id, self.margin = Path(folder), int(every), int(per_id), float(margin)
        self._last: dict[tuple[str, int], int] = {}
        self._count: dict[tuple[str, int], int] = {}
        self.written = 0

    stage = "write"  # an output of a run

    def step(self, run, result) -> None:
        """The crops of the people the step's events name (which ones: the policy's view)."""
        for ev in result.events:
            for modality, cam, frame, gid, box in run.policy.crops(ev):
                self.save(modality, cam, frame, gid, result.frames[cam].image, box)

    def save(self, modality: str, camera: str, frame: int, gid: int, image, box_xywh) -> bool:
        """Write the crop of ``box_xywh`` (``[x, y, w, h]``) from ``image`` if it is due; True if written."""
        import cv2

        from mvd_edge.core.preprocess import box_crop

        key = (camera, int(gid))
        last = self._last.get(key)
        if box_xywh is None or image is None or (last is not None and frame - last < self.every):
            return False
        if self._count.get((modality, int(gid)), 0) >= self.per_id:
            return False
        x, y, w, h = (float(v) for v in box_xywh)
        crop = box_crop(image, np.array([x, y, x + w, y + h], np.float32), self.margin, 0.5, 8)
        if crop is None:
            return False
        out = self.folder / modality / str(int(gid)) / f"{camera}_f{int(frame):07d}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(out), crop):  # OpenCV says no more than that: a full or read-only disk, mostly
            from mvd_edge.core.util import write_errno

            err = write_errno(out.parent)
            try:
                out.unlink(missing_ok=True)  # what part of it was written
            except OSError:
                pass
            raise OSError(err, os.strerror(err), str(out))
        self._last[key] = int(frame)
        self._count[(modality, int(gid))] = self._count.get((modality, int(gid)), 0) + 1
        self.written += 1
        return True
