"""Generic folder format for a user's own labelled crops.

Layout::

    root/
      train/                      required
        rgb/                      visible crops      (either modality folder may be absent,
        ir/                       infrared crops      but a split needs at least one image)
          <pid>/                  identity folder: a non-negative integer, e.g. 17 or 0017
            c<cam>_<anything>.jpg crop; <cam> = 1-based camera number, e.g. c2_000153.jpg
      val/                        optional, same structure (identities for model selection)
      test/                       required, same structure

Rules:

* split folders are exactly ``train``, ``val``, ``test``; modality folders exactly
  ``rgb`` and ``ir``; any other folder there is an error (so typos do not silently drop
  data). Hidden entries (``.name``) are ignored.
* image files end in ``.jpg``, ``.jpeg`` or ``.png`` (any case) and their names start
  with ``c<digits>_``; other image names are an error. Non-image files are ignored and
  counted in ``meta["ignored_files"]``.
* the pid is the folder's integer value, shared across modalities (the same person in
  ``rgb/17`` and ``ir/17``); a camera number may appear in both modalities (a
  day/night camera).
* identities must not repeat across splits. Without a ``val`` folder, ``val_fraction``
  of the train identities are held out as ``val`` (seeded).

Evaluate with the ``cross-i2v`` setting (all IR test crops query against all RGB test
crops) or ``cross-v2i``.
"""

from __future__ import annotations

import re
from pathlib import Path

from mvd_edge.core.modality import Modality
from mvd_edge.data.base import (
    IMAGE_SUFFIXES,
    DatasetError,
    ReidDataset,
    Sample,
    check_disjoint,
    holdout_identities,
    require_dir,
)

__all__ = ["FOLDER_MODALITIES", "FOLDER_SPLITS", "load_folder"]

FOLDER_SPLITS: tuple[str, ...] = ("train", "val", "test")
FOLDER_MODALITIES: dict[str, Modality] = {"rgb": Modality.VISIBLE, "ir": Modality.INFRARED}

_NAME = re.compile(r"c(\d+)_.*", re.IGNORECASE)


def _visible_entries(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _read_split(split_dir: Path) -> tuple[list[Sample], int]:
    samples: list[Sample] = []
    ignored = 0
    for mod_dir in _visible_entries(split_dir):
        if not mod_dir.is_dir() or mod_dir.name not in FOLDER_MODALITIES:
            raise DatasetError(f"unexpected entry {mod_dir}: a split folder holds only 'rgb' and 'ir' folders")
        modality = FOLDER_MODALITIES[mod_dir.name]
        for pid_dir in _visible_entries(mod_dir):
            if not pid_dir.is_dir() or not re.fullmatch(r"\d+", pid_dir.name):
                raise DatasetError(f"unexpected entry {pid_dir}: expected identity folders named by an integer")
            pid = int(pid_dir.name)
            for path in _visible_entries(pid_dir):
                if not path.is_file():
                    raise DatasetError(f"unexpected folder {path}: identity folders hold image files only")
                if path.suffix.lower() not in IMAGE_SUFFIXES:
                    ignored += 1
                    continue
                m = _NAME.fullmatch(path.stem)
                if m is None or int(m.group(1)) < 1:
                    raise DatasetError(f"bad image name {path}: expected 'c<cam>_<anything>{path.suffix}' "
                                       "with a 1-based camera number, e.g. c1_0001.jpg")
                samples.append(Sample(path=path, pid=pid, cam=int(m.group(1)), modality=modality))
    if not samples:
        raise DatasetError(f"no image found under {split_dir}/<rgb|ir>/<pid>/c<cam>_*.jpg")
    return samples, ignored


def load_folder(root: Path, use_val: bool = True, val_fraction: float = 0.1, seed: int = 0) -> ReidDataset:
    """Load a data set in the generic folder format (see the module docstring).

    ``use_val=False`` gives an empty ``val`` (a ``val`` folder's identities join ``train``); without a
    ``val`` folder, ``val_fraction`` of the train identities are held out as ``val`` (seeded; 0: none).
    Samples are ordered by modality folder, pid, file name; ``meta`` has ``root``, ``val_source``
    (``"folder"``, ``"holdout"`` or ``"none"``) and ``ignored_files``. :class:`DatasetError` for a missing
    ``train``/``test`` folder (named), unexpected entries, bad file names, or identities shared between splits.
    """
    root = Path(root).expanduser().absolute()
    require_dir(root, "folder data set root")
    for entry in _visible_entries(root):
        if entry.is_dir() and entry.name not in FOLDER_SPLITS:
            raise DatasetError(f"unexpected folder {entry}: the root holds only train/, val/, test/")
    read = {split: _read_split(require_dir(root / split, f"folder data set {split} split"))
            for split in ("train", "test", "val") if split != "val" or (root / "val").is_dir()}
    train, test = read["train"][0], read["test"][0]
    val, val_source = (read["val"][0], "folder") if "val" in read else ([], "holdout")
    check_disjoint({k: {s.pid for s in v} for k, v in (("train", train), ("val", val), ("test", test))},
                   "identities must not repeat across splits", lambda a, b: f"{root / a} and {root / b}")
    if not use_val:
        train, val, val_source = train + val, [], "none"
    elif val_source == "holdout":
        train, val = holdout_identities(train, val_fraction, seed)
        if not val:
            val_source = "none"
    return ReidDataset(name="folder", train=train, val=val, test=test,
                       meta={"root": str(root), "val_source": val_source,
                             "ignored_files": sum(n for _, n in read.values())})
