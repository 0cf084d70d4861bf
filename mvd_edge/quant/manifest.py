"""Calibration-set manifests: which crops calibrate the INT8 ranges, written down and hashed.

A manifest is a JSON file (``MANIFEST_FORMAT``)::

    {"format": "mvd-edge-calib-manifest/1",
     "sha256": <sha256 of the canonical entry list>,
     "content_sha256": <sha256 over the bytes of every referenced file>,
     "root": <absolute folder the entry paths are relative to>,
     "seed": 0,
     "source": {"kind": "dataset" | "folder" | "video", ...description...},
     "counts": {"total": n, "modality": {"rgb": .., "ir": .., "unknown": ..}, "camera": {"1": .., "unknown": ..}},
     "entries": [{"path": "cam1/0001/0001.jpg", "modality": "rgb", "cam": 1},
                 {"path": "clip.mp4", "modality": "ir", "cam": null, "frame": 40, "box": [x, y, w, h], "track": 3}]}

Image entries name an image file; video entries name a video file, a 0-based frame index
and a box ``[x, y, w, h]`` in pixels (already clipped to the frame).

Builders, seeded, warning below 300 crops: :func:`from_dataset` (a data set's ``train`` or ``val``
split, stratified by modality and camera), :func:`from_folder` (every image under a folder) and
:func:`from_video` (person crops, :mod:`mvd_edge.quant.video`). House rule: calibration data never
comes from query/gallery/test data, so other splits and paths through such folders are refused.

:func:`iter_crops` (or :meth:`Manifest.crops`) yields the crops as uint8 BGR ``[h, w, 3]``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import MvdEdgeError, UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.core.preprocess import read_image
from mvd_edge.core.util import read_json, write_json

MANIFEST_FORMAT = "mvd-edge-calib-manifest/1"
DEFAULT_N = 512
MIN_RECOMMENDED = 300
CALIB_SPLITS: tuple[str, ...] = ("train", "val")
#: Folder names that mark evaluation data; calibration refuses any path through them.
FORBIDDEN_DIR_NAMES: frozenset[str] = frozenset({"query", "gallery", "test", "bounding_box_test"})
IMAGE_SUFFIXES: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".bmp"})
_RGB_NAMES = frozenset({"rgb", "vis", "visible", "color", "colour"})
_IR_NAMES = frozenset({"ir", "nir", "infrared", "thermal", "tir"})
_ENTRY_KEYS = frozenset({"path", "modality", "cam", "frame", "box", "track"})
_TOP_KEYS = frozenset({"format", "sha256", "content_sha256", "root", "seed", "source", "counts", "entries"})


class ManifestError(MvdEdgeError, ValueError):
    """A calibration manifest cannot be built or read; the message says why and what to do."""


class CalibrationSetWarning(UserWarning):
    """The calibration set is smaller than recommended (ranges may be noisy)."""


@dataclass(frozen=True)
class Entry:
    """One calibration crop: an image file, or a box in one frame of a video file.

    ``path`` is relative to the manifest root (posix separators) or absolute.
    ``box`` is ``(x, y, w, h)`` in pixels; ``frame`` is 0-based.
    """

    path: str
    modality: Modality | None = None
    cam: int | None = None
    frame: int | None = None
    box: tuple[int, int, int, int] | None = None
    track: int | None = None

    @property
    def is_video(self) -> bool:
        return self.frame is not None

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"path": self.path, "modality": self.modality.short if self.modality else None,
                             "cam": self.cam}
        if self.is_video:
            d.update(frame=self.frame, box=list(self.box) if self.box else None, track=self.track)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "entry") -> "Entry":
        unknown = set(d) - _ENTRY_KEYS
        if unknown:
            raise ManifestError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_ENTRY_KEYS)}")
        if not isinstance(d.get("path"), str) or not d["path"]:
            raise ManifestError(f"{where}: 'path' must be a non-empty string")
        if d.get("frame") is not None and (d.get("box") is None or len(d["box"]) != 4):
            raise ManifestError(f"{where}: a video entry needs 'box': [x, y, w, h]")

        def opt(key: str, convert) -> Any:
            return convert(d[key]) if d.get(key) is not None else None

        return cls(d["path"], opt("modality", Modality.parse), opt("cam", int), opt("frame", int),
                   opt("box", lambda box: tuple(int(v) for v in box)), opt("track", int))


def canonical_sha256(obj: Any) -> str:
    """sha256 of the canonical JSON of ``obj`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Manifest:
    """A calibration set: entries plus where they came from. See the module docstring."""

    entries: list[Entry]
    root: str
    source: dict[str, Any]
    seed: int | None = None
    content_sha256: str = ""

    def __post_init__(self) -> None:
        if not self.entries:
            raise ManifestError("a calibration manifest needs at least one crop")
        if not self.content_sha256:
            self.content_sha256 = self.compute_content_sha256()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def sha256(self) -> str:
        return canonical_sha256([e.to_dict() for e in self.entries])  # entry order matters

    @property
    def counts(self) -> dict[str, Any]:
        mod = Counter(e.modality.short if e.modality else "unknown" for e in self.entries)
        cam = Counter(str(e.cam) if e.cam is not None else "unknown" for e in self.entries)
        cam_order = sorted(cam, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0))
        return {"total": len(self.entries), "modality": dict(sorted(mod.items())),
                "camera": {k: cam[k] for k in cam_order}}

    def resolve(self, entry: Entry) -> Path:
        p = Path(entry.path)
        return p if p.is_absolute() else Path(self.root) / p

    def compute_content_sha256(self) -> str:
        """sha256 over (relative path, file sha256) of every distinct referenced file."""
        from mvd_edge.runtime.sidecar import sha256_file

        h = hashlib.sha256()
        for rel in sorted({e.path for e in self.entries}):
            path = self.resolve(Entry(rel))
            if not path.is_file():
                raise ManifestError(f"calibration file not found: {path}")
            h.update(rel.encode() + b"\0" + sha256_file(path).encode() + b"\n")
        return h.hexdigest()

    def verify(self) -> None:
        """Raise :class:`ManifestError` if a referenced file changed since the manifest was built."""
        now = self.compute_content_sha256()
        if now != self.content_sha256:
            raise ManifestError(
                f"the files of this calibration manifest changed since it was built (content sha256 {now[:12]} != "
                f"{self.content_sha256[:12]}); rebuild the manifest")

    def to_dict(self) -> dict[str, Any]:
        return {"format": MANIFEST_FORMAT, "sha256": self.sha256, "content_sha256": self.content_sha256,
                "root": self.root, "seed": self.seed, "source": self.source, "counts": self.counts,
                "entries": [e.to_dict() for e in self.entries]}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        return write_json(path, self.to_dict(), indent=1)  # atomic; a full disk names the manifest, leaves no temp

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "manifest") -> "Manifest":
        if not isinstance(d, dict) or d.get("format") != MANIFEST_FORMAT:
            raise ManifestError(f"{where}: not a calibration manifest (expected format {MANIFEST_FORMAT})")
        unknown = set(d) - _TOP_KEYS
        if unknown:
            raise ManifestError(f"{where}: unknown key(s) {sorted(unknown)}")
        entries = [Entry.from_dict(e, f"{where}: entry {i}") for i, e in enumerate(d.get("entries") or [])]
        if not entries:
            raise ManifestError(f"{where}: no entries")
        m = cls(entries=entries, root=str(d["root"]), source=dict(d.get("source") or {}), seed=d.get("seed"),
                content_sha256=str(d.get("content_sha256") or ""))
        if d.get("sha256") and d["sha256"] != m.sha256:
            raise ManifestError(f"{where}: entry list does not match its sha256 (edited by hand?); rebuild it")
        return m

    @classmethod
    def load(cls, path: str | Path) -> "Manifest":
        path = Path(path)
        return cls.from_dict(read_json(path, ManifestError, "calibration manifest"), str(path))

    def subset(self, indices: Sequence[int], note: str) -> "Manifest":
        """A manifest of ``entries[i] for i in indices`` (source records the parent and ``note``)."""
        src = {"kind": "subset", "parent_sha256": self.sha256, "note": note, "parent": self.source}
        return Manifest([self.entries[i] for i in indices], self.root, src, self.seed)

    def split_holdout(self, fraction: float = 0.2, seed: int = 0, min_holdout: int = 8
                      ) -> tuple["Manifest", "Manifest"]:
        """Seeded split into ``(ranges_part, held_out)``; the held-out crops never feed the ranges."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
        n = len(self.entries)
        k = max(min_holdout, int(round(fraction * n)))
        if n - k < 1:
            raise ManifestError(f"calibration set too small to hold out {k} crops for sensitivity ({n} crops)")
        held = sorted(np.random.default_rng(seed).choice(n, size=k, replace=False).tolist())
        rest = sorted(set(range(n)) - set(held))
        return (self.subset(rest, f"ranges part (held out {k}, seed {seed})"),
                self.subset(held, f"held-out part ({k} crops, seed {seed})"))

    def crops(self) -> Iterator[np.ndarray]:
        """Yield every crop in entry order as uint8 BGR ``[h, w, 3]``; unreadable files raise."""
        for (video, _), group in itertools.groupby(self.entries, key=lambda e: (e.is_video, e.path)):
            run = list(group)
            if video:  # one pass through the file for a run of its boxes
                from mvd_edge.quant.video import read_video_crops

                yield from read_video_crops(self.resolve(run[0]), [(x.frame, x.box) for x in run])
                continue
            for e in run:
                img = read_image(str(self.resolve(e)))
                if img is None:
                    raise ManifestError(f"calibration image unreadable or corrupt: {self.resolve(e)}")
                yield img


def iter_crops(manifest: "Manifest | str | Path") -> Iterator[np.ndarray]:
    """Crops of a manifest (object or JSON path) as uint8 BGR ``[h, w, 3]`` arrays."""
    return load_manifest(manifest).crops()


def load_manifest(manifest: "Manifest | str | Path") -> Manifest:
    return manifest if isinstance(manifest, Manifest) else Manifest.load(manifest)


def check_not_evaluation_path(path: Path, what: str) -> None:
    """Refuse a path with a component named query/gallery/test (calibration never sees evaluation data)."""
    bad = [part for part in path.parts if part.lower() in FORBIDDEN_DIR_NAMES]
    if bad:
        raise ManifestError(
            f"{what} {path} goes through a folder named {bad[0]!r}: calibration data never comes from "
            f"query/gallery/test data (house rule). Use training crops or a folder of other footage.")


def _water_fill(capacity: dict[Any, int], n: int) -> dict[Any, int]:
    """Share ``n`` as evenly as capacities allow (sorted keys get the remainder first)."""
    alloc = {k: 0 for k in capacity}
    left = min(n, sum(capacity.values()))
    open_keys = sorted((k for k in capacity if capacity[k] > 0), key=_sort_key)
    while left > 0 and open_keys:
        share, extra = divmod(left, len(open_keys))
        for idx, k in enumerate(open_keys):
            give = min(share + (1 if idx < extra else 0), capacity[k] - alloc[k])
            alloc[k] += give
            left -= give
        open_keys = [k for k in open_keys if alloc[k] < capacity[k]]
    return alloc


def _sort_key(k: Any) -> tuple:
    return tuple((0, x) if isinstance(x, int) else (1, str(x)) for x in (k if isinstance(k, tuple) else (k,)))


def stratified_pick(items: Sequence[Entry], n: int, seed: int) -> list[Entry]:
    """Seeded pick of ``n`` entries, balanced over modalities, then over cameras within a modality.

    Deterministic for ``(items as a set, n, seed)``: items are sorted by path first; the
    result is shuffled with the same seed so batches mix strata.
    """
    items = sorted(items, key=lambda e: (e.path, e.frame or 0, e.box or ()))
    by_mod: dict[Any, dict[Any, list[Entry]]] = {}
    for e in items:
        mk = int(e.modality) if e.modality is not None else "unknown"
        ck = e.cam if e.cam is not None else "unknown"
        by_mod.setdefault(mk, {}).setdefault(ck, []).append(e)
    rng = np.random.default_rng(seed)
    mod_alloc = _water_fill({m: sum(len(v) for v in cams.values()) for m, cams in by_mod.items()}, n)
    picked: list[Entry] = []
    for m in sorted(by_mod, key=_sort_key):
        cams = by_mod[m]
        cam_alloc = _water_fill({c: len(v) for c, v in cams.items()}, mod_alloc[m])
        for c in sorted(cams, key=_sort_key):
            pool = cams[c]
            idx = rng.choice(len(pool), size=cam_alloc[c], replace=False) if cam_alloc[c] else []
            picked.extend(pool[i] for i in sorted(int(i) for i in idx))
    order = rng.permutation(len(picked))
    return [picked[i] for i in order]


def _warn_if_small(count: int, requested: int | None, available: int, what: str) -> None:
    if count < MIN_RECOMMENDED:
        why = f"only {available} available" if requested is not None and available < requested else \
            f"{requested} requested" if requested is not None else f"{available} found"
        warnings.warn(
            f"calibration set from {what} has {count} crops ({why}); at least {MIN_RECOMMENDED} are recommended "
            f"for stable INT8 ranges (default {DEFAULT_N})", CalibrationSetWarning, stacklevel=3)


def _check_n(n: int | None) -> None:
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1):
        raise UsageError(f"n must be a positive integer, got {n!r}")


def from_dataset(name: str, root: str | Path, n: int = DEFAULT_N, seed: int = 0, split: str = "train",
                 **load_kwargs: Any) -> Manifest:
    """Calibration set from a data set's ``train`` (or ``val``) split.

    Seeded and stratified: ``n`` crops shared evenly between modalities, then between the
    cameras of each modality (strata with too few images give their share to the others).
    Warns (:class:`CalibrationSetWarning`) below :data:`MIN_RECOMMENDED` crops.
    ``load_kwargs`` go to ``mvd_edge.data.registry.load_dataset``.

    Raises:
        ManifestError: ``split`` is not train/val (query, gallery and test splits are never
            used for calibration), or the split is empty.
    """
    if split not in CALIB_SPLITS:
        raise ManifestError(
            f"split {split!r} cannot be used for calibration: only {' or '.join(CALIB_SPLITS)}; query/gallery/test "
            f"data never calibrates a model (house rule)")
    _check_n(n)
    from mvd_edge.data.registry import load_dataset

    root = Path(root).resolve()
    ds = load_dataset(name, root, **load_kwargs)
    samples = list(getattr(ds, split))
    if not samples:
        raise ManifestError(f"data set {name!r} at {root}: the {split} split is empty")
    items = []
    for s in samples:
        p = Path(s.path).resolve()
        rel = p.relative_to(root).as_posix() if p.is_relative_to(root) else str(p)
        items.append(Entry(rel, Modality.parse(s.modality), int(s.cam)))
    picked = stratified_pick(items, n, seed)
    _warn_if_small(len(picked), n, len(items), f"{name} {split} split")
    source = {"kind": "dataset", "dataset": name, "root": str(root), "split": split, "requested": n,
              "available": len(items), "stratified_by": ["modality", "camera"]}
    return Manifest(picked, str(root), source, seed)


def _guess_modality(parts: Sequence[str]) -> Modality | None:
    for part in reversed(parts):
        low = part.lower()
        if low in _RGB_NAMES:
            return Modality.VISIBLE
        if low in _IR_NAMES:
            return Modality.INFRARED
    return None


def _guess_cam(parts: Sequence[str]) -> int | None:
    m = re.match(r"c(?:am)?(\d+)(?:_|$)", parts[-1].lower())
    if m:
        return int(m.group(1))
    for part in reversed(parts[:-1]):
        m = re.fullmatch(r"cam(?:era)?_?(\d+)", part.lower())
        if m:
            return int(m.group(1))
    return None


def from_folder(folder: str | Path, n: int | None = None, seed: int = 0) -> Manifest:
    """Calibration set from every image under ``folder`` (recursive).

    Modality is guessed from folder names (``rgb``/``visible``... or ``ir``/``thermal``...),
    camera from ``c<k>_`` file-name prefixes or ``cam<k>`` folders; unknown otherwise.
    ``n`` (optional) picks a seeded stratified subset. Refuses any path with a component
    named ``query``, ``gallery``, ``test`` or ``bounding_box_test``.
    """
    _check_n(n)
    folder = Path(folder).resolve()
    check_not_evaluation_path(folder, "calibration folder")
    if not folder.is_dir():
        raise ManifestError(f"calibration folder not found: {folder}")
    items = []
    for p in sorted(folder.rglob("*")):
        if not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES or any(x.startswith(".") for x in p.parts):
            continue
        rel = p.relative_to(folder)
        check_not_evaluation_path(rel, f"calibration image (under {folder})")
        items.append(Entry(rel.as_posix(), _guess_modality(rel.parts[:-1]), _guess_cam(rel.parts)))
    if not items:
        raise ManifestError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {folder}")
    picked = stratified_pick(items, n, seed) if n is not None and n < len(items) else \
        sorted(items, key=lambda e: e.path)
    _warn_if_small(len(picked), n, len(items), f"folder {folder}")
    source = {"kind": "folder", "folder": str(folder), "requested": n, "available": len(items)}
    return Manifest(picked, str(folder), source, seed)


def from_video(video: str | Path, boxes: str | Path | None = None, every: int = 10, n: int | None = None,
               seed: int = 0, modality: "Modality | str | None" = None, cam: int | None = None,
               min_size: tuple[int, int] = (32, 16)) -> Manifest:
    """Calibration set of person crops from a video file.

    Frames ``0, every, 2*every, ...`` are read with ``cv2.VideoCapture``; boxes come from a
    MOT-format file (``frame,id,x,y,w,h,...``, 1-based frames) or, without one, from
    OpenCV's HOG people detector (the detected boxes are stored, so loading is
    deterministic). Boxes are clipped to the frame; smaller than ``min_size`` (h, w) are
    dropped. ``n`` (optional) picks a seeded subset.
    """
    from mvd_edge.quant.video import collect_video_boxes

    _check_n(n)
    if every < 1:
        raise ValueError(f"every must be >= 1, got {every}")
    video = Path(video).resolve()
    check_not_evaluation_path(video, "calibration video")
    mod = Modality.parse(modality) if modality is not None else None
    found, info = collect_video_boxes(video, boxes=Path(boxes).resolve() if boxes else None, every=every,
                                      min_size=min_size)
    if not found:
        raise ManifestError(f"no person crops found in {video} (every {every} frames, "
                            f"{'boxes from ' + str(boxes) if boxes else 'HOG detector'}); give a MOT boxes file "
                            f"or a smaller --every")
    items = [Entry(video.name, mod, cam, frame=f, box=b, track=t) for f, t, b in found]
    picked = items
    if n is not None and n < len(items):
        picked = sorted(stratified_pick(items, n, seed), key=lambda e: (e.frame, e.box))  # sequential reading
    _warn_if_small(len(picked), n, len(items), f"video {video.name}")
    source = {"kind": "video", "video": str(video), "boxes": str(boxes) if boxes else None,
              "detector": "mot-file" if boxes else "opencv-hog", "every": every, "requested": n,
              "available": len(items), **info}
    return Manifest(picked, str(video.parent), source, seed)
