"""Matcher accuracy of one or more embedding engines on synthetic IR/RGB video pairs.

For each engine and each ``synth-video`` folder (with its ``gt.json`` and MOT box files):

* ``mvd-edge match`` with the ground-truth boxes at each threshold, scored by
  ``score-matches`` (pair precision, pair recall, IDF1, pipeline fps);
* the embedding-level diagnostic :func:`mvd_edge.scoring.embedding_separability`
  (crop top-1 among the video's people across modalities, one-to-one identity
  assignment of whole-video descriptors): what any matcher could get out of the engine.

Prints a Markdown table and writes ``OUT/matcher_eval.json``.

    mvd-edge synth-video --out runs/mvid --seed 0 && mvd-edge synth-video --out runs/mvid1 --seed 1
    python scripts/matcher_eval.py --engine runs/demo/engine/model.int8-cpu.ort.onnx \\
        --video runs/mvid --video runs/mvid1 --thresholds 0.3,0.5 --margins 0,0.1 --out runs/matcher_eval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mvd_edge.match.detect import make_detector
from mvd_edge.match.pipeline import MatchConfig, run_match
from mvd_edge.runtime import load_embedder
from mvd_edge.scoring import embedding_separability, load_ground_truth, score_matches


def evaluate(engine: Path, video: Path, thresholds: list[float], margins: list[float], out: Path) -> dict:
    gt = load_ground_truth(video)
    mots = {s: video / gt["streams"][s]["mot"] for s in ("ir", "rgb")}
    vids = {s: video / gt["streams"][s]["video"] for s in ("ir", "rgb")}
    rows = []
    for mg in margins:
        for th in thresholds:
            emb = load_embedder(engine)
            dets = {s: make_detector(boxes=mots[s]) for s in ("ir", "rgb")}
            events = out / f"events-{engine.stem}-{video.name}-{th}-{mg}.jsonl"
            res = run_match(str(vids["ir"]), str(vids["rgb"]), emb, dets, config=MatchConfig(threshold=th, margin=mg),
                            events=events, status=False)
            sc = score_matches(events, video / "gt.json")
            rows.append({"threshold": th, "margin": mg, "precision": sc["precision"], "recall": sc["recall"],
                         "idf1": sc["idf1"], "fps": res.get("fps")})
    sep = embedding_separability(load_embedder(engine), video)
    return {"engine": str(engine), "video": str(video), "seed": gt.get("seed"), "people": gt.get("n_ids"),
            "match": rows, "separability": sep}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", type=Path, action="append", required=True, help="embedder file (repeatable)")
    ap.add_argument("--video", type=Path, action="append", required=True, help="synth-video folder (repeatable)")
    ap.add_argument("--thresholds", default="0.3,0.5", help="comma-separated cosine thresholds")
    ap.add_argument("--margins", default="0", help="comma-separated margins over the runner-up (0 = off)")
    ap.add_argument("--out", type=Path, default=Path("runs/matcher_eval"))
    args = ap.parse_args()
    try:
        thresholds = [float(t) for t in args.thresholds.split(",") if t.strip()]
        margins = [float(t) for t in args.margins.split(",") if t.strip()]
    except ValueError as exc:
        raise SystemExit(f"error: --thresholds/--margins take comma-separated numbers ({exc})") from None
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for e in args.engine:
        for v in args.video:
            print(f"{e} on {v}: {len(thresholds) * len(margins)} matcher runs + the embedding diagnostic ...", flush=True)
            try:
                results.append(evaluate(e, v, thresholds, margins, args.out))
            except (OSError, ValueError, RuntimeError) as exc:  # missing/corrupt engine or video, bad ground truth
                raise SystemExit(f"error: {exc}") from None
    (args.out / "matcher_eval.json").write_text(json.dumps(results, indent=1) + "\n")
    print("| engine | video seed | threshold | margin | pair precision | pair recall | IDF1 | fps "
          "| crop top-1 IR→RGB / RGB→IR | identities assigned |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        sep = r["separability"]
        top1 = f"{sep['crop_top1']['ir->rgb']:.2f} / {sep['crop_top1']['rgb->ir']:.2f} (chance {sep['chance']:.2f})"
        assigned = f"{round(sep['identity_assignment'] * sep['identities'])}/{sep['identities']}"
        for m in r["match"]:
            print(f"| {Path(r['engine']).parent.name}/{Path(r['engine']).name} | {r['seed']} | {m['threshold']} "
                  f"| {m['margin']} "
                  f"| {m['precision']:.3f} | {m['recall']:.3f} | {m['idf1']:.3f} | {m['fps'] or 0:.0f} | {top1} "
                  f"| {assigned} |")
    print(f"\nJSON: {args.out / 'matcher_eval.json'}")


if __name__ == "__main__":
    main()
