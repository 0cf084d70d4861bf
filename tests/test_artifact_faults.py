"""Damaged or mismatched artifacts fail with one line naming the file and the field (F5, F6, F7, F10, F11)."""

import json
import math
import shutil

import pytest
import torch
from conftest import SMALL_TRAIN, make_checkpoint
from typer.testing import CliRunner

from mvd_edge.cli import app
from mvd_edge.core.errors import UsageError
from mvd_edge.deploy.export import ExportError, export_onnx
from mvd_edge.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from mvd_edge.runtime import load_embedder
from mvd_edge.runtime.engine import build_engine
from mvd_edge.runtime.sidecar import EngineError, sidecar_path

runner = CliRunner()


def _edited_checkpoint(src, dst, edit):
    state = load_checkpoint(src)
    edit(state)
    save_checkpoint(state, dst)
    return dst


# ---------------------------------------------------------------- F5: NaN weights fail the parity check

def test_export_of_nan_weights_fails_parity_and_writes_nothing(tiny_ckpt, tmp_path):
    def poison(state):
        key = next(k for k, v in state["model"].items() if v.is_floating_point() and k.endswith("weight"))
        state["model"][key] = torch.full_like(state["model"][key], math.nan)

    bad = _edited_checkpoint(tiny_ckpt, tmp_path / "nan.pt", poison)
    out = tmp_path / "nan.onnx"
    with pytest.raises(ExportError, match=r"nan\.pt: the model's outputs are not finite \(NaN/inf\): the checkpoint's "
                                          r"weights are damaged"):
        export_onnx(bad, out)
    assert not out.exists() and not list(tmp_path.glob(".nan.onnx*"))  # no unverified graph left behind


def test_parity_never_counts_nan_as_agreement(tiny_onnx, monkeypatch):
    import onnxruntime as ort

    from mvd_edge.core.preprocess import PreprocessSpec
    from mvd_edge.deploy.export import check_parity

    real = ort.InferenceSession
    nan_rows = {"on": False}

    class Session:  # ONNX Runtime's real output, with NaN rows when asked
        def __init__(self, *a, **k):
            self.s = real(*a, **k)

        def run(self, names, feeds):
            out = self.s.run(names, feeds)
            if nan_rows["on"]:
                out[0][:] = math.nan
            return out

    class Reference:  # "torch": whatever ONNX Runtime computes, so the two agree exactly
        def embed(self, x, recipe):
            return torch.from_numpy(real(str(tiny_onnx), providers=["CPUExecutionProvider"]).run(
                None, {"input": x.numpy()})[0])

    monkeypatch.setattr(ort, "InferenceSession", Session)
    spec = PreprocessSpec(height=64, width=32)
    assert check_parity(tiny_onnx, Reference(), "full", spec, n=2)["max_abs_err"] == 0.0
    nan_rows["on"] = True
    with pytest.raises(ExportError, match="not finite"):
        check_parity(tiny_onnx, Reference(), "full", spec, n=2)


# ---------------------------------------------------------------- F10: damaged preprocess / model_spec

@pytest.mark.parametrize("edit, message", [
    (lambda s: s["preprocess"].__setitem__("height", -5), r"its preprocess is damaged \(preprocess\.height must be a "
                                                           r"positive integer, got -5\)"),
    (lambda s: s["preprocess"].__setitem__("mean", [0.5]), r"its preprocess is damaged \(preprocess\.mean must be "
                                                           r"three finite numbers"),
    (lambda s: s["preprocess"].__setitem__("color_order", "XYZ"), r"preprocess\.color_order must be one of RGB, BGR"),
    (lambda s: s.__setitem__("preprocess", "junk"), r"its preprocess is damaged \(preprocess must be a mapping"),
    (lambda s: s["preprocess"].__setitem__("std", [0, 1, 1]), r"preprocess\.std must be positive"),
    (lambda s: s.__setitem__("model_spec", None), r"its model_spec is damaged.*must be a mapping"),
    (lambda s: s["model_spec"].__setitem__("num_classes", "x"), r"model_spec\.num_classes must be a positive integer"),
    (lambda s: s["model_spec"].pop("backbone"), r"model_spec\.backbone is missing"),
])
def test_damaged_checkpoint_records_are_one_checkpoint_error(tiny_ckpt, tmp_path, edit, message):
    bad = _edited_checkpoint(tiny_ckpt, tmp_path / "bad.pt", edit)
    with pytest.raises(CheckpointError, match=rf"bad\.pt: .*{message}.*use an intact copy"):
        load_checkpoint(bad)  # what export, eval, verify, distill and bench all read through
    with pytest.raises(CheckpointError, match=message):
        export_onnx(bad, tmp_path / "bad.onnx")
    assert not (tmp_path / "bad.onnx").exists()


def test_cli_export_of_a_damaged_preprocess_is_one_line(tiny_ckpt, tmp_path):
    bad = _edited_checkpoint(tiny_ckpt, tmp_path / "pp.pt", lambda s: s.__setitem__("preprocess", [1, 2]))
    res = runner.invoke(app, ["export", str(bad), "--out", str(tmp_path / "o.onnx")])
    assert res.exit_code == 2, res.output
    assert "pp.pt: its preprocess is damaged" in res.output and "Traceback" not in res.output


# ---------------------------------------------------------------- F11: wrong-typed sidecar fields

@pytest.fixture(scope="module")
def built_engine(tmp_path_factory, tiny_onnx):
    engine = tmp_path_factory.mktemp("eng") / "m.engine"
    build_engine(tiny_onnx, engine, backend="ort")
    return engine


def _edited_engine(built_engine, tmp_path, edit):
    engine = tmp_path / "e.engine"
    shutil.copy(built_engine, engine)
    info = json.loads(sidecar_path(built_engine).read_text())
    info["engine_file"] = engine.name
    edit(info)
    sidecar_path(engine).write_text(json.dumps(info))
    return engine


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.__setitem__("max_batch", 0), r"max_batch must be an integer >= 1, got 0"),
    (lambda d: d.__setitem__("max_batch", "x"), r"max_batch must be an integer >= 1, got 'x'"),
    (lambda d: d["preprocess"].__setitem__("std", [0, 1, 1]), r"preprocess\.std must be positive"),
    (lambda d: d["preprocess"].__setitem__("height", "sixty"), r"preprocess\.height must be a positive integer, "
                                                               r"got 'sixty'"),
    (lambda d: d.__setitem__("embedding_dim", "abc"), r"embedding_dim must be an integer >= 1, got 'abc'"),
    (lambda d: d.__setitem__("preprocess", [1, 2]), r"preprocess must be a mapping"),
    (lambda d: d.pop("preprocess"), r"preprocess is missing"),
    (lambda d: d.__setitem__("batch_profile", [8, 1, 32]), r"batch_profile must be three integers 1 <= min <= opt"),
    (lambda d: d.__setitem__("batch_profile", None), r"batch_profile must be three integers"),
])
def test_wrong_typed_sidecar_fields_are_one_engine_error(built_engine, tmp_path, edit, message):
    engine = _edited_engine(built_engine, tmp_path, edit)
    with pytest.raises(EngineError, match=rf"e\.engine\.json: {message}.*rebuild it with: mvd-edge build-engine"):
        load_embedder(engine)


def test_a_well_typed_sidecar_edit_keeps_its_specific_message(built_engine, tmp_path):
    engine = _edited_engine(built_engine, tmp_path, lambda d: d["preprocess"].__setitem__("std", [0.5, 0.5, 0.5]))
    with pytest.raises(EngineError, match=r"sidecar and its graph disagree on preprocess\.std"):
        load_embedder(engine)
    load_embedder(built_engine).close()  # the engine as built still loads


# ---------------------------------------------------------------- F6: verify refuses foreign and unknown origins

@pytest.fixture(scope="module")
def sysu_root(tmp_path_factory):
    from mvd_edge.synth.dataset import write_sysu

    root = tmp_path_factory.mktemp("sysu")
    write_sysu(root, n_ids=4, images_per_cam=1, size=(64, 32))
    return root


def test_verify_refuses_another_checkpoint_given_as_an_engine(tiny_ckpt, tmp_path, sysu_root):
    from mvd_edge.deploy.verify import verify_engines

    other = make_checkpoint(tmp_path / "other.pt", seed=3)
    with pytest.raises(UsageError, match=r"other\.pt is another checkpoint.*--allow-foreign"):
        verify_engines(tiny_ckpt, [other], "sysu", sysu_root, trials=1)
    same = tmp_path / "same.pt"
    shutil.copy(tiny_ckpt, same)  # another path, the same checkpoint: its own precision cost, zero
    rep = verify_engines(tiny_ckpt, [same], "sysu", sysu_root, trials=1)
    assert rep["engines"][0]["foreign"] is False and rep["engines"][0]["cosine"]["min"] > 0.9999


def test_verify_refuses_an_engine_of_unknown_origin(tiny_ckpt, tmp_path, sysu_root, monkeypatch, built_engine):
    import mvd_edge.deploy.verify as verify
    from mvd_edge.runtime.base import Embedder
    from mvd_edge.runtime.sidecar import model_sha256

    # an ONNX Runtime engine without sidecar hashes: its graph still says where it comes from
    no_hashes = _edited_engine(built_engine, tmp_path, lambda d: d.pop("hashes"))
    emb = load_embedder(no_hashes)
    assert model_sha256(emb, no_hashes) == json.loads(
        sidecar_path(built_engine).read_text())["hashes"]["checkpoint_sha256"]
    emb.close()

    class Plan(Embedder):  # a TensorRT plan whose sidecar lost its hashes: nothing records its source
        backend = "trt"

        def infer(self, x):
            raise AssertionError("must not be measured")

    plan = tmp_path / "p.engine"
    plan.write_bytes(b"plan")
    real = verify.load_embedder
    monkeypatch.setattr(verify, "load_embedder", lambda p, **k: Plan(emb.spec, emb.dim, 8, {"precision": "fp16"})
                        if str(p) == str(plan) else real(p, **k))
    with pytest.raises(UsageError, match=r"p\.engine: its source checkpoint is unknown.*--allow-foreign"):
        verify.verify_engines(tiny_ckpt, [plan], "sysu", sysu_root, trials=1)


# ---------------------------------------------------------------- F7: distill --resume with another teacher

def test_distill_resume_with_another_teacher_is_refused_naming_both(tmp_path):
    a = make_checkpoint(tmp_path / "teacher_a.pt", seed=0)
    b = make_checkpoint(tmp_path / "teacher_b.pt", seed=1)
    out = tmp_path / "student"
    sets = [x for kv in SMALL_TRAIN + [f"data.root={tmp_path / 'data'}", "model.backbone=tiny",
                                       "optim.warmup_epochs=0", "data.batches_per_epoch=1"]
            for x in ("--set", kv)]
    res = runner.invoke(app, ["distill", str(a), "--out", str(out), "--epochs", "1", "--no-test", *sets])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["distill", str(b), "--out", str(out), "--epochs", "2", "--no-test", "--resume", *sets])
    assert res.exit_code == 2, res.output
    text = " ".join(res.output.split())
    assert "distilled from another teacher" in text and "teacher_a.pt" in text and "teacher_b.pt" in text, text
    assert load_checkpoint(out / "last.pt")["epoch"] == 0  # nothing was trained with the wrong teacher

