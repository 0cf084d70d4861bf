"""Soak test of the site matcher: N cameras played in real time, looped, for a long run.

Renders a short synthetic site (``mvd_edge.synth.site``), then plays each camera's video in a
loop at its frame rate (``realtime``: frames are dropped like a live camera's when the matcher
falls behind) with its ground-truth boxes, through :class:`mvd_edge.match.runner.Runner`, for
``--minutes``. Every ``--every`` seconds it records the process's resident memory, each camera's
queue depth and dropped frames, the gallery size and the steps per second. Writes
``OUT/soak.json`` and ``OUT/soak.png`` and prints a table; the verdict lines say whether memory
stayed flat (last third vs first third after warm-up) and whether any queue grew.

    python scripts/site_soak.py --engine runs/demo/engine/student.int8-cpu.ort.onnx --minutes 10 --out docs/site

Are global ids stable over time, given an embedding that can tell people apart? ``--oracle``
replaces the engine by a perfect re-id model (:class:`mvd_edge.match.baselines.OracleEmbedder`:
each crop carries the ground-truth person its box covers), ``--passes N`` stops after N passes of
the clip and ``--no-realtime`` runs as fast as it can; ``--boxes auto`` uses the default detectors
instead of the ground-truth boxes. The global ids after each pass are in ``ids_per_pass``.

    python scripts/site_soak.py --oracle --passes 20 --no-realtime --out docs/site/oracle-gt
    python scripts/site_soak.py --oracle --passes 20 --no-realtime --boxes auto --out docs/site/oracle-auto
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import cv2
import numpy as np

from mvd_edge.core.modality import Modality
from mvd_edge.match.baselines import OracleEmbedder, label_crop
from mvd_edge.match.config import MatcherConfig, resolve
from mvd_edge.match.detect import MotBoxes, box_iou, make_detector
from mvd_edge.match.pipeline import Matcher
from mvd_edge.match.runner import Runner, rss_mb
from mvd_edge.match.site import SiteCamera, SitePolicy, site_matcher
from mvd_edge.match.sources import FrameSource, load_cameras
from mvd_edge.runtime import load_embedder
from mvd_edge.synth.site import write_synth_site


class LoopCapture:
    """A video file played again and again (frame indices keep counting)."""

    def __init__(self, path: str):
        self.path, self.cap = path, cv2.VideoCapture(path)

    def isOpened(self) -> bool:  # noqa: N802 - OpenCV's name
        return self.cap.isOpened()

    def read(self):
        ok, frame = self.cap.read()
        if not ok:
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, frame = self.cap.read()
        return ok, frame

    def get(self, prop: int) -> float:
        return 0.0 if prop == cv2.CAP_PROP_FRAME_COUNT else self.cap.get(prop)

    def release(self) -> None:
        self.cap.release()


class LoopBoxes(MotBoxes):
    """Ground-truth boxes of a looped video: frame ``k`` of the loop is frame ``k mod n``."""

    def __init__(self, path, n_frames: int):
        super().__init__(path)
        self.n_frames = n_frames

    def detect(self, image, frame_index: int):
        return super().detect(image, frame_index % self.n_frames)


class OracleSiteMatcher(Matcher):
    """A site matcher whose crops are :func:`label_crop` of the ground-truth person their box covers
    (IoU >= 0.3 with a ground-truth box of that camera and frame; 0: nobody), for :class:`OracleEmbedder`."""

    def __init__(self, embedder, cameras, detectors, config, truth: dict[str, LoopBoxes]):
        super().__init__(embedder, cameras, detectors, config, SitePolicy())
        self.truth = truth

    def step(self, frames):
        self._where = {id(p.image): (n, p.index) for n, p in frames.items()}
        return super().step(frames)

    def _crop(self, img, box):
        if super()._crop(img, box) is None:
            return None
        cam, k = self._where[id(img)]
        rows = self.truth[cam].detect(None, k)
        if not len(rows):
            return label_crop(0)
        iou = box_iou(np.asarray(box, np.float32)[None], rows.boxes)[0]
        return label_crop(int(rows.ids[iou.argmax()]) if iou.max() >= 0.3 else 0)


def plot(samples: list[dict], cameras: list[str], out: Path) -> bool:
    """Memory, queue depth per camera and global ids over the run, as a PNG (False without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(14, 3.5))
    ts = [s["t"] / 60 for s in samples]
    ax[0].plot(ts, [s["rss_mb"] for s in samples])
    ax[0].set(xlabel="minutes", ylabel="resident memory (MiB)", title="memory")
    for n in cameras:
        ax[1].plot(ts, [s["queue"][n] for s in samples], label=n)
    ax[1].set(xlabel="minutes", ylabel="frames queued", title="queue depth per camera")
    ax[1].legend()
    ax[2].plot(ts, [s["global_ids"] for s in samples])
    ax[2].set(xlabel="minutes", ylabel="global ids", title="global ids (people: 6)", ylim=(0, None))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", type=Path, help="the embedding engine (or --oracle)")
    ap.add_argument("--oracle", action="store_true", help="a perfect re-id model instead of an engine")
    ap.add_argument("--boxes", choices=("gt", "auto"), default="gt", help="ground-truth boxes or the default detectors")
    ap.add_argument("--passes", type=int, default=None, help="stop after this many passes of the clip")
    ap.add_argument("--no-realtime", action="store_true", help="as fast as it goes (no frames dropped)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--every", type=float, default=10.0)
    ap.add_argument("--seconds", type=float, default=30.0, help="length of the rendered clip that is looped")
    ap.add_argument("--size", default="240x426")
    ap.add_argument("--seed", type=int, default=20)
    ap.add_argument("--out", type=Path, default=Path("runs/site_soak"))
    args = ap.parse_args()
    if (args.engine is None) == (not args.oracle):
        raise SystemExit("give --engine or --oracle (one of them)")
    h, w = (int(v) for v in args.size.split("x"))
    site = args.out / "soak-site"
    gt = write_synth_site(site, rgb_cameras=2, ir_cameras=2, locations=2, n_ids=6, seconds=args.seconds,
                          size=(h, w), seed=args.seed, overwrite=True)
    specs = load_cameras(site / "site-boxes.yaml")
    cams = [SiteCamera(n, Modality.parse(sp.modality), sp) for n, sp in specs.items()]
    sources = {c.name: FrameSource(c.spec, c.name, open_fn=lambda sp: LoopCapture(str(sp.target)), live=False,
                                   realtime=not args.no_realtime) for c in cams}
    n_frames = {c.name: gt["cameras"][c.name]["n_frames"] for c in cams}
    truth = {c.name: LoopBoxes(c.spec.boxes, n_frames[c.name]) for c in cams}
    dets = truth if args.boxes == "gt" else {c.name: make_detector(None, "auto", modality=c.modality.short)
                                             for c in cams}
    if args.oracle:  # a perfect embedder is precise at any cosine in (0, 1)
        emb, cfg = OracleEmbedder(), MatcherConfig().updated({"association.threshold": 0.5,
                                                              "site.same_threshold": 0.5})
    else:
        emb = load_embedder(args.engine)
        cfg = resolve(MatcherConfig(), emb.info, site=True).config
    matcher = OracleSiteMatcher(emb, cams, dets, cfg, truth) if args.oracle else site_matcher(emb, cams, dets, cfg)
    runner = Runner(matcher, sources)
    steps_per_pass = max(n_frames.values())
    ids_per_pass = []
    samples = []
    t_start = time.monotonic()
    last = {"t": t_start, "steps": 0}

    def record(r: Runner) -> None:
        if r.steps % steps_per_pass == 0:
            ids_per_pass.append(r.matcher.policy.identities)
        now = time.monotonic()
        if now - last["t"] < args.every:
            return
        steps_per_s = (r.steps - last["steps"]) / (now - last["t"])
        last.update(t=now, steps=r.steps)
        row = {"t": round(now - t_start, 1), "rss_mb": round(rss_mb(), 1), "steps": r.steps,
               "steps_per_s": round(steps_per_s, 2), "gallery": len(r.matcher.policy.gallery),
               "global_ids": r.matcher.policy.identities,
               "queue": {n: s.depth for n, s in r.sources.items()},
               "dropped": {n: s.dropped for n, s in r.sources.items()}}
        samples.append(row)
        print(f"{row['t']:7.1f} s  rss {row['rss_mb']:7.1f} MiB  {row['steps_per_s']:5.1f} steps/s  "
              f"queues {row['queue']}  dropped {sum(row['dropped'].values())}  ids {row['global_ids']}", flush=True)

    max_steps = None if args.passes is None else args.passes * steps_per_pass
    summary = runner.run(max_steps=max_steps, duration=args.minutes * 60.0, on_step=record)
    warm = [s for s in samples if s["t"] >= 60.0] or samples
    third = max(1, len(warm) // 3)
    first, last_rows = warm[:third], warm[-third:]
    mem_first = sum(s["rss_mb"] for s in first) / len(first)
    mem_last = sum(s["rss_mb"] for s in last_rows) / len(last_rows)
    max_queue = max(max(s["queue"].values()) for s in samples) if samples else 0
    verdict = {"rss_mb_first_third": round(mem_first, 1), "rss_mb_last_third": round(mem_last, 1),
               "rss_growth_mb": round(mem_last - mem_first, 1), "max_queue_depth": max_queue,
               "queue_size": 8, "steps_per_s_mean": round(sum(s["steps_per_s"] for s in warm) / len(warm), 2),
               "camera_fps": {n: sp.fps for n, sp in specs.items()},
               "dropped_total": {n: sources[n].dropped for n in sources},
               "embedder": "oracle" if args.oracle else str(args.engine), "boxes": args.boxes,
               "people": 6, "ids_per_pass": ids_per_pass}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                    "verdict": verdict, "samples": samples,
                                                    "summary": summary}, indent=1, default=str))
    if not plot(samples, list(sources), args.out / "soak.png"):
        print("matplotlib not installed: no PNG")
    print(json.dumps(verdict, indent=1))


if __name__ == "__main__":
    main()
