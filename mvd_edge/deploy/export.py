"""Checkpoint -> ONNX (FP32, dynamic batch, fixed HxW, one input, one output, metadata).

The graph's single input ``input`` is ``float32 [N, 3, H, W]``: RGB crops normalised as
``mvd_edge.core.preprocess`` defines; the grayscale view is computed inside the graph. Its single
output ``embedding`` is ``float32 [N, D]``, L2-normalised. Export asserts eval mode and
checks ONNX Runtime's output against torch on fresh random crops before returning.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from mvd_edge import __version__
from mvd_edge.core.errors import MvdEdgeError
from mvd_edge.core.graphmeta import GraphMeta
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.core.util import random_crops, temp_beside
from mvd_edge.deploy.parity import compare
from mvd_edge.runtime.sidecar import sha256_file

INPUT_NAME = "input"
OUTPUT_NAME = "embedding"
DEFAULT_OPSET = 17
# FP32 ONNX Runtime vs torch on the CPU: different kernels/summation order, same math.
EXPORT_MAX_ABS_TOL = 1e-4
EXPORT_MIN_COS = 0.99999


class ExportError(MvdEdgeError, RuntimeError):
    """The exported graph does not reproduce the torch model within tolerance."""


def _embed_module(model, recipe: str):
    import torch

    class Embed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            return self.model.embed(x, recipe)

    return Embed().eval()


def export_onnx(checkpoint: str | Path, out: str | Path, recipe: str | None = None, opset: int = DEFAULT_OPSET,
                fused_head: bool = False, n_check: int = 6, seed: int = 0) -> dict:
    """Export ``checkpoint`` to ``out`` and verify it; returns a report dict.

    ``recipe`` defaults to the checkpoint's. ``fused_head=True`` emits the embedding head as
    one ``mvd::FusedHead`` node (``mvd_edge.kernels``); such a graph runs on TensorRT with the
    plugin, not on ONNX Runtime, so its parity check runs the graph's trunks only.
    """
    import onnx
    import torch

    from mvd_edge.core.spec import check_recipe
    from mvd_edge.model.checkpoint import checkpoint_preprocess, model_from_checkpoint
    from mvd_edge.model.net import check_graph_spec

    ckpt = Path(checkpoint)
    model, state = model_from_checkpoint(ckpt, recipe=recipe)
    recipe = check_recipe(recipe or model.recipe)
    spec = checkpoint_preprocess(state, ckpt)
    check_graph_spec(spec, where=f"checkpoint {ckpt}")
    model.eval()
    assert not model.training, "export needs eval mode (BatchNorm running stats, no dropout)"
    if fused_head:
        from mvd_edge.kernels.onnx_op import FusedHeadExportWrapper

        module = FusedHeadExportWrapper(model, recipe).eval()
    else:
        module = _embed_module(model, recipe)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    dummy = torch.randn(2, 3, spec.height, spec.width)
    t0 = time.perf_counter()
    buf = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(
            module, (dummy,), buf, dynamo=False, opset_version=opset, input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME], dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    dim = model.embedding_dim(recipe)
    GraphMeta(version=__version__, recipe=recipe, preprocess=spec, embedding_dim=dim,
              checkpoint_sha256=sha256_file(ckpt), backbone=model.spec.backbone, fused_head=fused_head,
              precision="fp32", student_of=student_facts(state)).write_to(proto)
    proto.doc_string = f"MVD embedding ({recipe}, {dim}-d) exported by mvd-edge {__version__}"
    onnx.checker.check_model(proto)
    # written beside ``out`` and renamed over it once checked: a graph that fails its parity check
    # (damaged weights, an exporter bug) never lands at ``out``, nor replaces what was there
    with temp_beside(out) as tmp:
        onnx.save(proto, str(tmp))
        seconds = time.perf_counter() - t0
        report = {"onnx": str(out), "recipe": recipe, "embedding_dim": dim, "input_size": [spec.height, spec.width],
                  "opset": opset, "fused_head": fused_head, "export_seconds": seconds, "sha256": sha256_file(tmp)}
        if fused_head:
            report["parity"] = {"skipped": "fused-head graphs need the TensorRT plugin to run"}
        else:
            report["parity"] = check_parity(tmp, model, recipe, spec, n=n_check, seed=seed, source=ckpt)
    return report


def student_facts(state: dict) -> dict | None:
    """What a one-pass student's checkpoint says it was distilled from (None for MVD itself)."""
    rec = state.get("student_of")
    if not isinstance(rec, dict):
        return None
    keys = ("teacher_sha256", "teacher_backbone", "teacher_recipe", "teacher_embedding_dim", "init")
    return {"student": True, **{k: rec[k] for k in keys if k in rec}}


def check_parity(onnx_path: Path, model, recipe: str, spec: PreprocessSpec, n: int = 6, seed: int = 0,
                 max_abs_tol: float = EXPORT_MAX_ABS_TOL, min_cos: float = EXPORT_MIN_COS,
                 source: str | Path | None = None) -> dict:
    """ONNX Runtime (CPU) vs torch on fresh random crops at batch 1 and n; raise past tolerance.

    Outputs that are not finite (NaN/inf) are an :class:`ExportError` of their own, and never
    count as agreement (a NaN compares as the worst error, not as none). ``source`` (the
    checkpoint) is named in that message."""
    import onnxruntime as ort
    import torch

    from mvd_edge.core.preprocess import preprocess_batch

    rng = np.random.default_rng(seed)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    worst_abs, worst_cos = 0.0, 1.0
    for batch in (1, n):
        crops = random_crops(batch, rng, heights=(40, 300), widths=(20, 150))
        x = preprocess_batch(crops, spec)
        got = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        with torch.no_grad():
            ref = model.embed(torch.from_numpy(x), recipe).numpy()
        if got.shape != ref.shape:
            raise ExportError(f"ONNX output shape {got.shape} != torch {ref.shape}")
        where = source if source is not None else onnx_path
        if not np.isfinite(ref).all():
            raise ExportError(f"{where}: the model's outputs are not finite (NaN/inf): the checkpoint's weights are "
                              "damaged; export an intact checkpoint (the run's best.pt or last.pt) or retrain")
        if not np.isfinite(got).all():
            raise ExportError(f"{where}: the exported graph's outputs under ONNX Runtime are not finite (NaN/inf) "
                              "where torch's are: the export is broken; try another --opset")
        par = compare(got, ref)
        worst_abs, worst_cos = max(worst_abs, par.max_abs_err), min(worst_cos, par.min_cosine)
    result = {"max_abs_err": worst_abs, "min_cosine": worst_cos, "max_abs_tol": max_abs_tol, "min_cos_tol": min_cos}
    if not (worst_abs <= max_abs_tol and worst_cos >= min_cos):  # NaN never passes
        raise ExportError(f"ONNX output differs from torch: max abs err {worst_abs:.2e} (tol {max_abs_tol:.0e}), "
                          f"min cosine {worst_cos:.6f} (tol {min_cos})")
    return result

