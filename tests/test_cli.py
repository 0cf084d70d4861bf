"""The CLI end to end on a tiny synthetic run: synth, train, eval, export, fp16, int8, build-engine, verify."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mvd_edge.cli import app

runner = CliRunner()
SMALL = ["--set", "synth.n_ids=12", "--set", "synth.images_per_cam=3", "--set", "synth.height=64",
         "--set", "synth.width=32", "--set", "data.height=64", "--set", "data.width=32", "--set", "data.p_ids=3",
         "--set", "data.k_per_modality=2", "--set", "data.workers=0", "--set", "data.batches_per_epoch=3",
         "--set", "eval.trials=2", "--device", "cpu"]


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    res = invoke("train", "--out", out, "--epochs", 1, *SMALL)
    assert res.exit_code == 0, res.output
    return out


def test_train_prints_protocol_table(run):
    assert (run / "best.pt").is_file() and (run / "test_results.json").is_file()


def test_eval_json_and_png(run, tmp_path):
    res = invoke("eval", run / "best.pt", "--root", run / "synthetic", "--trials", 2, "--json", tmp_path / "r.json",
                 "--png", tmp_path / "cmc.png", "--settings", "sysu-all-single,sysu-indoor-multi")
    assert res.exit_code == 0, res.output
    data = json.loads((tmp_path / "r.json").read_text())
    assert set(data) == {"sysu-all-single", "sysu-indoor-multi"} and len(data["sysu-all-single"]["cmc"]) == 20
    assert (tmp_path / "cmc.png").stat().st_size > 1000


def test_deploy_path_export_int8_engine_verify(run, tmp_path):
    onnx_path = tmp_path / "model.onnx"
    res = invoke("export", run / "best.pt", "--out", onnx_path)
    assert res.exit_code == 0 and "parity vs torch" in res.output, res.output
    res = invoke("fp16", onnx_path)
    assert res.exit_code == 0, res.output
    res = invoke("int8", onnx_path, "--dataset", "sysu", "--root", run / "synthetic", "--n", 64)
    assert res.exit_code == 0, res.output
    assert "below" in res.output or (tmp_path / "model.int8-cpu.onnx").is_file()
    res = invoke("build-engine", tmp_path / "model.int8-cpu.onnx", "--backend", "ort")
    assert res.exit_code == 0, res.output
    engine = tmp_path / "model.int8-cpu.ort.onnx"
    assert json.loads(Path(str(engine) + ".json").read_text())["precision"] == "int8"
    res = invoke("build-engine", onnx_path, "--backend", "ort")
    assert res.exit_code == 0, res.output
    res = invoke("verify", run / "best.pt", tmp_path / "model.ort.onnx", engine, tmp_path / "model.fp16.onnx",
                 "--root", run / "synthetic", "--trials", 2, "--json", tmp_path / "v.json", "--png", tmp_path / "v.png")
    assert res.exit_code == 0, res.output
    rep = json.loads((tmp_path / "v.json").read_text())
    by_prec = {e["precision"]: e for e in rep["engines"]}
    assert set(by_prec) == {"fp32", "int8", "fp16"}
    assert by_prec["fp32"]["cosine"]["min"] > 0.9999  # FP32 ORT engine vs FP32 torch
    assert by_prec["fp16"]["cosine"]["mean"] > 0.999
    assert by_prec["int8"]["cosine"]["mean"] > 0.95
    assert (tmp_path / "v.png").stat().st_size > 1000
    # an engine of another recipe is measured against the checkpoint in that recipe
    res = invoke("export", run / "best.pt", "--out", tmp_path / "z.onnx", "--recipe", "z")
    assert res.exit_code == 0, res.output
    res = invoke("verify", run / "best.pt", tmp_path / "z.onnx", "--root", run / "synthetic", "--trials", 2,
                 "--json", tmp_path / "vz.json", "--png", tmp_path / "vz.png")
    assert res.exit_code == 0, res.output
    z = json.loads((tmp_path / "vz.json").read_text())["engines"][0]
    assert z["recipe"] == "z" and z["cosine"]["min"] > 0.9999 and not z["foreign"]
    # an engine built from another checkpoint is refused, unless asked for
    from conftest import make_checkpoint

    other = make_checkpoint(tmp_path / "other.pt", height=128, width=64)
    args = ["verify", other, engine, "--root", run / "synthetic", "--trials", 2, "--json", tmp_path / "vo.json",
            "--png", tmp_path / "vo.png"]
    res = invoke(*args)
    assert res.exit_code == 2 and "built from another checkpoint" in res.output and "--allow-foreign" in res.output
    res = invoke(*args, "--allow-foreign")
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "vo.json").read_text())["engines"][0]["foreign"] is True


@pytest.mark.parametrize("args, message", [
    (["train", "--set", "optim.lrr=1"], "unknown config key 'optim.lrr'"),
    (["eval", "missing.pt"], "checkpoint not found"),
    (["export", "missing.pt"], "checkpoint not found"),
    (["build-engine", "missing.onnx"], "ONNX file not found"),
    (["int8", "m.onnx"], "exactly one calibration source"),
    (["synth", "--size", "big"], "HEIGHTxWIDTH"),
])
def test_bad_input_is_one_clear_line(args, message):
    res = invoke(*args)
    assert res.exit_code == 2
    assert message in res.output
    assert "Traceback" not in res.output
