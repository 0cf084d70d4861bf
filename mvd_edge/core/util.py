"""Small helpers that several layers share: random test crops, row cosines, JSON files read with one
clear error and written atomically, outputs whose write errors name them and that the CLI's error
handler finalises when a fault stops a command.
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

# crop heights / widths drawn by random_crops (pixels): person boxes from a detector
CROP_HEIGHTS = (48, 300)
CROP_WIDTHS = (24, 150)


def random_crops(n: int, rng: np.random.Generator | int, heights: tuple[int, int] = CROP_HEIGHTS,
                 widths: tuple[int, int] = CROP_WIDTHS) -> list[np.ndarray]:
    """``n`` uniform-noise uint8 BGR crops, height in ``heights``, width in ``widths`` (half-open)."""
    rng = np.random.default_rng(rng) if isinstance(rng, (int, np.integer)) else rng
    return [rng.integers(0, 256, size=(int(rng.integers(*heights)), int(rng.integers(*widths)), 3), dtype=np.uint8)
            for _ in range(n)]


def row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b`` (float64 ``[N]``)."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"row_cosine needs two [N, D] arrays of one shape, got {a.shape} and {b.shape}")
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)


def read_json(path: str | Path, error: type[Exception], what: str, fmt: str | None = None,
              hint: str = "") -> Any:
    """Parse the JSON file ``path``; every failure raises ``error`` with a message naming ``what``.

    ``fmt``: the object's ``"format"`` field must equal it. ``hint``: what the user should do.
    """
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    if not p.is_file():
        raise error(f"{what} not found: {p}{tail}")
    try:
        data = json.loads(p.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{what} {p} is unreadable ({exc}){tail}") from exc
    except json.JSONDecodeError as exc:
        raise error(f"{what} {p} is not valid JSON ({exc.msg}, line {exc.lineno}){tail}") from exc
    if fmt is not None and (not isinstance(data, dict) or data.get("format") != fmt):
        got = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise error(f"{p} is not {what} (format {got!r}, expected {fmt!r}){tail}")
    return data


@contextmanager
def temp_beside(out: Path) -> Iterator[Path]:
    """A temp path beside ``out``, renamed onto it when the block ends well and removed in any case:
    a kill or a full disk leaves the old file or the new one, never half of one. An ``OSError`` of
    writing it names ``out`` (the output the user asked for, not the temp file)."""
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, out)
    except OSError as exc:
        raise output_error(exc, out) from exc
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only folder: there is no temp file to remove


def write_json(path: str | Path, data: Any, **dumps_kwargs: Any) -> Path:
    """Write ``data`` as JSON to ``path`` atomically (:func:`temp_beside`, fsynced).

    ``dumps_kwargs`` go to :func:`json.dumps` (``indent``, ``sort_keys``, ``cls``).
    """
    p = Path(path)
    text = json.dumps(data, **dumps_kwargs)
    with temp_beside(p) as tmp:
        with open(tmp, "w") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    return p


def output_error(exc: OSError, path: str | Path) -> OSError:
    """``exc`` (an error writing an output: read-only, no space, ...) as an ``OSError`` of the same
    errno naming ``path``, the output the user asked for: a failed ``write()`` names no file and a
    failed temp file names the temp file. Its notes (:pep:`678`) are kept."""
    if exc.errno is None:
        return exc
    new = OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))  # OSError() picks the subclass
    for note in getattr(exc, "__notes__", ()):
        new.add_note(note)
    return new


def write_errno(folder: str | Path) -> int:
    """Why writing into ``folder`` probably failed, for writers that only say "failed" (OpenCV's
    video writer, ONNX Runtime): ``EROFS`` (read-only), ``ENOSPC`` (full), else ``EIO``."""
    try:
        st = os.statvfs(folder)
    except OSError as exc:
        return exc.errno or errno.EIO
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if st.f_bavail == 0 or st.f_favail == 0:
        return errno.ENOSPC
    return errno.EIO


_OPEN_OUTPUTS: list[Any] = []


def track_output(output: Any) -> None:
    """Register an output being written: an object with ``abandon() -> str`` that leaves its file
    valid (finished or removed) and says which. :func:`untrack_output` when it closed normally."""
    _OPEN_OUTPUTS.append(output)


def untrack_output(output: Any) -> None:
    if output in _OPEN_OUTPUTS:
        _OPEN_OUTPUTS.remove(output)


def forget_outputs() -> None:
    """Drop the register without touching the outputs (a new command starts)."""
    _OPEN_OUTPUTS.clear()


def finalise_outputs() -> list[str]:
    """Abandon every output still open (newest first), as a command stops on an error; what each
    did, one phrase per output (the CLI's error handler appends them to its one line)."""
    notes = []
    while _OPEN_OUTPUTS:
        note = _OPEN_OUTPUTS.pop().abandon()
        if note:
            notes.append(note)
    return notes


def check_device(device: str, allow_auto: bool = True) -> str:
    """``auto`` | ``cpu`` | ``cuda`` | ``cuda:N`` | ``mps``, else ValueError saying so (before torch sees it)."""
    import re

    text = str(device).strip()
    if (allow_auto and text == "auto") or text in ("cpu", "cuda", "mps") or re.fullmatch(r"cuda:\d+", text):
        return text
    raise ValueError(f"unknown device {device!r}: use {'auto, ' if allow_auto else ''}cpu, cuda, cuda:N or mps")
