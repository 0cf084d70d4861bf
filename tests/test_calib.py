"""Calibration (`mvd_edge.quant`): manifests, range caching, Q/DQ placement, FP16/INT8 parity, fallback.

Model under test: the ``tiny`` MVDNet with random weights whose BatchNorm statistics are
set from one train-mode pass over random inputs (so activations are normalised and the
embeddings of different crops are nearly orthogonal, like a trained model's), exported at
64x32. Stated tolerances, on fresh random crops against the FP32 graph:

* FP16 graph: mean cosine >= 0.999 (``FP16_MIN_COS``);
* INT8 graphs (both flavours, ONNX Runtime CPU): mean cosine >= 0.99 (``INT8_MIN_COS``);
  measured about 0.999 on this model.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import helper, numpy_helper
from tiny_checkpoint import tiny_model

from mvd_edge.core.graphmeta import GraphMeta, read_metadata
from mvd_edge.core.modality import Modality
from mvd_edge.core.preprocess import PreprocessSpec, preprocess_batch
from mvd_edge.deploy.export import export_onnx
from mvd_edge.model.net import MVDNet
from mvd_edge.quant import api, graph, qdq
from mvd_edge.quant import manifest as man_mod
from mvd_edge.quant import ranges as ranges_mod
from mvd_edge.quant.fp16 import fp16_graph
from mvd_edge.quant.manifest import CalibrationSetWarning, Manifest, ManifestError
from mvd_edge.train import trainer

FP16_MIN_COS = 0.999
INT8_MIN_COS = 0.99
SPEC = PreprocessSpec(height=64, width=32)


# ----------------------------------------------------------------------------- fixtures


def _tiny_model(seed: int, outlier: float | None = None) -> MVDNet:
    """Tiny MVDNet, BN stats from one train-mode pass; ``outlier``: blow up one channel (FP32-neutral)."""
    model = tiny_model(seed, SPEC)
    if outlier is not None:
        # channel 0 of the RGB branch's first block (between conv1 and conv2) scaled by `outlier`,
        # conv2's weights for that channel divided by it: same FP32 function (ReLU is positively
        # homogeneous), but a per-tensor INT8 range that crushes the other channels.
        blk = model.branches["rgb"].trunk[1][0]
        with torch.no_grad():
            blk.bn1.weight[0] *= outlier
            blk.bn1.bias[0] *= outlier
            blk.conv2.weight[:, 0] /= outlier
    return model


def _export(model: MVDNet, path: Path) -> Path:
    ckpt = path.with_suffix(".pt")
    torch.save({"format": trainer.CKPT_FORMAT, "model": model.state_dict(), "model_spec": model.spec.to_dict(),
                "recipe": "full", "preprocess": SPEC.to_dict(), "epoch": 0}, ckpt)
    export_onnx(ckpt, path)
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("calib")


@pytest.fixture(scope="module")
def sysu_root(work) -> Path:
    from mvd_edge.synth.dataset import write_sysu

    root = work / "sysu"
    write_sysu(root, n_ids=30, images_per_cam=3, size=(64, 32), seed=0)
    return root


@pytest.fixture(scope="module")
def dataset(sysu_root):
    from mvd_edge.data.registry import load_dataset

    return load_dataset("sysu", sysu_root)


@pytest.fixture(scope="module")
def fp32_onnx(work) -> Path:
    return _export(_tiny_model(0), work / "model.onnx")


@pytest.fixture(scope="module")
def small_manifest(sysu_root) -> Manifest:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CalibrationSetWarning)
        return man_mod.from_dataset("sysu", sysu_root, n=96, seed=0)


@pytest.fixture(scope="module")
def quantized(work, fp32_onnx, small_manifest) -> dict:
    return api.quantize(fp32_onnx, work / "int8", small_manifest, progress=False)


def _random_batch(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    crops = [rng.integers(0, 256, size=(int(rng.integers(40, 260)), int(rng.integers(20, 130)), 3), dtype=np.uint8)
             for _ in range(n)]
    return preprocess_batch(crops, SPEC)


def _run(path, x: np.ndarray, exact: bool = False) -> np.ndarray:
    so = ort.SessionOptions()
    if exact:  # every Q/DQ pair as written: TensorRT's arithmetic, not ORT's fused x86 kernels
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"input": x})[0]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {o: n for n in model.graph.node for o in n.output}


def _zero_point(model: onnx.ModelProto, node: onnx.NodeProto) -> np.ndarray:
    inits = {t.name: t for t in model.graph.initializer}
    return numpy_helper.to_array(inits[node.input[2]])


# ----------------------------------------------------------------------------- manifests


def _pid_of(entry) -> int:
    return int(Path(entry.path).parts[1])


def test_dataset_manifest_is_stratified_deterministic_and_train_only(sysu_root, dataset):
    # 324 training images: 18 ids x 6 cameras x 3; cameras 3 and 6 (108 images) are infrared
    with pytest.warns(CalibrationSetWarning):
        m = man_mod.from_dataset("sysu", sysu_root, n=202, seed=0)
    counts = m.counts
    assert counts["total"] == 202 and counts["modality"] == {"ir": 101, "rgb": 101}
    assert sorted(counts["camera"][c] for c in ("1", "2", "4", "5")) == [25, 25, 25, 26]
    assert sorted(counts["camera"][c] for c in ("3", "6")) == [50, 51]
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationSetWarning)  # 300 crops: no warning
        m = man_mod.from_dataset("sysu", sysu_root, n=300, seed=0)
    counts = m.counts  # infrared runs out (108): visible takes the rest, still even over its cameras
    assert counts["total"] == 300 and counts["modality"] == {"ir": 108, "rgb": 192}
    assert all(counts["camera"][c] == 48 for c in ("1", "2", "4", "5"))
    for e in m.entries:  # modality follows the SYSU cameras (3 and 6 are infrared)
        assert e.modality is (Modality.INFRARED if e.cam in (3, 6) else Modality.VISIBLE)
    train_ids = {s.pid for s in dataset.train}
    assert {_pid_of(e) for e in m.entries} <= train_ids
    again = man_mod.from_dataset("sysu", sysu_root, n=300, seed=0)
    other = man_mod.from_dataset("sysu", sysu_root, n=300, seed=1)
    assert again.sha256 == m.sha256 and other.sha256 != m.sha256
    assert len({e.path for e in m.entries}) == 300  # no duplicates


def test_manifest_roundtrip_yields_uint8_bgr_crops(work, small_manifest):
    path = small_manifest.save(work / "m.json")
    d = json.loads(path.read_text())
    assert d["format"] == man_mod.MANIFEST_FORMAT and d["sha256"] == small_manifest.sha256
    assert d["counts"]["total"] == 96 and d["seed"] == 0 and d["source"]["split"] == "train"
    loaded = Manifest.load(path)
    assert loaded.sha256 == small_manifest.sha256
    crops = list(man_mod.iter_crops(path))
    assert len(crops) == 96
    assert all(c.dtype == np.uint8 and c.ndim == 3 and c.shape[2] == 3 for c in crops)


def test_manifest_warns_below_300_and_when_set_is_short(sysu_root):
    with pytest.warns(CalibrationSetWarning, match="at least 300"):
        man_mod.from_dataset("sysu", sysu_root, n=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationSetWarning)
        m = man_mod.from_dataset("sysu", sysu_root)  # default 512; 324 training images are available
    assert len(m) == 324 and m.source["requested"] == 512


@pytest.mark.parametrize("split", ["test", "query", "gallery"])
def test_manifest_refuses_evaluation_splits(sysu_root, split):
    with pytest.raises(ManifestError, match="never calibrates"):
        man_mod.from_dataset("sysu", sysu_root, split=split)


def _write_images(folder: Path, n: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        cv2.imwrite(str(folder / f"c{1 + i % 2}_{i:04d}.png"), rng.integers(0, 256, (40, 20, 3), dtype=np.uint8))


def test_folder_manifest_guesses_modality_and_refuses_eval_folders(tmp_path):
    _write_images(tmp_path / "calib" / "rgb", 4)
    _write_images(tmp_path / "calib" / "ir", 2)
    with pytest.warns(CalibrationSetWarning):
        m = man_mod.from_folder(tmp_path / "calib")
    assert m.counts["modality"] == {"ir": 2, "rgb": 4} and m.counts["camera"] == {"1": 3, "2": 3}
    _write_images(tmp_path / "calib" / "query", 1)
    with pytest.raises(ManifestError, match="'query'"):
        man_mod.from_folder(tmp_path / "calib")
    for name in ("test", "gallery"):
        _write_images(tmp_path / name, 1)
        with pytest.raises(ManifestError, match=name):
            man_mod.from_folder(tmp_path / name)


def test_manifest_detects_edits_and_changed_files(tmp_path):
    _write_images(tmp_path / "imgs", 3)
    with pytest.warns(CalibrationSetWarning):
        m = man_mod.from_folder(tmp_path / "imgs")
    d = m.to_dict()
    d["entries"] = d["entries"][:2]
    with pytest.raises(ManifestError, match="sha256"):
        Manifest.from_dict(d)
    d = m.to_dict()
    d["entries"][0]["colour"] = "x"
    with pytest.raises(ManifestError, match="unknown key"):
        Manifest.from_dict(d)
    cv2.imwrite(str(tmp_path / "imgs" / m.entries[0].path), np.zeros((40, 20, 3), np.uint8))
    with pytest.raises(ManifestError, match="changed"):
        m.verify()


def _write_video(path: Path, n_frames: int = 20, size=(160, 120)) -> None:
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    assert w.isOpened(), "OpenCV cannot write MJPG .avi here"
    for i in range(n_frames):
        f = np.full((size[1], size[0], 3), 40, np.uint8)
        cv2.rectangle(f, (10 + 3 * i, 20), (40 + 3 * i, 100), (200, 180, 160), -1)
        cv2.rectangle(f, (130, 30), (160, 110), (60, 200, 60), -1)
        w.write(f)
    w.release()


def test_video_manifest_from_mot_boxes(tmp_path):
    video = tmp_path / "clip.avi"
    _write_video(video)
    lines = []
    for f in range(1, 21):  # MOT frames are 1-based
        lines.append(f"{f},1,{10 + 3 * (f - 1)},20,31,81,1,-1,-1,-1")
        lines.append(f"{f},2,130,30,45,81,1,-1,-1,-1")  # runs off the right edge: clipped to 30 px wide
        lines.append(f"{f},3,5,5,6,6,1,-1,-1,-1")  # too small: dropped
    boxes = tmp_path / "gt.txt"
    boxes.write_text("\n".join(lines) + "\n")
    with pytest.warns(CalibrationSetWarning):
        m = man_mod.from_video(video, boxes=boxes, every=5, modality="ir", cam=7)
    assert [e.frame for e in m.entries] == [0, 0, 5, 5, 10, 10, 15, 15]
    assert {e.track for e in m.entries} == {1, 2}
    assert all(e.modality is Modality.INFRARED and e.cam == 7 for e in m.entries)
    assert m.entries[1].box == (130, 30, 30, 81)
    assert m.source["frames_decoded"] == 20 and m.source["boxes_dropped_small"] == 4
    crops = list(man_mod.iter_crops(m.save(tmp_path / "video.json")))
    assert [c.shape[:2] for c in crops] == [(e.box[3], e.box[2]) for e in m.entries]
    # the person rectangle (colour ~ (200,180,160)) fills the crop of track 1
    assert abs(float(crops[0][40, 15, 0]) - 200) < 20
    with pytest.raises(ManifestError, match="1-based"):
        (tmp_path / "bad.txt").write_text("0,1,1,1,10,10\n")
        man_mod.from_video(video, boxes=tmp_path / "bad.txt")


# ----------------------------------------------------------------------------- ranges


def test_ranges_are_cached_by_model_preprocess_manifest_and_method(work, fp32_onnx, small_manifest, monkeypatch):
    calls = []
    real = ranges_mod._make_calibrator

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(ranges_mod, "_make_calibrator", counting)
    prepared = graph.prepare(fp32_onnx, work / "prepared.onnx")
    cache = work / "cache-test"
    kw = dict(cache_dir=cache, model_sha256="model-a", progress=False)
    first = ranges_mod.compute_ranges(prepared, small_manifest, **kw)
    second = ranges_mod.compute_ranges(prepared, small_manifest, **kw)
    assert calls == ["minmax"] and not first.cache_hit and second.cache_hit
    assert second.key == first.key and _minmax(second) == _minmax(first) and second.n_crops == 96
    assert first.cache_path.is_file() and len(list(cache.glob("ranges-*.json"))) == 1
    ranges_mod.compute_ranges(prepared, small_manifest, **{**kw, "model_sha256": "model-b"})
    ranges_mod.compute_ranges(prepared, small_manifest, method="percentile", **kw)
    ranges_mod.compute_ranges(prepared, small_manifest, spec=PreprocessSpec(height=64, width=32, mean=(0.5,) * 3),
                              **kw)
    assert calls == ["minmax", "minmax", "percentile", "minmax"]
    with pytest.raises(ValueError, match="unknown parameter"):
        ranges_mod.compute_ranges(prepared, small_manifest, method="entropy", params={"percentile": 99.0}, **kw)


def _minmax(ranges) -> dict[str, tuple[float, float]]:
    """``{tensor: (lowest, highest)}`` of calibration ranges, as Python floats."""
    return {name: (float(np.min(td.range_value[0])), float(np.max(td.range_value[1])))
            for name, td in ranges.tensors.items()}


def test_entropy_ranges_lie_within_minmax(work, fp32_onnx, small_manifest):
    prepared = graph.prepare(fp32_onnx, work / "prepared-e.onnx")
    sub = small_manifest.subset(range(32), "entropy test")
    mm = _minmax(ranges_mod.compute_ranges(prepared, sub, progress=False))
    en = _minmax(ranges_mod.compute_ranges(prepared, sub, method="entropy", params={"num_bins": 256},
                                           progress=False))
    assert set(mm) == set(en)
    absmax = {t: max(abs(lo), abs(hi)) for t, (lo, hi) in mm.items()}
    assert all(max(abs(en[t][0]), abs(en[t][1])) <= absmax[t] * 1.0001 + 1e-6 for t in mm)
    assert any(max(abs(en[t][0]), abs(en[t][1])) < 0.9 * absmax[t] for t in mm)  # entropy clips outliers


# ----------------------------------------------------------------------------- Q/DQ placement


def _layout(model_path: Path):
    return graph.analyse(onnx.load(str(model_path)))


def test_layout_of_the_tiny_model(work, fp32_onnx):
    lay = graph.analyse(onnx.load(str(graph.prepare(fp32_onnx, work / "prepared-l.onnx"))))
    # full recipe: four trunk passes (ir, shared on g, rgb, shared on x), 12 convs and 4 residual adds each
    assert len(lay.convs) == 48 and len(lay.residual_adds) == 16 and len(lay.last_layer_of_trunk) == 4
    assert {lay.op_type[n] for n in lay.head} >= {"GlobalAveragePool", "BatchNormalization", "Concat", "ReduceL2"}
    assert {lay.op_type[n] for n in lay.inputs} >= {"Mul", "ReduceSum", "Div"}  # the in-graph grayscale view


@pytest.mark.parametrize("flavour", ["trt", "cpu"])
def test_qdq_placement(quantized, flavour):
    path = Path(quantized["flavours"][flavour]["onnx"])
    assert path.name == f"model.int8-{flavour}.onnx"
    model = onnx.load(str(path))
    prod = _producers(model)
    inits = {t.name: t for t in model.graph.initializer}
    placement = quantized["flavours"][flavour]["placement"]
    head = set(placement["head"])
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    assert len(convs) == 48
    for node in convs:  # activation and weight both through DequantizeLinear; weights int8 per channel
        act, weight = prod.get(node.input[0]), prod.get(node.input[1])
        assert act is not None and act.op_type == "DequantizeLinear", node.name
        assert weight is not None and weight.op_type == "DequantizeLinear", node.name
        w_int = inits[weight.input[0]]
        assert w_int.data_type == onnx.TensorProto.INT8
        assert numpy_helper.to_array(inits[weight.input[1]]).size == w_int.dims[0]  # per output channel
        assert not np.any(_zero_point(model, weight))  # symmetric weights
    res_adds = [n for n in model.graph.node if n.name in set(placement["layers"]) and n.op_type == "Add"]
    assert len(res_adds) == 16
    for node in res_adds:
        assert all(prod[i].op_type == "DequantizeLinear" for i in node.input), node.name
    consumers = Counter(c.op_type for n in model.graph.node if n.name in head
                        for o in n.output for c in model.graph.node if o in c.input)
    assert "QuantizeLinear" not in consumers
    for node in model.graph.node:
        if node.name in head:
            assert all(i not in prod or prod[i].op_type != "DequantizeLinear" for i in node.input), node.name
    q_nodes = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q_nodes
    if flavour == "trt":
        readers = Counter(i for n in model.graph.node for i in n.input)
        for n in model.graph.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                assert readers[n.output[0]] == 1, n.name  # one pair per consumer: TensorRT fuses pairs
        for n in model.graph.node:
            if n.op_type in ("QuantizeLinear", "DequantizeLinear"):
                zp = _zero_point(model, n)
                assert zp.dtype == np.int8 and not np.any(zp), n.name
        # Conv outputs are quantized only where a residual Add reads them (TensorRT fuses the rest)
        conv_outs = {o for n in convs for o in n.output}
        add_names = {n.name for n in res_adds}
        for q in q_nodes:
            if q.input[0] in conv_outs:
                dq_out = [n for n in model.graph.node if q.output[0] in n.input][0].output[0]
                assert all(c.name in add_names for c in model.graph.node if dq_out in c.input), q.name
    else:
        assert all(_zero_point(model, q).dtype == np.uint8 for q in q_nodes)
        assert any(_zero_point(model, q).any() for q in q_nodes)  # asymmetric somewhere
    counts = placement["counts"]
    assert counts["layers"] == counts["layers_quantized"] == 64
    assert {r["node"] for r in placement["excluded"]} >= head


def test_int8_metadata_and_report(quantized, fp32_onnx, small_manifest, work):
    fp32_meta = read_metadata(fp32_onnx)
    for flavour in ("trt", "cpu"):
        meta = read_metadata(quantized["flavours"][flavour]["onnx"])
        assert meta["mvd_edge.precision"] == "int8" and meta["mvd_edge.int8_flavour"] == flavour
        assert meta["mvd_edge.calib_method"] == "minmax"
        assert meta["mvd_edge.calib_manifest_sha256"] == small_manifest.sha256
        for key in ("mvd_edge.recipe", "mvd_edge.preprocess", "mvd_edge.embedding_dim", "mvd_edge.checkpoint_sha256"):
            assert meta[key] == fp32_meta[key]
        assert json.loads(meta["mvd_edge.int8_excluded_layers"]) == []
        typed = GraphMeta.from_onnx(quantized["flavours"][flavour]["onnx"])  # the typed view of the same graph
        assert typed == GraphMeta.from_onnx(fp32_onnx).derive_int8(
            flavour=flavour, activation_type=typed.int8_activation_type, weight_bits=typed.int8_weight_bits,
            include_head=False, excluded_layers=[], calib_method="minmax", calib_params=typed.calib_params,
            calib_ranges_key=typed.calib_ranges_key, calib_manifest_sha256=small_manifest.sha256, calib_crops=96,
            source_onnx_sha256=quantized["source_sha256"])
        assert set(meta) == set(typed.to_props())  # nothing but the contract's keys
    assert meta["mvd_edge.int8_activation_type"] == "uint8"
    report = json.loads((work / "int8" / "model.int8-report.json").read_text())
    assert report["ranges"]["n_crops"] == 96 and set(report["flavours"]) == {"trt", "cpu"}
    assert (work / "int8" / "model.calib-manifest.json").is_file()


def test_int8_graphs_match_fp32_on_fresh_random_crops(quantized, fp32_onnx):
    x = _random_batch(24, seed=7)
    ref = _run(fp32_onnx, x)
    for flavour in ("trt", "cpu"):
        out = _run(quantized["flavours"][flavour]["onnx"], x, exact=flavour == "trt")
        assert out.dtype == np.float32 and out.shape == ref.shape
        np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)
        cos = _cos(out, ref)
        assert cos.mean() >= INT8_MIN_COS, (flavour, cos.mean(), cos.min())


def test_include_head_puts_qdq_in_the_head(work, fp32_onnx, small_manifest):
    prepared = graph.prepare(fp32_onnx, work / "prepared-h.onnx")
    r = ranges_mod.compute_ranges(prepared, small_manifest, cache_dir=work / "cache-h", progress=False)
    model, rep = qdq.build_qdq(prepared, r, "trt", include_head=True)
    prod = _producers(model)
    pools = [n for n in model.graph.node if n.op_type == "GlobalAveragePool"]
    assert pools and all(prod[n.input[0]].op_type == "DequantizeLinear" for n in pools)
    norm = [n for n in model.graph.node if n.op_type == "ReduceL2"]
    assert all(prod[n.input[0]].op_type != "DequantizeLinear" for n in norm)  # normalisation stays FP32
    with pytest.raises(ValueError, match="not quantizable layers"):
        qdq.build_qdq(prepared, r, "trt", exclude=["/GlobalAveragePool"])


# ----------------------------------------------------------------------------- FP16


def test_fp16_graph_keeps_fp32_io_and_matches(work, fp32_onnx, small_manifest):
    out = work / "model.fp16.onnx"
    report = api.to_fp16(fp32_onnx, out, manifest=small_manifest)
    model = onnx.load(str(out))
    for vi in list(model.graph.input) + list(model.graph.output):
        assert vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, vi.name
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert report["overflow"] == [] and report["checked_on"]["crops"] == 96
    assert read_metadata(out)["mvd_edge.precision"] == "fp16"
    fp16 = GraphMeta.from_onnx(out)
    assert fp16.fp16_kept_fp32 == tuple(k["node"] for k in report["kept_fp32"])
    assert dataclasses.replace(fp16, precision="fp32", fp16_kept_fp32=None, source_onnx_sha256=None) == \
        GraphMeta.from_onnx(fp32_onnx)
    x = _random_batch(24, seed=11)
    cos = _cos(_run(out, x), _run(fp32_onnx, x))
    assert cos.mean() >= FP16_MIN_COS, cos.mean()


def test_fp16_reports_overflow_and_keeps_that_node_fp32():
    x = helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", 3, 8, 4])
    y = helper.make_tensor_value_info("embedding", onnx.TensorProto.FLOAT, ["N", 3])
    big = numpy_helper.from_array(np.array(1e5, np.float32), "big")
    small = numpy_helper.from_array(np.array(1e-5, np.float32), "small")
    nodes = [helper.make_node("Mul", ["input", "big"], ["huge"], name="scale_up"),
             helper.make_node("Mul", ["huge", "small"], ["back"], name="scale_down"),
             helper.make_node("ReduceMean", ["back"], ["embedding"], name="pool", axes=[2, 3], keepdims=0)]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y], [big, small]),
                              opset_imports=[helper.make_opsetid("", 17)])
    spec = PreprocessSpec(height=8, width=4)
    converted, report = fp16_graph(model, None, spec)
    assert [o["node"] for o in report["overflow"]] == ["scale_up"] and report["overflow"][0]["absmax"] > 65504
    assert {k["node"] for k in report["kept_fp32"]} == {"scale_up", "scale_down"}  # producer and reader
    assert "random crops" in report["checked_on"]["source"]
    inp = _random_batch(4, seed=3)[:, :, :8, :4].copy()
    sess = ort.InferenceSession(converted.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": inp})[0]
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, inp.mean(axis=(2, 3)), rtol=1e-3, atol=1e-3)


# ----------------------------------------------------------------------------- fallback


def test_fallback_keeps_sensitive_layers_in_fp32(work, sysu_root, dataset, small_manifest):
    onnx_path = _export(_tiny_model(0, outlier=300.0), work / "outlier.onnx")
    report = api.quantize(onnx_path, work / "int8-fb", small_manifest, flavours=("cpu",), max_rank1_drop=1.0,
                          min_cosine=INT8_MIN_COS, val_samples=dataset.val, progress=False)
    assert report["holdout"]["held_out"] + report["holdout"]["ranges_crops"] == len(small_manifest)
    assert report["ranges"]["n_crops"] == report["holdout"]["ranges_crops"]
    entry = report["flavours"]["cpu"]
    fb = entry["fallback"]
    assert fb["before"]["cosine"] < INT8_MIN_COS  # the outlier channel ruins the per-tensor range
    kept = [k["layer"] for k in fb["kept_back"]]
    assert kept and fb["within_budget"] and fb["after"]["cosine"] >= INT8_MIN_COS
    assert fb["after"]["drop"] <= 1.0 and "rank1" in fb["before"]
    assert sorted(kept) == entry["placement"]["excluded_layers"]
    model = onnx.load(entry["onnx"])
    assert json.loads(read_metadata(entry["onnx"])["mvd_edge.int8_excluded_layers"]) == sorted(kept)
    prod = _producers(model)
    by_name = {n.name: n for n in model.graph.node}
    for layer in kept:  # really no Q/DQ around the kept-back layers
        node = by_name[layer]
        assert all(i not in prod or prod[i].op_type not in ("DequantizeLinear", "QuantizeLinear")
                   for i in node.input), layer
        if node.op_type == "Conv":
            assert any(t.name == node.input[1] and t.data_type == onnx.TensorProto.FLOAT
                       for t in model.graph.initializer)
    excluded = {r["node"]: r["reason"] for r in entry["placement"]["excluded"]}
    assert all("fallback" in excluded[k] for k in kept)
    # the culprit: the conv reading the blown-up channel, in the RGB trunk
    culprits = [k for k in kept if k.endswith("conv2_2/Conv") and "trunk.1/" in k]
    assert culprits, kept


def test_quantize_rejects_bad_requests(work, fp32_onnx, small_manifest, quantized):
    with pytest.raises(ValueError, match="flavour"):
        api.quantize(fp32_onnx, work / "x", small_manifest, flavours=("gpu",))
    with pytest.raises(ValueError, match="val_samples"):
        api.quantize(fp32_onnx, work / "x", small_manifest, max_rank1_drop=1.0)
    with pytest.raises(ValueError, match="already a int8"):
        api.quantize(quantized["flavours"]["cpu"]["onnx"], work / "x", small_manifest)
