"""What every matcher run does around the matching: sources, the event file and sinks, metrics, the loop.

:class:`Runner` is the base of the two runners, :class:`~mvd_edge.match.pipeline.PairRunner`
(one IR and one RGB stream, ``mvd-edge match --ir --rgb``) and
:class:`~mvd_edge.match.site.SiteRunner` (N cameras paired by time, ``mvd-edge match
--cameras``). Its life cycle:

* ``start()``: opens the sources (each in its thread, waiting for the first frame), then the
  subclass's :meth:`Runner._started` (the ``start`` event, the video file);
* ``step()``: the subclass's one step; False when the run should end, with ``reason`` set;
* ``close()``: stops the sources, then the subclass's :meth:`Runner._closing` (the last
  events and the summary), writes the ``end`` event, closes the event file and the network
  sinks (each gets up to 10 s for its backlog) and pushes the metrics a last time; returns
  the summary;
* ``run(max_steps, duration, on_step)``: all three; Ctrl-C and SIGTERM (through
  :func:`mvd_edge.core.signals.sigterm_as_interrupt`) end it as a finished run ends.
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mvd_edge.core.errors import UsageError
from mvd_edge.match.events import EventWriter
from mvd_edge.match.sources import FrameSource

__all__ = ["Runner", "rss_mb"]


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Runner:
    """See the module docstring. ``sources``: ``{name: FrameSource}`` (not started);
    ``events``: JSONL path or None; ``sinks``: network sinks that get every event the file
    gets; ``metrics``: a :class:`~mvd_edge.match.sinks.MatchMetrics`."""

    def __init__(self, sources: dict[str, FrameSource], *, events: str | Path | None = None, sinks: Sequence = (),
                 metrics=None):
        self.sources = sources
        self.writer = EventWriter(events, sinks=sinks)
        self.sinks, self.metrics = list(sinks), metrics
        self.steps = 0
        self.reason = "?"
        self.deadline: float | None = None  # monotonic time at which run(duration=...) ends
        self._t_start: float | None = None
        self._t_first: float | None = None
        self._rss_start = rss_mb()
        self._closed = False

    # -- for subclasses
    def _started(self) -> None:
        """After the sources opened: write the ``start`` event, open outputs."""

    def _closing(self) -> dict[str, Any]:
        """After the sources stopped: write the last events; return the summary (the ``end`` event's)."""
        return {}

    def _end_event(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {"event": "end", "summary": summary}

    def _timer(self):
        """The per-stage timer the metrics report."""
        raise NotImplementedError

    def _closed_outputs(self, summary: dict[str, Any]) -> None:
        """After the event file and sinks closed: close the subclass's own outputs."""

    def step(self) -> bool:
        raise NotImplementedError

    def step_result(self) -> Any:
        """What ``run``'s ``on_step`` gets after each step (default: the runner)."""
        return self

    # -- the life cycle
    def out_of_time(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    def start(self) -> "Runner":
        self._t_start = time.monotonic()
        for s in self.sources.values():
            s.start()
        for s in self.sources.values():
            s.wait_open()
        self._started()
        return self

    def first_step(self) -> None:
        """Call when the first frames arrived (the run's fps counts from here)."""
        if self._t_first is None:
            self._t_first = time.monotonic()

    def elapsed(self) -> float:
        """Seconds since the first frames arrived."""
        return time.monotonic() - (self._t_first or time.monotonic())

    def push_metrics(self, force: bool = False) -> None:
        if self.metrics is not None:
            self.metrics.observe(self.sources, self.steps, self._timer(), self.writer.counts, self.sinks, force=force)

    def close(self) -> dict[str, Any]:
        if self._closed:
            raise UsageError("this run is already closed")
        self._closed = True
        for s in self.sources.values():
            s.stop()
        summary = self._closing()
        self.writer.write(self._end_event(summary))
        self.writer.close()  # the network sinks deliver their backlog here
        if self.sinks:
            summary["sinks"] = [s.summary() for s in self.sinks]
        self.push_metrics(force=True)
        self._closed_outputs(summary)
        return summary

    def run(self, max_steps: int | None = None, duration: float | None = None,
            on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """Start, step until the sources end (or ``max_steps`` steps / ``duration`` seconds), close."""
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
                    on_step(self.step_result())
        except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM through sigterm_as_interrupt
            from mvd_edge.core.signals import Terminated

            self.reason = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted (SIGINT)"
        finally:
            summary = self.close()
        return summary
