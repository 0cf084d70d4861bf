"""Serving commands: ``export-triton`` (a Triton Inference Server model repository from an engine).

The runtime modules are imported inside the command, so ``--help`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from mvd_edge.cli._common import OVERWRITE_HELP, check_outputs, console, friendly, parse_int_list
from mvd_edge.core.errors import UsageError

app = typer.Typer()


@app.command("export-triton")
@friendly
def export_triton_cmd(
    engine: Annotated[Path, typer.Argument(help="engine (.onnx/.engine with its sidecar) or an exported .onnx")],
    repo: Annotated[Path, typer.Option(help="Triton model repository folder (created if missing)")],
    name: Annotated[Optional[str], typer.Option(help="model name (default: from the engine's file name)")] = None,
    max_batch: Annotated[Optional[int], typer.Option(help="max_batch_size (default: the engine's max batch; "
                                                          "32 for a bare .onnx)")] = None,
    instances: Annotated[int, typer.Option(help="model instances (instance_group count)")] = 1,
    kind: Annotated[Optional[str], typer.Option(help="cpu or gpu instances (default: gpu for TensorRT and CUDA "
                                                     "engines, else cpu)")] = None,
    preferred_batch: Annotated[Optional[str], typer.Option(help="dynamic batcher's preferred batch sizes, "
                                                                "e.g. 4,8")] = None,
    queue_delay_us: Annotated[int, typer.Option(help="dynamic batcher's max queue delay (microseconds)")] = 100,
    ensemble: Annotated[bool, typer.Option(help="also write NAME_pre (Python-backend preprocessing) and "
                                                "NAME_ensemble (uint8 crops in)")] = True,
    overwrite: Annotated[bool, typer.Option(help=OVERWRITE_HELP)] = False,
) -> None:
    """Write a Triton Inference Server model repository for an engine (config.pbtxt, model, preprocessing)."""
    from mvd_edge.runtime.triton_repo import default_model_name

    if kind is not None and kind not in ("cpu", "gpu"):
        raise UsageError(f"--kind must be cpu or gpu, got {kind!r}")
    name = name or default_model_name(engine)
    names = [name] + ([f"{name}_pre", f"{name}_ensemble"] if ensemble else [])
    check_outputs({f"Triton model folder {n}": repo / n for n in names}, {"engine": engine}, overwrite)
    if not engine.is_file():
        raise FileNotFoundError(f"engine not found: {engine}")
    preferred = parse_int_list(preferred_batch, "--preferred-batch") if preferred_batch else None
    from mvd_edge.runtime.triton_repo import export_triton

    report = export_triton(engine, repo, name, max_batch=max_batch, instances=instances, kind=kind,
                           preferred_batch=preferred, queue_delay_us=queue_delay_us,
                           preprocess="ensemble" if ensemble else "none", overwrite=overwrite)
    inp, out = report["input"], report["output"]
    console.print(f"[green]wrote[/] {', '.join(str(repo / n) for n in report['models'])} "
                  f"({report['platform']}, max batch {report['max_batch']}, {report['instances']}x "
                  f"{report['kind']}; {inp['name']} {inp['dims']} -> {out['name']} {out['dims']})", highlight=False)
    host = "HOST:8000"
    console.print(f"serve it: tritonserver --model-repository={repo}", highlight=False)
    console.print(f"use it: mvd-edge match ... --model triton://{host}/{name}"
                  + (f"  (or triton://{host}/{name}_ensemble: uint8 crops)" if ensemble else ""), highlight=False)
