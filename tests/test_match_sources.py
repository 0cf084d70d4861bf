"""Frame sources: parsing, cameras files, bounded queues, reconnect, corrupt frames, never-open, EOF."""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from match_fakes import ScriptedCapture, drain, opener

from mvd_edge.match.sources import (
    FramePacket,
    FrameQueue,
    FrameSource,
    SourceError,
    SourceSpec,
    load_cameras,
    parse_source,
)


def _frame(v: int, h: int = 24, w: int = 32) -> np.ndarray:
    return np.full((h, w, 3), v % 256, np.uint8)


def test_parse_source_forms(tmp_path):
    assert parse_source("cam0") == SourceSpec("camera", 0, "cam0")
    assert parse_source("3").kind == "camera" and parse_source("3").target == 3
    assert parse_source("rtsp://10.0.0.5/stream").kind == "url"
    assert parse_source("https://host/video.mjpg").kind == "url"
    (tmp_path / "imgs").mkdir()
    assert parse_source(str(tmp_path / "imgs")).kind == "folder"
    f = tmp_path / "v.mp4"
    f.write_bytes(b"x")
    assert parse_source(str(f)).kind == "file"
    with pytest.raises(FileNotFoundError, match="source not found"):
        parse_source(str(tmp_path / "missing.mp4"))
    with pytest.raises(ValueError, match="unknown source 'lobby'"):
        parse_source("lobby")


def test_cameras_file(tmp_path):
    cams = tmp_path / "cameras.yaml"
    cams.write_text("cameras:\n  door_ir: cam0\n  door_rgb:\n    source: rtsp://10.1.2.3/s1\n"
                    "    resolution: 1280x720\n    fps: 12\n")
    table = load_cameras(cams)
    assert table["door_ir"].kind == "camera" and table["door_ir"].target == 0
    rgb = parse_source("door_rgb", table)
    assert (rgb.kind, rgb.width, rgb.height, rgb.fps) == ("url", 1280, 720, 12.0)
    with pytest.raises(ValueError, match="names: door_ir, door_rgb"):
        parse_source("door", table)
    cams.write_text("a:\n  source: cam1\n  rez: 10x10\n")
    with pytest.raises(ValueError, match="unknown key"):
        load_cameras(cams)
    cams.write_text("a:\n  source: cam1\n  resolution: big\n")
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        load_cameras(cams)
    with pytest.raises(FileNotFoundError):
        load_cameras(tmp_path / "nope.yaml")


def test_queue_drops_oldest_and_counts():
    q = FrameQueue(3)
    for k in range(7):
        assert q.put(FramePacket(k, 0.0, _frame(k)), drop_oldest=True)
    assert q.dropped == 4 and len(q) == 3
    assert [q.get(0.1).index for _ in range(3)] == [4, 5, 6]
    assert q.get(0.05) is False  # time-out, not the end
    q.put_end()
    assert q.get(0.05) is None and q.get(0.05) is None


def test_live_source_drops_when_consumer_is_slow():
    frames = [_frame(k) for k in range(200)]
    src = FrameSource(SourceSpec("camera", 0, "fake"), "ir", queue_size=4, open_fn=opener([ScriptedCapture(frames)]),
                      max_offline=0.5, backoff_start=0.01)
    src.start()
    src.wait_open(2.0)
    time.sleep(0.3)  # the reader fills the queue and keeps going
    got = drain(src)
    assert src.dropped > 0
    assert len(got) + src.dropped == src.stats.delivered == 200
    assert [p.index for p in got] == sorted(p.index for p in got)


def test_source_that_drops_out_comes_back_with_backoff():
    first = ScriptedCapture([_frame(k) for k in range(10)] + ["fail"])
    second = ScriptedCapture([_frame(100 + k) for k in range(10)])
    open_fn = opener([first, None, None, second, None])  # two failed reopen attempts, back, then gone
    src = FrameSource(SourceSpec("camera", 0, "fake"), "ir", queue_size=64, open_fn=open_fn,
                      max_offline=1.0, backoff_start=0.02, backoff_max=0.1)
    src.start()
    src.wait_open(2.0)
    got = drain(src)
    assert src.stats.reconnects == 1 and src.stats.outages == 2
    assert open_fn.calls["n"] >= 5
    assert len(got) == 20 and first.released
    assert [int(p.image[0, 0, 0]) for p in got] == list(range(10)) + list(range(100, 110))
    assert [p.index for p in got] == list(range(20))  # indices keep counting across the reconnect
    # after the second capture ran out the source stayed lost: it gave up after max_offline
    assert src.error and ("offline" in src.error or "not back" in src.error)


def test_corrupt_frames_are_skipped_and_counted():
    good = [_frame(k) for k in range(6)]
    script = [good[0], None, good[1], np.zeros((0, 0, 3), np.uint8), good[2], np.zeros((24, 32, 3), np.float32),
              good[3], _frame(9, 10, 10), good[4], np.zeros((24, 32, 2), np.uint8), good[5],
              np.zeros((24, 32), np.uint8)]  # grayscale is fine: converted to BGR
    src = FrameSource(SourceSpec("file", "x", "fake"), "rgb", open_fn=opener([ScriptedCapture(script)]))
    src.start()
    got = drain(src)
    assert src.stats.corrupt == 5
    assert len(got) == 7 and all(p.image.shape == (24, 32, 3) and p.image.dtype == np.uint8 for p in got)
    assert [p.index for p in got] == [0, 2, 4, 6, 8, 10, 11]  # indices count every read frame
    assert src.error is None


def test_source_that_never_opens_is_a_clear_error_in_bounded_time():
    src = FrameSource(SourceSpec("url", "rtsp://127.0.0.1:9/none", "rtsp://127.0.0.1:9/none"), "ir",
                      open_fn=opener([None]), open_timeout=0.6, backoff_start=0.05, backoff_max=0.2)
    src.start()
    with pytest.raises(SourceError, match=r"ir source rtsp://127.0.0.1:9/none: cannot open within 0.6 s .*attempts"):
        src.wait_open()  # no timeout given: the source's own open_timeout ends the wait


def test_open_that_hangs_is_cut_by_wait_open():
    release, returned = threading.Event(), threading.Event()

    def hang(spec):
        release.wait(30)
        returned.set()
        return None

    src = FrameSource(SourceSpec("camera", 7, "cam7"), "rgb", open_fn=hang, open_timeout=0.2)
    src.start()
    with pytest.raises(SourceError, match="did not open within"):
        src.wait_open(0.5)
    assert not returned.is_set()  # the error came while the open call was still hanging
    release.set()


def test_unreadable_file_fails_at_once(tmp_path):
    f = tmp_path / "not_a_video.mp4"
    f.write_text("hello")
    src = FrameSource(parse_source(str(f)), "ir")
    src.start()
    with pytest.raises(SourceError, match="cannot open"):
        src.wait_open()  # no timeout given: the source itself gives up on a file it cannot read


def test_video_file_reads_every_frame_and_ends_cleanly(tmp_path):
    path = tmp_path / "v.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (32, 24))
    for k in range(25):
        w.write(_frame(10 * k))
    w.release()
    src = FrameSource(parse_source(str(path)), "ir", queue_size=2)  # tiny queue: offline sources wait, never drop
    src.start()
    src.wait_open()
    time.sleep(0.2)
    got = drain(src)
    assert [p.index for p in got] == list(range(25)) and src.dropped == 0
    assert src.fps == pytest.approx(10.0) and got[5].time == pytest.approx(0.5)
    assert src.error is None


def test_image_folder_source(tmp_path):
    for k in range(4):
        cv2.imwrite(str(tmp_path / f"{k:03d}.png"), _frame(50 * k))
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "004.png").write_bytes(b"broken")  # unreadable image: a corrupt frame
    src = FrameSource(parse_source(str(tmp_path)), "rgb")
    src.start()
    got = drain(src)
    assert [int(p.image[0, 0, 0]) for p in got] == [0, 50, 100, 150]
    assert src.stats.corrupt == 1


class _Clock:
    """The sources module's ``time`` on a clock that moves only when the reader waits (``_Stop.wait``)."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


class _Stop:
    """A source's stop event whose waits are recorded and pass on ``clock`` at once."""

    def __init__(self, event: threading.Event, clock: _Clock):
        self.event, self.clock, self.waits = event, clock, []

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        self.clock.now += timeout or 0.0
        return self.event.is_set()

    def __getattr__(self, name):
        return getattr(self.event, name)


def test_realtime_file_source_is_paced(monkeypatch):
    import mvd_edge.match.sources as sources_mod

    clock = _Clock()
    monkeypatch.setattr(sources_mod, "time", clock)
    frames = [_frame(k) for k in range(6)]
    src = FrameSource(SourceSpec("file", "x", "fake", fps=20.0), "ir", open_fn=opener([ScriptedCapture(frames)]),
                      realtime=True)
    src._stop = stop = _Stop(src._stop, clock)
    src.start()
    got = drain(src)
    assert [p.index for p in got] == list(range(6))
    # each frame after the first waited until its media time: 1/20 s each, 0.25 s in all
    assert stop.waits == pytest.approx([0.05] * 5) and clock.now == pytest.approx(0.25), (stop.waits, clock.now)


def test_failed_read_inside_a_file_is_skipped_by_seeking_and_reported():
    """A file whose container declares more frames than were read is damaged, not ended: the
    source seeks past the failure, counts the skipped frames and lists the gap."""
    script = [_frame(k) for k in range(5)] + ["fail", "fail", "fail"] + [_frame(k) for k in range(8, 12)]
    src = FrameSource(SourceSpec("file", "x", "fake"), "rgb", open_fn=opener([ScriptedCapture(script)]))
    src.start()
    got = drain(src)
    assert [p.index for p in got] == [0, 1, 2, 3, 4, 8, 9, 10, 11]  # indices stay true to the file's frames
    assert [int(p.image[0, 0, 0]) for p in got] == [0, 1, 2, 3, 4, 8, 9, 10, 11]
    assert src.gaps == [(5, 8)] and src.stats.unreadable == 3 and src.stats.corrupt == 3
    assert src.error is None


def test_file_that_breaks_off_before_its_declared_end_is_an_error_not_an_end():
    script = [_frame(k) for k in range(5)] + ["fail"] * 7
    src = FrameSource(SourceSpec("file", "x", "fake"), "rgb",
                      open_fn=opener([ScriptedCapture(script, seekable=False)]))
    src.start()
    assert len(drain(src)) == 5
    assert src.error and "breaks off at frame 5 of the 12" in src.error
    # a capture that declares no count (or a clean end of file) ends quietly, as before
    for cap in (ScriptedCapture(script, declare_count=False), ScriptedCapture([_frame(k) for k in range(5)])):
        src = FrameSource(SourceSpec("file", "x", "fake"), "rgb", open_fn=opener([cap]))
        src.start()
        assert len(drain(src)) == 5 and src.error is None and src.gaps == []


def _damaged_video(tmp_path, fourcc: str, ext: str, n: int = 60):
    path = tmp_path / f"clip.{ext}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 15, (64, 48))
    for k in range(n):
        writer.write(np.full((48, 64, 3), 4 * k, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    lo, hi = len(data) * 2 // 5, len(data) * 3 // 5
    data[lo:hi] = bytes(hi - lo)  # the middle fifth of the file zeroed
    path.write_bytes(bytes(data))
    return path


def test_real_damaged_videos_never_end_as_if_complete(tmp_path):
    """OpenCV on real files: a damaged MJPG AVI resumes after the damage; a damaged MP4 either
    resumes or ends with an error naming the frame. Neither passes for a complete video."""
    avi = _damaged_video(tmp_path, "MJPG", "avi")
    src = FrameSource(parse_source(str(avi)), "rgb")
    src.start()
    got = drain(src, 30.0)
    assert src.error is None and src.gaps and src.stats.unreadable > 0
    assert 20 < len(got) < 60 and abs(float(got[-1].image.mean()) - 4 * 59) < 4  # read to the end, past the damage
    assert len(got) + src.stats.missing == 60  # every declared frame delivered or reported missing
    mp4 = _damaged_video(tmp_path, "mp4v", "mp4")
    src = FrameSource(parse_source(str(mp4)), "rgb")
    src.start()
    got = drain(src, 30.0)
    assert len(got) < 60
    assert src.gaps or (src.error and "breaks off" in src.error)
