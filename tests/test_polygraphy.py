"""Cross-check of the project's graphs with NVIDIA Polygraphy (``polygraphy run --onnxrt``, CPU).

A tiny model's FP32, FP16 and INT8 (``trt`` and ``cpu`` flavour) graphs are written with the
project's own commands (``export``, ``fp16``, ``int8``). Polygraphy then runs each graph on ONNX
Runtime (CPU) with inputs loaded from the project's preprocessing (``--load-inputs``) and
compares against reference outputs the project computed (``--load-outputs``), with the
tolerances below (max element-wise error, on L2-normalised embeddings of 16 fresh crops):

* every graph against the project's own run of that graph (ONNX Runtime through
  ``mvd_edge.quant.sensitivity``; the ``trt`` flavour unfused, as TensorRT computes Q/DQ):
  atol 1e-5 (``SAME_GRAPH_ATOL``): the two harnesses agree on what the graph computes;
* every graph against the FP32 torch model (``MVDNet.embed``, the export's parity reference):
  FP32 atol 1e-4 (the export's own tolerance), FP16 atol 2e-3, INT8 atol 3e-2 (measured here:
  2e-7, 8e-4 and 0.015 for both flavours).

A reference made wrong on purpose must fail the same comparison (the check is live).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from polygraphy.comparator import IterationResult, RunResults
from polygraphy.json import save_json
from tiny_checkpoint import tiny_checkpoint, write_calib_crops
from typer.testing import CliRunner

from mvd_edge.cli import app
from mvd_edge.core.preprocess import PreprocessSpec, preprocess_batch
from mvd_edge.core.util import random_crops
from mvd_edge.model.checkpoint import model_from_checkpoint
from mvd_edge.quant.sensitivity import embed, session

SPEC = PreprocessSpec(height=64, width=32)
SAME_GRAPH_ATOL = 1e-5
VS_TORCH_ATOL = {"fp32": 1e-4, "fp16": 2e-3, "int8-trt": 3e-2, "int8-cpu": 3e-2}
GRAPHS = {"fp32": "model.onnx", "fp16": "model.fp16.onnx", "int8-trt": "model.int8-trt.onnx",
          "int8-cpu": "model.int8-cpu.onnx"}
POLYGRAPHY = shutil.which("polygraphy", path=str(Path(sys.executable).parent)) or shutil.which("polygraphy")


def _cli(args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, r.output
    return r.output


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("poly")
    ckpt = tiny_checkpoint(root / "tiny.pt", SPEC)
    models = root / "models"
    _cli(["export", ckpt, "--out", models / GRAPHS["fp32"]])
    _cli(["fp16", models / GRAPHS["fp32"]])
    write_calib_crops(root / "calib")
    _cli(["int8", models / GRAPHS["fp32"], "--folder", root / "calib", "--flavours", "trt,cpu"])
    x = preprocess_batch(random_crops(16, np.random.default_rng(99)), SPEC)  # fresh: not calibration, not parity
    save_json([{"input": x}], root / "inputs.json")
    model, _ = model_from_checkpoint(ckpt)
    with torch.no_grad():
        torch_ref = model.embed(torch.from_numpy(x), "full").numpy()
    return {"root": root, "models": models, "x": x, "torch_ref": torch_ref}


def _save_outputs(path: Path, y: np.ndarray, name: str) -> Path:
    RunResults([(name, [IterationResult({"embedding": y.astype(np.float32)}, runner_name=name)])]).save(str(path))
    return path


def _polygraphy(graph: Path, inputs: Path, outputs: Path, atol: float, unfused: bool = False):
    cmd = [POLYGRAPHY, "run", str(graph), "--onnxrt", "--providers", "cpu", "--load-inputs", str(inputs),
           "--load-outputs", str(outputs), "--atol", str(atol), "--rtol", "0", "--check-error-stat", "max"]
    if unfused:
        cmd += ["--graph-optimization-level", "ORT_DISABLE_ALL"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_polygraphy_is_installed_as_a_console_script():
    assert POLYGRAPHY, "polygraphy is a test dependency: pip install polygraphy"


@pytest.mark.parametrize("kind", list(GRAPHS))
def test_polygraphy_agrees_with_the_projects_own_run_of_each_graph(work, kind):
    graph = work["models"] / GRAPHS[kind]
    unfused = kind == "int8-trt"  # TensorRT's arithmetic: every Q/DQ pair as written
    ours = embed(session(str(graph), exact_qdq=unfused), work["x"])
    ref = _save_outputs(work["root"] / f"{kind}.project.json", ours, "mvd-edge")
    proc = _polygraphy(graph, work["root"] / "inputs.json", ref, SAME_GRAPH_ATOL, unfused=unfused)
    assert proc.returncode == 0 and "PASSED" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


@pytest.mark.parametrize("kind", list(GRAPHS))
def test_polygraphy_against_the_fp32_torch_reference(work, kind):
    graph = work["models"] / GRAPHS[kind]
    ref = _save_outputs(work["root"] / "torch.json", work["torch_ref"], "torch-fp32")
    proc = _polygraphy(graph, work["root"] / "inputs.json", ref, VS_TORCH_ATOL[kind], unfused=kind == "int8-trt")
    assert proc.returncode == 0 and "PASSED" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]


def test_a_wrong_reference_fails_the_same_comparison(work):
    wrong = work["torch_ref"].copy()
    wrong[3, 7] += 5 * VS_TORCH_ATOL["int8-cpu"]
    ref = _save_outputs(work["root"] / "wrong.json", wrong, "torch-fp32")
    for kind in ("fp32", "int8-cpu"):
        proc = _polygraphy(work["models"] / GRAPHS[kind], work["root"] / "inputs.json", ref, VS_TORCH_ATOL[kind])
        assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, (proc.stdout + proc.stderr)[-3000:]
