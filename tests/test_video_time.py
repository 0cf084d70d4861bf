"""Video time: frames of a file carry their media time, gaps are measured in time, nothing is
delivered twice, decoding goes on past damage, and two files at different rates are paired by time.

Each frame written here is flat grey ``4 * k`` (k: its number), so what a damaged file really
delivered can be told from the image, whatever the container says.
"""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest
from match_fakes import drain

from mvd_edge.match.baselines import ColorHistogramEmbedder
from mvd_edge.match.detect import MotBoxes
from mvd_edge.match.events import read_events
from mvd_edge.match.pipeline import run_match
from mvd_edge.match.sources import FramePacket, FrameSource, parse_source

FPS = 15.0


def _read(path) -> tuple[FrameSource, list[FramePacket]]:
    src = FrameSource(parse_source(str(path)), "rgb")
    src.start()
    return src, drain(src, 30.0)


def _damaged(tmp_path, fourcc: str, ext: str, lo: float, hi: float, n: int = 60):
    """A clip of ``n`` flat frames with random bytes written over ``[lo, hi)`` of the file (fractions)."""
    path = tmp_path / f"clip.{ext}"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), FPS, (64, 48))
    for k in range(n):
        writer.write(np.full((48, 64, 3), 4 * k, np.uint8))
    writer.release()
    data = bytearray(path.read_bytes())
    a, b = int(len(data) * lo), int(len(data) * hi)
    data[a:b] = np.random.default_rng(0).integers(0, 256, b - a, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _content(pkt: FramePacket) -> int:
    return int(round(float(pkt.image.mean()) / 4))


def _check_clock(src: FrameSource, got: list[FramePacket], n: int) -> None:
    """Times and indices increase, an index is its time in frames, and every frame the file
    declares was delivered or is in a reported gap."""
    times = [p.time for p in got]
    assert all(b > a for a, b in zip(times, times[1:])), "a time delivered twice or out of order"
    assert [p.index for p in got] == [int(round(p.time * src.fps)) for p in got]
    assert len(got) + src.stats.missing == n
    assert sum(b - a for a, b in src.gaps) == src.stats.missing and len(src.gap_times) == len(src.gaps)
    for (a, b), (t0, t1) in zip(src.gaps, src.gap_times):
        assert t0 == pytest.approx(a / src.fps, abs=1e-3) and t1 == pytest.approx(b / src.fps, abs=1e-3)


def test_damaged_mp4_decodes_past_the_damage_with_the_true_times(tmp_path):
    src, got = _read(_damaged(tmp_path, "mp4v", "mp4", 0.40, 0.43))
    assert src.error is None  # not declared unreadable: what follows the damage decodes
    assert src.gaps and src.stats.unreadable > 0
    _check_clock(src, got, 60)
    assert got[-1].index == 59 and got[-1].time == pytest.approx(59 / FPS, abs=1e-3)
    a, b = src.gaps[0]
    after = next(p for p in got if p.index == b)  # the first frame after the damage is where it belongs
    assert after.time == pytest.approx(b / FPS, abs=1e-3) and abs(_content(after) - b) <= 1


def test_damaged_avi_delivers_no_frame_twice(tmp_path):
    src, got = _read(_damaged(tmp_path, "MJPG", "avi", 0.50, 0.52))
    content = [_content(p) for p in got]
    assert all(b > a for a, b in zip(content, content[1:])), f"a frame delivered twice: {content}"
    assert content[-1] == 59  # read to the end, past the damage
    assert src.error is None and src.gaps and src.stats.unreadable > 0
    _check_clock(src, got, 60)


def test_one_frame_hole_is_a_gap_in_time_not_a_shift(tmp_path, caplog):
    for k in range(10):
        if k != 4:
            cv2.imwrite(str(tmp_path / f"frame_{k:04d}.png"), np.full((24, 32, 3), 20 * k, np.uint8))
    with caplog.at_level(logging.WARNING, logger="mvd_edge.match.sources"):
        src, got = _read(tmp_path)
    assert [p.index for p in got] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert [p.time for p in got] == pytest.approx([k / FPS for k in (0, 1, 2, 3, 5, 6, 7, 8, 9)])
    assert [int(p.image[0, 0, 0]) for p in got] == [20 * k for k in (0, 1, 2, 3, 5, 6, 7, 8, 9)]
    assert src.gaps == [(4, 5)] and src.gap_times == [pytest.approx((4 / FPS, 5 / FPS), abs=1e-5)]
    assert src.stats.missing == 1 and src.stats.corrupt == 0 and src.error is None
    assert "1 frame (0.067 s) missing before frame 5 at 0.333 s" in caplog.text


@pytest.fixture(scope="module")
def two_rates(tmp_path_factory):
    """The same synthetic scene, 3 s, written at 15 fps and at 5 fps."""
    from mvd_edge.synth.video import write_synth_video

    root = tmp_path_factory.mktemp("rates")
    out = {}
    for fps in (15, 5):
        info = write_synth_video(root / f"fps{fps}", n_ids=2, seconds=3.0, seed=1, fps=float(fps), size=(96, 160))
        out[fps] = info
    return out


def _run_pair(ir, rgb, ir_boxes, rgb_boxes, events):
    dets = {"ir": MotBoxes(ir_boxes), "rgb": MotBoxes(rgb_boxes)}
    steps = []
    def record(runner):
        ir, rgb = runner.result.frames["ir"], runner.result.frames["rgb"]
        steps.append((ir.index, ir.time, rgb.index, rgb.time))

    summary = run_match(str(ir), str(rgb), ColorHistogramEmbedder(), dets, events=events, status=False, on_step=record)
    return summary, steps


def test_streams_at_different_rates_are_paired_by_time(two_rates, tmp_path, caplog):
    fast, slow = two_rates[15], two_rates[5]
    with caplog.at_level(logging.WARNING, logger="mvd_edge.match.pipeline"):
        summary, steps = _run_pair(fast["videos"]["ir"], slow["videos"]["rgb"], fast["mot"]["ir"],
                                   slow["mot"]["rgb"], tmp_path / "ev.jsonl")
    assert steps
    for _, t_ir, _, t_rgb in steps:  # each pair within half the faster stream's frame period
        assert abs(t_ir - t_rgb) <= 0.5 / 15 + 1e-6
    n_slow = slow["frames"]
    assert [s[2] for s in steps] == list(range(n_slow))  # every frame of the slower stream, once
    ir_frames = [s[0] for s in steps]
    assert len(set(ir_frames)) == len(ir_frames)
    seconds = int(fast["frames"] / 15)
    assert {int(s[1]) for s in steps} == set(range(seconds)) == {int(s[3]) for s in steps}  # all seconds of both
    assert summary["pairing"]["by"] == "time"
    assert "frame rates differ" in caplog.text
    events = list(read_events(tmp_path / "ev.jsonl"))
    assert events[0]["pairing"] == "time" and "frame rates differ" in events[0]["warning"]
    for ev in events:
        if ev["event"] == "match":
            assert abs(ev["time"] - ev["rgb_time"]) <= 0.5 / 15 + 1e-6


def test_streams_at_the_same_rate_stay_in_lockstep(two_rates, tmp_path):
    info = two_rates[5]
    summary, steps = _run_pair(info["videos"]["ir"], info["videos"]["rgb"], info["mot"]["ir"], info["mot"]["rgb"],
                               tmp_path / "ev.jsonl")
    assert [(s[0], s[2]) for s in steps] == [(k, k) for k in range(info["frames"])]
    assert "pairing" not in summary
    start = json.loads((tmp_path / "ev.jsonl").read_text().splitlines()[0])
    assert "pairing" not in start


def test_the_summary_warning_counts_missing_frames_not_only_damaged_ones(capsys, monkeypatch):
    """A hole in the timestamps is a gap with no damaged frame: the warning says how many frames are
    missing and when (it said '0 damaged frames skipped')."""
    from rich.console import Console

    import mvd_edge.cli.match as cli_match

    err = Console(file=__import__("io").StringIO(), width=200)
    monkeypatch.setattr(cli_match, "err_console", err)
    src = {"label": "a.mp4", "delivered": 9, "dropped": 0, "corrupt": 0, "reconnects": 0, "unreadable": 0,
           "missing": 1, "gaps": [[4, 5]], "gap_times": [[0.267, 0.333]]}
    summary = {"frames": 9, "seconds": 1.0, "fps": 9.0, "fps_compute": 9.0, "ended": "all sources ended",
               "stage_ms": {}, "sources": {"ir": src, "rgb": {**src, "gaps": [], "missing": 0}},
               "tracks": {"ir": 0, "rgb": 0}, "global_ids": 0, "crops_embedded": 0, "events": {}}
    monkeypatch.setattr(cli_match, "console", Console(file=__import__("io").StringIO()))
    cli_match._print_summary(summary, None, site=False)
    text = err.file.getvalue()
    assert "1 frames missing (0 of them damaged): frames 4-4 (0.27-0.33 s)" in text and "rgb source" not in text
