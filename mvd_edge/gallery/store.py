"""A gallery from a folder of person crops: walk the images, embed them with an engine, index them.

Folder rule (:func:`list_crops`)::

    CROPS_DIR/
      17/            an identity folder: every image in it has id 17
        a.jpg
        c2_0001.png  a name starting c<cam>_ also records camera 2 (the project's folder format)
      alice/
        x.jpg        id "alice"
      rgb/0017/c1_0003.jpg   deeper folders work too: the id is always the image's own folder (0017)
      0042_walk.jpg  an image directly in CROPS_DIR: the id is its name up to the first "_" (0042)

* images end in ``.jpg``, ``.jpeg`` or ``.png`` (any case); hidden files and folders (``.name``)
  are skipped; other files are ignored (and counted);
* when every id is made of digits the ids are integers (``0017`` -> 17), otherwise all ids are
  the names as strings (one id type per gallery);
* metadata of each entry: ``path`` (relative to CROPS_DIR, ``/``-separated), ``cam`` when the
  file name starts with ``c<digits>_``, ``modality`` (``rgb``/``ir``) when a folder on the way is
  named ``rgb`` or ``ir`` (or visible/infrared/thermal).

An image that cannot be decoded is an error naming it (nothing is skipped silently).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.gallery.index import Gallery, GalleryError, IndexParams

__all__ = ["IMAGE_SUFFIXES", "build_from_crops", "check_embedder", "embed_images", "embedder_info", "list_crops"]

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
_CAM = re.compile(r"^c(\d+)_")


def _modality(parts: Sequence[str]) -> str | None:
    for part in parts:
        try:
            return Modality.parse(part).short
        except UsageError:
            continue
    return None


def list_crops(folder: str | Path) -> tuple[list[Path], list[int | str], list[dict[str, Any]], int]:
    """The images under ``folder`` (sorted by relative path) with their ids and metadata, and the
    number of non-image files ignored; see the module docstring for the rule."""
    root = Path(folder)
    if not root.is_dir():
        raise GalleryError(f"crops folder not found: {root}")
    paths, names, meta, ignored = [], [], [], 0
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if any(part.startswith(".") for part in rel.parts) or not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_SUFFIXES:
            ignored += 1
            continue
        name = rel.parts[-2] if len(rel.parts) > 1 else p.stem.split("_", 1)[0]
        if not name:
            raise GalleryError(f"{p}: no id in its name (an image directly in {root} is named <id>_<anything>)")
        m: dict[str, Any] = {"path": rel.as_posix()}
        cam = _CAM.match(p.name)
        if cam:
            m["cam"] = int(cam.group(1))
        mod = _modality(rel.parts[:-1])
        if mod is not None:
            m["modality"] = mod
        paths.append(p)
        names.append(name)
        meta.append(m)
    if not paths:
        raise GalleryError(f"no .jpg/.jpeg/.png image under {root} (layout: {root}/<id>/<anything>.jpg)")
    ids: list[int | str] = [int(n) for n in names] if all(n.isdigit() for n in names) else list(names)
    return paths, ids, meta, ignored


def _read(path: Path) -> np.ndarray:
    from mvd_edge.core.preprocess import read_image

    img = read_image(str(path))
    if img is None:
        raise GalleryError(f"cannot decode image {path} (corrupt, empty or not an image); remove or replace it")
    return img


def embed_images(paths: Sequence[Path], embedder, batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """Read ``paths`` (OpenCV, BGR) and embed them in batches: float32 ``[N, D]``, L2-normalised.

    ``embedder``: an :class:`mvd_edge.runtime.Embedder`. ``progress``: a rich progress bar.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    if batch_size < 1:
        raise UsageError(f"batch size must be >= 1, got {batch_size}")
    out = np.empty((len(paths), embedder.dim), np.float32)
    with Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  transient=True, disable=not progress) as bar:
        task = bar.add_task("embedding crops", total=len(paths))
        for start in range(0, len(paths), batch_size):
            chunk = paths[start:start + batch_size]
            out[start:start + len(chunk)] = embedder.embed([_read(p) for p in chunk])
            bar.advance(task, len(chunk))
    return out


def embedder_info(embedder, source: str | Path | None = None) -> dict[str, Any]:
    """What a gallery records of the engine that made its vectors (checked by :func:`check_embedder`):
    backend, precision, dim, recipe, preprocessing and the model's identity, ``checkpoint_sha256``
    (:func:`mvd_edge.runtime.sidecar.model_sha256`)."""
    from mvd_edge.runtime.sidecar import model_sha256

    info = getattr(embedder, "info", {}) or {}
    out = {"backend": getattr(embedder, "backend", "?"), "precision": getattr(embedder, "precision", None),
           "dim": int(embedder.dim), "recipe": info.get("recipe")}
    if source is not None:
        out["engine"] = str(source)
    if info.get("engine_sha256"):
        out["engine_sha256"] = info["engine_sha256"]
    sha = model_sha256(embedder, source)
    if sha is None:
        raise GalleryError(f"{source or 'the engine'}: its model's checkpoint hash is unknown (no graph metadata, "
                           "no sidecar hashes), so a gallery of it could not be checked on search; build the "
                           "gallery with an engine from `mvd-edge export` / `mvd-edge build-engine`")
    out["checkpoint_sha256"] = sha
    spec = getattr(embedder, "spec", None)
    if spec is not None and hasattr(spec, "to_dict"):
        out["preprocess"] = spec.to_dict()
    return out


def check_embedder(gallery: Gallery, embedder, model: str | Path) -> None:
    """Refuse (one-line :class:`GalleryError`) a query engine whose vectors are not comparable with the
    gallery's: another dimension, recipe or model (checkpoint hash); a gallery that records no model hash
    (written before galleries did) cannot be checked and is refused too."""
    from mvd_edge.runtime.sidecar import model_sha256

    built = gallery.info.get("embedder") or {}
    engine = built.get("engine", "another engine")
    rebuild = f"search with the engine it was built with ({engine}), or rebuild the gallery: " \
              f"mvd-edge gallery build CROPS_DIR --model {model} --out GALLERY_DIR"
    if embedder.dim != gallery.dim:
        raise GalleryError(f"--model {model} makes {embedder.dim}-d vectors but the gallery holds {gallery.dim}-d "
                           f"ones; {rebuild}")
    want = built.get("checkpoint_sha256")
    if not isinstance(want, str) or not want:
        raise GalleryError(f"the gallery records no model hash (built before galleries recorded one), so --model "
                           f"{model} cannot be checked against it; rebuild the gallery: mvd-edge gallery build "
                           f"CROPS_DIR --model {model} --out GALLERY_DIR")
    have = model_sha256(embedder, model)
    if have != want:
        raise GalleryError(f"--model {model} is model sha256 {(have or 'unknown')[:12]}... but the gallery was built "
                           f"with model sha256 {want[:12]}...: its vectors are not comparable; {rebuild}")
    info = getattr(embedder, "info", {}) or {}
    if built.get("recipe") and info.get("recipe") and built["recipe"] != info["recipe"]:
        raise GalleryError(f"--model {model} has recipe {info['recipe']!r} but the gallery was built with "
                           f"{built['recipe']!r}: its vectors are not comparable; {rebuild}")


def build_from_crops(folder: str | Path, embedder, kind: str = "auto", params: IndexParams | dict | None = None,
                     batch_size: int = 64, progress: bool = True, use_gpu: bool = False) -> Gallery:
    """A trained :class:`Gallery` of every crop under ``folder`` (see :func:`list_crops` for the id rule).

    ``embedder``: an :class:`mvd_edge.runtime.Embedder` or an engine path for
    :func:`mvd_edge.runtime.load_embedder`. The gallery's ``info`` records the engine
    (:func:`embedder_info`), the crops folder and how many non-image files were ignored.
    """
    source = None
    if isinstance(embedder, (str, Path)):
        from mvd_edge.runtime import load_embedder

        source, embedder = embedder, load_embedder(embedder)
    built_with = embedder_info(embedder, source)  # before any work: refuses an engine of unknown model
    paths, ids, meta, ignored = list_crops(folder)
    vectors = embed_images(paths, embedder, batch_size=batch_size, progress=progress)
    info = {"embedder": built_with, "crops_dir": str(folder), "ignored_files": ignored}
    return Gallery.build(vectors, ids, meta, kind=kind, params=params, use_gpu=use_gpu, info=info)
