"""Camera-matcher commands: ``match``, ``synth-video``, ``train-detector`` and ``score-matches``.

torch-free; OpenCV, scipy, onnxruntime and the matcher pipeline are imported inside the
commands, so ``--help`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperCommand

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


def _check_bounds(values: dict[str, tuple]) -> None:
    """One-line errors for numeric options outside their range (``None`` = not given)."""
    import math

    for name, (v, lo, hi) in values.items():
        if v is not None and not (math.isfinite(v) and lo <= v <= hi):
            raise UsageError(f"{name} must be in [{lo:g}, {hi:g}], got {v}")


#: options of the old ``match`` command line that are config keys now (``--set KEY=VALUE``)
MOVED_OPTIONS = {
    "--threshold": "association.threshold", "--margin": "association.margin",
    "--hysteresis": "association.hysteresis", "--report-coast": "association.report_coast",
    "--embed-every": "crop.embed_every", "--max-occlusion": "crop.max_occlusion",
    "--track-appearance": "track.appearance", "--track-split": "track.split",
    "--same-threshold": "site.same_threshold", "--step-fps": "site.step_fps", "--sync-tolerance": "site.sync_tolerance",
    "--device": "device", "--detector": "detector.name", "--ir-detector": "detector.ir",
    "--rgb-detector": "detector.rgb",
    "--detector-layout": "detector.layout", "--detector-size": "detector.size", "--detector-conf": "detector.conf",
    "--hog-upscale": "detector.hog_upscale", "--hog-threshold": "detector.hog_threshold",
    "--ir-boxes": "detector.ir_boxes", "--rgb-boxes": "detector.rgb_boxes", "--min-box-score": "detector.min_box_score",
    "--queue-size": "sources.queue_size", "--open-timeout": "sources.open_timeout",
    "--max-offline": "sources.max_offline", "--save": "outputs.video", "--save-crops": "outputs.crops",
    "--summary-json": "outputs.summary_json", "--webhook": "outputs.webhook", "--mqtt": "outputs.mqtt",
    "--sink-queue": "outputs.sink_queue", "--metrics-port": "outputs.metrics_port",
}
#: on/off options of the old command line (``--X`` / ``--no-X``) that are config keys now
MOVED_SWITCHES = {"--retrack": "detector.retrack", "--fast-pairing": "association.fast_pairing",
                  "--realtime": "sources.realtime", "--profile": "outputs.profile"}


def moved_options(args: list[str]) -> str | None:
    """One line naming the new spelling of every old ``match`` option in ``args`` (None: there is none)."""
    notes = []
    for i, arg in enumerate(args):
        if arg == "--":
            break
        name, eq, value = arg.partition("=")
        switch = "--" + name.removeprefix("--no-") if name.startswith("--no-") else name
        if name in MOVED_OPTIONS:
            key = MOVED_OPTIONS[name]
            value = value if eq else args[i + 1] if i + 1 < len(args) else "VALUE"
            value = f"[{value}]" if key in ("outputs.webhook", "outputs.mqtt") else value
            notes.append(f"`{name}` is now `--set {key}={value}`")
        elif switch in MOVED_SWITCHES:
            notes.append(f"`{name}` is now `--set {MOVED_SWITCHES[switch]}={str(switch == name).lower()}`")
    return "; ".join(notes) + " (`mvd-edge match --print-config` lists every key)" if notes else None


class _MatchCommand(TyperCommand):
    """``match``, which answers an option of its old command line with its new spelling before parsing."""

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        moved = moved_options(args)
        if moved:
            err_console.print(f"[bold red]error:[/] {escape(moved)}", highlight=False, soft_wrap=True)
            ctx.exit(2)
        return super().parse_args(ctx, args)


@dataclass
class _Run:
    """The ``match`` options that are not matcher settings: what to read, where the events go, when to stop."""

    model: str
    ir: str | None
    rgb: str | None
    cameras: Path | None
    events: Path | None
    overwrite: bool
    show: bool
    status: bool
    max_frames: int | None
    duration: float | None


@app.command("match", cls=_MatchCommand)
@friendly
def match_cmd(
    model: Annotated[Optional[str], typer.Option(help="re-id engine: .onnx/.engine with sidecar, or an exported "
                                                      ".onnx; 'colorhist' = a colour-histogram baseline (RGB/RGB "
                                                      "checks only); default: the packaged reid-synth (synthetic "
                                                      "people only)")] = None,
    ir: Annotated[Optional[str], typer.Option("--ir", help="IR source: camN, index, --cameras name, video file, "
                                                           "image folder or rtsp/http URL (without --ir and "
                                                           "--rgb: every camera of --cameras, a site)")] = None,
    rgb: Annotated[Optional[str], typer.Option("--rgb", help="RGB source (same forms as --ir)")] = None,
    cameras: Annotated[Optional[Path], typer.Option(help="cameras YAML: name -> source (+ resolution, fps, modality, "
                                                         "boxes); alone (no --ir/--rgb): run all its cameras")] = None,
    config: Annotated[Optional[Path], typer.Option(help="matcher config YAML (the keys of --set, nested)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="KEY=VALUE for any matcher setting, e.g. "
                                                                    "association.threshold=0.6 or detector.name=hog "
                                                                    "(repeatable; --print-config lists them)")] = None,
    events: Annotated[Optional[Path], typer.Option(help="write JSONL match events here")] = None,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
    max_frames: Annotated[Optional[int], typer.Option("--max-frames", "--max-steps",
                                                      help="stop after this many steps (frame pairs)")] = None,
    duration: Annotated[Optional[float], typer.Option(help="stop after this many seconds")] = None,
    show: Annotated[bool, typer.Option(help="show the annotated video in a window (needs GUI OpenCV)")] = False,
    status: Annotated[bool, typer.Option(help="live status line")] = True,
    print_config: Annotated[bool, typer.Option("--print-config", help="print every setting, resolved against the "
                                                                      "engine's sidecar, with where it came from, "
                                                                      "and exit")] = False,
) -> None:
    """Match people across an IR and an RGB stream, or across every camera of a site (detect, track, embed,
    associate). Every other setting is a config key: in a YAML file (--config) or one by one (--set KEY=VALUE)."""
    from mvd_edge.match.config import load_matcher_config

    cfg = load_matcher_config(config, set_ or [])
    run = _Run(model or _packaged_model(), ir, rgb, cameras, events, overwrite, show, status, max_frames, duration)
    site = ir is None and rgb is None
    if print_config:
        _print_config(cfg, run.model, site=site and cameras is not None)
        return
    _check_urls(cfg.outputs)
    if site:
        if cameras is None:
            raise UsageError("give --ir and --rgb (two cameras), or --cameras FILE alone (every camera of a site)")
    elif ir is None or rgb is None:
        raise UsageError("give both --ir and --rgb (or neither, with --cameras, for a site)")
    _run(cfg, run, site)


def _packaged_model() -> str:
    """No ``--model``: the packaged re-id engine, said in one line (it knows synthetic people only)."""
    from mvd_edge.assets import REID_SYNTH_ENGINE, REID_SYNTH_NOTICE

    if not REID_SYNTH_ENGINE.is_file():
        raise UsageError(f"give --model: the packaged re-id model {REID_SYNTH_ENGINE} is missing from this install "
                         f"(reinstall mvd-edge)")
    err_console.print(REID_SYNTH_NOTICE, highlight=False, markup=False)
    return str(REID_SYNTH_ENGINE)


def _print_config(cfg, model: str, site: bool) -> None:
    """``match --print-config``: every key resolved against the engine's sidecar, with its source."""
    op = _resolved(cfg, _embedder(model, cfg.device), site)
    for line in op.config.describe():
        console.print(line, markup=False, highlight=False, soft_wrap=True)


def _embedder(model: str, device: str | None):
    if model == "colorhist":
        from mvd_edge.match.baselines import ColorHistogramEmbedder

        return ColorHistogramEmbedder()
    from mvd_edge.runtime import load_embedder

    return load_embedder(model, device=device)


def _resolved(cfg, embedder, site: bool):
    """:func:`~mvd_edge.match.config.resolve` against the embedder's sidecar, its warnings printed."""
    from mvd_edge.match.config import resolve

    op = resolve(cfg, getattr(embedder, "info", None), site=site)
    for w in op.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
    return op


def _check_urls(outputs) -> None:
    """The webhook and MQTT URLs, checked before anything is opened."""
    from mvd_edge.match.sinks import MqttSink, WebhookSink

    for url in outputs.webhook:
        WebhookSink.check_url(url)
    for url in outputs.mqtt:
        MqttSink.parse_url(url)


def _detector_options(d) -> dict:
    """``make_detector``'s keyword arguments from the ``detector`` section (boxes and names aside)."""
    return dict(retrack=d.retrack, min_score=d.min_box_score, hog_upscale=d.hog_upscale, hog_threshold=d.hog_threshold,
                onnx_layout=d.layout, onnx_size=parse_size(d.size, "detector.size"), onnx_conf=d.conf,
                ssdlite_tiles=d.tiles)


def _outputs(run: _Run, out) -> dict:
    return {"--events": run.events, "outputs.video": out.video, "outputs.summary_json": out.summary_json,
            "outputs.crops": out.crops}


def _pair_cameras(cfg, run: _Run) -> tuple[list, dict]:
    """The cameras ``ir`` and ``rgb`` of ``--ir`` / ``--rgb`` and their detectors, the outputs checked first."""
    from mvd_edge.core.modality import Modality
    from mvd_edge.match.detect import make_detector
    from mvd_edge.match.site import SiteCamera
    from mvd_edge.match.sources import load_cameras, parse_source

    d = cfg.detector
    chosen = {"ir": d.ir or d.name, "rgb": d.rgb or d.name}
    check_outputs(_outputs(run, cfg.outputs),
                  {"--ir source": run.ir, "--rgb source": run.rgb, "--cameras": run.cameras,
                   "--model": None if run.model == "colorhist" else run.model, "detector.ir_boxes": d.ir_boxes,
                   "detector.rgb_boxes": d.rgb_boxes,
                   **{f"detector.{s}": v for s, v in chosen.items() if Path(v).suffix == ".onnx"}}, run.overwrite)
    cams = load_cameras(run.cameras) if run.cameras is not None else None
    specs = {"ir": parse_source(run.ir, cams), "rgb": parse_source(run.rgb, cams)}  # fail early on bad sources
    detectors = {s: make_detector(b, chosen[s], modality=s, **_detector_options(d))
                 for s, b in (("ir", d.ir_boxes), ("rgb", d.rgb_boxes))}
    return [SiteCamera("ir", Modality.INFRARED, specs["ir"]), SiteCamera("rgb", Modality.VISIBLE, specs["rgb"])], \
        detectors


def _site_cameras(cfg, run: _Run) -> tuple[list, dict]:
    """The site's cameras from ``--cameras`` and their detectors, the outputs checked first."""
    from mvd_edge.core.modality import Modality
    from mvd_edge.match.detect import make_detector
    from mvd_edge.match.site import SiteCamera
    from mvd_edge.match.sources import load_cameras

    d = cfg.detector
    for what, value in (("--show", run.show or None), ("detector.ir_boxes", d.ir_boxes),
                        ("detector.rgb_boxes", d.rgb_boxes), ("detector.ir", d.ir), ("detector.rgb", d.rgb)):
        if value is not None:
            raise UsageError(f"{what} is for two-camera runs; a site takes boxes per camera from the cameras file "
                             "('boxes:') and detector.name for all")
    specs = load_cameras(run.cameras)
    check_outputs(_outputs(run, cfg.outputs),
                  {"--cameras": run.cameras, "--model": None if run.model == "colorhist" else run.model,
                   "detector.name": d.name if Path(d.name).suffix == ".onnx" else None,
                   **{f"camera {n}": sp.target for n, sp in specs.items() if sp.kind == "file"}}, run.overwrite)
    missing = [n for n, sp in specs.items() if sp.modality is None]
    if missing:
        raise UsageError(f"{run.cameras}: camera(s) {', '.join(missing)} have no 'modality: rgb|ir'; a site needs it "
                         "for every camera")
    cams = [SiteCamera(n, Modality.parse(sp.modality), sp) for n, sp in specs.items()]
    return cams, {c.name: make_detector(c.spec.boxes, d.name, modality=c.modality.short, **_detector_options(d))
                  for c in cams}


def _run(cfg, run: _Run, site: bool) -> None:
    """``match``: a pair (``--ir A --rgb B``, mvd_edge.match.associate) or a site (``--cameras FILE`` alone:
    every camera of the file, paired by time, mvd_edge.match.site) run to its end, its summary printed."""
    from mvd_edge.core.signals import sigterm_as_interrupt
    from mvd_edge.match.pipeline import pair_matcher
    from mvd_edge.match.runner import Runner
    from mvd_edge.match.sinks import CropSaver
    from mvd_edge.match.site import site_matcher
    from mvd_edge.match.sources import SourceError

    cams, detectors = (_site_cameras if site else _pair_cameras)(cfg, run)
    embedder = _embedder(run.model, cfg.device)
    op = _resolved(cfg, embedder, site=site)
    cfg, a, out = op.config, op.config.association, op.config.outputs
    same = f", same-modality {cfg.site.same_threshold:.3f}" if site else ""
    err_console.print(f"{'cross-modal ' if site else ''}threshold {a.threshold:.3f}{same}, margin {a.margin:.3f} "
                      f"({op.source})", highlight=False)
    if site:
        err_console.print(f"site of {len(cams)} cameras: " + ", ".join(
            f"{c.name} ({c.modality.short}, {detectors[c.name].name})" for c in cams), highlight=False)
    else:
        err_console.print(f"model {run.model} ({embedder.backend}, {embedder.precision}, {embedder.dim}-d); detectors: "
                          f"ir {detectors['ir'].name}, rgb {detectors['rgb'].name}; "
                          f"sources: ir {cams[0].spec.label}, rgb {cams[1].spec.label}", highlight=False)
    matcher = site_matcher(embedder, cams, detectors, cfg) if site else pair_matcher(embedder, detectors, cfg)
    sinks, metrics = _network_outputs(out)
    try:
        with sigterm_as_interrupt():  # docker stop / systemd: close the video and the events like Ctrl-C
            runner = Runner(matcher, {c.name: c.spec for c in cams}, events=run.events, sinks=sinks,
                            metrics=metrics, crops=CropSaver(out.crops) if out.crops is not None else None,
                            save=out.video, show=run.show, status=run.status, profile=out.profile, console=err_console)
            summary = runner.run(run.max_frames, run.duration)
    except SourceError as exc:
        if getattr(exc, "summary", None):
            _print_summary(exc.summary, run.events, site)
        raise
    finally:
        if metrics is not None:
            metrics.close()
    _print_summary(summary, run.events, site)
    for s, det in detectors.items():
        if getattr(det, "frames_asked", 0) and not det.frames_hit:
            err_console.print(f"[yellow]warning:[/] the {s} boxes file {det.path} has no boxes for any of the "
                              f"{det.frames_asked} frames processed (its frames: {min(det.frames) + 1}-"
                              f"{max(det.frames) + 1}, 1-based): is it the box file of another video?", highlight=False)
    if site:
        summary["thresholds"] = {"threshold": a.threshold, "margin": a.margin,
                                 "same_threshold": cfg.site.same_threshold, "source": op.source,
                                 "warnings": op.warnings}
    else:
        summary["threshold_source"] = op.source
    _finish(summary, out.summary_json)
    errors = [f"{n}: {v['error']}" for n, v in summary.get("cameras", {}).items() if v["error"]]
    if errors and len(errors) == len(summary["cameras"]):
        raise UsageError("every camera failed: " + "; ".join(errors))


def _finish(summary: dict, summary_json: str | None) -> None:
    """Write the summary (atomic: a full disk leaves no half-written one); a run that was stopped
    (SIGTERM, Ctrl-C) finished cleanly but not done: exit 143 / 130 to say so."""
    if summary_json is not None:
        Path(summary_json).parent.mkdir(parents=True, exist_ok=True)
        write_json(summary_json, summary, indent=1, default=str)
    if summary["ended"].startswith(("terminated", "interrupted")):
        raise typer.Exit(143 if summary["ended"].startswith("terminated") else 130)


def _network_outputs(out):
    """The ``outputs.webhook`` / ``outputs.mqtt`` sinks and the ``outputs.metrics_port`` server (URLs checked
    earlier)."""
    from mvd_edge.match.sinks import MatchMetrics, make_sink

    sinks = [make_sink(u, max_queue=out.sink_queue) for u in (*out.webhook, *out.mqtt)]
    metrics = MatchMetrics(out.metrics_port) if out.metrics_port is not None else None
    if metrics is not None:
        err_console.print(f"metrics: http://127.0.0.1:{metrics.port}/metrics", highlight=False)
    return sinks, metrics


def _print_summary(summary: dict, events: Path | None, site: bool) -> None:
    """The run's summary: its steps and stages, sources or cameras, then what each output wrote."""
    (_print_site_summary if site else _print_pair_summary)(summary, events)
    for sk in summary.get("sinks", []):
        line = f"{sk['sink']}: {sk['delivered']} of {sk['queued']} events delivered, {sk['retries']} retries"
        if sk["dropped"]:
            err_console.print(f"[yellow]warning:[/] {line}; {sk['dropped']} LOST (queue full or receiver away at the "
                              f"end; last error: {sk['last_error']})", highlight=False)
        else:
            console.print(line, highlight=False)
    if summary.get("video"):
        console.print(f"video: {summary['video']}", highlight=False)


def _print_pair_summary(summary: dict, events: Path | None) -> None:
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
    if events is not None:
        console.print(f"events: {events}")


def _print_site_summary(summary: dict, events: Path | None) -> None:
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


@app.command("synth-video")
@friendly
def synth_video_cmd(
    out: Annotated[Path, typer.Option(help="output folder")] = Path("runs/synth-video"),
    ids: Annotated[int, typer.Option(help="number of people")] = 6,
    seconds: Annotated[float, typer.Option(help="duration")] = 20.0,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    fps: Annotated[float, typer.Option(help="frame rate")] = 15.0,
    size: Annotated[str, typer.Option(help="frame HEIGHTxWIDTH")] = "360x640",
    mot: Annotated[bool, typer.Option(help="also write MOT box files (for match's detector.ir_boxes / rgb_boxes)")] = True,
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
        from mvd_edge.synth.site import camera_names, write_synth_site

        rates: dict[str, float] = {}
        for item in camera_fps or []:
            name, _, value = item.partition("=")
            try:
                rates[name.strip()] = float(value)
            except ValueError:
                raise UsageError(f"--camera-fps takes NAME=FPS, got {item!r}") from None
        h, w = parse_size(size)
        gt = write_synth_site(out, rgb_cameras=rgb_cameras, ir_cameras=ir_cameras, locations=locations, n_ids=ids,
                              seconds=seconds, fps={**{c: fps for c in camera_names(rgb_cameras, ir_cameras)}, **rates},
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
    layout: Annotated[str, typer.Option(help="ONNX output layout: v8, v5 or e2e (see match's detector.layout)")
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
    """Train a small person detector on frames with MOT boxes and export it to ONNX for `match --set detector.name=...`.

    Without --synth and --video, it renders six synthetic IR/RGB pairs (seeds 100-105) into OUT/videos
    and trains on those: a detector for the synthetic scenes, not for your cameras. For your cameras:
    --video/--boxes pairs, and --init person-synth to fine-tune the packaged detector.
    """
    from mvd_edge.core.errors import require

    torch = require("torch", "train")
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
    pairs = list(zip(video, boxes)) + _synth_training_pairs(out, synth, render=not video)
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
    console.print(f"use it: mvd-edge match --ir ... --rgb ... --model ... --set detector.name={onnx_path}", highlight=False)


def _synth_training_pairs(out: Path, synth: list[Path], render: bool) -> list[tuple[Path, Path]]:
    """``(video, MOT boxes)`` of both streams of each synth-video folder; with ``render`` and no folder,
    six synthetic pairs (seeds 100-105) rendered into OUT/videos first (kept for the next run)."""
    from mvd_edge.eval.scoring import load_ground_truth
    from mvd_edge.synth.video import write_synth_video

    if render and not synth:
        for s in range(100, 106):
            d = out / "videos" / f"seed{s}"
            if not (d / "gt.json").is_file():
                err_console.print(f"rendering synthetic training pair seed {s} into {d}", highlight=False)
                write_synth_video(d, seed=s)
            synth.append(d)
    pairs = []
    for d in synth:
        gt = load_ground_truth(d)
        for st in ("ir", "rgb"):
            if not gt["streams"][st].get("mot"):
                raise UsageError(f"{d}: no MOT file for the {st} stream (render it with `synth-video --mot`)")
            pairs.append((d / gt["streams"][st]["video"], d / gt["streams"][st]["mot"]))
    return pairs


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
    from mvd_edge.eval.scoring import score_events

    check_outputs({"--json": json_out}, {"events file": events, "ground truth": gt}, overwrite)
    kind, r = score_events(events, gt, iou=iou, min_visibility=min_visibility)
    if kind == "site":
        from mvd_edge.eval.site_scoring import format_site_table

        for name, title in (("pairs", "camera pairs"), ("cameras", "cameras")):
            rows = format_site_table(r, name)
            table = Table(title=f"{title}: {events} vs {gt}", title_justify="left")
            for col in rows[0]:
                table.add_column(col, justify="right")
            for row in rows[1:]:
                table.add_row(*row)
            console.print(table)
        console.print(f"global IDF1 {r['idf1']}, IDP {r['idp']}, IDR {r['idr']}", highlight=False)
    else:
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
        write_json(json_out, r, indent=1, default=str)
        console.print(f"wrote {json_out}")
