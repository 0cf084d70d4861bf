"""mvd-edge's TensorRT layer driven through stand-ins of the documented TensorRT 10/11, tensorrt.plugin
and CUDA Python APIs (tests/trt_fake.py); the tests marked ``trt`` at the end run the same paths on a real
TensorRT whenever one is installed with a GPU."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from trt_fake import (
    PLAN_MAGIC,
    FakeGpu,
    cuda_python_modules,
    fake_plugin_api,
    fake_tensorrt,
    onnx_plugin_fields,
    pycuda_modules,
)

from mvd_edge.runtime.sidecar import EngineError


@pytest.fixture
def plugin_api(monkeypatch):
    """A fake TensorRT 10.13 with ``tensorrt.plugin``; ``mvd::FusedHead`` registered against it."""
    from mvd_edge.kernels import trt_plugin

    trt, _ = fake_tensorrt("10.13.0")
    trtp, registry = fake_plugin_api(trt)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    for key, value in (("registered", False), ("arch", None), ("ptx_version", None)):
        monkeypatch.setitem(trt_plugin._STATE, key, value)
    trt_plugin.register_trt_plugin(arch=90)
    return trt, trtp


@pytest.mark.parametrize("recipe,dims,num_maps,width", [("full", [2048, 8192], 4, 8192), ("shared", [2048, 512], 1, 512),
                                                         ("z", [2048, 1000, 500, 512], 1, 512)])
def test_plugin_string_attributes_arrive_nul_terminated_from_the_onnx_parser(plugin_api, recipe, dims, num_maps, width):
    """onnx-tensorrt copies a string attribute with its NUL (copyField(std::string), its issue #921) and
    tensorrt.plugin decodes the whole buffer: the recipe arrives as "full\\x00" and must still be understood."""
    trt, trtp = plugin_api
    x = trtp.TensorDesc(trt.float16, (5, dims[0], 16, 8))
    p = trtp.TensorDesc(trt.float16, (99,))
    fields = onnx_plugin_fields({"recipe": recipe, "num_maps": num_maps, "dims": dims})
    assert bytes(fields[0].data.tobytes()).endswith(b"\x00")
    assert trtp.create_plugin("mvd::FusedHead", fields, [x, x, x, x, p]) == ("out", (5, width), trt.float32)


def test_plugin_still_refuses_an_unknown_recipe(plugin_api):
    trt, trtp = plugin_api
    x = trtp.TensorDesc(trt.float16, (5, 64, 16, 8))
    fields = onnx_plugin_fields({"recipe": "fulll", "num_maps": 4, "dims": [64, 32]})
    with pytest.raises(ValueError, match="unknown recipe 'fulll'"):
        trtp.create_plugin("mvd::FusedHead", fields, [x, x, x, x, x])


def _triton_or_skip():
    from mvd_edge.kernels import fused_head as fh

    pytest.importorskip("triton", reason="the AOT kernel is compiled with Triton (pip install 'mvd-edge[train]')")
    if fh.INTERPRET:
        pytest.skip("TRITON_INTERPRET is set in this process: kernels are interpreted, not compiled")


def test_plugin_aot_compile_reads_the_nul_terminated_recipe(plugin_api):
    _triton_or_skip()
    trt, trtp = plugin_api
    x = trtp.TensorDesc(trt.float16, (7, 64, 16, 8))
    p = trtp.TensorDesc(trt.float16, (99,))
    fields = onnx_plugin_fields({"recipe": "shared", "num_maps": 1, "dims": [64, 32]})
    name, ptx, launch, extra = trtp.aot_compile("mvd::FusedHead", fields, [x, x, x, x, p])
    assert f".entry {name}(" in ptx and list(extra) == [("i32", 7), ("i32", 16 * 8)]


@pytest.mark.parametrize("driver,ptx", [(11080, 78), (12000, 80), (12040, 84), (12050, 85), (12060, 85),
                                        (12080, 87), (12090, 88), (13000, 90), (13010, 91), (14000, None)])
def test_newest_ptx_isa_a_driver_loads(driver, ptx):
    from mvd_edge.kernels.trt_plugin import max_ptx_isa

    assert max_ptx_isa(driver) == ptx


def test_a_driver_older_than_cuda_11_is_refused():
    from mvd_edge.kernels.trt_plugin import DeviceUnavailable, max_ptx_isa

    with pytest.raises(DeviceUnavailable, match="CUDA 10.2"):
        max_ptx_isa(10020)


def test_driver_version_comes_from_cuDriverGetVersion(monkeypatch):
    import ctypes

    from mvd_edge.kernels import trt_plugin

    class Libcuda:
        def cuDriverGetVersion(self, out):  # noqa: N802 - the driver's name
            out._obj.value = 12040  # what byref(c_int) points at
            return 0  # CUDA_SUCCESS

    monkeypatch.setattr(ctypes, "CDLL", lambda name: Libcuda())
    assert trt_plugin.driver_version() == 12040

    def no_driver(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(ctypes, "CDLL", no_driver)
    assert trt_plugin.driver_version() is None


def _ptx_isa_of(ptx: str) -> str:
    import re

    return re.search(r"^\.version (\S+)", ptx, re.MULTILINE).group(1)


def test_aot_kernel_is_written_in_a_ptx_the_installed_driver_loads(plugin_api, monkeypatch):
    """A CUDA 12.4 driver refuses PTX 8.8 (what Triton's ptxas 12.9 writes by default) when
    TensorRT loads the plugin's kernel: the kernel must be PTX 8.4."""
    _triton_or_skip()
    from mvd_edge.kernels import trt_plugin

    trt, trtp = plugin_api
    x = trtp.TensorDesc(trt.float16, (7, 64, 16, 8))
    fields = onnx_plugin_fields({"recipe": "shared", "num_maps": 1, "dims": [64, 32]})
    monkeypatch.setattr(trt_plugin, "driver_version", lambda: 12040, raising=False)
    name, ptx, _, _ = trtp.aot_compile("mvd::FusedHead", fields, [x, x, x, x, x])
    assert _ptx_isa_of(ptx) == "8.4"


def test_aot_kernel_for_a_driver_newer_than_tritons_ptxas_keeps_tritons_ptx(plugin_api, monkeypatch):
    """A cap above what Triton's ptxas knows (a CUDA 13.9 driver) must not be forced on ptxas."""
    _triton_or_skip()
    import torch

    from mvd_edge.kernels import trt_plugin
    from mvd_edge.kernels.fused_head import compile_head_kernel

    trt, trtp = plugin_api
    x = trtp.TensorDesc(trt.float16, (7, 64, 16, 8))
    fields = onnx_plugin_fields({"recipe": "shared", "num_maps": 1, "dims": [64, 32]})
    own = _ptx_isa_of(compile_head_kernel("shared", 1, (64, 32), torch.float16, torch.float16, 90).ptx)
    monkeypatch.setattr(trt_plugin, "driver_version", lambda: 13090, raising=False)
    assert _ptx_isa_of(trtp.aot_compile("mvd::FusedHead", fields, [x, x, x, x, x])[1]) == own
    monkeypatch.setitem(trt_plugin._STATE, "ptx_version", 99)  # register_trt_plugin(ptx_version=99)
    assert _ptx_isa_of(trtp.aot_compile("mvd::FusedHead", fields, [x, x, x, x, x])[1]) == own


# ----------------------------------------------------------------------------- build_engine(backend="trt")


@pytest.fixture
def fake_gpu(monkeypatch):
    """A fake GPU behind both CUDA bindings (cuda-python and pycuda) and a fake TensorRT 10.3 (JetPack 6)."""
    gpu = FakeGpu()
    for name, module in {**cuda_python_modules(gpu), **pycuda_modules(gpu)}.items():
        monkeypatch.setitem(sys.modules, name, module)
    trt, calls = fake_tensorrt("10.3.0", gpu)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    gpu.trt, gpu.trt_calls = trt, calls
    return gpu


def test_build_engine_trt_writes_engine_sidecar_and_timing_cache(tmp_path, tiny_onnx, fake_gpu):
    from mvd_edge.runtime.engine import build_engine

    out = tmp_path / "m.engine"
    info = build_engine(tiny_onnx, out, backend="trt", batch="1,4,8", workspace_mb=64)
    calls = fake_gpu.trt_calls
    assert out.read_bytes().startswith(PLAN_MAGIC)
    assert calls["network_flags"] == 1 << 5 and calls["flags_set"] == []  # strongly typed, no precision flags
    assert calls["workspace"] == (fake_gpu.trt.MemoryPoolType.WORKSPACE, 64 << 20)
    h, w = info["preprocess"]["height"], info["preprocess"]["width"]
    assert calls["profiles"] == [(info["input_name"], (1, 3, h, w), (4, 3, h, w), (8, 3, h, w))]
    assert info["gpu"] == {"name": "NVIDIA Fake GPU", "compute_capability": "8.7"}
    assert info["versions"]["tensorrt"] == "10.3.0" and info["batch_profile"] == [1, 4, 8]
    cache = tmp_path / "timing.cache"
    assert info["timing_cache"] == str(cache) and cache.read_bytes() == b"cache:this-gpu+timings"


def test_build_engine_trt_with_another_gpus_timing_cache_keeps_the_engine(tmp_path, tiny_onnx, fake_gpu):
    """The default cache beside the engine was made on another GPU: TensorRT refuses it
    (set_timing_cache -> False, get_timing_cache() -> None); the engine is built and saved anyway."""
    from mvd_edge.runtime.engine import build_engine

    cache = tmp_path / "timing.cache"
    cache.write_bytes(b"cache:an-H100")
    with pytest.warns(UserWarning, match="refused the timing cache"):
        info = build_engine(tiny_onnx, tmp_path / "m.engine", backend="trt")
    assert (tmp_path / "m.engine").read_bytes().startswith(PLAN_MAGIC)
    assert info["timing_cache"] is None and cache.read_bytes() == b"cache:an-H100"


def test_build_engine_trt_saves_the_engine_before_the_timing_cache(tmp_path, tiny_onnx, fake_gpu):
    from mvd_edge.runtime.engine import build_engine

    blocked = tmp_path / "not-a-dir"
    blocked.write_text("x")
    with pytest.warns(UserWarning, match="could not save the TensorRT timing cache"):
        info = build_engine(tiny_onnx, tmp_path / "m.engine", backend="trt", timing_cache=blocked / "t.cache")
    assert (tmp_path / "m.engine").read_bytes().startswith(PLAN_MAGIC) and info["timing_cache"] is None


# ----------------------------------------------------------------------------- CUDA bindings and TrtEmbedder


def _only_binding(monkeypatch, keep: str | None) -> None:
    """Hide the CUDA bindings other than ``keep`` ("cuda-python", "pycuda" or None) from imports."""
    hidden = {"cuda-python": ("cuda.bindings.runtime", "cuda.cudart"), "pycuda": ("pycuda.driver",)}
    for name, modules in hidden.items():
        if name != keep:
            for module in modules:
                monkeypatch.setitem(sys.modules, module, None)


@pytest.mark.parametrize("keep,expected", [("both", "cuda-python"), ("cuda-python", "cuda-python"),
                                           ("pycuda", "pycuda"), (None, None)])
def test_cuda_binding_prefers_cuda_python(fake_gpu, monkeypatch, keep, expected):
    from mvd_edge.runtime.trt_backend import cuda_binding

    if keep != "both":
        _only_binding(monkeypatch, keep)
    assert cuda_binding() == expected


def test_older_cuda_python_layout_cuda_cudart_is_used(fake_gpu, monkeypatch):
    """cuda-python before 12.6.1 has ``cuda.cudart`` (the same runtime API) and no ``cuda.bindings``."""
    from mvd_edge.runtime.trt_backend import cuda_binding, open_cuda

    rt = sys.modules["cuda.bindings.runtime"]
    monkeypatch.setitem(sys.modules, "cuda.bindings.runtime", None)
    monkeypatch.setitem(sys.modules, "cuda.cudart", rt)
    _only_binding(monkeypatch, "cuda-python")
    monkeypatch.setitem(sys.modules, "cuda.cudart", rt)
    assert cuda_binding() == "cuda-python" and open_cuda(0).rt is rt


def test_no_cuda_binding_is_one_line_naming_the_install(fake_gpu, monkeypatch):
    from mvd_edge.core.errors import MissingExtra
    from mvd_edge.runtime.trt_backend import open_cuda

    _only_binding(monkeypatch, None)
    with pytest.raises(MissingExtra) as exc:
        open_cuda(0)
    msg = str(exc.value)
    assert "\n" not in msg and "pip install 'cuda-python>=12.6,<13'" in msg and "pycuda" in msg


@pytest.fixture
def trt_engine(tmp_path, tiny_onnx, fake_gpu):
    from mvd_edge.runtime.engine import build_engine

    out = tmp_path / "m.engine"
    info = build_engine(tiny_onnx, out, backend="trt", batch="1,4,8")
    return out, info


def _expected(x: np.ndarray, dim: int) -> np.ndarray:  # what the fake engine computes
    return (x.reshape(len(x), -1).sum(axis=1, dtype=np.float64)[:, None] + np.arange(dim)).astype(np.float32)


@pytest.mark.parametrize("binding", ["cuda-python", "pycuda"])
def test_trt_embedder_runs_a_built_engine_through_either_binding(trt_engine, fake_gpu, monkeypatch, binding):
    from mvd_edge.runtime import load_embedder

    _only_binding(monkeypatch, binding)
    path, info = trt_engine
    fake_gpu.mem.clear()
    fake_gpu.calls.clear()
    pp = info["preprocess"]
    emb = load_embedder(path)
    assert type(emb).__name__ == "TrtEmbedder" and emb.cuda.name == binding
    assert emb.dim == info["embedding_dim"] and emb.max_batch == 8
    rng = np.random.default_rng(0)
    for n in (3, 8, 1):
        x = rng.standard_normal((n, 3, pp["height"], pp["width"])).astype(np.float32)
        np.testing.assert_allclose(emb.infer(x), _expected(x, emb.dim), rtol=1e-5, atol=1e-3)
    assert "execute:0x5eed" in fake_gpu.calls  # the stream's handle, as an int
    assert {"h2d", "gpu", "d2h"} <= set(emb.stage_times)
    emb.close()
    assert fake_gpu.mem == {} and fake_gpu.host == {}  # device and pinned memory freed
    emb.close()  # twice is harmless


def test_trt_embedder_refuses_a_batch_outside_the_profile(tmp_path, tiny_onnx, fake_gpu):
    from mvd_edge.runtime.engine import build_engine
    from mvd_edge.runtime.trt_backend import TrtEmbedder

    info = build_engine(tiny_onnx, tmp_path / "m.engine", backend="trt", batch="2,4,8")
    emb = TrtEmbedder(tmp_path / "m.engine", info)
    pp = info["preprocess"]
    with pytest.raises(EngineError, match=r"refused input shape \(1, 3, .*batch profile is \[2, 4, 8\]"):
        emb.infer(np.zeros((1, 3, pp["height"], pp["width"]), np.float32))
    emb.close()


def test_trt_embedder_that_cannot_load_its_engine_frees_what_it_took(trt_engine, fake_gpu, monkeypatch):
    from mvd_edge.runtime.trt_backend import TrtEmbedder

    _only_binding(monkeypatch, "pycuda")
    path, info = trt_engine
    path.write_bytes(b"not a plan")
    fake_gpu.calls.clear()
    with pytest.raises(EngineError, match="could not deserialize"):
        TrtEmbedder(path, info)
    assert "detach" in fake_gpu.calls and sys.modules["pycuda.driver"].state["stack"] == []


def test_cuda_errors_from_cuda_python_are_one_line_engine_errors(trt_engine, fake_gpu, monkeypatch):
    from mvd_edge.runtime.trt_backend import TrtEmbedder

    rt = sys.modules["cuda.bindings.runtime"]
    monkeypatch.setattr(rt, "cudaMalloc", lambda size: (rt.cudaError_t.cudaErrorMemoryAllocation, 0))
    path, info = trt_engine
    with pytest.raises(EngineError, match="CUDA cudaMalloc failed on device 0: fake cudaErrorMemoryAllocation"):
        TrtEmbedder(path, info)
    assert fake_gpu.host == {}  # the pinned buffers taken before the failure are freed


# ----------------------------------------------------------------------------- the same paths on a real TensorRT


def _real_tensorrt_gpu_or_skip() -> None:
    """Skip, saying why, unless a real TensorRT, a CUDA Python binding and a CUDA device are all here."""
    try:
        import tensorrt
    except Exception:  # ImportError, or the PyPI package failing to find its libraries
        pytest.skip("TensorRT is not installed: pip install 'mvd-edge[trt-cu12]' (or trt-cu13; JetPack's on Jetson)")
    if not hasattr(tensorrt, "Builder"):
        pytest.skip("`tensorrt` here is only a stub package (e.g. tensorrt-stubs), not TensorRT")
    from mvd_edge.runtime.trt_backend import cuda_binding, open_cuda

    if cuda_binding() is None:
        pytest.skip("no CUDA Python binding: pip install 'cuda-python>=12.6,<13' (or >=13,<14 on CUDA 13)")
    try:
        open_cuda(0).close()
    except Exception as exc:  # no driver, no device
        pytest.skip(f"no CUDA device: {exc}")


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.trt
@pytest.mark.gpu
@pytest.mark.parametrize("fused", [False, True], ids=["plain", "fused-head"])
def test_real_tensorrt_build_engine_and_trt_embedder_match_onnx_runtime(tmp_path, tiny_ckpt, tiny_onnx, fused):
    """build_engine(backend="trt") and TrtEmbedder on the real library: the engine's embeddings are
    ONNX Runtime's for the same checkpoint (TF32 trunk: cosine, not bitwise); the fused head goes
    through the mvd::FusedHead plugin (NUL-terminated attributes, PTX for this driver)."""
    _real_tensorrt_gpu_or_skip()
    from mvd_edge.runtime import load_embedder
    from mvd_edge.runtime.engine import build_engine

    onnx = tiny_onnx
    if fused:
        pytest.importorskip("triton", reason="the fused-head plugin's kernel is compiled with Triton")
        from mvd_edge.deploy.export import export_onnx

        onnx = tmp_path / "fused.onnx"
        export_onnx(tiny_ckpt, onnx, fused_head=True)
    engine = tmp_path / "m.engine"
    info = build_engine(onnx, engine, backend="trt", batch="1,4,8", workspace_mb=512)
    assert info["timing_cache"] == str(tmp_path / "timing.cache") and (tmp_path / "timing.cache").stat().st_size > 0
    pp = info["preprocess"]
    x = np.random.default_rng(3).standard_normal((5, 3, pp["height"], pp["width"])).astype(np.float32)
    ref = load_embedder(tiny_onnx).infer(x)
    with load_embedder(engine) as emb:
        out = emb.infer(x)
        again = emb.infer(x[:1])
    assert out.shape == ref.shape and np.isfinite(out).all()
    assert _cosines(out, ref).min() > 0.995
    np.testing.assert_allclose(again, out[:1], rtol=1e-4, atol=1e-5)
    rebuilt = build_engine(onnx, tmp_path / "again.engine", backend="trt", batch="1,4,8", workspace_mb=512)
    assert rebuilt["timing_cache"] == info["timing_cache"]  # this GPU's own cache is accepted


# ----------------------------------------------------------------------------- packaging: the TensorRT extras


def _extras() -> dict[str, list]:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")
    from pathlib import Path

    from packaging.requirements import Requirement

    data = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    return {k: [Requirement(r) for r in v] for k, v in data["project"]["optional-dependencies"].items()}


def _one(reqs: list, name: str):
    found = [r for r in reqs if r.name == name]
    assert len(found) == 1, f"expected one {name} requirement in {[str(r) for r in reqs]}"
    return found[0].specifier


def test_tensorrt_extras_pin_the_cuda_major_and_bring_a_cuda_binding():
    """A bare `tensorrt` resolves to the newest release, built for the newest CUDA (11.x for CUDA 13):
    it fails on CUDA 12 drivers. Each extra names its CUDA major and the matching cuda-python."""
    extras = _extras()
    assert {"trt-cu12", "trt-cu13"} <= set(extras)
    cu12 = _one(extras["trt-cu12"], "tensorrt-cu12")
    assert all(v in cu12 for v in ("10.3.0", "10.13.3.9")) and not any(v in cu12 for v in ("10.2.0", "11.0.0"))
    cp12 = _one(extras["trt-cu12"], "cuda-python")
    assert all(v in cp12 for v in ("12.6.0", "12.9.10")) and "13.0.0" not in cp12
    cu13 = _one(extras["trt-cu13"], "tensorrt-cu13")
    assert all(v in cu13 for v in ("10.13.2.6", "11.4.0.106")) and "12.0.0" not in cu13
    cp13 = _one(extras["trt-cu13"], "cuda-python")
    assert "13.0.0" in cp13 and "12.9.10" not in cp13 and "14.0.0" not in cp13
    for name, reqs in extras.items():
        assert "tensorrt" not in {r.name for r in reqs}, f"extra {name!r} asks for the bare tensorrt metapackage"
    if "trt" in extras:  # kept as an alias of the CUDA 12 extra (runs on CUDA 12 and 13 drivers)
        assert [str(r) for r in extras["trt"]] == ["mvd-edge[trt-cu12]"]


def test_the_cuda_python_fake_follows_the_installed_cuda_bindings():
    """Where cuda-python is installed (torch's CUDA 13 wheels bring cuda-bindings), the fake's functions,
    parameter names and enum members are the real runtime API's."""
    import inspect

    real = pytest.importorskip("cuda.bindings.runtime", reason="cuda-python (cuda-bindings) is not installed")
    fake = cuda_python_modules(FakeGpu())["cuda.bindings.runtime"]
    for name, fn in vars(fake).items():
        if name.startswith("cuda") and inspect.isfunction(fn):
            assert list(inspect.signature(fn).parameters) == list(inspect.signature(getattr(real, name)).parameters), name
    for enum_name in ("cudaError_t", "cudaMemcpyKind"):
        for member in getattr(fake, enum_name):
            assert int(getattr(getattr(real, enum_name), member.name)) == int(member), (enum_name, member.name)
    assert {"name", "major", "minor"} <= set(dir(real.cudaDeviceProp()))
    utils = pytest.importorskip("cuda.bindings.utils")
    if hasattr(utils, "get_cuda_native_handle"):  # cuda-bindings >= 13 (before it, int(stream))
        assert utils.get_cuda_native_handle(real.cudaStream_t()) == 0
