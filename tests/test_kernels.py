"""Fused embedding head: folding, Triton kernels (CPU interpreter / CUDA), ONNX op, TensorRT plugin.

The Triton kernels are checked under ``TRITON_INTERPRET=1`` in a *subprocess*
(``python -m mvd_edge.kernels.interp_check --json``), so the interpreter setting never
reaches the other tests in this pytest process. Tolerances (max |fused - reference| on
unit-norm embeddings) live in ``mvd_edge.kernels.interp_check.TOLERANCE``: 1e-5 for
fp32 parameters, 2e-3 (and per-row cosine >= 0.9999) for fp16 parameters.
"""

from __future__ import annotations

import collections
import importlib.util
import inspect
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load_repo_script

from mvd_edge.kernels.fold import (
    PARAM_ALIGN,
    fold_head,
    folded_head_torch,
    param_layout,
    reference_head,
)
from mvd_edge.kernels.interp_check import TOLERANCE, fast_cases, head_model, randomize_head_model, slow_cases
from mvd_edge.model.net import MVDNet

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ("full", "shared", "z")
HAS_CUDA = torch.cuda.is_available()
HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (it comes with torch on Linux x86_64)")


def _interp_env() -> dict:
    env = dict(os.environ)
    env["TRITON_INTERPRET"] = "1"
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _run_interp(suite: str, timeout: int) -> dict[str, dict]:
    proc = subprocess.run(
        [sys.executable, "-m", "mvd_edge.kernels.interp_check", "--suite", suite, "--json"],
        capture_output=True, text=True, env=_interp_env(), cwd=ROOT, timeout=timeout,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("[")]
    if not lines:
        pytest.fail(f"interp_check produced no JSON (rc={proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return {r["id"]: r for r in json.loads(lines[-1])}


def _random_model(seed: int = 0, dtype=torch.float32) -> MVDNet:
    model = MVDNet(num_classes=5, backbone="tiny")
    randomize_head_model(model, torch.Generator().manual_seed(seed))
    return model.eval().to(dtype)


def _maps(model: MVDNet, recipe: str, n: int, hw=(3, 2), dtype=torch.float32, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, model.branches["rgb"].head.bn_neck.num_features, *hw, generator=g).relu().to(dtype)
            for _ in model.recipe_observations(recipe)]


# ----------------------------------------------------------------------------- folding (pure torch)


@pytest.mark.parametrize("recipe", RECIPES)
def test_folding_is_exact_in_float64(recipe):
    model = _random_model(seed=3, dtype=torch.float64)
    maps = _maps(model, recipe, 5, dtype=torch.float64)
    ref = reference_head(maps, model, recipe)
    folded = fold_head(model, recipe, dtype=torch.float64)
    out = folded_head_torch(maps, folded)
    assert ref.dtype == out.dtype == torch.float64
    assert out.shape == (5, model.embedding_dim(recipe))
    assert torch.allclose(out, ref, rtol=0, atol=1e-12), float((out - ref).abs().max())


@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float16, 2e-3)])
def test_folded_storage_dtypes_match_reference(recipe, dtype, tol):
    model = _random_model(seed=4)
    maps = _maps(model, recipe, 6, hw=(16, 8))
    folded = fold_head(model, recipe, dtype=dtype)
    assert folded.params.dtype == dtype and folded.params.is_contiguous()
    err = (folded_head_torch(maps, folded) - reference_head(maps, model, recipe)).abs().max()
    assert err <= tol, float(err)


def test_reference_head_matches_model_embed():
    model = _random_model(seed=5)
    x = torch.randn(3, 3, 64, 32)
    for recipe in RECIPES:
        with torch.no_grad():
            maps = model.feature_maps(x, recipe)
            assert torch.allclose(reference_head(maps, model, recipe), model.embed(x, recipe), atol=1e-6)


@pytest.mark.parametrize("recipe", ("shared", "z"))
def test_a_one_pass_students_head_folds_exactly(recipe):
    """`mvd-edge distill` students (shared branch only) take the same folded head and kernels."""
    model = MVDNet(num_classes=5, backbone="tiny", recipe="shared", branches=("shared",))
    randomize_head_model(model, torch.Generator().manual_seed(7))
    model = model.eval().to(torch.float64)
    x = torch.randn(4, 3, 64, 32, dtype=torch.float64)
    with torch.no_grad():
        maps = model.feature_maps(x, recipe)
        out = folded_head_torch(maps, fold_head(model, recipe, dtype=torch.float64))
        ref = model.embed(x, recipe)
    assert len(maps) == 1 and out.shape == ref.shape == (4, model.embedding_dim(recipe))
    assert torch.allclose(out, ref, rtol=0, atol=1e-10), float((out - ref).abs().max())


def test_fold_layout_segments_are_aligned_views():
    model = _random_model(seed=6)
    z = fold_head(model, "z", dtype=torch.float32)
    C, d1, d2, d3 = z.dims
    assert (C, z.out_dim) == (model.feat_dim, model.z_dim)
    layout = param_layout("z", 1, z.dims)
    for name, (off, _) in layout.items():
        assert off % PARAM_ALIGN == 0, name
    assert z.w1.shape == (d1, C) and z.w2.shape == (d2, d1) and z.w3.shape == (d3, d2) and z.b3.shape == (d3,)
    assert z.w1.data_ptr() == z.params.data_ptr()
    full = fold_head(model, "full", dtype=torch.float16)
    assert full.scale.shape == full.shift.shape == (4, C) and full.out_dim == 4 * C
    assert full.observations == model.recipe_observations("full")
    # scale/shift are the BN neck's affine form (1/(h*w) is applied at run time, not folded in)
    bn = model.branches["ir"].head.bn_neck
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    assert torch.allclose(full.scale[0].float(), scale.detach(), rtol=1e-3)
    # bottleneck BNs fold into the linears: w3/b3 are the last Linear untouched
    last = model.branches["shared"].head.bottleneck[6]
    assert torch.allclose(z.w3, last.weight.detach()) and torch.allclose(z.b3, last.bias.detach())


def test_fold_refuses_training_mode_and_fp16_overflow():
    model = _random_model(seed=7)
    model.train()
    with pytest.raises(ValueError, match="eval"):
        fold_head(model, "full")
    model.eval()
    model.branches["shared"].head.bn_neck.running_var.fill_(1e-12)
    model.branches["shared"].head.bn_neck.eps = 1e-12
    with pytest.raises(ValueError, match="fp16"):
        fold_head(model, "shared", dtype=torch.float16)
    assert fold_head(model, "shared", dtype=torch.float32).params.dtype == torch.float32


def test_folded_head_checks_map_shapes():
    model = _random_model()
    folded = fold_head(model, "full", dtype=torch.float32)
    maps = _maps(model, "full", 2)
    with pytest.raises(ValueError, match="expected 4 feature maps"):
        folded_head_torch(maps[:1], folded)
    with pytest.raises(ValueError, match="channels"):
        folded_head_torch([m[:, :5] for m in maps], folded)


# ----------------------------------------------------------------------------- Triton kernels (interpreter)

_FAST = fast_cases()
_EMBED_IDS = [f"embed-{r}" for r in RECIPES]


@pytest.fixture(scope="module")
def interp_fast():
    return _run_interp("fast", timeout=600)


@needs_triton
@pytest.mark.parametrize("case_id", [c.id for c in _FAST] + _EMBED_IDS)
def test_triton_kernel_matches_reference_in_interpreter(interp_fast, case_id):
    r = interp_fast[case_id]
    assert r["finite"], f"{case_id}: NaN/inf left in the poisoned output (an element was not written)"
    assert r["max_abs_err"] <= r["tolerance"], r
    assert r["max_norm_err"] <= 1e-3, r
    if "float16" in case_id:
        assert r["min_cosine"] >= 0.9999, r
    if r["launches"] is not None:
        mode = r["case"]["mode"]
        assert r["launches"] == (1 if mode in ("row", "fused") else 2)


def test_interpreter_suite_covers_the_brief():
    ids = [c.id for c in _FAST]
    for recipe in RECIPES:
        for dtype in ("float32", "float16"):
            for n in (1, 3, 33):
                assert any(i.startswith(f"{recipe}-{dtype}-N{n}-") for i in ids), (recipe, dtype, n)
        assert any(i.startswith(f"{recipe}-float16-N130-") for i in ids)
    for hw in ("16x8", "18x9", "3x2"):
        assert any(f"-{hw}-" in i for i in ids)
    assert set(TOLERANCE) == {"float32", "float16"}


@needs_triton
@pytest.mark.slow
def test_triton_kernels_wide_heads_in_interpreter():
    results = _run_interp("slow", timeout=1800)
    bad = {k: v for k, v in results.items() if not v["ok"]}
    assert len(results) == len(slow_cases()) and not bad, bad


@needs_triton
def test_interp_check_refuses_cpu_without_interpreter():
    env = dict(os.environ)
    env.pop("TRITON_INTERPRET", None)
    proc = subprocess.run([sys.executable, "-m", "mvd_edge.kernels.interp_check", "--only", "nothing"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert proc.returncode == 2 and "TRITON_INTERPRET=1" in proc.stderr


@needs_triton
def test_fused_head_refuses_cpu_tensors_without_interpreter():
    from mvd_edge.kernels import fused_head as fh

    if fh.INTERPRET:
        pytest.skip("this pytest process runs with TRITON_INTERPRET set")
    model = _random_model()
    folded = fold_head(model, "shared", dtype=torch.float32)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        fh.fused_head(_maps(model, "shared", 2), folded)


@needs_triton
def test_mode_resolution_and_launch_counts():
    from mvd_edge.kernels.fused_head import launch_count, resolve_mode

    model = _random_model()
    cpu = torch.device("cpu")
    for recipe, single in (("full", "row"), ("shared", "row"), ("z", "fused")):
        folded = fold_head(model, recipe, dtype=torch.float32)
        assert resolve_mode(folded, 7, cpu, "auto") == single
        assert launch_count(recipe, single) == 1 and launch_count(recipe, "split") == 2
        with pytest.raises(ValueError):
            resolve_mode(folded, 7, cpu, "fused" if single == "row" else "row")


# ----------------------------------------------------------------------------- AOT compile (no GPU needed)


@needs_triton
@pytest.mark.parametrize("recipe,num_maps,dims,dtype,arch", [
    ("full", 4, (2048, 8192), torch.float16, 90),
    ("shared", 1, (2048, 2048), torch.float32, 87),
    ("z", 1, (2048, 1000, 500, 512), torch.float16, 90),
    ("z", 1, (2048, 1000, 500, 512), torch.float32, 87),
])
def test_single_launch_kernels_compile_for_gpu_targets(recipe, num_maps, dims, dtype, arch):
    from mvd_edge.kernels import fused_head as fh

    if fh.INTERPRET:
        pytest.skip("TRITON_INTERPRET is set in this process")
    k = fh.compile_head_kernel(recipe, num_maps, dims, dtype, dtype, arch)
    assert f".entry {k.name}(" in k.ptx and f".target sm_{arch}" in k.ptx
    assert k.num_warps * 32 <= 1024 and k.shared <= 160 * 1024  # fits sm_87 (Jetson Orin) as well as sm_90
    # TensorRT's AOT calling convention: inputs x0..x3, params (pointers), N, HW (int32), out (pointer)
    entry = k.ptx[k.ptx.index(f".entry {k.name}("):]
    params = [ln.split()[1] for ln in entry.split(")")[0].splitlines() if ".param" in ln]
    assert params[:8] == [".u64"] * 5 + [".u32"] * 2 + [".u64"], params
    assert k.rows_per_program == (16 if recipe == "z" else 1)


# ----------------------------------------------------------------------------- ONNX export


def _conv_count(model: MVDNet) -> int:
    return sum(isinstance(m, torch.nn.Conv2d) for m in model.branches["rgb"].trunk.modules())


@pytest.mark.parametrize("recipe,passes", [("full", 4), ("shared", 1), ("z", 1)])
def test_onnx_export_has_one_fused_head_node(tmp_path, recipe, passes):
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    from mvd_edge.kernels.onnx_op import FusedHeadExportWrapper, export_fused_onnx, fused_head_node_spec

    torch.manual_seed(0)
    model = MVDNet(num_classes=5, backbone="tiny").eval()
    randomize_head_model(model, torch.Generator().manual_seed(11))
    path = export_fused_onnx(model, tmp_path / f"{recipe}.onnx", recipe, input_size=(64, 32))
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    ops = collections.Counter((n.domain, n.op_type) for n in proto.graph.node)
    assert ops[("mvd", "FusedHead")] == 1
    assert sum(v for (d, _), v in ops.items() if d == "mvd") == 1
    assert ops[("", "Conv")] == passes * _conv_count(model), ops  # trunks untouched
    for head_op in ("GlobalAveragePool", "ReduceMean", "BatchNormalization", "Gemm", "MatMul", "LpNormalization"):
        assert ops[("", head_op)] == 0, head_op  # the head lives only inside the custom node
    assert any(o.domain == "mvd" and o.version == 1 for o in proto.opset_import)

    spec = fused_head_node_spec(proto)
    folded = fold_head(model, recipe, dtype=torch.float32)
    assert spec["recipe"] == recipe and spec["num_maps"] == passes and spec["plugin_namespace"] == "mvd"
    assert spec["dims"] == list(folded.dims)
    assert np.array_equal(spec["params"], folded.params.numpy())
    produced = {o for n in proto.graph.node for o in n.output}
    graph_inputs = {i.name for i in proto.graph.input}
    map_inputs = spec["inputs"][:4]
    assert all(name in produced and name not in graph_inputs for name in map_inputs)
    assert len(set(map_inputs)) == passes  # one-map recipes repeat map 0
    node = [n for n in proto.graph.node if n.domain == "mvd"][0]
    assert node.output[0] == proto.graph.output[0].name
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and dims[1].dim_value == model.embedding_dim(recipe)
    assert numpy_helper.to_array([i for i in proto.graph.initializer if i.name == "head_params"][0]).dtype == np.float32

    wrapper = FusedHeadExportWrapper(model, recipe).eval()
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        assert torch.allclose(wrapper(x), model.embed(x, recipe), atol=1e-5)


def test_onnx_export_fp16_params(tmp_path):
    onnx = pytest.importorskip("onnx")
    from mvd_edge.kernels.onnx_op import export_fused_onnx, fused_head_node_spec

    model = MVDNet(num_classes=5, backbone="tiny").eval()
    proto = onnx.load(str(export_fused_onnx(model, tmp_path / "z16.onnx", "z", dtype=torch.float16, input_size=(64, 32))))
    spec = fused_head_node_spec(proto)
    assert spec["params"].dtype == np.float16
    assert np.array_equal(spec["params"], fold_head(model, "z", dtype=torch.float16).params.numpy())


# ----------------------------------------------------------------------------- TensorRT plugin


def test_trt_plugin_module_imports_without_tensorrt_and_explains(monkeypatch):
    from mvd_edge.kernels import trt_plugin

    monkeypatch.setitem(sys.modules, "tensorrt", None)  # make `import tensorrt` fail even where it is installed
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", None)
    with pytest.raises(trt_plugin.TensorRTUnavailable) as info:
        trt_plugin.register_trt_plugin()
    msg = str(info.value)
    assert isinstance(info.value, ImportError)
    assert "\n" not in msg and "pip install 'mvd-edge[trt-cu12]'" in msg and "mvd::FusedHead" in msg


def test_trt_plugin_rejects_old_tensorrt(monkeypatch):
    from mvd_edge.kernels import trt_plugin

    old = types.ModuleType("tensorrt")
    old.__version__ = "10.3.0"
    monkeypatch.setitem(sys.modules, "tensorrt", old)
    with pytest.raises(trt_plugin.TensorRTUnavailable, match="too old"):
        trt_plugin.register_trt_plugin()


class _Expr:
    """Stand-in for a TensorRT symbolic shape expression."""

    def __init__(self, v):
        self.v = v

    def __mul__(self, other):
        return _Expr(self.v * (other.v if isinstance(other, _Expr) else other))


def _fake_tensorrt():
    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.13.0"
    trt.float16, trt.float32 = "FP16", "FP32"
    trtp = types.ModuleType("tensorrt.plugin")
    registry: dict[str, dict] = {}

    class TensorDesc:
        def __init__(self, dtype, shape):
            self.dtype = dtype
            self.shape_expr = [_Expr(s) for s in shape]

    class KernelLaunchParams:
        grid_x = grid_y = grid_z = block_x = block_y = block_z = shared_mem = None

    class SymExprs(list):
        pass

    class SymIntExprs(SymExprs):
        def __init__(self, n):
            super().__init__([None] * n)

    def deco(kind):
        return lambda pid: (lambda fn: registry.setdefault(pid, {}).__setitem__(kind, fn) or fn)

    trtp.TensorDesc, trtp.KernelLaunchParams, trtp.SymExprs, trtp.SymIntExprs = (
        TensorDesc, KernelLaunchParams, SymExprs, SymIntExprs)
    trtp.AutoTuneCombination = lambda *a: ("combination",) + a
    trtp.register, trtp.autotune, trtp.aot_impl = deco("register"), deco("autotune"), deco("aot_impl")
    trtp.cdiv = lambda e, d: _Expr(-(-e.v // d))
    trtp.SymInt32 = lambda e: ("i32", e.v if isinstance(e, _Expr) else e)
    trtp.from_shape_expr = lambda shape, dtype: ("out", tuple(s.v if isinstance(s, _Expr) else s for s in shape), dtype)
    trt.plugin = trtp
    return trt, trtp, registry


@needs_triton
@pytest.mark.parametrize("recipe,dims,rows", [("z", (2048, 1000, 500, 512), 16), ("full", (2048, 8192), 1)])
def test_trt_plugin_registration_against_a_stub_api(monkeypatch, recipe, dims, rows):
    """Runs the real registration code and AOT compile against a stand-in ``tensorrt.plugin``."""
    from mvd_edge.kernels import fused_head as fh
    from mvd_edge.kernels import trt_plugin

    if fh.INTERPRET:
        pytest.skip("TRITON_INTERPRET is set in this process")
    trt, trtp, registry = _fake_tensorrt()
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.setitem(trt_plugin._STATE, "registered", False)
    monkeypatch.setitem(trt_plugin._STATE, "arch", None)
    assert trt_plugin.register_trt_plugin(arch=90) == "mvd::FusedHead"
    fns = registry["mvd::FusedHead"]
    tensors = ["x0", "x1", "x2", "x3", "params"]
    attrs = ["recipe", "num_maps", "dims"]
    assert list(inspect.signature(fns["register"]).parameters) == tensors + attrs
    assert list(inspect.signature(fns["aot_impl"]).parameters) == tensors + attrs + ["outputs", "tactic"]
    assert inspect.signature(fns["register"]).parameters["x0"].annotation is trtp.TensorDesc  # real objects, not strings
    assert inspect.signature(fns["aot_impl"]).return_annotation is not inspect.Parameter.empty

    n, h, w, num_maps = 37, 16, 8, (4 if recipe == "full" else 1)
    x = trtp.TensorDesc("FP16", (n, dims[0], h, w))
    p = trtp.TensorDesc("FP16", (123,))
    dims_np = np.asarray(dims, dtype=np.int32)
    assert fns["register"](x, x, x, x, p, recipe, num_maps, dims_np) == ("out", (n, dims[-1] if recipe == "z" else dims[1]), "FP32")
    name, ptx, launch, extra = fns["aot_impl"](x, x, x, x, p, recipe, num_maps, dims_np, (None,), 0)
    assert f".entry {name}(" in ptx
    assert launch.grid_x.v == -(-n // rows) and launch.block_x in (128, 256) and launch.shared_mem >= 0
    assert list(extra) == [("i32", n), ("i32", h * w)]
    with pytest.raises(ValueError):
        fns["aot_impl"](x, x, x, x, p, recipe, 2, dims_np, (None,), 0)


def _tensorrt_or_skip():
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        pytest.skip("tensorrt is not installed (pip install 'mvd-edge[trt-cu12]')")
    if not HAS_CUDA:
        pytest.skip("TensorRT engines need a CUDA GPU")


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("recipe", RECIPES)
def test_trt_engine_with_fused_head_plugin_matches_reference(tmp_path, recipe):
    _tensorrt_or_skip()
    import tensorrt as trt

    from mvd_edge.kernels.onnx_op import export_fused_onnx
    from mvd_edge.kernels.trt_plugin import register_trt_plugin

    register_trt_plugin()
    model = MVDNet(num_classes=5, backbone="tiny").eval()
    randomize_head_model(model, torch.Generator().manual_seed(21))
    path = export_fused_onnx(model, tmp_path / "m.onnx", recipe, dtype=torch.float16, input_size=(64, 32))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    assert parser.parse(path.read_bytes()), [str(parser.get_error(i)) for i in range(parser.num_errors)]
    config = builder.create_builder_config()
    if hasattr(trt.BuilderFlag, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # keep the fp32 trunk comparable with torch
    profile = builder.create_optimization_profile()
    profile.set_shape("input", (1, 3, 64, 32), (4, 3, 64, 32), (8, 3, 64, 32))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(builder.build_serialized_network(network, config))
    ctx = engine.create_execution_context()
    x = torch.randn(5, 3, 64, 32, device="cuda")
    out = torch.empty(5, model.embedding_dim(recipe), device="cuda")
    ctx.set_input_shape("input", tuple(x.shape))
    ctx.set_tensor_address("input", x.data_ptr())
    ctx.set_tensor_address("embedding", out.data_ptr())
    stream = torch.cuda.current_stream()
    assert ctx.execute_async_v3(stream.cuda_stream)
    stream.synchronize()
    model = model.cuda()
    with torch.no_grad():
        ref = model.embed(x, recipe)
    assert torch.isfinite(out).all() and (out - ref).abs().max() <= 5e-3  # fp16 head params + TRT's fp32 trunk


# ----------------------------------------------------------------------------- CUDA (compiled kernels, autotune)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
def test_triton_kernels_on_cuda_match_reference():
    from mvd_edge.kernels.interp_check import embed_checks, run_cases

    results = run_cases(fast_cases() + slow_cases(), device="cuda") + embed_checks("cuda")
    bad = [r for r in results if not r["ok"]]
    assert not bad, bad


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("recipe", RECIPES)
@pytest.mark.parametrize("n", [1, 3, 33, 200, 1024])
@pytest.mark.parametrize("hw", [(16, 8), (18, 9)])
def test_autotuned_resnet50_sized_head_on_cuda(recipe, n, hw):
    from mvd_edge.kernels.fused_head import fused_head

    model = head_model(2048, (1000, 500, 512), seed=n).cuda()
    folded = fold_head(model, recipe, dtype=torch.float16, device="cuda")
    maps = [torch.randn(n, 2048, *hw, device="cuda").relu().half() for _ in model.recipe_observations(recipe)]
    ref = reference_head(maps, model, recipe)
    for mode in ("auto", "split", "fused" if recipe == "z" else "row"):
        out = torch.full((n, folded.out_dim), float("nan"), device="cuda")
        fused_head(maps, folded, out=out, mode=mode)
        assert torch.isfinite(out).all()
        assert (out - ref).abs().max() <= TOLERANCE["float16"], (mode, float((out - ref).abs().max()))


# ----------------------------------------------------------------------------- benchmark script


def _load_benchmark():
    return load_repo_script("benchmarks/fused_head.py")


def test_benchmark_script_help_and_floor_math():
    bench = _load_benchmark()
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fused_head.py"), "--help"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 0 and "--peak-gbps" in proc.stdout
    args = bench.build_parser().parse_args(["--hw", "18x9", "--batch", "1", "512"])
    assert args.hw == (18, 9) and args.batch == [1, 512] and args.peak_gbps == 3350.0
    nbytes = bench.head_bytes("full", 2, 2048, (16, 8), param_numel=1000, out_dim=8192)
    assert nbytes == 2 * 4 * 2048 * 128 * 2 + 1000 * 2 + 2 * 8192 * 4
    assert bench.floor_us(3350 * 10**3, 3350.0) == pytest.approx(1.0)


@pytest.mark.skipif(HAS_CUDA, reason="checks the message printed where no CUDA GPU is present")
def test_benchmark_script_exits_clearly_without_gpu(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fused_head.py"), "--out-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 2
    assert "needs a CUDA GPU" in proc.stderr
    assert not any(tmp_path.iterdir())
