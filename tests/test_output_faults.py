"""Machine faults on outputs (issue 34): a read-only folder, a full disk. Each ends in ONE line naming
the path and what to do, exit code 2, no traceback, and outputs that are still valid: the events
file holds whole lines (ending with an ``end`` event when it could still be written, else the line
says so), an annotated video that does not play is removed (and the line says so), build-engine
names its output and leaves no temp file.

Tests run as root here, where ``chmod`` does not bite: the faults are injected by fakes raising
``OSError(errno.EROFS | errno.ENOSPC, ...)`` where the project writes.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mvd_edge.cli import app
from mvd_edge.match.events import EventWriter


def _run(args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.output


def _one_line_error(out: str) -> str:
    assert "Traceback" not in out, out
    lines = [ln for ln in out.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1, out
    return lines[0]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from mvd_edge.synth.video import write_synth_video

    d = tmp_path_factory.mktemp("clip")
    write_synth_video(d, n_ids=2, seconds=1.0, fps=6, size=(96, 160))
    return d


def _match(clip, *extra):
    return ["match", "--ir", clip / "ir.mp4", "--rgb", clip / "rgb.mp4", "--set",
            f"detector.ir_boxes={clip / 'ir.mot.txt'}", "--set", f"detector.rgb_boxes={clip / 'rgb.mot.txt'}",
            "--model", "colorhist", "--no-status", *extra]


# ---------------------------------------------------------------- fakes


class FullDisk:
    """A real file that takes ``room`` bytes (part of a write, then ENOSPC); ``room`` may grow later."""

    def __init__(self, f, room: int):
        self.f, self.room, self.used = f, room, 0

    def write(self, data) -> int:
        n = min(len(data), self.room - self.used)
        if n <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.f.write(bytes(data[:n]))
        self.used += n
        return n

    def fileno(self) -> int:
        return self.f.fileno()

    def close(self) -> None:
        self.f.close()


def _full_disk(monkeypatch, target: Path, room: int) -> list[FullDisk]:
    made: list[FullDisk] = []
    real = Path.open

    def fake(self, mode="r", *a, **kw):
        f = real(self, mode, *a, **kw)
        if Path(self) == target and "w" in mode:
            made.append(FullDisk(f, room))
            return made[-1]
        return f

    monkeypatch.setattr(Path, "open", fake)
    return made


def _read_only(monkeypatch, folder: Path) -> None:
    """Every file or folder made under ``folder`` fails with EROFS, as on a read-only mount."""
    folder = folder.absolute()

    def inside(p) -> bool:
        try:
            p = Path(os.fsdecode(p)).absolute()
        except TypeError:
            return False  # a file descriptor
        return p == folder or folder in p.parents

    def refuse(p):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(p))

    real_open, real_mkdir, real_os_open = builtins.open, os.mkdir, os.open

    def fake_open(file, mode="r", *a, **kw):
        if inside(file) and any(c in mode for c in "wax+"):
            refuse(file)
        return real_open(file, mode, *a, **kw)

    def fake_mkdir(p, *a, **kw):
        if inside(p):
            refuse(p)
        return real_mkdir(p, *a, **kw)

    def fake_os_open(p, flags, *a, **kw):
        if inside(p) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            refuse(p)
        return real_os_open(p, flags, *a, **kw)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(os, "mkdir", fake_mkdir)
    monkeypatch.setattr(os, "open", fake_os_open)


def _whole_lines(path: Path) -> list[dict]:
    data = path.read_bytes()
    assert not data or data.endswith(b"\n"), data[-80:]
    return [json.loads(line) for line in data.splitlines()]


# ---------------------------------------------------------------- the events file


def _events(n: int) -> list[dict]:
    return [{"event": "start"}] + [{"event": "match", "frame": i, "pad": "x" * 40} for i in range(n)]


def test_a_full_disk_leaves_whole_lines_and_no_end_event_when_none_fits(tmp_path, monkeypatch):
    path = tmp_path / "ev.jsonl"
    _full_disk(monkeypatch, path, room=3000)
    w = EventWriter(path, flush_every=10)
    with pytest.raises(OSError) as info:
        for ev in _events(200):
            w.write(ev)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    for ev in _events(5):  # the run goes on closing: no second raise
        w.write(ev)
    w.write({"event": "end"})
    w.close()
    lines = _whole_lines(path)
    assert 0 < len(lines) < 200 and lines[-1]["event"] != "end"
    assert "with no end event" in " ".join(info.value.__notes__)


def test_the_end_event_is_written_when_there_is_room_again(tmp_path, monkeypatch):
    path = tmp_path / "ev.jsonl"
    made = _full_disk(monkeypatch, path, room=3000)
    w = EventWriter(path, flush_every=10)
    with pytest.raises(OSError):
        for ev in _events(200):
            w.write(ev)
    made[0].room += 10_000  # space freed meanwhile
    w.write({"event": "end"})
    w.close()
    lines = _whole_lines(path)
    assert lines[-1]["event"] == "end" and "missing" in lines[-1]["incomplete"]
    assert "ending with an end event" in " ".join(w.error.__notes__)


def test_match_events_on_a_full_disk_is_one_line(clip, tmp_path, monkeypatch):
    events = tmp_path / "ev.jsonl"
    _full_disk(monkeypatch, events, room=100)  # not even the start event fits
    code, out = _run(_match(clip, "--events", events))
    line = _one_line_error(out)
    assert code == 2 and f"cannot write {events}" in line and "no space left" in line, out
    assert "no end event" in line
    assert _whole_lines(events) == []


def test_match_events_in_a_read_only_folder_is_one_line(clip, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    code, out = _run(_match(clip, "--events", ro / "ev.jsonl"))
    line = _one_line_error(out)
    assert code == 2 and f"cannot write {ro / 'ev.jsonl'}" in line and "read-only" in line, out


# ---------------------------------------------------------------- the annotated video


def test_match_save_never_exits_0_with_a_video_that_does_not_play(clip, tmp_path, monkeypatch):
    """OpenCV's writer fails silently on a full disk: the file is checked, removed, and said so."""
    import cv2

    import mvd_edge.core.util as util
    import mvd_edge.synth.video as sv

    class SilentlyFailing:
        def __init__(self, path):
            self.path = path

        def write(self, frame):
            pass

        def release(self):
            self.path.write_bytes(b"\x00\x00\x00\x18ftypmp42 cut off")  # no moov atom: no player opens it

    monkeypatch.setattr(sv, "open_video_writer", lambda path, fps, size: (SilentlyFailing(Path(path)), Path(path)))
    monkeypatch.setattr(util, "write_errno", lambda folder: errno.ENOSPC)
    video = tmp_path / "out.mp4"
    events = tmp_path / "ev.jsonl"
    code, out = _run(_match(clip, "--set", f"outputs.video={video}", "--events", events))
    line = _one_line_error(out)
    assert code == 2 and f"cannot write {video}" in line and "no space left" in line, out
    assert "removed" in line and not video.exists()
    assert _whole_lines(events)[-1]["event"] == "end"
    assert cv2.VideoCapture(str(clip / "ir.mp4")).isOpened()


def test_match_save_in_a_read_only_folder_names_the_folder_problem(clip, tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.mkdir()
    _read_only(monkeypatch, ro)
    code, out = _run(_match(clip, "--set", f"outputs.video={ro / 'a.mp4'}"))
    line = _one_line_error(out)
    assert code == 2 and "read-only" in line and "OpenCV" not in line, out


def test_a_video_that_plays_is_finished_by_the_error_handler(tmp_path):
    """A command stopped by an error (here: the events file) still leaves a playable video."""
    import cv2
    import numpy as np

    from mvd_edge.core.util import finalise_outputs
    from mvd_edge.match.render import VideoSink

    sink = VideoSink(tmp_path / "v.mp4", 5)
    for _ in range(4):
        sink.write(np.zeros((64, 96, 3), np.uint8))
    notes = finalise_outputs()
    assert any("was finished (4 frames)" in n for n in notes)
    assert cv2.VideoCapture(str(sink.path_written)).get(cv2.CAP_PROP_FRAME_COUNT) == 4


# ---------------------------------------------------------------- every command that writes


@pytest.mark.parametrize("args", [
    ["synth", "--out", "{ro}/s", "--ids", "12"],
    ["synth-video", "--out", "{ro}/v", "--seconds", "0.5", "--fps", "4", "--size", "96x160"],
    ["score-matches", "{ev}", "{gt}", "--json", "{ro}/s.json"],
    ["export", "{ckpt}", "--out", "{ro}/m.onnx"],
    ["build-engine", "{onnx}", "--out", "{ro}/m.ort.onnx"],
    ["int8", "{onnx}", "--out-dir", "{ro}", "--flavours", "cpu", "--n", "4"],
    ["train", "--out", "{ro}/run", "--set", "synth.n_ids=12"],
    ["match", "--set", "outputs.summary_json={ro}/s.json"],
], ids=["synth", "synth-video", "score-matches", "export", "build-engine", "int8", "train", "match-summary"])
def test_a_read_only_output_folder_is_one_line(clip, tmp_path, monkeypatch, tiny_ckpt, tiny_onnx, args):
    ro = tmp_path / "ro"
    ro.mkdir()
    events = tmp_path / "ev.jsonl"
    events.write_text('{"event": "start"}\n{"event": "end"}\n')
    names = {"{ro}": str(ro), "{ev}": str(events), "{gt}": str(clip / "gt.json"), "{ckpt}": str(tiny_ckpt),
             "{onnx}": str(tiny_onnx)}
    argv = [a for a in args]
    if argv[0] == "match":
        argv = _match(clip, *argv[1:])
    argv = [str(a) for a in argv]
    for k, v in names.items():
        argv = [a.replace(k, v) for a in argv]
    if args[0] == "int8":
        calib = tmp_path / "calib"
        calib.mkdir()
        import cv2
        import numpy as np

        for i in range(4):
            cv2.imwrite(str(calib / f"{i}.png"), np.full((64, 32, 3), 40 * i, np.uint8))
        argv += ["--folder", str(calib)]
    _read_only(monkeypatch, ro)
    code, out = _run(argv)
    line = _one_line_error(out)
    assert code == 2 and "cannot write" in line and str(ro) in line and "read-only" in line, out
    assert ".tmp" not in line  # the output the user named, not a temp file beside it
    assert not [p for p in ro.iterdir()]  # nothing half-written left behind


def test_build_engine_on_a_full_disk_names_the_output_and_leaves_no_temp_file(tmp_path, monkeypatch, tiny_onnx):
    """ONNX Runtime reports a failed save as a model it 'cannot load': the line blames the output."""
    import mvd_edge.runtime.engine as engine
    import mvd_edge.runtime.ort_backend as ob

    real = ob.make_session

    def full(path, device="cpu", optimization="extended", optimized_out=None, **kw):
        if optimized_out is not None:
            Path(optimized_out).write_bytes(b"half a graph")
            from mvd_edge.runtime.sidecar import EngineError

            raise EngineError(f"ONNX Runtime cannot load {path}: Protobuf serialization failed.")
        return real(path, device=device, optimization=optimization, **kw)

    monkeypatch.setattr(ob, "make_session", full)
    monkeypatch.setattr(engine, "write_errno", lambda folder: errno.ENOSPC)
    out = tmp_path / "e" / "m.ort.onnx"
    code, text = _run(["build-engine", tiny_onnx, "--out", out])
    line = _one_line_error(text)
    assert code == 2 and f"cannot write {out}" in line and "no space left" in line, text
    assert str(tiny_onnx) not in line
    assert [p.name for p in out.parent.iterdir()] == []  # no temp file, no engine


def test_the_handler_words_each_fault_and_leaves_bugs_alone():
    import typer

    from mvd_edge.cli._common import fault_message, friendly

    assert "no space left" in fault_message(OSError(errno.ENOSPC, "x", "/d/f"))
    assert "read-only" in fault_message(OSError(errno.EROFS, "x", "/d/f"))
    assert "quota" in fault_message(OSError(errno.EDQUOT, "x", "/d/f"))
    assert fault_message(OSError(errno.ENOTEMPTY, "x", "/d/f")) is None

    @friendly
    def bug():
        raise OSError(errno.ENOTEMPTY, "not a machine fault")

    with pytest.raises(OSError):
        bug()

    @friendly
    def fault():
        raise OSError(errno.ENOSPC, "No space left on device")  # a write() names no file

    with pytest.raises(typer.Exit):
        fault()


def test_a_crop_that_cannot_be_written_is_a_machine_fault_naming_it(tmp_path, monkeypatch):
    import cv2
    import numpy as np

    import mvd_edge.core.util as util
    from mvd_edge.cli._common import fault_message
    from mvd_edge.match.sinks import CropSaver

    monkeypatch.setattr(cv2, "imwrite", lambda path, img: False)  # what OpenCV says on a full disk
    monkeypatch.setattr(util, "write_errno", lambda folder: errno.ENOSPC)
    saver = CropSaver(tmp_path / "crops")
    with pytest.raises(OSError) as info:
        saver.save("ir", "ir", 0, 1, np.zeros((120, 80, 3), np.uint8), [10, 10, 30, 80])
    assert info.value.errno == errno.ENOSPC and "crops" in info.value.filename
    assert "no space left" in fault_message(info.value)


def test_a_checkpoint_that_cannot_be_written_names_it_and_leaves_no_temp_file(tmp_path, monkeypatch):
    """torch reports a failed write (a full disk) as a RuntimeError: it reaches the handler as the
    checkpoint's OSError, so `train` on a full disk ends in one line."""
    import torch

    from mvd_edge.cli._common import fault_message
    from mvd_edge.model.checkpoint import save_checkpoint

    def full(obj, f, *a, **k):
        raise RuntimeError("[enforce fail at inline_container.cc] PytorchStreamWriter failed writing file data/0")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr("mvd_edge.model.checkpoint.write_errno", lambda folder: errno.ENOSPC)
    with pytest.raises(OSError) as info:
        save_checkpoint({"x": 1}, tmp_path / "run" / "best.pt")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "run" / "best.pt")
    assert list((tmp_path / "run").iterdir()) == []
    assert "best.pt" in fault_message(info.value) and "\n" not in fault_message(info.value)


def test_a_synthetic_image_that_cannot_be_written_is_a_machine_fault(tmp_path, monkeypatch):
    """OpenCV only says 'failed': the file system says why (here: full), so `synth` ends in one line."""
    import cv2

    monkeypatch.setattr(cv2, "imwrite", lambda *a, **k: False)
    monkeypatch.setattr("mvd_edge.synth.dataset.write_errno", lambda folder: errno.ENOSPC)
    code, out = _run(["synth", "--out", tmp_path / "s", "--ids", "12"])
    assert "Traceback" not in out and out.count("error:") == 1, out
    line = out.split("error:", 1)[1].splitlines()[0]  # the progress bar (its own stream in a terminal) precedes it
    assert code == 2 and "cannot write" in line and "no space" in line and str(tmp_path / "s") in line, out


def _full_disk_open(path, mode="r", *args, **kwargs):
    """``open`` on a full disk: the file is created, writing it fails."""
    f = builtins.open(path, mode, *args, **kwargs)
    if "w" in mode:
        f.close()
        raise OSError(errno.ENOSPC, "No space left on device")
    return f


def test_a_gallery_save_on_a_full_disk_keeps_the_old_gallery_whole(tmp_path, monkeypatch):
    """The new index and sidecar are written aside and renamed only when both are written: a full disk
    while writing the sidecar leaves the old gallery (index + matching sidecar) and no temp files."""
    import numpy as np

    import mvd_edge.core.util as util
    from mvd_edge.gallery.index import Gallery

    old = Gallery.build(np.eye(8, dtype=np.float32)[:3], ids=[1, 2, 3])
    old.save(tmp_path / "g")
    before = {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir()}
    new = Gallery.build(np.eye(8, dtype=np.float32)[:5], ids=[1, 2, 3, 4, 5])
    monkeypatch.setattr(util, "open", _full_disk_open, raising=False)  # write_json's open: the disk is full
    with pytest.raises(OSError) as info:
        new.save(tmp_path / "g")
    monkeypatch.undo()
    assert info.value.errno == errno.ENOSPC and info.value.filename.endswith("gallery.json")
    assert {p.name: p.read_bytes() for p in (tmp_path / "g").iterdir()} == before
    assert Gallery.load(tmp_path / "g").count == 3


def test_a_calibration_manifest_on_a_full_disk_names_it_and_leaves_no_temp_file(tmp_path, monkeypatch):
    import mvd_edge.core.util as util
    from mvd_edge.quant.manifest import Entry, Manifest

    (tmp_path / "crops").mkdir()
    (tmp_path / "crops" / "a.png").write_bytes(b"not read for the hash's sake only")
    m = Manifest(entries=[Entry("a.png")], root=str(tmp_path / "crops"), source={"kind": "folder"}, seed=0)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setattr(util, "open", _full_disk_open, raising=False)
    with pytest.raises(OSError) as info:
        m.save(out / "m.calib-manifest.json")
    assert info.value.filename == str(out / "m.calib-manifest.json")
    assert list(out.iterdir()) == []
