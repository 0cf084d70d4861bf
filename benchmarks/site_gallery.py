"""The site matcher's gallery of global identities: exact numpy search against the faiss shortlist.

For every size (``--sizes``, default 1k, 10k, 100k identities) an :class:`IdentityMemory` is
filled with synthetic identities: a random unit centre per person and one descriptor per
modality (centre + Gaussian noise, renormalised: IR and RGB of one person have a cosine of
about 0.7 to each other), ``--dim``-d (default 512: the demo's ``full``-recipe engine; the
student engines are 128-d). The queries are the ``--tracks`` (default 8) tracks of one RGB
camera, each a fresh noisy sample of a random person. Two things are timed, each on both
paths (``faiss_above`` = 10**9: exact numpy over every row; ``faiss_above`` = 0: the faiss
``IndexFlatIP`` shortlist of ``--shortlist`` rows per query and modality, re-scored exactly):

* ``similarities``: :meth:`IdentityMemory.similarities` of the 8 queries against one modality
  (the dense ``[T, rows]`` matrix; no change to the gallery between calls);
* ``identify``: one :meth:`SitePolicy._identify` step of the 8 tracks: both modalities
  scored, the Hungarian assignment, and each track's identity refreshed with its descriptor
  (so on the faiss path every step also re-indexes the rows it changed: ``remove_ids`` +
  ``add_with_ids``, what a running site pays).

Also: the time to build the faiss indexes (the first search above ``faiss_above``), and the
shortlist's agreement with exact search: the best-scoring identity per query (the matcher's
score, the better of the cross-modal and same-modality cosine minus its threshold), for
queries near a person (``near``) and random unit queries (``random``: no one is close, every
score is small, the hardest case for a shortlist), ``--agree`` batches of each.

Times are medians over ``--repeats`` calls after a warm-up. ``--blas``: the faiss identify
step again with faiss's process-wide ``distance_compute_blas_threshold`` set to 1 (faiss
scans the index once per query below 20 queries; with it lowered it uses one BLAS product for
the batch, like numpy). The matcher never changes that setting; the column shows what it
costs.

Prints a table and writes ``OUT/site_gallery.json``, ``OUT/table.md`` and ``OUT/site_gallery.png``.

    OMP_NUM_THREADS=1 python benchmarks/site_gallery.py --out-dir docs/site_gallery
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from mvd_edge.core.modality import Modality
from mvd_edge.gallery.index import faiss_module
from mvd_edge.gallery.memory import IdentityMemory
from mvd_edge.match.bank import FeatureBank
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detections, Detector
from mvd_edge.match.site import SiteCamera, _TrackState, site_matcher
from mvd_edge.match.sources import FramePacket
from mvd_edge.match.track import Track

EXACT, FAISS = 10**9, 0  # faiss_above for the two paths


class _Embedder:
    """Only what the site matcher asks of an embedder here: its dimension (the tracks come with descriptors)."""

    spec = None

    def __init__(self, dim: int):
        self.dim = dim


class _NoDetector(Detector):
    name = "none"
    has_ids = True

    def detect(self, image, frame_index: int) -> Detections:
        return Detections(np.zeros((0, 4), np.float32), np.zeros(0, np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def make_people(n: int, dim: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    centres = _unit(rng.standard_normal((n, dim), dtype=np.float32))
    noise = 0.65 / np.sqrt(dim)  # |noise| ~ 0.65: cos(IR, RGB) ~ 0.7, cos(descriptor, centre) ~ 0.84
    return {"centre": centres,
            "ir": _unit(centres + noise * rng.standard_normal((n, dim), dtype=np.float32)),
            "rgb": _unit(centres + noise * rng.standard_normal((n, dim), dtype=np.float32))}


def fill(people: dict[str, np.ndarray], faiss_above: int, shortlist: int) -> IdentityMemory:
    n, dim = people["centre"].shape
    table = IdentityMemory(dim, tuple(Modality), n, faiss_above=faiss_above, shortlist=shortlist)
    for g in range(n):
        table.update(g + 1, Modality.INFRARED, people["ir"][g], 0.8)
        table.update(g + 1, Modality.VISIBLE, people["rgb"][g], 0.8)
    return table


def near_queries(people: dict[str, np.ndarray], t: int, rng: np.random.Generator) -> np.ndarray:
    n, dim = people["centre"].shape
    who = rng.integers(0, n, t)
    return _unit(people["centre"][who] + (0.65 / np.sqrt(dim)) * rng.standard_normal((t, dim), dtype=np.float32))


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up (and, on the faiss path, the index build)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def one_camera(table: IdentityMemory, desc: np.ndarray, config: MatcherConfig):
    """The site policy of a one-camera (RGB) matcher over ``table`` whose ``len(desc)`` tracks have the descriptors
    ``desc``, and one identification step of them."""
    matcher = site_matcher(_Embedder(table.dim), [SiteCamera("rgb0", Modality.VISIBLE)], {"rgb0": _NoDetector()},
                           config)
    m = matcher.policy
    m.gallery = table
    m.next_gid = max(table.row) + 1
    bank = matcher.banks["rgb0"] = FeatureBank(table.dim, config.bank.ema_momentum, config.bank.last_n)
    tracks = [Track(k + 1, np.array([0, 0, 10, 30], np.float32), 1.0) for k in range(len(desc))]
    for tr, d in zip(tracks, desc):
        for _ in range(config.bank.min_features):
            bank.update(tr.id, d)
        m.states["rgb0"][tr.id] = _TrackState()
    packet = FramePacket(0, 0.0, np.zeros((1, 1, 3), np.uint8))
    return m, lambda: m._identify("rgb0", packet, tracks)


def best_identities(table: IdentityMemory, queries: list[np.ndarray], config: MatcherConfig) -> list[np.ndarray]:
    """Per batch of queries, each query's best-scoring identity (the matcher's score; -1: none)."""
    m, _ = one_camera(table, queries[0][:1], config)
    out = []
    for q in queries:
        rows, score, _ = m._scores(Modality.VISIBLE, q, np.zeros(0, np.int64))
        best = rows[score.argmax(axis=1)]
        out.append(np.where(np.isfinite(score.max(axis=1)), table.gid[best], -1))
    return out


def bench_size(n: int, args, console: Console) -> dict:
    rng = np.random.default_rng(args.seed + n)
    t0 = time.perf_counter()
    people = make_people(n, args.dim, rng)
    table = fill(people, EXACT, args.shortlist)
    fill_s = time.perf_counter() - t0
    config = MatcherConfig().updated({"association.threshold": 0.5, "site.same_threshold": 0.6,
                                      "association.hysteresis": 2, "site.gallery_size": n})
    q = near_queries(people, args.tracks, rng)
    agree_sets = {"near": [near_queries(people, args.tracks, rng) for _ in range(args.agree)],
                  "random": [_unit(rng.standard_normal((args.tracks, args.dim), dtype=np.float32))
                             for _ in range(args.agree)]}
    row: dict = {"identities": n, "fill_s": round(fill_s, 2)}

    exact_best = {k: best_identities(table, v, config) for k, v in agree_sets.items()}
    row["similarities_exact_ms"] = median_ms(lambda: table.similarities(Modality.VISIBLE, q), args.repeats)
    _, step = one_camera(table, q, config)
    row["identify_exact_ms"] = median_ms(step, args.repeats)

    table.faiss_above = FAISS
    t0 = time.perf_counter()
    table.candidates(tuple(Modality), q[:1])  # builds both indexes
    row["faiss_build_s"] = round(time.perf_counter() - t0, 3)
    row["similarities_faiss_ms"] = median_ms(lambda: table.similarities(Modality.VISIBLE, q), args.repeats)
    _, step = one_camera(table, q, config)
    row["identify_faiss_ms"] = median_ms(step, args.repeats)
    if args.blas:
        faiss = faiss_module()
        old = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 1
        try:
            row["identify_faiss_blas_ms"] = median_ms(step, args.repeats)
        finally:
            faiss.cvar.distance_compute_blas_threshold = old
    faiss_best = {k: best_identities(table, v, config) for k, v in agree_sets.items()}
    for k in agree_sets:
        same = np.concatenate([a == b for a, b in zip(exact_best[k], faiss_best[k])])
        row[f"agree_{k}"] = float(same.mean())
        row[f"queries_{k}"] = int(same.size)
    rows_scored = table.candidates(tuple(Modality), q, np.zeros(0, np.int64))
    row["rows_scored_faiss"] = int(len(rows_scored))
    row["similarities_speedup"] = row["similarities_exact_ms"] / row["similarities_faiss_ms"]
    row["identify_speedup"] = row["identify_exact_ms"] / row["identify_faiss_ms"]
    for k in ("similarities_exact_ms", "similarities_faiss_ms", "identify_exact_ms", "identify_faiss_ms",
              "identify_faiss_blas_ms", "similarities_speedup", "identify_speedup"):
        if k in row:
            row[k] = round(row[k], 3)
    console.print(f"  {n:>8,}: similarities {row['similarities_exact_ms']:.2f} / {row['similarities_faiss_ms']:.2f} ms,"
                  f" identify {row['identify_exact_ms']:.2f} / {row['identify_faiss_ms']:.2f} ms (exact / faiss)")
    return row


def table_of(results: list[dict]) -> Table:
    t = Table(title="site gallery: exact numpy vs faiss shortlist (8 tracks per query batch; x = exact / faiss)")
    blas = any("identify_faiss_blas_ms" in r for r in results)
    cols = ["identities", "similarities exact ms", "faiss ms", "x", "identify exact ms", "faiss ms", "x"]
    cols += ["faiss+BLAS ms"] if blas else []
    cols += ["index build s", "rows scored", "agree near", "agree random"]
    for c in cols:
        t.add_column(c, justify="right")
    for r in results:
        cells = [f"{r['identities']:,}", f"{r['similarities_exact_ms']:.2f}", f"{r['similarities_faiss_ms']:.2f}",
                 f"{r['similarities_speedup']:.2f}", f"{r['identify_exact_ms']:.2f}", f"{r['identify_faiss_ms']:.2f}",
                 f"{r['identify_speedup']:.2f}"]
        cells += [f"{r['identify_faiss_blas_ms']:.2f}"] if blas else []
        cells += [f"{r['faiss_build_s']:.2f}", f"{r['rows_scored_faiss']:,}", f"{r['agree_near']:.3f}",
                  f"{r['agree_random']:.3f}"]
        t.add_row(*cells)
    return t


def markdown(results: list[dict]) -> str:
    """The table as Markdown (times in ms, medians; x = exact / faiss, above 1: faiss is faster)."""
    blas = any("identify_faiss_blas_ms" in r for r in results)
    head = ["identities", "similarities exact", "faiss", "x", "identify exact", "faiss", "x"]
    head += ["faiss, BLAS search", "x"] if blas else []
    head += ["index build s", "rows scored", "agree near", "agree random"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        cells = [f"{r['identities']:,}", f"{r['similarities_exact_ms']:.2f}", f"{r['similarities_faiss_ms']:.2f}",
                 f"{r['similarities_speedup']:.2f}", f"{r['identify_exact_ms']:.2f}", f"{r['identify_faiss_ms']:.2f}",
                 f"{r['identify_speedup']:.2f}"]
        if blas:
            cells += [f"{r['identify_faiss_blas_ms']:.2f}", f"{r['identify_exact_ms'] / r['identify_faiss_blas_ms']:.2f}"]
        cells += [f"{r['faiss_build_s']:.2f}", f"{r['rows_scored_faiss']:,}", f"{r['agree_near']:.3f}",
                  f"{r['agree_random']:.3f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    n = [r["identities"] for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, what in zip(axes, ("similarities", "identify")):
        ax.plot(n, [r[f"{what}_exact_ms"] for r in results], "o-", label="exact numpy")
        ax.plot(n, [r[f"{what}_faiss_ms"] for r in results], "s-", label="faiss shortlist")
        if what == "identify" and "identify_faiss_blas_ms" in results[0]:
            ax.plot(n, [r["identify_faiss_blas_ms"] for r in results], "^--", label="faiss shortlist, BLAS search")
        ax.set(xscale="log", yscale="log", xlabel="identities in the gallery", ylabel="ms (median)",
               title=f"{what} ({'one modality, dense [T, rows]' if what == 'similarities' else 'one step of 8 tracks'})")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default="docs/site_gallery")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--tracks", type=int, default=8)
    ap.add_argument("--shortlist", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--agree", type=int, default=25, help="query batches per agreement set")
    ap.add_argument("--blas", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    console = Console(width=200)
    faiss = faiss_module()
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    results = []
    meta = {"machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": os.cpu_count(),
                        "python": platform.python_version(), "numpy": np.__version__, "faiss": faiss.__version__,
                        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"), "faiss_omp_threads":
                        faiss.omp_get_max_threads()},
            "dim": args.dim, "tracks": args.tracks, "shortlist": args.shortlist, "repeats": args.repeats,
            "agree_batches": args.agree, "seed": args.seed,
            "command": "python benchmarks/site_gallery.py " + " ".join(
                f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "blas")
            + ("" if args.blas else " --no-blas")}
    for n in (int(s) for s in args.sizes.split(",")):
        results.append(bench_size(n, args, console))
        meta["load_average"] = {"start": [round(x, 2) for x in load0], "end": [round(x, 2) for x in os.getloadavg()]}
        meta["seconds"] = round(time.perf_counter() - t0, 1)
        (out / "site_gallery.json").write_text(json.dumps({**meta, "results": results}, indent=2) + "\n")
    console.print(table_of(results))
    (out / "table.md").write_text(markdown(results))
    if plot(results, out / "site_gallery.png"):
        console.print(f"wrote {out / 'site_gallery.json'} and {out / 'site_gallery.png'}")
    else:
        console.print(f"wrote {out / 'site_gallery.json'} (no matplotlib: no plot)")


if __name__ == "__main__":
    main()
