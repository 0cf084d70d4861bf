"""``mvd-edge build-engine --precision``: one command from an FP32 ONNX graph or a checkpoint to an engine.

Model under test: the ``tiny`` MVDNet with BatchNorm statistics from one train-mode pass (as in
tests/test_calib.py), exported at 64x32 with ``mvd-edge export``. Calibration data: 48 noise
crops in ``rgb/`` and ``ir/`` folders. Stated tolerances of the built engine against the FP32
graph, on 24 fresh random crops (not the calibration crops, not the quantizer's own parity crops):

* INT8 (ONNX Runtime, ``cpu`` flavour): mean cosine >= 0.99 (``INT8_MIN_COS``, as test_calib), min >= 0.97;
* FP16: mean cosine >= 0.999 (``FP16_MIN_COS``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from tiny_checkpoint import tiny_checkpoint, write_calib_crops
from typer.testing import CliRunner

from mvd_edge.cli import app
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.core.util import random_crops
from mvd_edge.deploy.parity import compare
from mvd_edge.runtime import load_embedder

INT8_MIN_COS = 0.99
INT8_MIN_COS_ANY = 0.97
FP16_MIN_COS = 0.999
SPEC = PreprocessSpec(height=64, width=32)


def _cli(args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.output


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("build")
    (root / "ckpt").mkdir()
    ckpt = tiny_checkpoint(root / "ckpt" / "tiny.pt", SPEC)
    fp32 = root / "model" / "model.onnx"
    code, out = _cli(["export", ckpt, "--out", fp32])
    assert code == 0, out
    write_calib_crops(root / "calib")
    return {"root": root, "ckpt": ckpt, "fp32": fp32, "calib": root / "calib"}


def _cosine_vs_fp32(engine: Path, fp32: Path) -> tuple[float, float]:
    crops = random_crops(24, np.random.default_rng(2024))
    a, b = load_embedder(engine), load_embedder(fp32)
    try:
        par = compare(a.embed(crops), b.embed(crops))
        return par.mean_cosine, par.min_cosine
    finally:
        a.close()
        b.close()


def test_int8_ort_engine_from_fp32_onnx_end_to_end(work):
    fp32, folder = work["fp32"], work["fp32"].parent
    args = ["build-engine", fp32, "--backend", "ort", "--precision", "int8", "--calib", work["calib"]]
    code, out = _cli(args)
    assert code == 0, out
    assert "[1/2] int8 (cpu flavour)" in out and "calibrating on 48 crops" in out and "[2/2] build ort engine" in out
    engine = folder / "model.int8-cpu.ort.onnx"
    for name in ("model.int8-cpu.onnx", "model.int8-report.json", "model.calib-manifest.json", engine.name,
                 engine.name + ".json"):
        assert (folder / name).is_file(), name
    assert not (folder / "model.int8-trt.onnx").exists()  # only the flavour the backend runs
    info = json.loads((folder / (engine.name + ".json")).read_text())
    assert info["backend"] == "ort" and info["precision"] == "int8" and info["int8_flavour"] == "cpu"
    mean, worst = _cosine_vs_fp32(engine, fp32)
    assert mean >= INT8_MIN_COS and worst >= INT8_MIN_COS_ANY, (mean, worst)

    # the same command again: every output exists, nothing is replaced without --overwrite
    before = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    code, out = _cli(args)
    assert code == 2 and "already exists; add --overwrite" in out and len(out.strip().splitlines()) == 1, out
    assert {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()} == before
    code, out = _cli(args + ["--overwrite"])
    assert code == 0, out


def test_an_existing_intermediate_graph_is_kept_without_overwrite(work, tmp_path):
    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(work["fp32"].read_bytes())
    mine = tmp_path / "m.fp16.onnx"
    mine.write_bytes(b"the user's")
    code, out = _cli(["build-engine", fp32, "--precision", "fp16"])
    assert code == 2 and "the FP16 graph" in out and "--overwrite" in out, out
    assert mine.read_bytes() == b"the user's" and not (tmp_path / "m.fp16.ort.onnx").exists()


def test_fp16_engine_from_a_checkpoint_writes_intermediates_beside_the_engine(work):
    out_dir = work["root"] / "engines"
    engine = out_dir / "fast.onnx"
    code, out = _cli(["build-engine", work["ckpt"], "--precision", "fp16", "--out", engine])
    assert code == 0, out
    assert "[1/3] export" in out and "[2/3] fp16" in out and "[3/3] build ort engine" in out
    assert sorted(p.name for p in out_dir.iterdir()) == ["fast.onnx", "fast.onnx.json", "tiny.fp16.onnx", "tiny.onnx"]
    assert json.loads((out_dir / "fast.onnx.json").read_text())["precision"] == "fp16"
    assert not any(p.suffix == ".onnx" for p in work["ckpt"].parent.iterdir())  # nothing beside the checkpoint
    mean, _ = _cosine_vs_fp32(engine, work["fp32"])  # the checkpoint's export is the same FP32 graph
    assert mean >= FP16_MIN_COS, mean


def test_without_precision_the_graph_is_built_as_it_is(work, tmp_path):
    engine = tmp_path / "plain.ort.onnx"
    code, out = _cli(["build-engine", work["fp32"], "--out", engine])
    assert code == 0 and "[1/1] build ort engine" in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plain.ort.onnx", "plain.ort.onnx.json"]
    assert json.loads((tmp_path / "plain.ort.onnx.json").read_text())["precision"] == "fp32"


@pytest.mark.parametrize("extra, message", [
    (["--precision", "int8"], "--precision int8 needs calibration data: --calib"),
    (["--calib", "{calib}"], "--calib is the calibration data of --precision int8"),
    (["--precision", "int4"], "--precision 'int4': choose one of fp32, fp16, int8"),
    (["--backend", "tflite"], "--backend 'tflite': choose one of ort, trt"),
    (["--recipe", "z"], "--recipe applies to a checkpoint"),
    (["--precision", "int8", "--calib", "{missing}"], "--calib"),
    (["--precision", "int8", "--calib-dataset", "sysu"], "--precision int8 needs calibration data"),
])
def test_bad_options_are_one_line_errors_before_any_work(work, tmp_path, extra, message):
    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(work["fp32"].read_bytes())
    extra = [a.replace("{calib}", str(work["calib"])).replace("{missing}", str(tmp_path / "nope")) for a in extra]
    code, out = _cli(["build-engine", fp32, *extra])
    assert code == 2 and message in out and len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_a_precision_graph_is_not_converted_again(work, tmp_path):
    fp16 = tmp_path / "m.fp16.onnx"
    code, out = _cli(["fp16", work["fp32"], "--out", fp16])
    assert code == 0, out
    code, out = _cli(["build-engine", fp16, "--precision", "int8", "--calib", work["calib"]])
    assert code == 2 and "is already a fp16 graph; --precision int8 starts from the FP32 export" in out, out
    code, out = _cli(["build-engine", fp16, "--precision", "fp16"])  # already what was asked: built as it is
    assert code == 0 and (tmp_path / "m.fp16.ort.onnx").is_file(), out


def test_trt_without_tensorrt_fails_in_one_line_naming_the_install_before_any_work(work, tmp_path, monkeypatch):
    from mvd_edge import doctor

    real = doctor._import

    def no_tensorrt(name):
        if name == "tensorrt":
            raise ModuleNotFoundError("No module named 'tensorrt'", name="tensorrt")
        return real(name)

    monkeypatch.setattr(doctor, "_import", no_tensorrt)
    code, out = _cli(["build-engine", work["ckpt"], "--backend", "trt", "--precision", "int8", "--calib",
                      work["calib"], "--out", tmp_path / "m.engine"])
    assert code == 2 and len(out.strip().splitlines()) == 1 and "Traceback" not in out, out
    for fix in ("pip install 'mvd-edge[trt-cu12]'", "'mvd-edge[trt-cu13]'", "--system-site-packages", "--backend ort"):
        assert fix in out, (fix, out)
    assert not any(tmp_path.iterdir())  # failed before the export and the calibration


def test_calibration_from_a_data_set_root_or_a_saved_manifest(work, synth_root, tmp_path):
    fp32 = tmp_path / "m.onnx"
    fp32.write_bytes(work["fp32"].read_bytes())
    code, out = _cli(["build-engine", fp32, "--precision", "int8", "--calib", synth_root, "--calib-dataset", "sysu",
                      "--calib-n", "32"])
    assert code == 0 and "calibrating on 32 crops" in out, out
    manifest = tmp_path / "m.calib-manifest.json"
    assert json.loads(manifest.read_text())["source"]["kind"] == "dataset"
    saved = tmp_path / "saved.json"
    manifest.rename(saved)
    code, out = _cli(["build-engine", fp32, "--precision", "int8", "--calib", saved, "--out",
                      tmp_path / "again" / "m.engine.onnx"])
    assert code == 0 and "calibrating on 32 crops" in out, out
    assert (tmp_path / "again" / "m.int8-cpu.onnx").is_file() and (tmp_path / "again" / "m.engine.onnx").is_file()


def test_backend_auto_picks_openvino_only_on_an_x86_cpu_where_it_is_installed(monkeypatch):
    from mvd_edge.deploy import formats

    class Row:
        def __init__(self, missing):
            self.missing = missing

        def missing_modules(self):
            return self.missing

    monkeypatch.setattr(formats.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(formats, "by_name", lambda name: Row([]))
    assert formats.auto_backend("cpu")[0] == "openvino" and "docs/bench_backends" in formats.auto_backend("cpu")[1]
    assert formats.auto_backend("cuda") == ("ort", "OpenVINO runs on the CPU only, and --device is cuda")
    monkeypatch.setattr(formats, "by_name", lambda name: Row(["openvino"]))
    backend, why = formats.auto_backend("cpu")
    assert backend == "ort" and "not installed" in why
    monkeypatch.setattr(formats, "by_name", lambda name: Row([]))
    monkeypatch.setattr(formats.platform, "machine", lambda: "aarch64")  # a Jetson: not measured there
    assert formats.auto_backend("cpu")[0] == "ort"


@pytest.mark.parametrize("pick", ["ort", "openvino"])
def test_build_engine_backend_auto_builds_what_it_picked_and_says_why(work, tmp_path, monkeypatch, pick):
    from mvd_edge.deploy import formats

    if pick == "openvino" and formats.by_name("openvino").missing_modules():
        pytest.skip("the openvino package is not installed (pip install 'mvd-edge[openvino]')")
    monkeypatch.setattr(formats, "auto_backend", lambda device: (pick, "because of the test"))
    engine = tmp_path / f"auto{formats.engine_format(pick).suffixes[0]}"
    code, out = _cli(["build-engine", work["fp32"], "--backend", "auto", "--out", engine])
    assert code == 0 and f"--backend auto: {pick} (because of the test)" in out, out
    assert json.loads(Path(f"{engine}.json").read_text())["backend"] == pick
