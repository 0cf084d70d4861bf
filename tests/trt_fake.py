"""Stand-ins for TensorRT 10.x/11.x, ``tensorrt.plugin`` and the two CUDA Python bindings.

They follow the documented Python APIs (signatures, return values, ``None`` where the real
call returns a null object) closely enough to drive mvd-edge's own TensorRT code on a machine
without a GPU; what a stand-in cannot know (kernels, timings) it fakes simply:

* ``fake_tensorrt(version)``: ``Logger``, ``Builder``, ``INetworkDefinition`` (via
  ``create_network(flags)``), ``OnnxParser`` (reads the graph's I/O names and mvd-edge metadata
  from the ONNX file), ``IBuilderConfig`` (memory pools, timing caches, profiles, flags),
  ``IHostMemory``, ``Runtime``, ``ICudaEngine`` and ``IExecutionContext`` with the name-based
  tensor API. The "engine" computes ``out[n, d] = sum(x[n]) + d`` on fake device memory.
* ``fake_plugin_api()``: the decorators of ``tensorrt.plugin`` and ``create_plugin``, which
  decodes a node's ``PluginField`` s the way ``tensorrt.plugin`` does (a ``str`` attribute is
  the whole buffer, decoded) from fields made the way the ONNX parser makes them
  (``onnx_plugin_fields``: strings NUL-terminated, onnx-tensorrt ``copyField(std::string)``).
* ``FakeGpu``: one fake device's memory, shared by ``cuda_python_modules`` (``cuda.bindings.runtime``
  of cuda-python >= 12.6: every call returns ``(cudaError_t, value...)``) and ``pycuda_module``.
"""

from __future__ import annotations

import ctypes
import enum
import inspect
import json
import types
from pathlib import Path

import numpy as np

PLAN_MAGIC = b"FAKEPLAN"


# ----------------------------------------------------------------------------- CUDA


class FakeGpu:
    """Device memory of one fake GPU: allocations by address, plus what was called."""

    def __init__(self, name: str = "NVIDIA Fake GPU", cc: tuple[int, int] = (8, 7), driver: int = 12060):
        self.name, self.cc, self.driver = name, cc, driver
        self.mem: dict[int, bytearray] = {}
        self.host: dict[int, ctypes.Array] = {}
        self.next = 0x7000_0000
        self.calls: list[str] = []

    def alloc(self, nbytes: int) -> int:
        ptr = self.next
        self.next += (nbytes + 0xFFFF) & ~0xFFFF or 0x10000
        self.mem[ptr] = bytearray(nbytes)
        return ptr

    def find(self, ptr: int) -> tuple[bytearray, int]:
        for base, buf in self.mem.items():
            if base <= ptr < base + len(buf):
                return buf, ptr - base
        raise ValueError(f"fake GPU: {ptr:#x} is not device memory")

    def write(self, ptr: int, data: bytes) -> None:
        buf, off = self.find(ptr)
        if off + len(data) > len(buf):
            raise ValueError("fake GPU: copy past the end of an allocation")
        buf[off:off + len(data)] = data

    def read(self, ptr: int, nbytes: int) -> bytes:
        buf, off = self.find(ptr)
        if off + nbytes > len(buf):
            raise ValueError("fake GPU: copy past the end of an allocation")
        return bytes(buf[off:off + nbytes])


def cuda_python_modules(gpu: FakeGpu) -> dict[str, types.ModuleType]:
    """``cuda``, ``cuda.bindings``, ``cuda.bindings.runtime``, ``cuda.bindings.utils`` for ``sys.modules``."""
    rt = types.ModuleType("cuda.bindings.runtime")

    class cudaError_t(enum.IntEnum):  # noqa: N801 - the real names
        cudaSuccess = 0
        cudaErrorInvalidValue = 1
        cudaErrorMemoryAllocation = 2
        cudaErrorInvalidDevice = 101

    class cudaMemcpyKind(enum.IntEnum):  # noqa: N801
        cudaMemcpyHostToDevice = 1
        cudaMemcpyDeviceToHost = 2

    class cudaStream_t:  # noqa: N801
        def __init__(self, handle: int = 0):
            self._h = handle

        def __int__(self):
            return self._h

    class cudaDeviceProp:  # noqa: N801
        def __init__(self):
            self.name = gpu.name.encode() + b"\x00" * 3  # a char[256] field
            self.major, self.minor = gpu.cc

    ok = cudaError_t.cudaSuccess

    def cudaMalloc(size):  # noqa: N802
        gpu.calls.append("cudaMalloc")
        return ok, gpu.alloc(int(size))

    def cudaFree(devPtr):  # noqa: N802, N803
        gpu.calls.append("cudaFree")
        return (ok,) if gpu.mem.pop(int(devPtr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)

    def cudaMallocHost(size):  # noqa: N802
        buf = (ctypes.c_byte * int(size))()
        gpu.host[ctypes.addressof(buf)] = buf
        return ok, ctypes.addressof(buf)

    def cudaFreeHost(ptr):  # noqa: N802
        gpu.calls.append("cudaFreeHost")
        return (ok,) if gpu.host.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)

    def cudaMemcpyAsync(dst, src, count, kind, stream):  # noqa: N802
        if not isinstance(stream, cudaStream_t):
            return (cudaError_t.cudaErrorInvalidValue,)
        if kind == cudaMemcpyKind.cudaMemcpyHostToDevice:
            gpu.write(int(dst), ctypes.string_at(int(src), int(count)))
        elif kind == cudaMemcpyKind.cudaMemcpyDeviceToHost:
            ctypes.memmove(int(dst), gpu.read(int(src), int(count)), int(count))
        else:
            return (cudaError_t.cudaErrorInvalidValue,)
        gpu.calls.append(f"memcpy{int(kind)}")
        return (ok,)

    def cudaStreamCreate():  # noqa: N802
        gpu.calls.append("cudaStreamCreate")
        return ok, cudaStream_t(0x5EED)

    def cudaStreamSynchronize(stream):  # noqa: N802
        gpu.calls.append("sync")
        return (ok,)

    def cudaStreamDestroy(stream):  # noqa: N802
        gpu.calls.append("cudaStreamDestroy")
        return (ok,)

    def cudaSetDevice(device):  # noqa: N802
        return (ok,) if int(device) == 0 else (cudaError_t.cudaErrorInvalidDevice,)

    def cudaGetDeviceProperties(device):  # noqa: N802
        return (ok, cudaDeviceProp()) if int(device) == 0 else (cudaError_t.cudaErrorInvalidDevice, None)

    def cudaDriverGetVersion():  # noqa: N802
        return ok, gpu.driver

    def cudaGetErrorString(error):  # noqa: N802
        return ok, f"fake {cudaError_t(error).name}".encode()

    for fn in (cudaError_t, cudaMemcpyKind, cudaStream_t, cudaDeviceProp, cudaMalloc, cudaFree, cudaMallocHost,
               cudaFreeHost, cudaMemcpyAsync, cudaStreamCreate, cudaStreamSynchronize, cudaStreamDestroy,
               cudaSetDevice, cudaGetDeviceProperties, cudaDriverGetVersion, cudaGetErrorString):
        setattr(rt, fn.__name__, fn)
    utils = types.ModuleType("cuda.bindings.utils")
    utils.get_cuda_native_handle = lambda obj: int(obj)
    cuda, bindings = types.ModuleType("cuda"), types.ModuleType("cuda.bindings")
    cuda.__path__, bindings.__path__ = [], []  # packages, so that nothing real is found beneath them
    cuda.bindings, bindings.runtime, bindings.utils = bindings, rt, utils
    return {"cuda": cuda, "cuda.bindings": bindings, "cuda.bindings.runtime": rt, "cuda.bindings.utils": utils}


def pycuda_modules(gpu: FakeGpu) -> dict[str, types.ModuleType]:
    """``pycuda`` and ``pycuda.driver`` (pycuda 2024.1's API) for ``sys.modules``."""
    drv = types.ModuleType("pycuda.driver")
    state = {"init": False, "stack": []}

    class DeviceAllocation:
        def __init__(self, ptr):
            self.ptr = ptr

        def __int__(self):
            return self.ptr

        def free(self):
            gpu.calls.append("free")
            gpu.mem.pop(self.ptr)

    class Context:
        def push(self):
            state["stack"].append(self)

        def pop(self):
            state["stack"].pop()

        def detach(self):
            gpu.calls.append("detach")

    class Device:
        def __init__(self, index):
            if not state["init"]:
                raise RuntimeError("cuInit has not been called")
            if index != 0:
                raise RuntimeError("invalid device ordinal")

        def name(self):
            return gpu.name

        def compute_capability(self):
            return gpu.cc

        def retain_primary_context(self):
            return Context()

    class Stream:
        handle = 0x5EED

        def synchronize(self):
            gpu.calls.append("sync")

    def need_ctx():
        if not state["stack"]:
            raise RuntimeError("no current context")

    def mem_alloc(nbytes):
        need_ctx()
        return DeviceAllocation(gpu.alloc(int(nbytes)))

    def memcpy_htod_async(dest, src, stream=None):
        need_ctx()
        gpu.write(int(dest), np.ascontiguousarray(src).tobytes())

    def memcpy_dtoh_async(dest, src, stream=None):
        need_ctx()
        dest[...] = np.frombuffer(gpu.read(int(src), dest.nbytes), dtype=dest.dtype).reshape(dest.shape)

    drv.init = lambda: state.__setitem__("init", True)
    drv.Device, drv.Stream, drv.Context, drv.DeviceAllocation = Device, Stream, Context, DeviceAllocation
    drv.mem_alloc, drv.memcpy_htod_async, drv.memcpy_dtoh_async = mem_alloc, memcpy_htod_async, memcpy_dtoh_async
    drv.pagelocked_empty = lambda shape, dtype: np.empty(shape, dtype)
    drv.get_driver_version = lambda: gpu.driver
    drv.state = state
    pkg = types.ModuleType("pycuda")
    pkg.__path__ = []
    pkg.driver = drv
    return {"pycuda": pkg, "pycuda.driver": drv}


# ----------------------------------------------------------------------------- TensorRT


def fake_tensorrt(version: str = "10.3.0", gpu: FakeGpu | None = None, *, parse_ok: bool = True,
                  build_ok: bool = True, cache_tag: bytes = b"this-gpu") -> tuple[types.ModuleType, dict]:
    """A ``tensorrt`` module of ``version`` and the dict its objects record calls in.

    Timing caches carry ``cache_tag``: ``set_timing_cache`` refuses (returns False, as TensorRT
    does with ``ignore_mismatch=False``) one made with another tag ("another GPU").
    """
    calls: dict = {"flags_set": [], "profiles": [], "logged": []}
    trt = types.ModuleType("tensorrt")
    trt.__version__ = version

    class NetworkDefinitionCreationFlag(enum.IntEnum):
        EXPLICIT_BATCH = 0
        STRONGLY_TYPED = 5

    class MemoryPoolType(enum.IntEnum):
        WORKSPACE = 0

    class TensorIOMode(enum.IntEnum):
        NONE = 0
        INPUT = 1
        OUTPUT = 2

    class DataType(enum.IntEnum):
        FLOAT = 0
        HALF = 1

    class Logger:
        VERBOSE, INFO, WARNING, ERROR = 4, 3, 2, 1

        def __init__(self, min_severity=2):
            self.min_severity = min_severity
            calls["log_level"] = min_severity

        def log(self, severity, msg):
            calls["logged"].append((severity, msg))

    class IHostMemory:
        """Buffer of a serialised engine or timing cache (``bytes(mem)`` copies it)."""

        def __init__(self, data: bytes):
            self._data = bytes(data)
            self.nbytes = len(self._data)

        def __bytes__(self):
            return self._data

    class ITimingCache:
        def __init__(self, data: bytes):
            self.data = data

        def serialize(self):
            return IHostMemory(self.data)

    class IOptimizationProfile:
        def set_shape(self, input, min, opt, max):  # noqa: A002 - TensorRT's parameter names
            calls["profiles"].append((input, tuple(min), tuple(opt), tuple(max)))

    class IBuilderConfig:
        def __init__(self):
            self._cache = None

        def set_memory_pool_limit(self, pool, pool_size):
            calls["workspace"] = (pool, pool_size)

        def create_timing_cache(self, serialized_timing_cache):
            data = bytes(serialized_timing_cache)
            calls["cache_in"] = data
            return ITimingCache(data or b"cache:" + cache_tag)

        def set_timing_cache(self, cache, ignore_mismatch):
            calls["ignore_mismatch"] = ignore_mismatch
            if not cache.data.startswith(b"cache:" + cache_tag) and not ignore_mismatch:
                calls["cache_refused"] = True
                return False
            self._cache = cache
            return True

        def get_timing_cache(self):
            return self._cache  # None when no cache was set

        def add_optimization_profile(self, profile):
            calls["profile_added"] = True
            return 0

        def set_flag(self, flag):
            calls["flags_set"].append(flag)

    class INetworkDefinition:
        def __init__(self, flags):
            self.flags = flags
            self.io: list = []

    class Builder:
        def __init__(self, logger):
            self.logger = logger

        def create_network(self, flags=0):
            calls["network_flags"] = flags
            return INetworkDefinition(flags)

        def create_builder_config(self):
            return IBuilderConfig()

        def create_optimization_profile(self):
            return IOptimizationProfile()

        def build_serialized_network(self, network, config):
            calls["built"] = True
            if not build_ok:
                return None
            if config.get_timing_cache() is not None:
                config.get_timing_cache().data += b"+timings"
            plan = {"io": network.io, "profile": calls["profiles"][-1] if calls["profiles"] else None}
            return IHostMemory(PLAN_MAGIC + json.dumps(plan).encode())

    class ParserError:
        def __init__(self, desc):
            self._desc = desc

        def desc(self):
            return self._desc

        def __str__(self):
            return f"In node -1 (parse): {self._desc}"

    class OnnxParser:
        def __init__(self, network, logger):
            self.network = network
            self.errors: list = []

        @property
        def num_errors(self):
            return len(self.errors)

        def get_error(self, index):
            return self.errors[index]

        def parse_from_file(self, model):
            calls["parsed"] = model
            if not parse_ok:
                self.errors.append(ParserError("unsupported node Foo"))
                return False
            from mvd_edge.core.graphmeta import GraphMeta, read_onnx_header

            header = read_onnx_header(model)
            meta = GraphMeta.from_props(header.metadata, source=model)
            pp = meta.preprocess
            self.network.io = [(header.inputs[0], TensorIOMode.INPUT, [-1, 3, pp.height, pp.width]),
                               (header.outputs[0], TensorIOMode.OUTPUT, [-1, meta.embedding_dim])]
            return True

    class IExecutionContext:
        def __init__(self, engine):
            self.engine = engine
            self.addresses: dict = {}
            self.shapes: dict = {}

        def set_input_shape(self, name, shape):
            profile = self.engine.profile
            if profile is not None and not profile[1][0] <= shape[0] <= profile[3][0]:
                return False  # outside the optimisation profile
            self.shapes[name] = tuple(shape)
            return True

        def set_tensor_address(self, name, memory):
            self.addresses[name] = int(memory)
            return True

        def execute_async_v3(self, stream_handle):
            if not isinstance(stream_handle, int):
                raise TypeError("execute_async_v3(): incompatible function arguments (stream_handle: int)")
            (iname, _, _), (oname, _, oshape) = self.engine.io
            shape = self.shapes[iname]
            x = np.frombuffer(gpu.read(self.addresses[iname], int(np.prod(shape)) * 4), np.float32).reshape(shape)
            dim = oshape[-1]
            out = (x.reshape(shape[0], -1).sum(axis=1, dtype=np.float64)[:, None] + np.arange(dim)).astype(np.float32)
            gpu.write(self.addresses[oname], out.tobytes())
            gpu.calls.append(f"execute:{stream_handle:#x}")
            return True

    class ICudaEngine:
        def __init__(self, plan):
            self.io = [(n, TensorIOMode(m), s) for n, m, s in plan["io"]]
            self.profile = plan.get("profile")

        @property
        def num_io_tensors(self):
            return len(self.io)

        def get_tensor_name(self, index):
            return self.io[index][0]

        def get_tensor_mode(self, name):
            return next((m for n, m, _ in self.io if n == name), TensorIOMode.NONE)

        def get_tensor_shape(self, name):
            return next(s for n, _, s in self.io if n == name)

        def create_execution_context(self):
            return IExecutionContext(self)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, serialized_engine):
            data = bytes(serialized_engine)
            if not data.startswith(PLAN_MAGIC):
                return None
            return ICudaEngine(json.loads(data[len(PLAN_MAGIC):]))

    def init_libnvinfer_plugins(logger, namespace):
        return True

    for obj in (NetworkDefinitionCreationFlag, MemoryPoolType, TensorIOMode, DataType, Logger, IHostMemory,
                ITimingCache, IOptimizationProfile, IBuilderConfig, INetworkDefinition, Builder, ParserError,
                OnnxParser, IExecutionContext, ICudaEngine, Runtime, init_libnvinfer_plugins):
        setattr(trt, obj.__name__, obj)
    trt.float32, trt.float16 = DataType.FLOAT, DataType.HALF
    return trt, calls


# ----------------------------------------------------------------------------- tensorrt.plugin


class ShapeExpr:
    """Stand-in for a TensorRT symbolic shape expression (an int underneath)."""

    def __init__(self, v):
        self.v = v

    def __mul__(self, other):
        return ShapeExpr(self.v * (other.v if isinstance(other, ShapeExpr) else other))


def fake_plugin_api(trt: types.ModuleType) -> tuple[types.ModuleType, dict]:
    """``tensorrt.plugin`` (TensorRT >= 10.9): the decorators record, ``create_plugin`` decodes fields."""
    trtp = types.ModuleType("tensorrt.plugin")
    registry: dict[str, dict] = {}

    class TensorDesc:
        def __init__(self, dtype, shape):
            self.dtype = dtype
            self.shape_expr = [ShapeExpr(s) for s in shape]

    class KernelLaunchParams:
        grid_x = grid_y = grid_z = block_x = block_y = block_z = shared_mem = None

    class SymExprs(list):
        pass

    class SymIntExprs(SymExprs):
        def __init__(self, n):
            super().__init__([None] * n)

    def deco(kind):
        return lambda pid: (lambda fn: registry.setdefault(pid, {}).__setitem__(kind, fn) or fn)

    def decode_attrs(fn, fields):
        """What ``tensorrt.plugin`` hands a registered function: each field decoded by the annotation."""
        params = inspect.signature(fn).parameters
        attrs = {}
        for f in fields:
            ann = params[f.name].annotation
            if ann is str:
                attrs[f.name] = f.data.tobytes().decode("utf-8")  # the whole buffer, terminator and all
            elif ann is int:
                attrs[f.name] = int(f.data[0])
            else:
                attrs[f.name] = np.asarray(f.data)
        return attrs

    def create_plugin(plugin_id, fields, inputs):
        """Parse-time: the output descriptor the registered shape function gives for this node."""
        fn = registry[plugin_id]["register"]
        return fn(*inputs, **decode_attrs(fn, fields))

    def aot_compile(plugin_id, fields, inputs, outputs=(None,), tactic=0):
        fn = registry[plugin_id]["aot_impl"]
        return fn(*inputs, **decode_attrs(fn, fields), outputs=outputs, tactic=tactic)

    trtp.TensorDesc, trtp.KernelLaunchParams, trtp.SymExprs, trtp.SymIntExprs = (
        TensorDesc, KernelLaunchParams, SymExprs, SymIntExprs)
    trtp.AutoTuneCombination = lambda *a: ("combination",) + a
    trtp.register, trtp.autotune, trtp.aot_impl = deco("register"), deco("autotune"), deco("aot_impl")
    trtp.cdiv = lambda e, d: ShapeExpr(-(-e.v // d))
    trtp.SymInt32 = lambda e: ("i32", e.v if isinstance(e, ShapeExpr) else e)
    trtp.from_shape_expr = lambda shape, dtype: ("out", tuple(s.v if isinstance(s, ShapeExpr) else s for s in shape),
                                                 dtype)
    trtp.create_plugin, trtp.aot_compile = create_plugin, aot_compile
    trt.plugin = trtp
    return trtp, registry


class PluginField:
    """``trt.PluginField(name, data, type)``."""

    def __init__(self, name: str, data: np.ndarray, type: str):  # noqa: A002
        self.name, self.data, self.type = name, data, type


def onnx_plugin_fields(attrs: dict) -> list[PluginField]:
    """A node's attributes as the ONNX parser passes them to a plugin creator (onnx-tensorrt
    ``copyField``): a string is copied with its NUL terminator, an int as INT64, ints as INT32."""
    fields = []
    for name, value in attrs.items():
        if isinstance(value, str):
            fields.append(PluginField(name, np.frombuffer(value.encode() + b"\x00", dtype=np.int8), "CHAR"))
        elif isinstance(value, int):
            fields.append(PluginField(name, np.array([value], dtype=np.int64), "INT64"))
        else:
            fields.append(PluginField(name, np.asarray(value, dtype=np.int32), "INT32"))
    return fields


def write_fake_plan(path: Path, io: list) -> None:
    path.write_bytes(PLAN_MAGIC + json.dumps({"io": io}).encode())
