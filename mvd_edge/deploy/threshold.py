"""The matcher's operating point of an engine: the match threshold (and margin) that reaches a
target pair precision on identities the model has not seen, stored in the engine's sidecar
(``mvd-edge calibrate-threshold``; the procedure is :mod:`mvd_edge.eval.operating_point`).
"""

from __future__ import annotations

import time
from pathlib import Path

from mvd_edge.core.errors import UsageError
from mvd_edge.deploy.verify import embed_samples
from mvd_edge.runtime import load_embedder

SPLITS = ("all", "train", "val", "test")


def calibrate_threshold(engine: str | Path, dataset: str, root: str | Path, split: str = "all",
                        target_precision: float = 0.9, people: int = 6, scenes: int = 300, track_images: int | None = None,
                        seed: int = 0, device: str | None = None, write: bool = True,
                        progress: bool = False) -> dict:
    """Measure the matcher's operating point of ``engine`` on ``split`` of a data set; store it in the sidecar.

    Use identities the checkpoint was neither trained nor selected on (a separate data set or
    folder, ``split="all"``; the demo writes fresh synthetic identities): a threshold measured on
    the selection identities is optimistic. See :mod:`mvd_edge.eval.operating_point`.
    """
    from mvd_edge.data.registry import load_dataset
    from mvd_edge.eval.operating_point import DEFAULT_TRACK_IMAGES, operating_point
    from mvd_edge.runtime.sidecar import read_sidecar, set_operating_point

    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    ds = load_dataset(dataset, root)
    samples = {"all": ds.train + ds.val + ds.test, "train": ds.train, "val": ds.val, "test": ds.test}[split]
    if not samples:
        raise UsageError(f"the {split} split of {dataset} at {root} is empty")
    if write:
        read_sidecar(engine)  # fail before the embedding work: the point is stored in the engine's sidecar
    with load_embedder(engine, device=device) as emb:
        feats = embed_samples(emb, [str(s.path) for s in samples], progress="embedding" if progress else None)
    point = operating_point(feats, [s.pid for s in samples], [int(s.modality) for s in samples],
                            target_precision=target_precision, people=people, scenes=scenes,
                            track_images=track_images or DEFAULT_TRACK_IMAGES, seed=seed)
    point["data"] = {"dataset": dataset, "root": str(root), "split": split, "images": len(samples)}
    point["created"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    if write:
        set_operating_point(engine, point)
    return point
