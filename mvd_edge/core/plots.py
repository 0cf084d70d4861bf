"""One way to make figures: ``figure(...)`` -> a matplotlib ``Figure``, or ``None`` without matplotlib.

Library code draws on ``matplotlib.figure.Figure`` objects (no pyplot, no global backend
switch: a caller's interactive backend is left alone) and saves them with ``fig.savefig``.
matplotlib is optional (``pip install 'mvd-edge[plots]'``; ``[train]`` brings it): without it
the PNGs are skipped and one message says so; JSON results are written either way.
"""

from __future__ import annotations

import sys
import warnings

PLOTS_HINT = "pip install 'mvd-edge[plots]'"
_warned = {"done": False}


class PlotsSkipped(UserWarning):
    """matplotlib is not installed: PNG plots are skipped (the JSON results are still written)."""


def figure(*, nrows: int = 1, ncols: int = 1, figsize: tuple[float, float] = (6, 4), squeeze: bool = True):
    """``(fig, axes)`` like ``pyplot.subplots``, or ``(None, None)`` when matplotlib is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        if not _warned["done"]:
            _warned["done"] = True
            msg = f"matplotlib is not installed: PNG plots skipped ({PLOTS_HINT})"
            warnings.warn(msg, PlotsSkipped, stacklevel=2)
            print(f"note: {msg}", file=sys.stderr)
        return None, None
    fig = Figure(figsize=figsize)
    axes = fig.subplots(nrows, ncols, squeeze=squeeze)
    return fig, axes


def save(fig, path, dpi: int = 110) -> bool:
    """Lay out and write ``fig`` (a no-op returning False for ``None``)."""
    if fig is None:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    return True
