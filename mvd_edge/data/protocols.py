"""Evaluation protocols: which test samples are queries and which form the gallery.

A :class:`Trial` is one query/gallery draw, given as integer indices into a data set's
``test`` list; protocols with random gallery sampling give several trials whose metrics
are averaged. Everything is deterministic for a given ``seed`` (trial ``t`` draws with
``numpy.random.default_rng(seed + t)``), independent of global random state.

Sources of the protocol facts (public reference code, consulted for facts only):

* SYSU-MM01 (Wu et al., ICCV 2017; AGW ``data_manager.py`` of
  ``mangye16/Cross-Modal-Re-ID-baseline``): query = every IR image (cameras 3 and 6)
  of the test identities, in both all-search and indoor-search; gallery = RGB cameras
  1, 2, 4, 5 (all-search) or 1, 2 (indoor-search), drawing per identity and camera one
  image (single-shot) or ten (multi-shot); ten trials, metrics averaged. The SYSU
  authors draw from a fixed ``rand_perm_cam.mat`` and AGW with ``random.seed(trial)``;
  we draw with numpy's seeded generator, so individual galleries differ from both
  while the protocol is the same. Metric protocol ``"sysu"`` (cam-2 gallery removal
  for cam-3 queries, unique-identity CMC).
* RegDB (Nguyen et al., 2017; AGW ``test.py``): every test image is used; visible ->
  thermal puts visible images in the query and thermal in the gallery, thermal ->
  visible the reverse. The ten RegDB "trials" are ten different train/test splits
  (``idx/*_{t}.txt``), i.e. ten trainings, so each split yields one :class:`Trial`.
  Metric protocol ``"regdb"`` (nothing removed, plain CMC).
* LLCM (Zhang & Wang, CVPR 2023; ``ZYK100/LLCM`` ``DEEN/data_manager.py`` and
  ``test.py``): query = every test image of one modality; gallery = one image per
  identity per camera of the other modality (``random.choice`` per folder), redrawn for
  ten trials and averaged. Metric protocol ``"llcm"`` (``eval_llcm``: gallery items with
  the query's identity and camera are removed; unique-identity CMC). Note: in that
  code the VIS->IR mode (``test_mode=[2, 1]``) transposes the distance matrix, so the
  rows it scores are the *sampled infrared* images against *all* visible images; here
  ``llcm-v2i`` means what its name says (all visible queries, sampled infrared gallery).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.data.base import DatasetError, Sample

__all__ = ["PROTOCOLS", "SYSU_GALLERY_CAMS", "SYSU_QUERY_CAMS", "Trial", "cross_trials", "llcm_trials", "make_trials",
           "protocol_names", "regdb_trials", "sysu_trials"]

#: SYSU-MM01 infrared cameras (the query side in both search modes).
SYSU_QUERY_CAMS: tuple[int, ...] = (3, 6)
#: SYSU-MM01 visible gallery cameras per search mode.
SYSU_GALLERY_CAMS: dict[str, tuple[int, ...]] = {"all": (1, 2, 4, 5), "indoor": (1, 2)}

#: Evaluation settings: name -> one-line description.
PROTOCOLS: dict[str, str] = {
    "sysu-all-single": "SYSU-MM01 all-search, single-shot: IR cams 3,6 query vs 1 RGB image/id/cam from cams 1,2,4,5; 10 trials",
    "sysu-all-multi": "SYSU-MM01 all-search, multi-shot: IR cams 3,6 query vs 10 RGB images/id/cam from cams 1,2,4,5; 10 trials",
    "sysu-indoor-single": "SYSU-MM01 indoor-search, single-shot: IR cams 3,6 query vs 1 RGB image/id/cam from cams 1,2; 10 trials",
    "sysu-indoor-multi": "SYSU-MM01 indoor-search, multi-shot: IR cams 3,6 query vs 10 RGB images/id/cam from cams 1,2; 10 trials",
    "regdb-v2t": "RegDB visible -> thermal: all visible test images query vs all thermal test images",
    "regdb-t2v": "RegDB thermal -> visible: all thermal test images query vs all visible test images",
    "llcm-v2i": "LLCM visible -> infrared: all visible test images query vs 1 IR image/id/cam; 10 trials",
    "llcm-i2v": "LLCM infrared -> visible: all IR test images query vs 1 visible image/id/cam; 10 trials",
    "cross-i2v": "any data set: all IR test images query vs all visible test images (plain metrics)",
    "cross-v2i": "any data set: all visible test images query vs all IR test images (plain metrics)",
}


@dataclass(frozen=True, eq=False)
class Trial:
    """One query/gallery draw over a data set's ``test`` list.

    Attributes:
        name: e.g. ``"sysu-all-single-t3"``.
        query: int64 ``[Q]`` indices into the test list (read-only).
        gallery: int64 ``[G]`` indices into the test list (read-only).
    """

    name: str
    query: np.ndarray
    gallery: np.ndarray

    def __post_init__(self) -> None:
        for field_name in ("query", "gallery"):
            arr = np.array(getattr(self, field_name), dtype=np.int64).reshape(-1)
            arr.setflags(write=False)
            object.__setattr__(self, field_name, arr)


class DataSetWarning(UserWarning):
    """The test split does not fill a protocol (a camera without images): its numbers are partial."""


def protocol_names() -> list[str]:
    """Names of every evaluation setting accepted by :func:`make_trials`."""
    return list(PROTOCOLS)


def _check_trials(n_trials: int, shots: int) -> None:
    if n_trials < 1:
        raise UsageError(f"n_trials must be >= 1, got {n_trials}")
    if shots < 1:
        raise ValueError(f"shots must be >= 1, got {shots}")


def _sample_gallery(candidates: dict[tuple[int, int], list[int]], shots: int, rng: np.random.Generator) -> np.ndarray:
    """``shots`` indices (all if fewer) per (pid, cam) group, groups in sorted order."""
    picked: list[int] = []
    for key in sorted(candidates):
        idx = candidates[key]
        if len(idx) <= shots:
            picked.extend(idx)
        else:
            chosen = rng.choice(len(idx), size=shots, replace=False)
            picked.extend(idx[i] for i in sorted(chosen.tolist()))
    return np.asarray(picked, dtype=np.int64)


def _groups(test: Sequence[Sample], keep) -> dict[tuple[int, int], list[int]]:
    """Indices of the samples ``keep`` accepts, grouped by (pid, cam): the gallery candidates."""
    groups: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(test):
        if keep(s):
            groups.setdefault((s.pid, s.cam), []).append(i)
    return groups


def _require_sides(protocol: str, query, gallery, query_what: str, gallery_what: str) -> None:
    """:class:`DatasetError` ``"<protocol>no <what> for the query"`` (or gallery) when that side is empty."""
    if not len(query):
        raise DatasetError(f"{protocol}no {query_what} for the query")
    if not len(gallery):
        raise DatasetError(f"{protocol}no {gallery_what} for the gallery")


def _sampled_trials(name: str, query, candidates: dict[tuple[int, int], list[int]], shots: int, n_trials: int,
                    seed: int) -> list[Trial]:
    """``n_trials`` trials sharing ``query``; trial ``t`` draws its gallery with seed ``seed + t``."""
    return [Trial(name=f"{name}-t{t}", query=np.asarray(query, dtype=np.int64),
                  gallery=_sample_gallery(candidates, shots, np.random.default_rng(seed + t)))
            for t in range(n_trials)]


def sysu_trials(test: Sequence[Sample], mode: str = "all", shots: int = 1, n_trials: int = 10,
                seed: int = 0) -> list[Trial]:
    """SYSU-MM01 ``mode`` search (``"all"``: gallery cams 1,2,4,5; ``"indoor"``: 1,2): ``n_trials`` trials
    sharing one query (every infrared cam 3/6 test image), each gallery ``shots`` images per identity and
    camera (1 single-shot, 10 multi-shot; a camera with fewer gives all), trial ``t`` drawn with seed ``seed + t``."""
    if mode not in SYSU_GALLERY_CAMS:
        raise ValueError(f"unknown SYSU-MM01 search mode {mode!r}: use 'all' or 'indoor'")
    _check_trials(n_trials, shots)
    gallery_cams = SYSU_GALLERY_CAMS[mode]
    query = [i for i, s in enumerate(test) if s.modality is Modality.INFRARED and s.cam in SYSU_QUERY_CAMS]
    candidates = _groups(test, lambda s: s.modality is Modality.VISIBLE and s.cam in gallery_cams)
    _require_sides("SYSU-MM01 protocol: ", query, candidates, "infrared (cam 3 / cam 6) test image",
                   f"visible test image in cams {gallery_cams}")
    missing = [f"query cam {c}" for c in SYSU_QUERY_CAMS if not any(test[i].cam == c for i in query)]
    missing += [f"gallery cam {c}" for c in gallery_cams if not any(k[1] == c for k in candidates)]
    if missing:  # the numbers would carry the protocol's name for a part of it: say so loudly
        warnings.warn(f"SYSU-MM01 {mode}-search: the test split has no images in {', '.join(missing)}; the "
                      f"result covers the other cameras only and is not the protocol's number", DataSetWarning,
                      stacklevel=2)
    shot_name = {1: "single", 10: "multi"}.get(shots, f"{shots}shot")
    return _sampled_trials(f"sysu-{mode}-{shot_name}", query, candidates, shots, n_trials, seed)


# direction -> (query modality, gallery modality)
_DIRECTIONS: dict[str, tuple[Modality, Modality]] = {
    "v2t": (Modality.VISIBLE, Modality.INFRARED), "t2v": (Modality.INFRARED, Modality.VISIBLE),
    "v2i": (Modality.VISIBLE, Modality.INFRARED), "i2v": (Modality.INFRARED, Modality.VISIBLE)}


def _modalities(direction: str, allowed: tuple[str, ...]) -> tuple[Modality, Modality]:
    if direction not in allowed:
        raise ValueError(f"unknown direction {direction!r}: use {' or '.join(repr(d) for d in allowed)}")
    return _DIRECTIONS[direction]


def _all_of(test: Sequence[Sample], modality: Modality) -> np.ndarray:
    return np.asarray([i for i, s in enumerate(test) if s.modality is modality], dtype=np.int64)


def cross_trials(test: Sequence[Sample], direction: str, name: str | None = None) -> list[Trial]:
    """One trial named ``name`` (default ``"cross-<direction>"``): every test image of one modality against every
    one of the other; ``direction``: ``"v2i"``/``"v2t"`` (visible query) or ``"i2v"``/``"t2v"`` (IR query)."""
    q_mod, g_mod = _modalities(direction, tuple(_DIRECTIONS))
    query, gallery = _all_of(test, q_mod), _all_of(test, g_mod)
    _require_sides("", query, gallery, f"{q_mod.name.lower()} test image", f"{g_mod.name.lower()} test image")
    return [Trial(name=name or f"cross-{direction}", query=query, gallery=gallery)]


def regdb_trials(test: Sequence[Sample], direction: str) -> list[Trial]:
    """RegDB (the test samples of one split, ``idx/test_*_{t}.txt``): one trial using all test images;
    ``direction``: ``"v2t"`` (visible query, thermal gallery) or ``"t2v"``."""
    _modalities(direction, ("v2t", "t2v"))
    return cross_trials(test, direction, name=f"regdb-{direction}")


def llcm_trials(test: Sequence[Sample], direction: str, n_trials: int = 10, seed: int = 0,
                shots: int = 1) -> list[Trial]:
    """LLCM: every test image of one modality as query (``direction`` ``"v2i"``: visible, ``"i2v"``: infrared)
    against ``shots`` (1 in the LLCM protocol) images per identity and camera of the other; ``n_trials``
    trials, trial ``t`` drawn with seed ``seed + t``."""
    q_mod, g_mod = _modalities(direction, ("v2i", "i2v"))
    _check_trials(n_trials, shots)
    query = _all_of(test, q_mod)
    candidates = _groups(test, lambda s: s.modality is g_mod)
    _require_sides("LLCM protocol: ", query, candidates, f"{q_mod.name.lower()} test image",
                   f"{g_mod.name.lower()} test image")
    return _sampled_trials(f"llcm-{direction}", query, candidates, shots, n_trials, seed)


def make_trials(setting: str, test: Sequence[Sample], n_trials: int = 10, seed: int = 0) -> tuple[str, list[Trial]]:
    """``(metric_protocol, trials)`` of a named evaluation setting (one of :data:`PROTOCOLS`).

    ``n_trials`` and ``seed``: the gallery draws of the sampled protocols (SYSU, LLCM); the RegDB and
    ``cross-*`` settings always give one trial. ``metric_protocol`` is the ``protocol`` argument of
    :func:`mvd_edge.eval.metrics.evaluate` (``"sysu"``, ``"regdb"`` or ``"llcm"``); average the metrics
    over the trials."""
    if setting not in PROTOCOLS:
        raise UsageError(f"unknown evaluation setting {setting!r}: choose one of {', '.join(PROTOCOLS)}")
    family, rest = setting.split("-", 1)
    if family == "sysu":
        mode, shot = rest.split("-")
        return "sysu", sysu_trials(test, mode=mode, shots=1 if shot == "single" else 10, n_trials=n_trials, seed=seed)
    if family == "regdb":
        return "regdb", regdb_trials(test, rest)
    if family == "llcm":
        return "llcm", llcm_trials(test, rest, n_trials=n_trials, seed=seed)
    return "regdb", cross_trials(test, rest)
