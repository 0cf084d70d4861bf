"""Gallery index kinds side by side: build time, queries/s, recall against exact search, memory.

For every size (``--sizes``) a synthetic gallery of clustered unit vectors is made (``--dim``-d;
identities of ``--per-id`` entries each, an entry = identity centre + Gaussian noise of norm
``--noise``, renormalised: cosine to its centre ~0.8, like re-id embeddings of one person), and
a query set of ``--queries`` fresh samples of random identities. Every index kind
(:class:`mvd_edge.gallery.Gallery`: flat, ivf, ivfpq with exact re-ranking, hnsw) is built
(train + add, seconds), searched with the whole query batch in one call (queries/s) and one
query at a time (queries/s, up to ``--single`` queries or 10 s), and scored against exact
``flat`` search: recall@1 (same top-1) and recall@10 (overlap of the top-10 sets). Memory: the
bytes of the serialised index. The approximate kinds are also swept over ``nprobe`` / ``efSearch``
for the qps-vs-recall plot; the table shows the defaults.

The embeddings of the ``full`` recipe are 8192-d; 1M of them (32 GB as float32) do not fit this
machine, so the gallery is synthetic ``--dim``-d (default 128, what a PCA-reduced or
smaller-recipe embedding would be); the JSON says so.

Prints a table and writes ``OUT/bench.json`` (after each size, so a long run keeps what it
measured) and ``OUT/bench.png``.

    python benchmarks/gallery.py --out-dir docs/gallery --sizes 10000,100000,1000000 --dim 128
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mvd_edge.gallery.index import Gallery, IndexParams, faiss_module

KINDS = ("flat", "ivf", "ivfpq", "hnsw")
SWEEP = {"ivf": ("nprobe", (8, 16, 32, 64, 128, 256)), "ivfpq": ("nprobe", (8, 16, 32, 64, 128, 256)),
         "hnsw": ("ef_search", (16, 32, 64, 128, 256))}


def synthetic(n: int, dim: int, per_id: int, noise: float, n_queries: int, seed: int):
    """Clustered unit vectors ``[n, dim]`` with ids, and ``[n_queries, dim]`` fresh queries of the same identities."""
    rng = np.random.default_rng(seed)
    n_ids = max(1, n // per_id)
    centres = rng.standard_normal((n_ids, dim), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)

    def draw(m: int):
        ids = rng.integers(0, n_ids, m)
        x = np.empty((m, dim), np.float32)
        for s in range(0, m, 1 << 17):
            e = min(m, s + (1 << 17))
            x[s:e] = centres[ids[s:e]] + (noise / np.sqrt(dim)) * rng.standard_normal((e - s, dim), dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x, ids

    x, ids = draw(n)
    q, _ = draw(n_queries)
    return x, ids, q


def recall(rows: np.ndarray, exact: np.ndarray, k: int) -> float:
    if k == 1:
        return float(np.mean(rows[:, 0] == exact[:, 0]))
    return float(np.mean([len(set(a[:k].tolist()) & set(b[:k].tolist())) / k for a, b in zip(rows, exact)]))


def timed_search(g: Gallery, q: np.ndarray, k: int, repeat: int = 1, **kw):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = g.search_rows(q, k, **kw)
        best = min(best, time.perf_counter() - t)
    return best, out


def single_qps(g: Gallery, q: np.ndarray, k: int, limit: int, budget_s: float = 10.0) -> tuple[float, int]:
    g.search_rows(q[:1], k)  # warm-up
    t0 = time.perf_counter()
    n = 0
    for i in range(min(limit, q.shape[0])):
        g.search_rows(q[i:i + 1], k)
        n += 1
        if time.perf_counter() - t0 > budget_s:
            break
    return n / (time.perf_counter() - t0), n


def bench_size(n: int, args, console: Console) -> dict:
    x, ids, q = synthetic(n, args.dim, args.per_id, args.noise, args.queries, args.seed)
    rows_out, sweeps = [], {}
    exact = None
    for kind in KINDS:
        large = n >= args.large
        params = IndexParams(hnsw_m=args.hnsw_m_large if large else args.hnsw_m,
                             ef_construction=args.ef_construction_large if large else args.ef_construction)
        t = time.perf_counter()
        g = Gallery.build(x, ids.tolist(), kind=kind, params=params)
        build_s = time.perf_counter() - t
        batch_s, (_, rows) = timed_search(g, q, 10, repeat=2 if n <= 100_000 else 1)
        if kind == "flat":
            exact = rows
        sqps, nsingle = single_qps(g, q, 10, args.single)
        row = {"kind": g.kind, "size": n, "params": {k: v for k, v in g.params.to_dict().items()
                                                     if v is not None and k != "seed"},
               "build_s": build_s, "batch_qps": q.shape[0] / batch_s, "single_qps": sqps, "single_queries": nsingle,
               "recall_at_1": recall(rows, exact, 1), "recall_at_10": recall(rows, exact, 10),
               "index_bytes": g.index_bytes(), "fallback": g.fallback}
        rows_out.append(row)
        console.print(f"  {n:>8} {kind:6s} build {build_s:7.2f} s  batch {row['batch_qps']:9.0f} q/s  single "
                      f"{sqps:8.0f} q/s  R@1 {row['recall_at_1']:.3f}  R@10 {row['recall_at_10']:.3f}  "
                      f"{row['index_bytes'] / 2**20:8.1f} MiB")
        if kind in SWEEP:
            name, values = SWEEP[kind]
            pts = []
            for v in values:
                s, (_, r) = timed_search(g, q, 10, **{name: v})
                pts.append({name: v, "batch_qps": q.shape[0] / s, "recall_at_10": recall(r, exact, 10),
                            "recall_at_1": recall(r, exact, 1)})
            sweeps[kind] = {"parameter": name, "points": pts}
        del g
        gc.collect()
    flat = rows_out[0]
    for r in rows_out:
        r["vs_flat"] = {"build": r["build_s"] / flat["build_s"], "batch_qps": r["batch_qps"] / flat["batch_qps"],
                        "single_qps": r["single_qps"] / flat["single_qps"], "memory": r["index_bytes"] / flat["index_bytes"]}
    return {"size": n, "rows": rows_out, "sweeps": sweeps, "flat_qps": flat["batch_qps"]}


def table(results: list[dict]) -> Table:
    t = Table(title="gallery index kinds (recall vs exact flat; x = ratio to flat)")
    for c in ("N", "kind", "build s", "batch q/s", "x", "single q/s", "x", "R@1", "R@10", "MiB", "x mem"):
        t.add_column(c, justify="right")
    for res in results:
        for r in res["rows"]:
            v = r["vs_flat"]
            t.add_row(f"{r['size']:,}", r["kind"], f"{r['build_s']:.2f}", f"{r['batch_qps']:,.0f}", f"{v['batch_qps']:.1f}",
                      f"{r['single_qps']:,.0f}", f"{v['single_qps']:.1f}", f"{r['recall_at_1']:.3f}",
                      f"{r['recall_at_10']:.3f}", f"{r['index_bytes'] / 2**20:.1f}", f"{v['memory']:.2f}")
    return t


def markdown(results: list[dict]) -> str:
    lines = ["| N | kind | build s | batch q/s | × flat | single q/s | × flat | R@1 | R@10 | index MiB | × flat |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for res in results:
        for r in res["rows"]:
            v = r["vs_flat"]
            lines.append(f"| {r['size']:,} | {r['kind']} | {r['build_s']:.2f} | {r['batch_qps']:,.0f} | "
                         f"{v['batch_qps']:.1f} | {r['single_qps']:,.0f} | {v['single_qps']:.1f} | "
                         f"{r['recall_at_1']:.3f} | {r['recall_at_10']:.3f} | {r['index_bytes'] / 2**20:.1f} | "
                         f"{v['memory']:.2f} |")
    lines += ["", "Cheapest swept setting reaching recall@10 >= 0.95 (batch queries/s):", "",
              "| N | kind | setting | R@10 | batch q/s | × flat |", "|---|---|---|---|---|---|"]
    for res in results:
        for kind, sw in res["sweeps"].items():
            ok = [p for p in sw["points"] if p["recall_at_10"] >= 0.95]
            if ok:
                p = max(ok, key=lambda p: p["batch_qps"])
                lines.append(f"| {res['size']:,} | {kind} | {sw['parameter']} {p[sw['parameter']]} | "
                             f"{p['recall_at_10']:.3f} | {p['batch_qps']:,.0f} | {p['batch_qps'] / res['flat_qps']:.1f} |")
            else:
                lines.append(f"| {res['size']:,} | {kind} | none swept (best R@10 "
                             f"{max(p['recall_at_10'] for p in sw['points']):.3f}) | | | |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    from mvd_edge.core.plots import figure, save

    fig, axes = figure(ncols=len(results), figsize=(5.2 * len(results), 4.2), squeeze=False)
    if fig is None:
        return
    for ax, res in zip(axes[0], results):
        for kind, sw in res["sweeps"].items():
            pts = sw["points"]
            ax.plot([p["recall_at_10"] for p in pts], [p["batch_qps"] for p in pts], marker="o",
                    label=f"{kind} ({sw['parameter']} {pts[0][sw['parameter']]}..{pts[-1][sw['parameter']]})")
        ax.axhline(res["flat_qps"], color="k", ls="--", lw=1, label="flat (exact)")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10 vs exact")
        ax.set_ylabel("queries/s (batch of queries)")
        ax.set_title(f"N = {res['size']:,}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    save(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("runs/gallery"))
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000, help="queries per batch (and for recall)")
    ap.add_argument("--single", type=int, default=300, help="at most this many one-at-a-time queries (10 s cap)")
    ap.add_argument("--per-id", type=int, default=10, help="gallery entries per synthetic identity")
    ap.add_argument("--noise", type=float, default=0.75, help="noise norm around the identity centre")
    ap.add_argument("--hnsw-m", type=int, default=32)
    ap.add_argument("--ef-construction", type=int, default=80)
    ap.add_argument("--large", type=int, default=500_000, help="from this size on, build HNSW with the two below "
                                                                  "(a 1M-entry graph at M=32 takes too long on 2 cores)")
    ap.add_argument("--hnsw-m-large", type=int, default=16)
    ap.add_argument("--ef-construction-large", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    faiss = faiss_module()
    console = Console()
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    meta = {"version": 1, "command": "python benchmarks/gallery.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()),
            "data": f"synthetic clustered unit vectors, {args.dim}-d, {args.per_id} per identity, noise norm "
                    f"{args.noise}; the full recipe's 8192-d x 1M (32 GB float32) does not fit this machine, "
                    f"so a reduced dimension stands in for a PCA-reduced or smaller-recipe embedding",
            "dim": args.dim, "queries": args.queries, "k": 10, "faiss": faiss.__version__,
            "threads": faiss.omp_get_max_threads(), "machine": {"cpu": platform.processor() or platform.machine(),
                                                                 "system": platform.system()}}
    results = []
    t0 = time.perf_counter()
    for n in sizes:
        console.print(f"[bold]N = {n:,}[/] ({args.dim}-d)")
        results.append(bench_size(n, args, console))
        meta["seconds"] = time.perf_counter() - t0
        (out / "bench.json").write_text(json.dumps({**meta, "results": results}, indent=1))
    console.print(table(results))
    print(markdown(results))
    plot(results, out / "bench.png")
    console.print(f"wrote {out / 'bench.json'} and {out / 'bench.png'} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
