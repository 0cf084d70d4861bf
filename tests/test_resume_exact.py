"""Resume is exact: a run killed after an epoch and resumed ends bit for bit where the uninterrupted
run ends, data-loader workers included; a resumed run with more epochs never trains at learning rate 0."""

import pytest
import torch
from conftest import SMALL_TRAIN

from mvd_edge.core.config import load_train_config
from mvd_edge.train import trainer as trainer_mod
from mvd_edge.train.trainer import Trainer, lr_factor


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: a tiny model on a busy machine runs many times faster than with spinning threads
    (both runs of a comparison use the same setting, so the bits compared are unaffected)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


WORKERS = [kv for kv in SMALL_TRAIN if not kv.startswith("data.workers=")] + ["data.workers=2"]


def _cfg(out, synth_root, extra=()):
    return load_train_config(None, WORKERS + [f"out={out}", f"data.root={synth_root}", "eval.trials=1", *extra])


class _Killed(BaseException):
    """Stands for the process being killed (not an Exception: nothing catches it)."""


def _losses(history):
    return [{k: v for k, v in row.items() if k.startswith("loss_") or k in ("epoch", "lr")} for row in history]


def test_resume_after_a_kill_with_loader_workers_is_bit_identical(tmp_path, synth_root, monkeypatch):
    extra = ["optim.epochs=3", "optim.warmup_epochs=1", "seed=7", "data.gray_prob=0.3", "data.channel_prob=0.3",
             "eval.eval_every=2"]
    straight = Trainer(_cfg(tmp_path / "a", synth_root, extra), progress=False)
    straight.fit()

    real_save = trainer_mod.save_checkpoint

    def save_then_die(state, path):  # killed right after last.pt of epoch 1 is on disk
        real_save(state, path)
        if path.name == "last.pt" and state["epoch"] == 0:
            raise _Killed

    monkeypatch.setattr(trainer_mod, "save_checkpoint", save_then_die)
    with pytest.raises(_Killed):
        Trainer(_cfg(tmp_path / "b", synth_root, extra), progress=False).fit()
    monkeypatch.undo()

    resumed = Trainer(_cfg(tmp_path / "b", synth_root, extra), resume=True, progress=False)
    assert resumed.start_epoch == 1
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _losses(resumed.history) == _losses(straight.history)
    assert [r["val_rank1"] for r in resumed.history] == [r["val_rank1"] for r in straight.history]


def test_an_epoch_boundary_does_not_depend_on_the_history_of_the_workers(tmp_path, synth_root):
    """Epoch e's augmentation streams are a function of (seed, epoch): the same batch of epoch 2 whether
    or not epoch 1 ran in this process."""
    cfg = _cfg(tmp_path / "w", synth_root, ["optim.epochs=2", "seed=4", "data.gray_prob=0.5"])
    t = Trainer(cfg, progress=False)
    t.sampler.set_epoch(1)
    t._seed_loader(1)
    fresh = [x.clone() for x, *_ in t.loader]
    t._seed_loader(0)
    t.sampler.set_epoch(0)
    list(t.loader)
    t.sampler.set_epoch(1)
    t._seed_loader(1)
    again = [x.clone() for x, *_ in t.loader]
    assert len(fresh) == len(again) == t.sampler.steps_per_epoch
    assert all(torch.equal(p, q) for p, q in zip(fresh, again))


def test_extending_a_finished_run_trains_every_new_epoch_at_a_nonzero_rate(tmp_path, synth_root, capsys):
    base = ["optim.warmup_epochs=1", "optim.schedule=cosine", "data.workers=0"]
    Trainer(_cfg(tmp_path / "r", synth_root, base + ["optim.epochs=2"]), progress=False).fit()
    capsys.readouterr()
    more = _cfg(tmp_path / "r", synth_root, base + ["optim.epochs=4"])
    t = Trainer(more, resume=True, progress=False)
    said = capsys.readouterr().out
    t.fit()
    rows = t.history
    assert [r["epoch"] for r in rows] == [1, 2, 3, 4]
    o = more.optim
    for r in rows[2:]:
        assert r["lr"] > 0
        want = o.lr * lr_factor(r["epoch"] - 1, 4, o.warmup_epochs, o.warmup_factor, o.schedule, o.milestones,
                                o.gamma)
        assert r["lr"] == pytest.approx(want, rel=1e-12)
    assert "resuming at epoch 3 with optim.epochs=4 (the run was planned for 2)" in said
    assert "the learning rate follows the 4-epoch schedule from here" in said
