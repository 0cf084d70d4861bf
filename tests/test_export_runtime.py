"""Export parity and metadata, engine building, sidecar checks, the Embedder runtime."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import make_checkpoint

from mvd_edge.core.graphmeta import read_metadata
from mvd_edge.core.preprocess import PreprocessSpec, preprocess_batch
from mvd_edge.deploy.export import ExportError, check_parity, export_onnx
from mvd_edge.runtime import EngineError, load_embedder
from mvd_edge.runtime.engine import build_engine, parse_batch
from mvd_edge.runtime.sidecar import check_sidecar_facts, check_trt_compat, read_sidecar, sidecar_path, write_sidecar
from mvd_edge.runtime.trt_compat import INSTALL_HINT


def _crops(n, seed=1):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (int(rng.integers(30, 200)), int(rng.integers(15, 100)), 3), dtype=np.uint8)
            for _ in range(n)]


@pytest.mark.parametrize("recipe, dim", [("full", 512), ("shared", 128), ("z", 64)])
def test_export_each_recipe_matches_torch_and_carries_metadata(tmp_path, recipe, dim):
    ckpt = make_checkpoint(tmp_path / "c.pt", recipe="full")
    out = tmp_path / f"{recipe}.onnx"
    report = export_onnx(ckpt, out, recipe=recipe)
    assert report["parity"]["max_abs_err"] <= 1e-4 and report["parity"]["min_cosine"] >= 0.99999
    model = onnx.load(str(out))
    assert [i.name for i in model.graph.input] == ["input"] and [o.name for o in model.graph.output] == ["embedding"]
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # dynamic batch axis
    meta = read_metadata(out)
    assert meta["mvd_edge.recipe"] == recipe and int(meta["mvd_edge.embedding_dim"]) == dim
    assert json.loads(meta["mvd_edge.input_size"]) == [64, 32]
    assert json.loads(meta["mvd_edge.mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert meta["mvd_edge.color_order"] == "RGB" and len(meta["mvd_edge.checkpoint_sha256"]) == 64


def test_parity_check_fails_past_tolerance(tmp_path, tiny_onnx):
    from mvd_edge.model.checkpoint import model_from_checkpoint

    other = make_checkpoint(tmp_path / "other.pt", seed=7)  # different weights than the exported graph
    model, state = model_from_checkpoint(other)
    with pytest.raises(ExportError, match="differs from torch"):
        check_parity(tiny_onnx, model, "full", PreprocessSpec.from_dict(state["preprocess"]))


def test_ort_engine_matches_torch_on_fresh_crops_and_splits_batches(tmp_path, tiny_ckpt, tiny_onnx):
    engine = tmp_path / "model.ort.onnx"
    info = build_engine(tiny_onnx, engine, backend="ort", batch="1,4,4")
    assert info["precision"] == "fp32" and info["batch_profile"] == [1, 4, 4] and info["max_batch"] == 4
    ort_emb = load_embedder(engine)
    torch_emb = load_embedder(tiny_ckpt)
    crops = _crops(11)  # 11 > max batch 4: split into 4 + 4 + 3
    a, b = ort_emb.embed(crops), torch_emb.embed(crops)
    assert a.shape == (11, 512) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.abs(a - b).max() < 1e-4  # fp32 ORT vs fp32 torch, same preprocessing
    assert ort_emb.embed([]).shape == (0, 512)
    # bare exported ONNX (no sidecar) loads too, with the metadata's preprocessing
    assert np.abs(load_embedder(tiny_onnx).embed(crops[:2]) - a[:2]).max() < 1e-4


def test_embedder_rejects_bad_crops(tiny_onnx):
    emb = load_embedder(tiny_onnx)
    with pytest.raises(ValueError, match="uint8"):
        emb.embed([np.zeros((10, 10, 3), np.float32)])
    with pytest.raises(ValueError, match=r"\[H, W, 3\]"):
        emb.embed([np.zeros((10, 10, 4), np.uint8)])
    with pytest.raises(TypeError, match="list of crops"):
        emb.embed(np.zeros((10, 10, 3), np.uint8))


def test_sidecar_detects_truncated_and_corrupt_engines(tmp_path, tiny_onnx):
    engine = tmp_path / "e.ort.onnx"
    build_engine(tiny_onnx, engine, backend="ort")
    data = engine.read_bytes()
    engine.write_bytes(data[: len(data) // 2])
    with pytest.raises(EngineError, match="truncated.*rebuild it with: mvd-edge build-engine"):
        load_embedder(engine)
    engine.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    with pytest.raises(EngineError, match="does not match the hash"):
        load_embedder(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(EngineError, match="not valid JSON"):
        read_sidecar(engine)
    sidecar_path(engine).unlink()
    with pytest.raises(EngineError, match="no sidecar"):
        read_sidecar(engine)
    with pytest.raises(EngineError, match="not found"):
        load_embedder(tmp_path / "missing.engine")


@pytest.mark.parametrize("field, edit", [
    ("preprocess.mean", lambda d: d["preprocess"].__setitem__("mean", [0.5, 0.5, 0.5])),
    ("preprocess.color_order", lambda d: d["preprocess"].__setitem__("color_order", "BGR")),
    ("preprocess.height", lambda d: d["preprocess"].__setitem__("height", 96)),
    ("recipe", lambda d: d.__setitem__("recipe", "z")),
    ("embedding_dim", lambda d: d.__setitem__("embedding_dim", 64)),
])
def test_an_edited_sidecar_that_contradicts_the_graph_is_refused_naming_the_field(tmp_path, tiny_onnx, field, edit):
    engine = tmp_path / "e.ort.onnx"
    build_engine(tiny_onnx, engine, backend="ort")
    load_embedder(engine).close()  # as built: sidecar and graph agree
    info = json.loads(sidecar_path(engine).read_text())
    edit(info)
    sidecar_path(engine).write_text(json.dumps(info))
    with pytest.raises(EngineError, match=rf"sidecar and its graph disagree on {field}.*rebuild it"):
        load_embedder(engine)


def test_an_edited_sidecar_field_the_graph_does_not_hold_is_refused_naming_it(tmp_path, tiny_onnx):
    engine = tmp_path / "e.ort.onnx"
    build_engine(tiny_onnx, engine, backend="ort")
    info = json.loads(sidecar_path(engine).read_text())
    info["input_name"] = "pixels"  # the graph check cannot see this one; the field hashes can
    sidecar_path(engine).write_text(json.dumps(info))
    with pytest.raises(EngineError, match="sidecar field input_name is changed since the engine was built"):
        load_embedder(engine)


def _fake_trt_engine(tmp_path, **edit):
    """A TensorRT-style engine file with a sidecar written by the builder's own writer."""
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"not a real plan")
    info = {"backend": "trt", "precision": "fp16", "recipe": "full", "input_name": "images", "output_name": "emb",
            "embedding_dim": 64, "batch_profile": [1, 8, 32], "source_onnx": "m.onnx",
            "preprocess": {"height": 128, "width": 64, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225],
                           "color_order": "RGB"}}
    write_sidecar(engine, info)
    data = json.loads(sidecar_path(engine).read_text())
    for key, value in edit.items():
        if key.startswith("preprocess."):
            data["preprocess"][key.split(".", 1)[1]] = value
        else:
            data[key] = value
    sidecar_path(engine).write_text(json.dumps(data))
    return engine


@pytest.mark.parametrize("field, value", [("preprocess.std", [0.5, 0.5, 0.5]), ("preprocess.color_order", "BGR"),
                                          ("embedding_dim", 32), ("recipe", "z"), ("batch_profile", [1, 1, 64])])
def test_edited_trt_sidecar_is_refused_before_tensorrt_is_needed(tmp_path, field, value):
    """A TensorRT plan carries no metadata: the sidecar's field hashes catch the edit by name,
    before TensorRT or a GPU is touched (so this runs here)."""
    untouched = _fake_trt_engine(tmp_path)
    assert check_sidecar_facts(read_sidecar(untouched), untouched) is True
    engine = _fake_trt_engine(tmp_path, **{field: value})
    with pytest.raises(EngineError, match=rf"sidecar field {field} is changed.*build-engine m.onnx --backend trt"):
        load_embedder(engine)


def test_sidecars_without_field_hashes_are_not_checked():
    assert check_sidecar_facts({"recipe": "full"}, "old.engine") is False


class _FakeTrt:
    class TensorIOMode:
        INPUT, OUTPUT = "in", "out"


class _FakePlan:
    """The slice of ``trt.ICudaEngine`` that :func:`check_engine_io` reads."""

    def __init__(self, tensors):
        self.tensors = tensors  # [(name, mode, shape)]
        self.num_io_tensors = len(tensors)

    def get_tensor_name(self, i):
        return self.tensors[i][0]

    def get_tensor_mode(self, name):
        return next(m for n, m, _ in self.tensors if n == name)

    def get_tensor_shape(self, name):
        return next(s for n, _, s in self.tensors if n == name)


@pytest.mark.parametrize("tensors, message", [
    ([("images", "in", (-1, 3, 128, 64)), ("emb", "out", (-1, 64))], None),
    ([("input", "in", (-1, 3, 128, 64)), ("emb", "out", (-1, 64))], "input_name"),
    ([("images", "in", (-1, 3, 128, 64)), ("feat", "out", (-1, 64))], "output_name"),
    ([("images", "in", (-1, 3, 256, 128)), ("emb", "out", (-1, 64))], "the input size"),
    ([("images", "in", (-1, 3, 128, 64)), ("emb", "out", (-1, 8192))], "embedding_dim"),
])
def test_trt_engine_io_is_checked_against_its_sidecar(tensors, message):
    from mvd_edge.runtime.trt_backend import check_engine_io

    info = {"backend": "trt", "input_name": "images", "output_name": "emb", "embedding_dim": 64,
            "preprocess": {"height": 128, "width": 64}, "source_onnx": "m.onnx", "batch_profile": [1, 8, 32]}
    if message is None:
        check_engine_io(_FakePlan(tensors), _FakeTrt, info, "m.engine")
    else:
        with pytest.raises(EngineError, match=rf"sidecar and the engine disagree on {message}"):
            check_engine_io(_FakePlan(tensors), _FakeTrt, info, "m.engine")


def test_trt_engines_are_tied_to_gpu_and_version():
    info = {"backend": "trt", "source_onnx": "m.onnx", "batch_profile": [1, 8, 32],
            "versions": {"tensorrt": "10.3.0"}, "gpu": {"name": "Orin", "compute_capability": "8.7"}}
    check_trt_compat(info, "10.3.0", "Orin", "8.7")
    with pytest.raises(EngineError, match="TensorRT 10.3.0.*11.0.*--backend trt --batch 1,8,32"):
        check_trt_compat(info, "11.0.0", "Orin", "8.7")
    with pytest.raises(EngineError, match="sm 8.7.*H100"):
        check_trt_compat(info, "10.3.0", "H100", "9.0")


def test_trt_backend_without_tensorrt_is_a_one_line_install_hint(tmp_path, tiny_onnx):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("TensorRT is installed here; the missing-TensorRT message cannot be exercised")
    except ImportError:
        pass
    with pytest.raises(RuntimeError) as exc:
        build_engine(tiny_onnx, tmp_path / "m.engine", backend="trt")
    assert str(exc.value) == INSTALL_HINT and "\n" not in str(exc.value)


def test_engine_build_argument_errors(tmp_path, tiny_onnx):
    with pytest.raises(ValueError, match="min,opt,max"):
        parse_batch("8,1,32")
    with pytest.raises(ValueError, match="unknown backend"):
        build_engine(tiny_onnx, tmp_path / "x", backend="tvm")
    with pytest.raises(EngineError, match="not found"):
        build_engine(tmp_path / "nope.onnx", tmp_path / "x")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"garbage")
    with pytest.raises(EngineError, match="not a loadable ONNX graph"):
        build_engine(junk, tmp_path / "x")


def test_runtime_does_not_import_torch(tmp_path, tiny_onnx):
    engine = tmp_path / "m.ort.onnx"
    build_engine(tiny_onnx, engine, backend="ort")
    code = (
        "import sys, numpy as np\n"
        "from mvd_edge.runtime import load_embedder\n"
        f"e = load_embedder({str(engine)!r})\n"
        "y = e.embed([np.zeros((40, 20, 3), np.uint8)])\n"
        "assert y.shape == (1, 512)\n"
        "assert 'torch' not in sys.modules, 'runtime imported torch'\n"
        "print('ok')\n"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and "ok" in res.stdout, res.stderr[-2000:]


def test_preprocess_is_shared_by_runtime_and_evaluation(tmp_path):
    """The training-evaluation dataset path and the runtime path produce the same input tensor."""
    import cv2
    import torch  # noqa: F401

    from mvd_edge.core.modality import Modality
    from mvd_edge.data.base import Sample
    from mvd_edge.train.dataset import ReidImageDataset

    spec = PreprocessSpec(64, 32)
    img = _crops(1)[0]
    path = tmp_path / "a.png"
    cv2.imwrite(str(path), img)
    x_eval = ReidImageDataset([Sample(path, 1, 1, Modality.VISIBLE)], spec)[0][0].numpy()
    x_rt = preprocess_batch([img], spec)[0]
    assert np.array_equal(x_eval, x_rt)
