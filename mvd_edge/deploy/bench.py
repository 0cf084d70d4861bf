"""Side-by-side benchmark of deployment variants built from one checkpoint.

Variants = backends x precisions x recipes x fused head (on/off) [x torch.compile] [x CPU threads
of the backends that run ONNX graphs on the CPU: ONNX Runtime, OpenVINO]. Each is built (export ->
FP16 graph / INT8 Q/DQ graph -> engine) or skipped with the reason, then measured in the same run:
latency per batch size (median of timed calls after warm-up), throughput, embedding cosine against
torch FP32 of the same recipe, and Rank-1/mAP on the data set's test split. Ratios are against the
torch FP32 variant of the same recipe, and against ONNX Runtime at the same precision, recipe and
threads (``speedup_vs_ort``: ONNX Runtime's time over the row's). Variants that differ only in their
backend are measured together, taking turns call by call, so load on the machine falls on each
alike; ONNX Runtime's intra-op threads sleep between calls instead of spinning (spinning, they hold
the cores through the next engine's call: OpenVINO measured 4x slower at 2 threads after it).

``detector=True`` adds the packaged real-world detector (``ssdlite``) on the same CPU backends and
threads: its graph's time per call at each batch size (300x300 windows per call), its outputs'
largest difference from ONNX Runtime's on the same input, and the same ratio.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mvd_edge.core import plots
from mvd_edge.core.errors import UsageError
from mvd_edge.core.spec import PRECISIONS
from mvd_edge.core.util import write_json
from mvd_edge.data.base import DatasetError
from mvd_edge.deploy import formats


@dataclass(frozen=True)
class Variant:
    backend: str
    precision: str
    recipe: str
    fused: bool = False
    compiled: bool = False
    model: str = "teacher"  # "teacher" (the checkpoint) or "student" / "student2"... (--student checkpoints)
    threads: int | None = None  # CPU threads of ONNX Runtime / OpenVINO (None: the backend's default)

    @property
    def name(self) -> str:
        extra = ("+fused" if self.fused else "") + ("+compile" if self.compiled else "")
        who = "" if self.model == "teacher" else f"{self.model}-"
        return f"{who}{self.backend}-{self.precision}{extra}-{self.recipe}" + (f"-t{self.threads}" if self.threads else "")


def cpu_threaded(backend: str, device: str) -> bool:
    """Whether ``--threads`` applies to ``backend`` on ``device``: the backends that run ONNX graphs, on the CPU."""
    return formats.for_backend(backend).reads_onnx and not device.startswith("cuda")


def plan_variants(backends: Sequence[str], precisions: Sequence[str], recipes: Sequence[str], fused: Sequence[bool],
                  compiled: bool, device: str, model: str = "teacher", model_recipes: Sequence[str] | None = None,
                  threads: Sequence[int | None] = (None,)) -> tuple[list[Variant], list[tuple[Variant, str]]]:
    """All requested combinations -> (runnable, [(skipped, reason)]) on this machine.

    ``threads``: the thread counts each CPU backend that runs ONNX graphs (:func:`cpu_threaded`) is
    measured at; the other backends are measured once. ``model_recipes``: the recipes the model can
    compute (a one-pass student has no ``full``); the others are skipped with that reason; the rest by
    :func:`mvd_edge.deploy.formats.skip_reason`."""
    for t in threads:
        if t is not None and int(t) < 1:
            raise UsageError(f"threads must be >= 1, got {t}")
    for b in backends:
        formats.for_backend(b)
    for p in precisions:
        formats.check_precision(p)
    cuda = device.startswith("cuda")
    run, skipped = [], []
    for b, p, r, f in itertools.product(backends, precisions, recipes, fused):
        counts = threads if cpu_threaded(b, device) else (None,)
        variants = [Variant(b, p, r, f, False, model, t) for t in counts]
        if compiled and b == "torch":
            variants.append(Variant(b, p, r, f, True, model))
        for v in variants:
            reason = (f"a one-pass student has no {r!r} recipe (recipes: {', '.join(model_recipes)})"
                      if model_recipes is not None and r not in model_recipes
                      else formats.skip_reason(v.backend, v.precision, v.fused, cuda))
            (skipped.append((v, reason)) if reason else run.append(v))
    return run, skipped


class Builder:
    """Builds (and caches in ``work``) the artefacts variants need: ONNX per recipe, FP16, INT8, engines."""

    def __init__(self, checkpoint: Path, work: Path, dataset: str, root: Path, calib_n: int, device: str):
        self.checkpoint, self.work, self.dataset, self.root = checkpoint, work, dataset, root
        self.calib_n, self.device = calib_n, device
        work.mkdir(parents=True, exist_ok=True)

    def onnx(self, recipe: str, fused: bool = False) -> Path:
        from mvd_edge.deploy.export import export_onnx

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

            path = formats.graph_path(self.work, v.recipe, "fp16")
            if not path.is_file():
                to_fp16(base, path)
            return path
        from mvd_edge.quant.api import quantize
        from mvd_edge.quant.manifest import from_dataset

        # ONNX Runtime's CUDA provider runs the symmetric (TensorRT) flavour
        cuda = self.device.startswith("cuda")
        flavour = "trt" if cuda else formats.engine_format(v.backend).int8_flavours[0]
        path = formats.graph_path(self.work, v.recipe, "int8", flavour)
        if not path.is_file():
            manifest = from_dataset(self.dataset, self.root, n=self.calib_n)
            quantize(base, self.work, manifest, flavours=formats.INT8_FLAVOURS, progress=False)
        return path

    def embedder(self, v: Variant):
        from mvd_edge.runtime import load_embedder
        from mvd_edge.runtime.engine import build_engine

        if v.backend == "torch":
            return load_embedder(self.checkpoint, device=self.device, recipe=v.recipe, precision=v.precision,
                                 fused_head=v.fused, compile=v.compiled)
        graph = self.graph(v)
        stem = graph.name.removesuffix(".onnx")
        options: dict = {"threads": v.threads} if v.threads else {}
        if v.backend == "ort":  # backends take turns: ONNX Runtime's spinning threads would hold the cores
            options["spin"] = False  # through the next one's call (OpenVINO measured 4x slower after it)
        if v.backend in ("ort", "openvino"):
            dev = "cuda" if self.device.startswith("cuda") else "cpu"
            engine = (self.work / f"{stem}.ort-{dev}.onnx" if v.backend == "ort"
                      else formats.engine_path(graph, v.backend))
            if not engine.is_file():
                build_engine(graph, engine, backend=v.backend, device=dev, batch=(1, 32, 64))
            return load_embedder(engine, **options)
        engine = formats.engine_path(graph, "trt")
        if not engine.is_file():
            build_engine(graph, engine, backend="trt", batch=(1, 32, 64))
        return load_embedder(engine, device=self.device if ":" in self.device else "cuda:0")


def embedding_macs(model, recipe: str, size: tuple[int, int]) -> int:
    """Multiply-accumulates of one ``size`` (height, width) crop's embedding by ``model`` in eval
    mode (``torch.utils.flop_counter``: FLOPs / 2): every backbone pass the recipe needs, plus its head."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, *size)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.embed(x, recipe)
    return int(counter.get_total_flops() // 2)


def run_bench(checkpoint: str | Path, out: str | Path, dataset: str, root: str | Path,
              backends: Sequence[str] = formats.BENCH_BACKENDS, precisions: Sequence[str] = PRECISIONS,
              recipes: Sequence[str] = ("full",), fused: Sequence[bool] = (False,), compiled: bool = False,
              batches: Sequence[int] = (1, 32), iters: int = 20, warmup: int = 5, trials: int = 3, calib_n: int = 512,
              device: str = "cpu", progress: bool = True, students: Sequence[str | Path] = (),
              threads: Sequence[int | None] = (None,), detector: bool = False) -> dict:
    """Build, measure and compare every variant; returns the report (also written as JSON + PNG).

    ``students``: one-pass student checkpoints (``mvd-edge distill``) measured in the same run
    with the same backends and precisions, on the recipes they have. Every row has its GMACs
    per crop and its cost relative to the teacher's ``full`` recipe. ``threads``: see
    :func:`plan_variants`. ``detector``: also :func:`bench_detector` on the same backends and threads
    (``detector_rows``); with ratios against ONNX Runtime, ``bench_backends.png`` charts them."""
    from mvd_edge.data.registry import default_eval_settings, load_dataset
    from mvd_edge.deploy.profile import profile_embedders
    from mvd_edge.deploy.verify import embed_samples
    from mvd_edge.eval.reid import evaluate_features
    from mvd_edge.model.checkpoint import model_from_checkpoint

    out, root, checkpoint = Path(out), Path(root), Path(checkpoint)
    models = {"teacher": checkpoint}
    for i, s in enumerate(students):
        models["student" if i == 0 else f"student{i + 1}"] = Path(s)
    runnable, skipped, macs = [], [], {}
    for name, ckpt in models.items():
        model, state = model_from_checkpoint(ckpt)  # once per model: its recipes and the MACs of each
        run, skip = plan_variants(backends, precisions, recipes, fused, compiled, device, model=name,
                                  model_recipes=model.spec.recipes, threads=threads)
        size = (int(state["preprocess"]["height"]), int(state["preprocess"]["width"]))
        macs.update({(name, r): embedding_macs(model, r, size) for r in {v.recipe for v in run}})
        runnable += run
        skipped += skip
    data = load_dataset(dataset, root)
    if not data.test:
        raise DatasetError(f"{root}: the test split of {dataset} is empty")
    setting = default_eval_settings(dataset)[0]
    paths = [str(s.path) for s in data.test]
    builders = {name: Builder(ckpt, out / "artifacts" / (name if students else ""), dataset, root, calib_n, device)
                for name, ckpt in models.items()}
    rows, refs = {}, {}
    for group in _side_by_side(runnable):
        if progress:
            print(f"[bench] {', '.join(v.name for v in group)}", flush=True)
        with ExitStack() as stack:
            embs = [stack.enter_context(builders[v.model].embedder(v)) for v in group]
            profs = profile_embedders(embs, batches=batches, iters=iters, warmup=warmup, progress=False)
            feats = [embed_samples(emb, paths) for emb in embs]
        for v, prof, f in zip(group, profs, feats):
            metrics = evaluate_features(f, data.test, [setting], n_trials=trials)[setting]
            rows[v] = _row(v, str(models[v.model]), prof, f, metrics, macs[(v.model, v.recipe)], batches)
            if (v.backend, v.precision, v.fused, v.compiled) == ("torch", "fp32", False, False):
                refs[(v.model, v.recipe)] = f
    rows = [rows[v] for v in runnable]
    _compare_rows(rows, refs, macs.get(("teacher", "full")), batches)
    report = {"checkpoint": str(checkpoint), "students": [str(s) for s in students], "device": device,
              "dataset": dataset, "setting": setting, "trials": trials, "batches": list(batches), "rows": rows,
              "skipped": [{"variant": v.name, "reason": r} for v, r in skipped]}
    report["pareto"] = pareto_front([(r["latency_ms"][batches[0]], r["rank1"]) for r in rows])
    if detector:
        report["detector_rows"], skipped_detectors = bench_detector(backends, threads, batches, iters, warmup, device,
                                                                    progress)
        report["skipped"] += skipped_detectors
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "bench.json", report, indent=1)
    plot_pareto(report, out / "bench_pareto.png")
    if not plot_backends(report, out / "bench_backends.png"):
        (out / "bench_backends.png").unlink(missing_ok=True)  # not one of this run's: no stale chart beside it
    return report


def _side_by_side(variants: Sequence[Variant]) -> list[list[Variant]]:
    """``variants`` in groups measured together, taking turns call by call: those that differ only in their
    backend (the same model, precision, recipe, fused head, compile and threads), in first-seen order."""
    groups: dict[tuple, list[Variant]] = {}
    for v in variants:
        groups.setdefault((v.model, v.precision, v.recipe, v.fused, v.compiled, v.threads), []).append(v)
    return list(groups.values())


def _row(v: Variant, checkpoint: str, prof: dict, feats, metrics: dict, macs: int, batches: Sequence[int]) -> dict:
    """One variant's row (its features under ``_feats`` until :func:`_compare_rows` takes them)."""
    lat = {b: prof["batches"][str(b)]["total"]["p50"] for b in batches}
    return {"variant": v.name, "model": v.model, "checkpoint": checkpoint, "backend": v.backend,
            "precision": v.precision, "recipe": v.recipe, "fused": v.fused, "compiled": v.compiled,
            "threads": v.threads, "embedding_dim": int(feats.shape[1]), "gmacs_per_crop": macs / 1e9,
            "latency_ms": lat, "ms_per_crop": {b: lat[b] / b for b in batches},
            "throughput": {b: prof["batches"][str(b)]["throughput_crops_per_s"] for b in batches},
            "rank1": metrics["rank1"]["mean"], "rank1_std": metrics["rank1"]["std"],
            "mAP": metrics["mAP"]["mean"], "mINP": metrics["mINP"]["mean"], "_feats": feats}


def _compare_rows(rows: list[dict], refs: dict, full: int | None, batches: Sequence[int]) -> None:
    """Give every row its cosine and speedup against torch FP32 of its model and recipe, and its cost
    against the teacher's ``full`` recipe (``full``: its MACs) at the same backend and precision."""
    from mvd_edge.deploy.parity import compare

    for row in rows:
        ref = refs.get((row["model"], row["recipe"]))
        feats = row.pop("_feats")
        row["cosine_vs_torch_fp32"] = compare(feats, ref).mean_cosine if ref is not None else None
        base = next((r for r in rows if r["backend"] == "torch" and r["precision"] == "fp32" and not r["fused"]
                     and not r["compiled"] and r["recipe"] == row["recipe"] and r["model"] == row["model"]), None)
        row["speedup_vs_torch_fp32"] = ({b: base["latency_ms"][b] / row["latency_ms"][b] for b in batches}
                                        if base else None)
        row["macs_vs_teacher_full"] = row["gmacs_per_crop"] * 1e9 / full if full else None
        same = next((r for r in rows if r["model"] == "teacher" and r["recipe"] == "full"
                     and (r["backend"], r["precision"], r["fused"], r["compiled"])
                     == (row["backend"], row["precision"], row["fused"], row["compiled"])), None)
        row["latency_vs_teacher_full"] = ({b: row["latency_ms"][b] / same["latency_ms"][b] for b in batches}
                                          if same else None)
        row["rank1_vs_teacher_full"] = row["rank1"] - same["rank1"] if same else None
    add_ort_ratios(rows, ("model", "precision", "recipe", "fused", "compiled", "threads"), batches)


def add_ort_ratios(rows: list[dict], same: Sequence[str], batches: Sequence[int]) -> None:
    """Give every row but ONNX Runtime's its ``speedup_vs_ort`` per batch: the latency of the ``ort`` row
    equal to it in every ``same`` field over its own (above 1: faster than ONNX Runtime); None without one."""
    for row in rows:
        ort = next((r for r in rows if r["backend"] == "ort" and all(r[k] == row[k] for k in same)), None)
        row["speedup_vs_ort"] = ({b: ort["latency_ms"][b] / row["latency_ms"][b] for b in batches}
                                 if ort is not None and row["backend"] != "ort" else None)


def bench_detector(backends: Sequence[str], threads: Sequence[int | None], batches: Sequence[int], iters: int,
                   warmup: int, device: str = "cpu", progress: bool = True) -> tuple[list[dict], list[dict]]:
    """The packaged ``ssdlite`` detector's graph on each of ``backends`` that runs ONNX graphs, at each of
    ``threads``: p50 ms per call of ``batch`` 300x300 windows (its ``--tiles 2`` setting runs 3 a frame)
    -> (rows, skipped). The backends take turns call by call on the same inputs, so load on the machine
    falls on each alike; each row's ``max_abs_diff_vs_ort`` is its outputs' largest difference from ONNX
    Runtime's at the same threads (box codes and scores), and ``speedup_vs_ort`` its ratio
    (:func:`add_ort_ratios`)."""
    from mvd_edge.deploy.profile import percentiles
    from mvd_edge.match.detect import load_ssdlite

    rows, skipped, dets = [], [], []
    for b in backends:
        fmt = formats.for_backend(b)
        if not cpu_threaded(b, device):
            continue  # torch, TensorRT: the detector is an ONNX graph the CPU backends run
        if fmt.missing_modules():
            skipped.append({"variant": f"ssdlite-{b}", "reason": formats.skip_reason(b, "fp32", False, False)})
            continue
        for t in threads:
            dets.append(load_ssdlite(threads=t, backend=b))
            rows.append({"variant": f"ssdlite-{b}" + (f"-t{t}" if t else ""), "detector": "ssdlite", "backend": b,
                         "precision": "fp32", "threads": t, "latency_ms": {}, "ms_per_window": {},
                         "max_abs_diff_vs_ort": None})
    for n in batches:
        if progress:
            print(f"[bench] detector, batch {n}: {', '.join(r['variant'] for r in rows)}", flush=True)
        x = np.random.default_rng(n).uniform(-1, 1, (n, 300, 300, 3)).astype(np.float32)
        outs = [d.session.run(None, {d.input_name: x}) for d in dets]
        times: list[list[float]] = [[] for _ in dets]
        for i in range(warmup + iters):
            for k, d in enumerate(dets):
                t0 = time.perf_counter()
                d.session.run(None, {d.input_name: x})
                if i >= warmup:
                    times[k].append(time.perf_counter() - t0)
        for row, out, ts in zip(rows, outs, times):
            row["latency_ms"][n] = percentiles(ts)["p50"]
            row["ms_per_window"][n] = row["latency_ms"][n] / n
            ref = next((o for o, r in zip(outs, rows) if r["backend"] == "ort" and r["threads"] == row["threads"]),
                       None)
            if ref is not None:
                diff = max(float(np.abs(mine - theirs).max()) for mine, theirs in zip(out, ref))
                row["max_abs_diff_vs_ort"] = max(diff, row["max_abs_diff_vs_ort"] or 0.0)
    add_ort_ratios(rows, ("threads",), batches)
    return rows, skipped


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
    ax.set(xscale="log", xlabel=f"latency per call at batch {b} (ms, p50)", ylabel=f"Rank-1 (%) {report['setting']}",
           title=f"accuracy vs latency ({report['device']})")
    ax.grid(alpha=0.3)
    return plots.save(fig, path, dpi=120)


def plot_backends(report: dict, path: Path) -> bool:
    """Bars of every row's ``speedup_vs_ort`` per batch size (re-id rows, then the detector's); False (nothing
    written) when no row has one, or without matplotlib."""
    rows = [r for r in report["rows"] + report.get("detector_rows", []) if r.get("speedup_vs_ort")]
    if not rows:
        return False
    batches = report["batches"]
    fig, ax = plots.figure(figsize=(max(6.5, 0.45 * len(rows) * len(batches)), 4.2))
    if fig is None:
        return False
    width = 0.8 / len(batches)
    for j, b in enumerate(batches):
        ax.bar([i + j * width for i in range(len(rows))], [r["speedup_vs_ort"][b] for r in rows], width,
               label=f"batch {b}")
    ax.axhline(1.0, c="k", lw=1, ls="--")
    ax.set_yscale("log", base=2)
    ratios = [r["speedup_vs_ort"][b] for r in rows for b in batches]
    ticks = [2.0 ** k for k in range(int(np.floor(np.log2(min(ratios + [1.0])))),
                                     int(np.ceil(np.log2(max(ratios + [1.0])))) + 1)]
    ax.set_yticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(rows))], [r["variant"] for r in rows], rotation=35,
                  ha="right", fontsize=7)
    ax.set(ylabel="ONNX Runtime time / this time", title=f"against ONNX Runtime, same precision and threads "
                                                          f"({report['device']}; above 1: faster)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return plots.save(fig, path, dpi=120)


def _at(d: dict, b: int):
    """``d``'s value at batch ``b``: in memory the batch keys are ints, read back from bench.json strings."""
    return d[b] if b in d else d[str(b)]


def summary_columns(batches: Sequence[int]) -> list[str]:
    """Column titles of :func:`summary_rows`."""
    return ["variant", "dim", "GMACs/crop", "MACs vs full", *[f"ms/crop@{b}" for b in batches], f"ms vs full@{batches[-1]}",
            f"speedup@{batches[-1]}", *[f"vs ort@{b}" for b in batches], f"crops/s@{batches[-1]}", "Rank-1", "mAP",
            "mINP", "cos vs fp32"]


def summary_rows(report: dict) -> list[list[str]]:
    """Table rows, in :func:`summary_columns` order: variant, dim, GMACs per crop and relative to the
    teacher's full recipe, ms per crop per batch size, latency relative to the teacher's full recipe
    (same backend and precision), speedup vs torch FP32, speedup vs ONNX Runtime per batch size,
    throughput at the largest batch, Rank-1, mAP, mINP, cosine vs torch FP32."""
    out = []
    bs = report["batches"]
    at = _at
    for r in report["rows"]:
        sp = r["speedup_vs_torch_fp32"]
        cos = r["cosine_vs_torch_fp32"]
        rel = r.get("macs_vs_teacher_full")
        lat = r.get("latency_vs_teacher_full")
        out.append([r["variant"], str(r["embedding_dim"]), f"{r['gmacs_per_crop']:.4f}",
                    f"{rel:.2f}" if rel is not None else "-"]
                   + [f"{at(r['ms_per_crop'], b):.3f}" for b in bs]
                   + [f"{at(lat, bs[-1]):.2f}" if lat else "-", f"{at(sp, bs[-1]):.2f}x" if sp else "-"]
                   + [f"{at(r['speedup_vs_ort'], b):.2f}x" if r.get("speedup_vs_ort") else "-" for b in bs]
                   + [f"{at(r['throughput'], bs[-1]):.0f}",
                      f"{r['rank1']:.2f}", f"{r['mAP']:.2f}", f"{r['mINP']:.2f}",
                      f"{cos:.5f}" if cos is not None else "-"])
    return out


def detector_summary_rows(report: dict) -> list[list[str]]:
    """The detector's rows as table rows: variant, ms per call per batch size, speedup vs ONNX Runtime per
    batch size, largest output difference from ONNX Runtime (columns: :func:`detector_summary_columns`)."""
    bs, at = report["batches"], _at
    return [[r["variant"], *[f"{at(r['latency_ms'], b):.2f}" for b in bs],
             *[f"{at(r['speedup_vs_ort'], b):.2f}x" if r.get("speedup_vs_ort") else "-" for b in bs],
             f"{r['max_abs_diff_vs_ort']:.1e}" if r.get("max_abs_diff_vs_ort") is not None else "-"]
            for r in report.get("detector_rows", [])]


def detector_summary_columns(batches: Sequence[int]) -> list[str]:
    return ["detector", *[f"ms/call@{b}" for b in batches], *[f"vs ort@{b}" for b in batches], "max diff vs ort"]
