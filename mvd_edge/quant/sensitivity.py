"""Accuracy-guided fallback: keep the most sensitive layers in FP32 until Rank-1 is within budget.

1. Budgets: the Rank-1 drop on a *validation* split (``cross-i2v``: every IR image
   queries every RGB image, via ``mvd_edge.eval.reid.evaluate_features``) against
   the FP32 graph, and/or a floor on the mean embedding cosine vs FP32 on held-out
   calibration crops. Fully quantized graph within budget: done, nothing kept back.
2. Per-layer sensitivity on *held-out calibration crops* (crops that did not feed the
   ranges): for each layer (Conv / residual Add), the graph with every layer quantized
   except that one; sensitivity = mean embedding cosine vs FP32 of that graph minus the
   fully quantized graph's (how much keeping the layer in FP32 recovers).
3. Layers sorted by sensitivity are kept back greedily: the smallest ``k`` found by
   doubling (1, 2, 4, ...) then bisection such that keeping back the top ``k`` meets
   every budget (each tried ``k`` is in the report's ``search``). If even all layers in
   FP32 miss it, every layer is kept back and ``within_budget`` is false.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from mvd_edge.core.errors import UsageError
from mvd_edge.deploy.parity import compare
from mvd_edge.quant.qdq import build_qdq

SETTING = "cross-i2v"


def session(model: onnx.ModelProto | str, exact_qdq: bool = False):
    """ONNX Runtime CPU session.

    Default optimisations run the fused QLinear kernels: what the ``cpu`` flavour runs in
    deployment. ``exact_qdq=True`` turns graph optimisation off, so every Q/DQ pair is computed
    as written (dequantise, float op, quantise): the arithmetic TensorRT implements for the
    ``trt`` flavour. ORT's fused u8 x s8 kernels on x86 CPUs without VNNI accumulate in
    saturating int16, which costs a full 8-bit-weight graph several cosine points that
    TensorRT never loses, so the ``trt`` flavour is measured exactly.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    if exact_qdq:
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])


def embed(model: Any, x: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Run a graph (model proto, path or session) on float32 ``[N,3,H,W]`` -> float32 ``[N, D]``."""
    sess = model if hasattr(model, "run") else session(model)
    name = sess.get_inputs()[0].name
    outs = [sess.run(None, {name: x[i:i + batch_size]})[0] for i in range(0, len(x), batch_size)]
    return np.concatenate(outs).astype(np.float32)


def rank1(feats: np.ndarray, samples: Sequence[Any]) -> float:
    """Rank-1 (percent) of ``cross-i2v`` on ``samples`` (IR queries vs RGB gallery)."""
    from mvd_edge.eval.reid import evaluate_features

    return float(evaluate_features(feats, samples, [SETTING], n_trials=1, seed=0)[SETTING]["rank1"]["mean"])


def load_samples(samples: Sequence[Any], spec) -> np.ndarray:
    """Validation samples (``.path``) -> preprocessed float32 ``[N,3,H,W]``; unreadable images raise."""
    from mvd_edge.core.preprocess import preprocess_batch, read_image

    crops = []
    for s in samples:
        img = read_image(str(s.path))
        if img is None:
            raise FileNotFoundError(f"validation image unreadable or missing: {s.path}")
        crops.append(img)
    return preprocess_batch(crops, spec)


def layer_sensitivity(prepared: onnx.ModelProto, ranges: Any, flavour: str, held_x: np.ndarray,
                      ref_held: np.ndarray, include_head: bool = False, reduce_range: bool = True,
                      progress: bool = True) -> tuple[list[dict], float]:
    """Sensitivity of every layer (see the module docstring) -> (rows sorted most sensitive first, cos_all)."""
    from tqdm import tqdm

    full, rep = build_qdq(prepared, ranges, flavour, include_head=include_head, reduce_range=reduce_range)
    cos_all = compare(embed(full, held_x), ref_held).mean_cosine
    rows = []
    for layer in tqdm(rep["layers"], desc=f"layer sensitivity ({flavour})", unit="layer", disable=not progress,
                      leave=False):
        m, _ = build_qdq(prepared, ranges, flavour, include_head=include_head, exclude=[layer],
                         reduce_range=reduce_range)
        cos = compare(embed(m, held_x), ref_held).mean_cosine
        rows.append({"layer": layer, "cosine_without": cos, "gain": cos - cos_all})
    rows.sort(key=lambda r: (-r["gain"], r["layer"]))
    return rows, cos_all


def fallback(prepared: onnx.ModelProto, ranges: Any, flavour: str, held_x: np.ndarray, ref_held: np.ndarray,
             max_rank1_drop: float | None = None, val_x: np.ndarray | None = None,
             val_samples: Sequence[Any] | None = None, ref_val: np.ndarray | None = None,
             min_cosine: float | None = None, include_head: bool = False, reduce_range: bool = True,
             progress: bool = True) -> tuple[list[str], dict]:
    """Layers to keep in FP32 so every given budget holds; returns ``(kept_back, report)``.

    Budgets: ``max_rank1_drop`` (points of ``cross-i2v`` Rank-1 on ``val_samples`` /
    ``val_x``, against the FP32 embeddings ``ref_val``) and/or ``min_cosine`` (mean
    embedding cosine vs FP32 ``ref_held`` on the held-out crops ``held_x``).
    """
    if max_rank1_drop is None and min_cosine is None:
        raise ValueError("give max_rank1_drop and/or min_cosine")
    if max_rank1_drop is not None:
        if max_rank1_drop < 0:
            raise UsageError(f"max_rank1_drop must be >= 0 points, got {max_rank1_drop}")
        if val_x is None or val_samples is None or ref_val is None:
            raise ValueError("max_rank1_drop needs validation inputs (val_x, val_samples, ref_val)")
    if min_cosine is not None and not 0.0 < min_cosine <= 1.0:
        raise ValueError(f"min_cosine must be in (0, 1], got {min_cosine}")
    t0 = time.perf_counter()
    r1_fp32 = rank1(ref_val, val_samples) if max_rank1_drop is not None else None  # type: ignore[arg-type]

    def measure(exclude: Sequence[str]) -> dict[str, Any]:
        m, _ = build_qdq(prepared, ranges, flavour, include_head=include_head, exclude=exclude,
                         reduce_range=reduce_range)
        sess = session(m, exact_qdq=flavour == "trt")
        row: dict[str, Any] = {"kept_back": len(exclude), "cosine": compare(embed(sess, held_x), ref_held).mean_cosine}
        ok = min_cosine is None or row["cosine"] >= min_cosine
        if max_rank1_drop is not None:
            row["rank1"] = rank1(embed(sess, val_x), val_samples)  # type: ignore[arg-type]
            row["drop"] = r1_fp32 - row["rank1"]  # type: ignore[operator]
            ok = ok and row["drop"] <= max_rank1_drop
        row["within_budget"] = ok
        return row

    before = measure([])
    report: dict[str, Any] = {"flavour": flavour, "setting": SETTING, "max_rank1_drop": max_rank1_drop,
                              "min_cosine": min_cosine, "fp32_rank1": r1_fp32, "before": before,
                              "val_images": len(val_samples) if val_samples is not None else 0,
                              "held_out_crops": len(held_x), "kept_back": [], "search": []}
    if before["within_budget"]:
        report.update(after=before, within_budget=True, sensitivity=[], seconds=time.perf_counter() - t0,
                      note="within budget with every layer quantized; no sensitivity analysis needed")
        return [], report
    rows, cos_all = layer_sensitivity(prepared, ranges, flavour, held_x, ref_held, include_head, reduce_range,
                                      progress)
    order = [r["layer"] for r in rows]
    tried: dict[int, dict[str, Any]] = {0: before}

    def ok(k: int) -> bool:
        if k not in tried:
            tried[k] = measure(order[:k])
            report["search"].append(tried[k])
        return bool(tried[k]["within_budget"])

    lo, hi = 0, 1
    while hi < len(order) and not ok(hi):
        lo, hi = hi, min(2 * hi, len(order))
    if hi >= len(order) and not ok(len(order)):
        hi = len(order)  # every layer in FP32: nothing more to give back
    else:
        while hi - lo > 1:  # smallest k in (lo, hi] within budget
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    kept = order[:hi]
    after = tried[hi] if hi in tried else measure(kept)
    gains = {r["layer"]: r for r in rows}
    report.update(
        kept_back=[{"layer": n, "gain": gains[n]["gain"], "cosine_without": gains[n]["cosine_without"]} for n in kept],
        after=after, within_budget=bool(after["within_budget"]), cosine_all_quantized=cos_all,
        sensitivity=rows[:20], seconds=time.perf_counter() - t0)
    return kept, report
