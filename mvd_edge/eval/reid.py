"""Protocol evaluation, numpy only (SYSU-MM01, RegDB, LLCM, generic cross-modal).

Features of the test split are extracted once; every trial of every setting then draws its
query/gallery indices from them (``mvd_edge.data.protocols``) and is scored by
``mvd_edge.eval.metrics.evaluate``. Results report mean and std over trials.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mvd_edge.core import plots
from mvd_edge.data.base import Sample
from mvd_edge.data.protocols import DataSetWarning, make_trials
from mvd_edge.eval.metrics import evaluate

RANKS = (1, 5, 10, 20)


def _mean_std(values: np.ndarray) -> dict[str, float]:
    return {"mean": float(values.mean()), "std": float(values.std())}


def evaluate_features(feats: np.ndarray, test: Sequence[Sample], settings: Sequence[str], n_trials: int = 10,
                      seed: int = 0, max_rank: int = 20) -> dict:
    """Score precomputed features ``[len(test), D]`` under each protocol setting.

    Returns ``{setting: {"rank1","rank5","rank10","rank20","mAP","mINP": {"mean","std"},
    "cmc": [max_rank floats, mean over trials], "trials": n, "n_query", "n_gallery"}}``,
    all values in percent; ``"n_query_unmatched"`` counts queries whose identity has no image
    in the gallery at all (left out of every metric, with a :class:`DataSetWarning`: a test
    split with a half-empty modality must not pass for the protocol's number).
    """
    pids = np.array([s.pid for s in test])
    cams = np.array([s.cam for s in test])
    out: dict = {}
    for setting in settings:
        protocol, trials = make_trials(setting, list(test), n_trials=n_trials, seed=seed)
        per_trial = []
        for t in trials:
            q, g = feats[t.query], feats[t.gallery]
            distmat = -q @ g.T  # features are L2-normalised: ranking by cosine similarity
            per_trial.append(evaluate(distmat, pids[t.query], pids[t.gallery], cams[t.query], cams[t.gallery],
                                      protocol=protocol, max_rank=max_rank))
        cmc = np.stack([r["cmc"] for r in per_trial]) * 100.0
        res: dict = {f"rank{r}": _mean_std(cmc[:, r - 1]) for r in RANKS if r <= max_rank}
        for key in ("mAP", "mINP"):
            res[key] = _mean_std(np.array([r[key] for r in per_trial]) * 100.0)
        unmatched = ~np.isin(pids[trials[0].query], pids[trials[0].gallery])
        res.update(cmc=cmc.mean(0).tolist(), trials=len(trials), n_query=int(len(trials[0].query)),
                   n_gallery=int(len(trials[0].gallery)), n_query_unmatched=int(unmatched.sum()))
        if unmatched.any():
            n_ids = np.unique(pids[trials[0].query][unmatched]).size
            warnings.warn(f"{setting}: {int(unmatched.sum())} of {unmatched.size} queries ({n_ids} identities) have no "
                          f"image of their identity in the gallery's modality; they are left out of every metric, so "
                          f"the result is not the protocol's number (is a camera folder of that modality empty?)",
                          DataSetWarning, stacklevel=2)
        out[setting] = res
    return out


def summary_table(results: dict) -> list[list[str]]:
    """Rows ``[setting, R1, R10, R20, mAP, mINP]`` as 'mean ± std' strings."""
    rows = []
    for setting, r in results.items():
        cell = lambda k: f"{r[k]['mean']:.2f} ± {r[k]['std']:.2f}" if k in r else "-"  # noqa: E731
        rows.append([setting, cell("rank1"), cell("rank10"), cell("rank20"), cell("mAP"), cell("mINP")])
    return rows


def save_results(results: dict, json_path: Path | None = None, png_path: Path | None = None,
                 title: str = "CMC") -> None:
    """Write results JSON and a CMC-curve PNG (one curve per setting)."""
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(results, indent=2))
    if png_path is not None:
        fig, ax = plots.figure(figsize=(6, 4))
        if fig is None:
            return
        for setting, r in results.items():
            cmc = r["cmc"]
            ax.plot(range(1, len(cmc) + 1), cmc, marker="o", ms=3,
                    label=f"{setting} (R1 {r['rank1']['mean']:.1f}, mAP {r['mAP']['mean']:.1f})")
        ax.set(xlabel="rank", ylabel="matching rate (%)", ylim=(0, 100), title=title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
        plots.save(fig, png_path, dpi=120)
