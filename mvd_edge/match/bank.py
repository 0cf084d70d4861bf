"""Per-track feature banks: an exponential moving average plus the last N features.

A track's descriptor is ``normalize(normalize(ema) + normalize(mean(last N)))``: the EMA
remembers the track's whole history (weighted to the recent past), the window of the
last N features reacts to a change of view; both average out the per-crop noise of a
re-id embedding. Cosine similarity between descriptors is their dot product.

Each bank also keeps how well its own new features agree with it (the running mean and
spread of ``cosine(new feature, descriptor before it)``): :meth:`FeatureBank.is_outlier`
tells when a new feature is far below that, the sign that the tracker moved the track onto
another person.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["FeatureBank"]


def _normalize(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


class _Entry:
    __slots__ = ("ema", "last", "count", "desc", "n_sim", "mean_sim", "m2_sim", "outliers")

    def __init__(self, last_n: int):
        self.ema: np.ndarray | None = None
        self.last: deque = deque(maxlen=last_n)
        self.count = 0
        self.desc: np.ndarray | None = None  # cached descriptor, reset by update()
        self.n_sim, self.mean_sim, self.m2_sim = 0, 0.0, 0.0  # Welford over the self-agreement cosines
        self.outliers = 0  # consecutive outlier features seen by is_outlier()


class FeatureBank:
    """Feature banks keyed by track id (one bank per stream).

    Args:
        dim: feature dimension D.
        momentum: EMA weight of the old value (``ema = m * ema + (1 - m) * f``), 0..1.
        last_n: how many recent features are kept (>= 1).
    """

    def __init__(self, dim: int, momentum: float = 0.9, last_n: int = 30):
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        if last_n < 1:
            raise ValueError(f"last_n must be >= 1, got {last_n}")
        self.dim, self.momentum, self.last_n = int(dim), float(momentum), int(last_n)
        self._entries: dict[int, _Entry] = {}

    def __contains__(self, track_id: int) -> bool:
        return track_id in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def ids(self) -> list[int]:
        return list(self._entries)

    def count(self, track_id: int) -> int:
        e = self._entries.get(track_id)
        return 0 if e is None else e.count

    def update(self, track_id: int, feature: np.ndarray) -> float | None:
        """Add one L2-normalised float32 ``[D]`` feature to the track's bank; returns its cosine with
        the descriptor before it (None for the first feature)."""
        f = np.asarray(feature, np.float32).reshape(-1)
        if f.shape[0] != self.dim:
            raise ValueError(f"feature has dimension {f.shape[0]}, the bank {self.dim}")
        e = self._entries.get(track_id)
        sim = None
        if e is None:
            e = self._entries[track_id] = _Entry(self.last_n)
        else:
            sim = float(self.descriptor(track_id) @ f)
            e.n_sim += 1
            delta = sim - e.mean_sim
            e.mean_sim += delta / e.n_sim
            e.m2_sim += delta * (sim - e.mean_sim)
        e.ema = f.copy() if e.ema is None else self.momentum * e.ema + (1.0 - self.momentum) * f
        e.last.append(f)
        e.count += 1
        e.desc = None
        return sim

    def outliers(self, track_id: int) -> int:
        """Consecutive outlier features :meth:`is_outlier` has seen for the track (0: unknown track)."""
        e = self._entries.get(track_id)
        return 0 if e is None else e.outliers

    def agreement(self, track_id: int) -> tuple[int, float, float]:
        """``(n, mean, std)`` of the cosines :meth:`update` returned for the track so far."""
        e = self._entries[track_id]
        std = (e.m2_sim / (e.n_sim - 1)) ** 0.5 if e.n_sim > 1 else 0.0
        return e.n_sim, e.mean_sim, std

    def is_outlier(self, track_id: int, feature: np.ndarray, sigmas: float, floor: float = 0.1,
                   min_count: int = 5, confirm: int = 1) -> bool:
        """Whether ``feature`` agrees with the track's bank far less than its own features did:
        ``cosine < mean - max(sigmas * std, floor)`` over at least ``min_count`` earlier cosines,
        for the ``confirm``-th time in a row (a call with an agreeing feature resets the count)."""
        e = self._entries.get(track_id)
        if e is None or e.n_sim < min_count:
            return False
        n, mean, std = self.agreement(track_id)
        sim = float(self.descriptor(track_id) @ np.asarray(feature, np.float32).reshape(-1))
        if sim < mean - max(sigmas * std, floor):
            e.outliers += 1
        else:
            e.outliers = 0
        return e.outliers >= confirm

    def remove(self, track_id: int) -> None:
        self._entries.pop(track_id, None)

    def descriptor(self, track_id: int) -> np.ndarray:
        """float32 ``[D]``, L2-normalised (KeyError for an unknown track)."""
        e = self._entries[track_id]
        if e.desc is None:
            mean = np.mean(np.stack(e.last), axis=0)
            e.desc = _normalize(_normalize(e.ema) + _normalize(mean)).astype(np.float32)
        return e.desc

    def descriptors(self, track_ids: list[int]) -> np.ndarray:
        """float32 ``[K, D]`` for ``track_ids`` (in that order)."""
        if not track_ids:
            return np.zeros((0, self.dim), np.float32)
        return np.stack([self.descriptor(t) for t in track_ids])
