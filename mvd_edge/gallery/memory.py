"""The matcher's memory of ended global ids: descriptors per id, best match above a threshold, oldest evicted.

:class:`IdentityMemory` does what :class:`mvd_edge.match.associate.CrossModalAssociator` does with
its ``OrderedDict`` of ended ids (``_gallery``), without the Python loop over entries:

* ``put(gid, *descs)``: remember (or refresh) ``gid`` as the newest entry; the oldest entries
  beyond ``capacity`` are forgotten (returned);
* ``best(*descs, threshold)``: the entry with the highest score at or above ``threshold``,
  where the score is the mean over the parts of the cosines (``parts=2``: the IR and the RGB
  descriptor, ``0.5 * (gi @ ir + gr @ rgb)`` as the associator computes it); among equal
  scores the newest entry wins (the associator's ``>=`` scan from oldest to newest);
* ``take(...)``: ``best`` and forget it; ``pop(gid)``: forget one.

Search: exact numpy (one matrix-vector product per part over the live rows) up to
``faiss_above`` entries; above it a faiss index over the concatenated parts gives a shortlist
of ``shortlist`` candidates that are re-scored exactly by the same numpy code, so the answer
and its score are those of the exact path. ``kind="flat"`` (``IndexIDMap2`` over
``IndexFlatIP``, added to and removed from incrementally) is exact: it finds what the numpy
path finds unless more than ``shortlist`` entries tie within float rounding of the best.
``kind="hnsw"`` (``IndexHNSWFlat``; removed entries are filtered out with an ID selector and
the graph is rebuilt when they outnumber the live ones) is approximate: sublinear for very
large memories, at a small recall cost. Below the threshold faiss is never imported.

Descriptors are float32 ``[D]`` and should be L2-normalised (the feature banks' are).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.gallery.index import faiss_module

__all__ = ["IdentityMemory"]


class IdentityMemory:
    """See the module docstring.

    Args:
        dim: D, the dimension of each descriptor part.
        parts: descriptors per entry (2 for the matcher: IR and RGB).
        capacity: entries kept (oldest forgotten first); the associator's ``max_gallery``.
        faiss_above: use a faiss index when more than this many entries are held (exact numpy below).
        kind: ``flat`` (exact) or ``hnsw`` (approximate) for the faiss index.
        shortlist: faiss candidates re-scored exactly per query.
        hnsw_m, ef_search: HNSW parameters (``ef_search`` at least ``shortlist``).
    """

    def __init__(self, dim: int, parts: int = 2, capacity: int = 256, faiss_above: int = 4096, kind: str = "flat",
                 shortlist: int = 32, hnsw_m: int = 32, ef_search: int = 128):
        if dim < 1 or parts < 1 or capacity < 1 or shortlist < 1 or faiss_above < 0:
            raise UsageError(f"IdentityMemory needs dim, parts, capacity, shortlist >= 1 and faiss_above >= 0, got "
                             f"{dim}, {parts}, {capacity}, {shortlist}, {faiss_above}")
        if kind not in ("flat", "hnsw"):
            raise UsageError(f"IdentityMemory kind must be flat or hnsw, got {kind!r}")
        self.dim, self.parts, self.capacity = int(dim), int(parts), int(capacity)
        self.faiss_above, self.kind, self.shortlist = int(faiss_above), kind, int(shortlist)
        self.hnsw_m, self.ef_search = int(hnsw_m), max(int(ef_search), int(shortlist))
        self._order: OrderedDict[int, int] = OrderedDict()  # gid -> slot, oldest first
        self._vecs = np.zeros((16, self.parts * self.dim), np.float32)
        self._seq = np.zeros(16, np.int64)  # insertion counter per slot (ties: the newest wins)
        self._gid = np.zeros(16, np.int64)
        self._live = np.zeros(16, bool)
        self._free: list[int] = list(range(15, -1, -1))
        self._counter = 0
        self._live_rows: np.ndarray | None = None
        self._index = None  # faiss index (labels: slots for flat, graph positions for hnsw)
        self._hnsw_slot: list[int] = []  # hnsw graph position -> slot
        self._hnsw_pos: dict[int, int] = {}  # slot -> hnsw graph position (live entries only)
        self._hnsw_dead: set[int] = set()

    # ------------------------------------------------------------------ bookkeeping
    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, gid: int) -> bool:
        return int(gid) in self._order

    def ids(self) -> list[int]:
        """The ids held, oldest first."""
        return list(self._order)

    @property
    def uses_faiss(self) -> bool:
        """True while the faiss index answers queries (more than ``faiss_above`` entries)."""
        return self._index is not None

    def _vector(self, descs: tuple[np.ndarray, ...]) -> np.ndarray:
        if len(descs) != self.parts:
            raise UsageError(f"this memory holds {self.parts} descriptors per id, got {len(descs)}")
        out = np.empty(self.parts * self.dim, np.float32)
        for p, d in enumerate(descs):
            d = np.asarray(d, np.float32).reshape(-1)
            if d.shape[0] != self.dim:
                raise UsageError(f"descriptor {p} has {d.shape[0]} values, expected {self.dim}")
            out[p * self.dim:(p + 1) * self.dim] = d
        return out

    def _grow(self) -> None:
        n = self._vecs.shape[0]
        self._vecs = np.concatenate([self._vecs, np.zeros_like(self._vecs)])
        self._seq = np.concatenate([self._seq, np.zeros(n, np.int64)])
        self._gid = np.concatenate([self._gid, np.zeros(n, np.int64)])
        self._live = np.concatenate([self._live, np.zeros(n, bool)])
        self._free.extend(range(2 * n - 1, n - 1, -1))

    def put(self, gid: int, *descs: np.ndarray) -> list[int]:
        """Remember ``gid`` with its ``parts`` descriptors as the newest entry (replacing an older one of it).

        Returns the ids forgotten to stay within ``capacity`` (oldest first)."""
        gid = int(gid)
        v = self._vector(descs)
        if gid in self._order:
            self._forget(gid)
        if not self._free:
            self._grow()
        slot = self._free.pop()
        self._vecs[slot] = v
        self._seq[slot] = self._counter
        self._counter += 1
        self._gid[slot] = gid
        self._live[slot] = True
        self._live_rows = None
        self._order[gid] = slot
        if self._index is not None:
            self._index_add(np.array([slot], np.int64))
        evicted = []
        while len(self._order) > self.capacity:
            old = next(iter(self._order))
            self._forget(old)
            evicted.append(old)
        self._sync_index()
        return evicted

    def pop(self, gid: int) -> bool:
        """Forget ``gid``; False if it was not held."""
        found = self._forget(gid)
        self._sync_index()
        return found

    def _forget(self, gid: int) -> bool:
        slot = self._order.pop(int(gid), None)
        if slot is None:
            return False
        self._live[slot] = False
        self._live_rows = None
        self._free.append(slot)
        if self._index is not None:
            self._index_remove(slot)
        return True

    # ------------------------------------------------------------------ search
    def _scores(self, rows: np.ndarray, descs: tuple[np.ndarray, ...]) -> np.ndarray:
        """Exact float64 scores of ``rows``: the mean over parts of float32 dot products."""
        total = np.zeros(rows.shape[0], np.float64)
        for p, d in enumerate(descs):
            block = self._vecs[rows, p * self.dim:(p + 1) * self.dim]
            total += block @ np.asarray(d, np.float32).reshape(-1)
        return total / self.parts

    def best(self, *descs: np.ndarray, threshold: float) -> tuple[int, float] | None:
        """``(gid, score)`` of the best entry with score >= ``threshold`` (newest among equals), or None."""
        if not self._order:
            return None
        q = self._vector(descs)
        parts = tuple(q[p * self.dim:(p + 1) * self.dim] for p in range(self.parts))
        if self._index is None:
            if self._live_rows is None:
                self._live_rows = np.flatnonzero(self._live)
            rows = self._live_rows
        else:
            rows = self._candidates(q)
            if rows.size == 0:
                return None
        scores = self._scores(rows, parts)
        top = scores.max()
        if not top >= threshold:
            return None
        tied = rows[scores == top]
        slot = int(tied[np.argmax(self._seq[tied])])
        return int(self._gid[slot]), float(top)

    def take(self, *descs: np.ndarray, threshold: float) -> tuple[int, float] | None:
        """:meth:`best`, and forget the entry found."""
        hit = self.best(*descs, threshold=threshold)
        if hit is not None:
            self.pop(hit[0])
        return hit

    # ------------------------------------------------------------------ the faiss index
    def _sync_index(self) -> None:
        n = len(self._order)
        if self._index is None and n > self.faiss_above:
            self._build_index()
        elif self._index is not None and n <= self.faiss_above // 2:
            self._index = None  # back to exact numpy (hysteresis: no rebuild flapping at the threshold)

    def _build_index(self) -> None:
        faiss = faiss_module()
        d = self.parts * self.dim
        rows = np.array(list(self._order.values()), np.int64)
        if self.kind == "flat":
            self._index = faiss.IndexIDMap2(faiss.IndexFlatIP(d))
        else:
            self._index = faiss.IndexHNSWFlat(d, self.hnsw_m, faiss.METRIC_INNER_PRODUCT)
            self._index.hnsw.efSearch = self.ef_search
            self._hnsw_slot, self._hnsw_pos, self._hnsw_dead = [], {}, set()
        self._index_add(rows)

    def _index_add(self, slots: np.ndarray) -> None:
        x = np.ascontiguousarray(self._vecs[slots])
        if self.kind == "flat":
            self._index.add_with_ids(x, slots)
        else:
            start = len(self._hnsw_slot)
            self._index.add(x)
            for k, s in enumerate(slots.tolist()):
                self._hnsw_slot.append(s)
                self._hnsw_pos[s] = start + k

    def _index_remove(self, slot: int) -> None:
        if self.kind == "flat":
            self._index.remove_ids(np.array([slot], np.int64))
            return
        self._hnsw_dead.add(self._hnsw_pos.pop(slot))
        if len(self._hnsw_dead) > max(len(self._hnsw_pos), 64):
            self._build_index()  # a graph cannot forget nodes: rebuild once the dead outnumber the live

    def _candidates(self, q: np.ndarray) -> np.ndarray:
        faiss = faiss_module()
        k = min(self.shortlist, len(self._order))
        if self.kind == "flat":
            _, labels = self._index.search(q[None], k)
            slots = labels[0]
        else:
            params = None
            if self._hnsw_dead:
                sel = faiss.IDSelectorNot(faiss.IDSelectorBatch(np.array(sorted(self._hnsw_dead), np.int64)))
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=self.ef_search)
            _, labels = self._index.search(q[None], k, params=params)
            slots = np.array([self._hnsw_slot[i] for i in labels[0] if i >= 0], np.int64)
        slots = slots[slots >= 0]
        return slots[self._live[slots]]
