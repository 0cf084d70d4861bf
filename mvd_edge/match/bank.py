"""Per-track feature banks: an exponential moving average plus the last N features.

A track's descriptor is ``normalize(normalize(ema) + normalize(mean(last N)))``: the EMA
remembers the track's whole history (weighted to the recent past), the window of the
last N features reacts to a change of view; both average out the per-crop noise of a
re-id embedding. Cosine similarity between descriptors is their dot product.
"""

from __future__ import annotations

from collections import deque

import numpy as np

__all__ = ["FeatureBank"]


def _normalize(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-12 else v


class _Entry:
    __slots__ = ("ema", "last", "count", "desc")

    def __init__(self, last_n: int):
        self.ema: np.ndarray | None = None
        self.last: deque = deque(maxlen=last_n)
        self.count = 0
        self.desc: np.ndarray | None = None  # cached descriptor, reset by update()


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

    def update(self, track_id: int, feature: np.ndarray) -> None:
        """Add one L2-normalised float32 ``[D]`` feature to the track's bank."""
        f = np.asarray(feature, np.float32).reshape(-1)
        if f.shape[0] != self.dim:
            raise ValueError(f"feature has dimension {f.shape[0]}, the bank {self.dim}")
        e = self._entries.get(track_id)
        if e is None:
            e = self._entries[track_id] = _Entry(self.last_n)
        e.ema = f.copy() if e.ema is None else self.momentum * e.ema + (1.0 - self.momentum) * f
        e.last.append(f)
        e.count += 1
        e.desc = None

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
