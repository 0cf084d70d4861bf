"""The parsers for sizes given on the command line: ``HEIGHTxWIDTH`` (crop, frame, detector input) and batch lists.

One rule set for every size option, so ``--size`` means the same thing everywhere: two integers
joined by ``x`` (case-insensitive, spaces around the numbers allowed), height first, each side at
least :data:`MIN_SIDE` pixels. Errors are :class:`~mvd_edge.core.errors.UsageError`; the CLI
turns them into Typer's usage error.

(Camera resolutions in a cameras YAML are ``WIDTHxHEIGHT``, the camera convention, and are parsed
by :mod:`mvd_edge.match.sources`.)
"""

from __future__ import annotations

from mvd_edge.core.errors import UsageError

__all__ = ["MIN_SIDE", "parse_int_list", "parse_size"]

MIN_SIDE = 8
"""Smallest height or width accepted: below it no crop, frame or detector input is usable."""


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """``"256x128"`` -> ``(256, 128)`` as (height, width); ``what`` names the option in the message."""
    try:
        h, w = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise UsageError(f"{what} must look like HEIGHTxWIDTH (e.g. 256x128), got {text!r}") from None
    if h < MIN_SIDE or w < MIN_SIDE:
        raise UsageError(f"{what} too small: {text!r} (height and width must be >= {MIN_SIDE})")
    return h, w


def parse_int_list(text: str, what: str) -> list[int]:
    """``"1,8,32"`` -> ``[1, 8, 32]``: comma-separated positive integers (batch sizes, ...)."""
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise UsageError(f"{what} must be positive integers, got {text!r}")
    return vals
