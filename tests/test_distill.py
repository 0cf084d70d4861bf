"""The one-pass student (`mvd-edge distill`): training, teacher handling, checkpoint, export, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SMALL_TRAIN
from typer.testing import CliRunner

from mvd_edge.cli import app
from mvd_edge.core.config import ConfigError, load_train_config
from mvd_edge.core.errors import UsageError
from mvd_edge.data.synthetic import ensure_synthetic
from mvd_edge.model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from mvd_edge.train.distill import Distiller, distill_config, kd_cosine, kd_relational, run_distill
from mvd_edge.train.trainer import run_training

SMALL = SMALL_TRAIN


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny MVD teacher trained one short epoch on a small synthetic set."""
    root = tmp_path_factory.mktemp("teacher")
    cfg = load_train_config(None, SMALL + [f"out={root / 'run'}", f"data.root={root / 'data'}", "optim.epochs=1",
                                           "optim.warmup_epochs=0"])
    ensure_synthetic(root / "data", cfg.synth)
    run_training(cfg, progress=False, evaluate_test=False)
    return root / "run" / "best.pt"


def _student_cfg(teacher, out, extra=()):
    return distill_config(teacher, None, [f"out={out}", "optim.epochs=1", "optim.warmup_epochs=0", *extra])


def test_config_inherits_the_teachers_data_and_refuses_two_branch_terms(teacher, tmp_path):
    cfg = _student_cfg(teacher, tmp_path / "s")
    t_cfg = load_checkpoint(teacher)["config"]
    assert cfg.data.root == t_cfg["data"]["root"] and cfg.synth.n_ids == 12 and cfg.data.height == 64
    assert cfg.eval.recipe == "shared" and cfg.distill.teacher == str(teacher)
    assert (cfg.loss.dml, cfg.loss.vcd, cfg.loss.vml) == (0, 0, 0) and cfg.loss.vsd > 0
    with pytest.raises(ConfigError, match="loss.vcd needs two branches"):
        _student_cfg(teacher, tmp_path / "s", ["loss.vcd=0.1"])
    with pytest.raises(ConfigError, match="not full"):
        _student_cfg(teacher, tmp_path / "s", ["eval.recipe=full"])
    with pytest.raises(ConfigError, match="distill.init"):
        _student_cfg(teacher, tmp_path / "s", ["distill.init=maybe"])


def test_student_loss_falls_and_the_teacher_is_frozen_in_eval_mode(teacher, tmp_path):
    d = Distiller(_student_cfg(teacher, tmp_path / "s"), progress=False)
    assert d.model.is_student and list(d.model.branches) == ["shared"]
    t_before = {k: v.clone() for k, v in d.teacher.state_dict().items()}
    x, labels, mods, _cams, _rep = next(iter(d.loader))
    d.teacher.train()  # even if someone flips it, targets come from eval mode
    t = d.teacher_targets(x)
    assert not d.teacher.training and not t.requires_grad
    with torch.no_grad():
        ref = d.teacher.eval().embed(x, "full")
    assert torch.allclose(t, ref, atol=1e-6) and t.shape[1] == d.teacher_dim == 4 * d.model.feat_dim
    losses = []
    d.model.train()
    for step in range(12):
        loss, terms, _ = d.compute_loss(step, x, d.model(x), labels, mods, 1.0)
        d.optimizer.zero_grad()
        loss.backward()
        d.optimizer.step()
        losses.append(terms)
    assert {"ce", "metric", "vsd", "kd_cos", "kd_rel", "total"} <= set(losses[0])
    assert losses[-1]["total"] < 0.8 * losses[0]["total"]
    assert losses[-1]["kd_cos"] < losses[0]["kd_cos"] and losses[-1]["kd_rel"] < losses[0]["kd_rel"]
    # the teacher took no gradient and no BatchNorm update
    assert all(p.grad is None and not p.requires_grad for p in d.teacher.parameters())
    after = d.teacher.state_dict()
    assert all(torch.equal(t_before[k], after[k]) for k in t_before)


def test_student_starts_from_the_teachers_shared_branch_or_from_scratch(teacher, tmp_path):
    t_model, _ = model_from_checkpoint(teacher)
    ref = t_model.branches["shared"].trunk.state_dict()
    auto = Distiller(_student_cfg(teacher, tmp_path / "a"), progress=False)
    assert auto.student_of["init"] == "teacher" and auto.student_of["init_tensors_copied"] > 0
    got = auto.model.branches["shared"].trunk.state_dict()
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    scratch = Distiller(_student_cfg(teacher, tmp_path / "b", ["distill.init=scratch"]), progress=False)
    got = scratch.model.branches["shared"].trunk.state_dict()
    assert scratch.student_of["init"] == "scratch"
    assert not all(torch.equal(ref[k], got[k]) for k in ref)
    with pytest.raises(ConfigError, match="needs the teacher's backbone"):
        Distiller(_student_cfg(teacher, tmp_path / "c", ["model.backbone=resnet18", "distill.init=teacher"]),
                  progress=False)


def test_distill_run_writes_a_student_checkpoint_that_exports_with_its_teacher_named(teacher, tmp_path):
    from mvd_edge.core.graphmeta import GraphMeta
    from mvd_edge.deploy.export import export_onnx
    from mvd_edge.runtime.engine import build_engine

    cfg = _student_cfg(teacher, tmp_path / "s", ["optim.epochs=2"])
    summary = run_distill(cfg, progress=False)
    out = Path(cfg.out)
    for name in ("best.pt", "last.pt", "log.csv", "student.json", "test_results.json"):
        assert (out / name).is_file(), name
    state = load_checkpoint(out / "best.pt")
    assert state["model_spec"]["branches"] == ["shared"] and state["recipe"] == "shared"
    assert state["student_of"]["teacher_sha256"] == summary["student_of"]["teacher_sha256"]
    assert not any(k.startswith("kd_proj") for k in state["model"])  # the projection is training-only
    student, _ = model_from_checkpoint(out / "best.pt")
    assert student.is_student and student.embedding_dim() == student.feat_dim
    with pytest.raises(UsageError, match="needs all three branches"):
        model_from_checkpoint(out / "best.pt", recipe="full")
    onnx_path = tmp_path / "student.onnx"
    rep = export_onnx(out / "best.pt", onnx_path)
    assert rep["parity"]["min_cosine"] > 0.99999
    meta = GraphMeta.from_onnx(onnx_path)
    assert meta.recipe == "shared" and meta.student_of["student"] is True
    assert meta.student_of["teacher_recipe"] == "full" and meta.student_of["teacher_backbone"] == "tiny"
    info = build_engine(onnx_path, tmp_path / "student.ort.onnx", backend="ort")
    assert info["student_of"]["teacher_sha256"] == state["student_of"]["teacher_sha256"]
    # a student is not a teacher
    with pytest.raises(UsageError, match="itself a one-pass student"):
        Distiller(_student_cfg(out / "best.pt", tmp_path / "t"), progress=False)


def test_resume_with_another_teacher_is_refused(teacher, tmp_path):
    from mvd_edge.model.checkpoint import save_checkpoint

    cfg = _student_cfg(teacher, tmp_path / "s")
    run_distill(cfg, progress=False, evaluate_test=False)
    other = tmp_path / "other.pt"
    state = load_checkpoint(teacher)
    state["epoch"] = 99  # another file: another hash
    save_checkpoint(state, other)
    cfg2 = _student_cfg(other, tmp_path / "s", ["optim.epochs=2"])
    with pytest.raises(CheckpointError, match="distilled from another teacher"):
        Distiller(cfg2, resume=True, progress=False)
    resumed = run_distill(_student_cfg(teacher, tmp_path / "s", ["optim.epochs=2"]), resume=True, progress=False,
                          evaluate_test=False)
    assert [r["epoch"] for r in resumed["history"]] == [1, 2]


def test_kd_terms_are_zero_exactly_when_the_geometry_matches():
    g = torch.Generator().manual_seed(0)
    t = torch.nn.functional.normalize(torch.randn(8, 32, generator=g), dim=1)
    q, _ = torch.linalg.qr(torch.randn(32, 32, generator=g))
    rotated = t @ q  # same cosines between rows, other coordinates
    assert float(kd_relational(rotated, t)) < 1e-10
    assert float(kd_relational(3.0 * rotated, t)) < 1e-10  # scale-free
    assert float(kd_relational(torch.randn(8, 16, generator=g), t)) > 1e-3
    assert float(kd_cosine(2.0 * t, t)) < 1e-6
    assert abs(float(kd_cosine(-t, t)) - 2.0) < 1e-6


def test_cli_distill_runs_and_refuses_writing_over_its_teacher(teacher, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["distill", str(teacher), "--out", str(tmp_path / "s"), "--epochs", "1",
                              "--set", "optim.warmup_epochs=0", "--no-test"])
    assert res.exit_code == 0, res.output
    assert "one pass, recipe shared" in res.output and (tmp_path / "s" / "best.pt").is_file()
    rec = json.loads((tmp_path / "s" / "student.json").read_text())
    assert rec["teacher_recipe"] == "full"
    res = runner.invoke(app, ["distill", str(teacher), "--out", str(teacher.parent), "--epochs", "1"])
    assert res.exit_code != 0 and "destroy the input" in res.output
    res = runner.invoke(app, ["distill", str(teacher), "--out", str(tmp_path / "s"), "--epochs", "1"])
    assert res.exit_code != 0 and "--resume" in res.output  # an existing run is not replaced silently
    res = runner.invoke(app, ["distill", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "x")])
    assert res.exit_code != 0 and "checkpoint not found" in res.output
    assert np.isfinite(rec["teacher_embedding_dim"])


def test_distill_under_torchrun_two_cpu_processes(teacher, tmp_path):
    """Under DDP (gloo, two processes) the student and its training-only projection train, and
    rank 0 saves both unwrapped."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={port}", "-m", "mvd_edge", "distill", str(teacher), "--no-test", "--out", str(out),
            "--epochs", "1", "--set", "data.batches_per_epoch=3", "--set", "optim.warmup_epochs=0"]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    state = load_checkpoint(out / "last.pt")
    assert state["model_spec"]["branches"] == ["shared"]
    assert not any(k.startswith("module.") for k in state["model"])
    assert set(state["distill_state"]["kd_proj"]) == {"weight"}  # saved unwrapped
