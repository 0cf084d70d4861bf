"""Data sets by name: one :class:`DatasetEntry` each in :data:`DATASETS`, the one list of names.

The trainer, ``mvd-edge train``/``eval`` (choices and ``--help``) and every ``--dataset`` that
loads a split read it; a new data set is a loader module plus one entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mvd_edge.core.config import ConfigError, SynthConfig
from mvd_edge.core.errors import UsageError
from mvd_edge.data.base import ReidDataset
from mvd_edge.data.folder import load_folder
from mvd_edge.data.llcm import load_llcm
from mvd_edge.data.regdb import load_regdb
from mvd_edge.data.synthetic import ensure_synthetic
from mvd_edge.data.sysu import load_sysu

__all__ = ["DATASETS", "DataOptions", "DatasetEntry", "dataset_entry", "default_eval_settings", "load_dataset"]


@dataclass(frozen=True)
class DataOptions:
    """The load options of the training config (``data.*``); each data set reads the ones it has."""

    trial: int = 1  # RegDB split 1..10
    use_val: bool = True  # hold out validation identities; False: an empty val split
    val_fraction: float = 0.1  # share of training identities held out (sets without their own val list)
    seed: int = 0  # seed of that hold-out

    @property
    def holdout(self) -> float:
        return self.val_fraction if self.use_val else 0.0


@dataclass(frozen=True)
class DatasetEntry:
    """One data set: how to read it, how it is evaluated, and (synthetic) how to write it."""

    name: str
    about: str  # one line for --help
    read: Callable[[Path, DataOptions], ReidDataset]
    eval_settings: tuple[str, ...]  # reported by default (names in mvd_edge.data.protocols)
    #: writes the set at its root before training when it is absent or stale: ``(root, synth, rewrite)``
    write: Callable[[Path, SynthConfig, bool], None] | None = None
    #: folder under the run's ``out`` used when ``data.root`` is unset; None: ``data.root`` is required
    default_root: str | None = None

    def root(self, root: str | None, out: str | Path) -> Path:
        """``data.root``, or this set's folder in the run's ``out``."""
        if root:
            return Path(root)
        if self.default_root is None:
            raise ConfigError(f"data.root is required for data.dataset={self.name!r}")
        return Path(out) / self.default_root


def _read_sysu(root: Path, o: DataOptions) -> ReidDataset:
    return load_sysu(root, use_val=o.use_val)


_SYSU_SETTINGS = ("sysu-all-single", "sysu-indoor-single")

DATASETS: dict[str, DatasetEntry] = {e.name: e for e in (
    DatasetEntry("synthetic", "synthetic people in SYSU-MM01 layout, written on first use (synth.*)", _read_sysu,
                 _SYSU_SETTINGS, write=ensure_synthetic, default_root="synthetic"),
    DatasetEntry("sysu", "SYSU-MM01: cameras 1-6, 3 and 6 infrared; its own val_id list", _read_sysu, _SYSU_SETTINGS),
    DatasetEntry("regdb", "RegDB: one visible, one thermal camera; data.trial picks split 1..10",
                 lambda root, o: load_regdb(root, trial=o.trial, val_fraction=o.holdout, seed=o.seed),
                 ("regdb-v2t", "regdb-t2v")),
    DatasetEntry("llcm", "LLCM: nine cameras recording both modalities, low light",
                 lambda root, o: load_llcm(root, val_fraction=o.holdout, seed=o.seed), ("llcm-v2i", "llcm-i2v")),
    DatasetEntry("folder", "your crops: ROOT/{train,val,test}/{rgb,ir}/<id>/c<cam>_*.jpg",
                 lambda root, o: load_folder(root, use_val=o.use_val, val_fraction=o.val_fraction, seed=o.seed),
                 ("cross-i2v",)),
)}


def dataset_entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise UsageError(f"unknown data set {name!r}: choose one of {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, root: str | Path, *, trial: int = 1, use_val: bool = True, val_fraction: float = 0.1,
                 seed: int = 0) -> ReidDataset:
    """Load a data set by name (one of :data:`DATASETS`; options: :class:`DataOptions`). SYSU-MM01 uses
    its own ``val_id`` list; RegDB, LLCM and a ``folder`` set without a ``val`` folder hold out
    ``val_fraction`` of the training identities. ``use_val=False`` gives an empty ``val`` (SYSU's and
    folder's val identities join train)."""
    return dataset_entry(name).read(Path(root), DataOptions(trial, use_val, val_fraction, seed))


def default_eval_settings(name: str) -> list[str]:
    """Evaluation settings (names from ``mvd_edge.data.protocols``) reported by default."""
    return list(dataset_entry(name).eval_settings)
