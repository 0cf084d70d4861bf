"""Data-set records shared by every loader."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mvd_edge.core.errors import MvdEdgeError
from mvd_edge.core.modality import Modality


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
