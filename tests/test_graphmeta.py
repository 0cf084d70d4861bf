"""GraphMeta: the typed, schema-versioned ONNX metadata contract (export -> quant -> engines -> runtime)."""

import dataclasses
import json
import subprocess
import sys

import onnx
import pytest

from mvd_edge.core.graphmeta import SCHEMA_KEY, GraphMeta, MetadataError, read_metadata, read_onnx_header
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.runtime import EngineError
from mvd_edge.runtime.engine import build_engine, graph_facts

SPEC = PreprocessSpec(height=64, width=32)
SHA = "ab" * 32


def _fp32(**kw) -> GraphMeta:
    base = dict(version="0.1.0", recipe="full", preprocess=SPEC, embedding_dim=512, checkpoint_sha256=SHA,
                backbone="tiny")
    return GraphMeta(**{**base, **kw})


def _int8(meta: GraphMeta | None = None) -> GraphMeta:
    return (meta or _fp32()).derive_int8(
        flavour="cpu", activation_type="uint8", weight_bits=7, include_head=False, excluded_layers=["b", "a"],
        calib_method="minmax", calib_params={"moving_average": False, "averaging_constant": 0.01},
        calib_ranges_key="k" * 64, calib_manifest_sha256="m" * 64, calib_crops=96, source_onnx_sha256="s" * 64)


def _legacy_props(spec: PreprocessSpec, dim: int, recipe: str, sha: str, backbone: str, fused: bool) -> dict:
    """The metadata dict exactly as export.py wrote it before GraphMeta existed (copied from that code)."""
    return {
        "mvd_edge.version": "0.1.0",
        "mvd_edge.recipe": recipe,
        "mvd_edge.input_size": json.dumps([spec.height, spec.width]),
        "mvd_edge.preprocess": json.dumps(spec.to_dict()),
        "mvd_edge.mean": json.dumps(list(spec.mean)),
        "mvd_edge.std": json.dumps(list(spec.std)),
        "mvd_edge.color_order": spec.color_order,
        "mvd_edge.embedding_dim": str(dim),
        "mvd_edge.checkpoint_sha256": sha,
        "mvd_edge.backbone": backbone,
        "mvd_edge.fused_head": "1" if fused else "0",
        "mvd_edge.precision": "fp32",
    }


def _rewrite(src, dst, props: dict) -> None:
    """Copy an ONNX file with its metadata_props replaced by ``props`` (for hand-made bad graphs)."""
    model = onnx.load(str(src))
    del model.metadata_props[:]
    for k, v in props.items():
        e = model.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(model, str(dst))


# ----------------------------------------------------------------------------- encoding


def test_props_roundtrip_and_legacy_encodings():
    fp32 = _fp32()
    props = fp32.to_props()
    legacy = _legacy_props(SPEC, 512, "full", SHA, "tiny", False)
    # files written now differ from the old ones only by the schema key, which comes last
    assert props == {**legacy, SCHEMA_KEY: str(GraphMeta.SCHEMA_VERSION)}
    assert list(props) == [*legacy, SCHEMA_KEY]
    assert GraphMeta.from_props(props) == fp32
    assert GraphMeta.from_props(legacy) == fp32  # no schema key: read as schema 1
    int8 = _int8()
    p8 = int8.to_props()
    assert p8["mvd_edge.calib_params"] == '{"averaging_constant": 0.01, "moving_average": false}'  # sort_keys
    assert p8["mvd_edge.int8_excluded_layers"] == '["b", "a"]' and p8["mvd_edge.int8_include_head"] == "0"
    assert p8["mvd_edge.int8_weight_bits"] == "7" and p8["mvd_edge.calib_crops"] == "96"
    assert list(p8)[-2:] == ["mvd_edge.source_onnx_sha256", SCHEMA_KEY]
    back = GraphMeta.from_props(p8)
    assert back == int8 and back.int8_excluded_layers == ("b", "a") and dict(back.calib_params) == dict(
        int8.calib_params)
    fp16 = fp32.derive_fp16(kept_fp32=["n1"], source_onnx_sha256="s" * 64)
    assert fp16.to_props()["mvd_edge.fp16_kept_fp32"] == '["n1"]'
    assert GraphMeta.from_props(fp16.to_props()) == fp16
    odd = _fp32(preprocess=PreprocessSpec(32, 16, mean=(0.5,) * 3, std=(0.25,) * 3, color_order="bgr",
                                          interpolation="AREA"), fused_head=True, recipe="z", embedding_dim=64)
    assert GraphMeta.from_props(odd.to_props()) == odd
    assert odd.to_props()["mvd_edge.fused_head"] == "1" and odd.to_props()["mvd_edge.color_order"] == "BGR"


def test_graphmeta_is_frozen_and_consistent():
    meta = _fp32()
    with pytest.raises(dataclasses.FrozenInstanceError):
        meta.recipe = "z"  # type: ignore[misc]
    with pytest.raises(ValueError, match="int8 GraphMeta needs"):
        _fp32(precision="int8")
    with pytest.raises(ValueError, match="cannot carry INT8"):
        _fp32(int8_flavour="cpu")
    with pytest.raises(ValueError, match="unknown precision"):
        _fp32(precision="bf16")
    with pytest.raises(ValueError, match="source_onnx_sha256"):
        _fp32(source_onnx_sha256="x")


def test_int8_derived_from_fp32_keeps_model_facts():
    fp32 = _fp32(recipe="shared", embedding_dim=128, preprocess=PreprocessSpec(48, 24))
    int8 = _int8(fp32)
    for name in ("version", "recipe", "preprocess", "embedding_dim", "checkpoint_sha256", "backbone", "fused_head"):
        assert getattr(int8, name) == getattr(fp32, name), name
    assert int8.precision == "int8" and int8.int8_flavour == "cpu" and int8.calib_crops == 96
    assert fp32.precision == "fp32" and fp32.int8_flavour is None  # the source is untouched
    with pytest.raises(ValueError, match="from the FP32 export"):
        _int8(int8)
    with pytest.raises(ValueError, match="from the FP32 export"):
        int8.derive_fp16(kept_fp32=[], source_onnx_sha256="s")


# ----------------------------------------------------------------------------- errors


def test_newer_schema_is_refused():
    props = {**_fp32().to_props(), SCHEMA_KEY: str(GraphMeta.SCHEMA_VERSION + 1)}
    with pytest.raises(MetadataError, match=r"g\.onnx.*mvd_edge\.meta_schema.*newer mvd-edge"):
        GraphMeta.from_props(props, source="g.onnx")
    with pytest.raises(MetadataError, match="not an integer"):
        GraphMeta.from_props({**props, SCHEMA_KEY: "two"}, source="g.onnx")


def test_missing_or_bad_keys_name_the_key_and_the_file():
    props = _fp32().to_props()
    for key in ("mvd_edge.embedding_dim", "mvd_edge.preprocess", "mvd_edge.recipe"):
        bad = {k: v for k, v in props.items() if k != key}
        with pytest.raises(MetadataError, match=rf"model\.onnx: missing metadata key '{key}'"):
            GraphMeta.from_props(bad, source="model.onnx")
    with pytest.raises(MetadataError, match="model.onnx.*no mvd-edge metadata at all"):
        GraphMeta.from_props({"other": "x"}, source="model.onnx")
    cases = {"mvd_edge.fused_head": ("yes", "expected '0' or '1'"),
             "mvd_edge.embedding_dim": ("wide", "not an integer"),
             "mvd_edge.preprocess": ("{not json", "not valid JSON"),
             "mvd_edge.precision": ("int4", "expected one of"),
             "mvd_edge.mean": ("[0.5, 0.5, 0.5]", "says")}
    for key, (value, why) in cases.items():
        with pytest.raises(MetadataError, match=rf"m\.onnx.*'{key}'.*{why}"):
            GraphMeta.from_props({**props, key: value}, source="m.onnx")
    bad_spec = json.dumps({**SPEC.to_dict(), "interpolation": "sinc"})
    with pytest.raises(MetadataError, match="'mvd_edge.preprocess'.*interpolation 'sinc'"):
        GraphMeta.from_props({k: v for k, v in props.items() if k != "mvd_edge.preprocess"}
                             | {"mvd_edge.preprocess": bad_spec}, source="m.onnx")
    p8 = _int8().to_props()
    del p8["mvd_edge.calib_method"]
    with pytest.raises(MetadataError, match="'mvd_edge.calib_method' is missing, which an int8 graph"):
        GraphMeta.from_props(p8, source="q.onnx")


def test_graph_without_mvd_metadata_is_refused_with_file_and_key(tmp_path, tiny_onnx):
    bare = tmp_path / "foreign.onnx"
    _rewrite(tiny_onnx, bare, {})
    with pytest.raises(MetadataError, match=r"foreign\.onnx: missing metadata key 'mvd_edge\.version'"):
        GraphMeta.from_onnx(bare)
    with pytest.raises(EngineError, match=r"foreign\.onnx: missing metadata key"):
        build_engine(bare, tmp_path / "x.onnx")
    newer = tmp_path / "newer.onnx"
    _rewrite(tiny_onnx, newer, {**read_metadata(tiny_onnx), SCHEMA_KEY: "99"})
    with pytest.raises(EngineError, match=r"newer\.onnx.*schema 99"):
        build_engine(newer, tmp_path / "y.onnx")
    with pytest.raises(EngineError, match="newer mvd-edge"):
        from mvd_edge.runtime import load_embedder

        load_embedder(newer)


# ----------------------------------------------------------------------------- files and sessions


def test_exported_graph_reads_into_graphmeta(tiny_onnx):
    import onnxruntime as ort

    meta = GraphMeta.from_onnx(tiny_onnx)
    assert (meta.recipe, meta.embedding_dim, meta.backbone, meta.precision, meta.fused_head) == \
        ("full", 512, "tiny", "fp32", False)
    assert meta.preprocess == PreprocessSpec(64, 32) and len(meta.checkpoint_sha256) == 64
    props = read_metadata(tiny_onnx)
    assert props == meta.to_props()  # exact strings, schema key included
    sess = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    assert GraphMeta.from_session(sess, source=tiny_onnx) == meta
    header = read_onnx_header(tiny_onnx)
    model = onnx.load(str(tiny_onnx))
    assert header.metadata == props
    assert header.inputs == tuple(i.name for i in model.graph.input) == ("input",)
    assert header.outputs == ("embedding",)


def test_write_to_replaces_only_its_own_entries(tiny_onnx):
    model = onnx.load(str(tiny_onnx))
    e = model.metadata_props.add()
    e.key, e.value = "vendor.note", "kept"
    e = model.metadata_props.add()
    e.key, e.value = "mvd_edge.stale", "dropped"
    int8 = _int8(GraphMeta.from_props({p.key: p.value for p in model.metadata_props}))
    int8.write_to(model)
    props = {p.key: p.value for p in model.metadata_props}
    assert props == {"vendor.note": "kept", **int8.to_props()}


def _fused_graph(path, meta: GraphMeta) -> None:
    """A graph holding the TensorRT-only ``mvd::FusedHead`` op, which ONNX Runtime cannot load."""
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("FusedHead", ["input"], ["embedding"], domain="mvd")], "fused",
                          [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 64, 32])],
                          [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", 512])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("mvd", 1)])
    model.ir_version = 8
    meta.write_to(model)
    onnx.save(model, str(path))


def test_graph_facts_of_a_fused_head_graph(tmp_path):
    path = tmp_path / "fused.onnx"
    meta = _fp32(fused_head=True)
    _fused_graph(path, meta)
    facts = graph_facts(path)
    assert facts == {"meta": meta, "input_name": "input", "output_name": "embedding"}
    with pytest.raises(EngineError, match="fused-head"):
        build_engine(path, tmp_path / "f.ort.onnx", backend="ort")


NO_ONNX = """
import json, sys
sys.modules["onnx"] = None  # the edge install: onnxruntime only
from pathlib import Path
import numpy as np
from mvd_edge.core.graphmeta import GraphMeta
from mvd_edge.runtime import load_embedder
from mvd_edge.runtime.engine import build_engine, graph_facts
src, fused, work = (Path(a) for a in sys.argv[1:4])
meta = GraphMeta.from_onnx(src)
fused_facts = graph_facts(fused)
info = build_engine(src, work / "m.ort.onnx", backend="ort")
y = load_embedder(work / "m.ort.onnx").embed([np.zeros((40, 20, 3), np.uint8)])
y2 = load_embedder(src).embed([np.zeros((40, 20, 3), np.uint8)])
assert sys.modules.get("onnx") is None, "something imported onnx"
print(json.dumps({"props": meta.to_props(), "fused": fused_facts["meta"].to_props(),
                  "fused_io": [fused_facts["input_name"], fused_facts["output_name"]],
                  "recipe": info["recipe"], "shape": list(y.shape), "shape2": list(y2.shape)}))
"""


def test_reading_and_runtime_work_without_the_onnx_package(tmp_path, tiny_onnx):
    fused = tmp_path / "fused.onnx"
    _fused_graph(fused, _fp32(fused_head=True))
    res = subprocess.run([sys.executable, "-c", NO_ONNX, str(tiny_onnx), str(fused), str(tmp_path)],
                         capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    with_onnx = GraphMeta.from_onnx(tiny_onnx)
    assert GraphMeta.from_props(out["props"]) == with_onnx and out["props"] == with_onnx.to_props()
    assert GraphMeta.from_props(out["fused"]) == GraphMeta.from_onnx(fused)
    assert out["fused_io"] == ["input", "embedding"]
    assert out["recipe"] == "full" and out["shape"] == [1, 512] and out["shape2"] == [1, 512]


def test_from_onnx_needs_no_onnx_in_process(monkeypatch, tiny_onnx):
    props = {p.key: p.value for p in onnx.load(str(tiny_onnx)).metadata_props}
    with_onnx = GraphMeta.from_props(props)
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert GraphMeta.from_onnx(tiny_onnx) == with_onnx


def test_header_inputs_leave_out_weights_listed_as_inputs(tmp_path):
    """Old-style graphs list initializers among graph.input; like ONNX Runtime, the reader drops them."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((3,), np.float32), name="w")
    graph = helper.make_graph([helper.make_node("Add", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
                               helper.make_tensor_value_info("w", TensorProto.FLOAT, [3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])], initializer=[w])
    path = tmp_path / "old.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    header = read_onnx_header(path)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert header.inputs == tuple(i.name for i in sess.get_inputs()) == ("x",)
    assert header.outputs == ("y",)
