"""Cameras in real time: how many cameras one machine carries at ``--fps`` through the site matcher.

Each row plays N cameras (``--cameras``, default 1, 2, 4, 8) live-like for ``--seconds`` through
the machinery of ``mvd-edge match --cameras site.yaml``, in-process: one
:class:`~mvd_edge.match.runner.Runner` of a :func:`~mvd_edge.match.site.site_matcher`, every
camera a :class:`~mvd_edge.match.sources.FrameSource` with ``sources.realtime`` on (each file is
paced at ``--fps`` in its own thread and the oldest queued frame is dropped when the matcher falls
behind, as a live camera's would be), frames paired by time. The pipeline is the default one: the
real-world detectors (``detector.name=auto``: ``ssdlite+mog2`` on RGB cameras, ``knn`` on IR),
the tracker, the re-id engine (``--engine``, default the packaged INT8 student) and the site's
global gallery, at the engine sidecar's thresholds.

Sources (``--sources``), each its own rows:

* ``synth``: a synthetic site of 2 RGB + 2 IR cameras at 2 places (``mvd-edge synth-video --site``,
  rendered once into ``--work``), the cameras taken in the order rgb0, ir0, rgb1, ir1 (so 2 cameras
  are an IR/RGB pair at one place); past 4 cameras the clips are reused, started elsewhere.
* ``vtest``: OpenCV's real ``vtest.avi`` (768x576, see ``benchmarks/real_footage.py``; ``--video``,
  else fetched into ``--cache``), an RGB camera each, all the same clip started at evenly spread
  frames so the cameras differ at every moment.

Every clip loops (:class:`LoopingCapture`) and plays at ``--fps`` whatever its own rate (vtest is
10 fps: it runs 1.5x fast). Nothing is measured during the first ``--warmup`` seconds (the
background models learn the scene, sessions warm up); then, over the measured window:

* ``stage_ms``: mean time per camera frame of each stage (``detect`` over all cameras, ``track``,
  ``crop``, ``embed``, ``associate``; their sum is ``busy``): a stage's total seconds in the window
  over the camera frames matched in it.
* ``matching_thread_busy``: the share of the window the matching thread spent in those stages (the
  rest it waited for frames). Every camera is matched in that one thread, one step after another,
  so near 1.0 it is saturated, however many cores are idle; decoding runs in the sources' threads.
* ``dropped_fraction``: frames the cameras produced in the window (``--fps`` x seconds each) that
  were never matched, over those produced: dropped from a full queue, skipped as too late for their
  time step, or never produced because the reading thread itself could not keep the pace.
* ``latency_ms`` p50 / p99: per matched camera frame, from its capture (the moment the paced
  reader handed it over, as ``match`` measures) to the end of its step (associated and its events
  out).
* ``cpu``: the process's CPU seconds (every thread) over the window's wall seconds, as cores and as
  a share of the machine's ``cpu_count``.
* ``realtime``: held when ``dropped_fraction <= 5%`` AND ``p99 latency <= 1 s`` (:func:`realtime_verdict`).
  Why both: a pipeline that falls behind shows first as drops (the queues are bounded, 8 frames, so
  latency alone stays near the queue's half second while frames are thrown away); a pipeline that
  keeps every frame but answers late (steps slower than a frame period in bursts) shows as latency.
  5% is what a tracker coasts over (``track.max_age`` is 30 frames; a lost frame in 20 costs little);
  1 s is how stale an alert may be and still be live.
* ``realtime_cameras``: per source, the largest camera count held in real time with every smaller
  count measured also held (:func:`held_up_to`); the top-level field is the smallest of those over
  the sources, for the default variant.

Variants (``--variants``): rows of other pipelines side by side in the same run, for the ways of
carrying more cameras (detect every k-th frame, motion gating, one detector batch across cameras,
decoding at the detector's resolution). Each is a :class:`Variant` in :data:`VARIANTS`: matcher
settings (``match --set`` keys) and optional hooks that wrap the detectors or the captures. Defined:
``plain``, ``every2`` / ``every3`` / ``every5`` (``detector.every``) and ``tiles1`` (``detector.tiles=1``).

Writes ``OUT/cameras.json`` and ``OUT/cameras.png`` and prints the table. The numbers are only as
good as the CPU was free: the load average at the start of the run and of each row is recorded.
By default 8 rows of 65 s: about 10 minutes with the rendering and loading (``docs/cameras/README.md``).

    python benchmarks/cameras.py                                  # the packaged engine, threads as `match`
    python benchmarks/cameras.py --engine ENGINE.int8-cpu.ort.onnx --threads 1 --out runs/cameras-1t
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from mvd_edge.core.modality import Modality
from mvd_edge.match.config import DetectorConfig, MatcherConfig, resolve
from mvd_edge.match.detect import make_detector
from mvd_edge.match.runner import Runner
from mvd_edge.match.site import SiteCamera, site_matcher
from mvd_edge.match.sources import FrameSource, SourceSpec

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("synth", "vtest")
#: the real-time rule (see the module docstring)
MAX_DROPPED, MAX_P99_S = 0.05, 1.0
#: the synthetic site's cameras in the order cameras are taken: an IR/RGB pair per place
SYNTH_ORDER = ("rgb0", "ir0", "rgb1", "ir1")
STAGES = ("detect", "track", "crop", "embed", "associate")


# ------------------------------------------------------------------------------------------ the rule
def realtime_verdict(dropped_fraction: float, p99_s: float | None) -> tuple[bool, str]:
    """``(held, why)``: real time is held when at most :data:`MAX_DROPPED` of the frames were dropped
    and the p99 latency is at most :data:`MAX_P99_S` seconds; ``p99_s`` None (no frame matched) fails."""
    if p99_s is None or not math.isfinite(p99_s):
        return False, "no frame was matched"
    why = []
    if dropped_fraction > MAX_DROPPED:
        why.append(f"dropped {100 * dropped_fraction:.1f}% > {100 * MAX_DROPPED:g}%")
    if p99_s > MAX_P99_S:
        why.append(f"p99 latency {p99_s:.2f} s > {MAX_P99_S:g} s")
    return (not why), ("; ".join(why) if why else "held")


def held_up_to(rows: Sequence[dict]) -> int:
    """The largest ``cameras`` of ``rows`` (one source, one variant) held in real time with every
    smaller count among them held too (a lucky pass at 8 after a failure at 4 does not count); 0: none."""
    best = 0
    for r in sorted(rows, key=lambda r: r["cameras"]):
        if not r["realtime"]:
            break
        best = r["cameras"]
    return best


def summarise(rows: Sequence[dict], default_variant: str) -> dict[str, Any]:
    """The top-level answer: ``realtime_cameras`` (the default variant, the smallest over its sources;
    None when it was not measured), and per variant and source."""
    by: dict[str, dict[str, int]] = {}
    for v in dict.fromkeys(r["variant"] for r in rows):
        for s in dict.fromkeys(r["source"] for r in rows if r["variant"] == v):
            by.setdefault(v, {})[s] = held_up_to([r for r in rows if r["variant"] == v and r["source"] == s])
    default = by.get(default_variant, {})
    return {"realtime_cameras": min(default.values()) if default else None,
            "realtime_cameras_by_source": default, "realtime_cameras_by_variant": by}


# ------------------------------------------------------------------------------------------ variants
class Variant(NamedTuple):
    """One pipeline measured as rows: ``settings`` are ``match --set`` keys over the defaults (None: none);
    ``detectors(cameras, detectors) -> detectors`` may wrap or replace the per-camera detectors
    (e.g. one batched detector across cameras, detection every k-th frame) and
    ``capture(capture, fps) -> capture`` the looped files (e.g. decoding at the detector's size)."""

    name: str
    about: str
    settings: dict[str, Any] | None = None
    detectors: Callable[[list[SiteCamera], dict], dict] | None = None
    capture: Callable[[Any, float], Any] | None = None


VARIANTS = {v.name: v for v in [
    Variant("plain", "every frame of every camera detected, tracked, embedded and matched"),
    *(Variant(f"every{k}", f"the detector on every {k}th frame of a camera, the tracker's prediction in between "
                           f"(detector.every={k})", {"detector.every": k}) for k in (2, 3, 5)),
    Variant("tiles1", "ssdlite on the whole frame only, not also its halves (detector.tiles=1)", {"detector.tiles": 1}),
]}
DEFAULT_VARIANT = "plain"


# ------------------------------------------------------------------------------------------ sources
class LoopingCapture:
    """A video file played in a loop from frame ``start``, as a capture of ``fps`` with no end: its
    timestamps (``CAP_PROP_POS_MSEC``) keep counting across loops (``frames served / fps``) and it
    declares no frame count, so :class:`FrameSource` reads it as one endless file."""

    def __init__(self, path: str | Path, start: int = 0, fps: float = 15.0, opener: Callable = cv2.VideoCapture):
        self.path, self.fps, self.served, self.loops = str(path), float(fps), 0, 0
        self.cap = opener(self.path)
        if start > 0 and self.cap.isOpened():
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, int(start))

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return bool(self.cap.isOpened())

    def read(self) -> tuple[bool, Any]:
        ok, frame = self.cap.read()
        if not ok:  # the end: start again
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            self.loops += 1
            ok, frame = self.cap.read()
        if ok:
            self.served += 1
        return ok, frame

    def get(self, prop: int) -> float:
        if prop == cv2.CAP_PROP_FPS:
            return self.fps
        if prop == cv2.CAP_PROP_POS_MSEC:  # the frame just read: the first one is at 0
            return 1000.0 * max(self.served - 1, 0) / self.fps
        return 0.0  # no frame count: endless

    def release(self) -> None:
        self.cap.release()


class Clip(NamedTuple):
    """A looped video a camera plays: ``path``, its ``modality`` (``rgb`` / ``ir``) and ``frames``."""

    name: str
    path: Path
    modality: str
    frames: int


class CameraPlan(NamedTuple):
    """Camera ``name`` plays ``clip`` from frame ``start``."""

    name: str
    clip: Clip
    start: int


def plan_cameras(clips: Sequence[Clip], n: int) -> list[CameraPlan]:
    """``n`` cameras over ``clips``: camera k plays clip ``k mod len(clips)``; the cameras that share a
    clip start at evenly spread frames of it (so no two cameras show the same frame at once)."""
    if n < 1:
        raise ValueError(f"camera count must be >= 1, got {n}")
    if not clips:
        raise ValueError("no clips to play")
    m = len(clips)
    out = []
    for k in range(n):
        clip = clips[k % m]
        sharing = len(range(k % m, n, m))  # cameras on this clip
        out.append(CameraPlan(f"cam{k}", clip, (k // m) * clip.frames // sharing))
    return out


def count_frames(path: Path) -> int:
    """Frames of a video, read to the end (containers' declared counts can be wrong)."""
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.grab():
        n += 1
    cap.release()
    if n == 0:
        raise SystemExit(f"{path}: no frames could be read")
    return n


def synth_clips(work: Path, seconds: float, size: tuple[int, int], fps: float, seed: int) -> list[Clip]:
    """The synthetic site's four camera clips, rendered once into ``work`` (kept for later runs)."""
    from mvd_edge.synth.site import write_synth_site

    out = work / f"synth-site-{seed}-{size[0]}x{size[1]}-{seconds:g}s-{fps:g}fps"
    gt_path = out / "gt.json"
    if not gt_path.is_file():
        print(f"rendering the synthetic site into {out} ...", flush=True)
        write_synth_site(out, rgb_cameras=2, ir_cameras=2, locations=2, n_ids=6, seconds=seconds, fps=fps,
                         size=size, seed=seed, overwrite=True)
    cams = json.loads(gt_path.read_text())["cameras"]
    return [Clip(n, out / cams[n]["video"], cams[n]["modality"], int(cams[n]["n_frames"])) for n in SYNTH_ORDER]


def vtest_clip(video: Path | None, cache: Path) -> Clip:
    """``vtest.avi`` as an RGB clip: ``video``, else fetched by ``benchmarks/real_footage.py`` into ``cache``."""
    if video is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from real_footage import fetch_vtest

        video = fetch_vtest(cache)
    if not video.is_file():
        raise SystemExit(f"--video {video}: no such file")
    return Clip("vtest", video, "rgb", count_frames(video))


# ------------------------------------------------------------------------------------------ one row
class Window:
    """The measured window of a run (the Runner's ``on_step``): from the first step once ``warmup``
    seconds have passed to the last step (closing the run is not in it), with the latency of every
    camera frame matched in it."""

    def __init__(self, warmup: float, clock: Callable[[], float] = time.monotonic,
                 cpu: Callable[[], float] = time.process_time):
        self.warmup, self.clock, self.cpu = float(warmup), clock, cpu
        self.t_start = clock()
        self.start: dict[str, Any] | None = None
        self.end: dict[str, Any] | None = None
        self.latency: list[float] = []

    def counters(self, runner: Runner) -> dict[str, Any]:
        sync, tm = runner.sync, runner.matcher.timer
        return {"t": self.clock(), "cpu": self.cpu(), "stage_s": dict(tm.total),
                "cams": {n: {"delivered": s.stats.delivered, "dropped": s.dropped,
                             "late": sync.late[n] if sync else 0, "used": sync.used[n] if sync else 0}
                         for n, s in runner.sources.items()}}

    def on_step(self, runner: Runner) -> None:
        now = self.clock()
        if self.start is None:
            if now - self.t_start >= self.warmup:
                self.start = self.counters(runner)
            return
        self.latency.extend(now - p.captured for p in runner.result.frames.values())
        self.end = self.counters(runner)

    def measure(self, fps: float) -> dict[str, Any]:
        """The row's measured figures (see the module docstring)."""
        if self.end is None:
            raise RuntimeError("the run ended before its warm-up did: raise --seconds or lower --warmup")
        return window_figures(self.start, self.end, self.latency, fps)


def window_figures(a: dict[str, Any], b: dict[str, Any], latency: Sequence[float], fps: float,
                   cores: int | None = None) -> dict[str, Any]:
    """Figures of the window between counter snapshots ``a`` and ``b`` (:meth:`Window.counters`)."""
    wall = b["t"] - a["t"]
    cams = {}
    for n, end in b["cams"].items():
        d = {k: end[k] - a["cams"][n][k] for k in end}
        expected = fps * wall
        d["not_produced"] = max(0.0, expected - d["delivered"])
        d["expected"] = expected
        cams[n] = d
    expected = sum(c["expected"] for c in cams.values())
    lost = sum(c["dropped"] + c["late"] + c["not_produced"] for c in cams.values())
    used = sum(c["used"] for c in cams.values())
    stage_s = {k: v - a["stage_s"].get(k, 0.0) for k, v in b["stage_s"].items()}
    grouped = {st: sum(v for k, v in stage_s.items() if k == st or (st == "detect" and k.startswith("detect.")))
               for st in STAGES}
    per_frame = {st: 1000.0 * v / used if used else None for st, v in grouped.items()}
    per_frame["busy"] = 1000.0 * sum(grouped.values()) / used if used else None
    busy_share = sum(grouped.values()) / wall if wall > 0 else 0.0
    cores = cores or os.cpu_count() or 1
    cpu_cores = (b["cpu"] - a["cpu"]) / wall if wall > 0 else 0.0
    lat = np.asarray(latency, np.float64)
    p50, p99 = (float(np.percentile(lat, q)) for q in (50, 99)) if lat.size else (None, None)
    dropped = lost / expected if expected > 0 else 1.0
    held, why = realtime_verdict(dropped, p99)
    return {"window_s": round(wall, 3), "frames_expected": round(expected, 1), "frames_matched": used,
            "frames_dropped": {"queue": sum(c["dropped"] for c in cams.values()),
                               "late": sum(c["late"] for c in cams.values()),
                               "not_produced": round(sum(c["not_produced"] for c in cams.values()), 1)},
            "dropped_fraction": round(min(1.0, dropped), 4),
            "stage_ms": {k: None if v is None else round(v, 3) for k, v in per_frame.items()},
            "stage_ms_detail": {k: round(1000.0 * v / used, 3) for k, v in stage_s.items()} if used else {},
            "latency_ms": {"p50": None if p50 is None else round(1000 * p50, 1),
                           "p99": None if p99 is None else round(1000 * p99, 1), "frames": int(lat.size)},
            "cpu": {"cores": round(cpu_cores, 3), "share_of_machine": round(cpu_cores / cores, 3), "cpu_count": cores},
            "matching_thread_busy": round(busy_share, 3),
            "realtime": held, "why": why}


def camera_detectors(cams: list[SiteCamera], threads: int | None, d: DetectorConfig) -> dict[str, Any]:
    """The default (``auto``) detector of each camera with the row's ``detector`` settings, its CNN's ONNX
    Runtime session on ``threads``."""
    from mvd_edge.match.detect import load_ssdlite
    from mvd_edge.match.foreground import BackgroundConfirmed

    dets = {}
    for c in cams:
        det = make_detector(None, "auto", modality=c.modality.short, ssdlite_tiles=d.tiles)
        if threads and isinstance(det, BackgroundConfirmed):  # make_detector takes no thread count
            det.cnn = load_ssdlite(conf=det.cnn.conf, tiles=det.cnn.tiles, threads=threads)
        dets[c.name] = det
    return dets


def run_row(embedder, plans: list[CameraPlan], variant: Variant, args: argparse.Namespace,
            detectors: Callable[[list[SiteCamera], int | None, DetectorConfig], dict] = camera_detectors) -> dict[str, Any]:
    """Play the planned cameras for ``args.warmup + args.seconds`` through the site matcher; the row."""
    cfg = MatcherConfig().updated({"sources.realtime": True, **(variant.settings or {})}, "benchmark")
    cfg = resolve(cfg, embedder.info, site=True).config
    cams = [SiteCamera(p.name, Modality.parse(p.clip.modality),
                       SourceSpec("file", str(p.clip.path), f"{p.clip.name}@{p.start}", fps=args.fps,
                                  modality=p.clip.modality)) for p in plans]
    dets = detectors(cams, args.threads, cfg.detector)
    if variant.detectors is not None:
        dets = variant.detectors(cams, dets)

    def opener(plan: CameraPlan) -> Callable[[SourceSpec], Any]:
        def open_fn(spec: SourceSpec):
            cap = LoopingCapture(plan.clip.path, plan.start, args.fps)
            return variant.capture(cap, args.fps) if variant.capture is not None else cap
        return open_fn

    s = cfg.sources
    sources = {p.name: FrameSource(c.spec, p.name, queue_size=s.queue_size, open_fn=opener(p), live=False,
                                   realtime=s.realtime) for p, c in zip(plans, cams)}
    runner = Runner(site_matcher(embedder, cams, dets, cfg), sources)
    window = Window(args.warmup)
    summary = runner.run(duration=args.warmup + args.seconds, on_step=window.on_step)
    row = {"variant": variant.name, "cameras": len(plans),
           "modalities": {m: sum(p.clip.modality == m for p in plans) for m in ("rgb", "ir")},
           "clips": [f"{p.clip.name}@{p.start}" for p in plans], **window.measure(args.fps),
           "global_ids": summary["global_ids"], "rss_mb": summary["rss_mb"]["end"], "ended": summary["ended"]}
    errors = [f"{n}: {v['error']}" for n, v in summary["cameras"].items() if v["error"]]
    if errors:  # a camera that failed is not a camera carried
        row.update(errors=errors, realtime=False, why="; ".join(errors))
    return row


# ------------------------------------------------------------------------------------------ output
COLUMNS = ("variant", "source", "cameras", "detect", "track", "embed", "associate", "busy", "thread busy %",
           "dropped %", "p50 ms", "p99 ms", "cpu cores", "realtime")


def table_rows(rows: Sequence[dict]) -> list[list[str]]:
    def ms(v):
        return "-" if v is None else f"{v:.1f}"

    stages = ("detect", "track", "embed", "associate", "busy")
    return [[r["variant"], r["source"], str(r["cameras"]), *(ms(r["stage_ms"][k]) for k in stages),
             f"{100 * r['matching_thread_busy']:.0f}", f"{100 * r['dropped_fraction']:.1f}",
             ms(r["latency_ms"]["p50"]), ms(r["latency_ms"]["p99"]), f"{r['cpu']['cores']:.2f}",
             "yes" if r["realtime"] else f"no ({r['why']})"] for r in rows]


def print_table(rows: Sequence[dict]) -> None:
    body = table_rows(rows)
    widths = [max(len(c), *(len(b[i]) for b in body)) if body else len(c) for i, c in enumerate(COLUMNS)]
    print("  ".join(c.ljust(w) for c, w in zip(COLUMNS, widths)))
    for b in body:
        print("  ".join(v.ljust(w) for v, w in zip(b, widths)), flush=True)


def plot(result: dict, path: Path) -> bool:
    """Dropped share, p99 latency, CPU and the matching thread's time per camera frame (``busy``, and
    ``detect`` dashed) against the camera count, a line per variant and source (False without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    fig, ax = plt.subplots(1, 4, figsize=(18, 3.8))
    keys = list(dict.fromkeys((r["variant"], r["source"]) for r in rows))
    for v, s in keys:
        sel = sorted((r for r in rows if r["variant"] == v and r["source"] == s), key=lambda r: r["cameras"])
        n = [r["cameras"] for r in sel]
        label = f"{s}" if len(result["variants"]) == 1 else f"{v} / {s}"
        ax[0].plot(n, [100 * r["dropped_fraction"] for r in sel], "o-", label=label)
        ax[1].plot(n, [r["latency_ms"]["p99"] or np.nan for r in sel], "o-", label=label)
        ax[2].plot(n, [r["cpu"]["cores"] for r in sel], "o-", label=label)
        line = ax[3].plot(n, [r["stage_ms"]["busy"] or np.nan for r in sel], "o-", label=f"{label} busy")[0]
        ax[3].plot(n, [r["stage_ms"]["detect"] or np.nan for r in sel], "x--", color=line.get_color(),
                   label=f"{label} detect")
    ax[0].axhline(100 * MAX_DROPPED, color="grey", ls="--", lw=1)
    ax[1].axhline(1000 * MAX_P99_S, color="grey", ls="--", lw=1)
    ax[2].axhline(result["cpu_count"], color="grey", ls="--", lw=1)
    ax[0].set(ylabel="frames dropped (%)", title=f"dropped (real time: <= {100 * MAX_DROPPED:g}%)")
    ax[1].set(ylabel="p99 latency (ms)", title=f"p99 capture -> matched (<= {1000 * MAX_P99_S:g} ms)")
    ax[2].set(ylabel="CPU (cores)", title=f"process CPU ({result['cpu_count']} cores: dashed)")
    ax[3].set(ylabel="ms per camera frame", title="matching thread per camera frame", ylim=(0, None))
    for a in ax:
        a.set_xscale("log", base=2)
        a.set_xticks(result["camera_counts"], [str(c) for c in result["camera_counts"]])
        a.set_xlabel(f"cameras at {result['fps']:g} fps")
        a.legend(fontsize=8)
    fig.suptitle(f"cameras in real time: {result['realtime_cameras']} (smallest over sources, "
                 f"{result['default_variant']}); threads {result['threads']}; load average at the start "
                 f"{result['load_average_at_start']} on {result['cpu_count']} cores", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------ main
def default_engine() -> Path | None:
    """The packaged re-id engine, where this checkout has one."""
    try:
        from mvd_edge.assets import REID_SYNTH_ENGINE
    except ImportError:
        return None
    return Path(REID_SYNTH_ENGINE) if Path(REID_SYNTH_ENGINE).is_file() else None


def _int_list(text: str, what: str) -> list[int]:
    try:
        out = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise SystemExit(f"{what} takes comma-separated integers, got {text!r}") from None
    if not out or min(out) < 1:
        raise SystemExit(f"{what} takes positive integers, got {text!r}")
    return sorted(set(out))


def _names(text: str, known: Sequence[str], what: str) -> list[str]:
    out = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in out if v not in known]
    if bad or not out:
        raise SystemExit(f"{what}: unknown {', '.join(bad) or 'empty list'}; choose from {', '.join(known)}")
    return list(dict.fromkeys(out))


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cameras", default="1,2,4,8", help="camera counts (comma-separated)")
    ap.add_argument("--seconds", type=float, default=60.0, help="measured seconds per row (after --warmup)")
    ap.add_argument("--warmup", type=float, default=5.0, help="seconds played before measuring")
    ap.add_argument("--fps", type=float, default=15.0, help="every camera's frame rate")
    ap.add_argument("--sources", default=",".join(SOURCES), help="synth, vtest or both (rows of each)")
    ap.add_argument("--variants", default=DEFAULT_VARIANT, help=f"pipelines: {', '.join(VARIANTS)}")
    ap.add_argument("--threads", type=int, default=0, help="ONNX Runtime / OpenCV threads of the detectors and "
                                                          "the engine (0: their defaults, as `match` runs)")
    ap.add_argument("--engine", type=Path, help="the re-id engine (default: the packaged one, if installed)")
    ap.add_argument("--video", type=Path, help="vtest.avi (default: fetched into --cache)")
    ap.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "mvd-edge")
    ap.add_argument("--work", type=Path, default=Path("runs/cameras"), help="the rendered synthetic site")
    ap.add_argument("--synth-seconds", type=float, default=20.0, help="length of the looped synthetic clips")
    ap.add_argument("--synth-size", default="360x640", help="synthetic clips' HEIGHTxWIDTH")
    ap.add_argument("--seed", type=int, default=7, help="the synthetic site's seed")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "cameras")
    args = ap.parse_args(argv)
    args.camera_counts = _int_list(args.cameras, "--cameras")
    args.source_names = _names(args.sources, SOURCES, "--sources")
    args.variant_names = _names(args.variants, list(VARIANTS), "--variants")
    for name in ("seconds", "fps", "synth_seconds"):
        if not getattr(args, name) > 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0, got {getattr(args, name)}")
    if args.warmup < 0 or args.threads < 0:
        raise SystemExit("--warmup and --threads must be >= 0")
    try:
        args.size = tuple(int(v) for v in args.synth_size.lower().split("x"))
        assert len(args.size) == 2 and min(args.size) >= 64
    except (ValueError, AssertionError):
        raise SystemExit(f"--synth-size takes HEIGHTxWIDTH, each >= 64, got {args.synth_size!r}") from None
    args.engine = args.engine or default_engine()
    if args.engine is None:
        raise SystemExit("no packaged re-id engine in this checkout: pass --engine ENGINE.onnx")
    if not args.engine.is_file():
        raise SystemExit(f"--engine {args.engine}: no such file")
    return args


def run_all(args: argparse.Namespace, embedder, clips: dict[str, Callable[[], list[Clip]]],
            detectors: Callable[[list[SiteCamera], int | None, DetectorConfig], dict] = camera_detectors) -> dict[str, Any]:
    """Every row (sources x variants x camera counts, in that order) and the summary fields."""
    result: dict[str, Any] = {
        "benchmark": "cameras", "fps": args.fps, "seconds": args.seconds, "warmup": args.warmup,
        "threads": args.threads, "engine": Path(args.engine).name, "detector": "auto",
        "camera_counts": args.camera_counts, "sources": args.source_names,
        "variants": {v: VARIANTS[v].about for v in args.variant_names}, "default_variant": DEFAULT_VARIANT,
        "rule": {"max_dropped_fraction": MAX_DROPPED, "max_p99_latency_s": MAX_P99_S},
        "machine": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
        "load_average_at_start": round(os.getloadavg()[0], 2), "rows": []}
    for source in args.source_names:
        pool = clips[source]()
        for variant in args.variant_names:
            for n in args.camera_counts:
                print(f"{variant} / {source}: {n} camera(s), {args.warmup + args.seconds:g} s ...", flush=True)
                load = round(os.getloadavg()[0], 2)
                row = {"source": source, **run_row(embedder, plan_cameras(pool, n), VARIANTS[variant], args,
                                                   detectors), "load_average": load}
                result["rows"].append(row)
                print_table([row])
    result.update(summarise(result["rows"], DEFAULT_VARIANT))
    return result


def write_outputs(result: dict[str, Any], out: Path) -> list[Path]:
    """``out/cameras.json`` and (with matplotlib) ``out/cameras.png``; the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "cameras.json"]
    written[0].write_text(json.dumps(result, indent=1) + "\n")
    if plot(result, out / "cameras.png"):
        written.append(out / "cameras.png")
    return written


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    from mvd_edge.runtime import load_embedder

    if args.threads:
        cv2.setNumThreads(args.threads)
    embedder = load_embedder(args.engine, threads=args.threads or None)
    clips = {"synth": lambda: synth_clips(args.work, args.synth_seconds, args.size, args.fps, args.seed),
             "vtest": lambda: [vtest_clip(args.video, args.cache)]}
    result = run_all(args, embedder, clips)
    written = write_outputs(result, args.out)
    print()
    print_table(result["rows"])
    print(f"realtime_cameras: {result['realtime_cameras']} {result['realtime_cameras_by_source']}; "
          + ", ".join(str(p) for p in written))
    return result


if __name__ == "__main__":
    main()
