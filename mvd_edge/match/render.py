"""Side-by-side annotated frames (IR left, RGB right), a video sink and an optional window."""

from __future__ import annotations

import colorsys
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from mvd_edge.core.errors import DeviceUnavailable
from mvd_edge.match.events import Output

__all__ = ["VideoSink", "Window", "gid_color", "gui_available", "render_side_by_side"]

_GREY = (150, 150, 150)


def gid_color(gid: int) -> tuple[int, int, int]:
    """A distinct, stable BGR colour for a global id (golden-ratio hues)."""
    h = (gid * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(h, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def _fit(img: np.ndarray, height: int) -> tuple[np.ndarray, float]:
    s = height / img.shape[0]
    if abs(s - 1.0) < 1e-6:
        return img.copy(), 1.0
    return cv2.resize(img, (max(1, int(round(img.shape[1] * s))), height), interpolation=cv2.INTER_AREA), s


def _label(img: np.ndarray, text: str, x: int, y: int, color: tuple[int, int, int]) -> None:
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.45, 1)
    y = max(th + 2, y)
    cv2.rectangle(img, (x, y - th - 3), (x + tw + 2, y + base - 2), color, -1)
    cv2.putText(img, text, (x + 1, y - 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)


def _draw_track(img: np.ndarray, t, scale: float, dx: int, gid: int | None, text: str) -> tuple[int, int]:
    """A track's box, ``dx`` px to the right, in its global id's colour (grey: none), bold when detected
    in this frame, with its label; returns the box's centre."""
    x1, y1, x2, y2 = (int(float(v) * scale) for v in t.box)
    color = gid_color(gid) if gid is not None else _GREY
    cv2.rectangle(img, (x1 + dx, y1), (x2 + dx, y2), color, 2 if t.time_since_update == 0 else 1)
    _label(img, text, x1 + dx, y1, color)
    return (x1 + x2) // 2 + dx, (y1 + y2) // 2


def _with_header(canvas: np.ndarray, header: str) -> np.ndarray:
    """``canvas`` under a bar with the ``header`` text (unchanged without one)."""
    if not header:
        return canvas
    bar = np.zeros((22, canvas.shape[1], 3), np.uint8)
    cv2.putText(bar, header, (6, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, canvas], axis=0)


def render_side_by_side(ir: np.ndarray, rgb: np.ndarray, ir_tracks: Sequence, rgb_tracks: Sequence,
                        pairs: Sequence, height: int = 360, header: str = "") -> np.ndarray:
    """Annotated canvas: uint8 BGR ``[height (+ header bar), W_ir + W_rgb, 3]``.

    ``*_tracks``: objects with ``id``, ``box`` (x1y1x2y2) and ``time_since_update``;
    ``pairs``: objects with ``ir_track``, ``rgb_track``, ``global_id``, ``similarity``.
    Matched tracks are drawn in their global id's colour with ``G<gid> <sim>`` and joined by
    a line across the two views; unmatched tracks are grey with ``T<track id>``.
    """
    a, sa = _fit(ir, height)
    b, sb = _fit(rgb, height)
    canvas = np.concatenate([a, b], axis=1)
    off = a.shape[1]
    ir_pair = {p.ir_track: p for p in pairs}
    rgb_pair = {p.rgb_track: p for p in pairs}
    centres: dict[tuple[str, int], tuple[int, int]] = {}
    for stream, tracks, scale, dx, lookup in (("ir", ir_tracks, sa, 0, ir_pair), ("rgb", rgb_tracks, sb, off, rgb_pair)):
        for t in tracks:
            p = lookup.get(t.id)
            text = f"G{p.global_id} {p.similarity:.2f}" if p is not None else f"T{t.id}"
            centres[(stream, t.id)] = _draw_track(canvas, t, scale, dx, p.global_id if p is not None else None, text)
    for p in pairs:
        ca, cb = centres.get(("ir", p.ir_track)), centres.get(("rgb", p.rgb_track))
        if ca is not None and cb is not None:
            cv2.line(canvas, ca, cb, gid_color(p.global_id), 1, cv2.LINE_AA)
    cv2.line(canvas, (off, 0), (off, height), (255, 255, 255), 1)
    return _with_header(canvas, header)


def render_site_grid(views: Sequence[tuple[str, np.ndarray | None, Sequence, dict[int, int]]], tile_height: int = 240,
                     cols: int | None = None, header: str = "") -> np.ndarray:
    """All cameras of a site in one canvas: uint8 BGR, ``cols`` tiles per row (default: about square).

    ``views``: ``(label, image or None, tracks, {track id: global id})`` per camera, in order;
    a camera without an image yet is a black tile. Tracks with a global id are drawn in its
    colour with ``G<gid>``, the others grey with ``T<track id>``.
    """
    n = max(1, len(views))
    cols = cols or int(np.ceil(np.sqrt(n)))
    tiles = []
    width = None
    for label, img, tracks, gids in views:
        if img is None:
            tile = np.zeros((tile_height, width or int(tile_height * 16 / 9), 3), np.uint8)
            scale = 1.0
            tracks = []
        else:
            tile, scale = _fit(img, tile_height)
            tile = tile.copy()
        width = width or tile.shape[1]
        if tile.shape[1] != width:  # cameras of other aspect ratios: pad or crop to the first one's width
            pad = np.zeros((tile_height, width, 3), np.uint8)
            pad[:, :min(width, tile.shape[1])] = tile[:, :width]
            tile = pad
        for t in tracks:
            gid = gids.get(t.id)
            _draw_track(tile, t, scale, 0, gid, f"G{gid}" if gid is not None else f"T{t.id}")
        cv2.putText(tile, label, (6, tile_height - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile_height - 1), (255, 255, 255), 1)
        tiles.append(tile)
    while len(tiles) % cols:
        tiles.append(np.zeros_like(tiles[0]))
    canvas = np.concatenate([np.concatenate(tiles[r:r + cols], axis=1) for r in range(0, len(tiles), cols)], axis=0)
    return _with_header(canvas, header)


class VideoSink(Output):
    """Writes canvases to ``path`` (.mp4 'mp4v', MJPG .avi fallback); opened at the first frame
    (the canvas size is known then). ``path_written`` is the file actually written.

    OpenCV's writer fails silently (a full disk leaves a file no player opens), so :meth:`close`
    opens the finished file again: one that does not play is removed and an ``OSError`` naming it
    is raised, saying it was removed. A command stopped by an error finalises the video the same
    way (:func:`mvd_edge.core.util.finalise_outputs`)."""

    stage = "save"  # an output of a run

    def __init__(self, path: str | Path, fps: float | None = None):
        self.path = Path(path)
        self.fps = float(fps) if fps and fps > 0 else 15.0
        self.writer = None
        self.path_written: Path | None = None
        self.size: tuple[int, int] | None = None
        self.frames = 0

    def start(self, run) -> None:
        """A pair's video runs at its first stream's rate, a site's at its time steps'."""
        fps = next(iter(run.sources.values())).fps if run.policy.need_all else 1.0 / run.sync.period
        self.fps = float(fps) if fps and fps > 0 else 15.0

    def step(self, run, result) -> None:
        self.write(run.canvas(result))

    def end(self, run, summary: dict) -> None:
        self.close()
        summary["video"] = str(self.path_written) if self.path_written else None

    def write(self, canvas: np.ndarray) -> None:
        from mvd_edge.core.util import output_error, track_output
        from mvd_edge.synth.video import open_video_writer

        h, w = canvas.shape[:2]
        if self.writer is None:
            try:  # a folder that takes no file is said so here, not as "OpenCV cannot write video"
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.open("ab").close()
            except OSError as exc:
                raise output_error(exc, self.path) from exc
            try:
                self.writer, self.path_written = open_video_writer(self.path, self.fps, (w, h))
            finally:
                if self.path_written != self.path and self.path.stat().st_size == 0:
                    self.path.unlink()  # the empty file made above: no video, or the .avi fallback instead
            self.size = (w, h)
            track_output(self)
        if (w, h) != self.size:
            canvas = cv2.resize(canvas, self.size)
        self.writer.write(canvas)
        self.frames += 1

    def _finish(self) -> OSError | None:
        """Release the writer and check the file plays; one that does not is removed (the error says so)."""
        from mvd_edge.core.util import output_error, untrack_output, write_errno

        untrack_output(self)
        self.writer.release()
        self.writer = None
        cap = cv2.VideoCapture(str(self.path_written))
        ok = cap.isOpened() and cap.get(cv2.CAP_PROP_FRAME_COUNT) >= 1
        cap.release()
        if ok:
            return None
        err = write_errno(self.path_written.parent)
        exc = output_error(OSError(err, os.strerror(err)), self.path_written)
        try:
            self.path_written.unlink(missing_ok=True)
            exc.add_note(f"the annotated video {self.path_written} did not play and was removed")
        except OSError:
            exc.add_note(f"the annotated video {self.path_written} does not play; remove it")
        self.path_written = None
        return exc

    def close(self) -> None:
        if self.writer is not None:
            err = self._finish()
            if err is not None:
                raise err

    def abandon(self) -> str:
        """For an error handler: finish the video; what became of it."""
        if self.writer is None:
            return ""
        path = self.path_written
        err = self._finish()
        if err is not None:
            return f"{err.__notes__[0]} ({err.strerror})"
        return f"the annotated video {path} was finished ({self.frames} frames)"


def gui_available() -> tuple[bool, str]:
    """(True, "") where ``cv2.imshow`` can open a window, else (False, why)."""
    info = cv2.getBuildInformation()
    gui = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.strip().startswith("GUI:")), "")
    if not gui or gui.upper() == "NONE":
        return False, ("this OpenCV has no GUI support (opencv-python-headless); install the GUI build with "
                       "`pip install 'mvd-edge[gui]'` after `pip uninstall opencv-python-headless`, or use --set outputs.video=FILE")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display here (DISPLAY is not set); use --set outputs.video=FILE to write the annotated video instead"
    return True, ""


class Window(Output):
    """An OpenCV window; ``show`` returns False when the user pressed q or Esc."""

    def __init__(self, title: str = "mvd-edge match"):
        ok, why = gui_available()
        if not ok:
            raise DeviceUnavailable(f"--show: {why}")
        self.title = title

    def step(self, run, result) -> bool:
        """Shows the step's frame; False (the run ends) when the user closed the window."""
        if self.show(run.canvas(result)):
            return True
        run.reason = "window closed"
        return False

    def end(self, run, summary: dict) -> None:
        self.close()

    def show(self, canvas: np.ndarray) -> bool:
        cv2.imshow(self.title, canvas)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27)

    def close(self) -> None:
        cv2.destroyWindow(self.title)
