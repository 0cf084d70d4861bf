"""ONNX Runtime backend (CPU provider by default; CUDA provider where onnxruntime-gpu is installed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.graphmeta import GraphMeta, MetadataError
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.runtime.base import Embedder
from mvd_edge.runtime.sidecar import EngineError, check_sidecar_facts

PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def make_session(path: str | Path, device: str = "cpu", threads: int | None = None,
                 optimization: str = "extended", optimized_out: str | Path | None = None, spin: bool = True):
    """An ``InferenceSession`` on the requested provider; never silently falls back to another.

    ``spin=False``: the intra-op threads sleep between runs instead of spinning, for a session that
    shares the CPU with others in one loop (the matcher's detector next to its embedder)."""
    import onnxruntime as ort

    if device not in PROVIDERS:
        raise UsageError(f"unknown ONNX Runtime device {device!r}; use cpu or cuda")
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
    if not spin:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if optimized_out is not None:
        opts.optimized_model_filepath = str(optimized_out)
    try:
        sess = ort.InferenceSession(str(path), sess_options=opts, providers=[provider])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        raise EngineError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc
    if sess.get_providers()[0] != provider:
        raise EngineError(f"ONNX Runtime did not take {provider} for {path} (got {sess.get_providers()})")
    return sess


def check_sidecar_matches_graph(session, info: dict, spec: PreprocessSpec, path: str | Path) -> None:
    """Raise :class:`EngineError` naming the field where an engine's sidecar and its graph's own
    metadata (or its input shape) disagree. Graphs without mvd-edge metadata are not checked."""
    try:
        meta = GraphMeta.from_session(session, source=path)
    except MetadataError:
        return
    where = f"{path}: its sidecar and its graph disagree on"
    fix = "the sidecar was edited or belongs to another engine; rebuild it with `mvd-edge build-engine`"
    sidecar_pp, graph_pp = spec.to_dict(), meta.preprocess.to_dict()
    for key in sorted(set(sidecar_pp) | set(graph_pp)):
        if sidecar_pp.get(key) != graph_pp.get(key):
            raise EngineError(f"{where} preprocess.{key} (sidecar {sidecar_pp.get(key)!r}, graph "
                              f"{graph_pp.get(key)!r}): {fix}")
    for key, graph_value in (("embedding_dim", meta.embedding_dim), ("recipe", meta.recipe),
                             ("precision", meta.precision)):
        if key in info and info[key] != graph_value:
            raise EngineError(f"{where} {key} (sidecar {info[key]!r}, graph {graph_value!r}): {fix}")
    shape = session.get_inputs()[0].shape
    if len(shape) == 4 and all(isinstance(d, int) for d in shape[2:]) and tuple(shape[2:]) != (spec.height, spec.width):
        raise EngineError(f"{where} the input size (sidecar {spec.height}x{spec.width}, graph input "
                          f"{shape[2]}x{shape[3]}): {fix}")


def embedder_facts(session, info: dict, path: str | Path) -> tuple[PreprocessSpec, int]:
    """The preprocessing and embedding size of an ONNX graph opened as ``session`` (ONNX Runtime's, or a
    stand-in with its calls): an engine's from its sidecar ``info``, checked against the graph; a bare
    graph's from its metadata (``info`` gets the graph's precision and recipe)."""
    if "preprocess" in info and info.get("embedding_dim"):
        # a built engine: its sidecar records what was built; the optimised graph keeps the metadata
        # too, and the two must agree (an edited or swapped sidecar would silently embed wrongly)
        spec = PreprocessSpec.from_dict(info["preprocess"])
        check_sidecar_matches_graph(session, info, spec, path)
        check_sidecar_facts(info, path)  # fields the graph does not hold (tensor names, batch profile, ...)
        return spec, int(info["embedding_dim"])
    try:
        meta = GraphMeta.from_session(session, source=path)
    except MetadataError as exc:
        raise EngineError(str(exc)) from exc
    info.setdefault("precision", meta.precision)
    info.setdefault("recipe", meta.recipe)
    return meta.preprocess, meta.embedding_dim


class OrtEmbedder(Embedder):
    """``spin=False``: the intra-op threads sleep between calls instead of spinning (:func:`make_session`), for
    an embedder that takes turns with other work on the same cores."""

    backend = "ort"

    def __init__(self, path: str | Path, info: dict | None = None, device: str = "cpu", threads: int | None = None,
                 max_batch: int = 64, spin: bool = True):
        info = dict(info or {})
        self.session = make_session(path, device=device, threads=threads, spin=spin,
                                    optimization=info.get("ort_optimization", "disable" if info else "extended"))
        spec, dim = embedder_facts(self.session, info, path)
        info["device"] = device
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        super().__init__(spec, dim, int(info.get("max_batch", max_batch)), info)

    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run([self.output_name], {self.input_name: x})[0].astype(np.float32, copy=False)
