"""JSONL match events: one JSON object per line, ``"event"`` says which kind.

One schema, version ``site/1`` (:data:`EVENT_SCHEMA_VERSION`, the ``schema`` field of every
``start`` event), for every matcher run: a run is a *site* of N cameras, and a pair (``match
--ir --rgb``) is a site of two cameras named ``ir`` and ``rgb`` whose events are written in
the *pair view* below (``"view": "pair"`` in its ``start``). Boxes are ``[x, y, w, h]`` in the
source frame's pixels (top-left corner, width, height; floats). Every event also carries
``run_id`` (one per matcher run) and ``seq`` (0, 1, 2, ... in write order), the same in the
file and in every network sink (:mod:`~mvd_edge.match.sinks`), so a receiver can drop a
resent event and join what it got with the file.

The site view (``"view": "site"``)::

    {"event": "start", "schema": "site/1", "view": "site", "cameras": {name: {"modality", "source", "fps"}},
     "embedder": {"backend", "precision", "dim"}, "config": {...}}
    {"event": "sighting", "step", "camera", "frame", "time", "track", "global_id", "box": [x, y, w, h]}
    {"event": "identity", "step", "camera", "frame", "track", "global_id", "similarity", "via": "new"|"cross"|"same"}
    {"event": "end", "frames": {camera: [[first, count], ...]}, "summary": {...}}

``sighting``: each step, each track with a global id that was detected in that camera's
frame (``frame``: that camera's own 0-based frame number; ``time``: its time in seconds).
``identity``: a track's global id was set or changed (``via``: a new identity, or matched to
an existing one cross-modally or within its modality). ``end.frames``: the frames each camera
contributed, as runs.

The pair view (``"view": "pair"``): the same ``start`` (cameras ``ir`` and ``rgb``) with the
pair's own fields, a global id per reported IR x RGB pair of tracks, and one event per step
and pair instead of the two sightings::

    {"event": "start", "schema": "site/1", "view": "pair", "cameras": {"ir": {...}, "rgb": {...}},
     "ir_source": str, "rgb_source": str, "fps": {"ir": float, "rgb": float},
     "embedder": {...}, "detector": {"ir": str, "rgb": str}, "config": {...}}
    {"event": "match", "frame": int, "ir_frame": int, "rgb_frame": int, "time": float,
     "ir_track": int, "rgb_track": int, "global_id": int, "similarity": float,
     "ir_box": [x, y, w, h], "rgb_box": [x, y, w, h]}
    {"event": "end", "frames": int, "steps": [[ir_first, rgb_first, count], ...],
     "steps_truncated": bool, "summary": {...}}

``frame`` is the step number (0-based, one step per pair of frames); ``ir_frame``/``rgb_frame``
are the sources' own 0-based frame numbers (for files and folders: the frame's media time in
frames, so frames lost before it do not shift it). ``time`` is the IR frame's time in seconds:
media time for files and folders (the container's timestamp, see
:mod:`~mvd_edge.match.sources`), seconds since the source started for cameras and URLs. Two
files at different frame rates are paired by time (``start`` then has ``"pairing": "time"``
and a ``"warning"``, and ``match``/``pair_*`` events also carry ``"rgb_time"``, the RGB
frame's time); otherwise the streams step in lockstep.

``match``: one per step for each reported pair whose two tracks were both detected in that
step's frames (so every match line has two observed boxes; with ``report_coast`` a box may be
the tracker's prediction, listed in ``"predicted"``). ``pair_start`` / ``pair_end``: a pair
became reported (after k steps of hysteresis) or was dropped; same fields as ``match`` (boxes
may be ``null`` when a track was not detected in that frame), plus ``"reason"`` on
``pair_end``: ``similarity`` (failed k steps), ``track_ended`` (the tracker ended one of the
tracks), ``track_split`` (one of the tracks went on under a new id: its crops stopped agreeing
with it), ``superseded`` (a dormant pair -- one track not seen lately -- replaced by a new pair
of its other track) or ``shutdown``. ``end.steps`` lists the processed frame pairs compactly:
each run ``[a, b, n]`` stands for the pairs ``(a, b), (a+1, b+1), ..., (a+n-1, b+n-1)`` of
(ir_frame, rgb_frame).

Files written before the one schema have ``"schema": 1`` and no ``view`` (a pair) or
``"schema": "site/1"`` and no ``view`` (a site); :func:`event_view` reads all three.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.util import output_error, track_output, untrack_output

__all__ = ["EVENT_SCHEMA_VERSION", "EventWriter", "Output", "StepRuns", "box_xywh", "event_view", "read_events", "start_event"]

EVENT_SCHEMA_VERSION = "site/1"


def start_event(view: str, cameras: dict[str, dict[str, Any]], embedder, config: dict[str, Any],
                **fields: Any) -> dict[str, Any]:
    """The ``start`` event of a run in ``view`` (``site`` or ``pair``); ``fields``: the view's own."""
    return {"event": "start", "schema": EVENT_SCHEMA_VERSION, "view": view, **fields, "cameras": cameras,
            "embedder": {"backend": getattr(embedder, "backend", "?"), "precision": getattr(embedder, "precision", "?"),
                         "dim": int(embedder.dim)},
            "config": config}


def event_view(start: dict[str, Any] | None) -> str | None:
    """``site`` or ``pair``: the view of the events whose ``start`` event this is (older files
    included: ``"schema": 1`` is a pair); None for no start event or another schema."""
    if start is None:
        return None
    schema = start.get("schema")
    if schema == 1:
        return "pair"
    if schema != EVENT_SCHEMA_VERSION:
        return None
    return start.get("view", "site")


def box_xywh(box: np.ndarray | None) -> list[float] | None:
    """x1y1x2y2 -> ``[x, y, w, h]`` rounded to 0.1 px (None stays None)."""
    if box is None:
        return None
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1, 1), round(y1, 1), round(x2 - x1, 1), round(y2 - y1, 1)]


class StepRuns:
    """Run-length record of processed (ir_frame, rgb_frame) pairs.

    Memory grows with the number of gaps (dropped frames), at most ``max_runs`` runs; past
    that ``truncated`` is set and later pairs are not recorded."""

    def __init__(self, max_runs: int = 100_000) -> None:
        self.runs: list[list[int]] = []
        self.max_runs = int(max_runs)
        self.truncated = False

    def add(self, ir_frame: int, rgb_frame: int) -> None:
        if self.runs:
            a, b, n = self.runs[-1]
            if ir_frame == a + n and rgb_frame == b + n:
                self.runs[-1][2] += 1
                return
        if len(self.runs) >= self.max_runs:
            self.truncated = True
            return
        self.runs.append([int(ir_frame), int(rgb_frame), 1])


class Output:
    """One output of a run: a :class:`~mvd_edge.match.runner.Runner` drives a list of them. The events
    file with its network sinks (:class:`EventWriter`), the crop saver and the Prometheus metrics
    (:class:`~mvd_edge.match.sinks.CropSaver`, :class:`~mvd_edge.match.sinks.MatchMetrics`), the
    annotated video and the window (:class:`~mvd_edge.match.render.VideoSink`,
    :class:`~mvd_edge.match.render.Window`) and the live status line
    (:class:`~mvd_edge.match.runner.StatusLine`) are outputs; each overrides what it needs.

    ``stage``: the matcher's stage (timer) that :meth:`step` counts in, None: not timed. ``live``: it
    also gets ``step(run, None)`` while the run waits for frames (metrics, status: to stay current).
    An output that draws gets the step's annotated frame from ``run.canvas(result)`` (drawn once)."""

    stage: str | None = None
    live = False

    def start(self, run) -> None:
        """The sources are open and the pairing chosen (``run.sync``)."""

    def step(self, run, result) -> bool | None:
        """After each step (``result``: its :class:`~mvd_edge.match.pipeline.StepResult`); False ends the run."""

    def end(self, run, summary: dict[str, Any]) -> None:
        """The run ended; ``summary`` is its summary (an output may add its entry to it)."""


class EventWriter(Output):
    """Appends events to a JSONL file (flushed every ``flush_every`` lines and on close) and
    hands each to the ``sinks`` (objects with ``write(event)`` and ``close(timeout)``, see
    :mod:`~mvd_edge.match.sinks`), stamped with ``run_id`` and ``seq``.

    ``path=None`` writes no file (the counts are still kept, the sinks still get the events).

    The file only ever holds whole lines. When a write fails (a full disk, a read-only or removed
    drive), the file is cut back to its last whole line and the ``OSError`` (naming the file) is
    raised once; later events go to the sinks only, except the ``end`` event, which is still tried
    (it then carries ``"incomplete"``: why events are missing). The error's note says whether the
    file ends with its ``end`` event. A command stopped by any error finalises the file the same way
    (:func:`mvd_edge.core.util.finalise_outputs`)."""

    def __init__(self, path: str | Path | None, flush_every: int = 50, sinks: Sequence = (),
                 run_id: str | None = None, sink_close_timeout: float = 10.0):
        from mvd_edge.match.sinks import new_run_id

        self.path = Path(path) if path is not None else None
        self.sinks = list(sinks)
        self.run_id = run_id or new_run_id()
        self.seq = 0
        self.sink_close_timeout = float(sink_close_timeout)
        self.undelivered: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.error: OSError | None = None  # the first failed write of the file
        self.lost = 0  # events the file did not get after that
        self.ended = False  # the file's last line is an end event
        self._f = None
        self._pending: list[bytes] = []  # whole lines not yet written
        self._size = 0  # bytes of whole lines on disk
        self.flush_every = int(flush_every)
        if self.path is not None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._f = self.path.open("wb", buffering=0)
            except OSError as exc:
                raise output_error(exc, self.path) from exc
            track_output(self)

    def write(self, event: dict[str, Any]) -> None:
        kind = str(event.get("event", "?"))
        self.counts[kind] = self.counts.get(kind, 0) + 1
        event = {**event, "run_id": self.run_id, "seq": self.seq}
        self.seq += 1
        for sink in self.sinks:
            sink.write(event)
        if self._f is None:
            return
        if self.error is not None:
            if kind != "end":
                self.lost += 1
                return
            event["incomplete"] = f"{self.lost} events before this one are missing: {self.error.strerror}"
        self._pending.append((json.dumps(event, separators=(",", ":")) + "\n").encode())
        self.ended = False
        if kind == "end" or len(self._pending) >= self.flush_every:
            self.ended = self._flush() and kind == "end"

    def _flush(self) -> bool:
        """Write the pending lines (True when they are on disk); on failure cut the file back to its
        last whole line and raise the error the first time (the lines not written count as lost)."""
        data, self._pending = b"".join(self._pending), []
        done = 0
        try:
            while done < len(data):  # a raw write may take part of the data: go on with the rest
                done += self._f.write(memoryview(data)[done:])
            self._size += done
            return True
        except OSError as exc:
            kept = data[:done].rfind(b"\n") + 1  # the whole lines that reached the disk stay
            self._size += kept
            try:
                os.ftruncate(self._f.fileno(), self._size)
                os.lseek(self._f.fileno(), self._size, os.SEEK_SET)  # the next line goes right after it
            except OSError:
                pass  # the file is gone or dead; the error says so
            self.lost += data.count(b"\n") - data[:kept].count(b"\n")
            if self.error is None:
                self.error = output_error(exc, self.path)
                raise self.error from exc
            return False

    def _close_file(self) -> str:
        """Close the file; what it holds, as a note on :attr:`error` (and returned) after a failed write."""
        try:
            self._flush()
        except OSError:
            pass  # kept in self.error
        try:
            self._f.close()
        except OSError:
            pass
        self._f = None
        untrack_output(self)
        if self.error is None:
            return ""
        note = (f"{self.path} keeps whole lines only, "
                + ("ending with an end event" if self.ended else "with no end event (it could not be written)"))
        self.error.add_note(note)
        return note

    def abandon(self) -> str:
        """For an error handler: finish the file (an ``end`` event saying why, if it has none yet)."""
        if self._f is None:
            return ""
        failed_before = self.error is not None
        if not failed_before and not self.ended:
            try:
                self.write({"event": "end", "incomplete": "the command stopped on an error"})
            except OSError:
                pass  # kept in self.error
        note = self._close_file()
        if failed_before:
            return ""  # that error is the one being reported; the note is on it
        if self.error is not None:
            return f"{self.path} could not be finished either ({self.error.strerror}): {note}"
        return f"{self.path} ends with an end event"

    def close(self) -> None:
        """Close the file, then give each sink up to ``sink_close_timeout`` s to deliver its
        backlog (:attr:`undelivered` records what was left, by sink). A failed write was raised
        where it happened; it is not raised again here."""
        if self._f is not None:
            self._close_file()
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            self.undelivered[getattr(sink, "name", repr(sink))] = int(sink.close(self.sink_close_timeout) or 0)

    # ------------------------------------------------------------------ an output of a run
    stage = "write"

    def start(self, run) -> None:
        self.write(run.policy.start_event(run))

    def step(self, run, result) -> None:
        for ev in result.events:
            self.write(ev)

    def end(self, run, summary: dict[str, Any]) -> None:
        """The ``end`` event, then :meth:`close`; the sinks' counters go into ``summary["sinks"]``."""
        self.write(run.policy.end_event(run, summary))
        sinks = self.sinks
        self.close()
        if sinks:
            summary["sinks"] = [s.summary() for s in sinks]


def read_events(path: str | Path) -> Iterator[dict[str, Any]]:
    """Events of a JSONL file, in order (ValueError with the line number for a bad line)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"events file not found: {p}")
    with p.open() as f:
        for lineno, line in enumerate(f, start=1):
            line = line.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{p}:{lineno}: not JSON ({exc.msg})") from None
            if not isinstance(ev, dict) or "event" not in ev:
                raise UsageError(f"{p}:{lineno}: expected an object with an 'event' key")
            yield ev
