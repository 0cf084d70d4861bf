"""The synthetic data set: SYSU-MM01 layout, written by :mod:`mvd_edge.synth` on first use.

The renderer (OpenCV) is imported only when a set has to be written.
"""

from __future__ import annotations

import json
from pathlib import Path

from mvd_edge.core.config import ConfigError, SynthConfig

__all__ = ["ensure_synthetic"]


def ensure_synthetic(root: Path, synth: SynthConfig, rewrite: bool = True) -> None:
    """Write the synthetic SYSU-layout data set at ``root`` unless it is already complete and
    was written with the same ``synth`` settings.

    A complete set written with other settings is rewritten when ``rewrite`` (the folder is the
    run's own, e.g. ``<out>/synthetic``); otherwise (a folder the user named) it is left alone
    and a :class:`ConfigError` says what differs.
    """
    from mvd_edge.synth.dataset import MARKER, sysu_marker, write_sysu

    s = synth
    want = sysu_marker(s.n_ids, s.images_per_cam, (s.height, s.width), s.seed, render=s.render,
                       scene_people=s.scene_people)
    if (root / "exp" / "test_id.txt").is_file():
        try:
            meta = json.loads((root / MARKER).read_text())
        except (OSError, ValueError):
            return  # a complete set without our marker: not ours to judge or touch
        have = {k: meta.get(k, "crops" if k == "render" else None) for k in want}  # older markers: no render
        if have == want:
            return
        diff = {k: (have[k], want[k]) for k in want if have[k] != want[k]}
        if not rewrite:
            raise ConfigError(
                f"data.root {root} holds a synthetic set written with other settings "
                f"({', '.join(f'synth.{k}: {a!r} there, {b!r} asked' for k, (a, b) in diff.items())}); "
                "set those synth.* values, train on it as it is with --dataset sysu, or choose another data.root")
        print(f"synthetic set at {root} was written with other settings ({diff}); rewriting it", flush=True)
    write_sysu(root, n_ids=s.n_ids, images_per_cam=s.images_per_cam, size=(s.height, s.width), seed=s.seed,
               progress=True, render=s.render, scene_people=s.scene_people)
