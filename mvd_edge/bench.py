"""Side-by-side benchmark of deployment variants built from one checkpoint.

Variants = backends x precisions x recipes x fused head (on/off) [x torch.compile]. Each is
built (export -> FP16 graph / INT8 Q/DQ graph -> engine) or skipped with the reason, then
measured in the same run: latency per batch size (median of timed calls after warm-up),
throughput, embedding cosine against torch FP32 of the same recipe, and Rank-1/mAP on the
data set's test split. Ratios are against the torch FP32 variant of the same recipe.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mvd_edge.core import plots
from mvd_edge.core.errors import UsageError
from mvd_edge.data.base import DatasetError

BACKENDS = ("torch", "ort", "trt")
PRECISIONS = ("fp32", "fp16", "int8")


@dataclass(frozen=True)
class Variant:
    backend: str
    precision: str
    recipe: str
    fused: bool = False
    compiled: bool = False

    @property
    def name(self) -> str:
        extra = ("+fused" if self.fused else "") + ("+compile" if self.compiled else "")
        return f"{self.backend}-{self.precision}{extra}-{self.recipe}"


def plan_variants(backends: Sequence[str], precisions: Sequence[str], recipes: Sequence[str], fused: Sequence[bool],
                  compiled: bool, device: str) -> tuple[list[Variant], list[tuple[Variant, str]]]:
    """All requested combinations -> (runnable, [(skipped, reason)]) on this machine."""
    for b in backends:
        if b not in BACKENDS:
            raise UsageError(f"unknown backend {b!r}; choose from {', '.join(BACKENDS)}")
    for p in precisions:
        if p not in PRECISIONS:
            raise UsageError(f"unknown precision {p!r}; choose from {', '.join(PRECISIONS)}")
    cuda = device.startswith("cuda")
    run, skipped = [], []
    for b, p, r, f in itertools.product(backends, precisions, recipes, fused):
        variants = [Variant(b, p, r, f, False)]
        if compiled and b == "torch":
            variants.append(Variant(b, p, r, f, True))
        for v in variants:
            reason = _skip_reason(v, cuda)
            (skipped.append((v, reason)) if reason else run.append(v))
    return run, skipped


def _skip_reason(v: Variant, cuda: bool) -> str | None:
    if v.backend == "torch":
        if v.precision == "int8":
            return "the torch backend has no INT8 path (INT8 is a Q/DQ graph for ort/trt)"
        if v.precision == "fp16" and not cuda:
            return "torch fp16 needs a CUDA device"
        if v.fused and not cuda:
            return "the fused Triton head runs on CUDA"
    if v.backend == "ort" and v.fused:
        return "ONNX Runtime cannot run the mvd::FusedHead plugin op (TensorRT only)"
    if v.backend == "trt":
        from mvd_edge.runtime.trt_compat import TensorRTUnavailable, import_tensorrt

        try:
            import_tensorrt()
        except TensorRTUnavailable as exc:
            return f"TensorRT not installed ({str(exc).split(':')[0]})"
        if not cuda:
            return "TensorRT needs a CUDA device"
        if v.fused and v.precision != "fp32":
            return "fused-head graphs are exported in FP32 (FP16/INT8 graphs need ONNX Runtime to build)"
    return None


class Builder:
    """Builds (and caches in ``work``) the artefacts variants need: ONNX per recipe, FP16, INT8, engines."""

    def __init__(self, checkpoint: Path, work: Path, dataset: str, root: Path, calib_n: int, device: str):
        self.checkpoint, self.work, self.dataset, self.root = checkpoint, work, dataset, root
        self.calib_n, self.device = calib_n, device
        work.mkdir(parents=True, exist_ok=True)

    def onnx(self, recipe: str, fused: bool = False) -> Path:
        from mvd_edge.export import export_onnx

        path = self.work / f"{recipe}{'.fused' if fused else ''}.onnx"
        if not path.is_file():
            export_onnx(self.checkpoint, path, recipe=recipe, fused_head=fused)
        return path

    def graph(self, v: Variant) -> Path:
        base = self.onnx(v.recipe, v.fused)
        if v.precision == "fp32":
            return base
        if v.precision == "fp16":
            from mvd_edge.quant.api import to_fp16

            path = self.work / f"{v.recipe}.fp16.onnx"
            if not path.is_file():
                to_fp16(base, path)
            return path
        from mvd_edge.quant.api import int8_path, quantize
        from mvd_edge.quant.manifest import from_dataset

        flavour = "cpu" if v.backend == "ort" and not self.device.startswith("cuda") else "trt"
        path = int8_path(self.work, v.recipe, flavour)
        if not path.is_file():
            manifest = from_dataset(self.dataset, self.root, n=self.calib_n)
            quantize(base, self.work, manifest, flavours=("trt", "cpu"), progress=False)
        return path

    def embedder(self, v: Variant):
        from mvd_edge.runtime import load_embedder
        from mvd_edge.runtime.engine import build_engine

        if v.backend == "torch":
            return load_embedder(self.checkpoint, device=self.device, recipe=v.recipe, precision=v.precision,
                                 fused_head=v.fused, compile=v.compiled)
        graph = self.graph(v)
        stem = graph.name.removesuffix(".onnx")
        if v.backend == "ort":
            dev = "cuda" if self.device.startswith("cuda") else "cpu"
            engine = self.work / f"{stem}.ort-{dev}.onnx"
            if not engine.is_file():
                build_engine(graph, engine, backend="ort", device=dev, batch=(1, 32, 64))
            return load_embedder(engine)
        engine = self.work / f"{stem}.engine"
        if not engine.is_file():
            build_engine(graph, engine, backend="trt", batch=(1, 32, 64))
        return load_embedder(engine, device=self.device if ":" in self.device else "cuda:0")


def run_bench(checkpoint: str | Path, out: str | Path, dataset: str, root: str | Path,
              backends: Sequence[str] = ("torch", "ort", "trt"), precisions: Sequence[str] = ("fp32", "fp16", "int8"),
              recipes: Sequence[str] = ("full",), fused: Sequence[bool] = (False,), compiled: bool = False,
              batches: Sequence[int] = (1, 32), iters: int = 20, warmup: int = 5, trials: int = 3, calib_n: int = 512,
              device: str = "cpu", progress: bool = True) -> dict:
    """Build, measure and compare every variant; returns the report (also written as JSON + PNG)."""
    from mvd_edge.core.util import cosine_summary
    from mvd_edge.data.registry import default_eval_settings, load_dataset
    from mvd_edge.eval.reid import evaluate_features
    from mvd_edge.profile import profile_embedder
    from mvd_edge.verify import embed_samples

    out, root, checkpoint = Path(out), Path(root), Path(checkpoint)
    runnable, skipped = plan_variants(backends, precisions, recipes, fused, compiled, device)
    data = load_dataset(dataset, root)
    if not data.test:
        raise DatasetError(f"{root}: the test split of {dataset} is empty")
    setting = default_eval_settings(dataset)[0]
    paths = [str(s.path) for s in data.test]
    builder = Builder(checkpoint, out / "artifacts", dataset, root, calib_n, device)
    rows, refs = [], {}
    for v in runnable:
        if progress:
            print(f"[bench] {v.name}", flush=True)
        emb = builder.embedder(v)
        try:
            prof = profile_embedder(emb, batches=batches, iters=iters, warmup=warmup, progress=False)
            feats = embed_samples(emb, paths)
        finally:
            emb.close()
        metrics = evaluate_features(feats, data.test, [setting], n_trials=trials)[setting]
        row = {"variant": v.name, "backend": v.backend, "precision": v.precision, "recipe": v.recipe,
               "fused": v.fused, "compiled": v.compiled, "embedding_dim": int(feats.shape[1]),
               "latency_ms": {b: prof["batches"][str(b)]["total"]["p50"] for b in batches},
               "throughput": {b: prof["batches"][str(b)]["throughput_crops_per_s"] for b in batches},
               "rank1": metrics["rank1"]["mean"], "mAP": metrics["mAP"]["mean"]}
        if v == Variant("torch", "fp32", v.recipe):
            refs[v.recipe] = feats
        row["_feats"] = feats
        rows.append(row)
    for row in rows:
        ref = refs.get(row["recipe"])
        row["cosine_vs_torch_fp32"] = cosine_summary(row.pop("_feats"), ref)["mean"] if ref is not None else None
        base = next((r for r in rows if r["backend"] == "torch" and r["precision"] == "fp32" and not r["fused"]
                     and not r["compiled"] and r["recipe"] == row["recipe"]), None)
        row["speedup_vs_torch_fp32"] = ({b: base["latency_ms"][b] / row["latency_ms"][b] for b in batches}
                                        if base else None)
    report = {"checkpoint": str(checkpoint), "device": device, "dataset": dataset, "setting": setting,
              "trials": trials, "batches": list(batches), "rows": rows,
              "skipped": [{"variant": v.name, "reason": r} for v, r in skipped]}
    report["pareto"] = pareto_front([(r["latency_ms"][batches[0]], r["rank1"]) for r in rows])
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1))
    plot_pareto(report, out / "bench_pareto.png")
    return report


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of points not dominated (lower latency and higher accuracy is better)."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any((l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc) for j, (l2, a2) in enumerate(points)
                        if j != i)
        if not dominated:
            front.append(i)
    return front


def plot_pareto(report: dict, path: Path) -> bool:
    """Rank-1 vs latency PNG with the Pareto front; False (nothing written) without matplotlib."""
    b = report["batches"][0]
    rows = report["rows"]
    fig, ax = plots.figure(figsize=(6.5, 4.2))
    if fig is None:
        return False
    for i, r in enumerate(rows):
        on = i in report["pareto"]
        ax.scatter(r["latency_ms"][b], r["rank1"], s=60 if on else 30, c="tab:red" if on else "tab:blue", zorder=3)
        ax.annotate(r["variant"], (r["latency_ms"][b], r["rank1"]), fontsize=7, xytext=(4, 3),
                    textcoords="offset points")
    front = sorted((rows[i]["latency_ms"][b], rows[i]["rank1"]) for i in report["pareto"])
    if len(front) > 1:
        ax.plot(*zip(*front), c="tab:red", lw=1, ls="--", label="Pareto front")
        ax.legend(fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel(f"latency per call at batch {b} (ms, p50)")
    ax.set_ylabel(f"Rank-1 (%) {report['setting']}")
    ax.grid(alpha=0.3)
    ax.set_title(f"accuracy vs latency ({report['device']})")
    return plots.save(fig, path, dpi=120)


def summary_rows(report: dict) -> list[list[str]]:
    """Table rows: variant, dim, latency per batch, speedup, throughput at the largest batch, R1, mAP, cosine."""
    out = []
    bs = report["batches"]
    for r in report["rows"]:
        sp = r["speedup_vs_torch_fp32"]
        cos = r["cosine_vs_torch_fp32"]
        out.append([r["variant"], str(r["embedding_dim"])]
                   + [f"{r['latency_ms'][b]:.2f}" for b in bs]
                   + [f"{sp[bs[-1]]:.2f}x" if sp else "-", f"{r['throughput'][bs[-1]]:.0f}",
                      f"{r['rank1']:.2f}", f"{r['mAP']:.2f}", f"{cos:.5f}" if cos is not None else "-"])
    return out

