"""scripts/ablation.py: row grammar and the paired statistics the docs/ablation table reports."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import load_repo_script

from mvd_edge.core.config import load_train_config


@pytest.fixture(scope="module")
def abl():
    return load_repo_script("scripts/ablation.py")


def test_variant_rows_set_pairing_weight_ramp_and_temperature(abl):
    assert abl.row_overrides("cross-modal:0.1:ramp:t4") == [
        "loss.vcd_pairs=cross-modal", "loss.vcd=0.1", "loss.vml=0.1", "loss.ramp=0.5", "loss.temperature=4.0"]
    assert abl.row_overrides("shared:2") == ["loss.vcd_pairs=shared", "loss.vcd=2.0", "loss.vml=2.0"]
    assert abl.row_overrides("reid") == ["loss.vsd=0", "loss.vcd=0", "loss.vml=0"]


def test_every_row_of_every_preset_is_a_valid_config(abl):
    for name in abl.expand_rows("coarse,pairs,weights") + list(abl.NAMED):
        cfg = load_train_config(None, abl.row_overrides(name))
        if name == "release":
            assert (cfg.loss.kl_form, cfg.loss.vsd_on, cfg.loss.vcd_pairs, cfg.loss.vml) == \
                ("release", "specific", "shared", 0)
        if name.startswith("cross-modal:0.05"):
            assert (cfg.loss.vcd, cfg.loss.vml, cfg.loss.ramp) == (0.05, 0.05, 0.5)


@pytest.mark.parametrize("bad", ["cross:0.1", "both:x", "both:0.3:warm", "vsd"])
def test_unknown_rows_are_refused(abl, bad):
    with pytest.raises(ValueError):
        abl.row_overrides(bad)


def test_expand_rows_keeps_order_and_drops_repeats(abl):
    assert abl.expand_rows("reid, +vsd, reid") == ["reid", "+vsd"]
    assert abl.expand_rows("weights")[0] == "cross-modal:0.05:ramp"


def test_paired_change_uses_only_shared_seeds_and_the_sample_se(abl):
    rows = {"+vsd": [{"seed": 0, "rank1": 20.0}, {"seed": 1, "rank1": 10.0}, {"seed": 2, "rank1": 30.0}],
            "x": [{"seed": 0, "rank1": 21.0}, {"seed": 1, "rank1": 13.0}, {"seed": 3, "rank1": 99.0}]}
    p = abl.paired(rows, "+vsd")
    assert p["x"]["n"] == 2 and p["x"]["per_seed"] == {"0": 1.0, "1": 3.0}
    assert p["x"]["mean"] == pytest.approx(2.0)
    assert p["x"]["se"] == pytest.approx(np.std([1.0, 3.0], ddof=1) / math.sqrt(2))
    assert p["+vsd"]["mean"] == 0.0


def test_grad_means_reads_the_trainer_columns(abl, tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("epoch,loss,grad_vsd,grad_vcd\n0,1,0.2,\n1,1,0.4,0.5\n")
    assert abl.grad_means(log) == {"vsd": pytest.approx(0.3), "vcd": pytest.approx(0.5)}
    assert abl.grad_means(tmp_path / "missing.csv") == {}


def test_report_tabulates_finished_runs_only(abl, tmp_path):
    import json
    for name, seed, r1 in (("+vsd", 0, 20.0), ("+vsd", 1, 10.0), ("both:0.1:ramp", 0, 23.0)):
        d = abl.run_dir(tmp_path, name, seed)
        d.mkdir(parents=True)
        (d / "result.json").write_text(json.dumps({"row": name, "seed": seed, "rank1": r1, "mAP": r1, "mINP": r1}))
    rows = abl.collect(tmp_path, ["+vsd", "both:0.1:ramp", "reid"], [0, 1, 2])
    assert set(rows) == {"+vsd", "both:0.1:ramp"} and len(rows["+vsd"]) == 2
    abl.report(tmp_path, ["+vsd", "both:0.1:ramp", "reid"], [0, 1, 2], "+vsd", ["optim.epochs=1"], [], tmp_path / "o")
    out = json.loads((tmp_path / "o" / "ablation.json").read_text())
    assert out["paired_rank1"]["both:0.1:ramp"]["mean"] == pytest.approx(3.0)
    assert "| both:0.1:ramp |" in (tmp_path / "o" / "ablation.md").read_text()
    with pytest.raises(SystemExit):
        abl.report(tmp_path, ["reid"], [0], "reid", [], [], tmp_path / "o2")
