"""Tracking settings side by side: how much of the matcher's loss is detection and tracking.

For each held-out ``synth-video`` pair (seeds 1-4 by default), each kind of boxes (``gt``: the
ground truth's boxes retracked by the matcher's own tracker; ``gt-ids``: the ground truth's
boxes and ids, perfect tracking; ``auto``: the default detector; ``untrained``: the best
detectors that need no training, ``mog2+warm`` on IR and ``knn`` on RGB; any other detector
name), each embedder and each tracker variant (``gt-ids`` and ``untrained``: only the last,
the default: the variants make no difference to fixed ids, and the untrained detectors are
compared at the default), ``match`` runs and ``score-matches``
scores it (pair precision, recall, IDF1, pipeline fps, and the tracks' identity switches
and splits counted against the ground truth):

* ``iou``: IoU-only tracking (``track_appearance=0, track_split=0, track_min_hits=2``, the
  tracker before appearance was added);
* ``appearance``: re-id appearance decides the ambiguous pairs (``track_appearance=1``);
* ``appearance+split``: and a track whose new crop disagrees with its own bank gets a new id
  (``track_split=4``);
* ``hits1``: and a track confirmed at its first detection (``track_min_hits=1``): the default
  before fast pairing; these four wait ``hysteresis`` steps for every pair and report a pair only
  in frames where both its people were detected;
* ``fast``: and fast pairing: a pair at or above the engine's calibrated fast point is reported
  at its first candidate step (``fast_threshold``; engines whose sidecar has no reached fast
  point are unchanged by it);
* ``early``: and early pairing: a track that has not yet gathered ``min_features`` crops is paired
  at the engine's early point (``early_threshold``, the fast point of 1-crop tracks; engines
  without a reached one are unchanged);
* ``default``: :class:`~mvd_edge.match.config.MatcherConfig`'s defaults: all of the above, and a held pair still reported
  for one frame the detector missed, with the tracker's predicted box (``report_coast=1``).

Embedders: ``oracle`` (each crop's "embedding" is a one-hot code of the ground-truth person
its box covers, IoU >= 0.3: a perfect re-id model, so every error left is detection,
tracking, banks or association) and each ``--engine`` at its sidecar operating point.

Prints a table and writes ``OUT/tracking.json``.

    python benchmarks/tracking.py --out-dir docs/tracking --jobs 2 --engine runs/demo/engine/student.int8-cpu.ort.onnx
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

import mvd_edge.match.pipeline as pipeline_module
from mvd_edge.eval.scoring import load_ground_truth, score_matches
from mvd_edge.match.baselines import OracleEmbedder, label_crop
from mvd_edge.match.config import MatcherConfig, resolve
from mvd_edge.match.detect import UNTRAINED_DEFAULTS, box_iou, make_detector
from mvd_edge.match.pipeline import run_match
from mvd_edge.synth.video import write_synth_video

STREAMS = ("ir", "rgb")
NO_FAST = {"association.fast_threshold": None, "association.early_threshold": None, "association.report_coast": 0}
HITS2 = {"track.min_hits": 2, **NO_FAST}
VARIANTS = {"iou": {"track.appearance": 0.0, "track.split": 0.0, **HITS2},
            "appearance": {"track.appearance": 1.0, "track.split": 0.0, **HITS2},
            "appearance+split": {"track.appearance": 1.0, "track.split": 4.0, **HITS2},
            "hits1": dict(NO_FAST),
            "fast": {"association.early_threshold": None, "association.report_coast": 0},
            "early": {"association.report_coast": 0},
            "default": {}}
# a perfect embedder is precise at any cosine in (0, 1): its fast-pairing points are its threshold
ORACLE_POINT = {"association.threshold": 0.5, "association.margin": 0.0, "association.fast_threshold": 0.5,
                "association.fast_margin": 0.0, "association.early_threshold": 0.5, "association.early_margin": 0.0}


def _gt_person(gt: dict, stream: str, frame: int, box, min_iou: float) -> int | None:
    g = gt["streams"][stream]["boxes"][frame] if frame < len(gt["streams"][stream]["boxes"]) else []
    if not g:
        return None
    iou = box_iou(np.asarray(box, np.float32)[None],
                  np.array([[b[1], b[2], b[1] + b[3], b[2] + b[4]] for b in g], np.float32))[0]
    return int(g[int(iou.argmax())][0]) if iou.max() >= min_iou else None


@contextlib.contextmanager
def oracle(gt: dict):
    """While active, ``run_match`` builds a matcher whose crops are a constant image of the ground-truth
    person their box covers (0: nobody), for :class:`OracleEmbedder`."""
    real = pipeline_module.Matcher

    class OracleMatcher(real):
        def step(self, frames):
            self._where = {id(p.image): (s, p.index) for s, p in frames.items()}
            return super().step(frames)

        def _crop(self, img, box):
            if super()._crop(img, box) is None:
                return None
            stream, frame = self._where[id(img)]
            return label_crop(_gt_person(gt, stream, frame, box, 0.3) or 0)

    pipeline_module.Matcher = OracleMatcher
    try:
        yield
    finally:
        pipeline_module.Matcher = real


class SwitchCounter:
    """``on_step`` callback: frames where a visible track covers (IoU >= 0.5) another ground-truth person
    than the last time it covered one (counted while the run goes: the tracks change in place)."""

    def __init__(self, gt: dict):
        self.gt, self.owner, self.switches = gt, {}, 0

    def __call__(self, r) -> None:
        for s, pkt in r.result.frames.items():
            for t in r.result.tracks[s]:
                if t.time_since_update:
                    continue
                p = _gt_person(self.gt, s, pkt.index, t.box, 0.5)
                if p is None:
                    continue
                last = self.owner.get((s, t.id))
                self.switches += last is not None and last != p
                self.owner[(s, t.id)] = p


def run_one(video: Path, boxes: str, embedder_name: str, engine: Path | None, variant: str, work: Path) -> dict:
    from mvd_edge.runtime import load_embedder

    gt = load_ground_truth(video)
    vids = {s: str(video / gt["streams"][s]["video"]) for s in STREAMS}
    if boxes in ("gt", "gt-ids"):
        dets = {s: make_detector(boxes=video / gt["streams"][s]["mot"], retrack=boxes == "gt") for s in STREAMS}
    else:
        dets = {s: make_detector(detector=UNTRAINED_DEFAULTS[s] if boxes == "untrained" else boxes, modality=s)
                for s in STREAMS}
    if engine is None:
        emb, config = OracleEmbedder(), MatcherConfig().updated(ORACLE_POINT)
    else:
        emb = load_embedder(engine)
        config = resolve(MatcherConfig(), emb.info).config
    config = config.updated(VARIANTS[variant])
    events = work / f"events-{video.name}-{boxes}-{embedder_name}-{variant}.jsonl"
    switches = SwitchCounter(gt)
    ctx = oracle(gt) if engine is None else contextlib.nullcontext()
    t0 = time.perf_counter()
    with ctx:
        res = run_match(vids["ir"], vids["rgb"], emb, dets, events=events, status=False, config=config,
                        on_step=switches)
    seconds = time.perf_counter() - t0
    sc = score_matches(events, video / "gt.json")
    return {"video": video.name, "seed": gt["seed"], "boxes": boxes, "embedder": embedder_name, "variant": variant,
            "precision": sc["precision"], "recall": sc["recall"], "idf1": sc["idf1"], "fps": res.get("fps"),
            "seconds": seconds, "switches": switches.switches,
            "tracks": sum(res.get("tracks", {}).values()) if isinstance(res.get("tracks"), dict) else None}


def _variants_for(boxes: str, variants: list[str]) -> list[str]:
    return variants[-1:] if boxes in ("gt-ids", "untrained") else variants


def _mean(rows: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rows])) if rows else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", type=Path, default=Path("docs/tracking"))
    ap.add_argument("--work", type=Path, default=Path("runs/bench-tracking"), help="videos and event files")
    ap.add_argument("--seeds", default="1,2,3,4", help="held-out synth-video seeds")
    ap.add_argument("--engine", type=Path, action="append", default=[], help="embedding engine (repeatable)")
    ap.add_argument("--boxes", default="gt-ids,gt,auto,untrained",
                    help="comma-separated: gt-ids, gt, untrained and/or detector names")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--no-oracle", action="store_true", help="skip the oracle embedder")
    ap.add_argument("--jobs", type=int, default=1, help="runs in parallel processes (fps are then not comparable)")
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    videos = []
    for seed in (int(s) for s in args.seeds.split(",")):
        v = args.work / f"seed{seed}"
        if not (v / "gt.json").is_file():
            write_synth_video(v, seed=seed)
        videos.append(v)
    embedders = ([] if args.no_oracle else [("oracle", None)]) + [(e.name.split(".")[0], e) for e in args.engine]
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {list(VARIANTS)}")
    jobs = [(v, boxes, name, engine, variant, args.work) for name, engine in embedders
            for boxes in args.boxes.split(",") for variant in _variants_for(boxes, variants) for v in videos]
    with contextlib.ExitStack() as stack:
        if args.jobs > 1:  # runs are independent and deterministic: the same rows, in the same order
            pool = stack.enter_context(ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")))
            results = pool.map(run_one, *zip(*jobs))
        else:
            results = (run_one(*job) for job in jobs)
        rows = []
        for r in results:
            rows.append(r)
            print(f"  {r['embedder']} {r['boxes']} {r['variant']} {r['video']}: P {r['precision']:.3f} "
                  f"R {r['recall']:.3f} IDF1 {r['idf1']:.3f} switches {r['switches']} {r['fps']:.0f} fps", flush=True)
    print("\n| embedder | boxes | tracker | pair P | pair R | IDF1 | P per seed | R per seed | switches | fps |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    summary = []
    for name, _ in embedders:
        for boxes in args.boxes.split(","):
            for variant in _variants_for(boxes, variants):
                sel = [r for r in rows if r["embedder"] == name and r["boxes"] == boxes and r["variant"] == variant]
                s = {"embedder": name, "boxes": boxes, "variant": variant, **{k: _mean(sel, k) for k in
                     ("precision", "recall", "idf1", "fps")}, "switches": int(sum(r["switches"] for r in sel))}
                summary.append(s)
                ps = " ".join(f"{r['precision']:.2f}" for r in sel)
                rs = " ".join(f"{r['recall']:.2f}" for r in sel)
                print(f"| {name} | {boxes} | {variant} | {s['precision']:.3f} | {s['recall']:.3f} | {s['idf1']:.3f} | "
                      f"{ps} | {rs} | {s['switches']} | {s['fps']:.0f} |")
    out = {"version": 1, "machine": platform.processor() or platform.machine(), "seeds": args.seeds, "jobs": args.jobs,
           "variants": {k: VARIANTS[k] for k in variants}, "summary": summary, "rows": rows}
    (args.out_dir / "tracking.json").write_text(json.dumps(out, indent=1))
    print(f"\nwrote {args.out_dir / 'tracking.json'}")


if __name__ == "__main__":
    main()
