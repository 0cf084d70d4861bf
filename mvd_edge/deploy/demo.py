"""``mvd-edge demo``: the whole product on a laptop CPU, no data set, no camera, no GPU.

synthetic data set + synthetic IR/RGB video pair -> train (bounded) -> export -> INT8
calibration -> verify against FP32 -> distil a one-pass student from the trained model (its own
export, INT8 and verify) -> match the videos with both INT8 engines (ground-truth boxes, the
default detector, detectors without training, HOG) and with the packaged ``reid-synth`` -> profile
the engines -> Markdown report with the numbers and PNGs. The training starts from the packaged
``reid-synth`` weights (``--scratch``: from random weights).
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from mvd_edge.assets import REID_SYNTH, REID_SYNTH_ENGINE
from mvd_edge.deploy.formats import engine_path, graph_path


@contextmanager
def _stage(console: Console, times: dict[str, float], key: str, title: str):
    """One numbered stage: its title as a rule, its wall time in ``times[key]``."""
    console.rule(f"[bold]{title}")
    t = time.perf_counter()
    yield
    times[key] = time.perf_counter() - t


#: the demo's data set is ``synth.seed = DEMO_DATA_SEED + seed``: people the packaged ``reid-synth`` (trained on
#: ``synth.seed`` 0, scripts/build_reid_synth.sh) never saw, so its test figures are on new identities
DEMO_DATA_SEED = 500
#: epochs (teacher and student) when the demo starts from the packaged weights (``--scratch``: the config's)
FINETUNE_EPOCHS = 4


def run_demo(out: str | Path, epochs: int | None = None, ids: int | None = None, video_ids: int = 6,
             video_seconds: float = 20.0, seed: int = 0, scratch: bool = False, console: Console | None = None) -> dict:
    """Run every stage into ``out``; returns a summary (also ``out/summary.json``, ``out/report.md``).

    The training starts from the packaged re-id weights (``model.pretrained=reid-synth``) for
    ``FINETUNE_EPOCHS``, or with ``scratch`` from random weights for the config's ``optim.epochs``.
    ``epochs`` and ``ids`` default to those and to the training config's ``synth.n_ids``.
    """
    from mvd_edge.data.synthetic import ensure_synthetic
    from mvd_edge.deploy.export import export_onnx
    from mvd_edge.deploy.profile import profile_embedder, save_profile
    from mvd_edge.deploy.verify import save_report, verify_engines
    from mvd_edge.eval.reid import save_results
    from mvd_edge.quant.manifest import from_dataset
    from mvd_edge.runtime import load_embedder
    from mvd_edge.synth.video import write_synth_video
    from mvd_edge.train.trainer import run_training

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    summary: dict = {"out": str(out)}

    with _stage(console, times, "data", "1/8 synthetic data set and video pair"):
        cfg = _train_config(out, epochs, ids, seed, scratch)
        epochs = cfg.optim.epochs
        ensure_synthetic(out / "data", cfg.synth)
        video = write_synth_video(out / "video", n_ids=video_ids, seconds=video_seconds, seed=seed, progress=True)

    start = "from random weights" if scratch else f"from the packaged {REID_SYNTH} weights"
    with _stage(console, times, "train", f"2/8 train MVD (tiny backbone, {start}, {epochs} epochs, CPU)"):
        trained = run_training(cfg, overwrite=True)  # the demo's own folder: a rerun replaces it
        ckpt = Path(trained["best_checkpoint"])
        save_results(trained["test"], None, out / "cmc.png", title="synthetic SYSU protocols (best epoch on val)")
        summary["train"] = {"best": trained["best"], "init": "scratch" if scratch else REID_SYNTH,
                            "test": {k: {m: v[m]["mean"] for m in ("rank1", "mAP", "mINP")}
                                     for k, v in trained["test"].items()}}

    with _stage(console, times, "export", "3/8 export ONNX and calibrate INT8"):
        exp = export_onnx(ckpt, graph_path(out / "engine", "model", "fp32"))
        calib_set = from_dataset("sysu", out / "data", n=512, seed=seed)  # the student's INT8 calibrates on it too
        engines = _ort_engines(out / "engine", "model", calib_set)  # FP32, INT8
        summary["export"] = {"parity": exp["parity"], "engines": [e.name for e in engines]}

    with _stage(console, times, "verify", "4/8 verify engines against FP32 torch"):
        report = verify_engines(ckpt, engines, "sysu", out / "data", trials=10)
        save_report(report, out / "verify.json", out / "verify.png")
        r1 = f"{report['settings'][0]}/rank1"
        summary["verify"] = [{"engine": Path(e["engine"]).name, "precision": e["precision"], "cosine": e["cosine"],
                              "rank1": e["metrics"][r1], "drop_rank1": e["drop_vs_fp32"][r1]} for e in report["engines"]]
        summary["verify_reference_rank1"] = report["reference"]["metrics"][r1]

    with _stage(console, times, "student", f"5/8 distil a one-pass student from the trained model ({epochs} epochs, CPU)"):
        summary["student"], student_engine = _student(ckpt, out, epochs, calib_set)

    with _stage(console, times, "match", "6/8 calibrate the match thresholds, match the IR and RGB videos (INT8 engines)"):
        summary.update(_operating_points(out, (cfg.data.height, cfg.data.width), seed, engines[1], student_engine,
                                         console))
        summary["match"] = _match_videos(out, video, engines[1], student_engine, console)
    summary["match_still"] = _still(out / "match-gt-boxes.mp4", out / "match-frame.jpg")

    with _stage(console, times, "profile", "7/8 profile the engines"):
        summary["profile"] = {}
        for name, path in (("fp32", engines[0]), ("int8", engines[1]), ("student-int8", student_engine)):
            prof = profile_embedder(load_embedder(path), batches=(1, 8, 32), iters=20, warmup=3)
            save_profile(prof, out / "profile", name=f"profile-{name}")
            summary["profile"][name] = {b: {"p50_ms": r["total"]["p50"], "crops_per_s": r["throughput_crops_per_s"]}
                                        for b, r in prof["batches"].items()}

    console.rule("[bold]8/8 report")
    summary["seconds"] = times
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    (out / "report.md").write_text(render_report(summary))
    console.print(f"[green]done[/] in {sum(times.values()) / 60:.1f} min. Report: {out / 'report.md'}; "
                  f"match video: {summary['match']['gt-boxes']['video']}; checkpoint: {ckpt}; engines: {out / 'engine'}")
    return summary


def _train_config(out: Path, epochs: int | None, ids: int | None, seed: int, scratch: bool):
    """The demo's training config: its folders, sizes and seeds, and where the weights start."""
    from mvd_edge.core.config import load_train_config

    epochs = epochs or (None if scratch else FINETUNE_EPOCHS)
    sizes = [f"synth.n_ids={ids}"] * (ids is not None) + [f"optim.epochs={epochs}"] * (epochs is not None)
    init = [] if scratch else [f"model.pretrained={REID_SYNTH}"]
    return load_train_config(None, [f"out={out / 'train'}", f"data.root={out / 'data'}", *sizes, *init,
                                    f"seed={seed}", f"synth.seed={DEMO_DATA_SEED + seed}", "device=cpu"])


def _student(ckpt: Path, out: Path, epochs: int, calib_set) -> tuple[dict, Path]:
    """Distil a one-pass student from ``ckpt``, build its INT8 engine, verify it: (summary, engine)."""
    from mvd_edge.deploy.export import export_onnx
    from mvd_edge.deploy.verify import verify_engines
    from mvd_edge.train.distill import distill_config, run_distill

    student_cfg = distill_config(ckpt, None, [f"out={out / 'student'}", f"optim.epochs={epochs}", "device=cpu"])
    distilled = run_distill(student_cfg, overwrite=True)  # the demo's own folder: a rerun replaces it
    student_ckpt = Path(distilled["best_checkpoint"])
    export_onnx(student_ckpt, graph_path(out / "engine", "student", "fp32"))
    student_engine = _ort_engines(out / "engine", "student", calib_set, fp32=False)[-1]
    s_report = verify_engines(student_ckpt, [student_engine], "sysu", out / "data", trials=10)
    setting = s_report["settings"][0]
    return {"best": distilled["best"], "student_of": distilled["student_of"],
            "test": {k: {m: v[m]["mean"] for m in ("rank1", "mAP", "mINP")} for k, v in distilled["test"].items()},
            "int8_rank1": s_report["engines"][0]["metrics"][f"{setting}/rank1"],
            "int8_cosine": s_report["engines"][0]["cosine"]}, student_engine


def _operating_points(out: Path, size: tuple[int, int], seed: int, engine: Path, student_engine: Path,
                      console: Console) -> dict:
    """``calibrate-threshold`` of both INT8 engines on fresh identities (another seed), cut out of
    synthetic scenes as the matcher sees people: neither trained on nor used to choose the checkpoint."""
    from mvd_edge.deploy.threshold import calibrate_threshold
    from mvd_edge.synth.dataset import write_sysu

    calib_root = out / "calib-ids"
    write_sysu(calib_root, n_ids=40, images_per_cam=4, size=size, seed=seed + 1000, render="scenes")
    keys = ("threshold", "margin", "precision", "recall", "reached", "target_precision", "identities",
            "people_per_scene")
    summary = {}
    for name, engine in (("operating_point", engine), ("student_operating_point", student_engine)):
        point = calibrate_threshold(engine, "sysu", calib_root, split="all", target_precision=0.9, seed=seed)
        summary[name] = {**{k: point[k] for k in keys}, "fast": point["fast"], "fast_early": point["fast_early"]}
        console.print(f"{'student ' if name.startswith('student') else ''}operating point: threshold "
                      f"{point['threshold']:.3f}, margin {point['margin']:.3f} (pair precision {point['precision']:.3f}, "
                      f"recall {point['recall']:.3f} on {point['identities']} held-out identities)")
    return summary


def _match_videos(out: Path, video: dict, engine: Path, student_engine: Path, console: Console) -> dict:
    """Match the demo's IR and RGB videos with each engine and kind of boxes; scored against the ground truth."""
    from mvd_edge.eval.scoring import score_matches
    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.match.detect import UNTRAINED_DEFAULTS, make_detector
    from mvd_edge.match.pipeline import run_match
    from mvd_edge.runtime import load_embedder

    summary: dict = {}
    # the demo's videos are synthetic: its detector is the one trained on synthetic scenes, named (real
    # cameras get `auto`, a detector trained on real photographs)
    # engines: "" the demo's MVD model, "student" its one-pass student, REID_SYNTH the packaged model as it ships
    engines = {"": (engine, "MVD INT8"), "student": (student_engine, "student INT8"),
               REID_SYNTH: (REID_SYNTH_ENGINE, f"packaged {REID_SYNTH} INT8")}
    embedders = {who: load_embedder(path) for who, (path, _) in engines.items()}  # each opened once, not per mode
    for mode in ("gt-boxes", "gt-boxes@0.5", "person-synth", "untrained", "hog", "student:gt-boxes",
                 "student:person-synth", f"{REID_SYNTH}:person-synth"):
        who, _, mode_boxes = mode.rpartition(":")
        emb = embedders[who]
        given = {"association.threshold": 0.5} if mode.endswith("@0.5") else {}
        op = resolve(MatcherConfig().updated(given), emb.info)
        if mode_boxes.startswith("gt-boxes"):
            dets = {s: make_detector(boxes=video["mot"][s]) for s in ("ir", "rgb")}
        else:  # the packaged CNN trained on synthetic scenes; the best ones that need no training; HOG
            dets = {s: make_detector(detector=UNTRAINED_DEFAULTS[s] if mode_boxes == "untrained" else mode_boxes,
                                     modality=s) for s in ("ir", "rgb")}
        events = out / f"events-{mode.replace(':', '-')}.jsonl"
        save = out / f"match-{mode}.mp4" if mode == "gt-boxes" else None
        res = run_match(str(video["videos"]["ir"]), str(video["videos"]["rgb"]), emb, dets, events=events, save=save,
                        config=op.config, status=False, console=console)
        score = score_matches(events, video["gt"])
        assoc = op.config.association
        summary[mode] = {"fps": res.get("fps"), **{k: score[k] for k in ("precision", "recall", "idf1")},
                         "threshold": assoc.threshold, "margin": assoc.margin, "threshold_source": op.source,
                         "events": str(events), "video": str(save) if save else None,
                         "engine": engines[who][1]}
        console.print(f"{mode}: pair precision {score['precision']:.3f} recall {score['recall']:.3f} "
                      f"IDF1 {score['idf1']:.3f} at {res.get('fps', 0):.1f} fps (threshold "
                      f"{assoc.threshold:.3f}, {op.source})")
    return summary


def _ort_engines(folder: Path, stem: str, calib_set, fp32: bool = True) -> list[Path]:
    """Quantize ``folder/stem``'s FP32 graph and build its ONNX Runtime engines: [FP32,] INT8 (cpu flavour)."""
    from mvd_edge.quant.api import quantize
    from mvd_edge.runtime.engine import build_engine

    quantize(graph_path(folder, stem, "fp32"), folder, calib_set, progress=True)
    graphs = [graph_path(folder, stem, "fp32")] * fp32 + [graph_path(folder, stem, "int8", "cpu")]
    engines = [engine_path(g, "ort") for g in graphs]
    for graph, engine in zip(graphs, engines):
        build_engine(graph, engine, backend="ort")
    return engines


def _still(video: Path, dest: Path) -> str | None:
    """Middle frame of the annotated match video as a JPEG for the report (None if unreadable)."""
    import cv2

    cap = cv2.VideoCapture(str(video))
    try:
        n = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.set(cv2.CAP_PROP_POS_FRAMES, max(0, n // 2))
        ok, frame = cap.read()
    finally:
        cap.release()
    if not ok or frame is None:
        return None
    cv2.imwrite(str(dest), frame, [cv2.IMWRITE_JPEG_QUALITY, 80])
    return dest.name


def render_report(s: dict) -> str:
    """Markdown report of a demo summary (figures are PNGs beside it)."""
    lines = ["# mvd-edge demo report", "",
             f"Total time: {sum(s['seconds'].values()) / 60:.1f} min "
             f"({', '.join(f'{k} {v:.0f} s' for k, v in s['seconds'].items())}).", "",
             "## Training (synthetic SYSU layout, tiny backbone, CPU)", "",
             ("Started from random weights (`--scratch`)." if s["train"].get("init", "scratch") == "scratch" else
              f"Started from the packaged `{s['train']['init']}` weights (`model.pretrained={s['train']['init']}`: "
              f"a model trained on other synthetic people; `--scratch` trains from random weights)."), "",
             f"Best epoch on the validation identities: {s['train']['best']['epoch']} "
             f"(val Rank-1 {s['train']['best']['rank1']:.1f}).", "",
             "| protocol | Rank-1 | mAP | mINP |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['rank1']:.2f} | {v['mAP']:.2f} | {v['mINP']:.2f} |" for k, v in s["train"]["test"].items()]
    lines += ["", "![CMC](cmc.png)", "", "## Engines: accuracy against FP32 torch", "",
              f"FP32 torch Rank-1: {s['verify_reference_rank1']:.2f}", "",
              "| engine | precision | mean cosine | min cosine | Rank-1 | drop |", "|---|---|---|---|---|---|"]
    for e in s["verify"]:
        lines.append(f"| {e['engine']} | {e['precision']} | {e['cosine']['mean']:.5f} | {e['cosine']['min']:.5f} | "
                     f"{e['rank1']:.2f} | {e['drop_rank1']:+.2f} |")
    lines += ["", "![verify](verify.png)", ""]
    st = s.get("student")
    if st:
        rec = st["student_of"]
        lines += ["## One-pass student (`mvd-edge distill`)", "",
                  f"One backbone pass per crop (recipe `shared`) instead of the four of `full`, distilled from the "
                  f"trained model's {rec['teacher_embedding_dim']}-d `full` feature (cosine + relational) with the "
                  f"identity losses, starting from its {'shared branch' if rec['init'] == 'teacher' else 'scratch'}; "
                  f"best epoch on the validation identities: {st['best']['epoch']} (val Rank-1 "
                  f"{st['best']['rank1']:.1f}). INT8 engine Rank-1 {st['int8_rank1']:.2f} (mean cosine to its FP32 "
                  f"torch model {st['int8_cosine']['mean']:.5f}).", "",
                  "| model | protocol | Rank-1 | mAP | mINP |", "|---|---|---|---|---|"]
        lines += [f"| {who} | {k} | {v['rank1']:.2f} | {v['mAP']:.2f} | {v['mINP']:.2f} |"
                  for who, res in (("MVD (4 passes)", s["train"]["test"]), ("student (1 pass)", st["test"]))
                  for k, v in res.items()] + [""]
    lines += ["## Matching the synthetic IR and RGB videos (INT8 engines)", "",
              "| engine | boxes | threshold | pair precision | pair recall | IDF1 | pipeline fps |",
              "|---|---|---|---|---|---|---|"]
    for mode, m in s["match"].items():
        src = m.get("threshold_source", "")
        label = "engine sidecar" if "engine sidecar" in src else "given" if "command line" in src else "default"
        thr = f"{m['threshold']:.3f} ({label})" if "threshold" in m else "-"
        lines.append(f"| {m.get('engine', 'MVD INT8')} | {mode.rpartition(':')[2]} | {thr} | {m['precision']:.3f} "
                     f"| {m['recall']:.3f} | {m['idf1']:.3f} | {m['fps']:.1f} |")
    pairs = (("MVD", s.get("operating_point")), ("student", s.get("student_operating_point")))
    for key, what, when in (("fast", "Fast pairing", "a pair this similar is reported at once instead of after "
                                                     "`association.hysteresis` frames"),
                            ("fast_early", "Early pairing", "a new track this similar is paired at its first crop "
                                                            "instead of after 3")):
        fast = [f"{who} at {p[key]['threshold']:.3f} (margin {p[key]['margin']:.3f}, pair precision "
                f"{p[key]['precision']:.3f} on {p[key]['accepted']} pairs of {p[key]['track_images']}-crop tracks)"
                for who, p in pairs if p and (p.get(key) or {}).get("reached")]
        lines += ["", f"{what} ({when}): "
                      + ("; ".join(fast) if fast else "none: no engine reached its precision on enough pairs") + "."]
    sop = s.get("student_operating_point")
    if sop:
        lines += ["", f"Student operating point: threshold {sop['threshold']:.3f}, margin {sop['margin']:.3f}, pair "
                      f"precision {sop['precision']:.3f} / recall {sop['recall']:.3f} on the same identities."]
    op = s.get("operating_point")
    if op:
        lines += ["", f"Operating point (stored in the engine's sidecar by `calibrate-threshold`): threshold "
                      f"{op['threshold']:.3f}, margin {op['margin']:.3f}, pair precision {op['precision']:.3f} / "
                      f"recall {op['recall']:.3f} on {op['identities']} fresh synthetic identities "
                      f"({op['people_per_scene']} people per simulated scene, target precision "
                      f"{op['target_precision']}). `gt-boxes@0.5` is the old fixed default, for comparison."]
    lines += ["", "Boxes: `gt-boxes` the ground truth; `person-synth` the packaged detector trained on synthetic "
                  "scenes of seeds 100-105 (this video's seed is not among them; real cameras get `auto`, a detector "
                  "trained on real photographs); "
                  "`untrained` the best detectors that need no training (background subtraction: mog2+warm on IR, knn "
                  "on RGB); `hog` OpenCV's HOG people detector."]
    lines += ["", "Annotated video: `match-gt-boxes.mp4`."]
    if s.get("match_still"):
        lines += ["", f"![match]({s['match_still']})"]
    lines += ["", "## Engine latency (ONNX Runtime, this CPU)", "",
              "| engine | batch | p50 ms per call | crops/s |", "|---|---|---|---|"]
    lines += [f"| {name} | {b} | {r['p50_ms']:.2f} | {r['crops_per_s']:.0f} |"
              for name, rows in s["profile"].items() for b, r in rows.items()]
    lines += ["", "![latency fp32](profile/profile-fp32_latency.png) ![latency int8](profile/profile-int8_latency.png)", ""]
    return "\n".join(lines)
