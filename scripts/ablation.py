"""Loss ablation on synthetic data: CE+metric, +VSD, +VSD+VCD, +VSD+VCD+VML (same seeds, same data).

Each variant is trained from scratch with each seed on the same synthetic data set (the
data seed is fixed; the seed changes initialisation and sampling), best checkpoint chosen on
the validation identities, then evaluated on the test identities (SYSU all-search,
single-shot, 10 trials). Prints a Markdown table (mean ± std over seeds) and writes JSON.

    python scripts/ablation.py --out runs/ablation --seeds 0,1,2 --epochs 12

The first row is the untrained network (same seeds), the floor the trained rows are read against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mvd_edge.config import load_train_config
from mvd_edge.train.trainer import Trainer, ensure_synthetic, run_training

VARIANTS: dict[str, list[str]] = {
    "CE + metric": ["loss.dml=0", "loss.vsd=0", "loss.vcd=0", "loss.vml=0"],
    "+ VSD": ["loss.dml=0", "loss.vcd=0", "loss.vml=0"],
    "+ VSD + VCD": ["loss.dml=0", "loss.vml=0"],
    "+ VSD + VCD + VML": ["loss.dml=0"],
}
SETTING = "sysu-all-single"


def untrained(cfg) -> dict:
    """The same network with its initial weights (the trainer's seeded init), scored like the rest."""
    tr = Trainer(cfg, progress=False)
    return tr.test_model(tr.model, [SETTING])[SETTING]


def row(seed: int, r: dict, best_epoch: int) -> dict:
    return {"seed": seed, "rank1": r["rank1"]["mean"], "mAP": r["mAP"]["mean"], "mINP": r["mINP"]["mean"],
            "best_epoch": best_epoch}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("runs/ablation"))
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--set", dest="overrides", action="append", default=[], help="extra config override key=value")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    data_root = args.out / "synthetic"
    base = [f"optim.epochs={args.epochs}", f"data.root={data_root}", *args.overrides]
    ensure_synthetic(data_root, load_train_config(None, base + [f"out={args.out}"]))
    results: dict = {"untrained": []}
    for seed in seeds:
        r = row(seed, untrained(load_train_config(None, base + [f"seed={seed}",
                                                                f"out={args.out / 'untrained' / f'seed{seed}'}"])), 0)
        results["untrained"].append(r)
        print(f"{'untrained':>20} seed {seed}: R1 {r['rank1']:.2f} mAP {r['mAP']:.2f}", flush=True)
    for name, extra in VARIANTS.items():
        results[name] = []
        for seed in seeds:
            out = args.out / name.replace(" ", "").replace("+", "_") / f"seed{seed}"
            cfg = load_train_config(None, base + extra + [f"seed={seed}", f"out={out}"])
            summary = run_training(cfg, progress=False)
            r = row(seed, summary["test"][SETTING], summary["best"]["epoch"])
            results[name].append(r)
            print(f"{name:>20} seed {seed}: R1 {r['rank1']:.2f} mAP {r['mAP']:.2f} mINP {r['mINP']:.2f}", flush=True)
            (args.out / "ablation.json").write_text(json.dumps({"setting": SETTING, "base": base, "results": results},
                                                               indent=2))
    lines = [f"| variant | Rank-1 | mAP | mINP |  ({SETTING}, mean ± std over seeds {args.seeds})", "|---|---|---|---|"]
    for name, rows in results.items():
        cell = lambda k: f"{np.mean([r[k] for r in rows]):.2f} ± {np.std([r[k] for r in rows]):.2f}"  # noqa: E731
        lines.append(f"| {name} | {cell('rank1')} | {cell('mAP')} | {cell('mINP')} |")
    table = "\n".join(lines)
    print(table)
    (args.out / "ablation.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
