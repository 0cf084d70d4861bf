"""The ``mvd-edge`` command line (Typer).

Heavy modules (torch, training) are imported inside the commands that need them, so the
runtime commands stay torch-free. User errors end with a one-line message and exit code 2;
set ``MVD_EDGE_DEBUG=1`` to see the traceback instead.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="MVD cross-modal (visible/infrared) person re-identification: train, evaluate, deploy.")
console = Console()
err_console = Console(stderr=True)


def _user_errors() -> tuple[type[BaseException], ...]:
    from mvd_edge.core.config import ConfigError
    from mvd_edge.runtime.sidecar import EngineError

    return (ConfigError, EngineError, ValueError, FileNotFoundError, NotADirectoryError, PermissionError, RuntimeError)


def friendly(fn):
    """Turn user-facing errors into one red line and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except _user_errors() as exc:
            if os.environ.get("MVD_EDGE_DEBUG"):
                raise
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def parse_size(text: str) -> tuple[int, int]:
    """``"256x128"`` -> (256, 128) as (height, width)."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"size must look like HEIGHTxWIDTH (e.g. 256x128), got {text!r}") from None
    if h < 8 or w < 8:
        raise typer.BadParameter(f"size too small: {text}")
    return h, w


@app.command()
@friendly
def synth(
    out: Annotated[Path, typer.Option(help="folder to write the data set into")] = Path("runs/synthetic"),
    ids: Annotated[int, typer.Option(help="number of identities")] = 100,
    images_per_cam: Annotated[int, typer.Option(help="SYSU layout: images per identity per camera")] = 4,
    size: Annotated[str, typer.Option(help="crop size HEIGHTxWIDTH")] = "128x64",
    seed: Annotated[int, typer.Option(help="random seed (same seed, same data set)")] = 0,
    layout: Annotated[str, typer.Option(help="sysu, regdb, llcm or all")] = "sysu",
    render: Annotated[str, typer.Option(help="SYSU layout: 'crops' (re-id style crops) or 'scenes' (people cut "
                                             "out of synthetic camera scenes as the matcher sees them)")] = "crops",
    scene_people: Annotated[int, typer.Option(help="--render scenes: people walking through each scene")] = 6,
) -> None:
    """Write a synthetic cross-modal data set (RGB + thermal-like renders of the same people)."""
    from mvd_edge.synth.dataset import RENDERS, write_llcm, write_regdb, write_sysu

    h, w = parse_size(size)
    if render not in RENDERS:
        raise typer.BadParameter(f"render must be one of {', '.join(RENDERS)}, got {render!r}")
    if render != "crops" and layout != "sysu":
        raise typer.BadParameter(f"render={render!r} is for the SYSU layout only (got layout {layout!r})")
    layouts = ["sysu", "regdb", "llcm"] if layout == "all" else [layout]
    for name in layouts:
        if name not in ("sysu", "regdb", "llcm"):
            raise typer.BadParameter(f"layout must be sysu, regdb, llcm or all, got {layout!r}")
    for name in layouts:
        root = out if len(layouts) == 1 else out / name
        if name == "sysu":
            summary = write_sysu(root, n_ids=ids, images_per_cam=images_per_cam, size=(h, w), seed=seed, progress=True,
                                 render=render, scene_people=scene_people)
        elif name == "regdb":
            summary = write_regdb(root, n_ids=ids, size=(h, w), seed=seed)
        else:
            summary = write_llcm(root, n_ids=ids, size=(h, w), seed=seed)
        console.print(f"[green]wrote[/] {name} layout to {root}")
        console.print_json(json.dumps(summary, default=str))


@app.command()
@friendly
def train(
    config: Annotated[Optional[Path], typer.Option(help="YAML config (see configs/)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set optim.lr=1e-3")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (checkpoints, logs, results)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help="synthetic, sysu, regdb, llcm or folder")] = None,
    root: Annotated[Optional[Path], typer.Option(help="data set root")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="resnet50, resnet18 or tiny")] = None,
    pretrained: Annotated[Optional[Path], typer.Option(help="local ImageNet weights (.pth)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="number of epochs")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    resume: Annotated[bool, typer.Option(help="continue from <out>/last.pt")] = False,
    test: Annotated[bool, typer.Option(help="evaluate best.pt on the test protocols at the end")] = True,
) -> None:
    """Train MVD (VSD + VCD + VML). Without options: synthetic data, tiny backbone, CPU-sized run."""
    from mvd_edge.core.config import load_train_config

    overrides = list(set_ or [])
    for key, value in (("out", out), ("data.dataset", dataset), ("data.root", root), ("model.backbone", backbone),
                       ("model.pretrained", pretrained), ("optim.epochs", epochs), ("device", device),
                       ("seed", seed)):
        if value is not None:
            overrides.append(f"{key}={json.dumps(str(value)) if isinstance(value, Path) else value}")
    cfg = load_train_config(config, overrides)
    from mvd_edge.train.trainer import run_training

    summary = run_training(cfg, resume=resume, evaluate_test=test)
    if "test" in summary:
        _print_results(summary["test"], title=f"test: {cfg.data.dataset}, best epoch {summary['best']['epoch']}")
        console.print(f"results: {Path(cfg.out) / 'test_results.json'}, CMC plot: {Path(cfg.out) / 'cmc.png'}")
    console.print(f"checkpoint: {summary['best_checkpoint']}")


@app.command("eval")
@friendly
def eval_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint (.pt) written by `mvd-edge train`")],
    dataset: Annotated[str, typer.Option(help="sysu, regdb, llcm or folder")] = "sysu",
    root: Annotated[Path, typer.Option(help="data set root")] = Path("runs/train/synthetic"),
    settings: Annotated[Optional[str], typer.Option(help="comma-separated protocol settings (default: the data set's)")] = None,
    trials: Annotated[int, typer.Option(help="gallery sampling trials")] = 10,
    trial: Annotated[int, typer.Option(help="RegDB split trial 1..10")] = 1,
    recipe: Annotated[Optional[str], typer.Option(help="full, shared or z (default: the checkpoint's)")] = None,
    batch_size: Annotated[int, typer.Option(help="feature extraction batch size")] = 64,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda or cuda:N")] = "auto",
    seed: Annotated[int, typer.Option(help="seed of the gallery sampling")] = 0,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="write results as JSON here")] = None,
    png: Annotated[Optional[Path], typer.Option(help="write the CMC curves as PNG here")] = None,
) -> None:
    """Evaluate a checkpoint with the community's protocols (10 seeded trials, mean ± std)."""
    from mvd_edge.core.preprocess import PreprocessSpec
    from mvd_edge.data.registry import default_eval_settings, load_dataset
    from mvd_edge.eval.reid import evaluate_features, save_results
    from mvd_edge.train.extract import extract_features
    from mvd_edge.model.checkpoint import model_from_checkpoint, resolve_device

    if trials < 1:
        raise typer.BadParameter("--trials must be >= 1")
    dev = resolve_device(device)
    model, state = model_from_checkpoint(checkpoint, recipe=recipe, map_location=dev)
    model.to(dev)
    spec = PreprocessSpec.from_dict(state["preprocess"])
    data = load_dataset(dataset, root, trial=trial, use_val=True, seed=seed)
    if not data.test:
        raise ValueError(f"{root}: the test split of {dataset} is empty")
    chosen = [s.strip() for s in settings.split(",")] if settings else default_eval_settings(dataset)
    feats = extract_features(model, data.test, spec, model.recipe, batch_size, dev, progress=True)
    results = evaluate_features(feats, data.test, chosen, n_trials=trials, seed=seed)
    save_results(results, json_out, png, title=f"{dataset} ({model.recipe})")
    _print_results(results, title=f"{dataset}: {checkpoint} ({model.recipe}, {trials} trials)")
    if json_out:
        console.print(f"wrote {json_out}")
    if png:
        console.print(f"wrote {png}")


@app.command()
@friendly
def export(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint (.pt) written by `mvd-edge train`")],
    out: Annotated[Path, typer.Option(help="ONNX file to write")] = Path("runs/export/model.onnx"),
    recipe: Annotated[Optional[str], typer.Option(help="full, shared or z (default: the checkpoint's)")] = None,
    fused_head: Annotated[bool, typer.Option(help="emit the head as one mvd::FusedHead op (TensorRT plugin)")] = False,
    opset: Annotated[int, typer.Option(help="ONNX opset")] = 17,
) -> None:
    """Export a checkpoint to ONNX (FP32, dynamic batch) and check it against torch."""
    from mvd_edge.export import export_onnx

    report = export_onnx(checkpoint, out, recipe=recipe, opset=opset, fused_head=fused_head)
    parity = report["parity"]
    if "max_abs_err" in parity:
        console.print(f"parity vs torch: max abs err {parity['max_abs_err']:.2e} (tol {parity['max_abs_tol']:.0e}), "
                      f"min cosine {parity['min_cosine']:.7f}")
    else:
        console.print(f"parity check skipped: {parity['skipped']}")
    console.print(f"[green]wrote[/] {out} ({report['recipe']}, {report['embedding_dim']}-d, "
                  f"input {report['input_size'][0]}x{report['input_size'][1]})")


@app.command()
@friendly
def fp16(
    onnx_model: Annotated[Path, typer.Argument(help="FP32 ONNX graph from `mvd-edge export`")],
    out: Annotated[Optional[Path], typer.Option(help="FP16 graph (default: <stem>.fp16.onnx beside it)")] = None,
    manifest: Annotated[Optional[Path], typer.Option(help="calibration manifest for the overflow check")] = None,
) -> None:
    """FP16 ONNX graph with FP32 input/output; reports values that overflow FP16."""
    from mvd_edge.quant.api import to_fp16

    out = out or onnx_model.with_name(onnx_model.name.removesuffix(".onnx") + ".fp16.onnx")
    report = to_fp16(onnx_model, out, manifest=manifest)
    console.print_json(json.dumps({k: v for k, v in report.items() if not isinstance(v, (list, dict)) or len(v) < 20},
                                  default=str))
    console.print(f"[green]wrote[/] {out}")


@app.command()
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
    flavours: Annotated[str, typer.Option(help="trt (TensorRT) and/or cpu (ONNX Runtime x86)")] = "trt,cpu",
    include_head: Annotated[bool, typer.Option(help="also quantize the embedding head")] = False,
    max_rank1_drop: Annotated[Optional[float], typer.Option(help="keep sensitive layers in FP32 until the "
                                                                  "validation Rank-1 drop is within POINTS")] = None,
    seed: Annotated[int, typer.Option(help="calibration sampling seed")] = 0,
) -> None:
    """Calibrated INT8 Q/DQ graphs (trt: symmetric int8; cpu: uint8 activations) from one set of ranges."""
    from mvd_edge.quant import manifest as mf
    from mvd_edge.quant.api import quantize

    sources = [x for x in (dataset, folder, video, manifest) if x is not None]
    if len(sources) != 1:
        raise ValueError("give exactly one calibration source: --dataset (with --root), --folder, --video or --manifest")
    if dataset is not None:
        if root is None:
            raise ValueError("--dataset needs --root")
        man = mf.from_dataset(dataset, root, n=n, seed=seed)
    elif folder is not None:
        man = mf.from_folder(folder, n=n, seed=seed)
    elif video is not None:
        man = mf.from_video(video, boxes=boxes, n=n, seed=seed)
    else:
        man = mf.load_manifest(manifest)
    val = None
    if max_rank1_drop is not None:
        if dataset is None:
            raise ValueError("--max-rank1-drop measures Rank-1 on a validation split: calibrate with --dataset/--root")
        from mvd_edge.data.registry import load_dataset

        val = load_dataset(dataset, root, use_val=True, seed=seed).val
        if not val:
            raise ValueError(f"{root}: {dataset} has no validation split for --max-rank1-drop")
    out_dir = out_dir or onnx_model.parent
    report = quantize(onnx_model, out_dir, man, method=method, flavours=[f.strip() for f in flavours.split(",")],
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
    console.print(f"report: {out_dir / (onnx_model.name.removesuffix('.onnx') + '.int8-report.json')}")


@app.command("build-engine")
@friendly
def build_engine_cmd(
    onnx_model: Annotated[Path, typer.Argument(help="ONNX graph (FP32, FP16 or INT8 Q/DQ) from export/fp16/int8")],
    backend: Annotated[str, typer.Option(help="ort (ONNX Runtime) or trt (TensorRT)")] = "ort",
    out: Annotated[Optional[Path], typer.Option(help="engine file (default: beside the ONNX file)")] = None,
    device: Annotated[str, typer.Option(help="ort: cpu or cuda")] = "cpu",
    batch: Annotated[str, typer.Option(help="batch profile min,opt,max (max also splits large calls)")] = "1,8,32",
    workspace_mb: Annotated[int, typer.Option(help="TensorRT workspace (MiB)")] = 2048,
    timing_cache: Annotated[Optional[Path], typer.Option(help="TensorRT timing cache file (reused across builds)")] = None,
    verbose: Annotated[bool, typer.Option(help="TensorRT verbose build log")] = False,
) -> None:
    """Build an ONNX Runtime or TensorRT engine (+ sidecar JSON) from an ONNX graph."""
    from mvd_edge.runtime.engine import build_engine

    if out is None:
        stem = onnx_model.name.removesuffix(".onnx")
        out = onnx_model.with_name(f"{stem}.{backend}.onnx" if backend == "ort" else f"{stem}.engine")
    info = build_engine(onnx_model, out, backend=backend, device=device, batch=batch, workspace_mb=workspace_mb,
                        timing_cache=timing_cache, verbose=verbose)
    console.print(f"[green]built[/] {out} ({info['backend']}, {info['precision']}"
                  f"{' ' + info['int8_flavour'] if info.get('int8_flavour') else ''}, batch {info['batch_profile']}); "
                  f"sidecar {out}.json")


@app.command()
@friendly
def verify(
    checkpoint: Annotated[Path, typer.Argument(help="the FP32 reference checkpoint")],
    engines: Annotated[list[Path], typer.Argument(help="engines or ONNX graphs to measure")],
    dataset: Annotated[str, typer.Option(help="sysu, regdb, llcm or folder")] = "sysu",
    root: Annotated[Path, typer.Option(help="data set root")] = Path("runs/train/synthetic"),
    settings: Annotated[Optional[str], typer.Option(help="comma-separated protocol settings")] = None,
    trials: Annotated[int, typer.Option(help="gallery sampling trials")] = 10,
    json_out: Annotated[Path, typer.Option("--json", help="report JSON")] = Path("runs/verify/verify.json"),
    png: Annotated[Path, typer.Option(help="report chart")] = Path("runs/verify/verify.png"),
) -> None:
    """Accuracy cost of each engine: cosine vs FP32 torch and Rank-1/mAP/mINP on the test split."""
    from mvd_edge.verify import save_report, verify_engines

    chosen = [s.strip() for s in settings.split(",")] if settings else None
    report = verify_engines(checkpoint, engines, dataset, root, settings=chosen, trials=trials)
    save_report(report, json_out, png)
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
    console.print(f"wrote {json_out} and {png}")


def _int_list(text: str, what: str) -> list[int]:
    try:
        vals = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise typer.BadParameter(f"{what} must be positive integers, got {text!r}")
    return vals


@app.command()
@friendly
def profile(
    engine: Annotated[Path, typer.Argument(help="engine (+sidecar), exported .onnx, or checkpoint .pt (torch backend)")],
    batch: Annotated[str, typer.Option(help="batch sizes to measure")] = "1,8,32",
    iters: Annotated[int, typer.Option(help="timed calls per batch size")] = 50,
    warmup: Annotated[int, typer.Option(help="untimed calls first")] = 10,
    device: Annotated[Optional[str], typer.Option(help="cpu/cuda (ort), cuda:N (trt, torch)")] = None,
    fused_head: Annotated[Optional[bool], typer.Option(help="torch backend: fused Triton head (default: on with CUDA)")] = None,
    out: Annotated[Path, typer.Option(help="folder for profile.json and PNGs")] = Path("runs/profile"),
) -> None:
    """Per-stage latency (p50/p90/p99/max), throughput, peak memory; table, JSON and PNGs."""
    from mvd_edge.profile import STAGES, profile_embedder, save_profile
    from mvd_edge.runtime import load_embedder

    batches = _int_list(batch, "--batch")
    if iters < 1 or warmup < 0:
        raise typer.BadParameter("--iters must be >= 1 and --warmup >= 0")
    kwargs = {"fused_head": fused_head} if engine.suffix == ".pt" and fused_head is not None else {}
    emb = load_embedder(engine, device=device, max_batch=max(batches) if engine.suffix in (".pt",) else None,
                        **kwargs)
    try:
        res = profile_embedder(emb, batches, iters=iters, warmup=warmup)
    finally:
        emb.close()
    paths = save_profile(res, out)
    table = Table(title=f"{engine.name}: {res['backend']} {res['precision']} ({res.get('recipe')}), ms per call")
    table.add_column("batch", justify="right")
    table.add_column("stage")
    for col in ("p50", "p90", "p99", "max"):
        table.add_column(col, justify="right")
    table.add_column("crops/s", justify="right")
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
    console.print(f"wrote {paths['json']}, {paths['latency_png']}, {paths['throughput_png']}")


@app.command()
@friendly
def bench(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint (.pt) to build every variant from")],
    dataset: Annotated[str, typer.Option(help="data set for accuracy (its test split) and INT8 calibration (train)")] = "sysu",
    root: Annotated[Path, typer.Option(help="data set root")] = Path("runs/train/synthetic"),
    backends: Annotated[str, typer.Option(help="torch,ort,trt")] = "torch,ort,trt",
    precisions: Annotated[str, typer.Option(help="fp32,fp16,int8")] = "fp32,fp16,int8",
    recipes: Annotated[str, typer.Option(help="full,shared,z")] = "full,shared,z",
    fused_head: Annotated[str, typer.Option(help="fused head variants: off, on or on,off")] = "off,on",
    compile: Annotated[bool, typer.Option("--compile/--no-compile", help="add torch.compile variants of torch")] = False,
    batch: Annotated[str, typer.Option(help="batch sizes")] = "1,32",
    iters: Annotated[int, typer.Option(help="timed calls per batch size")] = 20,
    trials: Annotated[int, typer.Option(help="gallery trials for Rank-1/mAP")] = 3,
    calib_n: Annotated[int, typer.Option(help="INT8 calibration crops")] = 512,
    device: Annotated[str, typer.Option(help="cpu or cuda[:N]")] = "cpu",
    out: Annotated[Path, typer.Option(help="output folder (bench.json, bench_pareto.png, artifacts/)")] = Path("runs/bench"),
) -> None:
    """Build and measure backend x precision x recipe x fused-head variants side by side."""
    from mvd_edge.bench import run_bench, summary_rows
    from mvd_edge.core.spec import RECIPES

    fused = []
    for f in fused_head.split(","):
        if f.strip() not in ("on", "off"):
            raise typer.BadParameter(f"--fused-head takes on, off or on,off; got {fused_head!r}")
        fused.append(f.strip() == "on")
    recipe_list = [r.strip() for r in recipes.split(",")]
    for r in recipe_list:
        if r not in RECIPES:
            raise typer.BadParameter(f"unknown recipe {r!r}; choose from {', '.join(RECIPES)}")
    batches = _int_list(batch, "--batch")
    report = run_bench(checkpoint, out, dataset, root, backends=[b.strip() for b in backends.split(",")],
                       precisions=[p.strip() for p in precisions.split(",")], recipes=recipe_list, fused=fused,
                       compiled=compile, batches=batches, iters=iters, trials=trials, calib_n=calib_n, device=device)
    table = Table(title=f"bench on {device}: {report['setting']} ({trials} trials); latency = ms per call (p50)")
    for col in ["variant", "dim", *[f"ms@{b}" for b in batches], f"speedup@{batches[-1]}", f"crops/s@{batches[-1]}",
                "Rank-1", "mAP", "cos vs fp32"]:
        table.add_column(col, justify="left" if col == "variant" else "right")
    for row in summary_rows(report):
        table.add_row(*row)
    console.print(table)
    for s in report["skipped"]:
        console.print(f"[yellow]skipped[/] {s['variant']}: {s['reason']}")
    console.print(f"wrote {out / 'bench.json'} and {out / 'bench_pareto.png'}")


@app.command()
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="output folder for everything the demo makes")] = Path("runs/demo"),
    epochs: Annotated[Optional[int], typer.Option(help="training epochs (about 25 s each on 2 CPU cores) "
                                                        "(default: the training config's optim.epochs)")] = None,
    ids: Annotated[Optional[int], typer.Option(help="identities in the synthetic data set "
                                                    "(default: the training config's synth.n_ids)")] = None,
    video_seconds: Annotated[float, typer.Option(help="length of the synthetic IR/RGB video pair")] = 20.0,
    seed: Annotated[int, typer.Option(help="seed of data, video and training")] = 0,
) -> None:
    """The whole product on a CPU: synthetic data -> train -> export -> INT8 -> verify -> match -> profile -> report."""
    from mvd_edge.demo import run_demo

    if (epochs is not None and epochs < 1) or (ids is not None and ids < 12) or not video_seconds > 0:
        raise typer.BadParameter("need --epochs >= 1, --ids >= 12 and --video-seconds > 0")
    run_demo(out, epochs=epochs, ids=ids, video_seconds=video_seconds, seed=seed, console=console)


def _print_results(results: dict, title: str) -> None:
    from mvd_edge.eval.reid import summary_table

    table = Table(title=title)
    for col in ("setting", "Rank-1", "Rank-10", "Rank-20", "mAP", "mINP"):
        table.add_column(col, justify="right" if col != "setting" else "left")
    for row in summary_table(results):
        table.add_row(*row)
    console.print(table)


def _register_subcommands() -> None:
    from mvd_edge.match.commands import register

    register(app)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
