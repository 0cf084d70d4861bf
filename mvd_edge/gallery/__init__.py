"""Large galleries of embeddings on faiss: exact and approximate cosine search, saved with a checked sidecar.

torch-free (numpy; OpenCV and :mod:`mvd_edge.runtime` only to embed crops). faiss is an
optional dependency (``pip install 'mvd-edge[gallery]'``), imported inside the functions that
need it, so ``import mvd_edge.gallery`` works without it and the exact numpy paths
(:class:`IdentityMemory` below its size threshold) never need it.

* :mod:`.index`: :class:`Gallery` -- float32 L2-normalised vectors ``[N, D]`` with an id and a
  metadata dict per entry; index kinds ``flat`` (exact), ``ivf``, ``ivfpq`` (with exact
  re-ranking), ``hnsw`` and ``auto``; ``save(dir)`` / ``Gallery.load(dir)`` with
  ``index.faiss`` + ``gallery.json``.
* :mod:`.store`: :func:`build_from_crops` -- a gallery from a folder of person crops and an
  embedding engine; :func:`list_crops` / :func:`embed_images`.
* :mod:`.memory`: :class:`IdentityMemory` -- the matcher's identity store (the pair
  associator's ended global ids, the site's global identities; least recently seen forgotten
  first), exact numpy search when small and a faiss shortlist when large, with the same answers.

The names below load on first use (PEP 562 module ``__getattr__``), like :mod:`mvd_edge.match`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_EXPORTS = {
    "AUTO_FLAT_MAX": "index",
    "GALLERY_FORMAT": "index",
    "INDEX_KINDS": "index",
    "Gallery": "index",
    "GalleryError": "index",
    "IdentityMemory": "memory",
    "build_from_crops": "store",
    "embed_images": "store",
    "list_crops": "store",
}

__all__ = ["AUTO_FLAT_MAX", "GALLERY_FORMAT", "INDEX_KINDS", "Gallery", "GalleryError", "IdentityMemory",
           "build_from_crops", "embed_images", "list_crops"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if TYPE_CHECKING:  # pragma: no cover
    from mvd_edge.gallery.index import AUTO_FLAT_MAX, GALLERY_FORMAT, INDEX_KINDS, Gallery, GalleryError
    from mvd_edge.gallery.memory import IdentityMemory
    from mvd_edge.gallery.store import build_from_crops, embed_images, list_crops
