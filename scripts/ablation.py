"""Paired loss ablation on synthetic data: which VSD/VCD/VML recipe helps, with what confidence.

Every row is trained from scratch with every seed on the same synthetic data set (the data
seed is fixed; the training seed sets initialisation, sampling and augmentation, and is the
same for every row, so row differences per seed are *paired*). The checkpoint is chosen on the
validation identities and scored on the unseen test identities (SYSU all-search, single-shot,
10 gallery trials). The report gives each row's mean ± std and, per seed, its change in
Rank-1 against the reference row (``+ VSD`` by default) with the standard error of that
paired change, plus each term's shared-trunk gradient norm as a fraction of CE's (mean over
epochs, from the runs' ``log.csv``).

    python scripts/ablation.py --out runs/ablation --rows coarse --seeds 0,1 --epochs 12 --set synth.n_ids=100
    python scripts/ablation.py --out runs/ablation_full --rows "reid,+vsd,cross-modal:0.3:ramp" --seeds 0,1,2,3,4

Rows (``--rows``: names separated by commas, or a preset: ``coarse``, ``pairs``, ``weights``):

* ``reid``           CE + metric + DML (the paper's L_ReID, no VSD/VCD/VML)
* ``+vsd``           + VSD on all four observations (the reference row)
* ``+vsd-specific``  + VSD on the rgb and ir observations only (the release's placement)
* ``release``        the release's recipe and KL form: VSD (specific) + VCD (shared pair), KL with
                     probabilities for log-probabilities, no VML (``loss.kl_form=release``)
* ``default``        whatever ``mvd-edge train`` trains by default
* ``<pairs>:<w>[:ramp][:t<T>]``  + VSD + VCD + VML at weight w on ``loss.vcd_pairs=<pairs>``
                     (shared | both | cross-modal | cross-all), ramped in over the first half of
                     training (``loss.ramp=0.5``) with ``:ramp``, at temperature T with ``:tT``

Finished runs (``<out>/<row>/seed<k>/result.json``) are reused, so an interrupted sweep
continues where it stopped and a later call can add rows or seeds. Writes ``ablation.json``,
``ablation.md`` and ``ablation.png`` (paired change in Rank-1 per row with its standard error).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import re
import time
from pathlib import Path

import numpy as np

from mvd_edge.core.config import VCD_PAIRINGS, load_train_config
from mvd_edge.data.synthetic import ensure_synthetic
from mvd_edge.train.trainer import Trainer, run_training

SETTING = "sysu-all-single"
NAMED: dict[str, list[str]] = {
    "reid": ["loss.vsd=0", "loss.vcd=0", "loss.vml=0"],
    "+vsd": ["loss.vcd=0", "loss.vml=0"],
    "+vsd-specific": ["loss.vsd_on=specific", "loss.vcd=0", "loss.vml=0"],
    "release": ["loss.kl_form=release", "loss.vsd_on=specific", "loss.vcd_pairs=shared", "loss.vml=0"],
    "default": [],
}
PRESETS: dict[str, list[str]] = {
    "coarse": ["reid", "+vsd", "release", "both:2", "both:0.3:ramp", "shared:0.3:ramp", "cross-modal:0.1:ramp",
               "cross-modal:0.3:ramp", "cross-modal:1:ramp", "cross-modal:0.3", "cross-all:0.3:ramp"],
    "pairs": [f"{p}:0.3:ramp" for p in VCD_PAIRINGS],
    "weights": [f"cross-modal:{w}:ramp" for w in (0.05, 0.1, 0.3, 1, 2)],
}
VARIANT = re.compile(rf"^(?P<pairs>{'|'.join(map(re.escape, VCD_PAIRINGS))}):(?P<w>[0-9.]+)(?P<opts>(:[a-z0-9.]+)*)$")


def row_overrides(name: str) -> list[str]:
    """The ``--set`` overrides of a row name (see the module docstring); ValueError for an unknown name."""
    if name in NAMED:
        return list(NAMED[name])
    m = VARIANT.match(name)
    if not m:
        raise ValueError(f"unknown ablation row {name!r}: use {', '.join(NAMED)} or <pairs>:<weight>[:ramp][:tT]")
    w = float(m["w"])
    out = [f"loss.vcd_pairs={m['pairs']}", f"loss.vcd={w}", f"loss.vml={w}"]
    for opt in filter(None, m["opts"].split(":")):
        if opt == "ramp":
            out.append("loss.ramp=0.5")
        elif re.fullmatch(r"t[0-9.]+", opt):
            out.append(f"loss.temperature={float(opt[1:])}")
        else:
            raise ValueError(f"ablation row {name!r}: unknown option {opt!r} (use ramp or tT)")
    return out


def expand_rows(spec: str) -> list[str]:
    rows: list[str] = []
    for part in (p.strip() for p in spec.split(",")):
        for name in PRESETS.get(part, [part]):
            row_overrides(name)  # validate early
            if name not in rows:
                rows.append(name)
    return rows


def run_dir(out: Path, name: str, seed: int) -> Path:
    safe = re.sub(r"[^A-Za-z0-9.+-]", "_", name)
    return out / "runs" / safe / f"seed{seed}"


def grad_means(log_csv: Path) -> dict[str, float]:
    """Mean over epochs of the ``grad_<term>`` columns of a run's log.csv."""
    if not log_csv.is_file():
        return {}
    with open(log_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for key in (rows[0] if rows else {}):
        if key.startswith("grad_"):
            vals = [float(r[key]) for r in rows if r.get(key) not in (None, "", "nan")]
            vals = [v for v in vals if math.isfinite(v)]
            if vals:
                out[key[5:]] = float(np.mean(vals))
    return out


def train_row(base: list[str], out: Path, name: str, seed: int) -> dict:
    """Train (or reuse) one row x seed; returns its result dict."""
    d = run_dir(out, name, seed)
    done = d / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    cfg = load_train_config(None, base + row_overrides(name) + [f"seed={seed}", f"out={d}"])
    t0 = time.perf_counter()
    summary = run_training(cfg, progress=False, overwrite=True)  # an unfinished row (no result.json) starts over
    r = summary["test"][SETTING]
    res = {"row": name, "seed": seed, "rank1": r["rank1"]["mean"], "mAP": r["mAP"]["mean"],
           "mINP": r["mINP"]["mean"], "best_epoch": summary["best"]["epoch"], "val_rank1": summary["best"]["rank1"],
           "minutes": (time.perf_counter() - t0) / 60, "grad_fraction": grad_means(d / "log.csv"),
           "overrides": row_overrides(name)}
    done.write_text(json.dumps(res, indent=2))
    return res


def untrained_row(base: list[str], out: Path, seed: int) -> dict:
    d = run_dir(out, "untrained", seed)
    done = d / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    tr = Trainer(load_train_config(None, base + [f"seed={seed}", f"out={d}"]), progress=False)
    r = tr.test_model(tr.model, [SETTING])[SETTING]
    res = {"row": "untrained", "seed": seed, "rank1": r["rank1"]["mean"], "mAP": r["mAP"]["mean"],
           "mINP": r["mINP"]["mean"], "best_epoch": 0}
    d.mkdir(parents=True, exist_ok=True)
    done.write_text(json.dumps(res, indent=2))
    return res


def paired(rows: dict[str, list[dict]], ref: str, key: str = "rank1") -> dict[str, dict]:
    """Per row: paired change of ``key`` against ``ref`` over the seeds both have (mean, SE, n, per seed)."""
    by_seed = {r["seed"]: r[key] for r in rows.get(ref, [])}
    out = {}
    for name, rs in rows.items():
        diffs = {r["seed"]: r[key] - by_seed[r["seed"]] for r in rs if r["seed"] in by_seed}
        d = np.array(list(diffs.values()), dtype=float)
        se = float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else float("nan")
        out[name] = {"mean": float(d.mean()) if len(d) else float("nan"), "se": se, "n": len(d),
                     "per_seed": {str(k): float(v) for k, v in sorted(diffs.items())}}
    return out


def summarise(rows: dict[str, list[dict]], ref: str) -> dict:
    stats = {}
    for name, rs in rows.items():
        stats[name] = {k: {"mean": float(np.mean([r[k] for r in rs])), "std": float(np.std([r[k] for r in rs]))}
                       for k in ("rank1", "mAP", "mINP")}
        grads: dict[str, list[float]] = {}
        for r in rs:
            for k, v in r.get("grad_fraction", {}).items():
                grads.setdefault(k, []).append(v)
        stats[name]["grad_fraction"] = {k: float(np.mean(v)) for k, v in grads.items()}
        stats[name]["seeds"] = [r["seed"] for r in rs]
    return {"stats": stats, "paired_rank1": paired(rows, ref, "rank1"), "paired_mAP": paired(rows, ref, "mAP")}


def table(rows: dict[str, list[dict]], summary: dict, ref: str, header: str) -> str:
    lines = [header, "",
             f"| row | Rank-1 | mAP | mINP | ΔRank-1 vs {ref} (paired, ± SE) | per-seed ΔRank-1 | ΔmAP | "
             "trunk grad / CE (vsd, vcd, vml) |",
             "|---|---|---|---|---|---|---|---|"]
    for name in rows:
        s, p, pm = summary["stats"][name], summary["paired_rank1"][name], summary["paired_mAP"][name]
        cell = lambda k: f"{s[k]['mean']:.2f} ± {s[k]['std']:.2f}"  # noqa: E731
        if name == ref or p["n"] == 0:
            delta, per, dm = "reference" if name == ref else "–", "", ""
        else:
            delta = f"{p['mean']:+.2f} ± {p['se']:.2f}" if p["n"] > 1 else f"{p['mean']:+.2f}"
            per = " ".join(f"{v:+.1f}" for v in p["per_seed"].values())
            dm = f"{pm['mean']:+.2f}"
        g = s["grad_fraction"]
        grads = ", ".join(f"{g[k]:.2f}" if k in g else "–" for k in ("vsd", "vcd", "vml"))
        lines.append(f"| {name} | {cell('rank1')} | {cell('mAP')} | {cell('mINP')} | {delta} | {per} | {dm} | "
                     f"{grads} |")
    return "\n".join(lines)


def plot(summary: dict, ref: str, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n, p in summary["paired_rank1"].items() if n != ref and p["n"] > 0]
    if not names:
        return
    means = [summary["paired_rank1"][n]["mean"] for n in names]
    ses = [np.nan_to_num(summary["paired_rank1"][n]["se"]) for n in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    y = np.arange(len(names))
    colors = ["tab:green" if m - s > 0 else "tab:red" if m + s < 0 else "tab:gray" for m, s in zip(means, ses)]
    ax.barh(y, means, xerr=ses, color=colors, alpha=0.8, capsize=3)
    for n, yy in zip(names, y):
        pts = list(summary["paired_rank1"][n]["per_seed"].values())
        ax.scatter(pts, [yy] * len(pts), color="k", s=10, zorder=3)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlabel(f"paired change in test Rank-1 vs '{ref}' (bar: mean ± SE; dots: seeds)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--rows", default="coarse", help="row names or presets, comma-separated (see above)")
    ap.add_argument("--ref", default="+vsd", help="the row paired changes are measured against")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--untrained", action="store_true", help="add the untrained network as a floor row")
    ap.add_argument("--report", action="store_true",
                    help="train nothing: tabulate the finished runs under --out (rows may have fewer seeds)")
    ap.add_argument("--dest", type=Path, default=None, help="where ablation.json/.md/.png go (default: --out)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value (all rows)")
    args = ap.parse_args()
    try:
        names = expand_rows(args.rows)
        seeds = [int(s) for s in args.seeds.split(",")]
    except ValueError as exc:
        ap.error(str(exc))
    if args.ref not in names:
        names.insert(0, args.ref)
    data_root = args.out / "synthetic"
    base = [f"optim.epochs={args.epochs}", f"data.root={data_root}", *args.overrides]
    if args.report:
        report(args.out, names, seeds, args.ref, base, args.overrides, args.dest or args.out)
        return
    ensure_synthetic(data_root, load_train_config(None, base + [f"out={args.out}"]).synth)
    rows: dict[str, list[dict]] = {}
    if args.untrained:
        rows["untrained"] = [untrained_row(base, args.out, s) for s in seeds]
    header = (f"Paired ablation, {SETTING}, test ids unseen, checkpoint chosen on validation ids; seeds {args.seeds}; "
              f"settings: {' '.join(base[:1] + args.overrides)}")
    for seed in seeds:  # seed-major: every row gets a paired result early
        for name in names:
            r = train_row(base, args.out, name, seed)
            rows.setdefault(name, []).append(r)
            print(f"{name:>24} seed {seed}: R1 {r['rank1']:.2f} mAP {r['mAP']:.2f} mINP {r['mINP']:.2f} "
                  f"(best epoch {r['best_epoch']}, {r.get('minutes', 0):.1f} min)", flush=True)
            summary = summarise(rows, args.ref)
            (args.out / "ablation.json").write_text(json.dumps(
                {"setting": SETTING, "base": base, "ref": args.ref, "rows": {n: row_overrides(n) for n in names},
                 "results": rows, **summary}, indent=2))
    args.out.mkdir(parents=True, exist_ok=True)
    write_outputs(args.dest or args.out, rows, args.ref, header, base, names)


def write_outputs(out: Path, rows: dict[str, list[dict]], ref: str, header: str, base: list[str],
                  names: list[str]) -> None:
    summary = summarise(rows, ref)
    (out / "ablation.json").write_text(json.dumps(
        {"setting": SETTING, "base": base, "ref": ref, "rows": {n: row_overrides(n) for n in names if n in rows},
         "results": rows, **summary}, indent=2))
    text = table(rows, summary, ref, header)
    print(text)
    (out / "ablation.md").write_text(text + "\n")
    plot(summary, ref, out / "ablation.png", header[:120])


def collect(out: Path, names: list[str], seeds: list[int]) -> dict[str, list[dict]]:
    """The finished runs (``result.json``) under ``out`` for these rows and seeds; rows with none are left out."""
    rows: dict[str, list[dict]] = {}
    for name in names:
        for seed in seeds:
            f = run_dir(out, name, seed) / "result.json"
            if f.is_file():
                rows.setdefault(name, []).append(json.loads(f.read_text()))
    return rows


def report(out: Path, names: list[str], seeds: list[int], ref: str, base: list[str], overrides: list[str],
           dest: Path) -> None:
    rows = collect(out, names, seeds)
    if ref not in rows:
        raise SystemExit(f"no finished runs of the reference row {ref!r} under {out}")
    counts = ", ".join(f"{n} {len(r)}" for n, r in rows.items())
    header = (f"Paired ablation, {SETTING}, test ids unseen, checkpoint chosen on validation ids; finished runs "
              f"(seeds per row: {counts}); settings: {' '.join(base[:1] + overrides)}")
    dest.mkdir(parents=True, exist_ok=True)
    write_outputs(dest, rows, ref, header, base, names)


if __name__ == "__main__":
    main()
