"""Matcher accuracy of one or more embedding engines on synthetic IR/RGB video pairs.

For each engine and each ``synth-video`` folder (with its ``gt.json`` and MOT box files):

* ``mvd-edge match`` with the ground-truth boxes at each threshold, scored by
  ``score-matches`` (pair precision, pair recall, IDF1, pipeline fps);
* the embedding-level diagnostic :func:`mvd_edge.eval.scoring.embedding_separability`
  (crop top-1 among the video's people across modalities, one-to-one identity
  assignment of whole-video descriptors): what any matcher could get out of the engine.

With ``--val-video`` (repeatable), one (threshold, margin) per engine is chosen on those
validation videos, blind to the ``--video`` (test) ones: ``--select target`` (default)
takes the setting that meets the target (pair precision >= 0.9 and recall >= 0.8) on the
most validation videos, then the best mean IDF1; ``--select idf1`` the best mean IDF1.
Its scores on the test videos are reported with whether each meets the target.

Prints Markdown tables and writes ``OUT/matcher_eval.json`` (``{"version": 2, "results":
[...test...], "validation": [...], "chosen": [...], "target", "select"}``; version 1, a
bare list of results, had no validation).

    for k in 0 1 2 3; do mvd-edge synth-video --out runs/mvid$k --seed $k; done
    python scripts/matcher_eval.py --engine runs/demo/engine/model.int8-cpu.ort.onnx \\
        --video runs/mvid0 --video runs/mvid1 --val-video runs/mvid2 --val-video runs/mvid3 \\
        --thresholds 0.2,0.3,0.4,0.5 --margins 0,0.1 --out runs/matcher_eval
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from mvd_edge.eval.scoring import best_setting, embedding_separability, load_ground_truth, meets_target, score_matches
from mvd_edge.match.config import MatcherConfig, resolve
from mvd_edge.match.detect import make_detector
from mvd_edge.match.pipeline import run_match
from mvd_edge.runtime import load_embedder

TARGET = (0.9, 0.8)  # pair precision, pair recall


def evaluate(engine: Path, emb, video: Path, thresholds: list[float] | None, margins: list[float], out: Path,
             detector: str | None = None) -> dict:
    """The matcher grid and the embedding diagnostic of one engine (``emb``, loaded from ``engine``) on one video.

    ``thresholds=None``: the engine's own operating point (its sidecar, as ``mvd-edge match``
    uses it unless ``association.threshold`` is set). ``detector``: boxes from that detector (e.g. ``auto``)
    instead of the ground truth."""
    gt = load_ground_truth(video)
    mots = {s: video / gt["streams"][s]["mot"] for s in ("ir", "rgb")}
    vids = {s: video / gt["streams"][s]["video"] for s in ("ir", "rgb")}
    rows = []
    if thresholds is None:  # the sidecar's point, fast pairing included
        base = resolve(MatcherConfig(), emb.info).config
        grid = [(base.association.threshold, base.association.margin)]
    else:
        base = MatcherConfig()
        grid = [(th, mg) for mg in margins for th in thresholds]
    for th, mg in grid:
        dets = {s: make_detector(detector=detector, modality=s) if detector else make_detector(boxes=mots[s])
                for s in ("ir", "rgb")}
        events = out / f"events-{engine.parent.name}-{engine.stem}-{video.name}-{detector or 'gt'}-{th}-{mg}.jsonl"
        config = base.updated({"association.threshold": th, "association.margin": mg})
        res = run_match(str(vids["ir"]), str(vids["rgb"]), emb, dets, config=config, events=events, status=False)
        sc = score_matches(events, video / "gt.json")
        rows.append({"threshold": th, "margin": mg, "precision": sc["precision"], "recall": sc["recall"],
                     "idf1": sc["idf1"], "fps": res.get("fps"), "boxes": detector or "ground truth",
                     "threshold_source": "engine sidecar" if thresholds is None else "grid"})
    sep = embedding_separability(emb, video)
    return {"engine": str(engine), "video": str(video), "seed": gt.get("seed"), "people": gt.get("n_ids"),
            "match": rows, "separability": sep}


def _engine_name(engine: str) -> str:
    return f"{Path(engine).parent.name}/{Path(engine).name}"


def _diagnostic(sep: dict) -> tuple[str, str]:
    top1 = f"{sep['crop_top1']['ir->rgb']:.2f} / {sep['crop_top1']['rgb->ir']:.2f} (chance {sep['chance']:.2f})"
    assigned = f"{round(sep['identity_assignment'] * sep['identities'])}/{sep['identities']}"
    if sep.get("misassigned"):
        assigned += " (IR→RGB " + ", ".join(f"{a}→{b}" for a, b in sep["misassigned"]) + ")"
    if sep.get("look_alikes"):
        assigned += "; look-alikes " + ", ".join(f"{a}&{b}" for a, b in sep["look_alikes"])
    return top1, assigned


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--engine", type=Path, action="append", required=True, help="embedder file (repeatable)")
    ap.add_argument("--video", type=Path, action="append", required=True, help="synth-video folder (repeatable)")
    ap.add_argument("--val-video", type=Path, action="append", default=[],
                    help="validation synth-video folder (repeatable): choose the setting on these, report --video")
    ap.add_argument("--thresholds", default="0.3,0.5",
                    help="comma-separated cosine thresholds, or 'sidecar': each engine's own operating point "
                         "(threshold and margin from calibrate-threshold; --margins is then ignored)")
    ap.add_argument("--detector", default=None,
                    help="detect people with this detector (e.g. auto) instead of the ground-truth boxes")
    ap.add_argument("--margins", default="0", help="comma-separated margins over the runner-up (0 = off)")
    ap.add_argument("--select", choices=("target", "idf1"), default="target",
                    help="how the setting is chosen on the validation videos (see above)")
    ap.add_argument("--out", type=Path, default=Path("runs/matcher_eval"))
    args = ap.parse_args()
    overlap = {v.resolve() for v in args.video} & {v.resolve() for v in args.val_video}
    if overlap:
        raise SystemExit(f"error: a video cannot be both --video and --val-video: {', '.join(map(str, overlap))}")
    try:
        thresholds = None if args.thresholds == "sidecar" else \
            [float(t) for t in args.thresholds.split(",") if t.strip()]
        margins = [float(t) for t in args.margins.split(",") if t.strip()]
    except ValueError as exc:
        raise SystemExit(f"error: --thresholds/--margins take comma-separated numbers ({exc})") from None
    args.out.mkdir(parents=True, exist_ok=True)
    results, validation = [], []
    for e in args.engine:
        try:
            emb = load_embedder(e)  # once per engine: the matcher runs do not change it
        except (OSError, ValueError, RuntimeError) as exc:  # missing/corrupt engine
            raise SystemExit(f"error: {exc}") from None
        for v, into, role in [(v, results, "test") for v in args.video] + \
                [(v, validation, "validation") for v in args.val_video]:
            n = 1 if thresholds is None else len(thresholds) * len(margins)
            print(f"{e} on {v}: {n} matcher runs + the embedding diagnostic ...", flush=True)
            try:
                into.append({**evaluate(e, emb, v, thresholds, margins, args.out, args.detector), "role": role})
            except (OSError, ValueError, RuntimeError) as exc:  # missing/corrupt video, bad ground truth
                raise SystemExit(f"error: {exc}") from None
    chosen = []
    for e in args.engine:
        val = [r for r in validation if r["engine"] == str(e)]
        if not val:
            continue
        th, mg = best_setting([r["match"] for r in val], target=TARGET if args.select == "target" else None)
        for r in (r for r in results if r["engine"] == str(e)):
            m = next(m for m in r["match"] if (m["threshold"], m["margin"]) == (th, mg))
            chosen.append({"engine": str(e), "validation": [v["video"] for v in val], "threshold": th, "margin": mg,
                           "video": r["video"], "seed": r["seed"], "precision": m["precision"],
                           "recall": m["recall"], "idf1": m["idf1"],
                           "meets_target": meets_target(m, TARGET)})
    (args.out / "matcher_eval.json").write_text(json.dumps(
        {"version": 2, "results": results, "validation": validation, "chosen": chosen,
         "target": {"precision": TARGET[0], "recall": TARGET[1]},
         "select": args.select}, indent=1) + "\n")
    print("| engine | video seed | threshold | margin | pair precision | pair recall | IDF1 | fps "
          "| crop top-1 IR→RGB / RGB→IR | identities assigned |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results + validation:
        top1, assigned = _diagnostic(r["separability"])
        val = " (val)" if r["role"] == "validation" else ""
        for m in r["match"]:
            print(f"| {_engine_name(r['engine'])} | {r['seed']}{val} | {m['threshold']} | {m['margin']} "
                  f"| {m['precision']:.3f} | {m['recall']:.3f} | {m['idf1']:.3f} | {m['fps'] or 0:.0f} | {top1} "
                  f"| {assigned} |")
    if chosen:
        how = "most videos meeting the target, then best mean IDF1" if args.select == "target" else "best mean IDF1"
        print(f"\nOne setting per engine, chosen on the validation videos ({how}), applied to the test videos; "
              f"target: pair precision >= {TARGET[0]} and recall >= {TARGET[1]}\n")
        print("| engine | validation seeds | threshold | margin | video seed | pair precision | pair recall | IDF1 "
              "| target met |")
        print("|---|---|---|---|---|---|---|---|---|")
        seeds = {r["video"]: r["seed"] for r in validation}
        for c in chosen:
            print(f"| {_engine_name(c['engine'])} | {','.join(str(seeds[v]) for v in c['validation'])} "
                  f"| {c['threshold']} | {c['margin']} | {c['seed']} | {c['precision']:.3f} | {c['recall']:.3f} "
                  f"| {c['idf1']:.3f} | {'yes' if c['meets_target'] else 'no'} |")
    print(f"\nJSON: {args.out / 'matcher_eval.json'}")


if __name__ == "__main__":
    main()
