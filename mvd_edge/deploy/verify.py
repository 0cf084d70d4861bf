"""Accuracy report of engines against the FP32 torch model: embedding cosine and Rank-1/mAP/mINP.

For each engine: cosine between its embeddings and the FP32 torch embeddings of the same
crops (mean, min), and the protocol metrics on the data set's test split; the drop
against FP32 torch is reported per metric. Writes JSON and a PNG chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mvd_edge.core import plots
from mvd_edge.core.errors import UsageError
from mvd_edge.core.preprocess import read_image
from mvd_edge.core.util import write_json
from mvd_edge.data.base import DatasetError
from mvd_edge.deploy.parity import compare
from mvd_edge.runtime import Embedder, load_embedder


def embed_samples(embedder: Embedder, paths: Sequence[str], chunk: int = 256, progress: str | None = None) -> np.ndarray:
    """Embed image files (decoded with OpenCV, unreadable ones are an error here) -> ``[N, D]``."""
    from tqdm import tqdm

    out = []
    for start in tqdm(range(0, len(paths), chunk), desc=progress, unit="chunk", leave=False, disable=not progress):
        crops = []
        for p in paths[start:start + chunk]:
            img = read_image(p)
            if img is None:
                raise DatasetError(f"unreadable image in the evaluation split: {p}")
            crops.append(img)
        out.append(embedder.embed(crops))
    return np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)


def verify_engines(checkpoint: str | Path, engines: Sequence[str | Path], dataset: str, root: str | Path,
                   settings: Sequence[str] | None = None, trials: int = 10, seed: int = 0, trial: int = 1,
                   device: str = "cpu", allow_foreign: bool = False) -> dict:
    """Measure each engine against the FP32 torch model of ``checkpoint`` (in the engine's own
    recipe); returns the report dict.

    An engine built from another checkpoint (its graph or sidecar records another sha256; a
    ``.pt`` "engine" whose file hash is not the checkpoint's) is refused unless ``allow_foreign``:
    the comparison would measure two models, not a precision. So is an engine whose source
    checkpoint nothing records (reported with ``"foreign": None`` when allowed)."""
    from mvd_edge.data.registry import default_eval_settings, load_dataset
    from mvd_edge.eval.reid import evaluate_features
    from mvd_edge.runtime.sidecar import model_sha256, sha256_file

    if not Path(checkpoint).is_file():
        raise UsageError(f"checkpoint not found: {checkpoint}")
    ckpt_sha = sha256_file(checkpoint)
    data = load_dataset(dataset, Path(root), trial=trial, seed=seed)
    if not data.test:
        raise DatasetError(f"{root}: the test split of {dataset} is empty")
    settings = list(settings or default_eval_settings(dataset))
    paths = [str(s.path) for s in data.test]
    refs: dict[str | None, tuple[np.ndarray, dict]] = {}

    def reference(recipe: str | None) -> tuple[np.ndarray, dict]:
        if recipe not in refs:
            ref_embedder = load_embedder(checkpoint, device=device, fused_head=False, recipe=recipe)
            feats = embed_samples(ref_embedder, paths, progress=f"fp32 torch ({ref_embedder.info.get('recipe')})")
            refs[recipe] = (feats, _flat(evaluate_features(feats, data.test, settings, n_trials=trials, seed=seed)))
        return refs[recipe]

    report: dict = {"checkpoint": str(checkpoint), "dataset": dataset, "settings": settings, "trials": trials,
                    "n_images": len(paths), "engines": []}
    for engine in engines:
        with load_embedder(engine) as emb:
            sha = model_sha256(emb, engine)
            # None: its source checkpoint is unknown (measured only with --allow-foreign)
            foreign = None if sha is None or ckpt_sha is None else sha != ckpt_sha
            if foreign and not allow_foreign:
                what = "is another checkpoint" if emb.backend == "torch" else "was built from another checkpoint"
                raise UsageError(f"{engine} {what} (sha256 {sha[:12]}..., {checkpoint} is "
                                 f"{ckpt_sha[:12]}...): verifying it against this one compares two models, not a "
                                 f"precision; give its own checkpoint, or --allow-foreign to compare anyway")
            if foreign is None and not allow_foreign:
                raise UsageError(f"{engine}: its source checkpoint is unknown (no hashes.checkpoint_sha256 in its "
                                 f"sidecar nor in its graph's metadata), so measuring it against {checkpoint} may "
                                 f"compare two models, not a precision; rebuild it from {checkpoint} (mvd-edge "
                                 f"export, then build-engine), or --allow-foreign to compare anyway")
            recipe = emb.info.get("recipe")
            ref, ref_metrics = reference(recipe)
            report.setdefault("reference", {"name": "torch-fp32", "recipe": recipe, "metrics": ref_metrics})
            if emb.dim != ref.shape[1]:
                raise UsageError(f"{engine}: embedding dim {emb.dim} != checkpoint's {ref.shape[1]} (different "
                                 "recipe?)")
            feats = embed_samples(emb, paths, progress=f"{Path(engine).name}")
        metrics = _flat(evaluate_features(feats, data.test, settings, n_trials=trials, seed=seed))
        drop = {k: ref_metrics[k] - v for k, v in metrics.items()}
        report["engines"].append({"engine": str(engine), "backend": emb.backend, "precision": emb.precision,
                                  "int8_flavour": emb.info.get("int8_flavour"), "cosine": compare(feats, ref).cosine(),
                                  "recipe": recipe, "reference_metrics": ref_metrics, "foreign": foreign,
                                  "metrics": metrics, "drop_vs_fp32": drop})
    if "reference" not in report:  # no engines
        report["reference"] = {"name": "torch-fp32", "recipe": None, "metrics": reference(None)[1]}
    return report


def _flat(results: dict) -> dict:
    """``{setting: {rank1: {mean}}}`` -> ``{"setting/rank1": mean}`` for rank1, mAP, mINP."""
    return {f"{s}/{k}": r[k]["mean"] for s, r in results.items() for k in ("rank1", "mAP", "mINP")}


def chart_path(json_path: Path, png_path: Path | None) -> Path | None:
    """The chart ``verify`` writes: ``png_path`` when given, else the JSON report's path with
    ``.png`` (so a new ``--json`` never collides with an earlier run's chart); None when
    matplotlib is missing (no chart is written, so there is nothing to refuse)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        return None
    if png_path is not None:
        return png_path
    derived = json_path.with_suffix(".png")
    return derived if derived != json_path else json_path.with_name(json_path.name + ".png")


def save_report(report: dict, json_path: Path | None, png_path: Path | None) -> list[Path]:
    """Write the JSON report and the chart; returns the files written."""
    written = []
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(json_path, report, indent=2)
        written.append(json_path)
    if png_path is None:
        return written
    setting = report["settings"][0]
    names = ["torch fp32"] + [f"{Path(e['engine']).name}\n{e['precision']}" for e in report["engines"]]
    r1 = [report["reference"]["metrics"][f"{setting}/rank1"]] + [e["metrics"][f"{setting}/rank1"] for e in report["engines"]]
    mAP = [report["reference"]["metrics"][f"{setting}/mAP"]] + [e["metrics"][f"{setting}/mAP"] for e in report["engines"]]
    cos = [1.0] + [e["cosine"]["mean"] for e in report["engines"]]
    fig, axes = plots.figure(ncols=2, figsize=(10, 4))
    if fig is None:
        return written
    ax1, ax2 = axes
    x = np.arange(len(names))
    ax1.bar(x - 0.2, r1, 0.4, label="Rank-1")
    ax1.bar(x + 0.2, mAP, 0.4, label="mAP")
    ax1.set_xticks(x, names, fontsize=7)
    ax1.set(ylabel="%", title=f"accuracy ({setting})")
    ax1.legend()
    ax2.bar(x, cos, color="tab:green")
    ax2.set_xticks(x, names, fontsize=7)
    ax2.set(ylim=(min(cos) - 0.01, 1.0005), title="mean cosine vs FP32 torch")
    if plots.save(fig, png_path, dpi=120):
        written.append(png_path)
    return written
