"""Runtime: ``load_embedder(path)`` -> an :class:`Embedder` for the engine's backend.

torch-free: the ``torch`` backend imports torch only when a checkpoint is loaded.
"""

from __future__ import annotations

from pathlib import Path

from mvd_edge.core.errors import UsageError
from mvd_edge.deploy import formats
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError, read_sidecar, sidecar_path

__all__ = ["Embedder", "EngineError", "load_embedder"]


def load_embedder(path: str | Path, device: str | None = None, max_batch: int | None = None,
                  backend: str | None = None, **kwargs) -> Embedder:
    """Open an engine (``.onnx``/``.engine`` with its sidecar), a bare exported ``.onnx``, or a checkpoint ``.pt``:
    the backend is the one :mod:`mvd_edge.deploy.formats` gives the file's format (an engine's: its sidecar's).

    ``device``: ``cpu``/``cuda`` for ONNX Runtime (default: what the engine was built for),
    ``cuda:N`` for TensorRT/torch. Extra keyword arguments go to the backend (``threads`` for
    ONNX Runtime and OpenVINO).

    ``backend``: run a bare ONNX graph (no sidecar) on another engine backend that reads ONNX
    (``openvino``); for an engine or a checkpoint it must be the one its format gives.

    A ``triton://HOST:PORT/NAME`` string opens a model served by Triton Inference Server
    (:class:`mvd_edge.runtime.triton_backend.TritonEmbedder`; the server decides the device).
    """
    fmt = formats.for_path(path)
    if fmt is not None and fmt.kind == formats.SERVED:
        if device is not None:
            raise UsageError(f"--device does not apply to {path}: the Triton model's instance_group decides "
                             "where it runs")
        if backend not in (None, fmt.backend):
            raise UsageError(f"{path} is a model served by {fmt.title}, not one for the {backend} backend")
        return _OPENERS["triton"](path, max_batch=max_batch, **kwargs)
    p = Path(path)
    if not p.exists():
        raise EngineError(f"engine not found: {p}")
    info = None
    if fmt is None or fmt.kind != formats.CHECKPOINT:
        if sidecar_path(p).is_file():  # an engine: its sidecar says which backend built it
            info = read_sidecar(p)
            try:
                fmt = formats.engine_format(info.get("backend"))
            except UsageError:
                raise EngineError(f"{sidecar_path(p)} names an unknown backend {info.get('backend')!r}") from None
        else:  # without a sidecar, only a bare ONNX graph opens
            fmt = formats.for_path(p, kinds=(formats.GRAPH,))
            if fmt is None:
                raise EngineError(f"{p}: no sidecar {sidecar_path(p).name} beside it; build engines with "
                                  "`mvd-edge build-engine`")
    if backend is not None and backend != fmt.backend:
        fmt = _other_backend(p, fmt, backend, info)
    emb = _OPENERS[fmt.backend](p, info=info, device=device, max_batch=max_batch, **kwargs)
    if info is None and fmt.kind == formats.GRAPH:
        emb.info["missing_sidecar"] = str(sidecar_path(p))  # resolve() says why no calibrated threshold
    return emb


def _other_backend(path: Path, fmt: formats.Format, backend: str, info: dict | None) -> formats.Format:
    """The engine row of ``backend`` for a bare graph it can run; a one-line error for anything else."""
    other = formats.engine_format(backend)
    if fmt.kind == formats.GRAPH and info is None and other.reads_onnx:
        return other
    if not other.reads_onnx:
        raise UsageError(f"{other.title} does not run ONNX graphs as they are: build an engine with "
                         f"`mvd-edge build-engine {path} --backend {backend}`")
    article = "an" if fmt.kind[0] in "aeiou" else "a"
    raise UsageError(f"{path} is {article} {fmt.kind} for the {fmt.backend} backend; {other.title} runs bare ONNX graphs "
                     f"(from export, fp16 or int8) or its own engines (`mvd-edge build-engine GRAPH --backend {backend}`)")


def _torch(path, info, device, max_batch, **kwargs):
    from mvd_edge.model.embedder import TorchEmbedder

    return TorchEmbedder(path, device=device or "cpu", max_batch=max_batch or 64, **kwargs)


def _ort(path, info, device, max_batch, **kwargs):
    from mvd_edge.runtime.ort_backend import OrtEmbedder

    known = info or {}
    return OrtEmbedder(path, info=info, device=device or known.get("device", "cpu"),
                       max_batch=max_batch or known.get("max_batch", 64), **kwargs)


def _trt(path, info, device, max_batch, **kwargs):
    from mvd_edge.runtime.trt_backend import TrtEmbedder

    return TrtEmbedder(path, info=info, device=device or "cuda:0", **kwargs)


def _triton(address, max_batch, **kwargs):
    from mvd_edge.runtime.triton_backend import TritonEmbedder

    return TritonEmbedder(address, max_batch=max_batch, **kwargs)


def _openvino(path, info, device, max_batch, **kwargs):
    from mvd_edge.runtime.ov_backend import OvEmbedder

    known = info or {}
    return OvEmbedder(path, info=info, device=device or known.get("device", "cpu"),
                      max_batch=max_batch or known.get("max_batch", 64), **kwargs)


#: how each backend of :data:`mvd_edge.deploy.formats.FORMATS` is opened (a test checks they agree)
_OPENERS = {"torch": _torch, "ort": _ort, "trt": _trt, "triton": _triton, "openvino": _openvino}
