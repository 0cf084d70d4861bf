"""ONNX Runtime backend (CPU provider by default; CUDA provider where onnxruntime-gpu is installed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def onnx_metadata(session) -> dict[str, str]:
    return dict(session.get_modelmeta().custom_metadata_map)


def make_session(path: str | Path, device: str = "cpu", threads: int | None = None,
                 optimization: str = "extended", optimized_out: str | Path | None = None):
    """An ``InferenceSession`` on the requested provider; never silently falls back to another."""
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise ValueError(f"unknown ONNX Runtime device {device!r}; use cpu or cuda")
    provider = PROVIDERS[device]
    if provider not in ort.get_available_providers():
        raise EngineError(f"ONNX Runtime here has no {provider} (available: {', '.join(ort.get_available_providers())}); "
                          f"install onnxruntime-gpu for --device cuda")
    opts = ort.SessionOptions()
    levels = {"disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL, "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
              "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED, "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}
    opts.graph_optimization_level = levels[optimization]
    if threads:
        opts.intra_op_num_threads = int(threads)
    if optimized_out is not None:
        opts.optimized_model_filepath = str(optimized_out)
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise EngineError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc
    if sess.get_providers()[0] != provider:
        raise EngineError(f"ONNX Runtime did not take {provider} for {path} (got {sess.get_providers()})")
    return sess


class OrtEmbedder(Embedder):
    backend = "ort"

    def __init__(self, path: str | Path, info: dict | None = None, device: str = "cpu", threads: int | None = None,
                 max_batch: int = 64):
        info = dict(info or {})
        self.session = make_session(path, device=device, threads=threads,
                                    optimization=info.get("ort_optimization", "disable" if info else "extended"))
        meta = onnx_metadata(self.session)
        if "mvd_edge.preprocess" not in meta and "preprocess" not in info:
            raise EngineError(f"{path} has no mvd-edge metadata: export it with `mvd-edge export`")
        spec = PreprocessSpec.from_dict(info["preprocess"] if "preprocess" in info else json.loads(meta["mvd_edge.preprocess"]))
        dim = int(info.get("embedding_dim") or meta["mvd_edge.embedding_dim"])
        info.setdefault("precision", meta.get("mvd_edge.precision", "fp32"))
        info.setdefault("recipe", meta.get("mvd_edge.recipe"))
        info["device"] = device
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        super().__init__(spec, dim, int(info.get("max_batch", max_batch)), info)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)
