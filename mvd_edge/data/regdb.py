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

from pathlib import Path

from mvd_edge.core.modality import Modality
from mvd_edge.data.base import (
    TEST_PID_OFFSET,
    DatasetError,
    ReidDataset,
    Sample,
    check_images_exist,
    holdout_identities,
    read_index_file,
    require_dir,
)

__all__ = ["REGDB_TRIALS", "load_regdb"]

REGDB_TRIALS: tuple[int, ...] = tuple(range(1, 11))

_MODALITIES: tuple[tuple[str, Modality, int], ...] = (
    ("visible", Modality.VISIBLE, 1),
    ("thermal", Modality.INFRARED, 2),
)


def _read(root: Path, split: str, trial: int, pid_offset: int) -> list[Sample]:
    samples: list[Sample] = []
    for word, modality, cam in _MODALITIES:
        index = root / "idx" / f"{split}_{word}_{trial}.txt"
        for rel, label in read_index_file(index, f"RegDB {split} {word} index, trial {trial}"):
            if label >= TEST_PID_OFFSET:
                raise DatasetError(f"{index}: label {label} is >= {TEST_PID_OFFSET}; RegDB labels are 0..205")
            samples.append(
                Sample(path=root / rel.lstrip("/"), pid=label + pid_offset, cam=cam, modality=modality)
            )
    return samples


def load_regdb(root: Path, trial: int = 1, val_fraction: float = 0.1, seed: int = 0) -> ReidDataset:
    """Load one RegDB trial (layout in the module docstring).

    Args:
        root: data set root holding ``idx/`` and the image folders.
        trial: split 1..10.
        val_fraction: fraction of the training identities held out as ``val``
            (seeded, see :func:`~mvd_edge.data.base.holdout_identities`);
            0 leaves ``val`` empty.
        seed: seed of the hold-out.

    Returns:
        ``ReidDataset`` named ``"regdb"``: train pids are the index labels, test pids
        the labels + ``TEST_PID_OFFSET``; ``meta`` has ``root``, ``trial``,
        ``test_pid_offset``, ``val_fraction`` and ``seed``.

    Raises:
        DatasetError: bad ``trial``, a missing index file or listed image (the message
            names the path), or a malformed index line.
    """
    if isinstance(trial, bool) or trial not in REGDB_TRIALS:
        raise DatasetError(f"RegDB trial must be one of 1..10, got {trial!r}")
    root = Path(root).expanduser().absolute()
    require_dir(root, "RegDB root")
    require_dir(root / "idx", "RegDB index folder")

    train_all = _read(root, "train", trial, 0)
    test = _read(root, "test", trial, TEST_PID_OFFSET)
    check_images_exist(train_all, f"RegDB trial {trial} train")
    check_images_exist(test, f"RegDB trial {trial} test")
    train, val = holdout_identities(train_all, val_fraction, seed)
    return ReidDataset(
        name="regdb",
        train=train,
        val=val,
        test=test,
        meta={
            "root": str(root),
            "trial": trial,
            "test_pid_offset": TEST_PID_OFFSET,
            "val_fraction": val_fraction,
            "seed": seed,
        },
    )
