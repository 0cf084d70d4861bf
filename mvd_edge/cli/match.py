"""Camera-matcher commands: ``match``, ``synth-video``, ``train-detector`` and ``score-matches``.

torch-free; OpenCV, scipy, onnxruntime and the matcher pipeline are imported inside the
commands, so ``--help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mvd_edge.cli._common import (
    OVERWRITE_HELP,
    check_outputs,
    console,
    err_console,
    friendly,
    parse_size,
    refuse_existing,
    refuse_overwriting_inputs,
)
from mvd_edge.core.errors import UsageError
from mvd_edge.core.util import write_json

app = typer.Typer()


def _print_summary(console, summary: dict) -> None:
    console.print(f"[bold]{summary['frames']} frame pairs[/] in {summary['seconds']:.1f} s: "
                  f"[bold]{summary['fps']:.1f} fps[/] end to end ({summary['fps_compute']:.1f} fps of compute); "
                  f"ended: {summary['ended']}")
    table = Table(title="stages (mean ms per frame pair)", title_justify="left", show_edge=False)
    table.add_column("stage")
    table.add_column("ms", justify="right")
    for st, ms in summary["stage_ms"].items():
        table.add_row(st, f"{ms:.2f}")
    console.print(table)
    src = summary["sources"]
    console.print("sources: " + "; ".join(
        f"{s} {v['label']}: {v['delivered']} frames, {v['dropped']} dropped, {v['corrupt']} corrupt, "
        f"{v['reconnects']} reconnects" for s, v in src.items()))
    for s, v in src.items():
        if v.get("gaps"):  # damaged frames and holes in the file's timestamps alike: frames missing by time
            where = ", ".join(f"frames {a}-{b - 1} ({t0:.2f}-{t1:.2f} s)"
                              for (a, b), (t0, t1) in zip(v["gaps"], v.get("gap_times") or [(0.0, 0.0)] * len(v["gaps"])))
            err_console.print(f"[yellow]warning:[/] {s} source {v['label']}: {v.get('missing', 0)} frames missing "
                              f"({v.get('unreadable', 0)} of them damaged): {where}", highlight=False)
    console.print(f"tracks: ir {summary['tracks']['ir']}, rgb {summary['tracks']['rgb']}; "
                  f"global ids: {summary['global_ids']}; crops embedded: {summary['crops_embedded']}; "
                  f"events: {summary['events']}")
    if summary.get("latency_ms"):
        console.print(f"latency capture -> matched: p50 {summary['latency_ms']['p50']} ms, "
                      f"p95 {summary['latency_ms']['p95']} ms; memory {summary['rss_mb']['end']} MiB")
    if summary.get("events_path"):
        console.print(f"events: {summary['events_path']}")
    for sk in summary.get("sinks", []):
        line = f"{sk['sink']}: {sk['delivered']} of {sk['queued']} events delivered, {sk['retries']} retries"
        if sk["dropped"]:
            err_console.print(f"[yellow]warning:[/] {line}; {sk['dropped']} LOST (queue full or receiver away at the "
                              f"end; last error: {sk['last_error']})", highlight=False)
        else:
            console.print(line, highlight=False)
    if summary.get("video"):
        console.print(f"video: {summary['video']}")


def _check_bounds(values: dict[str, tuple]) -> None:
    """One-line errors for numeric options outside their range (``None`` = not given)."""
    import math

    from mvd_edge.core.errors import UsageError

    for name, (v, lo, hi) in values.items():
        if v is not None and not (math.isfinite(v) and lo <= v <= hi):
            raise UsageError(f"{name} must be in [{lo:g}, {hi:g}], got {v}")


@app.command("match")
@friendly
def match_cmd(
    model: Annotated[str, typer.Option(help="re-id engine: .onnx/.engine with sidecar, or an exported .onnx; "
                                            "'colorhist' = a colour-histogram baseline (RGB/RGB checks only)")],
    ir: Annotated[Optional[str], typer.Option("--ir", help="IR source: camN, index, --cameras name, video file, "
                                                           "image folder or rtsp/http URL (without --ir and "
                                                           "--rgb: every camera of --cameras, a site)")] = None,
    rgb: Annotated[Optional[str], typer.Option("--rgb", help="RGB source (same forms as --ir)")] = None,
    cameras: Annotated[Optional[Path], typer.Option(help="cameras YAML: name -> source (+ resolution, fps, modality, "
                                                         "boxes); alone (no --ir/--rgb): run all its cameras")] = None,
    same_threshold: Annotated[Optional[float], typer.Option(help="site: cosine a same-modality match (RGB-RGB, IR-IR) "
                                                                 "needs (default: the engine's same-modality "
                                                                 "operating point)")] = None,
    step_fps: Annotated[Optional[float], typer.Option(help="site: time steps per second (default: the fastest "
                                                           "camera's fps)")] = None,
    sync_tolerance: Annotated[Optional[float], typer.Option(help="site: seconds a frame may be off its step's time "
                                                                 "(default: half a step)")] = None,
    device: Annotated[Optional[str], typer.Option(help="engine device (default: the engine's)")] = None,
    detector: Annotated[str, typer.Option(help="both streams: 'auto' (the best measured on real footage: RGB "
                                               "ssdlite+mog2, IR knn); ssdlite (a CNN trained on real photographs, "
                                               "packaged), ssdlite+mog2 (its weaker boxes confirmed by the fixed "
                                               "camera's background model); mog2, knn, warm, mog2+warm, knn+warm "
                                               "(background models: fixed cameras, no training); hog (trained on "
                                               "real photographs); person-synth (trained on this project's "
                                               "synthetic scenes only: the demo's videos, not real cameras); or a "
                                               "YOLO-style .onnx")] = "auto",
    ir_detector: Annotated[Optional[str], typer.Option(help="IR stream detector (overrides --detector)")] = None,
    rgb_detector: Annotated[Optional[str], typer.Option(help="RGB stream detector (overrides --detector)")] = None,
    detector_layout: Annotated[str, typer.Option(help="ONNX detector output: auto, v8, v5 or e2e")] = "auto",
    detector_size: Annotated[str, typer.Option(help="ONNX detector input HEIGHTxWIDTH if dynamic")] = "640x640",
    detector_conf: Annotated[float, typer.Option(help="ONNX detector score threshold")] = 0.35,
    hog_upscale: Annotated[float, typer.Option(help="HOG: resize frames by this before detecting "
                                                    "(2 finds ~50 px people, 4x slower)")] = 1.0,
    hog_threshold: Annotated[float, typer.Option(help="HOG: SVM margin a window needs")] = 0.0,
    ir_boxes: Annotated[Optional[Path], typer.Option(help="MOT box file for the IR stream "
                                                          "(replaces the detector)")] = None,
    rgb_boxes: Annotated[Optional[Path], typer.Option(help="MOT box file for the RGB stream")] = None,
    retrack: Annotated[bool, typer.Option(help="ignore track ids in box files; link boxes with our tracker")] = False,
    min_box_score: Annotated[Optional[float], typer.Option(help="drop box-file rows with a lower score")] = None,
    threshold: Annotated[Optional[float], typer.Option(help="cosine similarity a cross-modal match needs "
                                                            "(default: the engine's operating point from "
                                                            "`calibrate-threshold`, else 0.5)")] = None,
    margin: Annotated[Optional[float], typer.Option(help="a match must also beat every other similarity of its IR "
                                                         "track and of its RGB track by this much (0 = off; default: "
                                                         "the engine's operating point, else 0)")] = None,
    hysteresis: Annotated[int, typer.Option(help="frames a match must hold before it is reported / fail "
                                                 "before it is dropped")] = 5,
    fast_pairing: Annotated[bool, typer.Option(help="report a pair after one frame when its similarity reaches the "
                                                    "engine's calibrated fast point (pair precision 0.99 on 3-crop "
                                                    "tracks; engines without one always wait --hysteresis), and pair a "
                                                    "new track at its first crop at the early point (the same on "
                                                    "1-crop tracks), if the engine has one")] = True,
    report_coast: Annotated[Optional[int], typer.Option(help="keep reporting a held pair for up to this many frames "
                                                             "in which the detector missed one of its people, with "
                                                             "the tracker's predicted box (default: 1; 0 = off)")] = None,
    embed_every: Annotated[int, typer.Option(help="embed each tracked person every N frames")] = 1,
    max_occlusion: Annotated[float, typer.Option(help="skip crops covered more than this by another box")] = 0.3,
    track_appearance: Annotated[float, typer.Option(help="weight of re-id appearance where the tracker's IoU is "
                                                         "ambiguous (people crossing); 0 = IoU only")] = 1.0,
    track_split: Annotated[float, typer.Option(help="give a track a new id when 3 crops in a row agree with its "
                                                    "feature bank this many standard deviations below its usual "
                                                    "agreement (the tracker followed someone else); 0 = never")] = 4.0,
    events: Annotated[Optional[Path], typer.Option(help="write JSONL match events here")] = None,
    save: Annotated[Optional[Path], typer.Option(help="write the annotated side-by-side video here (.mp4)")] = None,
    show: Annotated[bool, typer.Option(help="show the annotated video in a window (needs GUI OpenCV)")] = False,
    max_frames: Annotated[Optional[int], typer.Option(help="stop after this many frame pairs")] = None,
    duration: Annotated[Optional[float], typer.Option(help="stop after this many seconds")] = None,
    realtime: Annotated[bool, typer.Option(help="files: play at their fps and drop frames when behind, "
                                                "like a live camera")] = False,
    queue_size: Annotated[int, typer.Option(help="frames buffered per source")] = 8,
    open_timeout: Annotated[float, typer.Option(help="seconds to keep trying to open a live source")] = 10.0,
    max_offline: Annotated[float, typer.Option(help="seconds a live source may stay lost before the run "
                                                    "fails (reconnecting with backoff meanwhile)")] = 30.0,
    profile: Annotated[bool, typer.Option(help="show per-stage timings live")] = False,
    status: Annotated[bool, typer.Option(help="live status line")] = True,
    summary_json: Annotated[Optional[Path], typer.Option("--summary-json", help="write the run summary here")] = None,
    webhook: Annotated[Optional[list[str]], typer.Option(help="also POST every event as JSON to this http(s) URL "
                                                              "(repeatable; retried, bounded queue)")] = None,
    mqtt: Annotated[Optional[list[str]], typer.Option(help="also publish every event to mqtt://host[:port]/topic "
                                                           "(QoS 1; repeatable; needs mvd-edge[site])")] = None,
    sink_queue: Annotated[int, typer.Option(help="events a network sink holds while its receiver is away")] = 10_000,
    metrics_port: Annotated[Optional[int], typer.Option(help="serve Prometheus metrics on 127.0.0.1:PORT/metrics "
                                                             "(needs mvd-edge[site])")] = None,
    save_crops: Annotated[Optional[Path], typer.Option(help="keep crops of matched people here, "
                                                            "DIR/<modality>/<global id>/..., for `mvd-edge gallery "
                                                            "build DIR`")] = None,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Match people across an IR and an RGB stream (detect, track, embed, associate)."""
    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.match.detect import make_detector
    from mvd_edge.match.pipeline import run_match
    from mvd_edge.match.sources import SourceError, load_cameras, parse_source
    from mvd_edge.runtime import load_embedder

    _check_bounds({"--threshold": (threshold, -1.0, 1.0), "--margin": (margin, 0.0, 2.0),
                   "--detector-conf": (detector_conf, 0.0, 1.0), "--max-occlusion": (max_occlusion, 1e-9, 1.0),
                   "--min-box-score": (min_box_score, 0.0, 1.0), "--hog-upscale": (hog_upscale, 1e-9, 8.0),
                   "--hog-threshold": (hog_threshold, -100.0, 100.0),
                   "--hysteresis": (hysteresis, 1, 10_000), "--embed-every": (embed_every, 1, 10_000),
                   "--queue-size": (queue_size, 1, 10_000), "--open-timeout": (open_timeout, 0.0, 1e6),
                   "--max-offline": (max_offline, 0.0, 1e6), "--sink-queue": (sink_queue, 1, 10_000_000),
                   "--metrics-port": (metrics_port, 0, 65535), "--same-threshold": (same_threshold, -1.0, 1.0),
                   "--step-fps": (step_fps, 1e-3, 1000.0), "--sync-tolerance": (sync_tolerance, 0.0, 60.0),
                   "--track-appearance": (track_appearance, 0.0, 100.0), "--track-split": (track_split, 0.0, 100.0),
                   "--report-coast": (report_coast, 0, 100_000)})
    from mvd_edge.match.sinks import MqttSink, WebhookSink

    for url in webhook or []:
        WebhookSink.check_url(url)
    for url in mqtt or []:
        MqttSink.parse_url(url)
    if ir is None and rgb is None:
        if cameras is None:
            raise UsageError("give --ir and --rgb (two cameras), or --cameras FILE alone (every camera of a site)")
        for flag, value in (("--show", show or None), ("--ir-boxes", ir_boxes),
                            ("--rgb-boxes", rgb_boxes), ("--ir-detector", ir_detector), ("--rgb-detector", rgb_detector)):
            if value is not None:
                raise UsageError(f"{flag} is for two-camera runs; a site takes boxes per camera from the cameras file "
                                 "('boxes:') and --detector for all")
        check_outputs({"--events": events, "--summary-json": summary_json, "--save": save, "--save-crops": save_crops},
                      {"--cameras": cameras, "--model": None if model == "colorhist" else model,
                       "--detector": detector if Path(detector).suffix == ".onnx" else None,
                       **{f"camera {n}": sp.target for n, sp in load_cameras(cameras).items() if sp.kind == "file"}},
                      overwrite)
        _run_site(cameras, model, device=device, detector=detector, threshold=threshold, margin=margin,
                  same_threshold=same_threshold, hysteresis=hysteresis, embed_every=embed_every,
                  max_occlusion=max_occlusion, tracking=dict(track_appearance=track_appearance, track_split=track_split),
                  events=events, save=save, save_crops=save_crops,
                  summary_json=summary_json, status=status,
                  max_frames=max_frames,
                  duration=duration, realtime=realtime, queue_size=queue_size, open_timeout=open_timeout,
                  max_offline=max_offline, step_fps=step_fps, sync_tolerance=sync_tolerance, webhook=webhook,
                  mqtt=mqtt, sink_queue=sink_queue, metrics_port=metrics_port, retrack=retrack,
                  min_box_score=min_box_score, detector_kw=dict(hog_upscale=hog_upscale, hog_threshold=hog_threshold,
                                                               onnx_layout=detector_layout,
                                                               onnx_size=parse_size(detector_size, "--detector-size"),
                                                               onnx_conf=detector_conf))
        return
    if ir is None or rgb is None:
        raise UsageError("give both --ir and --rgb (or neither, with --cameras, for a site)")
    check_outputs({"--events": events, "--save": save, "--summary-json": summary_json, "--save-crops": save_crops},
                  {"--ir source": ir, "--rgb source": rgb, "--model": None if model == "colorhist" else model,
                   "--ir-boxes": ir_boxes, "--rgb-boxes": rgb_boxes, "--cameras": cameras,
                   **{flag: d for flag, d in (("--detector", detector), ("--ir-detector", ir_detector),
                                              ("--rgb-detector", rgb_detector)) if d and Path(d).suffix == ".onnx"}},
                  overwrite)
    cams = load_cameras(cameras) if cameras is not None else None
    specs = {"ir": parse_source(ir, cams), "rgb": parse_source(rgb, cams)}  # fail early on bad sources
    dsize = parse_size(detector_size, "--detector-size")
    chosen = {"ir": ir_detector or detector, "rgb": rgb_detector or detector}
    detectors = {s: make_detector(b, chosen[s], modality=s, retrack=retrack, min_score=min_box_score,
                                  hog_upscale=hog_upscale, hog_threshold=hog_threshold, onnx_layout=detector_layout,
                                  onnx_size=dsize, onnx_conf=detector_conf)
                 for s, b in (("ir", ir_boxes), ("rgb", rgb_boxes))}
    if model == "colorhist":
        from mvd_edge.match.baselines import ColorHistogramEmbedder

        embedder = ColorHistogramEmbedder()
    else:
        embedder = load_embedder(model, device=device)
    given = {k: v for k, v in (("association.threshold", threshold), ("association.margin", margin),
                               ("association.report_coast", report_coast)) if v is not None}
    op = resolve(MatcherConfig().updated(
        {**given, "association.fast_pairing": fast_pairing, "association.hysteresis": hysteresis,
         "crop.embed_every": embed_every, "crop.max_occlusion": max_occlusion, "track.appearance": track_appearance,
         "track.split": track_split}), getattr(embedder, "info", None))
    for w in op.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    config = op.config
    err_console.print(f"threshold {config.association.threshold:.3f}, margin {config.association.margin:.3f} "
                      f"({op.source})", highlight=False)
    err_console.print(f"model {model} ({embedder.backend}, {embedder.precision}, {embedder.dim}-d); detectors: "
                      f"ir {detectors['ir'].name}, rgb {detectors['rgb'].name}; "
                      f"sources: ir {specs['ir'].label}, rgb {specs['rgb'].label}", highlight=False)
    from mvd_edge.core.signals import sigterm_as_interrupt
    from mvd_edge.match.sinks import CropSaver

    sinks, metrics = _network_outputs(webhook, mqtt, sink_queue, metrics_port)
    try:
        with sigterm_as_interrupt():  # docker stop / systemd: close the video and the events like Ctrl-C
            summary = run_match(specs["ir"], specs["rgb"], embedder, detectors, config=config, events=events,
                                save=save, show=show, max_frames=max_frames, duration=duration, realtime=realtime,
                                queue_size=queue_size, open_timeout=open_timeout, max_offline=max_offline,
                                status=status, profile=profile, console=err_console, sinks=sinks, metrics=metrics,
                                crops=CropSaver(save_crops) if save_crops is not None else None)
    except SourceError as exc:
        if getattr(exc, "summary", None):
            _print_summary(console, exc.summary)
        raise
    finally:
        if metrics is not None:
            metrics.close()
    _print_summary(console, summary)
    for s, det in detectors.items():
        if getattr(det, "frames_asked", 0) and not det.frames_hit:
            err_console.print(f"[yellow]warning:[/] the {s} boxes file {det.path} has no boxes for any of the "
                              f"{det.frames_asked} frames processed (its frames: {min(det.frames) + 1}-"
                              f"{max(det.frames) + 1}, 1-based): is it the box file of another video?", highlight=False)
    summary["threshold_source"] = op.source
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        write_json(summary_json, summary, indent=1)  # atomic: a full disk leaves no half-written summary
    if summary["ended"].startswith(("terminated", "interrupted")):  # finished cleanly, but not done: say so
        raise typer.Exit(143 if summary["ended"].startswith("terminated") else 130)


def _run_with_status(runner, max_steps, duration) -> dict:
    """:meth:`SiteRunner.run` with a live status line (steps, rate, frames per camera, people)."""
    import time

    from rich.live import Live

    t0, last = time.monotonic(), [0.0]
    with Live(console=err_console, auto_refresh=False, transient=True) as live:
        def show(r) -> None:
            now = time.monotonic()
            if now - last[0] < 0.25:
                return
            last[0] = now
            used = ", ".join(f"{n} {r.sync.used[n]}" for n in r.sources)
            live.update(f"step {r.steps}  {r.steps / max(now - t0, 1e-9):.1f} steps/s  frames: {used}  "
                        f"people {r.matcher.identities}", refresh=True)

        return runner.run(max_steps=max_steps, duration=duration, on_step=show)


def _network_outputs(webhook, mqtt, sink_queue: int, metrics_port: int | None):
    """The ``--webhook`` / ``--mqtt`` sinks and the ``--metrics-port`` server (URLs checked earlier)."""
    from mvd_edge.match.sinks import MatchMetrics, MqttSink, WebhookSink

    sinks = [*(WebhookSink(u, max_queue=sink_queue) for u in webhook or []),
             *(MqttSink(u, max_queue=sink_queue) for u in mqtt or [])]
    metrics = MatchMetrics(metrics_port) if metrics_port is not None else None
    if metrics is not None:
        err_console.print(f"metrics: http://127.0.0.1:{metrics.port}/metrics", highlight=False)
    return sinks, metrics


def _run_site(cameras: Path, model: str, *, device, detector, threshold, margin, same_threshold, hysteresis,
              embed_every, max_occlusion, tracking, events, save, save_crops, summary_json, status, max_frames,
              duration, realtime, queue_size,
              open_timeout, max_offline, step_fps, sync_tolerance, webhook, mqtt, sink_queue, metrics_port, retrack,
              min_box_score, detector_kw) -> None:
    """``match --cameras site.yaml``: every camera of the file, paired by time (mvd_edge.match.site)."""
    from mvd_edge.core.modality import Modality
    from mvd_edge.core.signals import sigterm_as_interrupt
    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.match.detect import make_detector
    from mvd_edge.match.sinks import CropSaver
    from mvd_edge.match.site import SiteCamera, SiteRunner
    from mvd_edge.match.sources import load_cameras
    from mvd_edge.runtime import load_embedder

    specs = load_cameras(cameras)
    missing = [n for n, sp in specs.items() if sp.modality is None]
    if missing:
        raise UsageError(f"{cameras}: camera(s) {', '.join(missing)} have no 'modality: rgb|ir'; a site needs it for "
                         "every camera")
    cams = [SiteCamera(n, Modality.parse(sp.modality), sp) for n, sp in specs.items()]
    detectors = {c.name: make_detector(c.spec.boxes, detector, modality=c.modality.short, retrack=retrack,
                                       min_score=min_box_score, **detector_kw) for c in cams}
    if model == "colorhist":
        from mvd_edge.match.baselines import ColorHistogramEmbedder

        embedder = ColorHistogramEmbedder()
    else:
        embedder = load_embedder(model, device=device)
    given = {k: v for k, v in (("association.threshold", threshold), ("association.margin", margin),
                               ("site.same_threshold", same_threshold)) if v is not None}
    op = resolve(MatcherConfig().updated(
        {**given, "association.hysteresis": hysteresis, "crop.embed_every": embed_every,
         "crop.max_occlusion": max_occlusion, **{f"track.{k.removeprefix('track_')}": v for k, v in tracking.items()}}),
        getattr(embedder, "info", None), site=True)
    for w in op.warnings:
        err_console.print(f"[yellow]warning:[/] {w}", highlight=False)
    config = op.config
    a = config.association
    err_console.print(f"cross-modal threshold {a.threshold:.3f}, same-modality {config.site.same_threshold:.3f}, "
                      f"margin {a.margin:.3f} ({op.source})", highlight=False)
    err_console.print(f"site of {len(cams)} cameras: " + ", ".join(
        f"{c.name} ({c.modality.short}, {detectors[c.name].name})" for c in cams), highlight=False)
    sinks, metrics = _network_outputs(webhook, mqtt, sink_queue, metrics_port)
    runner = SiteRunner(cams, embedder, detectors, config=config, events=events, sinks=sinks, metrics=metrics,
                        step_fps=step_fps, tolerance=sync_tolerance, queue_size=queue_size,
                        open_timeout=open_timeout, max_offline=max_offline, realtime=realtime, save=save,
                        crops=CropSaver(save_crops) if save_crops is not None else None)
    try:
        with sigterm_as_interrupt():
            summary = _run_with_status(runner, max_frames, duration) if status else \
                runner.run(max_steps=max_frames, duration=duration)
    finally:
        if metrics is not None:
            metrics.close()
    summary["thresholds"] = {"threshold": a.threshold, "margin": a.margin, "same_threshold": config.site.same_threshold,
                             "source": op.source, "warnings": op.warnings}
    table = Table(title=f"{summary['steps']} time steps in {summary['seconds']:.1f} s ({summary['steps_per_s']:.1f} "
                        f"steps/s); {summary['global_ids']} people; ended: {summary['ended']}",
                  title_justify="left", show_edge=False)
    for col in ("camera", "modality", "fps", "frames used", "late", "dropped", "corrupt", "tracks", "error"):
        table.add_column(col, justify="left" if col in ("camera", "modality", "error") else "right")
    for n, v in summary["cameras"].items():
        table.add_row(n, v["modality"], f"{v['fps']:.1f}", str(v["frames_used"]), str(v["late"]), str(v["dropped"]),
                      str(v["corrupt"]), str(summary["tracks"][n]), v["error"] or "")
    console.print(table)
    console.print("stages (mean ms per step): " + ", ".join(f"{k} {v:.1f}" for k, v in summary["stage_ms"].items()),
                  highlight=False)
    console.print(f"events: {summary['events']}" + (f" -> {events}" if events else ""), highlight=False)
    if summary.get("video"):
        console.print(f"video: {summary['video']}", highlight=False)
    for sk in summary.get("sinks", []):
        console.print(f"{sk['sink']}: {sk['delivered']} of {sk['queued']} events delivered, {sk['dropped']} lost",
                      highlight=False)
    if summary_json is not None:
        summary_json.parent.mkdir(parents=True, exist_ok=True)
        write_json(summary_json, summary, indent=1, default=str)
    errors = [f"{n}: {v['error']}" for n, v in summary["cameras"].items() if v["error"]]
    if summary["ended"].startswith(("terminated", "interrupted")):
        raise typer.Exit(143 if summary["ended"].startswith("terminated") else 130)
    if errors and len(errors) == len(summary["cameras"]):
        raise UsageError("every camera failed: " + "; ".join(errors))


@app.command("synth-video")
@friendly
def synth_video_cmd(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/synth-video"),
    ids: Annotated[int, typer.Option(help="number of people")] = 6,
    seconds: Annotated[float, typer.Option(help="duration")] = 20.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    fps: Annotated[float, typer.Option(help="frame rate")] = 15.0,
    size: Annotated[str, typer.Option(help="frame HEIGHTxWIDTH")] = "360x640",
    mot: Annotated[bool, typer.Option(help="also write MOT box files (for match --ir-boxes/--rgb-boxes)")] = True,
    ir_modality: Annotated[str, typer.Option(help="'ir' (thermal-like) or 'rgb' (render the IR view in colour, "
                                                  "to check the matcher with --model colorhist)")] = "ir",
    shake: Annotated[float, typer.Option(help="camera shake, pixels (0 = a fixed camera)")] = 0.0,
    illumination: Annotated[float, typer.Option(help="RGB day/night: light falls to 1 - this over the clip, "
                                                     "with a light switch at 60 %")] = 0.0,
    thermal_drift: Annotated[float, typer.Option(help="IR drift: offset drifts up to this many grey levels, "
                                                      "gain this many %, flat-field jumps every 8 s")] = 0.0,
    site: Annotated[bool, typer.Option(help="render a multi-camera site instead of a pair: --rgb-cameras RGB and "
                                            "--ir-cameras IR cameras at --locations places, people walking between "
                                            "them (site.yaml, site-boxes.yaml, gt.json)")] = False,
    rgb_cameras: Annotated[int, typer.Option(help="site: RGB cameras")] = 2,
    ir_cameras: Annotated[int, typer.Option(help="site: IR cameras")] = 2,
    locations: Annotated[int, typer.Option(help="site: places (co-located cameras see the same people)")] = 2,
    camera_fps: Annotated[Optional[list[str]], typer.Option(help="site: NAME=FPS for a camera at another rate "
                                                                 "(repeatable, e.g. ir1=7.5)")] = None,
    overwrite: Annotated[bool, typer.Option(help="write into a folder that is not empty (replacing a pair there)")
                         ] = False,
) -> None:
    """Render a synthetic IR/RGB video pair of the same people walking, with ground truth (or a site: --site)."""
    from mvd_edge.synth.video import write_synth_video

    refuse_existing({"--out": out}, overwrite)
    _check_bounds({"--fps": (fps, 0.1, 1000.0), "--seconds": (seconds, 0.01, 86_400.0), "--ids": (ids, 1, 10_000)})
    if site:
        from mvd_edge.synth.site import write_synth_site

        rates: dict[str, float] = {}
        for item in camera_fps or []:
            name, _, value = item.partition("=")
            try:
                rates[name.strip()] = float(value)
            except ValueError:
                raise UsageError(f"--camera-fps takes NAME=FPS, got {item!r}") from None
        h, w = parse_size(size)
        gt = write_synth_site(out, rgb_cameras=rgb_cameras, ir_cameras=ir_cameras, locations=locations, n_ids=ids,
                              seconds=seconds, fps={**{c: fps for c in _site_names(rgb_cameras, ir_cameras)}, **rates},
                              size=(h, w), seed=seed, progress=True, overwrite=overwrite)
        cams = ", ".join(f"{n} ({c['modality']}, place {c['location']}, {c['fps']:g} fps)" for n, c in gt["cameras"].items())
        console.print(f"[green]wrote[/] a site of {len(gt['cameras'])} cameras: {cams}; {gt['n_ids']} people; "
                      f"{out / 'site.yaml'} (detectors), {out / 'site-boxes.yaml'} (ground-truth boxes), "
                      f"{out / 'gt.json'}", highlight=False)
        return

    h, w = parse_size(size)
    s = write_synth_video(out, n_ids=ids, seconds=seconds, seed=seed, fps=fps, size=(h, w), mot=mot, progress=True,
                          ir_modality=ir_modality, shake=shake, illumination=illumination,
                          thermal_drift=thermal_drift)
    console.print(f"[green]wrote[/] {s['frames']} frames at {s['fps']:g} fps ({w}x{h}): "
                  f"{s['videos']['ir']}, {s['videos']['rgb']}, ground truth {s['gt']}")
    if s["mot"]:
        console.print(f"MOT boxes: {s['mot']['ir']}, {s['mot']['rgb']}")
    if s["look_alikes"]:
        pairs = ", ".join(f"{a} & {b}" for a, b in s["look_alikes"])
        console.print(f"[yellow]look-alikes:[/] people {pairs} share every trait that shows in both modalities "
                      "(hair, pattern, sleeves, coat, lower garment, accessory; similar stripes and lengths): "
                      "a cross-modal matcher may confuse them")


def _site_names(rgb: int, ir: int) -> list[str]:
    from mvd_edge.synth.site import camera_names

    return camera_names(rgb, ir)


@app.command("train-detector")
@friendly
def train_detector_cmd(
    out: Annotated[Path, typer.Option(help="output folder: detector.onnx, detector.pt, report.json")] = Path(
        "runs/detector"),
    synth: Annotated[Optional[list[Path]], typer.Option(help="a synth-video folder (both streams and their MOT boxes; "
                                                             "repeatable)")] = None,
    video: Annotated[Optional[list[Path]], typer.Option(help="a video of one camera (repeatable, each with --boxes)")
                     ] = None,
    boxes: Annotated[Optional[list[Path]], typer.Option(help="the MOT box file of the --video at the same position")
                     ] = None,
    layout: Annotated[str, typer.Option(help="ONNX output layout: v8, v5 or e2e (see `match --detector-layout`)")
                      ] = "v8",
    steps: Annotated[int, typer.Option(help="training steps")] = 1500,
    batch: Annotated[int, typer.Option(help="frames per step")] = 16,
    size: Annotated[str, typer.Option(help="network input HEIGHTxWIDTH (multiples of 16; frames are letterboxed)")
                    ] = "192x320",
    every: Annotated[int, typer.Option(help="use every N-th frame")] = 2,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    init: Annotated[Optional[str], typer.Option(help="fine-tune: start from a detector.pt of an earlier run, or "
                                                     "'person-synth' (the packaged detector)")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing detector in --out")] = False,
) -> None:
    """Train a small person detector on frames with MOT boxes and export it to ONNX for `match --detector`.

    Without --synth and --video, it renders six synthetic IR/RGB pairs (seeds 100-105) into OUT/videos
    and trains on those: a detector for the synthetic scenes, not for your cameras. For your cameras:
    --video/--boxes pairs, and --init person-synth to fine-tune the packaged detector.
    """
    from mvd_edge.core.errors import UsageError, require

    torch = require("torch", "train")
    from mvd_edge.synth.video import write_synth_video
    from mvd_edge.train.detector import (
        LAYOUTS,
        DetectorTrainConfig,
        export_detector,
        load_detector,
        load_frames,
        train_detector,
        write_report,
    )

    h, w = parse_size(size)
    if layout not in LAYOUTS:
        raise UsageError(f"--layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if steps < 1 or batch < 1:
        raise UsageError(f"--steps and --batch must be >= 1, got {steps} and {batch}")
    if h % 16 or w % 16:
        raise UsageError(f"--size must be multiples of 16, got {h}x{w}")
    video, boxes, synth = list(video or []), list(boxes or []), list(synth or [])
    if len(video) != len(boxes):
        raise UsageError(f"give one --boxes per --video ({len(video)} videos, {len(boxes)} box files)")
    if every < 1:
        raise UsageError(f"--every must be >= 1, got {every}")
    onnx_path = out / "detector.onnx"
    refuse_overwriting_inputs({"--out's detector.onnx": onnx_path, "--out's detector.pt": out / "detector.pt"},
                              {"--init weights": None if init in (None, "person-synth") else init,
                               **{f"--video {v}": v for v in video or []}, **{f"--boxes {b}": b for b in boxes or []}})
    if onnx_path.exists() and not overwrite:
        raise UsageError(f"{onnx_path} exists: pass --overwrite to replace it, or another --out")
    net0 = None
    if init is not None:  # checked before any rendering or frame loading
        from mvd_edge.match.detect import PERSON_SYNTH

        net0 = load_detector(PERSON_SYNTH.with_suffix(".pt") if init == "person-synth" else Path(init))
    if not video and not synth:
        for s in range(100, 106):
            d = out / "videos" / f"seed{s}"
            if not (d / "gt.json").is_file():
                err_console.print(f"rendering synthetic training pair seed {s} into {d}", highlight=False)
                write_synth_video(d, seed=s)
            synth.append(d)
    pairs = list(zip(video, boxes))
    for d in synth:
        from mvd_edge.eval.scoring import load_ground_truth

        gt = load_ground_truth(d)
        for st in ("ir", "rgb"):
            if not gt["streams"][st].get("mot"):
                raise UsageError(f"{d}: no MOT file for the {st} stream (render it with `synth-video --mot`)")
            pairs.append((d / gt["streams"][st]["video"], d / gt["streams"][st]["mot"]))
    data = [load_frames(v, b, (h, w), every=every) for v, b in pairs]
    err_console.print(f"{sum(len(f) for f in data)} frames from {len(pairs)} videos", highlight=False)
    cfg = DetectorTrainConfig(size=(h, w), steps=steps, batch=batch, seed=seed)
    net, report = train_detector(data, cfg, progress=True, log=lambda m: err_console.print(m, highlight=False),
                                 init=net0)
    report["init"] = init
    out.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out / "detector.pt")
    export_detector(net, onnx_path, (h, w), layout)
    report.update(layout=layout, onnx=str(onnx_path), videos=[[str(v), str(b)] for v, b in pairs])
    write_report(out / "report.json", report)
    b = report["best"]
    console.print(f"[green]wrote[/] {onnx_path} ({layout}); validation box precision {b['precision']:.3f}, "
                  f"recall {b['recall']:.3f} at step {b['step']} (last {cfg.val_fraction:.0%} of each video)",
                  highlight=False)
    console.print(f"use it: mvd-edge match --ir ... --rgb ... --model ... --detector {onnx_path}", highlight=False)


@app.command("score-matches")
@friendly
def score_matches_cmd(
    events: Annotated[Path, typer.Argument(help="JSONL events from `mvd-edge match --events`")],
    gt: Annotated[Path, typer.Argument(help="gt.json from `mvd-edge synth-video` (or its folder)")],
    iou: Annotated[float, typer.Option(help="IoU a reported box needs with a ground-truth box")] = 0.5,
    min_visibility: Annotated[float, typer.Option(help="visibility a person needs to count for recall")] = 0.5,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write the scores as JSON here")] = None,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Pair precision/recall and IDF1 of global identities against synthetic ground truth (pairs or sites)."""
    from mvd_edge.eval.scoring import score_matches

    check_outputs({"--json": json_out}, {"events file": events, "ground truth": gt}, overwrite)
    if _is_site_ground_truth(gt):
        from mvd_edge.eval.site_scoring import format_site_table, score_site

        r = score_site(events, gt, iou=iou, min_visibility=min_visibility)
        for name, title in (("pairs", "camera pairs"), ("cameras", "cameras")):
            rows = format_site_table(r, name)
            table = Table(title=f"{title}: {events} vs {gt}", title_justify="left")
            for col in rows[0]:
                table.add_column(col, justify="right")
            for row in rows[1:]:
                table.add_row(*row)
            console.print(table)
        console.print(f"global IDF1 {r['idf1']}, IDP {r['idp']}, IDR {r['idr']}", highlight=False)
        if json_out is not None:
            json_out.parent.mkdir(parents=True, exist_ok=True)
            write_json(json_out, r, indent=1, default=str)
            console.print(f"wrote {json_out}")
        return
    r = score_matches(events, gt, iou=iou, min_visibility=min_visibility)
    table = Table(title=f"{events} vs {gt}", title_justify="left")
    for col in ("pair precision", "pair recall", "IDF1", "IDP", "IDR", "reported", "opportunities", "global ids"):
        table.add_column(col, justify="right")
    table.add_row(f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['idf1']:.3f}", f"{r['idp']:.3f}",
                  f"{r['idr']:.3f}", str(r["reported_pairs"]), str(r["opportunities"]), str(r["global_ids"]))
    console.print(table)
    per = ", ".join(f"{pid}: {v['recall']:.2f} (gids {v['global_ids']})" for pid, v in r["per_identity"].items())
    console.print(f"recall per identity: {per}", highlight=False)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_out, r, indent=1)
        console.print(f"wrote {json_out}")


def _is_site_ground_truth(gt: Path) -> bool:
    """A site's gt.json (``mvd-edge-site-gt/1``) rather than a video pair's."""
    from mvd_edge.synth.site import SITE_GT_FORMAT

    p = gt / "gt.json" if gt.is_dir() else gt
    if not p.is_file():
        return False
    with p.open() as f:
        head = f.read(4096)
    return SITE_GT_FORMAT in head
