"""Network event sinks (webhook, MQTT) and Prometheus metrics, against local stand-ins on 127.0.0.1.

The receivers restart in the middle of a stream: every event must still arrive, in order, once
(the at-least-once guarantee with ``run_id``/``seq`` stamps; see mvd_edge/match/sinks.py).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from match_fakes import BlockDetector, BlockWorld, block_sources

from mvd_edge.core.errors import UsageError
from mvd_edge.match.baselines import ColorHistogramEmbedder
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.events import EventWriter, read_events
from mvd_edge.match.pipeline import run_match
from mvd_edge.match.sinks import MatchMetrics, WebhookSink, make_sink

# ---------------------------------------------------------------- a webhook receiver


class Receiver:
    """An HTTP receiver that stores every POSTed JSON body; ``fail_first`` answers 500 that many times."""

    def __init__(self, port: int = 0, fail_first: int = 0):
        self.got: list[dict] = []
        self.keys: list[str] = []
        self.fail_left = fail_first
        self.lock = threading.Lock()
        self.port = port
        self.server = None
        self.start()

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.lock:
                    if outer.fail_left > 0:
                        outer.fail_left -= 1
                        self.send_response(500)
                        self.end_headers()
                        return
                    outer.got.append(json.loads(body))
                    outer.keys.append(self.headers["Idempotency-Key"])
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events"


def _events(n: int) -> list[dict]:
    return [{"event": "match", "frame": k, "similarity": 0.5} for k in range(n)]


def test_webhook_delivers_every_event_once_in_order_across_a_receiver_restart():
    rx = Receiver()
    writer = EventWriter(None, sinks=[WebhookSink(rx.url, backoff_start=0.02, backoff_max=0.2)], run_id="run-a")
    for i, ev in enumerate(_events(120)):
        writer.write(ev)
        if i == 40:
            rx.stop()  # the receiver goes away for a while (connection refused), then comes back on its port
            time.sleep(0.4)
        if i == 60:
            rx.start()
        time.sleep(0.002)
    writer.close()
    assert writer.undelivered == {f"webhook {rx.url}": 0}
    assert [e["seq"] for e in rx.got] == list(range(120))  # none lost, none twice, in order
    assert [e["frame"] for e in rx.got] == list(range(120)) and {e["run_id"] for e in rx.got} == {"run-a"}
    assert rx.keys[:3] == ["run-a-0", "run-a-1", "run-a-2"]
    rx.stop()


def test_webhook_retries_server_errors_and_counts_them():
    rx = Receiver(fail_first=3)
    sink = WebhookSink(rx.url, backoff_start=0.01, backoff_max=0.05)
    writer = EventWriter(None, sinks=[sink])
    for ev in _events(5):
        writer.write(ev)
    writer.close()
    assert [e["seq"] for e in rx.got] == list(range(5))
    assert sink.stats["retries"] == 3 and sink.stats["delivered"] == 5 and sink.stats["dropped"] == 0
    assert sink.last_error == "RuntimeError: HTTP 500"
    rx.stop()


def test_webhook_queue_is_bounded_and_losses_are_counted_not_hidden():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sink = WebhookSink(f"http://127.0.0.1:{port}/x", max_queue=10, backoff_start=0.01, backoff_max=0.05)
    for ev in _events(25):
        sink.write(ev)  # never blocks on the dead receiver: the oldest queued events make room
    assert sink.stats["queued"] == 25 and sink.stats["dropped"] == 15 and sink.backlog <= 10
    left = sink.close(timeout=0.3)
    assert left == 10 and sink.stats["dropped"] == 25 and sink.stats["delivered"] == 0
    assert "Connection refused" in sink.last_error or "URLError" in sink.last_error


def test_sink_urls_are_checked():
    for bad in ("ftp://x/y", "http://", "mqtt://host", "kafka://x/t"):
        with pytest.raises(UsageError):
            make_sink(bad)


# ---------------------------------------------------------------- an MQTT stand-in broker


class Broker:
    """Just enough of an MQTT 3.1.1 broker: CONNECT/CONNACK, PUBLISH (QoS 0/1) with PUBACK,
    PINGREQ/PINGRESP, DISCONNECT. Stores (topic, payload) of every PUBLISH it receives."""

    def __init__(self, port: int = 0):
        self.got: list[tuple[str, dict]] = []
        self.port = port
        self.start()

    def start(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.port = self.sock.getsockname()[1]
        self.sock.listen()
        self.sock.settimeout(0.05)  # the accept loop notices stop() (a blocked accept() would keep the port)
        self.conns: list[socket.socket] = []
        self.running = True
        self.accepting = threading.Thread(target=self._accept, daemon=True)
        self.accepting.start()

    def stop(self) -> None:
        self.running = False
        self.accepting.join(2.0)
        self.sock.close()
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def _accept(self) -> None:
        while self.running:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(None)
            self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    @staticmethod
    def _read(conn: socket.socket, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise ConnectionError
            data += chunk
        return data

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                head = self._read(conn, 1)[0]
                length, mult = 0, 1
                while True:  # remaining length: a base-128 varint
                    b = self._read(conn, 1)[0]
                    length += (b & 0x7F) * mult
                    mult *= 128
                    if not b & 0x80:
                        break
                body = self._read(conn, length)
                kind = head >> 4
                if kind == 1:  # CONNECT
                    conn.sendall(b"\x20\x02\x00\x00")
                elif kind == 3:  # PUBLISH
                    qos = (head >> 1) & 3
                    tlen = struct.unpack(">H", body[:2])[0]
                    topic, rest = body[2:2 + tlen].decode(), body[2 + tlen:]
                    if qos:
                        pid, rest = rest[:2], rest[2:]
                    self.got.append((topic, json.loads(rest)))
                    if qos:
                        conn.sendall(b"\x40\x02" + pid)
                elif kind == 12:  # PINGREQ
                    conn.sendall(b"\xd0\x00")
                elif kind == 14:  # DISCONNECT
                    return
        except (ConnectionError, OSError):
            return
        finally:
            conn.close()


def test_mqtt_sink_delivers_every_event_across_a_broker_restart():
    pytest.importorskip("paho.mqtt.client", reason="paho-mqtt (mvd-edge[site]) is not installed")
    broker = Broker()
    url = f"mqtt://127.0.0.1:{broker.port}/site/events"
    writer = EventWriter(None, sinks=[make_sink(url)], run_id="run-m")
    deadline = time.monotonic() + 10
    for i, ev in enumerate(_events(60)):
        writer.write(ev)
        if i == 20:
            while len(broker.got) < 15 and time.monotonic() < deadline:
                time.sleep(0.01)  # some events through before the broker goes away
            broker.stop()
            time.sleep(0.3)
            broker.start()  # same port; paho reconnects (within its 1-4 s reconnect delay)
        time.sleep(0.002)
    writer.close()
    assert writer.undelivered == {f"mqtt {url}": 0}
    seqs = [p["seq"] for _, p in broker.got]
    assert {t for t, _ in broker.got} == {"site/events"}
    # at least once, in order: nothing lost; a resend can only repeat an event whose PUBACK the
    # restart cut off, and (run_id, seq) lets a consumer drop it
    assert list(dict.fromkeys(seqs)) == list(range(60))  # each event's first arrival, in write order
    assert len(seqs) - len(set(seqs)) <= 1
    broker.stop()


# ---------------------------------------------------------------- Prometheus metrics and the matcher


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()


def test_metrics_endpoint_reports_what_it_was_given():
    pytest.importorskip("prometheus_client", reason="prometheus-client (mvd-edge[site]) is not installed")
    m = MatchMetrics(port=0)
    try:
        m.update(cameras={"ir": {"fps": 15.0, "depth": 3, "dropped": 7, "corrupt": 1}}, frames=42,
                 stage_ms={"detect.ir": 12.5}, events={"match": 9})
        text = _scrape(m.port)
    finally:
        m.close()
    for line in ('mvd_edge_camera_fps{camera="ir"} 15.0', 'mvd_edge_camera_queue_depth{camera="ir"} 3.0',
                 'mvd_edge_camera_dropped_frames{camera="ir"} 7.0', "mvd_edge_frames_processed 42.0",
                 'mvd_edge_stage_latency_ms{stage="detect.ir"} 12.5', 'mvd_edge_events{kind="match"} 9.0'):
        assert line in text, line
    with pytest.raises(UsageError, match="outputs.metrics_port"):
        MatchMetrics(port=70000)


def test_matcher_run_sends_the_file_s_events_to_the_webhook_and_the_metrics(tmp_path):
    pytest.importorskip("prometheus_client", reason="prometheus-client (mvd-edge[site]) is not installed")
    rx = Receiver()
    world = BlockWorld(n=3, seed=1)
    srcs = block_sources(world, 40)
    metrics = MatchMetrics(port=0)
    try:
        summary = run_match(srcs["ir"], srcs["rgb"], ColorHistogramEmbedder(),
                            {s: BlockDetector(world, s, True) for s in ("ir", "rgb")}, config=MatcherConfig().updated({"association.hysteresis": 3}),
                            events=tmp_path / "ev.jsonl", status=False, sinks=[WebhookSink(rx.url)], metrics=metrics)
        text = _scrape(metrics.port)
    finally:
        metrics.close()
        rx.stop()
    in_file = list(read_events(tmp_path / "ev.jsonl"))
    assert rx.got == in_file  # the same events, stamps included, in the same order
    assert in_file[0]["event"] == "start" and in_file[-1]["event"] == "end"
    assert [e["seq"] for e in in_file] == list(range(len(in_file)))
    assert summary["sinks"][0]["delivered"] == len(in_file) and summary["sinks"][0]["dropped"] == 0
    assert "mvd_edge_frames_processed 40.0" in text
    assert f'mvd_edge_events{{kind="match"}} {float(summary["events"]["match"])}' in text
