"""The site matcher on held-out synthetic sites: N cameras, scored per camera pair and globally.

For each seed a site is rendered (``mvd_edge.synth.site``: RGB and IR cameras at several places,
people walking between them, one camera optionally at half rate), matched with the engine's
sidecar thresholds (cross-modal and same-modality, as ``mvd-edge match --cameras`` uses them)
once on the ground-truth boxes and once with the default detectors, and scored with
``mvd_edge.eval.site_scoring.score_site``. Prints a Markdown table and writes
``OUT/site_eval.json``.

    python scripts/site_eval.py --engine runs/demo/engine/student.int8-cpu.ort.onnx \\
        --seeds 10,11,12 --out docs/site
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mvd_edge.core.modality import Modality
from mvd_edge.eval.site_scoring import score_site
from mvd_edge.match.config import load_matcher_config, resolve
from mvd_edge.match.detect import make_detector
from mvd_edge.match.runner import Runner
from mvd_edge.match.site import SiteCamera, site_matcher
from mvd_edge.match.sources import load_cameras
from mvd_edge.runtime import load_embedder
from mvd_edge.synth.site import write_synth_site


def run_site(emb, cameras_file: Path, events: Path, boxes: bool, sets: list[str]) -> dict:
    specs = load_cameras(cameras_file)
    cams = [SiteCamera(n, Modality.parse(sp.modality), sp) for n, sp in specs.items()]
    op = resolve(load_matcher_config(None, sets), emb.info, site=True)
    dets = {c.name: make_detector(c.spec.boxes if boxes else None, None, modality=c.modality.short,
                                  ssdlite_tiles=op.config.detector.tiles) for c in cams}
    cfg = op.config
    t0 = time.perf_counter()
    summary = Runner(site_matcher(emb, cams, dets, cfg), events=events).run()
    summary["wall_s"] = time.perf_counter() - t0
    summary["thresholds"] = {"threshold": cfg.association.threshold, "margin": cfg.association.margin,
                             "same_threshold": cfg.site.same_threshold, "source": op.source, "warnings": op.warnings}
    return summary


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", type=Path, required=True)
    ap.add_argument("--seeds", default="10,11,12")
    ap.add_argument("--rgb-cameras", type=int, default=2)
    ap.add_argument("--ir-cameras", type=int, default=2)
    ap.add_argument("--locations", type=int, default=2)
    ap.add_argument("--ids", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--size", default="240x426")
    ap.add_argument("--half-rate", default="ir1", help="a camera at half the frame rate ('' for none)")
    ap.add_argument("--out", type=Path, default=Path("runs/site_eval"))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a matcher setting, as `match --set` (e.g. detector.every=3); repeatable")
    ap.add_argument("--boxes", choices=("both", "gt", "auto"), default="both",
                    help="ground-truth boxes, the default detectors, or both")
    ap.add_argument("--sites", type=Path, help="where the sites are rendered (default: --out)")
    ap.add_argument("--reuse", action="store_true", help="keep a site already rendered there")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    emb = load_embedder(args.engine)
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        site = (args.sites or args.out) / f"site{seed}"
        fps = {args.half_rate: 7.5} if args.half_rate else 15.0
        if not (args.reuse and (site / "site.yaml").exists()):
            write_synth_site(site, rgb_cameras=args.rgb_cameras, ir_cameras=args.ir_cameras, locations=args.locations,
                             n_ids=args.ids, seconds=args.seconds, fps=fps, size=(h, w), seed=seed, overwrite=True)
        for boxes in {"both": (True, False), "gt": (True,), "auto": (False,)}[args.boxes]:
            name = "gt-boxes" if boxes else "auto"
            ev = args.out / f"events-{seed}-{name}.jsonl"
            summary = run_site(emb, site / ("site-boxes.yaml" if boxes else "site.yaml"), ev, boxes, args.set)
            score = score_site(ev, site)
            rows.append({"seed": seed, "boxes": name, "score": score, "summary": summary})
            tot = score["totals"]
            print(f"seed {seed} {name}: IDF1 {score['idf1']:.3f}, steps/s {summary['steps_per_s']}, "
                  f"global ids {summary['global_ids']} (people {args.ids})", flush=True)
            for kind in ("cross-modal", "same-modality"):
                t = tot.get(kind) or {}
                print(f"   {kind}: precision {t.get('precision')}, recall {t.get('recall')}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "site_eval.json").write_text(json.dumps({"engine": str(args.engine), "args": vars(args) | {
        "engine": str(args.engine), "out": str(args.out)}, "results": rows}, indent=1, default=str))
    print("\n| seed | boxes | global IDF1 | cross-modal P / R | same-modality P / R | co-located P / R | "
          "other places P / R | ids (people) | steps/s |")
    print("|---|---|---|---|---|---|---|---|---|")

    def pr(t: dict | None) -> str:
        if not t or t.get("precision") is None:
            return "-"
        r = t.get("recall")
        return f"{t['precision']:.2f} / {r:.2f}" if r is not None else f"{t['precision']:.2f} / -"

    for r in rows:
        tot = r["score"]["totals"]
        print(f"| {r['seed']} | {r['boxes']} | {r['score']['idf1']:.3f} | {pr(tot.get('cross-modal'))} | "
              f"{pr(tot.get('same-modality'))} | {pr(tot.get('co-located'))} | {pr(tot.get('across-locations'))} | "
              f"{r['summary']['global_ids']} ({args.ids}) | {r['summary']['steps_per_s']} |")


if __name__ == "__main__":
    main()
