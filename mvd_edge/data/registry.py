"""Data-set registry, and helpers shared by the loaders.

``load_dataset(name, root, ...)`` dispatches to the loader of each supported layout:

============  ==========================================  =========================
name          loader                                      default evaluation
============  ==========================================  =========================
``sysu``      :func:`mvd_edge.data.sysu.load_sysu`    sysu-all-single, sysu-indoor-single
``regdb``     :func:`mvd_edge.data.regdb.load_regdb`  regdb-v2t, regdb-t2v
``llcm``      :func:`mvd_edge.data.llcm.load_llcm`    llcm-v2i, llcm-i2v
``folder``    :func:`mvd_edge.data.folder.load_folder`  cross-i2v
============  ==========================================  =========================

The loader modules import the helpers below from here, so this module imports them
lazily (inside :func:`load_dataset`) to avoid an import cycle.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.data.base import DatasetError, ReidDataset, Sample

__all__ = [
    "DATASETS",
    "IMAGE_SUFFIXES",
    "TEST_PID_OFFSET",
    "check_images_exist",
    "default_eval_settings",
    "holdout_identities",
    "load_dataset",
    "read_index_file",
    "require_dir",
    "require_file",
]

DATASETS: tuple[str, ...] = ("sysu", "regdb", "llcm", "folder")

#: File suffixes (lower case) taken as images.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})

#: Added to the test labels of data sets whose train and test label ranges overlap
#: (RegDB, LLCM), so train and test identities never share a pid.
TEST_PID_OFFSET = 10000

_DEFAULT_EVAL: dict[str, list[str]] = {
    "sysu": ["sysu-all-single", "sysu-indoor-single"],
    "regdb": ["regdb-v2t", "regdb-t2v"],
    "llcm": ["llcm-v2i", "llcm-i2v"],
    "folder": ["cross-i2v"],
}


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else :class:`DatasetError` naming it."""
    if not path.is_dir():
        raise DatasetError(f"{what}: folder not found: {path}")
    return path


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else :class:`DatasetError` naming it."""
    if not path.is_file():
        raise DatasetError(f"{what}: file not found: {path}")
    return path


def read_index_file(path: Path, what: str) -> list[tuple[str, int]]:
    """Parse an index file of ``relative/path label`` lines (RegDB, LLCM).

    Blank lines are skipped; the label is the last whitespace-separated token and must
    be a non-negative integer. Returns ``[(relative_path, label), ...]`` in file order.
    """
    require_file(path, what)
    entries: list[tuple[str, int]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) < 2 or not re.fullmatch(r"\d+", parts[-1]):
            raise DatasetError(f"{path}:{lineno}: expected 'relative/path label', got {raw!r}")
        entries.append((" ".join(parts[:-1]), int(parts[-1])))
    if not entries:
        raise DatasetError(f"{what}: index file is empty: {path}")
    return entries


def check_images_exist(samples: Sequence[Sample], what: str) -> None:
    """:class:`DatasetError` naming the first listed image that is not on disk."""
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise DatasetError(
            f"{what}: {len(missing)} listed image(s) not found, first: {missing[0]}"
        )


def holdout_identities(
    samples: Sequence[Sample], fraction: float, seed: int
) -> tuple[list[Sample], list[Sample]]:
    """Split samples by identity into ``(train, val)``, deterministically for ``seed``.

    ``round(fraction * n_ids)`` identities (at least 1 when ``fraction > 0``, at most
    ``n_ids - 1``) are drawn with ``numpy.random.default_rng(seed)`` from the sorted
    identity list; all their samples (both modalities) go to ``val``. Sample order is
    preserved. ``fraction == 0`` gives an empty ``val``.
    """
    if not 0.0 <= fraction < 1.0:
        raise UsageError(f"val_fraction must be in [0, 1), got {fraction}")
    pids = sorted({s.pid for s in samples})
    if fraction == 0.0 or len(pids) < 2:
        return list(samples), []
    n_val = min(max(1, int(round(fraction * len(pids)))), len(pids) - 1)
    rng = np.random.default_rng(seed)
    val_ids = {pids[i] for i in rng.choice(len(pids), size=n_val, replace=False).tolist()}
    train = [s for s in samples if s.pid not in val_ids]
    val = [s for s in samples if s.pid in val_ids]
    return train, val


def load_dataset(
    name: str,
    root: str | Path,
    *,
    trial: int = 1,
    use_val: bool = True,
    val_fraction: float = 0.1,
    seed: int = 0,
) -> ReidDataset:
    """Load a data set by name.

    Args:
        name: one of :data:`DATASETS`.
        root: the data set's root folder.
        trial: RegDB split 1..10 (ignored by the others).
        use_val: hold out validation identities for model selection. SYSU-MM01 uses its
            own ``val_id`` list; RegDB, LLCM and a ``folder`` set without a ``val``
            folder hold out ``val_fraction`` of the training identities. ``False``
            gives an empty ``val`` (SYSU's and folder's val identities join train).
        val_fraction: fraction of training identities held out (see ``use_val``).
        seed: seed of the identity hold-out.
    """
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    root = Path(root)
    fraction = val_fraction if use_val else 0.0
    if name == "sysu":
        from mvd_edge.data.sysu import load_sysu

        return load_sysu(root, use_val=use_val)
    if name == "regdb":
        from mvd_edge.data.regdb import load_regdb

        return load_regdb(root, trial=trial, val_fraction=fraction, seed=seed)
    if name == "llcm":
        from mvd_edge.data.llcm import load_llcm

        return load_llcm(root, val_fraction=fraction, seed=seed)
    from mvd_edge.data.folder import load_folder

    return load_folder(root, use_val=use_val, val_fraction=val_fraction, seed=seed)


def default_eval_settings(name: str) -> list[str]:
    """Evaluation settings (names from ``mvd_edge.data.protocols``) reported by default."""
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    return list(_DEFAULT_EVAL[name])
