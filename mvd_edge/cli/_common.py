"""What every sub-app of the CLI shares: the consoles, the ``friendly`` error decorator and option parsers.

Imports only typer, rich and :mod:`mvd_edge.core` (no numpy, torch, OpenCV, ...), so that
``mvd-edge --help`` stays fast.
"""

from __future__ import annotations

import errno
import functools
import os
import re
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from mvd_edge.core import sizes
from mvd_edge.core.errors import MvdEdgeError, UsageError

__all__ = ["MACHINE_FAULTS", "USER_ERRORS", "console", "err_console", "fault_message", "file_identity", "friendly",
           "parse_int_list", "parse_size", "refuse_overwriting_inputs"]

console = Console()
err_console = Console(stderr=True)

USER_ERRORS: tuple[type[BaseException], ...] = (MvdEdgeError, FileNotFoundError, NotADirectoryError, PermissionError)
"""Errors about the user's input or machine: shown as one line. The OS errors are about the user's files."""

MACHINE_FAULTS: dict[int, tuple[str, str]] = {
    errno.EROFS: ("the file system is read-only", "write to a writable disk or folder, or remount it read-write"),
    errno.EACCES: ("permission denied", "use a folder you may write to, or change its permissions"),
    errno.EPERM: ("operation not permitted", "use a folder you may write to, or change its permissions"),
    errno.ENOSPC: ("no space left on the device", "free space there or write to another disk"),
    errno.EDQUOT: ("disk quota exceeded", "free space within your quota or write to another disk"),
    errno.EFBIG: ("the file is too large for this file system", "write to another file system"),
    errno.EIO: ("input/output error (a failing or removed drive?)", "check the drive, then run again"),
}
"""``OSError`` errnos of a machine fault (what the disk or the system refused, not a bug), with the
reason and what to do, as the error handler words them."""

_outputs: dict[str, str] = {}  # the outputs the running command declared to the output policy, by name


def _is_output(path: str) -> bool:
    """Whether ``path`` is a declared output or inside an output folder."""
    p = Path(path).absolute()
    return any(p == o or o in p.parents for o in (Path(out).expanduser().absolute() for out in _outputs.values()))


def _final_name(path: str) -> str:
    """The file a temp file becomes (``.m.onnx.tmp-123.onnx``, ``m.json.tmp`` -> ``m.onnx``,
    ``m.json``): the user knows that name, not the temp one."""
    p = Path(path)
    m = re.fullmatch(r"\.?(.+?)\.tmp(-\d+)?(\.\w+)?", p.name)
    return str(p.with_name(m.group(1))) if m else path


def fault_message(exc: OSError) -> str | None:
    """One line for a machine fault (:data:`MACHINE_FAULTS`): the path, the reason, what to do and
    what became of the outputs (the exception's notes, and those of a fault it interrupted); None
    for any other ``OSError``."""
    if exc.errno not in MACHINE_FAULTS:
        return None
    reason, todo = MACHINE_FAULTS[exc.errno]
    if exc.filename is not None:
        name = _final_name(os.fsdecode(exc.filename))
        if exc.errno in (errno.EACCES, errno.EPERM) and not _is_output(name):  # maybe an input: no advice on writing
            what, todo = name, "check its permissions (and its folders')"
        elif exc.errno == errno.EIO and not _is_output(name):
            what = name
        else:  # an output, or read-only, full, quota, too large: only writes fail so
            what = f"cannot write {name}"
    else:  # a failed write() names no file: name what the command writes
        what = "cannot write " + (", ".join(f"{k} {v}" for k, v in _outputs.items()) or "the outputs")
    parts = [f"{what}: {reason}; {todo}"]
    parts += getattr(exc, "__notes__", [])
    ctx = exc.__context__
    while isinstance(ctx, OSError) and ctx.errno in MACHINE_FAULTS:  # a fault the reported one interrupted
        parts += [n for n in getattr(ctx, "__notes__", []) if n not in parts]
        ctx = ctx.__context__
    return "; ".join(parts)


def friendly(fn):
    """Turn user errors (:data:`USER_ERRORS`) and machine faults (an ``OSError`` of
    :data:`MACHINE_FAULTS`: read-only, no space, ...) into one red line on stderr and exit code 2.

    Before the line, outputs still being written (the events file, the annotated video) are
    finalised (:func:`mvd_edge.core.util.finalise_outputs`) and the line says what became of them.
    Anything else (a ``ValueError``, ``KeyError``, ... from a bug) propagates with its traceback:
    hiding it behind one line would hide the bug. ``MVD_EDGE_DEBUG=1`` shows the traceback of
    user errors too. Typer's own ``BadParameter`` passes through and is reported by Typer.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from mvd_edge.core import util  # here, not at the top: it imports numpy, --help must not

        util.forget_outputs()  # none of an earlier command (tests run many in one process) is this one's
        _outputs.clear()
        try:
            return fn(*args, **kwargs)
        except (*USER_ERRORS, OSError) as exc:
            notes = util.finalise_outputs()
            message = fault_message(exc) if isinstance(exc, OSError) else None
            if message is None and not isinstance(exc, USER_ERRORS):
                raise  # an OSError that is no machine fault: a bug, with its traceback
            if os.environ.get("MVD_EDGE_DEBUG"):
                raise
            line = "; ".join([message or str(exc), *notes])
            # escape: messages hold text like "mvd-edge[trt]" that rich would take for markup
            err_console.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def file_identity(p: Path | str | None) -> tuple | None:
    """What makes two paths one file: ``(st_dev, st_ino)`` of an existing path (through symlinks,
    hard links, ``..``, bind mounts alike), else the resolved path; None for an unset option or a
    URL."""
    if p is None or "://" in str(p):
        return None
    path = Path(p).expanduser()
    try:
        st = path.stat()
        return ("inode", st.st_dev, st.st_ino)
    except (OSError, ValueError):
        pass
    try:
        return ("path", path.resolve())
    except (OSError, RuntimeError, ValueError):
        return None


def _declare(outputs: dict[str, Path | str | None]) -> list[tuple[str, Path | str]]:
    """The outputs that are paths (set, not URLs), remembered for the error handler (:func:`fault_message`
    names them)."""
    paths = [(name, p) for name, p in outputs.items() if p is not None and "://" not in str(p)]
    _outputs.update({name: str(p) for name, p in paths})
    return paths


def refuse_overwriting_inputs(outputs: dict[str, Path | str | None], inputs: dict[str, Path | str | None]) -> None:
    """A :class:`UsageError` when an output is one of the inputs (the same file: the same path,
    or a symlink, hard link or ``..`` path to it, see :func:`file_identity`): writing it would
    destroy what the command reads. Likewise two outputs that are one file. Non-path inputs (a
    camera index, a URL) and unset options are ignored."""
    ins: dict[tuple, str] = {}
    for name, p in inputs.items():
        key = file_identity(p)
        if key is None:
            continue
        ins.setdefault(key, name)
        try:
            companion = Path(p).expanduser().resolve()
        except (OSError, RuntimeError):
            continue
        companion = companion.with_name(companion.name + ".json")  # an engine's sidecar belongs to the engine
        if companion.is_file():
            ins.setdefault(file_identity(companion), f"sidecar of the {name}")
    seen: dict[tuple, str] = {}
    for name, p in _declare(outputs):
        key = file_identity(p)
        if key is None:
            continue
        if key in ins:
            raise UsageError(f"{name} {p} is the {ins[key]} itself: writing it would destroy the input; "
                             f"choose another path")
        if key in seen:
            raise UsageError(f"{name} and {seen[key]} are the same file {p}: one would overwrite the other; "
                             "give them different paths")
        seen[key] = name


def refuse_existing(outputs: dict[str, Path | str | None], overwrite: bool) -> None:
    """A :class:`UsageError` when an output file already exists (or an output folder is not empty)
    and ``overwrite`` is not given: nothing a user has is replaced without asking."""
    paths = _declare(outputs)
    for name, p in paths:
        for parent in Path(p).expanduser().absolute().parents:  # a folder that cannot be made
            if parent.exists():
                if not parent.is_dir():
                    raise UsageError(f"{name} {p}: {parent} is a file, not a folder; choose another path")
                break
    if overwrite:
        return
    for name, p in paths:
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
