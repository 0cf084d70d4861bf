"""Copy a re-id model built by ``scripts/build_reid_synth.sh`` into the package as ``reid-synth`` (issue #33).

    python scripts/package_reid.py runs/reid-synth [--assets mvd_edge/assets]

Writes into ``--assets``:

* ``reid-synth.int8-cpu.ort.onnx`` + its sidecar (the operating point from ``calibrate-threshold``;
  build-machine paths reduced to file names): what ``mvd-edge match`` loads without ``--model``;
* ``reid-synth.onnx``: the student's FP32 graph (the reference of the INT8 parity test, and the
  graph ``build-engine`` turns into TensorRT / other engines);
* ``reid-synth.pt``: the student checkpoint without its optimizer, scheduler and RNG state
  (``model.pretrained=reid-synth`` starts a training from it);
* ``reid-synth.provenance.json``: the commands (``RUN/commands.log``, with the commit each ran at),
  the data seeds, the teacher's and student's metrics, the matcher's held-out score and the sha256
  and size of each file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import torch

from mvd_edge.assets import REID_SYNTH
from mvd_edge.eval.scoring import meets_target
from mvd_edge.runtime.sidecar import sha256_file, sidecar_path

#: what a checkpoint needs to load, export and start a training from; the rest is resume state
KEEP = ("format", "epoch", "model", "model_spec", "recipe", "preprocess", "label_map", "best", "student_of",
        "versions", "config")


def _metrics(results: Path) -> dict:
    data = json.loads(results.read_text())
    return {setting: {m: round(v[m]["mean"], 2) for m in ("rank1", "mAP", "mINP")} for setting, v in data.items()}


def _matcher(run: Path) -> dict | None:
    path = run / "matcher_eval" / "matcher_eval.json"
    if not path.is_file():
        return None
    report = json.loads(path.read_text())
    target = (report["target"]["precision"], report["target"]["recall"])  # matcher_eval's own
    rows = []
    for r in report["results"]:
        m = r["match"][0]  # --thresholds sidecar: one setting, the engine's own
        rows.append({"seed": r["seed"], "precision": round(m["precision"], 3), "recall": round(m["recall"], 3),
                     "idf1": round(m["idf1"], 3), "meets_target": meets_target(m, target)})
    return {"videos": "mvd-edge synth-video --seed K (6 people, 20 s), ground-truth boxes, threshold from the sidecar",
            "target": {"pair_precision": target[0], "pair_recall": target[1]},
            "met": sum(r["meets_target"] for r in rows), "of": len(rows), "per_video": rows}


def package(run: Path, assets: Path) -> dict:
    engine_dir = run / "engine"
    engine = engine_dir / f"{REID_SYNTH}.int8-cpu.ort.onnx"
    graph = engine_dir / f"{REID_SYNTH}.onnx"
    student = run / "student" / "best.pt"
    for need in (engine, sidecar_path(engine), graph, student, run / "commands.log"):
        if not need.is_file():
            sys.exit(f"error: {need} is missing: run scripts/build_reid_synth.sh {run} first")
    assets.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(engine, assets / engine.name)
    shutil.copyfile(graph, assets / graph.name)
    info = json.loads(sidecar_path(engine).read_text())
    info["source_onnx"] = Path(info["source_onnx"]).name  # no build-machine paths in the package
    info["operating_point"]["data"]["root"] = Path(info["operating_point"]["data"]["root"]).name
    sidecar_path(assets / engine.name).write_text(json.dumps(info, indent=2, sort_keys=True))
    state = torch.load(student, map_location="cpu", weights_only=True)
    torch.save({k: state[k] for k in KEEP if k in state}, assets / f"{REID_SYNTH}.pt")

    cfg = state["config"]  # the distillation run's: the teacher's data settings
    files = [engine.name, sidecar_path(engine).name, graph.name, f"{REID_SYNTH}.pt"]
    provenance = {
        "name": REID_SYNTH,
        "what": "one-pass student (recipe shared, tiny backbone) distilled from a three-branch MVD teacher; trained "
                "on synthetic people only (mvd-edge's renderer): a working default for the synthetic demo and a "
                "starting point, not a model for real cameras",
        "licence": "this project's own (trained here, no third-party weights)",
        "commands": (run / "commands.log").read_text().splitlines(),
        "data": {"train": {"renderer": "mvd-edge synth (SYSU layout, crops)", "n_ids": cfg["synth"]["n_ids"],
                           "seed": cfg["synth"]["seed"]},
                 "operating_point": {"n_ids": info["operating_point"]["identities"], "seed": 1000,
                                     "render": "scenes"}},
        "teacher": {"student_of": state["student_of"]},
        "metrics": {"student_test": _metrics(run / "student" / "test_results.json"),
                    "teacher_test": _metrics(run / "teacher" / "test_results.json"),
                    "operating_point": {k: info["operating_point"][k] for k in ("threshold", "margin", "precision",
                                                                                 "recall", "reached")},
                    "matcher": _matcher(run)},
        "files": {name: {"bytes": (assets / name).stat().st_size, "sha256": sha256_file(assets / name)}
                  for name in files},
    }
    (assets / f"{REID_SYNTH}.provenance.json").write_text(json.dumps(provenance, indent=1))
    return provenance


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="the folder scripts/build_reid_synth.sh built into")
    ap.add_argument("--assets", type=Path, default=Path(__file__).resolve().parent.parent / "mvd_edge" / "assets")
    args = ap.parse_args()
    p = package(args.run, args.assets)
    m = p["metrics"]["matcher"]
    print(f"packaged {REID_SYNTH} into {args.assets}: " + ", ".join(f"{n} {f['bytes'] / 1e6:.2f} MB"
                                                                   for n, f in p["files"].items())
          + (f"; matcher target met on {m['met']} of {m['of']} held-out pairs" if m else ""))


if __name__ == "__main__":
    main()
