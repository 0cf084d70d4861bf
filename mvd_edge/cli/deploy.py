"""Deployment commands: ``export``, ``fp16``, ``int8``, ``build-engine``, ``verify``, ``calibrate-threshold``,
``profile``, ``bench``: options and tables here, the work in :mod:`mvd_edge.deploy` and :mod:`mvd_edge.quant`.

torch (export, bench), onnx (fp16, int8) and onnxruntime are imported inside the commands, so
``--help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from mvd_edge.cli._common import (
    OVERWRITE_HELP,
    check_image_path,
    check_outputs,
    console,
    friendly,
    parse_int_list,
)
from mvd_edge.core.errors import UsageError, require
from mvd_edge.core.spec import PRECISIONS
from mvd_edge.deploy import formats

app = typer.Typer()


@app.command("export")
@friendly
def export(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint (.pt) written by `mvd-edge train`")],
    out: Annotated[Path, typer.Option(help="ONNX file to write")] = Path("runs/export/model.onnx"),
    recipe: Annotated[Optional[str], typer.Option(help="full, shared or z (default: the checkpoint's)")] = None,
    fused_head: Annotated[bool, typer.Option(help="emit the head as one mvd::FusedHead op (TensorRT plugin)")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset")] = 17,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Export a checkpoint to ONNX (FP32, dynamic batch) and check it against torch."""
    check_outputs({"--out": out}, {"checkpoint": checkpoint}, overwrite)
    require("torch", "train")
    from mvd_edge.deploy.export import export_onnx

    report = export_onnx(checkpoint, out, recipe=recipe, opset=opset, fused_head=fused_head)
    parity = report["parity"]
    if "max_abs_err" in parity:
        console.print(f"parity vs torch: max abs err {parity['max_abs_err']:.2e} (tol {parity['max_abs_tol']:.0e}), "
                      f"min cosine {parity['min_cosine']:.7f}")
    else:
        console.print(f"parity check skipped: {parity['skipped']}")
    console.print(f"[green]wrote[/] {out} ({report['recipe']}, {report['embedding_dim']}-d, "
                  f"input {report['input_size'][0]}x{report['input_size'][1]})")


@app.command("fp16")
@friendly
def fp16(
    onnx_model: Annotated[Path, typer.Argument(help="FP32 ONNX graph from `mvd-edge export`")],
    out: Annotated[Optional[Path], typer.Option(help=f"FP16 graph (default: <stem>{formats.graph_format('fp16').suffix} "
                                                     "beside it)")] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="calibration manifest for the overflow check")] = None,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """FP16 ONNX graph with FP32 input/output; reports values that overflow FP16."""
    out = out or formats.graph_path(onnx_model.parent, onnx_model.name.removesuffix(".onnx"), "fp16")
    check_outputs({"--out": out}, {"ONNX graph": onnx_model, "--manifest": manifest}, overwrite)
    require("onnx", "quant")
    from mvd_edge.quant.api import to_fp16

    report = to_fp16(onnx_model, out, manifest=manifest)
    console.print_json(data={k: v for k, v in report.items() if not isinstance(v, (list, dict)) or len(v) < 20},
                       default=str)
    console.print(f"[green]wrote[/] {out}")


@app.command("int8")
@friendly
def int8(
    onnx_model: Annotated[Path, typer.Argument(help="FP32 ONNX graph from `mvd-edge export`")],
    out_dir: Annotated[Optional[Path], typer.Option(help="output folder (default: beside the ONNX file)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="calibrate on this data set's TRAINING split")] = None,
    root: Annotated[Optional[Path], typer.Option(help="data set root")] = None,
    folder: Annotated[Optional[Path], typer.Option(help="or: calibrate on the images of this folder")] = None,
    video: Annotated[Optional[Path], typer.Option(help="or: calibrate on person crops from this video")] = None,
    boxes: Annotated[Optional[Path], typer.Option(help="MOT boxes for --video (default: HOG detector)")] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="or: an existing calibration manifest JSON")] = None,
    n: Annotated[int, typer.Option(help="calibration crops (warns below 300)")] = 512,
    method: Annotated[str, typer.Option(help="minmax, entropy or percentile")] = "minmax",
    flavours: Annotated[str, typer.Option(help="trt (TensorRT) and/or cpu (ONNX Runtime x86)")] = ",".join(
        formats.INT8_FLAVOURS),
    include_head: Annotated[bool, typer.Option(help="also quantize the embedding head")] = False,
    max_rank1_drop: Annotated[Optional[float], typer.Option(help="keep sensitive layers in FP32 until the "
                                                                  "validation Rank-1 drop is within POINTS")] = None,
    seed: Annotated[int, typer.Option(help="calibration sampling seed")] = 0,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Calibrated INT8 Q/DQ graphs (trt: symmetric int8; cpu: uint8 activations) from one set of ranges."""
    require("onnx", "quant")
    from mvd_edge.deploy.build import calibration_manifest
    from mvd_edge.quant.api import quantize

    sources = [x for x in (dataset, folder, video, manifest) if x is not None]
    if len(sources) != 1:
        raise UsageError("give exactly one calibration source: --dataset (with --root), --folder, --video or --manifest")
    out_dir = out_dir or onnx_model.parent
    stem = onnx_model.name.removesuffix(".onnx")  # as quantize names its outputs
    flavour_list = [f.strip() for f in flavours.split(",")]
    check_outputs({**{f"the {fl} INT8 graph": formats.graph_path(out_dir, stem, "int8", fl) for fl in flavour_list},
                   "the INT8 report": out_dir / f"{stem}.int8-report.json"},
                  {"ONNX graph": onnx_model, "--manifest": manifest}, overwrite)
    if dataset is not None and root is None:
        raise UsageError("--dataset needs --root")
    kind, calib = next((k, v) for k, v in (("folder", folder), ("video", video), ("manifest", manifest),
                                           ("dataset", root)) if v is not None)
    man = calibration_manifest(calib, dataset, n, seed, kind=kind, boxes=boxes)
    val = None
    if max_rank1_drop is not None:
        if dataset is None:
            raise UsageError("--max-rank1-drop measures Rank-1 on a validation split: calibrate with --dataset/--root")
        from mvd_edge.data.registry import load_dataset

        val = load_dataset(dataset, root, use_val=True, seed=seed).val
        if not val:
            raise UsageError(f"{root}: {dataset} has no validation split for --max-rank1-drop")
    report = quantize(onnx_model, out_dir, man, method=method, flavours=flavour_list,
                      include_head=include_head, max_rank1_drop=max_rank1_drop, val_samples=val, seed=seed)
    table = Table(title=f"INT8 ({method}, {len(man)} calibration crops)")
    for col in ("flavour", "graph", "layers quantized", "kept back (fallback)", "mean cosine vs FP32"):
        table.add_column(col)
    for fl, r in report["flavours"].items():
        counts = r["placement"]["counts"]
        kept = r.get("fallback", {}).get("kept_back", [])
        table.add_row(fl, Path(r["onnx"]).name, f"{counts['layers_quantized']}/{counts['layers']}", str(len(kept)),
                      f"{r['parity']['mean_cosine']:.5f}")
    console.print(table)
    console.print(f"report: {out_dir / (stem + '.int8-report.json')}")


@app.command("build-engine")
@friendly
def build_engine_cmd(
    model: Annotated[Path, typer.Argument(help="ONNX graph (FP32, FP16 or INT8 Q/DQ) from export/fp16/int8, or a "
                                               "checkpoint (.pt, exported first)")],
    backend: Annotated[str, typer.Option(help=formats.backend_help() + ", or auto (OpenVINO on an x86 CPU where it "
                                              "is installed, else ort)")] = formats.ENGINE_BACKENDS[0],
    precision: Annotated[Optional[str], typer.Option(help=f"{formats.help_list(PRECISIONS)}: make that graph from "
                                                          "the FP32 export first (default: the graph's own precision); "
                                                          "int8 makes " + formats.help_list(
                                                              [f"the {formats.engine_format(b).int8_flavours[0]} flavour "
                                                               f"for {formats.engine_format(b).title}"
                                                               for b in formats.ENGINE_BACKENDS]))] = None,
    calib: Annotated[Optional[Path], typer.Option(help="--precision int8: calibration images (a folder), a video, "
                                                       "a manifest JSON, or a data set root with --calib-dataset")] = None,
    calib_dataset: Annotated[Optional[str], typer.Option(help="--calib is this data set's root (sysu, regdb, llcm): "
                                                              "calibrate on its TRAINING split")] = None,
    calib_n: Annotated[int, typer.Option(help="calibration crops (warns below 300)")] = 512,
    recipe: Annotated[Optional[str], typer.Option(help="checkpoint: full, shared or z (default: the checkpoint's)")] = None,
    out: Annotated[Optional[Path], typer.Option(help="engine file (default: beside the model; the intermediate "
                                                     "graphs go beside the engine)")] = None,
    device: Annotated[str, typer.Option(help="ort: cpu or cuda; openvino: cpu")] = "cpu",
    batch: Annotated[str, typer.Option(help="batch profile min,opt,max (max also splits large calls)")] = "1,8,32",
    workspace_mb: Annotated[int, typer.Option(help="TensorRT workspace (MiB)")] = 2048,
    timing_cache: Annotated[Optional[Path], typer.Option(help="TensorRT timing cache file (reused across builds)")] = None,
    verbose: Annotated[bool, typer.Option(help="TensorRT verbose build log")] = False,
    seed: Annotated[int, typer.Option(help="calibration sampling seed")] = 0,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Build an ONNX Runtime, TensorRT or OpenVINO engine (+ sidecar JSON); with --precision, export/fp16/int8 first.

    One command from a checkpoint or FP32 ONNX to an engine, e.g.
    `mvd-edge build-engine model.pt --backend trt --precision int8 --calib crops/`: it runs
    `export` (for a .pt), then `fp16` or `int8`, then the build. The intermediate graphs keep
    the names those commands give them (model.onnx, model.fp16.onnx, model.int8-trt.onnx, ...)
    and are written beside the engine.
    """
    from mvd_edge.runtime.engine import parse_batch

    if backend == formats.AUTO:
        backend, why = formats.auto_backend(device)
        _say(f"--backend auto: {backend} ({why})")
    formats.engine_format(backend, what="--backend")
    if precision is not None:
        formats.check_precision(precision, what="--precision")
    if precision == "int8" and calib is None:
        raise UsageError("--precision int8 needs calibration data: --calib FOLDER (images), a video, a calibration "
                         "manifest JSON, or a data set root with --calib-dataset sysu|regdb|llcm")
    if calib is not None and precision != "int8":
        raise UsageError("--calib is the calibration data of --precision int8; add --precision int8 or drop --calib")
    if calib_dataset is not None and calib is None:
        raise UsageError("--calib-dataset needs --calib ROOT (the data set's root folder)")
    if calib is not None and not calib.exists():
        raise UsageError(f"--calib {calib}: not found; give an image folder, a video or a calibration manifest JSON")
    if calib_n < 1:
        raise UsageError(f"--calib-n must be >= 1, got {calib_n}")
    parse_batch(batch)
    if backend == "trt":
        _check_tensorrt()  # before minutes of export and calibration
    from mvd_edge.deploy.build import plan_build, run_build

    plan = plan_build(model, backend, precision, out=out, recipe=recipe, calib=calib)
    check_outputs(plan.outputs, {"model": model, "--calib": calib, "--timing-cache": timing_cache}, overwrite)
    info = run_build(plan, _say, recipe=recipe, calib=calib, calib_dataset=calib_dataset, calib_n=calib_n, seed=seed,
                     device=device, batch=batch, workspace_mb=workspace_mb, timing_cache=timing_cache, verbose=verbose)
    console.print(f"[green]built[/] {escape(str(plan.out))} ({info['backend']}, {info['precision']}"
                  f"{' ' + info['int8_flavour'] if info.get('int8_flavour') else ''}, batch {info['batch_profile']}); "
                  f"sidecar {escape(str(plan.out))}.json", soft_wrap=True)


def _say(line: str) -> None:
    """A progress line of build-engine: plain text (paths may hold brackets), never wrapped."""
    console.print(line, markup=False, highlight=False, soft_wrap=True)


def _check_tensorrt() -> None:
    """TensorRT importable, or the one-line error naming the install command."""
    from mvd_edge.core.errors import TensorRTUnavailable
    from mvd_edge.doctor import TENSORRT_MISSING, tensorrt_importable

    if not tensorrt_importable():  # absent, a half-installed wheel, or type stubs only
        raise TensorRTUnavailable(TENSORRT_MISSING + "; or build with --backend ort")


@app.command("verify")
@friendly
def verify(
    checkpoint: Annotated[Path, typer.Argument(help="the FP32 reference checkpoint")],
    engines: Annotated[list[Path], typer.Argument(help="engines or ONNX graphs to measure")],
    dataset: Annotated[str, typer.Option(help="sysu, regdb, llcm or folder")] = "sysu",
    root: Annotated[Path, typer.Option(help="data set root")] = Path("runs/train/synthetic"),
    settings: Annotated[Optional[str], typer.Option(help="comma-separated protocol settings")] = None,
    trials: Annotated[int, typer.Option(help="gallery sampling trials")] = 10,
    json_out: Annotated[Path, typer.Option("--json", help="report JSON")] = Path("runs/verify/verify.json"),
    png: Annotated[Optional[Path], typer.Option(help="report chart (default: the --json path with .png)")] = None,
    allow_foreign: Annotated[bool, typer.Option(help="measure engines built from another checkpoint too")] = False,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Accuracy cost of each engine: cosine vs FP32 torch (same recipe) and Rank-1/mAP/mINP on the test split."""
    from mvd_edge.deploy.verify import chart_path, save_report, verify_engines

    png = chart_path(json_out, png)  # only outputs this run writes are checked
    check_outputs({"--json": json_out, "--png": png},
                  {"checkpoint": checkpoint, **{f"engine {e}": e for e in engines}}, overwrite)
    check_image_path("--png", png)
    if trials < 1:
        raise UsageError(f"--trials must be >= 1, got {trials}")
    require("torch", "train")
    chosen = [s.strip() for s in settings.split(",")] if settings else None
    report = verify_engines(checkpoint, engines, dataset, root, settings=chosen, trials=trials,
                            allow_foreign=allow_foreign)
    written = save_report(report, json_out, png)
    setting = report["settings"][0]
    table = Table(title=f"verify on {dataset} ({setting}, {trials} trials)")
    for col in ("engine", "precision", "cos mean", "cos min", "Rank-1", "ΔR1", "mAP", "ΔmAP", "mINP"):
        table.add_column(col, justify="left" if col in ("engine", "precision") else "right")
    ref = report["reference"]["metrics"]
    table.add_row("torch (reference)", "fp32", "1", "1", f"{ref[setting + '/rank1']:.2f}", "", f"{ref[setting + '/mAP']:.2f}",
                  "", f"{ref[setting + '/mINP']:.2f}")
    for e in report["engines"]:
        m, d = e["metrics"], e["drop_vs_fp32"]
        prec = e["precision"] + (f" ({e['int8_flavour']})" if e.get("int8_flavour") else "")
        table.add_row(Path(e["engine"]).name, prec, f"{e['cosine']['mean']:.5f}", f"{e['cosine']['min']:.5f}",
                      f"{m[setting + '/rank1']:.2f}", f"{-d[setting + '/rank1']:+.2f}", f"{m[setting + '/mAP']:.2f}",
                      f"{-d[setting + '/mAP']:+.2f}", f"{m[setting + '/mINP']:.2f}")
    console.print(table)
    console.print(f"wrote {' and '.join(str(p) for p in written)}")


@app.command("calibrate-threshold")
@friendly
def calibrate_threshold_cmd(
    engine: Annotated[Path, typer.Argument(help="engine (+sidecar) from build-engine")],
    dataset: Annotated[str, typer.Option(help="sysu, regdb, llcm or folder")] = "sysu",
    root: Annotated[Path, typer.Option(help="data set root: identities the checkpoint was neither trained nor "
                                            "selected on")] = Path("runs/calib-ids"),
    split: Annotated[str, typer.Option(help="all, train, val or test (all: a data set kept for this)")] = "all",
    precision: Annotated[float, typer.Option(help="pair precision the operating point must reach")] = 0.9,
    people: Annotated[int, typer.Option(help="people in view at once in the simulated scenes")] = 6,
    scenes: Annotated[int, typer.Option(help="simulated scenes")] = 300,
    seed: Annotated[int, typer.Option(help="random seed of the scenes")] = 0,
    track_images: Annotated[int, typer.Option(help="crops averaged into each simulated track (the matcher's "
                                                   "banks average up to 30)")] = 16,
    device: Annotated[Optional[str], typer.Option(help="engine device (default: the engine's)")] = None,
) -> None:
    """Measure the match threshold (and margin) that reaches a pair precision; store it in the engine's sidecar."""
    from mvd_edge.deploy.threshold import calibrate_threshold

    point = calibrate_threshold(engine, dataset, root, split=split, target_precision=precision, people=people,
                                scenes=scenes, seed=seed, device=device, progress=True, track_images=track_images)
    state = "reached" if point["reached"] else "NOT reached (best precision kept)"
    console.print(f"operating point for {engine}: threshold {point['threshold']:.4f}, margin {point['margin']:.3f}; "
                  f"pair precision {point['precision']:.3f} ({state}, target {precision}), pair recall "
                  f"{point['recall']:.3f} on {point['identities']} identities, {point['people_per_scene']} people "
                  f"per scene; at 0.5: precision {point['at_default_0.5']['precision']:.3f}, recall "
                  f"{point['at_default_0.5']['recall']:.3f}", highlight=False)
    for key, what, otherwise in (("fast", "fast pairing", "waits association.hysteresis frames for every pair"),
                                 ("fast_early", "early pairing", "pairs a new track once it has 3 crops")):
        fast = point[key]
        if fast["reached"]:
            console.print(f"{what}: threshold {fast['threshold']:.4f}, margin {fast['margin']:.3f} (pair precision "
                          f"{fast['precision']:.3f} on {fast['accepted']} pairs of {fast['track_images']}-crop "
                          f"tracks, recall {fast['recall']:.3f})", highlight=False)
        else:
            console.print(f"{what}: none (no threshold reaches pair precision {fast['target_precision']} on "
                          f"{fast['min_pairs']}+ pairs of {fast['track_images']}-crop tracks): `match` {otherwise}",
                          highlight=False)
    console.print(f"written to {engine}.json; `mvd-edge match` uses it unless association.threshold is set", highlight=False)


@app.command("profile")
@friendly
def profile(
    engine: Annotated[Path, typer.Argument(help="engine (+sidecar), exported .onnx, or checkpoint "
                                                f"{formats.by_name('checkpoint').suffix} (torch backend)")],
    batch: Annotated[str, typer.Option(help="batch sizes to measure")] = "1,8,32",
    iters: Annotated[int, typer.Option(help="timed calls per batch size")] = 50,
    warmup: Annotated[int, typer.Option(help="untimed calls first")] = 10,
    device: Annotated[Optional[str], typer.Option(help="cpu/cuda (ort), cuda:N (trt, torch)")] = None,
    fused_head: Annotated[Optional[bool], typer.Option(help="torch backend: fused Triton head (default: on with CUDA)")] = None,
    out: Annotated[Path, typer.Option(help="folder for profile.json and PNGs")] = Path("runs/profile"),
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Per-stage latency (p50/p90/p99/max), throughput, peak memory; table, JSON and PNGs."""
    check_outputs({f"--out {out}: the report": out / "profile.json"}, {"engine": engine}, overwrite)
    from mvd_edge.deploy.profile import STAGES, profile_embedder, save_profile
    from mvd_edge.runtime import load_embedder

    batches = parse_int_list(batch, "--batch")
    if max(batches) > 4096:
        raise UsageError(f"--batch {max(batches)}: at most 4096 crops per call")
    if iters < 1 or warmup < 0:
        raise typer.BadParameter("--iters must be >= 1 and --warmup >= 0")
    checkpoint = formats.for_path(engine) == formats.by_name("checkpoint")
    kwargs = {"fused_head": fused_head} if checkpoint and fused_head is not None else {}
    with load_embedder(engine, device=device, max_batch=max(batches) if checkpoint else None, **kwargs) as emb:
        res = profile_embedder(emb, batches, iters=iters, warmup=warmup)
    paths = save_profile(res, out)
    table = Table(title=f"{engine.name}: {res['backend']} {res['precision']} ({res.get('recipe')}), ms per call")
    for col in ("batch", "stage", "p50", "p90", "p99", "max", "crops/s"):
        table.add_column(col, justify="left" if col == "stage" else "right")
    for b, row in res["batches"].items():
        for i, st in enumerate(s for s in STAGES if s in row):
            r = row[st]
            table.add_row(b if i == 0 else "", st, f"{r['p50']:.3f}", f"{r['p90']:.3f}", f"{r['p99']:.3f}",
                          f"{r['max']:.3f}", f"{row['throughput_crops_per_s']:.0f}" if st == "total" else "")
    console.print(table)
    mem = f"peak host RSS {res['peak_host_rss_mb']:.0f} MiB"
    if "peak_gpu_mb" in res:
        mem += f", peak GPU {res['peak_gpu_mb']:.0f} MiB"
    console.print(mem)
    console.print("wrote " + ", ".join(str(p) for p in paths.values()))


@app.command("bench")
@friendly
def bench(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint (.pt) to build every variant from")],
    dataset: Annotated[str, typer.Option(help="data set for accuracy (its test split) and INT8 calibration (train)")] = "sysu",
    root: Annotated[Path, typer.Option(help="data set root")] = Path("runs/train/synthetic"),
    backends: Annotated[str, typer.Option(help=",".join(formats.BENCH_BACKENDS))] = ",".join(formats.BENCH_BACKENDS),
    precisions: Annotated[str, typer.Option(help=",".join(PRECISIONS))] = ",".join(PRECISIONS),
    recipes: Annotated[str, typer.Option(help="full,shared,z")] = "full,shared,z",
    fused_head: Annotated[str, typer.Option(help="fused head variants: off, on or on,off")] = "off,on",
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="add torch.compile variants of torch")] = False,
    batch: Annotated[str, typer.Option(help="batch sizes")] = "1,32",
    iters: Annotated[int, typer.Option(help="timed calls per batch size")] = 20,
    trials: Annotated[int, typer.Option(help="gallery trials for Rank-1/mAP")] = 3,
    calib_n: Annotated[int, typer.Option(help="INT8 calibration crops")] = 512,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N]")] = "cpu",
    out: Annotated[Path, typer.Option(help="output folder (bench.json, bench_pareto.png, artifacts/)")] = Path("runs/bench"),
    student: Annotated[Optional[list[Path]], typer.Option(help="one-pass student checkpoint(s) from `mvd-edge distill` "
                                                               "to measure beside the checkpoint (repeatable)")] = None,
    threads: Annotated[Optional[str], typer.Option(help="CPU threads to measure ort and openvino at, e.g. 1,2 "
                                                        "(default: each backend's own)")] = None,
    detector: Annotated[bool, typer.Option("--detector/--no-detector", help="also the packaged ssdlite detector's "
                                                                            "graph on ort and openvino")] = False,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Build and measure backend x precision x recipe x fused-head (x threads) variants side by side (and students).

    ONNX Runtime, OpenVINO and the rest side by side: every row has its speedup against ONNX Runtime at the
    same precision, recipe and threads (`vs ort`), charted in bench_backends.png; --detector adds the
    detector's rows, the backends taking turns call by call."""
    check_outputs({f"--out {out}: the report": out / "bench.json"},
                  {"checkpoint": checkpoint, **{f"student {s}": s for s in student or []}}, overwrite)
    require("torch", "train")
    from mvd_edge.core.spec import RECIPES
    from mvd_edge.deploy.bench import (
        detector_summary_columns,
        detector_summary_rows,
        run_bench,
        summary_columns,
        summary_rows,
    )

    fused = [f.strip() for f in fused_head.split(",")]
    if not set(fused) <= {"on", "off"}:
        raise typer.BadParameter(f"--fused-head takes on, off or on,off; got {fused_head!r}")
    recipe_list = [r.strip() for r in recipes.split(",")]
    for r in recipe_list:
        if r not in RECIPES:
            raise typer.BadParameter(f"unknown recipe {r!r}; choose from {', '.join(RECIPES)}")
    batches = parse_int_list(batch, "--batch")
    thread_list = parse_int_list(threads, "--threads") if threads else [None]
    for flag, value, lo in (("--iters", iters, 1), ("--trials", trials, 1), ("--calib-n", calib_n, 1)):
        if value < lo:
            raise UsageError(f"{flag} must be >= {lo}, got {value}")
    if max(batches) > 4096:
        raise UsageError(f"--batch {max(batches)}: at most 4096 crops per call")
    report = run_bench(checkpoint, out, dataset, root, backends=[b.strip() for b in backends.split(",")],
                       precisions=[p.strip() for p in precisions.split(",")], recipes=recipe_list,
                       fused=[f == "on" for f in fused], compiled=compile, batches=batches, iters=iters, trials=trials,
                       calib_n=calib_n, device=device, students=list(student or []), threads=thread_list,
                       detector=detector)
    table = Table(title=f"bench on {device}: {report['setting']} ({trials} trials); ms per crop = p50 call / batch; "
                        f"'vs full' = relative to the teacher's full recipe")
    for col in summary_columns(batches):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    if report.get("detector_rows"):
        table = Table(title="the ssdlite detector's graph: ms per call of N 300x300 windows (p50); 'vs ort' = ONNX "
                            "Runtime's time over the row's, same threads")
        for col in detector_summary_columns(batches):
            table.add_column(col, justify="left" if col == "detector" else "right")
        for row in detector_summary_rows(report):
            table.add_row(*row)
        console.print(table)
    for s in report["skipped"]:
        console.print(f"[yellow]skipped[/] {s['variant']}: {s['reason']}")
    written = [out / "bench.json", out / "bench_pareto.png"] + [out / "bench_backends.png"] * (
        (out / "bench_backends.png").is_file())
    console.print(f"wrote {', '.join(str(p) for p in written)}")
