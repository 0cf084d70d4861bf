"""Data-set records, and the helpers shared by the loaders."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from mvd_edge.core.errors import MvdEdgeError, UsageError
from mvd_edge.core.modality import Modality

#: File suffixes (lower case) taken as images.
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png"})

#: Added to the test labels of data sets whose train and test label ranges overlap
#: (RegDB, LLCM), so train and test identities never share a pid.
TEST_PID_OFFSET = 10000


@dataclass(frozen=True)
class Sample:
    """One labelled crop on disk.

    ``pid`` is the data set's own identity id (not yet relabelled to 0..C-1),
    ``cam`` the 1-based camera number as the data set names it.
    """

    path: Path
    pid: int
    cam: int
    modality: Modality


@dataclass
class ReidDataset:
    """Samples of a data set split by identity.

    ``train`` and ``val`` are disjoint in identities; ``val`` is used for model
    selection and may be empty. ``test`` holds the test identities' samples from which
    the evaluation protocol draws query and gallery sets; it is never used for training,
    calibration or model selection. ``meta`` carries protocol facts (e.g. ``trial``).
    """

    name: str
    train: list[Sample]
    val: list[Sample]
    test: list[Sample]
    meta: dict = field(default_factory=dict)

    def train_pids(self) -> list[int]:
        return sorted({s.pid for s in self.train})


class DatasetError(MvdEdgeError, ValueError):
    """A data set on disk is missing, incomplete or malformed; the message says what and where."""


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else :class:`DatasetError` naming it."""
    if not path.is_dir():
        raise DatasetError(f"{what}: folder not found: {path}")
    return path


def read_index_file(path: Path, what: str) -> list[tuple[str, int]]:
    """Parse an index file of ``relative/path label`` lines (RegDB, LLCM).

    Blank lines are skipped; the label is the last whitespace-separated token and must
    be a non-negative integer below ``TEST_PID_OFFSET``. Returns ``[(relative_path, label), ...]``
    in file order.
    """
    if not path.is_file():
        raise DatasetError(f"{what}: file not found: {path}")
    entries: list[tuple[str, int]] = []
    for lineno, raw in enumerate(path.read_text().splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) < 2 or not re.fullmatch(r"\d+", parts[-1]):
            raise DatasetError(f"{path}:{lineno}: expected 'relative/path label', got {raw!r}")
        if int(parts[-1]) >= TEST_PID_OFFSET:
            raise DatasetError(f"{path}:{lineno}: label {parts[-1]} is >= {TEST_PID_OFFSET}, the test identities' offset")
        entries.append((" ".join(parts[:-1]), int(parts[-1])))
    if not entries:
        raise DatasetError(f"{what}: index file is empty: {path}")
    return entries


def load_index_lists(name: str, root: Path, what: str, read: Callable[[Path, str, int], list[Sample]],
                     val_fraction: float, seed: int, **meta) -> ReidDataset:
    """A data set listed in ``root/idx`` (RegDB, LLCM): ``read(root, split, pid_offset)`` gives the
    ``train`` and ``test`` samples; test pids are shifted by ``TEST_PID_OFFSET`` (both lists number
    their identities from 0), every listed image must exist, and ``val_fraction`` of the training
    identities are held out (:func:`holdout_identities`). ``meta``: more facts for ``ReidDataset.meta``."""
    root = Path(root).expanduser().absolute()
    require_dir(root, f"{what} root")
    require_dir(root / "idx", f"{what} index folder")
    train_all, test = read(root, "train", 0), read(root, "test", TEST_PID_OFFSET)
    check_images_exist(train_all, f"{what} train")
    check_images_exist(test, f"{what} test")
    train, val = holdout_identities(train_all, val_fraction, seed)
    return ReidDataset(name=name, train=train, val=val, test=test, meta={
        "root": str(root), **meta, "test_pid_offset": TEST_PID_OFFSET, "val_fraction": val_fraction, "seed": seed})


def check_images_exist(samples: Sequence[Sample], what: str) -> None:
    """:class:`DatasetError` naming the first listed image that is not on disk."""
    missing = [s.path for s in samples if not s.path.is_file()]
    if missing:
        raise DatasetError(f"{what}: {len(missing)} listed image(s) not found, first: {missing[0]}")


def check_disjoint(ids: dict[str, set[int]], what: str, both: Callable[[str, str], str]) -> None:
    """:class:`DatasetError` ``"<what>: N id(s) in both <both(a, b)>, e.g. ..."`` when splits ``a`` and ``b``
    of ``ids`` (split -> identity ids) share an identity."""
    for a, b in itertools.combinations(ids, 2):
        common = sorted(ids[a] & ids[b])
        if common:
            raise DatasetError(f"{what}: {len(common)} id(s) in both {both(a, b)}, e.g. {common[:5]}")


def holdout_identities(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
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
