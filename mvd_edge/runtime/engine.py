"""Engine building: an exported (precision) ONNX graph -> an ONNX Runtime, TensorRT or OpenVINO engine + sidecar.

torch-free. The precision is whatever the ONNX graph carries (FP32, FP16 graph, INT8 Q/DQ
graph); the sidecar records what was actually built.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from mvd_edge import __version__
from mvd_edge.core.errors import UsageError
from mvd_edge.core.graphmeta import GraphMeta, MetadataError, read_onnx_header
from mvd_edge.core.sizes import parse_int_list
from mvd_edge.core.util import temp_beside, write_errno
from mvd_edge.deploy import formats
from mvd_edge.runtime.sidecar import EngineError, read_sidecar, sha256_file, write_sidecar


def graph_facts(onnx_path: Path) -> dict:
    """Metadata (a :class:`GraphMeta`) and I/O names of an mvd-edge ONNX graph.

    Read with the protobuf header reader of :mod:`mvd_edge.core.graphmeta`: no weights are
    loaded, no ``onnx`` package is needed (the edge install has none), and graphs ONNX Runtime
    cannot load (the fused-head plugin op) read like any other. Whether the graph runs is
    checked where the engine is built.
    """
    if not onnx_path.is_file():
        raise EngineError(f"ONNX file not found: {onnx_path}")
    try:
        header = read_onnx_header(onnx_path)
    except ValueError as exc:
        raise EngineError(f"{onnx_path} is not a loadable ONNX graph: {exc}") from exc
    try:
        meta = GraphMeta.from_props(header.metadata, source=onnx_path)
    except MetadataError as exc:
        raise EngineError(str(exc)) from exc
    if len(header.inputs) != 1 or len(header.outputs) != 1:
        raise EngineError(f"{onnx_path}: expected one input and one output, got {len(header.inputs)} and "
                          f"{len(header.outputs)}")
    return {"meta": meta, "input_name": header.inputs[0], "output_name": header.outputs[0]}


def parse_batch(text: str | tuple[int, int, int]) -> tuple[int, int, int]:
    """``"1,8,32"`` -> (min, opt, max) with 1 <= min <= opt <= max."""
    vals = tuple(parse_int_list(text, "--batch")) if isinstance(text, str) else tuple(int(v) for v in text)
    if len(vals) != 3 or not (1 <= vals[0] <= vals[1] <= vals[2]):
        raise UsageError(f"--batch must be min,opt,max with 1 <= min <= opt <= max, got {text!r}")
    return vals  # type: ignore[return-value]


def build_engine(onnx_path: str | Path, out: str | Path, backend: str = "ort", device: str = "cpu",
                 batch: str | tuple[int, int, int] = (1, 8, 32), workspace_mb: int = 2048,
                 timing_cache: str | Path | None = None, verbose: bool = False) -> dict:
    """Build an engine for ``backend`` from ``onnx_path`` at ``out``; writes ``out.json``; returns the sidecar dict."""
    onnx_path, out = Path(onnx_path), Path(out)
    fmt = formats.engine_format(backend)
    bmin, bopt, bmax = parse_batch(batch)
    facts = graph_facts(onnx_path)
    meta: GraphMeta = facts["meta"]
    precision, flavour, fused = meta.precision, meta.int8_flavour, meta.fused_head
    out.parent.mkdir(parents=True, exist_ok=True)
    info = {
        "backend": backend,
        "precision": precision,
        "int8_flavour": flavour,
        "recipe": meta.recipe,
        "fused_head": fused,
        "preprocess": meta.preprocess.to_dict(),
        "embedding_dim": meta.embedding_dim,
        "input_name": facts["input_name"],
        "output_name": facts["output_name"],
        "batch_profile": [bmin, bopt, bmax],
        "max_batch": bmax,
        "source_onnx": str(onnx_path),
        "hashes": {"source_onnx_sha256": sha256_file(onnx_path),
                   "checkpoint_sha256": meta.checkpoint_sha256},
        "versions": {"mvd_edge": __version__},
    }
    if meta.student_of is not None:  # a one-pass student: the sidecar says so, and of what
        info["student_of"] = dict(meta.student_of)
    if fused and not fmt.fused_head:
        raise EngineError(f"fused-head graphs hold the mvd::FusedHead TensorRT plugin op; export without "
                          f"--fused-head for {fmt.title}")
    if flavour is not None and flavour not in fmt.int8_flavours:
        raise EngineError(f"this INT8 graph is the {flavour!r} flavour, which {fmt.title} does not accept; "
                          f"use the {fmt.int8_flavours[0]!r} flavour "
                          f"(model{formats.graph_format('int8', fmt.int8_flavours[0]).suffix})")
    if backend == "ort":
        if flavour == "trt" and device == "cpu":
            warnings.warn("this INT8 graph has symmetric int8 activations (TensorRT flavour); on x86 CPUs the "
                          "'cpu' flavour (uint8 activations) is much faster", stacklevel=2)
        _build_ort(onnx_path, out, device)
        import onnxruntime as ort

        info.update({"device": device, "ort_optimization": "disable", "ort_built_with": "extended"})
        info["versions"]["onnxruntime"] = ort.__version__
    elif backend == "openvino":
        info.update(_build_ov(onnx_path, out, device))
    else:
        info.update(_build_trt(onnx_path, out, facts, info, (bmin, bopt, bmax), workspace_mb, timing_cache, verbose))
    write_sidecar(out, info)
    return read_sidecar(out, verify_hash=False)


def _build_ort(onnx_path: Path, out: Path, device: str) -> None:
    """Save ONNX Runtime's offline-optimised graph (extended level: portable across x86 CPUs)."""
    from mvd_edge.runtime.ort_backend import make_session

    with temp_beside(out) as tmp:
        tmp.write_bytes(b"")  # a folder that takes no file fails here, naming the engine, not the model
        try:
            make_session(onnx_path, device=device, optimization="extended", optimized_out=tmp)
        except EngineError:
            # ONNX Runtime words a failed save of the optimised graph as a model it "cannot load":
            # if the model loads without saving, the save (the output) failed
            make_session(onnx_path, device=device, optimization="disable")
            err = write_errno(out.parent)
            raise OSError(err, f"{os.strerror(err)} (ONNX Runtime could not save the engine)", str(out)) from None


def _build_ov(onnx_path: Path, out: Path, device: str) -> dict:
    """An OpenVINO engine is the ONNX graph itself (OpenVINO reads ONNX): copied, once OpenVINO compiled it here."""
    from mvd_edge.runtime.ov_backend import OvSession, openvino_version

    OvSession(onnx_path, device=device)  # a graph OpenVINO cannot compile fails here, naming it
    with temp_beside(out) as tmp:
        tmp.write_bytes(onnx_path.read_bytes())
    return {"device": device, "ov_inference_precision": "f32", "versions": {"mvd_edge": __version__,
                                                                            "openvino": openvino_version()}}


def _build_trt(onnx_path: Path, out: Path, facts: dict, info: dict, batch: tuple[int, int, int], workspace_mb: int,
               timing_cache: str | Path | None, verbose: bool) -> dict:
    from mvd_edge.runtime.trt_compat import build_serialized_engine, import_tensorrt, save_timing_cache

    import_tensorrt()  # the install hint comes first when TensorRT is absent
    gpu = _gpu_facts()
    if info["fused_head"]:
        from mvd_edge.kernels.trt_plugin import register_trt_plugin

        register_trt_plugin()
    pp = info["preprocess"]
    cache = Path(timing_cache) if timing_cache else out.parent / "timing.cache"
    built = build_serialized_engine(onnx_path, facts["input_name"], (3, int(pp["height"]), int(pp["width"])),
                                    batch, workspace_mb << 20, cache, verbose)
    with temp_beside(out) as tmp:  # the engine first: a timing cache that cannot be saved loses nothing built
        tmp.write_bytes(built.engine)
    saved = built.timing_cache is not None and save_timing_cache(cache, built.timing_cache)
    return {"gpu": gpu, "workspace_mb": workspace_mb, "timing_cache": str(cache) if saved else None,
            "versions": {**info["versions"], "tensorrt": built.facts["tensorrt"]}, "strongly_typed": True}


def _gpu_facts() -> dict:
    from mvd_edge.runtime.trt_backend import open_cuda

    cuda = open_cuda(0)
    try:
        name, cc = cuda.device()
    finally:
        cuda.close()
    return {"name": name, "compute_capability": cc}
