"""Stage-by-stage latency of an Embedder: preprocess, host-to-device, inference, device-to-host, postprocess.

Each timed call embeds a batch of fresh random crops (sizes like real detections); the
Embedder reports seconds per stage for that call (``Embedder.stage_times``), GPU backends
synchronise before reading the clock. After ``warmup`` untimed calls, ``iters`` calls per
batch size give p50/p90/p99/max per stage and throughput (crops/s). torch-free for ONNX
Runtime / TensorRT engines.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mvd_edge.core import plots
from mvd_edge.core.util import random_crops, write_json
from mvd_edge.runtime import Embedder

STAGES = ("preprocess", "h2d", "infer", "d2h", "postprocess", "total")


def detector_crops(n: int, rng: np.random.Generator, spec_hw: tuple[int, int]) -> list[np.ndarray]:
    """``n`` uint8 BGR crops of 1-2.5x the network input size (typical detector crops)."""
    h, w = spec_hw
    return random_crops(n, rng, heights=(h, int(2.5 * h) + 1), widths=(int(0.8 * w), int(3 * w) + 1))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (MiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 1024.0 if sys.platform != "darwin" else peak / 2**20


def _gpu_peak_mb(emb: Embedder) -> float | None:
    if emb.backend == "torch" and str(getattr(emb, "device", "cpu")).startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    if emb.backend == "trt":
        free, total = emb.cuda.mem_get_info()  # type: ignore[attr-defined]
        return (total - free) / 2**20
    return None


def percentiles(values: Sequence[float]) -> dict[str, float]:
    a = np.asarray(values, dtype=np.float64) * 1e3
    p50, p90, p99 = np.percentile(a, [50, 90, 99])
    return {"p50": float(p50), "p90": float(p90), "p99": float(p99), "max": float(a.max()), "mean": float(a.mean())}


def profile_embedder(emb: Embedder, batches: Sequence[int] = (1, 8, 32), iters: int = 50, warmup: int = 10,
                     seed: int = 0, progress: bool = True) -> dict:
    """Per-stage latency distribution (ms) and throughput for each batch size."""
    return profile_embedders([emb], batches, iters=iters, warmup=warmup, seed=seed, progress=progress)[0]


def profile_embedders(embs: Sequence[Embedder], batches: Sequence[int] = (1, 8, 32), iters: int = 50,
                      warmup: int = 10, seed: int = 0, progress: bool = True) -> list[dict]:
    """:func:`profile_embedder` of each of ``embs``, the embedders taking turns call by call on the same
    crops (of a model's input size): load on the machine falls on each alike, so their ratios hold under it."""
    from tqdm import tqdm

    rngs = [np.random.default_rng(seed) for _ in embs]
    results: list[dict] = [{"backend": emb.backend, "precision": emb.precision, "recipe": emb.info.get("recipe"),
                            "embedding_dim": emb.dim, "iters": iters, "warmup": warmup, "batches": {}} for emb in embs]
    for batch in batches:
        if batch < 1:
            raise ValueError(f"batch sizes must be >= 1, got {batch}")
        pools = [[detector_crops(batch, rng, (emb.spec.height, emb.spec.width)) for _ in range(4)]
                 for emb, rng in zip(embs, rngs)]
        for i in range(warmup):
            for emb, pool in zip(embs, pools):
                emb.embed(pool[i % 4])
        samples: list[dict[str, list[float]]] = [{s: [] for s in STAGES} for _ in embs]
        for i in tqdm(range(iters), desc=f"batch {batch}", unit="call", leave=False, disable=not progress):
            for emb, pool, smp in zip(embs, pools, samples):
                _timed_call(emb, pool[i % 4], smp)
        for res, smp in zip(results, samples):
            row = {s: percentiles(v) for s, v in smp.items() if any(v)}
            row["throughput_crops_per_s"] = batch / float(np.median(smp["total"]))
            row["samples_ms"] = {s: [x * 1e3 for x in v] for s, v in smp.items() if any(v)}
            res["batches"][str(batch)] = row
    for res, emb in zip(results, embs):
        res["peak_host_rss_mb"] = peak_rss_mb()
        gpu = _gpu_peak_mb(emb)
        if gpu is not None:
            res["peak_gpu_mb"] = gpu
    return results


def _timed_call(emb: Embedder, crops: list[np.ndarray], samples: dict[str, list[float]]) -> None:
    """One timed ``embed`` call: its total and per-stage seconds appended to ``samples``."""
    emb.reset_times()
    t0 = time.perf_counter()
    emb.embed(crops)
    total = time.perf_counter() - t0
    st = dict(emb.stage_times)
    if "gpu" in st:  # TensorRT: "infer" includes the copies; report them separately
        st["infer"] = st["gpu"]
    for s in STAGES[:-1]:
        samples[s].append(st.get(s, 0.0))
    samples["total"].append(total)


def save_profile(results: dict, out_dir: Path, name: str = "profile") -> dict[str, Path]:
    """JSON plus two PNGs: latency distribution per stage (per batch) and throughput vs batch.

    Without matplotlib only the JSON is written (and returned).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / f"{name}.json", "latency_png": out_dir / f"{name}_latency.png",
             "throughput_png": out_dir / f"{name}_throughput.png"}
    write_json(paths["json"], results, indent=1)
    batches = list(results["batches"])
    fig, axes = plots.figure(ncols=len(batches), figsize=(4 * len(batches), 3.6), squeeze=False)
    if fig is None:
        return {"json": paths["json"]}
    for ax, b in zip(axes[0], batches):
        data = results["batches"][b]["samples_ms"]
        stages = [s for s in STAGES if s in data]
        ax.boxplot([data[s] for s in stages], tick_labels=stages, showfliers=True)
        ax.set(title=f"batch {b}", ylabel="ms")
        ax.tick_params(axis="x", labelrotation=30)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{results['backend']} {results['precision']} ({results.get('recipe')})")
    plots.save(fig, paths["latency_png"])
    fig, ax = plots.figure(figsize=(5, 3.6))
    xs = [int(b) for b in batches]
    ax.plot(xs, [results["batches"][b]["throughput_crops_per_s"] for b in batches], marker="o")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="batch", ylabel="crops / s", title="throughput")
    ax.grid(alpha=0.3)
    plots.save(fig, paths["throughput_png"])
    return paths
