"""What every sub-app of the CLI shares: the consoles, the ``friendly`` error decorator and option parsers.

Imports only typer, rich and :mod:`mvd_edge.core` (no numpy, torch, OpenCV, ...), so that
``mvd-edge --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mvd_edge.core import sizes
from mvd_edge.core.errors import MvdEdgeError, UsageError

__all__ = ["USER_ERRORS", "console", "err_console", "friendly", "parse_int_list", "parse_size",
           "refuse_overwriting_inputs"]

console = Console()
err_console = Console(stderr=True)

USER_ERRORS: tuple[type[BaseException], ...] = (MvdEdgeError, FileNotFoundError, NotADirectoryError, PermissionError)
"""Errors about the user's input or machine: shown as one line. The OS errors are about the user's files."""


def friendly(fn):
    """Turn user errors (:data:`USER_ERRORS`) into one red line on stderr and exit code 2.

    Anything else (a ``ValueError``, ``KeyError``, ... from a bug) propagates with its traceback:
    hiding it behind one line would hide the bug. ``MVD_EDGE_DEBUG=1`` shows the traceback of
    user errors too. Typer's own ``BadParameter`` passes through and is reported by Typer.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            if os.environ.get("MVD_EDGE_DEBUG"):
                raise
            # escape: messages hold text like "mvd-edge[trt]" that rich would take for markup
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def refuse_overwriting_inputs(outputs: dict[str, Path | str | None], inputs: dict[str, Path | str | None]) -> None:
    """A :class:`UsageError` when an output path is (or resolves to, through links or ``..``) one
    of the inputs: writing it would destroy what the command reads. Non-path inputs (a camera
    index, a URL) and unset options are ignored."""
    def resolved(p):
        if p is None or "://" in str(p):
            return None
        try:
            return Path(p).expanduser().resolve()
        except (OSError, RuntimeError):
            return None

    ins: dict[Path, str] = {}
    for name, p in inputs.items():
        r = resolved(p)
        if r is None:
            continue
        ins.setdefault(r, name)
        companion = r.with_name(r.name + ".json")  # an engine's sidecar belongs to the engine
        if companion.is_file():
            ins.setdefault(companion, f"sidecar of the {name}")
    seen: dict[Path, str] = {}
    for name, p in outputs.items():
        r = resolved(p)
        if r is None:
            continue
        if r in ins:
            raise UsageError(f"{name} {p} is the {ins[r]} itself: writing it would destroy the input; "
                             f"choose another path")
        if r in seen:
            raise UsageError(f"{name} and {seen[r]} are the same file {p}: one would overwrite the other; "
                             "give them different paths")
        seen[r] = name


def refuse_existing(outputs: dict[str, Path | str | None], overwrite: bool) -> None:
    """A :class:`UsageError` when an output file already exists (or an output folder is not empty)
    and ``overwrite`` is not given: nothing a user has is replaced without asking."""
    for name, p in outputs.items():
        if p is None or "://" in str(p):
            continue
        for parent in Path(p).expanduser().absolute().parents:  # a folder that cannot be made
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"{name} {p}: {parent} is a file, not a folder; choose another path")
                break
    if overwrite:
        return
    for name, p in outputs.items():
        if p is None or "://" in str(p):
            continue
        path = Path(p).expanduser()
        if path.is_file() or (path.is_dir() and any(path.iterdir())):
            kind = "folder is not empty" if path.is_dir() else "already exists"
            raise UsageError(f"{name} {p}: {kind}; add --overwrite to replace it, or choose another path")
        if path.exists() and not path.is_dir():
            raise UsageError(f"{name} {p} exists and is not a regular file or folder; choose another path")


def check_outputs(outputs: dict[str, Path | str | None], inputs: dict[str, Path | str | None],
                  overwrite: bool) -> None:
    """The output policy of every command: never an input (:func:`refuse_overwriting_inputs`),
    never an existing file or non-empty folder without ``--overwrite`` (:func:`refuse_existing`)."""
    refuse_overwriting_inputs(outputs, inputs)
    refuse_existing(outputs, overwrite)


def check_image_path(name: str, path: Path | None) -> None:
    """A chart output must have an image suffix matplotlib writes (``.png``, ``.jpg``, ``.svg``, ``.pdf``)."""
    if path is not None and path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".svg", ".pdf"):
        raise UsageError(f"{name} {path}: a chart is written as .png, .jpg, .svg or .pdf; got {path.suffix or 'no suffix'}")


def check_device_option(device: str | None, allow_auto: bool = True) -> None:
    """``--device`` checked before any model is loaded (torch's own message misleads: it blames the file)."""
    from mvd_edge.core.util import check_device

    if device is None:
        return
    try:
        check_device(device, allow_auto=allow_auto)
    except ValueError as exc:
        raise UsageError(f"--device: {exc}") from None


OVERWRITE_HELP = "replace outputs that already exist (without it, an existing output is an error)"


def parse_size(text: str, what: str = "size") -> tuple[int, int]:
    """:func:`mvd_edge.core.sizes.parse_size` as a Typer usage error: ``"256x128"`` -> (256, 128)."""
    try:
        return sizes.parse_size(text, what)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_int_list(text: str, what: str) -> list[int]:
    """:func:`mvd_edge.core.sizes.parse_int_list` as a Typer usage error: ``"1,8,32"`` -> ``[1, 8, 32]``."""
    try:
        return sizes.parse_int_list(text, what)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None
