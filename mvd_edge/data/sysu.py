"""SYSU-MM01 loader.

Layout (as distributed by the SYSU-MM01 authors)::

    root/
      cam1/ ... cam6/            one folder per camera; cam3 and cam6 are infrared
        0001/ ... 0533/          one folder per identity (4-digit, zero padded)
          0001.jpg ...           crops (.jpg; .jpeg/.png also accepted)
      exp/
        train_id.txt  val_id.txt  test_id.txt     comma-separated identity ids
        (or train_id.mat / val_id.mat / test_id.mat, variable ``id``)

The ``.txt`` split files hold one line of comma-separated ints; whitespace and line
breaks between ids are tolerated. Copies that ship only the ``.mat`` files are read
with ``scipy.io.loadmat`` (variable ``id``, a 1 x N array, as in the original release;
any single non-``__dunder__`` variable is accepted too). Standard split: 296 train,
99 val, 96 test identities.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mvd_edge.core.modality import Modality
from mvd_edge.data.base import IMAGE_SUFFIXES, DatasetError, ReidDataset, Sample, check_disjoint, require_dir

__all__ = ["SYSU_CAMS", "SYSU_IR_CAMS", "load_sysu", "read_split_ids"]

SYSU_CAMS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
SYSU_IR_CAMS: tuple[int, ...] = (3, 6)


def read_split_ids(exp_dir: Path, split: str) -> tuple[list[int], Path]:
    """Identity ids of ``split`` ("train"/"val"/"test") and the file they came from.

    Reads ``exp_dir/<split>_id.txt``, falling back to ``exp_dir/<split>_id.mat``.
    """
    txt = exp_dir / f"{split}_id.txt"
    mat = exp_dir / f"{split}_id.mat"
    if txt.is_file():
        tokens = [t for t in re.split(r"[,\s]+", txt.read_text()) if t]
        bad = [t for t in tokens if not re.fullmatch(r"\d+", t)]
        if bad:
            raise DatasetError(f"{txt}: expected comma-separated integer ids, found {bad[0]!r}")
        ids = [int(t) for t in tokens]
        source = txt
    elif mat.is_file():
        from scipy.io import loadmat

        try:
            content = loadmat(str(mat))
        except Exception as exc:  # scipy raises several types for corrupt files
            raise DatasetError(f"{mat}: cannot read the .mat file: {exc}") from exc
        names = [k for k in content if not (k.startswith("__") and k.endswith("__"))]
        if "id" in names:
            key = "id"
        elif len(names) == 1:
            key = names[0]
        else:
            raise DatasetError(f"{mat}: expected a variable 'id' with the identity ids, found {names}")
        arr = np.asarray(content[key]).reshape(-1)
        if arr.size and not np.all(np.equal(np.mod(arr, 1), 0)):
            raise DatasetError(f"{mat}: variable {key!r} does not hold integer ids")
        ids = [int(x) for x in arr]
        source = mat
    else:
        raise DatasetError(f"SYSU-MM01 {split} split: neither {txt} nor {mat} exists")
    if not ids:
        raise DatasetError(f"{source}: no identity ids listed")
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{source}: identity ids are listed more than once")
    return ids, source


def _images_of(root: Path, pid: int) -> list[Sample]:
    samples: list[Sample] = []
    for cam in SYSU_CAMS:
        folder = root / f"cam{cam}" / f"{pid:04d}"
        if not folder.is_dir():
            continue
        modality = Modality.INFRARED if cam in SYSU_IR_CAMS else Modality.VISIBLE
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                samples.append(Sample(path=path, pid=pid, cam=cam, modality=modality))
    return samples


def load_sysu(root: Path, use_val: bool = True) -> ReidDataset:
    """Load SYSU-MM01 from ``root`` (layout in the module docstring); ``use_val=False`` merges the ``val_id``
    identities into ``train`` and leaves ``val`` empty.

    Samples are ordered by identity, camera, file name; ``pid`` is the SYSU identity id, ``cam`` 1..6.
    ``meta`` has ``root``, ``split_files``, ``use_val``, ``ir_cams`` and ``missing_ids`` (split -> identity
    ids listed in the split file without any image on disk). :class:`DatasetError` when a required
    folder/file is missing (the message names it), split files are malformed or overlap, or a split has
    no image at all.
    """
    root = Path(root).expanduser().absolute()
    require_dir(root, "SYSU-MM01 root")
    for cam in SYSU_CAMS:
        require_dir(root / f"cam{cam}", "SYSU-MM01 camera folder")
    exp_dir = require_dir(root / "exp", "SYSU-MM01 split folder")

    ids: dict[str, list[int]] = {}
    sources: dict[str, str] = {}
    for split in ("train", "val", "test"):
        ids[split], src = read_split_ids(exp_dir, split)
        sources[split] = str(src)
    check_disjoint({split: set(v) for split, v in ids.items()}, "SYSU-MM01 split files overlap",
                   lambda a, b: f"{a} and {b} ({sources[a]}, {sources[b]})")

    images = {split: {pid: _images_of(root, pid) for pid in sorted(pids)} for split, pids in ids.items()}
    samples = {split: [s for found in by_pid.values() for s in found] for split, by_pid in images.items()}
    missing = {split: [pid for pid, found in by_pid.items() if not found] for split, by_pid in images.items()}
    for split in ("train", "test"):
        if not samples[split]:
            raise DatasetError(f"SYSU-MM01 {split} split: no image found for any of its {len(ids[split])} ids "
                               f"under {root}/cam<1..6>/<id:04d>/")
    train, val = samples["train"], samples["val"]
    if not use_val:
        train = sorted(train + val, key=lambda s: (s.pid, s.cam, s.path.name))
        val = []
    return ReidDataset(name="sysu", train=train, val=val, test=samples["test"],
                       meta={"root": str(root), "split_files": sources, "use_val": use_val, "ir_cams": SYSU_IR_CAMS,
                             "missing_ids": missing})
