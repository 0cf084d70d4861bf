"""The one matcher run: sources, time pairing, a :class:`~mvd_edge.match.pipeline.Matcher`, and its outputs.

:class:`Runner` runs a matcher of any cameras (a pair is a site of two cameras) and drives its
outputs, one protocol (:class:`~mvd_edge.match.events.Output`: ``start``, ``step``, ``end``): the
events file and network sinks, the crop saver, the annotated video and window, the metrics and the
live status line. What differs between a pair and a site is the matcher's policy's *view*: its
``start`` and ``end`` events, which events name crops, how a step is drawn, its summary, and
whether a step needs a frame of every camera (a pair: the run ends when one source ends) or of any
(a site: when all have). Its life cycle:

* ``start()``: opens the sources (each in its thread, waiting for the first frame), chooses the
  pairing of frames and starts the outputs (the ``start`` event);
* ``step()``: one step, handed to every output (False when the run should end, with ``reason`` set);
* ``close()``: stops the sources, writes the policy's last events and ends every output with the
  summary (the ``end`` event; the network sinks get up to 10 s for their backlog); returns the summary;
* ``run(max_steps, duration, on_step)``: all three; Ctrl-C and SIGTERM (through
  :func:`mvd_edge.core.signals.sigterm_as_interrupt`) end it as a finished run ends. ``on_step``
  gets the runner after each step (``result``: that step's
  :class:`~mvd_edge.match.pipeline.StepResult`).

Pairing frames: :class:`TimeSync` pairs them by timestamp. Steps run on a clock of period
``1 / step_fps`` (default: the fastest camera's fps). At step time ``T`` a camera contributes its
frame whose timestamp is within ``tolerance`` of ``T`` (default: half the step period); frames
older than that are skipped (counted as ``late``), a newer one waits for its step. A camera that
runs slower simply contributes to fewer steps, and a live camera that stalls or drops out
contributes nothing until it is back: it never blocks the others (each live camera is waited for
at most ``tolerance`` past ``T``). Files are read frame by frame without drops; a file that ends
leaves the run. Timestamps: media time (``frame / fps``) for files and folders, capture time
(monotonic clock) for cameras and URLs. A pair's two streams are the special case
(:meth:`TimeSync.for_pair`): in lockstep, one frame of each per step, in order.
"""

from __future__ import annotations

import logging
import resource
import time
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mvd_edge.core.errors import UsageError
from mvd_edge.core.signals import interrupts_deferred
from mvd_edge.match.events import EventWriter, Output
from mvd_edge.match.sources import FramePacket, FrameSource, SourceError, SourceSpec

__all__ = ["Output", "Runner", "StatusLine", "TimeSync", "rss_mb"]

_log = logging.getLogger(__name__)


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class TimeSync:
    """Frames of N sources paired by timestamp, or in ``lockstep`` (see the module docstring;
    :meth:`for_pair` chooses a pair's).

    Args:
        sources: ``{camera name: FrameSource}`` (started).
        step_fps: steps per second (default: the fastest source's fps).
        tolerance: seconds a frame may be off its step time (default: half a step period).
        live_wait: live sources: at most this many seconds past a step's time are waited for
            a frame (default: ``tolerance``).
        lockstep: one frame of each source per step, in order, each waited for as long as it takes.
        timer: a :class:`~mvd_edge.match.pipeline.StageTimer` that gets the time spent waiting for
            frames (``wait.<camera>`` in lockstep, else ``wait.sync``); None: not timed.
    """

    def __init__(self, sources: dict[str, FrameSource], step_fps: float | None = None,
                 tolerance: float | None = None, live_wait: float | None = None, lockstep: bool = False, timer=None):
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
        self.lockstep, self.timer = lockstep, timer
        self.warning: str | None = None  # why a pair's streams are paired by time

    @classmethod
    def for_pair(cls, sources: dict[str, FrameSource], timer=None) -> TimeSync:
        """A pair's streams in lockstep, unless they are two files at different frame rates: those are
        paired by time at the slower one's rate, within half a frame period of the faster one (its other
        frames skipped, counted in the summary's ``pairing``), with a :attr:`warning`, logged."""
        fps = {n: float(s.fps or 0.0) for n, s in sources.items()}
        if any(s.live for s in sources.values()) or min(fps.values()) <= 0 \
                or max(fps.values()) - min(fps.values()) <= 1e-3 * max(fps.values()):
            return cls(sources, lockstep=True, timer=timer)
        slow, fast = min(fps.values()), max(fps.values())
        sync = cls(sources, step_fps=slow, tolerance=0.5 / fast, timer=timer)
        rates = ", ".join(f"{n} {v:g} fps" for n, v in fps.items())
        sync.warning = (f"the streams' frame rates differ ({rates}): frames are paired by time, one pair "
                        f"per {1 / slow:.3f} s, within {0.5 / fast:.3f} s")
        _log.warning(sync.warning)
        return sync

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

    def next(self, waiting: Callable[[], bool] | None = None) -> tuple[float, dict[str, FramePacket]] | None:
        """The next step's time and its frames (cameras without a frame for it are absent); None when
        every source has ended. In lockstep ``waiting`` is called while a source has no frame yet:
        True gives the step up (None; no source in :attr:`ended` then)."""
        if self.lockstep:
            return self._lockstep(waiting)
        t0 = time.perf_counter()
        nxt = self._by_time()
        if self.timer is not None:
            self.timer.add("wait.sync", time.perf_counter() - t0)
        return nxt

    def _lockstep(self, waiting: Callable[[], bool] | None) -> tuple[float, dict[str, FramePacket]] | None:
        frames: dict[str, FramePacket] = {}
        for n, src in self.sources.items():
            t0 = time.perf_counter()
            while (pkt := src.get(timeout=0.1)) is False:
                if waiting is not None and waiting():
                    return None
            if self.timer is not None:
                self.timer.add("wait." + n, time.perf_counter() - t0)
            if pkt is None:
                self.ended.add(n)
                return None
            frames[n] = pkt
            self._record(n, pkt.index)
        self.step += 1
        return float(next(iter(frames.values())).time), frames

    def _by_time(self) -> tuple[float, dict[str, FramePacket]] | None:
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


class StatusLine(Output):
    """The live status line on a rich ``console`` (``profile``: with a per-stage table under it)."""

    live = True

    def __init__(self, console, profile: bool = False):
        self.console, self.profile = console, profile
        self.view = None
        self._last = 0.0

    def start(self, run: Runner) -> None:
        from rich.live import Live

        self.view = Live(console=self.console, auto_refresh=False, transient=False)
        self.view.start()

    def step(self, run: Runner, result=None, force: bool = False) -> None:
        now = time.monotonic()
        if self.view is not None and (force or now - self._last > 0.25):
            self.view.update(self._text(run), refresh=True)
            self._last = now

    def end(self, run: Runner, summary: dict[str, Any]) -> None:
        if self.view is not None:
            self.step(run, force=True)
            self.view.stop()

    def _text(self, run: Runner):
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        tm, srcs, n, el = run.matcher.timer, run.sources, run.steps, run.elapsed()
        det = sum(v for st, v in tm.ewma.items() if st.startswith("detect."))
        parts = [f"frame {n}", f"{(n - 1) / el if el > 0 and n > 1 else 0.0:5.1f} fps",
                 f"detect {1000 * det:5.1f} ms", f"track {1000 * tm.ewma.get('track', 0):4.1f}",
                 f"embed {1000 * tm.ewma.get('embed', 0.0):5.1f}", f"assoc {1000 * tm.ewma.get('associate', 0):4.1f}",
                 "queue " + " ".join(f"{s} {src.depth}/{src.queue.maxsize}" for s, src in srcs.items()),
                 "drops " + " ".join(f"{s} {src.dropped}" for s, src in srcs.items()), *run.policy.status(run)]
        bad = sum(src.stats.corrupt for src in srcs.values())
        rec = sum(src.stats.reconnects for src in srcs.values())
        if bad:
            parts.append(f"corrupt {bad}")
        if rec:
            parts.append(f"reconnects {rec}")
        line = Text(" | ".join(parts))
        if not self.profile:
            return line
        table = Table(title="per stage (ms): moving average / mean / last", title_justify="left", show_edge=False)
        for col in ("stage", "avg", "mean", "last", "rate (/s)"):
            table.add_column(col, justify="left" if col == "stage" else "right")
        for st in tm.stages():
            avg = tm.ewma[st]
            table.add_row(st, f"{1000 * avg:.2f}", f"{tm.mean_ms(st):.2f}", f"{1000 * tm.last[st]:.2f}",
                          f"{1 / avg:.0f}" if avg > 0 else "-")
        return Group(line, table)


class Runner:
    """See the module docstring.

    Args:
        matcher: a :class:`~mvd_edge.match.pipeline.Matcher` (its policy gives the view; its config's
            ``sources`` section how sources are read, ``site.step_fps`` / ``site.sync_tolerance`` a
            site's time steps, see :class:`TimeSync`).
        sources: ``{camera name: FrameSource (not started) or SourceSpec}``; default: the matcher's
            cameras' ``spec``.
        events: JSONL path or None; ``sinks``: network sinks that get every event the file gets;
            ``metrics``: a :class:`~mvd_edge.match.sinks.MatchMetrics`; ``crops``: a
            :class:`~mvd_edge.match.sinks.CropSaver`.
        save: annotated video path; ``show``: a window (OpenCV GUI); ``render_height``: height of
            a pair's frames in it, ``tile_height``: of a site's tiles.
        status: a live status line on ``console`` (rich); ``profile``: per-stage figures too.
        outputs: more :class:`Output` objects, after those above.
    """

    def __init__(self, matcher, sources: dict[str, FrameSource | SourceSpec] | None = None, *,
                 events: str | Path | None = None, sinks: Sequence = (), metrics=None, crops=None,
                 save: str | Path | None = None, show: bool = False, render_height: int = 360, tile_height: int = 240,
                 status: bool = False, profile: bool = False, console=None, outputs: Sequence[Output] = ()):
        from mvd_edge.match.render import VideoSink, Window

        window = Window() if show else None  # fail before opening anything
        src = matcher.config.sources
        if sources is None:
            sources = {c.name: c.spec for c in matcher.cameras.values()}
        self.sources = {n: s if isinstance(s, FrameSource) else
                        FrameSource(s, n, queue_size=src.queue_size, realtime=src.realtime,
                                    open_timeout=src.open_timeout, max_offline=src.max_offline)
                        for n, s in sources.items()}
        self.matcher, self.policy = matcher, matcher.policy
        self.writer = EventWriter(events, sinks=sinks)
        video = VideoSink(save) if save is not None else None
        optional = (crops, video, window, metrics, StatusLine(console, profile) if status and console is not None else None)
        self.outputs: list[Output] = [self.writer, *(o for o in optional if o is not None), *outputs]
        self.events_path, self.sinks = events, list(sinks)
        self.render_height, self.tile_height = int(render_height), int(tile_height)
        self.steps = 0
        self.reason = "?"
        self.error: str | None = None  # a pair: the message of a source that failed for good (run raises it)
        self.result = None  # the last step's StepResult
        self.sync: TimeSync | None = None  # how frames are paired (set by start)
        self.unpaired = 0  # a pair paired by time: steps of the slower stream without a frame of the other
        self.last: dict[str, FramePacket | None] = {n: None for n in self.sources}
        self.lat: deque = deque(maxlen=2000)
        self.deadline: float | None = None  # monotonic time at which run(duration=...) ends
        self._t_start: float | None = None
        self._t_first: float | None = None
        self._canvas = None  # this step's annotated frame, once drawn
        self._spent: dict[str, float] = {}  # this step's output time by stage
        self._render_s = 0.0
        self._rss_start = rss_mb()
        self._closed = False

    # ------------------------------------------------------------------ the life cycle
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def start(self) -> "Runner":
        self._t_start = time.monotonic()
        for s in self.sources.values():
            s.start()
        for s in self.sources.values():
            s.wait_open()
        site = self.matcher.config.site
        self.sync = TimeSync.for_pair(self.sources, self.matcher.timer) if self.policy.need_all else \
            TimeSync(self.sources, site.step_fps, site.sync_tolerance)
        for o in self.outputs:
            o.start(self)
        return self

    def elapsed(self) -> float:
        """Seconds since the first frames arrived (the run's rate counts from there)."""
        return time.monotonic() - (self._t_first or time.monotonic())

    def step(self) -> bool:
        """One step; False when the run should end (``reason`` says why)."""
        frames = self._next_frames()
        if frames is None:
            return False
        if self._t_first is None:
            self._t_first = time.monotonic()
        with interrupts_deferred():  # a step is whole: its events, its video frame and its count
            return self._process(frames)

    def close(self) -> dict[str, Any]:
        """Stop the sources, write the policy's last events, then end every output with the summary."""
        if self._closed:
            raise UsageError("this run is already closed")
        self._closed = True
        for s in self.sources.values():
            s.stop()
        for ev in self.policy.finish(self.last):
            self.writer.write(ev)
        summary = self.policy.summary(self)
        for o in self.outputs:
            o.end(self, summary)
        return summary

    def run(self, max_steps: int | None = None, duration: float | None = None,
            on_step: Callable[[Runner], None] | None = None) -> dict[str, Any]:
        """Start, step until the sources end (or ``max_steps`` steps / ``duration`` seconds), close.
        A pair whose source failed for good raises :class:`SourceError` (the summary in ``exc.summary``)."""
        if max_steps is not None and max_steps < 1:
            raise UsageError(f"--max-frames must be >= 1, got {max_steps}")
        if duration is not None and not duration > 0:
            raise UsageError(f"--duration must be > 0, got {duration}")
        try:
            self.start()
            if duration is not None:
                self.deadline = self._t_start + duration
            while True:
                if max_steps is not None and self.steps >= max_steps:
                    self.reason = f"--max-frames {max_steps} reached"
                    break
                if self.out_of_time():
                    self.reason = f"--duration {duration:g} s reached"
                    break
                if not self.step():
                    break
                if on_step is not None:
                    on_step(self)
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through sigterm_as_interrupt
            from mvd_edge.core.signals import Terminated

            self.reason = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (SIGINT)"
        finally:
            summary = self.close()
        if self.error is not None:
            exc = SourceError(self.error)
            exc.summary = summary  # type: ignore[attr-defined]
            raise exc
        return summary

    # ------------------------------------------------------------------ a step
    def _next_frames(self) -> dict[str, FramePacket] | None:
        """The next step's frames; None when the run ends here (``reason`` set)."""
        if not self.policy.need_all:
            nxt = self.sync.next()
            if nxt is None:
                errors = [f"{n}: {s.error}" for n, s in self.sources.items() if s.error]
                self.reason = "all sources ended" + (f" ({'; '.join(errors)})" if errors else "")
                return None
            return nxt[1]
        while True:  # a pair: a frame of every camera
            nxt = None if self.sync.ended else self.sync.next(self._waiting)
            if nxt is None:
                ended = [n for n in self.sources if n in self.sync.ended]
                return self._ended(ended[0]) if ended else self._timed_out()
            if len(nxt[1]) == len(self.sources):
                return nxt[1]
            self.unpaired += 1
            self._heartbeat()
            if self.out_of_time():
                return self._timed_out()

    def _waiting(self) -> bool:
        """While a frame is waited for: the live outputs refresh; True when the run's time is up."""
        self._heartbeat()
        return self.out_of_time()

    def _ended(self, n: str) -> None:
        self.error = self.sources[n].error
        self.reason = f"{n} source ended" + (f": {self.error}" if self.error else "")

    def _timed_out(self) -> None:
        self.reason = f"--duration {self.deadline - self._t_start:g} s reached"

    def _process(self, frames: dict[str, FramePacket]) -> bool:
        res = self.result = self.matcher.step(frames)
        self.lat.append(time.monotonic() - min(p.captured for p in frames.values()))
        self.steps += 1
        self.last.update(frames)
        self._canvas, self._spent = None, {}
        go_on = True
        for o in self.outputs:
            t0 = time.perf_counter()
            self._render_s = 0.0
            go_on = o.step(self, res) is not False
            if o.stage is not None:
                self._spent[o.stage] = self._spent.get(o.stage, 0.0) + time.perf_counter() - t0 - self._render_s
            if not go_on:
                break
        for st, seconds in self._spent.items():
            self.matcher.timer.add(st, seconds)
        return go_on

    def canvas(self, result):
        """The step's annotated frame (the policy's drawing, made once per step; timed as ``render``)."""
        if self._canvas is None:
            t0 = time.perf_counter()
            self._canvas = self.policy.render(self, result)
            self._render_s = time.perf_counter() - t0
            self._spent["render"] = self._spent.get("render", 0.0) + self._render_s
        return self._canvas

    def _heartbeat(self) -> None:
        """While waiting for frames: the live outputs refresh."""
        for o in self.outputs:
            if o.live:
                o.step(self, None)
