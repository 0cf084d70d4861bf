"""The matcher's one identity store: descriptors per global id, exact search, least recently seen forgotten first.

:class:`IdentityMemory` serves both association rules:

* the pair associator's memory of ended global ids (:mod:`mvd_edge.match.associate`):
  ``put(gid, ir, rgb)`` remembers (or refreshes) an id with one descriptor per part,
  ``take(ir, rgb, threshold=...)`` finds the best one and forgets it. The score of an entry is
  the mean over the parts of the cosines (``0.5 * (gi @ ir + gr @ rgb)``); among equal scores
  the most recently seen entry wins (the associator's old ``>=`` scan from oldest to newest);
* the site matcher's gallery of global identities (:mod:`mvd_edge.match.site`): one row per
  identity with one descriptor per modality (``parts=tuple(Modality)``), which may be missing
  (``have``); :meth:`update` folds a track's descriptor into it (EMA) and
  :meth:`similarities` scores T queries against every row of one part in one matrix product.

Rows live in growing ``[rows, D]`` arrays per part, updated in place; at most ``capacity``
entries are kept, the least recently seen (added, put or updated) is forgotten first.

Search: up to ``faiss_above`` entries every row is scored exactly (numpy; faiss is never
imported). Above it a faiss inner-product index (``IndexIDMap2`` over ``IndexFlatIP``, keyed
by row) gives each query its ``max(shortlist, T)`` best rows: per part for
:meth:`candidates` of one part, over the concatenated parts for :meth:`best`. Only those
rows (plus the caller's ``always`` rows) are scored, exactly, by the same numpy product, so
the answers and scores are those of the exact path unless more than ``shortlist`` rows tie
within float rounding. A site track's best score is its best row of one part, and a best
one-to-one assignment of T tracks never gives a track a row outside its own T best, so the
site's Hungarian assignment over the shortlist is the one over every row. The indexes are
brought up to date lazily: changes mark rows dirty, a search first re-indexes them.

Descriptors are float32 ``[D]`` and should be L2-normalised (the feature banks' are).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.gallery.index import faiss_module

__all__ = ["IdentityMemory"]


class IdentityMemory:
    """See the module docstring.

    Args:
        dim: D, the dimension of each descriptor part.
        parts: the part keys (e.g. ``tuple(Modality)``), or their number (keys 0, 1, ...).
        capacity: entries kept (least recently seen forgotten first).
        faiss_above: search through a faiss shortlist when more than this many entries are held.
        shortlist: faiss candidates per query, re-scored exactly.
    """

    def __init__(self, dim: int, parts: int | Sequence[Hashable] = 2, capacity: int = 256,
                 faiss_above: int = 4096, shortlist: int = 32):
        self.parts = tuple(range(parts)) if isinstance(parts, int) else tuple(parts)
        if dim < 1 or not self.parts or capacity < 1 or shortlist < 1 or faiss_above < 0:
            raise UsageError(f"IdentityMemory needs dim, parts, capacity, shortlist >= 1 and faiss_above >= 0, got "
                             f"{dim}, {len(self.parts)}, {capacity}, {shortlist}, {faiss_above}")
        self.dim, self.capacity = int(dim), int(capacity)
        self.faiss_above, self.shortlist = int(faiss_above), int(shortlist)
        self.row: dict[int, int] = {}
        self.recency: OrderedDict[int, None] = OrderedDict()  # least recently seen first
        n = 64
        self._free: list[int] = list(range(n - 1, -1, -1))  # pop() takes the lowest free row
        self.gid = np.full(n, -1, np.int64)
        self.seen = np.zeros(n, np.int64)  # when each row was last seen (ties in best(): the latest wins)
        self._clock = 0
        self.mat = {p: np.zeros((n, self.dim), np.float32) for p in self.parts}
        self.have = {p: np.zeros(n, bool) for p in self.parts}
        self._index: dict[Hashable, Any] = {}  # faiss index per part, and over all parts (key: self.parts)
        self._dirty: dict[Hashable, set[int]] = {}  # rows whose index entry is stale

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return len(self.row)

    def __contains__(self, gid: int) -> bool:
        return gid in self.row

    def ids(self) -> list[int]:
        """The ids held, least recently seen first."""
        return list(self.recency)

    @property
    def uses_faiss(self) -> bool:
        """True while searches go through the faiss shortlist (more than ``faiss_above`` entries)."""
        return len(self.row) > self.faiss_above

    def _touch(self, r: int, parts: tuple | None = None) -> None:
        """Row ``r`` changed (in ``parts``; None: all): its entries in the indexes are stale."""
        for key in self._index:
            if parts is None or key == self.parts or key in parts:
                self._dirty[key].add(r)

    def _seen(self, gid: int) -> None:
        self.recency[gid] = None
        self.recency.move_to_end(gid)
        self.seen[self.row[gid]] = self._clock
        self._clock += 1

    def add(self, gid: int) -> list[int]:
        """Hold ``gid`` (with no descriptor yet) unless it is held; returns the ids forgotten to make room."""
        gid = int(gid)
        if gid in self.row:
            return []
        if not self._free:
            n = len(self.gid)
            self.gid = np.concatenate([self.gid, np.full(n, -1, np.int64)])
            self.seen = np.concatenate([self.seen, np.zeros(n, np.int64)])
            for p in self.parts:
                self.mat[p] = np.concatenate([self.mat[p], np.zeros((n, self.dim), np.float32)])
                self.have[p] = np.concatenate([self.have[p], np.zeros(n, bool)])
            self._free = list(range(2 * n - 1, n - 1, -1))  # every old row is in use (none was free)
        r = self._free.pop()  # a free row has no descriptor (have is False): _drop cleared it, or it is new
        self.row[gid] = r
        self.gid[r] = gid
        self._touch(r)
        self._seen(gid)
        evicted = []
        while len(self.row) > self.capacity:
            old, _ = self.recency.popitem(last=False)
            self._drop(old)
            evicted.append(old)
        return evicted

    def _drop(self, gid: int) -> None:
        r = self.row.pop(gid)
        self.gid[r] = -1
        for p in self.parts:
            self.have[p][r] = False
        self._touch(r)
        self._free.append(r)

    def pop(self, gid: int) -> bool:
        """Forget ``gid``; False if it was not held."""
        gid = int(gid)
        if gid not in self.row:
            return False
        del self.recency[gid]
        self._drop(gid)
        return True

    def _vectors(self, descs: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(descs) != len(self.parts):
            raise UsageError(f"this memory holds {len(self.parts)} descriptors per id, got {len(descs)}")
        out = [np.asarray(d, np.float32).reshape(-1) for d in descs]
        for p, d in enumerate(out):
            if d.shape[0] != self.dim:
                raise UsageError(f"descriptor {p} has {d.shape[0]} values, expected {self.dim}")
        return out

    def put(self, gid: int, *descs: np.ndarray) -> list[int]:
        """Remember ``gid`` with one descriptor per part as a new entry (replacing one of it);
        returns the ids forgotten to stay within ``capacity`` (least recently seen first)."""
        vecs = self._vectors(descs)
        self.pop(gid)
        evicted = self.add(gid)
        r = self.row[int(gid)]
        for p, v in zip(self.parts, vecs):
            self.mat[p][r] = v
            self.have[p][r] = True
        return evicted

    def update(self, gid: int, part: Hashable, d: np.ndarray, momentum: float) -> None:
        """Fold descriptor ``d`` ``[D]`` into ``gid``'s descriptor of ``part`` (EMA); marks it seen."""
        self.add(gid)  # an identity forgotten while a track still held it comes back
        r = self.row[gid]
        if self.have[part][r]:
            v = momentum * self.mat[part][r] + (1.0 - momentum) * d
            self.mat[part][r] = v / max(float(np.linalg.norm(v)), 1e-12)
        else:
            self.mat[part][r] = d
            self.have[part][r] = True
        self._touch(r, (part,))
        self._seen(gid)

    # ------------------------------------------------------------------ search
    def best(self, *descs: np.ndarray, threshold: float) -> tuple[int, float] | None:
        """``(gid, score)`` of the best entry with every part and score >= ``threshold`` (the most
        recently seen among equals), or None."""
        if not self.row:
            return None
        q = self._vectors(descs)
        rows = self.candidates((self.parts,), np.concatenate(q)[None])
        if rows is None:
            rows = np.flatnonzero(np.logical_and.reduce([self.have[p] for p in self.parts]))
        if rows.size == 0:
            return None
        scores = np.zeros(rows.shape[0], np.float64)
        for p, d in zip(self.parts, q):
            scores += self.mat[p][rows] @ d
        scores /= len(self.parts)
        top = scores.max()
        if not top >= threshold:
            return None
        tied = rows[scores == top]
        r = int(tied[np.argmax(self.seen[tied])])
        return int(self.gid[r]), float(top)

    def take(self, *descs: np.ndarray, threshold: float) -> tuple[int, float] | None:
        """:meth:`best`, and forget the entry found."""
        hit = self.best(*descs, threshold=threshold)
        if hit is not None:
            self.pop(hit[0])
        return hit

    def similarities(self, part: Hashable, desc: np.ndarray, always: np.ndarray | None = None) -> np.ndarray:
        """Cosine of each query ``[T, D]`` with every row's ``part`` descriptor: ``[T, rows]``,
        ``-inf`` where a row has none. Through the faiss shortlist (:attr:`uses_faiss`) only the
        shortlisted rows and the ``always`` rows are scored; the others are ``-inf`` too."""
        rows = self.candidates((part,), desc, always)
        if rows is None:
            sim = desc @ self.mat[part].T
            return np.where(self.have[part][None], sim, -np.inf)
        sim = self.similarities_at(part, desc, rows)
        out = np.full((len(desc), len(self.gid)), -np.inf, sim.dtype)
        out[:, rows] = sim
        return out

    def similarities_at(self, part: Hashable, desc: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """Cosine of each query ``[T, D]`` with the ``part`` descriptor of ``rows`` ``[K]``:
        ``[T, K]``, ``-inf`` where a row has none."""
        sim = desc @ self.mat[part][rows].T
        return np.where(self.have[part][rows][None], sim, -np.inf)

    def candidates(self, keys, desc: np.ndarray, always: np.ndarray | None = None) -> np.ndarray | None:
        """The rows worth scoring for queries ``desc`` ``[T, D']`` against the descriptors of each
        of ``keys`` (a part, or ``self.parts`` for all parts concatenated): None while every row is
        scored (exact search, up to ``faiss_above`` entries); above it the sorted union of each
        query's ``max(shortlist, T)`` best rows per key (faiss) and the ``always`` rows."""
        if not self.uses_faiss:
            self._index, self._dirty = {}, {}  # back to exact search: no index to keep up
            return None
        q = np.ascontiguousarray(desc, np.float32)
        found = [np.asarray([] if always is None else always, np.int64).reshape(-1)]
        faiss = faiss_module()
        # faiss scans query by query below 20 queries; a step's few tracks go through one BLAS product
        # instead (measured 1.5x faster at 100k identities, docs/site_gallery); restored after
        blas = faiss.cvar.distance_compute_blas_threshold
        faiss.cvar.distance_compute_blas_threshold = 1
        try:
            for key in keys:
                index = self._synced(key)
                k = min(max(self.shortlist, len(q)), index.ntotal)
                if k > 0 and len(q):
                    _, labels = index.search(q, k)
                    found.append(labels[labels >= 0])
        finally:
            faiss.cvar.distance_compute_blas_threshold = blas
        return np.unique(np.concatenate(found))

    def _synced(self, key: Hashable):
        """The faiss index of ``key`` (a part, or ``self.parts``), built at first use and with its dirty rows re-indexed."""
        parts = self.parts if key == self.parts else (key,)
        have = np.logical_and.reduce([self.have[p] for p in parts])
        if key not in self._index:
            faiss = faiss_module()
            self._index[key] = faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim * len(parts)))
            self._dirty[key] = set()
            stale = np.flatnonzero(have)
        else:
            stale = np.fromiter(self._dirty[key], np.int64, len(self._dirty[key]))
            self._dirty[key].clear()
            if stale.size:
                self._index[key].remove_ids(stale)
        fresh = stale[have[stale]]
        if fresh.size:
            x = np.hstack([self.mat[p][fresh] for p in parts])
            self._index[key].add_with_ids(np.ascontiguousarray(x), fresh)
        return self._index[key]
