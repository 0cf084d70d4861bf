"""RegDB loader.

Layout (as used by the community's reference code, e.g. AGW)::

    root/
      Visible/ ...  Thermal/ ...          the images (RegDB ships .bmp)
      idx/
        train_visible_{t}.txt  train_thermal_{t}.txt
        test_visible_{t}.txt   test_thermal_{t}.txt        t = 1..10

Each index line is ``relative/path label`` (path relative to ``root``). Each of the ten
trials splits the 412 identities into 206 train / 206 test identities. The train and
the test files both number their identities from 0, so the same number means different
people: test pids are shifted by :data:`~mvd_edge.data.base.TEST_PID_OFFSET`.
Visible images get camera 1, thermal images camera 2.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mvd_edge.core.modality import Modality
from mvd_edge.data.base import DatasetError, ReidDataset, Sample, load_index_lists, read_index_file

__all__ = ["REGDB_TRIALS", "load_regdb"]

REGDB_TRIALS: tuple[int, ...] = tuple(range(1, 11))

_MODALITIES: tuple[tuple[str, Modality, int], ...] = (("visible", Modality.VISIBLE, 1), ("thermal", Modality.INFRARED, 2))


def _read(root: Path, split: str, pid_offset: int, trial: int) -> list[Sample]:
    return [Sample(path=root / rel.lstrip("/"), pid=label + pid_offset, cam=cam, modality=modality)
            for word, modality, cam in _MODALITIES
            for rel, label in read_index_file(root / "idx" / f"{split}_{word}_{trial}.txt",
                                              f"RegDB {split} {word} index, trial {trial}")]


def load_regdb(root: Path, trial: int = 1, val_fraction: float = 0.1, seed: int = 0) -> ReidDataset:
    """Load one RegDB ``trial`` (split 1..10; layout in the module docstring), holding out ``val_fraction``
    of the training identities as ``val`` (seeded, :func:`~mvd_edge.data.base.holdout_identities`; 0: none).

    Train pids are the index labels, test pids the labels + ``TEST_PID_OFFSET``; ``meta`` has ``root``,
    ``trial``, ``test_pid_offset``, ``val_fraction`` and ``seed``. :class:`DatasetError` for a bad
    ``trial``, a missing index file or listed image (the message names the path), or a malformed line.
    """
    if isinstance(trial, bool) or trial not in REGDB_TRIALS:
        raise DatasetError(f"RegDB trial must be one of 1..10, got {trial!r}")
    return load_index_lists("regdb", root, f"RegDB trial {trial}", partial(_read, trial=trial), val_fraction,
                            seed, trial=trial)
