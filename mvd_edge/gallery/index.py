"""A gallery of embeddings on faiss: cosine search over float32 L2-normalised vectors ``[N, D]``.

Every entry has an id (a non-negative int or a non-empty str: the identity, so many entries may
share one) and a metadata dict (JSON-serialisable: source path, camera, track, modality, ...).
Scores are inner products, i.e. cosines of unit vectors.

Index kinds (``kind``):

* ``flat``: exact (``IndexFlatIP``); the reference every other kind is measured against.
* ``ivf``: inverted lists (``IndexIVFFlat``, inner product). ``nlist`` lists (default
  ``4 * sqrt(N)`` bounded to ``[1, 65536]`` and to one list per 39 training vectors, faiss's
  own minimum), ``nprobe`` lists searched per query.
* ``ivfpq``: inverted lists of product-quantised codes (``IndexIVFPQ``; ``pq_m`` sub-vectors of
  ``pq_bits`` bits, default ``D / 8`` sub-vectors of 8 bits). With ``refine_factor`` > 0 (the
  default, 10) the index is wrapped in ``IndexRefineFlat``: the ``k * refine_factor`` best
  candidates by their codes are re-ranked exactly against the stored vectors, so recall stays
  high and the returned scores are exact cosines (the wrapper keeps the full vectors: memory is
  that of ``flat`` plus the codes; ``refine_factor=0`` keeps only the codes).
* ``hnsw``: a navigable small-world graph (``IndexHNSWFlat``, inner product); ``hnsw_m``
  links per node, ``ef_construction`` when adding, ``ef_search`` (at least ``k``) when searching.
* ``auto``: ``flat`` below :data:`AUTO_FLAT_MAX` entries, ``ivf`` from there on.

Training: ``flat`` and ``hnsw`` need none. ``ivf`` / ``ivfpq`` (and ``auto``) are trained by
:meth:`Gallery.build`, or by :meth:`Gallery.train` after :meth:`Gallery.add` (vectors added
before training wait, unsearchable, and are indexed by ``train``). Searching an untrained index
is an error that says so. When there are too few training vectors (fewer than 39 per list for
``nlist`` lists, fewer than ``39 * 2**pq_bits`` for the PQ codebooks) the gallery is built as
the nearest kind that can be trained (``ivfpq`` -> ``ivf`` -> ``flat``) and says so in
:attr:`Gallery.fallback` and in the saved sidecar (``requested_kind``, ``kind``, ``fallback``):
never a silent change.

Saved as a folder (:meth:`Gallery.save` / :meth:`Gallery.load`): ``index.faiss``
(``faiss.write_index``) and ``gallery.json`` (format, kind, dim, count, params, ids, metadata,
faiss version, created time, size and SHA-256 of ``index.faiss``, and ``info``: free-form, e.g.
the engine that made the vectors). Both are written atomically (temp file + rename), the index
first; loading checks every field against the index file and fails naming the field that
disagrees.

GPU: ``use_gpu=True`` searches a GPU copy of the index (faiss-gpu and a CUDA device needed;
``flat``, ``ivf`` and ``ivfpq`` without re-ranking: faiss has no GPU HNSW or refine wrapper).
Off by default; asking for it where there is no GPU is an error, never a quiet CPU fallback.

faiss is imported inside the methods (``pip install 'mvd-edge[gallery]'``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import DeviceUnavailable, MvdEdgeError, UsageError, require
from mvd_edge.core.util import output_error, read_json, write_errno, write_json

__all__ = ["AUTO_FLAT_MAX", "GALLERY_FORMAT", "INDEX_FILE", "INDEX_KINDS", "KIND_CHOICES", "SIDECAR_FILE", "Gallery",
           "GalleryError", "IndexParams", "default_nlist", "default_pq_m", "faiss_module"]

GALLERY_FORMAT = "mvd-edge-gallery/1"
INDEX_FILE = "index.faiss"
SIDECAR_FILE = "gallery.json"
INDEX_KINDS = ("flat", "ivf", "ivfpq", "hnsw")
KIND_CHOICES = (*INDEX_KINDS, "auto")
AUTO_FLAT_MAX = 50_000
"""``auto`` builds ``flat`` below this many entries and ``ivf`` from it on."""
MIN_POINTS_PER_LIST = 39
"""Training vectors per IVF list (and per PQ centroid) below which faiss warns that k-means is unreliable."""
NORM_TOL = 1e-3
"""Vectors whose L2 norm differs from 1 by more than this are refused (``normalize=True`` to normalise them)."""
REBUILD_HINT = "rebuild it with `mvd-edge gallery build`"


class GalleryError(MvdEdgeError, ValueError):
    """A gallery cannot be built, searched or loaded as asked; the message says why."""


def faiss_module():
    """``import faiss``, or :class:`~mvd_edge.core.errors.MissingExtra` naming ``pip install 'mvd-edge[gallery]'``."""
    return require("faiss", "gallery")


def default_nlist(n: int) -> int:
    """IVF lists for ``n`` training vectors: ``4 * sqrt(n)``, at most one per 39 vectors, in ``[1, 65536]``."""
    return int(max(1, min(65536, round(4.0 * math.sqrt(max(n, 1))), n // MIN_POINTS_PER_LIST)))


def default_pq_m(dim: int) -> int:
    """PQ sub-vectors for ``dim``: the largest divisor of ``dim`` not above ``dim / 8`` (8-d sub-vectors), >= 1."""
    for m in range(max(1, dim // 8), 0, -1):
        if dim % m == 0:
            return m
    return 1


@dataclass
class IndexParams:
    """Index parameters (all have working defaults; ``None`` = chosen from the data at training).

    ``nlist``: IVF lists. ``nprobe``: lists searched per query (ivf, ivfpq). ``pq_m`` / ``pq_bits``:
    PQ sub-vectors and bits per code (ivfpq). ``refine_factor``: ivfpq re-ranks ``k * refine_factor``
    candidates exactly (0 = no re-ranking). ``hnsw_m``, ``ef_construction``, ``ef_search``: HNSW.
    ``train_size``: training vectors drawn (seeded by ``seed``) from what is given; default
    ``max(40 * nlist, 40 * 2**pq_bits)`` for ivfpq, ``40 * nlist`` for ivf.
    """

    nlist: int | None = None
    nprobe: int = 64
    pq_m: int | None = None
    pq_bits: int = 8
    refine_factor: int = 10
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 64
    train_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("nprobe", "pq_bits", "hnsw_m", "ef_construction", "ef_search"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"index parameter {name} must be >= 1, got {getattr(self, name)}")
        for name in ("nlist", "pq_m", "train_size"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise UsageError(f"index parameter {name} must be >= 1, got {v}")
        if self.refine_factor < 0:
            raise UsageError(f"index parameter refine_factor must be >= 0, got {self.refine_factor}")
        if self.pq_bits > 16:
            raise UsageError(f"index parameter pq_bits must be <= 16, got {self.pq_bits}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> IndexParams:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise UsageError(f"unknown index parameters {unknown} (known: {sorted(known)})")
        return cls(**d)


def _check_vectors(vectors: np.ndarray, dim: int, normalize: bool, what: str = "vectors") -> np.ndarray:
    """float32 C-contiguous ``[N, dim]``, finite and unit-norm (normalised here when ``normalize``)."""
    x = np.asarray(vectors)
    if x.ndim == 1 and x.shape[0] == dim:
        x = x[None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise UsageError(f"{what} must be [N, {dim}], got shape {tuple(x.shape)}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise UsageError(f"{what} hold NaN or inf")
    norms = np.linalg.norm(x, axis=1)
    if normalize:
        if (norms == 0).any():
            raise UsageError(f"{what}: {int((norms == 0).sum())} zero vectors cannot be normalised")
        x = x / norms[:, None]
    elif x.shape[0] and np.abs(norms - 1.0).max() > NORM_TOL:
        raise UsageError(f"{what} are not L2-normalised (norms {norms.min():.4f}..{norms.max():.4f}); cosine "
                         f"search needs unit vectors: pass normalize=True to normalise them")
    return x


def _check_ids(ids: Sequence[int | str], n: int, id_type: str | None) -> tuple[list[int | str], str]:
    """The ids as a list of int or of str (one type per gallery) and that type's name."""
    if isinstance(ids, np.ndarray):
        ids = ids.tolist()
    ids = list(ids)
    if len(ids) != n:
        raise UsageError(f"{len(ids)} ids for {n} vectors")
    if not ids:
        return ids, id_type or "int"
    if all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        kind = "int"
        ids = [int(i) for i in ids]
        if min(ids) < 0:
            raise UsageError(f"ids must be non-negative integers or non-empty strings, got {min(ids)}")
    elif all(isinstance(i, str) for i in ids):
        kind = "str"
        if any(not i for i in ids):
            raise UsageError("ids must be non-empty strings or non-negative integers, got an empty string")
    else:
        raise UsageError("ids must be all integers or all strings, not a mix (or another type)")
    if id_type is not None and kind != id_type:
        raise UsageError(f"this gallery's ids are {id_type}s, got {kind}s")
    return ids, kind


class Gallery:
    """Vectors with ids and metadata behind one faiss index; see the module docstring.

    Args:
        dim: vector dimension D.
        kind: ``flat``, ``ivf``, ``ivfpq``, ``hnsw`` or ``auto``.
        params: :class:`IndexParams` (or a dict of them).
        use_gpu: search on a GPU copy (faiss-gpu and a CUDA device needed).
        info: free-form JSON-serialisable facts saved with the gallery (e.g. the engine used).

    Attributes: ``kind`` (what was built; ``None`` until known for ``auto``), ``requested_kind``,
    ``fallback`` (why ``kind`` differs from the request, else ``None``), ``ids``, ``metadata``.
    """

    def __init__(self, dim: int, kind: str = "auto", params: IndexParams | dict | None = None,
                 use_gpu: bool = False, info: dict[str, Any] | None = None):
        if kind not in KIND_CHOICES:
            raise UsageError(f"unknown index kind {kind!r}; choose one of {', '.join(KIND_CHOICES)}")
        if int(dim) < 1:
            raise UsageError(f"dim must be >= 1, got {dim}")
        self.dim = int(dim)
        self.requested_kind = kind
        self.params = params if isinstance(params, IndexParams) else IndexParams.from_dict(dict(params or {}))
        self.use_gpu = bool(use_gpu)
        self.info: dict[str, Any] = dict(info or {})
        self.kind: str | None = kind if kind in ("flat", "hnsw") else None
        self.fallback: str | None = None
        self.ids: list[int | str] = []
        self.metadata: list[dict[str, Any]] = []
        self.id_type: str | None = None
        self.created: str | None = None
        self._index = None  # the CPU faiss index (the master copy)
        self._gpu = None  # a GPU copy for search, made on first search when use_gpu
        self._pending: list[np.ndarray] = []  # vectors added before training (their ids/metadata already listed)
        if self.kind is not None:
            self._index = self._new_index(self.kind, 0)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, vectors: np.ndarray, ids: Sequence[int | str], metadata: Sequence[dict] | None = None,
              kind: str = "auto", params: IndexParams | dict | None = None, use_gpu: bool = False,
              info: dict[str, Any] | None = None, normalize: bool = False) -> Gallery:
        """A trained gallery of ``vectors`` (float32 ``[N, D]``) with their ``ids`` and ``metadata``."""
        x = np.asarray(vectors)
        if x.ndim != 2:
            raise UsageError(f"vectors must be [N, D], got shape {tuple(x.shape)}")
        g = cls(x.shape[1], kind, params, use_gpu=use_gpu, info=info)
        g.add(x, ids, metadata, normalize=normalize)
        if not g.is_trained:
            g.train()
        return g

    @property
    def is_trained(self) -> bool:
        """True when the index exists and every added vector is searchable."""
        return self._index is not None and not self._pending

    @property
    def count(self) -> int:
        """Entries added (searchable or waiting for training)."""
        return len(self.ids)

    def __len__(self) -> int:
        return self.count

    def add(self, vectors: np.ndarray, ids: Sequence[int | str], metadata: Sequence[dict] | None = None,
            normalize: bool = False) -> None:
        """Add float32 ``[n, D]`` unit vectors with ``n`` ids and ``n`` metadata dicts (default ``{}``).

        Before an ``ivf``/``ivfpq``/``auto`` gallery is trained the vectors wait for :meth:`train`.
        """
        x = _check_vectors(vectors, self.dim, normalize)
        ids, self.id_type = _check_ids(ids, x.shape[0], self.id_type)
        meta = [dict(m) for m in metadata] if metadata is not None else [{} for _ in ids]
        if len(meta) != len(ids):
            raise UsageError(f"{len(meta)} metadata entries for {len(ids)} vectors")
        if self._index is not None and not self._pending:
            self._add_to_index(x)
        else:
            self._pending.append(x)
        self.ids.extend(ids)
        self.metadata.extend(meta)

    def train(self, vectors: np.ndarray | None = None, normalize: bool = False) -> None:
        """Choose the kind (``auto``), train the index and index the waiting vectors.

        ``vectors``: training vectors (default: those added so far); a sample of
        ``params.train_size`` of them is used. Too few for the requested kind: the nearest kind
        that can be trained is built, and :attr:`fallback` says why.
        """
        if self._index is not None and self.kind in ("flat", "hnsw") and not self._pending:
            return
        if self._index is not None and not self._pending:
            raise GalleryError(f"this {self.kind} gallery is already trained")
        waiting = np.concatenate(self._pending) if self._pending else np.zeros((0, self.dim), np.float32)
        train = waiting if vectors is None else _check_vectors(vectors, self.dim, normalize, "training vectors")
        n_total = max(self.count, train.shape[0])
        kind, p = self.requested_kind, self.params
        if kind == "auto":
            kind = "flat" if n_total < AUTO_FLAT_MAX else "ivf"
        reasons = []
        n = train.shape[0]
        if kind == "ivfpq":
            need = MIN_POINTS_PER_LIST * 2 ** p.pq_bits
            if n < need:
                reasons.append(f"ivfpq needs {need} training vectors for {2 ** p.pq_bits} PQ centroids "
                               f"(39 x 2^pq_bits), got {n}")
                kind = "ivf"
        if kind in ("ivf", "ivfpq"):
            nlist = p.nlist if p.nlist is not None else default_nlist(n)
            if n < MIN_POINTS_PER_LIST * nlist or nlist < 2:
                reasons.append(f"ivf needs {MIN_POINTS_PER_LIST * max(nlist, 2)} training vectors for "
                               f"{max(nlist, 2)} lists (39 per list), got {n}")
                kind = "flat"
            elif p.nlist is None:
                self.params = dataclasses.replace(p, nlist=nlist)
        if reasons:
            self.fallback = f"{self.requested_kind} requested; " + "; ".join(reasons) + f": built {kind}"
        self.kind = kind
        self._gpu = None
        self._index = self._new_index(kind, n)
        if kind in ("ivf", "ivfpq"):
            p = self.params
            size = p.train_size or max(40 * p.nlist, 40 * 2 ** p.pq_bits if kind == "ivfpq" else 0)
            rows = np.sort(np.random.default_rng(p.seed).choice(n, size=size, replace=False)) if n > size else None
            self._index.train(train if rows is None else train[rows])
        self._pending = []
        if waiting.shape[0]:
            self._add_to_index(waiting)

    def _new_index(self, kind: str, n_train: int):
        faiss = faiss_module()
        p, d = self.params, self.dim
        ip = faiss.METRIC_INNER_PRODUCT
        if kind == "flat":
            return faiss.IndexFlatIP(d)
        if kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, int(p.hnsw_m), ip)
            index.hnsw.efConstruction = int(p.ef_construction)
            index.hnsw.efSearch = int(p.ef_search)
            return index
        quantizer = faiss.IndexFlatIP(d)
        if kind == "ivf":
            index = faiss.IndexIVFFlat(quantizer, d, int(p.nlist), ip)
        else:
            m = p.pq_m or default_pq_m(d)
            if d % m:
                raise UsageError(f"pq_m {m} does not divide the dimension {d}")
            if p.pq_m is None:
                self.params = dataclasses.replace(self.params, pq_m=m)
            index = faiss.IndexIVFPQ(quantizer, d, int(p.nlist), int(m), int(p.pq_bits), ip)
            index.pq.cp.max_points_per_centroid = 64  # PQ k-means on at most 64 points per centroid: fast enough
        index.nprobe = int(p.nprobe)  # faiss's Python wrapper keeps `quantizer` alive with the index
        if kind == "ivfpq" and p.refine_factor > 0:
            refine = faiss.IndexRefineFlat(index)
            refine.k_factor = float(p.refine_factor)
            return refine
        return index

    def _add_to_index(self, x: np.ndarray, chunk: int = 1 << 16) -> None:
        for start in range(0, x.shape[0], chunk):
            self._index.add(x[start:start + chunk])
        self._gpu = None

    # ------------------------------------------------------------------ searching
    def _check_searchable(self) -> None:
        if self._index is None or self._pending:
            waiting = sum(v.shape[0] for v in self._pending)
            raise GalleryError(f"this {self.requested_kind} gallery is not trained yet ({waiting} vectors waiting): "
                               f"call train() first, or build it with Gallery.build()")

    def _search_index(self):
        if not self.use_gpu:
            return self._index
        if self._gpu is None:
            faiss = faiss_module()
            ngpu = faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0
            if ngpu < 1:
                raise DeviceUnavailable("use_gpu: this faiss sees no GPU (faiss-cpu, or no CUDA device); install "
                                        "faiss-gpu on a machine with one, or search on the CPU")
            if self.kind == "hnsw" or (self.kind == "ivfpq" and self.params.refine_factor > 0):
                raise UsageError(f"faiss has no GPU version of this {self.kind} index (HNSW and the re-ranking "
                                 f"wrapper are CPU-only); search it without use_gpu")
            try:
                self._gpu_res = faiss.StandardGpuResources()
                self._gpu = faiss.index_cpu_to_gpu(self._gpu_res, 0, self._index)
            except RuntimeError as exc:
                raise DeviceUnavailable(f"faiss cannot put this {self.kind} index on the GPU: "
                                        f"{str(exc).splitlines()[0]}") from exc
        return self._gpu

    def _apply_search_params(self, index, k: int, nprobe: int | None, ef_search: int | None) -> None:
        faiss = faiss_module()
        p = self.params
        if self.kind in ("ivf", "ivfpq"):
            value = int(nprobe or p.nprobe)
            if self.use_gpu:
                faiss.GpuParameterSpace().set_index_parameter(index, "nprobe", value)
            else:
                faiss.extract_index_ivf(index).nprobe = value
        if self.kind == "hnsw":
            index.hnsw.efSearch = max(int(ef_search or p.ef_search), k)

    def search_rows(self, queries: np.ndarray, k: int = 10, *, nprobe: int | None = None,
                    ef_search: int | None = None, normalize: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` entries of each query: float32 scores ``[Q, k]`` (cosine, best first) and int64 rows ``[Q, k]``.

        ``k`` is capped at :attr:`count`. A row is -1 (score ``-inf``) where an approximate index
        reached fewer than ``k`` entries (few lists probed). ``nprobe`` / ``ef_search`` override
        the gallery's defaults for this call.
        """
        self._check_searchable()
        q = _check_vectors(queries, self.dim, normalize, "queries")
        if int(k) < 1:
            raise UsageError(f"k must be >= 1, got {k}")
        k = min(int(k), self.count)
        if k == 0 or q.shape[0] == 0:
            return np.zeros((q.shape[0], k), np.float32), np.zeros((q.shape[0], k), np.int64)
        index = self._search_index()
        self._apply_search_params(index, k, nprobe, ef_search)
        scores, rows = index.search(q, k)
        scores = np.asarray(scores, np.float32)
        rows = np.asarray(rows, np.int64)
        scores[rows < 0] = -np.inf
        return scores, rows

    def search(self, queries: np.ndarray, k: int = 10, **kwargs) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` of each query: float32 scores ``[Q, k]`` and ids ``[Q, k]`` (see :meth:`search_rows`).

        ids are int64 for integer ids (-1 where no entry was reached) or an object array of str
        (``""`` where none). ``kwargs``: ``nprobe``, ``ef_search``, ``normalize``.
        """
        scores, rows = self.search_rows(queries, k, **kwargs)
        if self.id_type == "str":
            table = np.array([*self.ids, ""], dtype=object)
        else:
            table = np.array([*self.ids, -1], dtype=np.int64)
        return scores, table[rows]  # row -1 picks the sentinel at the end

    def entry(self, row: int) -> tuple[int | str, dict[str, Any]]:
        """``(id, metadata)`` of entry ``row``."""
        return self.ids[row], self.metadata[row]

    def index_bytes(self) -> int:
        """Bytes of the serialised index: what it holds in memory, within a few kB."""
        self._check_searchable()
        return int(faiss_module().serialize_index(self._index).nbytes)

    def describe(self) -> dict[str, Any]:
        """kind, requested kind, fallback, dim, count and params, for reports."""
        return {"kind": self.kind, "requested_kind": self.requested_kind, "fallback": self.fallback, "dim": self.dim,
                "count": self.count, "params": self.params.to_dict(), "use_gpu": self.use_gpu}

    # ------------------------------------------------------------------ saving
    def save(self, folder: str | Path) -> Path:
        """Write ``folder/index.faiss`` and ``folder/gallery.json`` (each atomically, the index first); returns the folder."""
        from mvd_edge.runtime.sidecar import sha256_file

        self._check_searchable()
        faiss = faiss_module()
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        path = out / INDEX_FILE
        tmp = out / f".{INDEX_FILE}.tmp-{os.getpid()}"
        side_tmp = out / f".{SIDECAR_FILE}.new-{os.getpid()}"
        # both files are written aside first and only then renamed into place (renames need no space):
        # a full disk leaves the old gallery whole, never a new index beside an old or missing sidecar
        try:
            try:
                faiss.write_index(self._index, str(tmp))
                with open(tmp, "rb+") as fh:
                    os.fsync(fh.fileno())
            except RuntimeError as exc:  # faiss reports a failed write as a RuntimeError
                raise OSError(write_errno(out), f"cannot write the index ({exc})", str(path)) from exc
            self.created = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            side = {"format": GALLERY_FORMAT, "kind": self.kind, "requested_kind": self.requested_kind,
                    "fallback": self.fallback, "metric": "inner_product", "dim": self.dim, "count": self.count,
                    "params": self.params.to_dict(), "id_type": self.id_type or "int",
                    "faiss_version": faiss.__version__, "created": self.created, "index_file": INDEX_FILE,
                    "index_bytes": tmp.stat().st_size, "index_sha256": sha256_file(tmp), "info": self.info,
                    "ids": self.ids, "metadata": self.metadata}
            try:
                write_json(side_tmp, side, indent=1)
            except OSError as exc:
                raise output_error(exc, out / SIDECAR_FILE) from exc
            os.replace(tmp, path)
            os.replace(side_tmp, out / SIDECAR_FILE)
        finally:
            tmp.unlink(missing_ok=True)
            side_tmp.unlink(missing_ok=True)
        return out

    @classmethod
    def load(cls, folder: str | Path, use_gpu: bool = False, verify_hash: bool = True) -> Gallery:
        """Read a gallery written by :meth:`save`; every sidecar field is checked against the index file."""
        from mvd_edge.runtime.sidecar import sha256_file

        faiss = faiss_module()
        folder = Path(folder)
        side_path = folder / SIDECAR_FILE
        side = read_json(side_path, GalleryError, "an mvd-edge gallery sidecar", fmt=GALLERY_FORMAT, hint=REBUILD_HINT)

        def bad(field: str, why: str) -> GalleryError:
            return GalleryError(f"{side_path}: field {field!r} {why}; {REBUILD_HINT}")

        for field, types in (("kind", str), ("requested_kind", str), ("dim", int), ("count", int), ("params", dict),
                             ("ids", list), ("metadata", list), ("index_file", str), ("index_bytes", int),
                             ("index_sha256", str), ("id_type", str), ("info", dict)):
            if field not in side:
                raise bad(field, "is missing")
            if not isinstance(side[field], types) or isinstance(side[field], bool):
                raise bad(field, f"is {type(side[field]).__name__}, expected {types.__name__}")
        if side["kind"] not in INDEX_KINDS:
            raise bad("kind", f"is {side['kind']!r}, not one of {INDEX_KINDS}")
        if side["requested_kind"] not in KIND_CHOICES:
            raise bad("requested_kind", f"is {side['requested_kind']!r}, not one of {KIND_CHOICES}")
        if side.get("metric", "inner_product") != "inner_product":
            raise bad("metric", f"is {side['metric']!r}, expected 'inner_product'")
        count = side["count"]
        for field in ("ids", "metadata"):
            if len(side[field]) != count:
                raise bad(field, f"has {len(side[field])} entries but count is {count}")
        if not all(isinstance(m, dict) for m in side["metadata"]):
            raise bad("metadata", "holds an entry that is not an object")
        try:
            params = IndexParams.from_dict(side["params"])
        except (UsageError, TypeError) as exc:
            raise bad("params", f"is invalid ({exc})") from exc
        try:
            ids, id_type = _check_ids(side["ids"], count, None)
        except UsageError as exc:
            raise bad("ids", f"is invalid ({exc})") from exc
        if count and id_type != side["id_type"]:
            raise bad("id_type", f"is {side['id_type']!r} but the ids are {id_type}s")
        index_path = folder / side["index_file"]
        if not index_path.is_file():
            raise bad("index_file", f"names {index_path}, which is not there")
        size = index_path.stat().st_size
        if size != side["index_bytes"]:
            raise bad("index_bytes", f"is {side['index_bytes']} but {index_path} is {size} bytes (truncated or "
                                     f"replaced)")
        if verify_hash and sha256_file(index_path) != side["index_sha256"]:
            raise bad("index_sha256", f"does not match {index_path} (corrupt or modified)")
        try:
            index = faiss.read_index(str(index_path))
        except RuntimeError as exc:
            raise bad("index_file", f"names {index_path}, which faiss cannot read ({str(exc).splitlines()[0]})") from exc
        if index.d != side["dim"]:
            raise bad("dim", f"is {side['dim']} but the index holds {index.d}-d vectors")
        if index.ntotal != count:
            raise bad("count", f"is {count} but the index holds {index.ntotal} vectors")
        if index.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise bad("metric", "says inner_product but the index uses another metric")
        built = _kind_of(faiss, index)
        if built != side["kind"]:
            raise bad("kind", f"is {side['kind']!r} but {index_path} holds a {built} index")
        if built == "ivfpq" and (params.refine_factor > 0) != isinstance(index, faiss.IndexRefine):
            raise bad("params", "refine_factor disagrees with the index (re-ranking wrapper present or absent)")
        if built in ("ivf", "ivfpq") and faiss.extract_index_ivf(index).nlist != params.nlist:
            raise bad("params", f"nlist is {params.nlist} but the index has {faiss.extract_index_ivf(index).nlist}")
        g = cls(side["dim"], side["requested_kind"], params, use_gpu=use_gpu, info=side["info"])
        g.kind, g.fallback, g.created = side["kind"], side.get("fallback"), side.get("created")
        g._index, g._pending = index, []
        if isinstance(index, faiss.IndexRefine):
            index.k_factor = float(params.refine_factor)
        g.ids, g.id_type = ids, (side["id_type"] if count else None)
        g.metadata = side["metadata"]
        g.info["loaded_faiss_version"] = faiss.__version__
        g.info["saved_faiss_version"] = side.get("faiss_version")
        return g


def _kind_of(faiss, index) -> str:
    """The gallery kind a faiss index is (``"other: <class>"`` for anything else)."""
    if isinstance(index, faiss.IndexRefine):
        base = faiss.downcast_index(index.base_index)
        return "ivfpq" if isinstance(base, faiss.IndexIVFPQ) else f"other: refine over {type(base).__name__}"
    kinds = ((faiss.IndexHNSWFlat, "hnsw"), (faiss.IndexIVFPQ, "ivfpq"), (faiss.IndexIVFFlat, "ivf"),
             (faiss.IndexFlat, "flat"))
    return next((kind for cls, kind in kinds if isinstance(index, cls)), f"other: {type(index).__name__}")
