"""Runtime: ``load_embedder(path)`` -> an :class:`Embedder` for the engine's backend.

torch-free: the ``torch`` backend imports torch only when a checkpoint is loaded.
"""

from __future__ import annotations

from pathlib import Path

from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError, read_sidecar, sidecar_path

__all__ = ["Embedder", "EngineError", "load_embedder"]


def load_embedder(path: str | Path, device: str | None = None, max_batch: int | None = None, **kwargs) -> Embedder:
    """Open an engine (``.onnx``/``.engine`` with its sidecar), a bare exported ``.onnx``, or a checkpoint ``.pt``.

    ``device``: ``cpu``/``cuda`` for ONNX Runtime (default: what the engine was built for),
    ``cuda:N`` for TensorRT/torch. Extra keyword arguments go to the backend.

    A ``triton://HOST:PORT/NAME`` string opens a model served by Triton Inference Server
    (:class:`mvd_edge.runtime.triton_backend.TritonEmbedder`; the server decides the device).
    """
    if isinstance(path, str) and path.startswith(("triton://", "triton+")):
        if device is not None:
            from mvd_edge.core.errors import UsageError

            raise UsageError(f"--device does not apply to {path}: the Triton model's instance_group decides "
                             "where it runs")
        from mvd_edge.runtime.triton_backend import TritonEmbedder

        return TritonEmbedder(path, max_batch=max_batch, **kwargs)
    p = Path(path)
    if not p.exists():
        raise EngineError(f"engine not found: {p}")
    if p.suffix == ".pt":
        from mvd_edge.model.embedder import TorchEmbedder

        return TorchEmbedder(p, device=device or "cpu", max_batch=max_batch or 64, **kwargs)
    if sidecar_path(p).is_file():
        info = read_sidecar(p)
        backend = info.get("backend")
        if backend == "ort":
            from mvd_edge.runtime.ort_backend import OrtEmbedder

            return OrtEmbedder(p, info=info, device=device or info.get("device", "cpu"),
                               max_batch=max_batch or info.get("max_batch", 64), **kwargs)
        if backend == "trt":
            from mvd_edge.runtime.trt_backend import TrtEmbedder

            return TrtEmbedder(p, info=info, device=device or "cuda:0", **kwargs)
        raise EngineError(f"{sidecar_path(p)} names an unknown backend {backend!r}")
    if p.suffix == ".onnx":
        from mvd_edge.runtime.ort_backend import OrtEmbedder

        emb = OrtEmbedder(p, device=device or "cpu", max_batch=max_batch or 64, **kwargs)
        emb.info["missing_sidecar"] = str(sidecar_path(p))  # match_settings says why no calibrated threshold
        return emb
    raise EngineError(f"{p}: no sidecar {sidecar_path(p).name} beside it; build engines with `mvd-edge build-engine`")
