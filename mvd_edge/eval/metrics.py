"""Re-identification metrics: CMC, mAP and mINP, the way the community computes them.

numpy only (the torch-free runtime imports this module).

Reference semantics: ``eval_metrics.py`` of the AGW baseline (Ye et al., repository
``mangye16/Cross-Modal-Re-ID-baseline``; the LLCM authors' copy in ``ZYK100/LLCM`` adds
``eval_llcm``). Per query the gallery is ranked by ascending distance, some gallery items
are removed from the ranked list, and on what is left:

* **AP** is the usual average precision over the full (non-deduplicated) list,
* **INP** = ``num_positives / (1-based rank of the last positive)``,
* **CMC** is either *plain* (the first positive's rank in the list) or *unique-identity*
  (the list is first reduced to the first occurrence of every gallery identity, then the
  first positive's rank is taken: the SYSU-MM01 authors' released convention, which
  AGW and LLCM follow).

Protocols (``protocol=``):

``"sysu"``  (AGW ``eval_sysu``)
    For a query from camera 3, *every* gallery item from camera 2 is removed (cams 2 and
    3 are in the same place), whatever its identity. Unique-identity CMC.
``"regdb"`` (AGW ``eval_regdb``)
    Nothing removed; plain CMC. Also the right choice for any plain cross-modal search.
``"llcm"``  (LLCM ``eval_llcm``)
    Gallery items with the query's identity *and* the query's camera are removed (LLCM's
    cameras record both modalities, so ``cam`` numbers are shared across them).
    Unique-identity CMC.

Queries without any positive left after the removal are skipped (not counted), as in
AGW; if no query is left a ``ValueError`` is raised (AGW asserts).

Deliberate differences from the AGW code, none of which changes a number on the
standard protocols:

* ranking uses a *stable* sort (ties keep gallery order); AGW uses numpy's default
  quicksort, whose order among exactly tied distances is unspecified;
* the CMC always has ``max_rank`` entries: where the ranked list is shorter than
  ``max_rank`` (small galleries) it is padded with its last value, which is exact for a
  cumulative curve (nothing is found past the end of the list). AGW instead shortens
  ``max_rank`` to the gallery size (and would fail on ragged unique-identity lists);
* AGW averages the unique-identity CMC over *all* queries' rows but divides by the
  number of valid ones; invalid queries contribute zero rows, so that equals the mean
  over valid queries, which is what is computed here.
"""

from __future__ import annotations

import numpy as np

from mvd_edge.core.errors import UsageError

__all__ = ["PROTOCOLS", "evaluate"]

#: Metric protocols understood by :func:`evaluate`.
PROTOCOLS: tuple[str, ...] = ("sysu", "regdb", "llcm")

# SYSU-MM01: IR camera 3 and RGB camera 2 share a location (indoor room).
_SYSU_QUERY_CAM = 3
_SYSU_REMOVED_GALLERY_CAM = 2

# what the protocol removes before looking for positives (the no-valid-query message)
_REMOVED = {"sysu": " (after the cam-3 / cam-2 removal)", "llcm": " (after removing same-identity same-camera items)"}

# Rows of the distance matrix processed at once (bounds the memory of the
# [rows, gallery] intermediate arrays).
_CHUNK = 512


def _as_1d(name: str, value: object, length: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.shape[0] != length:
        raise ValueError(f"{name} has {arr.shape[0]} entries but the distance matrix needs {length}")
    return arr


def _checked(distmat, q_pids, g_pids, q_cams, g_cams, protocol: str, max_rank: int):
    """The inputs of :func:`evaluate` as arrays, after checking them (``ValueError`` naming what is wrong)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown metric protocol {protocol!r}: choose one of {', '.join(PROTOCOLS)}")
    if isinstance(max_rank, bool) or not isinstance(max_rank, (int, np.integer)) or max_rank < 1:
        raise ValueError(f"max_rank must be a positive integer, got {max_rank!r}")
    dist = np.asarray(distmat)
    if dist.ndim != 2:
        raise ValueError(f"distmat must be 2-D [num_query, num_gallery], got shape {dist.shape}")
    num_q, num_g = dist.shape
    if num_q == 0 or num_g == 0:
        raise ValueError(f"distmat must have at least one query and one gallery item, got shape {dist.shape}")
    if not np.issubdtype(dist.dtype, np.number) or np.iscomplexobj(dist):
        raise ValueError(f"distmat must be real-valued, got dtype {dist.dtype}")
    if np.isnan(dist).any():
        raise ValueError("distmat contains NaN")
    qp, gp = _as_1d("q_pids", q_pids, num_q), _as_1d("g_pids", g_pids, num_g)
    if protocol in ("sysu", "llcm") and (q_cams is None or g_cams is None):
        raise ValueError(f"protocol {protocol!r} needs q_cams and g_cams")
    # regdb ignores cameras, but if given they must still line up
    qc = None if q_cams is None else _as_1d("q_cams", q_cams, num_q)
    gc = None if g_cams is None else _as_1d("g_cams", g_cams, num_g)
    return dist, qp, gp, qc, gc


def _identity_blocks(qp: np.ndarray, gp: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense identity index of every query in the gallery's identities (-1: absent from the gallery, so
    the query can have no positive), gallery columns sorted by identity, and where each identity's block
    of those columns starts (for ``reduceat``)."""
    g_uniq, g_dense = np.unique(gp, return_inverse=True)
    q_dense = np.searchsorted(g_uniq, qp)
    q_dense = np.where(q_dense < g_uniq.size, q_dense, 0)
    q_dense = np.where(g_uniq[q_dense] == qp, q_dense, -1)
    by_pid = np.argsort(g_dense, kind="stable")
    return q_dense, by_pid, np.flatnonzero(np.r_[True, np.diff(g_dense[by_pid]) != 0])


def _kept(protocol: str, match: np.ndarray, order: np.ndarray, qc: np.ndarray | None, gc: np.ndarray | None,
          rows: slice) -> np.ndarray:
    """``[n, G]``: which ranked gallery items of the query ``rows`` the protocol keeps."""
    if protocol == "sysu":
        assert qc is not None and gc is not None
        return ~((qc[rows] == _SYSU_QUERY_CAM)[:, None] & (gc[order] == _SYSU_REMOVED_GALLERY_CAM))
    if protocol == "llcm":
        assert qc is not None and gc is not None
        return ~(match & (gc[order] == qc[rows, None]))
    return np.ones_like(match)


def _unique_first_rank(order: np.ndarray, keep: np.ndarray, rank: np.ndarray, valid: np.ndarray,
                       q_dense: np.ndarray, by_pid: np.ndarray, block_starts: np.ndarray) -> np.ndarray:
    """Unique-identity CMC rank of each valid query row: distinct identities strictly before its own + 1."""
    n, num_g = order.shape
    # rank_of[r, g]: rank of gallery item g in query r's filtered list (larger than any rank if removed).
    rank_of = np.empty((n, num_g), dtype=np.int64)
    np.put_along_axis(rank_of, order, np.where(keep, rank, num_g + 1), axis=1)
    # first_of_pid[r, u]: rank of identity u's first kept occurrence.
    first_of_pid = np.minimum.reduceat(rank_of[:, by_pid], block_starts, axis=1)
    rows = np.flatnonzero(valid)
    own = first_of_pid[rows, q_dense[rows]]
    return (first_of_pid[rows] < own[:, None]).sum(axis=1) + 1


def evaluate(
    distmat: np.ndarray,
    q_pids: np.ndarray,
    g_pids: np.ndarray,
    q_cams: np.ndarray | None,
    g_cams: np.ndarray | None,
    protocol: str,
    max_rank: int = 20,
) -> dict:
    """CMC, mAP and mINP of a query-by-gallery distance matrix.

    Args:
        distmat: ``[Q, G]`` float distances (smaller = more similar); for similarities
            pass ``-sim``. ``+inf`` is allowed, NaN is not.
        q_pids: ``[Q]`` query identity labels (any integer or other sortable dtype).
        g_pids: ``[G]`` gallery identity labels, comparable with ``q_pids``.
        q_cams: ``[Q]`` int query camera ids (1-based as the data set names them);
            required for ``"sysu"`` and ``"llcm"``, may be ``None`` for ``"regdb"``.
        g_cams: ``[G]`` int gallery camera ids; same rule as ``q_cams``.
        protocol: ``"sysu"``, ``"regdb"`` or ``"llcm"`` (see the module docstring).
        max_rank: length of the returned CMC curve (>= 1); may exceed ``G``.

    Returns:
        ``{"cmc": float64 [max_rank] in [0, 1] (cmc[k] = fraction of valid queries
        matched within the top k+1), "mAP": float, "mINP": float,
        "num_valid_queries": int}``.

    Raises:
        ValueError: bad shapes, unknown protocol, NaN distances, or no valid query.
    """
    dist, qp, gp, qc, gc = _checked(distmat, q_pids, g_pids, q_cams, g_cams, protocol, max_rank)
    num_q, num_g = dist.shape
    q_dense, by_pid, block_starts = _identity_blocks(qp, gp)
    first_ranks: list[np.ndarray] = []  # per valid query: rank (1-based) used by the CMC
    aps: list[np.ndarray] = []
    inps: list[np.ndarray] = []
    big = num_g + 1  # larger than any rank
    for start in range(0, num_q, _CHUNK):
        rows = slice(start, min(start + _CHUNK, num_q))
        order = np.argsort(dist[rows], axis=1, kind="stable")  # [n, G]
        match = gp[order] == qp[rows, None]  # [n, G]
        keep = _kept(protocol, match, order, qc, gc, rows)
        match &= keep
        # 1-based rank of each ranked item within the list left after the removal (meaningful where keep is True)
        rank = np.cumsum(keep, axis=1)
        n_pos = match.sum(axis=1)
        valid = n_pos > 0
        if not valid.any():
            continue
        hits = np.cumsum(match, axis=1)
        aps.append(np.where(match, hits / np.maximum(rank, 1), 0.0).sum(axis=1)[valid] / n_pos[valid])
        inps.append(n_pos[valid] / np.where(match, rank, 0).max(axis=1)[valid])  # / rank of the last positive
        if protocol in ("sysu", "llcm"):  # unique-identity CMC
            first_ranks.append(_unique_first_rank(order, keep, rank, valid, q_dense[rows], by_pid, block_starts))
        else:
            first_ranks.append(np.where(match, rank, big).min(axis=1)[valid])

    if not first_ranks:
        raise UsageError(f"no valid query: no query identity has a positive in the gallery{_REMOVED.get(protocol, '')}")
    fr = np.concatenate(first_ranks)
    ks = np.arange(1, int(max_rank) + 1)
    cmc = (fr[:, None] <= ks[None, :]).mean(axis=0).astype(np.float64)
    return {
        "cmc": cmc,
        "mAP": float(np.concatenate(aps).mean()),
        "mINP": float(np.concatenate(inps).mean()),
        "num_valid_queries": int(fr.size),
    }
