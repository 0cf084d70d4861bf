"""TensorRT backend: engine + pycuda buffers (pinned host memory, device memory, one CUDA stream). No torch.

Uses the name-based tensor API shared by TensorRT 10.x and 11.x (``set_input_shape``,
``set_tensor_address``, ``execute_async_v3``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError, check_sidecar_facts, check_trt_compat, rebuild_hint
from mvd_edge.runtime.trt_compat import import_tensorrt


def _import_pycuda():
    try:
        import pycuda.driver as cuda  # noqa: PLC0415
    except Exception as exc:
        raise EngineError("pycuda is not installed: `pip install 'mvd-edge[trt]'` on a machine with CUDA") from exc
    return cuda


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
        trt = import_tensorrt()
        cuda = _import_pycuda()
        cuda.init()
        index = int(device.split(":")[1]) if ":" in device else 0
        dev = cuda.Device(index)
        cc = "%d.%d" % dev.compute_capability()
        check_trt_compat(info, trt.__version__, dev.name(), cc)
        self.cuda = cuda
        self.ctx = dev.retain_primary_context()
        self.ctx.push()
        try:
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
            self.stream = cuda.Stream()
            self.input_name = info["input_name"]
            self.output_name = info["output_name"]
            spec = PreprocessSpec.from_dict(info["preprocess"])
            dim = int(info["embedding_dim"])
            max_batch = int(info["batch_profile"][2])
            self.h_in = cuda.pagelocked_empty((max_batch, 3, spec.height, spec.width), np.float32)
            self.h_out = cuda.pagelocked_empty((max_batch, dim), np.float32)
            self.d_in = cuda.mem_alloc(self.h_in.nbytes)
            self.d_out = cuda.mem_alloc(self.h_out.nbytes)
            self.context.set_tensor_address(self.input_name, int(self.d_in))
            self.context.set_tensor_address(self.output_name, int(self.d_out))
        finally:
            self.ctx.pop()
        super().__init__(spec, dim, max_batch, info)

    def infer(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        cuda = self.cuda
        self.ctx.push()
        try:
            t0 = time.perf_counter()
            self.h_in[:n] = x
            self.context.set_input_shape(self.input_name, tuple(x.shape))
            cuda.memcpy_htod_async(self.d_in, self.h_in[:n], self.stream)
            self.stream.synchronize()
            t1 = time.perf_counter()
            if not self.context.execute_async_v3(self.stream.handle):
                raise RuntimeError("TensorRT execution failed")
            self.stream.synchronize()
            t2 = time.perf_counter()
            cuda.memcpy_dtoh_async(self.h_out[:n], self.d_out, self.stream)
            self.stream.synchronize()
            t3 = time.perf_counter()
        finally:
            self.ctx.pop()
        self._tick("h2d", t1 - t0)
        self._tick("d2h", t3 - t2)
        self._tick("gpu", t2 - t1)
        return self.h_out[:n].copy()

    def close(self) -> None:
        if getattr(self, "ctx", None) is not None:
            self.ctx.push()
            try:
                self.d_in.free()
                self.d_out.free()
            finally:
                self.ctx.pop()
                self.ctx.detach()
                self.ctx = None
