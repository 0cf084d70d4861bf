"""SIGTERM handled like Ctrl-C: what ``docker stop`` and systemd send ends a run cleanly.

:func:`sigterm_as_interrupt` makes SIGTERM raise :class:`Terminated` (a ``KeyboardInterrupt``)
in the main thread, so the code that already finishes a run on Ctrl-C (``match`` closes its
video, writes its final events) does the same on SIGTERM. :func:`interrupt_exit_code` gives the
shell's exit status for either: 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["Terminated", "interrupt_exit_code", "interrupts_deferred", "sigterm_as_interrupt"]


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM."""


def _raise_terminated(signum, frame):  # noqa: ARG001 - signal handler signature
    raise Terminated("SIGTERM")


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def interrupt_exit_code(exc: BaseException) -> int:
    """128 + the signal number: 143 for :class:`Terminated`, 130 for any other KeyboardInterrupt."""
    return 128 + (signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """SIGINT / SIGTERM arriving within the block take effect when it ends, through whatever handlers
    were in place (a ``KeyboardInterrupt`` / :class:`Terminated` right after the block). For work that
    must be whole: one matcher step's events, its video frame and its count (an interrupt between
    them left the video a frame short of the count). Main thread only; elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame):  # noqa: ARG001 - signal handler signature
        pending.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            signal.raise_signal(sig)
