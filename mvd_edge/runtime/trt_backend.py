"""TensorRT backend: engine + CUDA buffers (pinned host memory, device memory, one CUDA stream). No torch.

Uses the name-based tensor API shared by TensorRT 10.x and 11.x (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``). CUDA is reached through whichever Python binding
is installed (:func:`cuda_binding`): cuda-python (binary wheels, NVIDIA's samples use it;
``cuda.bindings.runtime``, or ``cuda.cudart`` before 12.6.1) is preferred, pycuda (built from
source) also serves. :func:`open_cuda` wraps either in the few calls the backend needs.
"""

from __future__ import annotations

import ctypes
import importlib
import time
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import MissingExtra
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError, check_sidecar_facts, check_trt_compat, rebuild_hint
from mvd_edge.runtime.trt_compat import import_tensorrt

CUDA_HINT = ("no CUDA Python binding is installed (cuda-python or pycuda): pip install 'cuda-python>=12.6,<13' "
             "for CUDA 12 drivers and Jetson (JetPack 6), 'cuda-python>=13,<14' for CUDA 13 drivers; the "
             "mvd-edge[trt-cu12] / [trt-cu13] extras bring it with TensorRT")
_BINDINGS = (("cuda-python", ("cuda.bindings.runtime", "cuda.cudart")), ("pycuda", ("pycuda.driver",)))


def _import_binding() -> tuple[str, Any] | None:
    for name, modules in _BINDINGS:
        for module in modules:
            try:
                return name, importlib.import_module(module)
            except Exception:  # ImportError; pycuda also fails to import without the driver library
                continue
    return None


def cuda_binding() -> str | None:
    """The CUDA Python binding the TensorRT backend uses here: ``"cuda-python"`` (preferred when both
    are installed), ``"pycuda"``, or None when neither imports."""
    found = _import_binding()
    return found[0] if found else None


class _CudaPython:
    """cuda-python's runtime API: every call returns ``(cudaError_t, value...)``."""

    name = "cuda-python"

    def __init__(self, rt: Any, index: int):
        self.rt, self.index = rt, index
        self.allocs: list[int] = []
        self.hosts: list[int] = []
        self.streams: list[Any] = []
        self.activate()

    def _ok(self, result: tuple, what: str) -> Any:
        err = result[0]
        if err != self.rt.cudaError_t.cudaSuccess:
            text = self.rt.cudaGetErrorString(err)[1]
            text = text.decode(errors="replace") if isinstance(text, bytes) else str(text)
            raise EngineError(f"CUDA {what} failed on device {self.index}: {text}")
        return result[1] if len(result) > 1 else None

    def device(self) -> tuple[str, str]:
        props = self._ok(self.rt.cudaGetDeviceProperties(self.index), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.rstrip("\x00"), f"{props.major}.{props.minor}"

    def activate(self) -> None:
        self._ok(self.rt.cudaSetDevice(self.index), "cudaSetDevice")

    def deactivate(self) -> None:
        pass

    def alloc(self, nbytes: int) -> int:
        ptr = int(self._ok(self.rt.cudaMalloc(nbytes), "cudaMalloc"))
        self.allocs.append(ptr)
        return ptr

    def host_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        ptr = int(self._ok(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))
        self.hosts.append(ptr)
        return np.frombuffer((ctypes.c_byte * nbytes).from_address(ptr), dtype=dtype).reshape(shape)

    def stream(self) -> Any:
        stream = self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")
        self.streams.append(stream)
        return stream

    def stream_handle(self, stream: Any) -> int:
        try:  # cuda-bindings >= 13: int(obj) is deprecated
            from cuda.bindings.utils import get_cuda_native_handle  # type: ignore[import-untyped, import-not-found]  # cuda-bindings ships no type information
        except ImportError:
            return int(stream)
        return int(get_cuda_native_handle(stream))

    def htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync")

    def dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync")

    def sync(self, stream: Any) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def close(self) -> None:
        self.activate()
        for stream in self.streams:
            self.rt.cudaStreamDestroy(stream)
        for ptr in self.allocs:
            self.rt.cudaFree(ptr)
        for ptr in self.hosts:
            self.rt.cudaFreeHost(ptr)
        self.streams, self.allocs, self.hosts = [], [], []


class _PyCuda:
    """pycuda's driver API on the device's primary context (pushed around each use)."""

    name = "pycuda"

    def __init__(self, drv: Any, index: int):
        drv.init()
        self.drv, self.index = drv, index
        self.dev = drv.Device(index)
        self.ctx = self.dev.retain_primary_context()
        self.allocs: dict[int, Any] = {}

    def device(self) -> tuple[str, str]:
        return str(self.dev.name()), "%d.%d" % self.dev.compute_capability()

    def activate(self) -> None:
        self.ctx.push()

    def deactivate(self) -> None:
        self.ctx.pop()

    def alloc(self, nbytes: int) -> int:
        mem = self.drv.mem_alloc(nbytes)
        self.allocs[int(mem)] = mem
        return int(mem)

    def host_empty(self, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        return self.drv.pagelocked_empty(shape, dtype)

    def stream(self) -> Any:
        return self.drv.Stream()

    def stream_handle(self, stream: Any) -> int:
        return int(stream.handle)

    def htod_async(self, dst: int, src: np.ndarray, stream: Any) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def dtoh_async(self, dst: np.ndarray, src: int, stream: Any) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def sync(self, stream: Any) -> None:
        stream.synchronize()

    def close(self) -> None:
        if self.ctx is None:
            return
        self.ctx.push()
        try:
            for mem in self.allocs.values():
                mem.free()
            self.allocs = {}
        finally:
            self.ctx.pop()
            self.ctx.detach()
            self.ctx = None


def open_cuda(index: int = 0) -> _CudaPython | _PyCuda:
    """CUDA device ``index`` through the installed binding, or :class:`MissingExtra` naming the install."""
    found = _import_binding()
    if found is None:
        raise MissingExtra(CUDA_HINT)
    name, module = found
    return _CudaPython(module, index) if name == "cuda-python" else _PyCuda(module, index)


def check_engine_io(engine, trt, info: dict, path: str | Path) -> None:
    """Raise :class:`EngineError` naming the field where a deserialised engine's own I/O tensors
    (names, input height/width, output dimension) contradict its sidecar.

    ``engine`` is a ``trt.ICudaEngine`` (any object with TensorRT 10/11's name-based tensor
    API: ``num_io_tensors``, ``get_tensor_name``, ``get_tensor_mode``, ``get_tensor_shape``).
    """
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    where = f"{path}: its sidecar and the engine disagree on"
    fix = f"the sidecar was edited or belongs to another engine; {rebuild_hint(info)}"
    for key, found in (("input_name", inputs), ("output_name", outputs)):
        if found != [info.get(key)]:
            raise EngineError(f"{where} {key} (sidecar {info.get(key)!r}, engine {', '.join(found) or 'none'}): {fix}")
    pp = info.get("preprocess") or {}
    shape = tuple(int(d) for d in engine.get_tensor_shape(inputs[0]))
    want = (int(pp.get("height", -1)), int(pp.get("width", -1)))
    if len(shape) != 4 or any(d not in (-1, w) for d, w in zip(shape[2:], want)):
        raise EngineError(f"{where} the input size (sidecar {want[0]}x{want[1]}, engine input shape {shape}): {fix}")
    out_shape = tuple(int(d) for d in engine.get_tensor_shape(outputs[0]))
    if not out_shape or out_shape[-1] not in (-1, int(info.get("embedding_dim", -1))):
        raise EngineError(f"{where} embedding_dim (sidecar {info.get('embedding_dim')!r}, engine output shape "
                          f"{out_shape}): {fix}")


class TrtEmbedder(Embedder):
    backend = "trt"

    def __init__(self, path: str | Path, info: dict, device: str = "cuda:0"):
        check_sidecar_facts(info, path)  # a plan carries no metadata: the sidecar's own field hashes
        import_tensorrt()  # the one-line install hint when it is absent
        import tensorrt as trt

        cuda = open_cuda(int(device.split(":")[1]) if ":" in device else 0)
        self.cuda: _CudaPython | _PyCuda | None = cuda
        name, cc = cuda.device()
        cuda.activate()
        try:
            check_trt_compat(info, trt.__version__, name, cc)
            if info.get("fused_head"):
                from mvd_edge.kernels.trt_plugin import register_trt_plugin

                register_trt_plugin()
            logger = trt.Logger(trt.Logger.WARNING)
            runtime = trt.Runtime(logger)
            engine = runtime.deserialize_cuda_engine(Path(path).read_bytes())
            if engine is None:
                raise EngineError(f"TensorRT could not deserialize {path}; {rebuild_hint(info)}")
            check_engine_io(engine, trt, info, path)
            self.engine = engine
            self.context = engine.create_execution_context()
            self.stream = cuda.stream()
            self.input_name = info["input_name"]
            self.output_name = info["output_name"]
            spec = PreprocessSpec.from_dict(info["preprocess"])
            dim = int(info["embedding_dim"])
            max_batch = int(info["batch_profile"][2])
            self.h_in = cuda.host_empty((max_batch, 3, spec.height, spec.width), np.float32)
            self.h_out = cuda.host_empty((max_batch, dim), np.float32)
            self.d_in = cuda.alloc(self.h_in.nbytes)
            self.d_out = cuda.alloc(self.h_out.nbytes)
            self.context.set_tensor_address(self.input_name, self.d_in)
            self.context.set_tensor_address(self.output_name, self.d_out)
        except BaseException:
            cuda.deactivate()
            self.close()
            raise
        cuda.deactivate()
        super().__init__(spec, dim, max_batch, info)

    def infer(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        cuda = self.cuda
        if cuda is None:
            raise EngineError("this TensorRT embedder is closed")
        cuda.activate()
        try:
            t0 = time.perf_counter()
            self.h_in[:n] = x
            if not self.context.set_input_shape(self.input_name, tuple(x.shape)):
                raise EngineError(f"TensorRT refused input shape {tuple(x.shape)} (the engine's batch profile is "
                                  f"{self.info.get('batch_profile')})")
            cuda.htod_async(self.d_in, self.h_in[:n], self.stream)
            cuda.sync(self.stream)
            t1 = time.perf_counter()
            if not self.context.execute_async_v3(cuda.stream_handle(self.stream)):
                raise RuntimeError("TensorRT execution failed")
            cuda.sync(self.stream)
            t2 = time.perf_counter()
            cuda.dtoh_async(self.h_out[:n], self.d_out, self.stream)
            cuda.sync(self.stream)
            t3 = time.perf_counter()
        finally:
            cuda.deactivate()
        self._tick("h2d", t1 - t0)
        self._tick("d2h", t3 - t2)
        self._tick("gpu", t2 - t1)
        return self.h_out[:n].copy()

    def close(self) -> None:
        cuda, self.cuda = getattr(self, "cuda", None), None
        if cuda is None:
            return
        cuda.activate()
        try:  # TensorRT's objects go first, in their CUDA context, before the memory they use
            for attr in ("context", "engine"):
                self.__dict__.pop(attr, None)
        finally:
            cuda.deactivate()
        cuda.close()
