"""benchmarks/cameras.py (how many cameras run in real time) at toy size: the real-time rule on constructed
numbers, the window's figures, the camera plan, the looping capture and a whole run's JSON. No wall-time
assertions: the figures of a run depend on the machine."""

from __future__ import annotations

import argparse
import json
import time

import cv2
import numpy as np
import pytest
from conftest import load_repo_script

from mvd_edge.match.baselines import ColorHistogramEmbedder
from mvd_edge.match.detect import Detections, Detector
from mvd_edge.match.sources import FrameSource, SourceError, SourceSpec

cams = load_repo_script("benchmarks/cameras.py")


def write_clip(path, n: int = 6, size: tuple[int, int] = (96, 160)) -> list[int]:
    """An MJPG clip whose frame k is the flat grey level ``20 + 30 (k mod 8)`` (told apart after compression)."""
    h, w = size
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (w, h))
    levels = [20 + 30 * (k % 8) for k in range(n)]
    for v in levels:
        vw.write(np.full((h, w, 3), v, np.uint8))
    vw.release()
    return levels


def level(img) -> int:
    """The clip frame a grey level came from (see :func:`write_clip`)."""
    return int(round((float(img.mean()) - 20) / 30))


# ------------------------------------------------------------------------------------------ the rule
def test_realtime_rule_bounds_are_inclusive_and_each_failure_is_named():
    assert cams.realtime_verdict(0.05, 1.0) == (True, "held")
    held, why = cams.realtime_verdict(0.0501, 0.2)
    assert not held and "dropped 5.0% > 5%" in why and "latency" not in why
    held, why = cams.realtime_verdict(0.0, 1.01)
    assert not held and "p99 latency 1.01 s > 1 s" in why and "dropped" not in why
    held, why = cams.realtime_verdict(0.5, 3.0)
    assert not held and "dropped" in why and "latency" in why
    assert cams.realtime_verdict(0.0, None) == (False, "no frame was matched")


def row(n, ok, source="vtest", variant="plain"):
    return {"cameras": n, "realtime": ok, "source": source, "variant": variant}


def test_realtime_cameras_is_the_largest_count_with_every_smaller_one_held():
    # a lucky pass at 8 after 4 failed does not count; the order of the rows does not matter
    assert cams.held_up_to([row(8, True), row(2, True), row(4, False), row(1, True)]) == 2
    assert cams.held_up_to([row(1, False), row(2, True)]) == 0
    assert cams.held_up_to([row(1, True), row(2, True), row(4, True)]) == 4
    rows = [row(1, True, "synth"), row(2, True, "synth"), row(4, False, "synth"),
            row(1, True, "vtest"), row(2, False, "vtest"),
            row(1, True, "vtest", "k3"), row(2, True, "vtest", "k3")]
    out = cams.summarise(rows, "plain")
    assert out["realtime_cameras"] == 1  # the smallest over the default variant's sources
    assert out["realtime_cameras_by_source"] == {"synth": 2, "vtest": 1}
    assert out["realtime_cameras_by_variant"] == {"plain": {"synth": 2, "vtest": 1}, "k3": {"vtest": 2}}
    assert cams.summarise([row(1, True, variant="k3")], "plain")["realtime_cameras"] is None  # plain not run


def snapshot(t, cpu, stage_s, per_cam):
    return {"t": t, "cpu": cpu, "stage_s": stage_s,
            "cams": {n: dict(zip(("delivered", "dropped", "late", "used"), v)) for n, v in per_cam.items()}}


def test_window_figures_from_constructed_counters():
    a = snapshot(100.0, 50.0, {"detect.cam0": 1.0, "track": 0.5},
                 {"cam0": (10, 1, 0, 9), "cam1": (10, 0, 0, 10)})
    # 10 s at 10 fps: 100 frames expected per camera. cam0: all produced, 5 dropped from its queue;
    # cam1: 10 never produced (its reader fell behind), 2 too late for their step
    b = snapshot(110.0, 55.0, {"detect.cam0": 4.0, "detect.cam1": 2.0, "track": 1.05, "embed": 0.915,
                               "wait.sync": 9.0},
                 {"cam0": (110, 6, 0, 104), "cam1": (100, 0, 2, 98)})
    lat = list(np.linspace(0.01, 0.2, 100)) + [2.0] * 3  # a slow tail above the p99
    f = cams.window_figures(a, b, lat, fps=10.0, cores=2)
    assert f["frames_expected"] == 200 and f["frames_matched"] == 183
    assert f["frames_dropped"] == {"queue": 5, "late": 2, "not_produced": 10}
    assert f["dropped_fraction"] == pytest.approx(17 / 200)
    # per camera frame: detect 5 s (both cameras' detect.* summed), track 0.55 s, embed 0.915 s over 183 frames
    assert f["stage_ms"]["detect"] == pytest.approx(5000 / 183, abs=1e-3)
    assert f["stage_ms"]["track"] == pytest.approx(550 / 183, abs=1e-3)
    assert f["stage_ms"]["busy"] == pytest.approx((5 + 0.55 + 0.915) * 1000 / 183, abs=1e-3)
    assert f["stage_ms"]["associate"] == 0.0
    assert f["matching_thread_busy"] == pytest.approx((5 + 0.55 + 0.915) / 10, abs=1e-3)
    assert "wait.sync" in f["stage_ms_detail"] and "wait.sync" not in f["stage_ms"]  # waiting is not work
    assert f["cpu"] == {"cores": 0.5, "share_of_machine": 0.25, "cpu_count": 2}
    assert f["latency_ms"]["frames"] == 103 and f["latency_ms"]["p99"] == 2000.0
    assert f["latency_ms"]["p50"] == pytest.approx(1000 * np.percentile(lat, 50), abs=0.1)
    assert f["realtime"] is False and f["why"].startswith("dropped 8.5%")


def test_window_with_no_frame_matched_fails_the_rule():
    a = snapshot(0.0, 0.0, {}, {"cam0": (0, 0, 0, 0)})
    b = snapshot(2.0, 1.0, {"detect.cam0": 3.0}, {"cam0": (1, 0, 0, 0)})
    f = cams.window_figures(a, b, [], fps=15.0, cores=1)
    assert f["realtime"] is False and f["latency_ms"]["p99"] is None and f["stage_ms"]["busy"] is None


# ------------------------------------------------------------------------------------------ sources
def test_plan_spreads_cameras_over_clips_and_start_frames(tmp_path):
    four = [cams.Clip(n, tmp_path / f"{n}.mp4", "ir" if n.startswith("ir") else "rgb", 300) for n in cams.SYNTH_ORDER]
    plan = cams.plan_cameras(four, 8)
    assert [p.clip.name for p in plan] == list(cams.SYNTH_ORDER) * 2
    assert [p.start for p in plan] == [0] * 4 + [150] * 4
    assert [p.name for p in plan] == [f"cam{k}" for k in range(8)]
    assert [p.clip.modality for p in cams.plan_cameras(four, 2)] == ["rgb", "ir"]  # an IR/RGB pair first
    one = [cams.Clip("vtest", tmp_path / "v.avi", "rgb", 795)]
    assert [p.start for p in cams.plan_cameras(one, 4)] == [0, 198, 397, 596]
    assert [p.start for p in cams.plan_cameras(four, 6)] == [0, 0, 0, 0, 150, 150]
    with pytest.raises(ValueError, match="camera count must be >= 1"):
        cams.plan_cameras(one, 0)


def test_looping_capture_wraps_from_its_start_with_time_running_on(tmp_path):
    path = tmp_path / "clip.avi"
    write_clip(path, n=5)
    cap = cams.LoopingCapture(path, start=3, fps=20.0)
    got, times = [], []
    for _ in range(8):
        ok, img = cap.read()
        assert ok
        got.append(level(img))
        times.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    assert got == [3, 4, 0, 1, 2, 3, 4, 0] and cap.loops == 2
    assert times == [50.0 * k for k in range(8)]  # the play-out clock, not the file's
    assert cap.get(cv2.CAP_PROP_FPS) == 20.0 and cap.get(cv2.CAP_PROP_FRAME_COUNT) == 0.0
    cap.release()


def test_a_looped_clip_is_one_endless_stream_to_frame_source(tmp_path):
    """FrameSource must not take the frames after a wrap as repeats (their file time goes back)."""
    path = tmp_path / "clip.avi"
    write_clip(path, n=4)
    src = FrameSource(SourceSpec("file", str(path), "clip", fps=200.0), "cam0", queue_size=64,
                      open_fn=lambda spec: cams.LoopingCapture(path, 1, 200.0), live=False)
    src.start()
    pkts = [src.get(timeout=5.0) for _ in range(10)]
    src.stop()
    assert all(p not in (None, False) for p in pkts)
    assert [p.index for p in pkts] == list(range(10))
    assert [level(p.image) for p in pkts] == [1, 2, 3, 0, 1, 2, 3, 0, 1, 2]
    assert src.stats.repeated == 0 and src.error is None


# ------------------------------------------------------------------------------------------ a run
class CentreBox(Detector):
    """One person-sized box in the middle of every frame."""

    name = "centre"

    def detect(self, image, frame_index: int) -> Detections:
        h, w = image.shape[:2]
        return Detections(np.array([[w * 0.4, h * 0.1, w * 0.6, h * 0.9]], np.float32), np.ones(1, np.float32))


def toy_args(tmp_path, counts=(1, 2)):
    return argparse.Namespace(fps=15.0, seconds=1.0, warmup=0.3, threads=1, engine=tmp_path / "toy.onnx",
                              camera_counts=list(counts), source_names=["vtest"], variant_names=["plain"])


def test_a_toy_run_writes_every_field(tmp_path):
    path = tmp_path / "clip.avi"
    write_clip(path, n=20)
    clip = cams.Clip("toy", path, "rgb", 20)
    args = toy_args(tmp_path)
    result = cams.run_all(args, ColorHistogramEmbedder(), {"vtest": lambda: [clip]},
                          detectors=lambda cs, threads, d: {c.name: CentreBox() for c in cs})
    assert [r["cameras"] for r in result["rows"]] == [1, 2]
    for r in result["rows"]:
        assert r["source"] == "vtest" and r["variant"] == "plain" and "errors" not in r
        assert set(r["stage_ms"]) == {*cams.STAGES, "busy"}
        assert r["frames_matched"] > 0 and r["latency_ms"]["frames"] == r["frames_matched"]
        assert 0.0 <= r["dropped_fraction"] <= 1.0 and isinstance(r["realtime"], bool)
        assert r["realtime"] == cams.realtime_verdict(r["dropped_fraction"], r["latency_ms"]["p99"] / 1000)[0]
        assert r["cpu"]["cores"] > 0 and r["window_s"] > 0 and r["rss_mb"] > 0
        assert 0.0 < r["matching_thread_busy"] <= 1.0 and r["load_average"] >= 0
    assert result["rows"][1]["clips"] == ["toy@0", "toy@10"] and result["rows"][1]["modalities"] == {"rgb": 2, "ir": 0}
    assert result["realtime_cameras"] == cams.held_up_to(result["rows"])
    written = cams.write_outputs(result, tmp_path / "out")
    data = json.loads((tmp_path / "out" / "cameras.json").read_text())
    for key in ("realtime_cameras", "realtime_cameras_by_source", "rule", "rows", "load_average_at_start",
                "cpu_count", "threads", "fps"):
        assert key in data
    assert data["rule"] == {"max_dropped_fraction": 0.05, "max_p99_latency_s": 1.0}
    assert all(p.is_file() for p in written)


class SlowCentreBox(CentreBox):
    """:class:`CentreBox` that takes ``seconds`` per frame, sleeping (a slow detector that leaves the CPU free)."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def detect(self, image, frame_index: int) -> Detections:
        time.sleep(self.seconds)
        return super().detect(image, frame_index)


def test_an_overloaded_site_drops_frames_and_is_not_real_time(tmp_path):
    """4 cameras at 15 fps whose detector takes 50 ms a frame need 3 s of work a second: about two frames
    in three must be dropped (a busier machine only drops more); the bounded queues keep latency finite."""
    path = tmp_path / "clip.avi"
    write_clip(path, n=20)
    args = toy_args(tmp_path)
    args.seconds = 2.0
    r = cams.run_row(ColorHistogramEmbedder(), cams.plan_cameras([cams.Clip("toy", path, "rgb", 20)], 4),
                     cams.VARIANTS["plain"], args, detectors=lambda cs, threads, d: {c.name: SlowCentreBox(0.05) for c in cs})
    assert r["realtime"] is False and r["why"].startswith("dropped")
    assert r["dropped_fraction"] > 0.4 and r["frames_dropped"]["queue"] + r["frames_dropped"]["late"] > 0
    assert r["matching_thread_busy"] > 0.8 and r["stage_ms"]["detect"] >= 50.0


def test_a_camera_that_cannot_open_stops_the_run(tmp_path):
    clip = cams.Clip("missing", tmp_path / "nope.avi", "rgb", 20)
    args = toy_args(tmp_path, counts=(1,))
    with pytest.raises(SourceError, match="missing@0"):
        cams.run_row(ColorHistogramEmbedder(), cams.plan_cameras([clip], 1), cams.VARIANTS["plain"], args,
                     detectors=lambda cs, threads, d: {c.name: CentreBox() for c in cs})


@pytest.mark.parametrize("argv, message", [
    (["--cameras", "0,2"], "--cameras takes positive integers"),
    (["--cameras", "two"], "--cameras takes comma-separated integers"),
    (["--sources", "synth,webcam"], "--sources: unknown webcam"),
    (["--variants", "fast"], "--variants: unknown fast"),
    (["--seconds", "0"], "--seconds must be > 0"),
    (["--synth-size", "20x20"], "--synth-size takes HEIGHTxWIDTH"),
    (["--engine", "/no/such/engine.onnx"], "--engine /no/such/engine.onnx: no such file"),
])
def test_bad_arguments_are_one_line_errors(argv, message):
    with pytest.raises(SystemExit, match=message):
        cams.parse_args(argv)


def test_no_engine_anywhere_asks_for_one(monkeypatch):
    monkeypatch.setattr(cams, "default_engine", lambda: None)
    with pytest.raises(SystemExit, match="pass --engine"):
        cams.parse_args([])


def test_main_with_the_real_detector_and_a_tiny_engine(tmp_path, tiny_ort_engine):
    """The command end to end: the default detector on a toy clip, ONNX Runtime on one thread."""
    path = tmp_path / "clip.avi"
    write_clip(path, n=20, size=(240, 320))
    out = tmp_path / "out"
    result = cams.main(["--engine", str(tiny_ort_engine), "--cameras", "1", "--seconds", "1", "--warmup", "0.5",
                        "--sources", "vtest", "--video", str(path), "--out", str(out)])
    assert (out / "cameras.json").is_file() and result["rows"][0]["frames_matched"] > 0
    assert result["rows"][0]["stage_ms"]["detect"] > 0


@pytest.mark.parametrize("threads", [0, 1])
def test_the_cameras_detectors_take_the_rows_detector_settings(threads):
    from mvd_edge.core.modality import Modality
    from mvd_edge.match.config import MatcherConfig
    from mvd_edge.match.site import SiteCamera

    row = MatcherConfig().updated(cams.VARIANTS["tiles1"].settings)
    cameras = [SiteCamera("rgb0", Modality.parse("rgb"), None), SiteCamera("ir0", Modality.parse("ir"), None)]
    dets = cams.camera_detectors(cameras, threads, row.detector)
    assert dets["rgb0"].cnn.tiles == 1  # ssdlite on the whole frame only, also on its own thread count
    assert cams.camera_detectors(cameras, threads, MatcherConfig().detector)["rgb0"].cnn.tiles == 2
