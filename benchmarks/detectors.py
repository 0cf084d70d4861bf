"""Person detectors side by side on synthetic IR/RGB video pairs: box precision / recall and speed.

For every detector and stream (IR, RGB) of every held-out ``synth-video`` pair (seeds 1-4 by
default; the detectors' settings were tuned on seeds 10-12), the frames are read back from
the MP4 files as ``mvd-edge match`` reads them, detected, and scored against ``gt.json``
(:func:`mvd_edge.eval.scoring.score_boxes`: one-to-one at IoU 0.5, people less than half
visible are "don't care"). Speed: mean ms per frame of ``detect`` alone, both streams
together as fps (``1000 / (ms_ir + ms_rgb)``), on this machine in this run.

``--effects`` adds pairs of the first seed rendered with camera shake, an RGB day/night
change and IR thermal drift (``synth-video --shake/--illumination/--thermal-drift``) and
scores the default detector, the best untrained ones and HOG on them.

``--engine`` (an embedding engine with its sidecar) adds the end-to-end matcher: ``match``
with ground-truth boxes, with the default detector (``auto``), the best untrained ones
(``untrained``: mog2+warm on IR, knn on RGB) and HOG, at the engine's operating point, scored
by ``score-matches`` (pair precision, recall, IDF1).

Prints tables and writes ``OUT/detectors.json`` and ``OUT/detectors.png``.

    python benchmarks/detectors.py --out-dir docs/detectors
    python benchmarks/detectors.py --out-dir docs/detectors --engine runs/demo/engine/model.int8-cpu.ort.onnx
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import cv2
import numpy as np

from mvd_edge.eval.scoring import load_ground_truth, score_boxes
from mvd_edge.match.detect import DEFAULT_DETECTORS, UNTRAINED_DEFAULTS, make_detector
from mvd_edge.synth.video import write_synth_video

STREAMS = ("ir", "rgb")
EFFECTS = {"shake 6 px": {"shake": 6.0}, "day/night 0.6": {"illumination": 0.6},
           "thermal drift 40": {"thermal_drift": 40.0}}


def _video(work: Path, seed: int, seconds: float, **effects) -> Path:
    tag = "".join(f"-{k}{v:g}" for k, v in sorted(effects.items()))
    out = work / f"seed{seed}{tag}" if seconds == 20.0 else work / f"seed{seed}-{seconds:g}s{tag}"
    if not (out / "gt.json").is_file():
        write_synth_video(out, seed=seed, seconds=seconds, **effects)
    return out


def score_detector(name: str, video: Path, stream: str) -> dict:
    """Box precision / recall and ms per frame of detector ``name`` on one stream of a video."""
    gt = load_ground_truth(video)
    det = make_detector(detector=name, modality=stream)
    cap = cv2.VideoCapture(str(video / gt["streams"][stream]["video"]))
    pred, seconds, k = {}, 0.0, 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        t = time.perf_counter()
        pred[k] = det.detect(img, k).boxes
        seconds += time.perf_counter() - t
        k += 1
    cap.release()
    r = score_boxes(pred, gt["streams"][stream]["boxes"])
    r.update(frames=k, ms=1000.0 * seconds / max(1, k), resets=getattr(det, "resets", 0))
    return r


def _pool(rows: list[dict]) -> dict:
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    frames = sum(r["frames"] for r in rows)
    return {"precision": tp / (tp + fp) if tp + fp else 0.0, "recall": tp / (tp + fn) if tp + fn else 0.0,
            "tp": tp, "fp": fp, "fn": fn, "frames": frames,
            "ms": sum(r["ms"] * r["frames"] for r in rows) / max(1, frames),
            "precision_range": [min(r["precision"] for r in rows), max(r["precision"] for r in rows)],
            "recall_range": [min(r["recall"] for r in rows), max(r["recall"] for r in rows)]}


def matcher_rows(engine: Path, videos: list[Path], work: Path) -> list[dict]:
    from mvd_edge.eval.scoring import score_matches
    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.match.pipeline import run_match
    from mvd_edge.runtime import load_embedder

    rows = []
    for video in videos:
        gt = load_ground_truth(video)
        vids = {s: str(video / gt["streams"][s]["video"]) for s in STREAMS}
        for mode in ("gt-boxes", "auto", "untrained", "hog"):
            emb = load_embedder(engine)
            op = resolve(MatcherConfig(), emb.info)
            dets = {s: make_detector(boxes=video / gt["streams"][s]["mot"]) if mode == "gt-boxes"
                    else make_detector(detector=UNTRAINED_DEFAULTS[s] if mode == "untrained" else mode, modality=s)
                    for s in STREAMS}
            events = work / f"events-{video.name}-{mode}.jsonl"
            res = run_match(vids["ir"], vids["rgb"], emb, dets, events=events, status=False,
                            config=op.config)
            sc = score_matches(events, video / "gt.json")
            rows.append({"video": video.name, "seed": gt["seed"], "boxes": mode, "precision": sc["precision"],
                         "recall": sc["recall"], "idf1": sc["idf1"], "fps": res.get("fps"),
                         "threshold": op.config.association.threshold,
                         "margin": op.config.association.margin, "threshold_source": op.source})
            print(f"  matcher {video.name} {mode}: P {sc['precision']:.3f} R {sc['recall']:.3f} "
                  f"IDF1 {sc['idf1']:.3f} {res.get('fps', 0):.1f} fps", flush=True)
    return rows


def _cell(r: dict | None) -> str:
    return f"{r['precision']:.3f} | {r['recall']:.3f} | {r['ms']:.1f}" if r else "- | - | -"


def _plot(table: dict, path: Path) -> None:
    from mvd_edge.core.plots import figure, save

    fig, axes = figure(ncols=2, figsize=(11, 4.2))
    if fig is None:
        return
    for ax, stream in zip(axes, STREAMS):
        for name, r in table[stream].items():
            ax.scatter(r["recall"], r["precision"], s=20 + 0.6 * 1000.0 / max(r["ms"], 0.1),
                       label=f"{name}: {r['ms']:.1f} ms/frame")
        ax.set_xlim(0.5, 1.0)
        ax.set_ylim(0.5, 1.02)
        ax.set_xlabel("box recall (IoU 0.5)")
        ax.set_ylabel("box precision")
        ax.set_title(f"{stream.upper()} stream, held-out seeds (marker area ~ frames/s)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    save(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("runs/detectors"))
    ap.add_argument("--work", type=Path, default=None, help="where the videos are rendered (default OUT/videos)")
    ap.add_argument("--seeds", default="1,2,3,4", help="held-out video seeds")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--detectors", default="hog,mog2,knn,warm,mog2+warm,person-synth")
    ap.add_argument("--effects", action="store_true", help="also score shake / day-night / thermal-drift pairs")
    ap.add_argument("--engine", type=Path, default=None, help="embedding engine: add the end-to-end matcher rows")
    args = ap.parse_args()
    out = args.out_dir
    work = args.work or out / "videos"
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    cv2.setNumThreads(0)
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [n.strip() for n in args.detectors.split(",") if n.strip()]
    videos = [_video(work, s, args.seconds) for s in seeds]
    per_video: list[dict] = []
    table: dict[str, dict[str, dict]] = {s: {} for s in STREAMS}
    for stream in STREAMS:
        for name in names:
            if name.endswith("warm") and stream == "rgb":
                continue  # warm blobs are a thermal idea
            rows = [score_detector(name, v, stream) for v in videos]
            for v, r in zip(videos, rows):
                per_video.append({"video": v.name, "stream": stream, "detector": name, **r})
            table[stream][name] = _pool(rows)
            p = table[stream][name]
            print(f"{stream:3s} {name:10s} P {p['precision']:.3f} R {p['recall']:.3f} {p['ms']:.2f} ms/frame", flush=True)
    effects = []
    if args.effects:
        for label, kw in EFFECTS.items():
            v = _video(work, seeds[0], args.seconds, **kw)
            for stream in STREAMS:
                for name in (DEFAULT_DETECTORS[stream], UNTRAINED_DEFAULTS[stream], "hog"):
                    r = score_detector(name, v, stream)
                    effects.append({"effect": label, "video": v.name, "stream": stream, "detector": name, **r})
                    print(f"{label:16s} {stream:3s} {name:10s} P {r['precision']:.3f} R {r['recall']:.3f} "
                          f"resets {r['resets']}", flush=True)
    matcher = matcher_rows(args.engine, videos, work) if args.engine else []

    print("\n| detector | IR P | IR R | IR ms | RGB P | RGB R | RGB ms | both streams fps |")
    print("|---|---|---|---|---|---|---|---|")
    for name in names:
        ir, rgb = table["ir"].get(name), table["rgb"].get(name)
        both = f"{1000.0 / (ir['ms'] + rgb['ms']):.0f}" if ir and rgb else "-"
        print(f"| {name} | {_cell(ir)} | {_cell(rgb)} | {both} |")
    for label, chosen in (("auto", DEFAULT_DETECTORS), ("untrained", UNTRAINED_DEFAULTS)):
        row = {s: table[s].get(chosen[s]) for s in STREAMS}
        if all(row.values()):
            print(f"| **{label}** (IR {chosen['ir']}, RGB {chosen['rgb']}) | {_cell(row['ir'])} | {_cell(row['rgb'])} | "
                  f"{1000.0 / (row['ir']['ms'] + row['rgb']['ms']):.0f} |")
    if effects:
        print("\n| effect | stream | detector | P | R | re-learns |\n|---|---|---|---|---|---|")
        for e in effects:
            print(f"| {e['effect']} | {e['stream']} | {e['detector']} | {e['precision']:.3f} | {e['recall']:.3f} | "
                  f"{e['resets']} |")
    if matcher:
        print("\n| video | boxes | pair P | pair R | IDF1 | fps |\n|---|---|---|---|---|---|")
        for m in matcher:
            print(f"| {m['video']} | {m['boxes']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['idf1']:.3f} | "
                  f"{m['fps']:.1f} |")
    result = {"version": 1, "seeds": seeds, "seconds": args.seconds, "iou": 0.5, "min_visibility": 0.5,
              "defaults": DEFAULT_DETECTORS, "untrained_defaults": UNTRAINED_DEFAULTS, "table": table, "per_video": per_video, "effects": effects,
              "matcher": matcher, "engine": str(args.engine) if args.engine else None,
              "machine": {"cpu": platform.processor() or platform.machine(), "threads": cv2.getNumThreads(),
                          "opencv": cv2.__version__, "numpy": np.__version__}}
    (out / "detectors.json").write_text(json.dumps(result, indent=1) + "\n")
    _plot(table, out / "detectors.png")
    print(f"wrote {out / 'detectors.json'}")


if __name__ == "__main__":
    main()
