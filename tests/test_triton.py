"""Triton Inference Server: the model repository export and the ``triton://`` Embedder backend.

No real tritonserver here: the served tests run against ``tests/triton_standin.py``, a KServe v2
HTTP stand-in that serves the exported repository (ONNX Runtime for the engine, the generated
Python-backend ``model.py`` for the preprocessing, the ensemble's steps) and checks every tensor
against the exported configs as Triton does; with ``plain=True`` it has only the v2 protocol (no
``/config``, no binary tensors, no version URLs), as MLServer and KServe have. Tolerance of the
served embeddings against the local ONNX Runtime engine on fresh random crops: max abs error
<= 1e-4 and cosine >= 0.9999 per crop. ``tests/test_kserve_v2.py`` runs the client against a real
MLServer.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from mvd_edge.core.errors import MissingExtra, OutputExists, UsageError
from mvd_edge.core.preprocess import PreprocessSpec, preprocess_batch
from mvd_edge.runtime import load_embedder
from mvd_edge.runtime.sidecar import EngineError, read_sidecar, write_sidecar
from mvd_edge.runtime.triton_repo import (
    KEY_EMBEDDING_DIM,
    KEY_ENGINE,
    KEY_PREPROCESS,
    check_triton_model,
    default_model_name,
    export_triton,
    parse_config_pbtxt,
    read_config,
    render_pbtxt,
)

sys.path.insert(0, str(Path(__file__).parent))
from conftest import TINY_ENGINE_MAX_BATCH  # noqa: E402
from triton_standin import StandInServer, load_python_model  # noqa: E402

ABS_TOL, COS_TOL = 1e-4, 0.9999
MAX_BATCH = TINY_ENGINE_MAX_BATCH


@pytest.fixture(scope="module")
def engine(tiny_ort_engine) -> Path:
    return tiny_ort_engine


@pytest.fixture(scope="module")
def repo(tmp_path_factory, engine) -> Path:
    root = tmp_path_factory.mktemp("triton") / "models"
    export_triton(engine, root, "reid", instances=2, preferred_batch=(2, 4), queue_delay_us=250)
    return root


def _crops(seed: int, n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(24, 160)), int(rng.integers(12, 80)), 3), dtype=np.uint8)
            for _ in range(n)]


def _close(a: np.ndarray, b: np.ndarray) -> None:
    assert a.shape == b.shape
    assert float(np.abs(a - b).max()) <= ABS_TOL
    assert float((a * b).sum(axis=1).min()) >= COS_TOL  # both L2-normalised


# ------------------------------------------------------------------------------ the repository


def test_layout_and_config_match_the_engine_graph(repo, engine):
    info = read_sidecar(engine)
    assert sorted(p.name for p in repo.iterdir()) == ["reid", "reid_ensemble", "reid_pre"]
    assert sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file()) == [
        "reid/1/model.onnx", "reid/1/model.onnx.json", "reid/config.pbtxt",
        "reid_ensemble/config.pbtxt", "reid_pre/1/model.py", "reid_pre/config.pbtxt"]
    assert (repo / "reid/1/model.onnx").read_bytes() == engine.read_bytes()
    assert read_sidecar(repo / "reid/1/model.onnx") == info  # the sidecar copy, intact and matching its model
    assert not list(repo.parent.glob(".*staging*"))

    text = (repo / "reid/config.pbtxt").read_text()
    for line in ('name: "reid"', 'platform: "onnxruntime_onnx"', "max_batch_size: 4", "data_type: TYPE_FP32",
                 "dims: [ 3, 64, 32 ]", "dims: [ 512 ]", "kind: KIND_CPU", "count: 2",
                 "preferred_batch_size: [ 2, 4 ]", "max_queue_delay_microseconds: 250"):
        assert line in text, line
    cfg = parse_config_pbtxt(text)
    assert render_pbtxt(cfg) == text  # the writer and the reader agree
    assert cfg["input"] == [{"name": info["input_name"], "data_type": "TYPE_FP32",
                             "dims": [3, info["preprocess"]["height"], info["preprocess"]["width"]]}]
    assert cfg["output"] == [{"name": info["output_name"], "data_type": "TYPE_FP32", "dims": [info["embedding_dim"]]}]
    assert cfg["max_batch_size"] == info["max_batch"] == MAX_BATCH
    assert cfg["dynamic_batching"] == {"preferred_batch_size": [2, 4], "max_queue_delay_microseconds": 250}
    assert cfg["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    params = cfg["parameters"]
    assert json.loads(params[KEY_PREPROCESS]["string_value"]) == info["preprocess"]
    assert params[KEY_EMBEDDING_DIM] == {"string_value": "512"}
    assert json.loads(params[KEY_ENGINE]["string_value"])["engine_sha256"] == info["engine_sha256"]

    pre, ens = read_config(repo / "reid_pre"), read_config(repo / "reid_ensemble")
    assert pre["backend"] == "python" and pre["max_batch_size"] == MAX_BATCH
    assert pre["input"] == [{"name": "crops", "data_type": "TYPE_UINT8", "dims": [64, 32, 3]}]
    assert pre["output"] == [{"name": "preprocessed", "data_type": "TYPE_FP32", "dims": [3, 64, 32]}]
    assert ens["platform"] == "ensemble" and ens["input"] == pre["input"] and ens["output"] == cfg["output"]
    steps = ens["ensemble_scheduling"]["step"]
    assert [s["model_name"] for s in steps] == ["reid_pre", "reid"]
    assert steps[1]["input_map"] == {"input": "preprocessed"} and steps[1]["output_map"] == {"embedding": "embedding"}
    assert set(check_triton_model(repo, "reid", engine=engine)) == {"reid", "reid_pre", "reid_ensemble"}


def test_bare_onnx_takes_dims_from_the_graph_metadata_and_has_no_sidecar(tmp_path, tiny_onnx):
    report = export_triton(tiny_onnx, tmp_path / "repo", preprocess="none")
    name = default_model_name(tiny_onnx)
    assert report["models"] == [name] == ["model"]
    cfg = read_config(tmp_path / "repo" / name)
    # the exported graph's output width is symbolic: 512 comes from its mvd_edge.embedding_dim
    assert cfg["output"][0]["dims"] == [512] and cfg["max_batch_size"] == 32
    assert "preferred_batch_size" not in cfg["dynamic_batching"]
    assert sorted(p.name for p in (tmp_path / "repo" / name / "1").iterdir()) == ["model.onnx"]
    assert default_model_name("a/model.int8-cpu.onnx") == "model_int8-cpu"


def test_existing_model_folders_are_refused_without_overwrite(tmp_path, engine):
    root = tmp_path / "repo"
    export_triton(engine, root, "reid")
    before = (root / "reid/config.pbtxt").read_text()
    with pytest.raises(OutputExists, match="--overwrite"):
        export_triton(engine, root, "reid", max_batch=2)
    (root / "other_pre").mkdir()
    (root / "other_pre" / "keep.txt").write_text("x")
    with pytest.raises(OutputExists, match="other_pre"):  # any of the three folders blocks the export
        export_triton(engine, root, "other")
    assert not (root / "other").exists() and (root / "reid/config.pbtxt").read_text() == before
    export_triton(engine, root, "reid", max_batch=2, overwrite=True)
    assert read_config(root / "reid")["max_batch_size"] == 2
    assert read_config(root / "reid_ensemble")["max_batch_size"] == 2
    assert not list(tmp_path.glob(".*staging*"))


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "a/b"}, "model name"), ({"kind": "tpu"}, "cpu or gpu"), ({"max_batch": 0}, "max_batch"),
    ({"preferred_batch": (8,), "max_batch": 4}, "preferred batch"), ({"instances": 0}, "instances"),
    ({"preprocess": "gpu"}, "ensemble"),
])
def test_bad_settings_are_usage_errors(tmp_path, engine, kwargs, message):
    with pytest.raises(UsageError, match=message):
        export_triton(engine, tmp_path / "repo", **{"name": "reid", **kwargs})
    assert not (tmp_path / "repo" / "reid").exists()


def _fake_trt_engine(path: Path, **extra) -> Path:
    path.write_bytes(b"not really a TensorRT plan")
    write_sidecar(path, {"backend": "trt", "precision": "fp16", "recipe": "full", "fused_head": False,
                         "preprocess": PreprocessSpec(height=256, width=128).to_dict(), "embedding_dim": 2048,
                         "input_name": "input", "output_name": "embedding", "batch_profile": [1, 8, 16],
                         "max_batch": 16, "gpu": {"name": "NVIDIA H200", "compute_capability": "9.0"},
                         "versions": {"tensorrt": "10.9.0"}, **extra})
    return path


def test_tensorrt_engine_becomes_a_tensorrt_plan_model(tmp_path):
    eng = _fake_trt_engine(tmp_path / "m.fp16.engine")
    report = export_triton(eng, tmp_path / "repo", "reid_trt", instances=3)
    d = tmp_path / "repo" / "reid_trt"
    assert (d / "1/model.plan").read_bytes() == eng.read_bytes() and (d / "1/model.plan.json").is_file()
    cfg = read_config(d)
    assert cfg["platform"] == "tensorrt_plan" and report["kind"] == "gpu"
    assert cfg["max_batch_size"] == 16 and cfg["instance_group"] == [{"count": 3, "kind": "KIND_GPU"}]
    assert cfg["input"][0]["dims"] == [3, 256, 128] and cfg["output"][0]["dims"] == [2048]
    assert json.loads(cfg["parameters"][KEY_ENGINE]["string_value"])["precision"] == "fp16"
    pre = read_config(tmp_path / "repo" / "reid_trt_pre")
    assert pre["instance_group"] == [{"count": 3, "kind": "KIND_CPU"}]  # numpy preprocessing stays on the CPU
    check_triton_model(tmp_path / "repo", "reid_trt", engine=eng)
    with pytest.raises(UsageError, match="profile allows"):
        export_triton(eng, tmp_path / "repo2", max_batch=32)
    with pytest.raises(UsageError, match="GPU only"):
        export_triton(eng, tmp_path / "repo2", kind="cpu")
    fused = _fake_trt_engine(tmp_path / "f.engine", fused_head=True)
    with pytest.raises(EngineError, match="fused-head"):
        export_triton(fused, tmp_path / "repo2")


def test_the_checker_names_a_config_that_disagrees_with_the_graph(tmp_path, engine):
    root = tmp_path / "repo"
    export_triton(engine, root, "reid")
    cfg_path = root / "reid/config.pbtxt"
    good = cfg_path.read_text()
    for old, new, message in [("dims: [ 3, 64, 32 ]", "dims: [ 3, 64, 64 ]", "input dims"),
                              ('name: "embedding"', 'name: "features"', "output name"),
                              ("max_batch_size: 4\n", "max_batch_size: 0\n", "max_batch_size"),
                              ('\\"height\\": 64', '\\"height\\": 128', "mvd_edge.preprocess")]:
        cfg_path.write_text(good.replace(old, new, 1))
        with pytest.raises(EngineError, match=message):
            check_triton_model(root, "reid")
    cfg_path.write_text(good)
    ens = root / "reid_ensemble/config.pbtxt"
    ens.write_text(ens.read_text().replace('value: "preprocessed"\n      }\n      output_map {\n        key: "embedding"',
                                           'value: "crops"\n      }\n      output_map {\n        key: "embedding"'))
    with pytest.raises(EngineError, match="does not reach"):
        check_triton_model(root, "reid")


def test_pbtxt_reader_handles_text_format_variants():
    text = ('# a comment\nname: "m" platform: "onnxruntime_onnx"\nmax_batch_size: 8\n'
            'input { name: "x" data_type: TYPE_FP32 dims: 3 dims: [4, 5] }\n'
            'parameters: { key: "k" value: { string_value: "a\\"b\\\\c\\n\\303\\251" } }\n')
    cfg = parse_config_pbtxt(text)
    assert cfg["input"] == [{"name": "x", "data_type": "TYPE_FP32", "dims": [3, 4, 5]}]
    assert cfg["parameters"] == {"k": {"string_value": 'a"b\\c\né'}}
    assert parse_config_pbtxt(render_pbtxt(cfg)) == cfg
    with pytest.raises(ValueError, match="line 2: unexpected '}'"):
        parse_config_pbtxt('name: "m"\ninput { name: }')
    with pytest.raises(ValueError, match="end of text"):
        parse_config_pbtxt('name: "m"\ninput { name: "x" ')


# ------------------------------------------------------------------------------ served through the stand-in


def test_the_pre_model_is_the_project_preprocessing(repo):
    module = load_python_model(repo / "reid_pre/1/model.py")
    spec = PreprocessSpec.from_dict(json.loads(read_config(repo / "reid_pre")["parameters"][KEY_PREPROCESS]
                                               ["string_value"]))
    rng = np.random.default_rng(7)
    resized = rng.integers(0, 256, (5, spec.height, spec.width, 3), dtype=np.uint8)  # BGR at the input size
    got = module.to_network_input(resized, spec.to_dict())
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, preprocess_batch(list(resized), spec))  # bit-identical
    bgr = module.to_network_input(resized, {**spec.to_dict(), "color_order": "BGR"})
    np.testing.assert_array_equal(bgr, preprocess_batch(list(resized), PreprocessSpec(
        **{**spec.to_dict(), "color_order": "BGR", "mean": tuple(spec.mean), "std": tuple(spec.std)})))


@pytest.mark.parametrize("model", ["reid", "reid_ensemble"])
def test_served_embeddings_match_the_local_engine_and_batches_are_split(repo, engine, model):
    pytest.importorskip("tritonclient.http")
    crops = _crops(seed=11 if model == "reid" else 12, n=11)
    local = load_embedder(engine)
    want = local.embed(crops)
    with StandInServer(repo) as server:
        with load_embedder(server.url(model)) as remote:
            assert remote.backend == "triton" and remote.max_batch == MAX_BATCH and remote.dim == 512
            assert remote.spec == local.spec and remote.precision == "fp32"
            assert remote.uint8_input == (model == "reid_ensemble")
            got = remote.embed(crops)
            assert remote.embed([]).shape == (0, 512)
        with load_embedder(server.url(model), max_batch=3) as small:
            _close(small.embed(crops[:7]), want[:7])
    _close(got, want)
    sizes = [n for m, n in server.log if m == model]
    assert sizes == [4, 4, 3, 3, 3, 1]  # 11 crops in batches of max_batch, then 7 in batches of 3
    if model == "reid_ensemble":  # the preprocessing ran on the server, in its pre model
        assert [n for m, n in server.log if m == "reid_pre"] == sizes


def test_served_model_errors_are_one_line_engine_errors(repo, tmp_path):
    pytest.importorskip("tritonclient.http")
    with StandInServer(repo) as server:
        port = server.port
        with pytest.raises(EngineError, match="no ready model 'nope'") as exc:
            load_embedder(server.url("nope"))
        assert "\n" not in str(exc.value)
        with pytest.raises(EngineError, match="at most 4"):
            load_embedder(server.url("reid"), max_batch=8)
        good = dict(server.configs["reid"]["parameters"])
        spec = json.loads(good[KEY_PREPROCESS]["string_value"])
        server.configs["reid"]["parameters"][KEY_PREPROCESS] = {"string_value": json.dumps({**spec, "height": 128})}
        with pytest.raises(EngineError, match=r"mvd_edge\.preprocess parameter says 128x32") as exc:
            load_embedder(server.url("reid"))
        assert "\n" not in str(exc.value)
        server.configs["reid"]["parameters"] = {**good, KEY_EMBEDDING_DIM: {"string_value": "256"}}
        with pytest.raises(EngineError, match="embedding_dim parameter says 256"):
            load_embedder(server.url("reid"))
        server.configs["reid"]["parameters"] = {k: v for k, v in good.items() if k != KEY_PREPROCESS}
        with pytest.raises(EngineError, match="export-triton"):
            load_embedder(server.url("reid"))
        server.configs["reid"]["parameters"] = good
        emb = load_embedder(server.url("reid"))
        server.configs["reid"]["max_batch_size"] = 2  # the server now refuses what the client sends
        with pytest.raises(EngineError, match="batch-size must be <= 2") as exc:
            emb.embed(_crops(3, 4))
        assert "\n" not in str(exc.value)
        emb.close()
    with pytest.raises(EngineError, match=f"cannot reach Triton at 127.0.0.1:{port}") as exc:
        load_embedder(f"triton://127.0.0.1:{port}/reid")
    assert "\n" not in str(exc.value)


def test_the_engines_operating_point_reaches_the_matcher_through_triton(tmp_path, engine):
    pytest.importorskip("tritonclient.http")
    import shutil

    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.runtime.sidecar import set_operating_point, sidecar_path

    eng = tmp_path / "reid.onnx"
    shutil.copyfile(engine, eng)
    shutil.copyfile(sidecar_path(engine), sidecar_path(eng))
    set_operating_point(eng, {"threshold": 0.61, "margin": 0.05, "target_precision": 0.9, "identities": 30})
    export_triton(eng, tmp_path / "repo", "reid", preprocess="none")
    with StandInServer(tmp_path / "repo") as server, load_embedder(server.url("reid")) as remote:
        op = resolve(MatcherConfig(), remote.info)
    a = op.config.association
    assert (a.threshold, a.margin, op.warnings) == (0.61, 0.05, [])
    assert "engine sidecar" in op.source


def test_a_triton_server_gets_binary_tensors_and_its_config_is_read(repo, engine):
    pytest.importorskip("tritonclient.http")
    with StandInServer(repo) as server, load_embedder(server.url("reid") + "/1") as remote:
        got = remote.embed(_crops(5, 6))
        assert remote.info["settings_from"] == "the model config" and remote.info["binary_tensors"] is True
        assert remote.url_version == "1"  # Triton takes version URLs
    assert server.wire == ["binary", "binary"]
    _close(got, load_embedder(engine).embed(_crops(5, 6)))


@pytest.mark.parametrize("model", ["reid", "reid_ensemble"])
def test_a_plain_v2_server_gets_json_and_the_settings_come_from_the_metadata(repo, engine, model):
    """No /config (404), no binary tensors (422), no version URLs (501): what MLServer and KServe answer."""
    pytest.importorskip("tritonclient.http")
    crops = _crops(21, 9)
    want = load_embedder(engine).embed(crops)
    with StandInServer(repo, plain=True) as server:
        with load_embedder(server.url(model) + "/1") as remote:  # the version URL is refused: unversioned
            assert remote.info["settings_from"] == "the model metadata" and remote.info["binary_tensors"] is False
            assert remote.url_version == "" and remote.max_batch == MAX_BATCH and remote.spec == load_embedder(
                engine).spec
            got = remote.embed(crops)
        with pytest.raises(EngineError, match="refuses version URLs .* versions \\['1'\\]") as exc:
            load_embedder(server.url(model) + "/2")
        assert "\n" not in str(exc.value)
    assert set(server.wire) == {"json"} and [n for m, n in server.log if m == model] == [4, 4, 1]
    _close(got, want)


def test_a_server_answering_404_to_version_urls_is_used_unversioned_only_for_the_version_it_lists(repo):
    pytest.importorskip("tritonclient.http")
    with StandInServer(repo, plain=True, version_status=404) as server:  # its metadata lists versions ['1']
        with load_embedder(server.url("reid") + "/1") as remote:
            assert remote.url_version == "" and remote.embed(_crops(8, 2)).shape == (2, 512)
        with pytest.raises(EngineError, match="no ready model 'reid' version 2"):  # 404: maybe no such version
            load_embedder(server.url("reid") + "/2")


def test_a_plain_v2_server_without_settings_needs_the_sidecar(repo, engine, tmp_path):
    pytest.importorskip("tritonclient.http")
    crops = _crops(31, 5)
    want = load_embedder(engine).embed(crops)
    other = _fake_trt_engine(tmp_path / "other.engine")  # a valid sidecar of another engine (256x128, 2048-d)
    with StandInServer(repo, plain=True, metadata_params=False) as server:
        with pytest.raises(EngineError, match=r"no mvd_edge\.preprocess parameter in its metadata; .*"
                                              r"\?sidecar=/path/to/ENGINE\.json") as exc:
            load_embedder(server.url("reid"))
        assert "\n" not in str(exc.value)
        for sidecar in (f"{engine}.json", str(engine)):  # the sidecar, or the engine with its sidecar beside it
            with load_embedder(f"{server.url('reid')}?sidecar={sidecar}") as remote:
                assert remote.info["settings_from"] == f"the sidecar {sidecar}"
                assert remote.max_batch == MAX_BATCH and remote.precision == "fp32"
                _close(remote.embed(crops), want)
        with pytest.raises(EngineError, match="height is 256|256x128|says 256"):
            load_embedder(server.url("reid"), sidecar=f"{other}.json")  # the served model is 64x32
        with pytest.raises(EngineError, match="sidecar not found"):
            load_embedder(server.url("reid"), sidecar=tmp_path / "missing.json")
    with StandInServer(repo, plain=True) as server:  # served settings and a sidecar: they must agree
        with pytest.raises(EngineError, match=r"disagree on mvd_edge\.preprocess"):
            load_embedder(server.url("reid"), sidecar=f"{other}.json")
        with load_embedder(server.url("reid"), sidecar=f"{engine}.json") as remote:
            assert remote.info["settings_from"] == "the model metadata"


def test_a_version_triton_does_not_have_is_not_ready(repo):
    pytest.importorskip("tritonclient.http")
    with StandInServer(repo) as server:
        with pytest.raises(EngineError, match="no ready model 'reid' version 2"):
            load_embedder(server.url("reid") + "/2")


@pytest.mark.parametrize("url, message", [
    ("triton+grpc://127.0.0.1:8001/reid", "gRPC is not implemented"),
    ("triton://127.0.0.1:8000/", "triton://HOST:PORT/NAME"),
    ("triton://127.0.0.1:8000/reid/latest", "version must be a number"),
    ("triton://127.0.0.1:99999/reid", "bad port"),
    ("triton://127.0.0.1:8000/reid?model=x", "only query a Triton URL takes is \\?sidecar=PATH"),
    ("triton://127.0.0.1:8000/reid?sidecar=", "only query"),
])
def test_bad_triton_urls(url, message):
    pytest.importorskip("tritonclient.http")
    with pytest.raises(UsageError, match=message):
        load_embedder(url)


def test_device_does_not_apply_and_a_missing_client_names_the_extra(monkeypatch):
    with pytest.raises(UsageError, match="instance_group"):
        load_embedder("triton://127.0.0.1:8000/reid", device="cuda")
    monkeypatch.setitem(sys.modules, "tritonclient.http", None)  # import fails as if not installed
    with pytest.raises(MissingExtra, match=re.escape("pip install 'mvd-edge[triton]'")):
        load_embedder("triton://127.0.0.1:8000/reid")


# ------------------------------------------------------------------------------ the command


def test_export_triton_command(tmp_path, engine):
    from mvd_edge.cli import serve

    root = typer.Typer()
    root.callback()(lambda: None)  # a group, as in the merged CLI, so the command is called by name
    root.registered_commands.extend(serve.app.registered_commands)
    runner = CliRunner()
    args = ["export-triton", str(engine), "--repo", str(tmp_path / "repo"), "--name", "reid", "--instances", "2",
            "--preferred-batch", "2,4"]
    res = runner.invoke(root, args, terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "triton://HOST:8000/reid" in res.output
    cfg = check_triton_model(tmp_path / "repo", "reid", engine=engine)["reid"]
    assert cfg["instance_group"] == [{"count": 2, "kind": "KIND_CPU"}]
    res = runner.invoke(root, args, terminal_width=200)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = runner.invoke(root, [*args, "--max-batch", "2", "--overwrite"], terminal_width=200)
    assert res.exit_code == 2 and "must lie in 1..2" in res.output  # preferred 4 > max batch 2
    with pytest.warns(UserWarning, match="still in the repository"):  # the old reid_pre/_ensemble stay, named
        res = runner.invoke(root, [*args[:-2], "--no-ensemble", "--max-batch", "2", "--overwrite"],
                            terminal_width=200)
    assert res.exit_code == 0, res.output
    assert read_config(tmp_path / "repo" / "reid")["max_batch_size"] == 2
    res = runner.invoke(root, ["export-triton", str(tmp_path / "missing.onnx"), "--repo", str(tmp_path / "r2")])
    assert res.exit_code == 2 and "not found" in res.output
