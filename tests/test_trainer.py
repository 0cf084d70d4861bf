"""Trainer: checkpoints, resume equivalence, atomic writes, validation-based selection, DDP (gloo)."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL_TRAIN, free_port

from mvd_edge.core.config import ConfigError, load_train_config
from mvd_edge.data.synthetic import ensure_synthetic
from mvd_edge.model.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint, save_checkpoint
from mvd_edge.train import trainer as trainer_mod
from mvd_edge.train.trainer import Trainer, lr_factor, run_training

SMALL = SMALL_TRAIN




def test_ensure_synthetic_rewrites_a_set_written_with_other_settings(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("mvd_edge.synth.dataset.write_sysu", lambda root, **kw: calls.append(kw) or _fake_set(root, kw))
    root = tmp_path / "d"
    cfg = load_train_config(None, SMALL + [f"out={tmp_path}"])
    ensure_synthetic(root, cfg.synth)
    ensure_synthetic(root, cfg.synth)  # complete and the same: kept
    assert len(calls) == 1 and calls[0]["render"] == "crops"
    scenes = load_train_config(None, SMALL + [f"out={tmp_path}", "synth.render=scenes"])
    ensure_synthetic(root, scenes.synth)
    assert len(calls) == 2 and calls[1]["render"] == "scenes"
    ensure_synthetic(root, scenes.synth)
    assert len(calls) == 2
    fewer = load_train_config(None, SMALL + [f"out={tmp_path}", "synth.render=scenes", "synth.scene_people=3"])
    ensure_synthetic(root, fewer.synth)  # one setting differs: rewritten
    assert len(calls) == 3 and calls[2]["scene_people"] == 3
    # a folder the user named is never rewritten: a clear error names what differs
    with pytest.raises(ConfigError, match=r"synth\.render: 'scenes' there, 'crops' asked"):
        ensure_synthetic(root, cfg.synth, rewrite=False)
    assert len(calls) == 3
    # a complete set without our marker is left as it is
    (root / "synthetic.json").unlink()
    ensure_synthetic(root, cfg.synth)
    assert len(calls) == 3


def test_the_registry_refuses_an_unknown_data_set_or_a_missing_root_before_anything_is_written(tmp_path):
    from mvd_edge.core.errors import UsageError

    cfg = load_train_config(None, SMALL + [f"out={tmp_path / 'run'}", "data.dataset=sysu"])
    with pytest.raises(ConfigError, match=r"data\.root is required for data\.dataset='sysu'"):
        Trainer(cfg, progress=False)
    cfg = load_train_config(None, SMALL + [f"out={tmp_path / 'run'}", "data.dataset=market1501"])
    with pytest.raises(UsageError, match="unknown data set 'market1501': choose one of synthetic, sysu"):
        Trainer(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def _fake_set(root, kw):
    from mvd_edge.synth.dataset import MARKER, sysu_marker

    (root / "exp").mkdir(parents=True, exist_ok=True)
    (root / "exp" / "test_id.txt").write_text("1\n")
    meta = sysu_marker(kw["n_ids"], kw["images_per_cam"], kw["size"], kw["seed"], render=kw["render"],
                       scene_people=kw["scene_people"])
    (root / MARKER).write_text(json.dumps(meta))


def _cfg(out, synth_root, extra=()):
    return load_train_config(None, SMALL + [f"out={out}", f"data.root={synth_root}", *extra])


def test_run_writes_checkpoints_logs_and_test_results(tmp_path, synth_root):
    cfg = _cfg(tmp_path / "run", synth_root, ["optim.epochs=2", "optim.warmup_epochs=1"])
    summary = run_training(cfg, progress=False)
    out = Path(cfg.out)
    for name in ("last.pt", "best.pt", "log.csv", "test_results.json", "cmc.png"):
        assert (out / name).is_file(), name
    state = torch.load(out / "last.pt", weights_only=True)  # loads under weights_only
    assert state["epoch"] == 1 and len(state["history"]) == 2
    rows = list(csv.DictReader(open(out / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(r["val_rank1"] not in ("", None) for r in rows)  # validated every epoch
    results = json.loads((out / "test_results.json").read_text())
    assert set(results) == {"sysu-all-single", "sysu-indoor-single"}
    assert results["sysu-all-single"]["trials"] == 2
    assert 1 <= summary["best"]["epoch"] <= 2
    # best.pt is the epoch with the best validation Rank-1 (ties by mAP), never the test split
    val = [(float(r["val_rank1"]), float(r["val_mAP"])) for r in rows]
    assert summary["best"]["epoch"] == 1 + max(range(2), key=lambda i: val[i])


def test_log_has_ramp_and_gradient_fractions_and_cross_modal_trains(tmp_path, synth_root):
    """Ramp 0 through the warm-up epoch; each active term's shared-trunk gradient / CE's logged every epoch."""
    cfg = _cfg(tmp_path / "run", synth_root, ["optim.epochs=3", "optim.warmup_epochs=1", "loss.ramp=1.0",
                                               "loss.vcd_pairs=cross-modal", "loss.vcd=0.5", "loss.vml=0.5"])
    Trainer(cfg, progress=False).fit()
    rows = list(csv.DictReader(open(Path(cfg.out) / "log.csv")))
    assert [float(r["ramp"]) for r in rows][0] == 0.0  # epoch 1 is the warm-up
    assert 0.0 < float(rows[1]["ramp"]) < 1.0 and float(rows[1]["ramp"]) < float(rows[2]["ramp"])
    for r in rows:
        assert {"grad_metric", "grad_dml", "grad_vsd", "grad_vcd", "grad_vml"} <= set(r)
        assert float(r["grad_vsd"]) > 0
    assert float(rows[0]["grad_vcd"]) == 0.0 and float(rows[2]["grad_vcd"]) > 0  # ramped in after the warm-up
    assert float(rows[2]["grad_dml"]) == 0.0  # DML acts on the specific branches, never the shared trunk
    off = _cfg(tmp_path / "off", synth_root, ["optim.epochs=1", "loss.vcd=0", "loss.vml=0", "loss.ramp=0", "loss.grad_log=false"])
    Trainer(off, progress=False).fit()
    row = next(csv.DictReader(open(Path(off.out) / "log.csv")))
    assert not any(k.startswith("grad_") for k in row) and float(row["ramp"]) == 1.0


def test_resume_continues_exactly_where_it_stopped(tmp_path, synth_root):
    extra = ["optim.epochs=2", "optim.warmup_epochs=1", "seed=5"]
    straight = Trainer(_cfg(tmp_path / "a", synth_root, extra), progress=False)
    straight.fit()
    first = Trainer(_cfg(tmp_path / "b", synth_root, extra[1:] + ["optim.epochs=1"]), progress=False)
    first.fit()
    # the run was "killed" after epoch 1; resume with the full schedule
    resumed = Trainer(_cfg(tmp_path / "b", synth_root, extra), resume=True, progress=False)
    assert resumed.start_epoch == 1
    resumed.fit()
    a = straight.model.state_dict()
    b = resumed.model.state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert len(resumed.history) == 2


def test_resume_needs_a_checkpoint_and_the_same_model(tmp_path, synth_root):
    with pytest.raises(CheckpointError, match="last.pt"):
        Trainer(_cfg(tmp_path / "none", synth_root), resume=True, progress=False)
    Trainer(_cfg(tmp_path / "c", synth_root, ["optim.epochs=1"]), progress=False).fit()
    with pytest.raises(CheckpointError, match="different model"):
        Trainer(_cfg(tmp_path / "c", synth_root, ["optim.epochs=2", "model.last_stride=2"]), resume=True,
                progress=False)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint({"format": trainer_mod.CKPT_FORMAT, "epoch": 1}, path)

    def broken_save(obj, fh):
        fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(trainer_mod.torch, "save", broken_save)
    with pytest.raises(OSError):
        save_checkpoint({"format": trainer_mod.CKPT_FORMAT, "epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1  # the old checkpoint survived intact


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_checkpoint(junk)
    other = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="not an mvd-edge checkpoint"):
        model_from_checkpoint(other)
    pickled = tmp_path / "pickled.pt"  # a pickle weights_only refuses: one clear line, not torch's essay
    torch.save({"x": ConfigError("a class weights_only does not allow")}, pickled)
    with pytest.raises(CheckpointError, match="loads with weights_only=True$"):
        load_checkpoint(pickled)
    # an mvd-edge checkpoint whose model_spec or weights are damaged
    from conftest import make_checkpoint

    good = load_checkpoint(make_checkpoint(tmp_path / "good.pt"))
    for name, damage in (("spec", lambda st: st["model_spec"].pop("backbone")),
                         ("weights", lambda st: st["model"].pop(next(iter(st["model"]))))):
        st = load_checkpoint(tmp_path / "good.pt")
        damage(st)
        save_checkpoint(st, tmp_path / f"{name}.pt")
        with pytest.raises(CheckpointError, match="model_spec is damaged" if name == "spec" else "do not fit"):
            model_from_checkpoint(tmp_path / f"{name}.pt")
    assert good["model_spec"]["backbone"] == "tiny"


def test_lr_schedule_warmup_then_decay():
    f = [lr_factor(e, 10, 2, 0.01, "cosine", [], 0.1) for e in range(10)]
    assert f[0] == pytest.approx(0.01) and f[2] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[2:], f[3:]))
    s = [lr_factor(e, 10, 0, 0.01, "step", [4, 8], 0.1) for e in range(10)]
    assert s[3] == 1.0 and s[4] == pytest.approx(0.1) and s[9] == pytest.approx(0.01)


def test_unreadable_images_are_counted_not_fatal(tmp_path, synth_root):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(synth_root, root)
    victims = sorted((root / "cam1").rglob("*.jpg"))  # a quarter of every identity's RGB images
    for v in victims:
        v.write_bytes(b"corrupt")
    cfg = _cfg(tmp_path / "run", root, ["optim.epochs=1", "data.batches_per_epoch=4"])
    t = Trainer(cfg, progress=False)
    with pytest.warns(UserWarning, match="unreadable"):
        row = t.train_epoch(0)
    assert row["replaced_images"] > 0  # the epoch finished and the replacements are counted in the log row
    ds = t.loader.dataset
    for i, s in enumerate(ds.samples):
        if s.path in victims:
            x, label, _, _, replaced = ds[i]
            assert replaced == 1 and torch.isfinite(x).all() and label == t.labels[s.pid]
            break
    else:
        pytest.fail("no corrupted sample in the training split")




def test_ddp_two_cpu_processes_gloo(tmp_path, synth_root):
    out = tmp_path / "ddp"
    args = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
            f"--master_port={free_port()}", "-m", "mvd_edge", "train", "--no-test", "--out", str(out),
            "--root", str(synth_root)]
    for item in SMALL + ["optim.epochs=1", "data.batches_per_epoch=4"]:
        args += ["--set", item]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 0
    assert not any(k.startswith("module.") for k in state["model"])  # saved unwrapped
    assert (out / "log.csv").is_file()


class _Killed(BaseException):
    """Stands for the process being killed at a write point (not an Exception: nothing catches it)."""


def _kill_at(monkeypatch, n: int) -> list[str]:
    """Make the n-th write point of the trainer (1-based) die; returns the log of write points."""
    calls: list[str] = []
    real_save, real_log, real_promote = trainer_mod.save_checkpoint, trainer_mod._write_log, trainer_mod._promote_best

    def point(name, fn, partial=None):
        def wrapped(*args, **kwargs):
            calls.append(name)
            if len(calls) == n:
                if partial is not None:
                    partial(*args)
                raise _Killed(name)
            return fn(*args, **kwargs)
        return wrapped

    def half_written(state, path):  # the temp file a killed torch.save leaves behind
        path.with_name(f".{path.name}.tmp-{os.getpid()}").write_bytes(b"partial")

    monkeypatch.setattr(trainer_mod, "save_checkpoint",
                        point("save", real_save, half_written))
    monkeypatch.setattr(trainer_mod, "_write_log", point("log", real_log))
    monkeypatch.setattr(trainer_mod, "_promote_best", point("promote", real_promote))
    return calls


def test_a_run_killed_at_any_write_point_resumes_to_a_valid_best_and_complete_log(tmp_path, synth_root, monkeypatch):
    extra = ["optim.epochs=3", "optim.warmup_epochs=1", "seed=3"]
    ref = Trainer(_cfg(tmp_path / "ref", synth_root, extra), progress=False)
    ref.fit()
    ref_last = load_checkpoint(tmp_path / "ref" / "last.pt")
    points = 0
    n = 1
    while True:
        out = tmp_path / f"kill{n}"
        calls = _kill_at(monkeypatch, n)
        try:
            Trainer(_cfg(out, synth_root, extra), progress=False).fit()
            killed = False
        except _Killed:
            killed = True
        monkeypatch.undo()
        if not killed:
            points = n - 1
            break
        assert calls[-1] in ("save", "log", "promote")
        resume = (out / "last.pt").is_file()
        Trainer(_cfg(out, synth_root, extra), resume=resume, progress=False).fit()
        last = load_checkpoint(out / "last.pt")
        best = load_checkpoint(out / "best.pt")
        assert best["epoch"] + 1 == last["best"]["epoch"] == ref_last["best"]["epoch"], (n, calls)
        rows = list(csv.DictReader(open(out / "log.csv")))
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3], (n, calls)
        assert [r["val_rank1"] for r in rows] == [str(h["val_rank1"]) for h in ref_last["history"]]
        assert not list(out.glob(".*")), (n, list(out.glob(".*")))  # no pending best, no temp files
        n += 1
    assert points >= 9  # every epoch has at least log + last.pt; improved ones also pending + promote


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_training_cleanly_and_resume_finishes_it(tmp_path, synth_root):
    import shutil
    import signal
    import time

    out = tmp_path / "run"
    exe = shutil.which("mvd-edge")
    cmd = ([exe] if exe else [sys.executable, "-m", "mvd_edge"]) + ["train", "--out", str(out), "--no-test"]
    for kv in SMALL + [f"data.root={synth_root}", "optim.epochs=40", "optim.warmup_epochs=1"]:
        cmd += ["--set", kv]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while not (out / "last.pt").is_file() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, text
    assert "stopped by SIGTERM" in text and "--resume" in text
    last = load_checkpoint(out / "last.pt")
    assert last["epoch"] + 1 < 40  # it stopped early
    done = last["epoch"] + 1
    assert [int(r["epoch"]) for r in csv.DictReader(open(out / "log.csv"))] == list(range(1, done + 1))
    assert load_checkpoint(out / "best.pt")["epoch"] + 1 == last["best"]["epoch"]
    assert not list(out.glob(".*.tmp-*"))


def test_training_into_an_existing_run_needs_resume_or_overwrite(tmp_path, synth_root):
    out = tmp_path / "run"
    Trainer(_cfg(out, synth_root, ["optim.epochs=1"]), progress=False).fit()
    before = {n: (out / n).read_bytes() for n in ("last.pt", "best.pt", "log.csv")}
    with pytest.raises(CheckpointError, match=r"already holds a run \(last.pt, best.pt\): --resume .*--overwrite"):
        Trainer(_cfg(out, synth_root, ["optim.epochs=1"]), progress=False)
    assert {n: (out / n).read_bytes() for n in before} == before  # nothing of the first run was touched
    from typer.testing import CliRunner

    from mvd_edge.cli import app

    args = ["train", "--out", str(out), "--no-test"]
    for kv in SMALL + [f"data.root={synth_root}", "optim.epochs=1"]:
        args += ["--set", kv]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 2 and "already holds a run" in r.output
    r = CliRunner().invoke(app, args + ["--overwrite", "--seed", "9"])
    assert r.exit_code == 0, r.output
    assert (out / "last.pt").read_bytes() != before["last.pt"]
    assert len(list(csv.DictReader(open(out / "log.csv")))) == 1  # the new run's log, not appended to the old one
    # --resume continues with the run's own config: only the new epoch count is needed on the command line
    r = CliRunner().invoke(app, ["train", "--out", str(out), "--no-test", "--resume", "--epochs", "2"])
    assert r.exit_code == 0, r.output
    state = load_checkpoint(out / "last.pt")
    assert state["epoch"] == 1 and state["config"]["seed"] == 9 and state["config"]["data"]["root"] == str(synth_root)
    # ... and a setting that contradicts the run is refused, naming it
    r = CliRunner().invoke(app, ["train", "--out", str(out), "--no-test", "--resume", "--epochs", "3",
                                 "--set", "optim.lr=0.5"])
    assert r.exit_code == 2 and "optim.lr is 0.5 here" in r.output
