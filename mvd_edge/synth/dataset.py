"""Write synthetic cross-modal re-id data sets in the SYSU-MM01, RegDB and LLCM layouts.

Every writer is deterministic for its ``seed``: identity ``i`` is
``sample_identities(n, seed)[i]`` (independent of ``n``), every camera's look and
every image come from their own ``numpy.random.default_rng([tag, seed, ...])``, so
the output does not depend on the order of writing.

A root written here carries a marker file :data:`MARKER` (generator parameters). A
writer refuses a non-empty root without that marker (so a real data set is never
overwritten); a root with it is cleared of the layout's folders and written anew.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np
from tqdm import tqdm

from mvd_edge.core.errors import OutputExists, UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.core.util import write_errno
from mvd_edge.synth.camera import CameraStyle, render_crop, sample_camera_style, sample_crop_view
from mvd_edge.synth.identity import Identity, sample_identities
from mvd_edge.synth.raster import VIEWS
from mvd_edge.synth.video import SynthVideoRenderer

__all__ = [
    "LLCM_CAMS",
    "MARKER",
    "RENDERS",
    "SYSU_CAMS",
    "SYSU_IR_CAMS",
    "write_llcm",
    "write_regdb",
    "sysu_marker",
    "write_sysu",
]

SYSU_CAMS: tuple[int, ...] = (1, 2, 3, 4, 5, 6)
SYSU_IR_CAMS: tuple[int, ...] = (3, 6)
_SYSU_INDOOR_CAMS: tuple[int, ...] = (1, 2, 3)
LLCM_CAMS: tuple[int, ...] = tuple(range(1, 10))
MARKER = "synthetic.json"

_CAM_TAG, _TRACK_TAG, _IMG_TAG, _SPLIT_TAG, _SCENE_TAG = 0xCA, 0x7C, 0x1A, 0x5B, 0x5C
RENDERS: tuple[str, ...] = ("crops", "scenes")
# scenes: 20 s at 15 fps, every 10th frame; frames where the person is >= 60 % visible and its box is
# <= 30 % covered by another box (the matcher's default max_occlusion) are preferred
# (boxes lower than 32 frame pixels are skipped, as the matcher's default min_box_height does)
_SCENE_FRAMES, _SCENE_STEP, _SCENE_MIN_VIS, _SCENE_MAX_OVERLAP, _SCENE_MIN_BOX = 300, 10, 0.6, 0.3, 32
SCENE_MAX_IMAGES = _SCENE_FRAMES // _SCENE_STEP  # distinct frames a scene offers each person
_JPEG = [int(cv2.IMWRITE_JPEG_QUALITY), 95]
_PNG = [int(cv2.IMWRITE_PNG_COMPRESSION), 1]


# --------------------------------------------------------------------------- helpers


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise UsageError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise UsageError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_size(size: Any) -> tuple[int, int]:
    try:
        h, w = size
    except (TypeError, ValueError):
        raise UsageError(f"size must be (height, width), got {size!r}") from None
    return _check_int("size height", h, 16), _check_int("size width", w, 8)


def _split_counts(n: int, split: Sequence[float]) -> tuple[int, int, int]:
    """Identities per (train, val, test): largest remainder, each at least 1."""
    try:
        fr = [float(x) for x in split]
    except (TypeError, ValueError):
        raise UsageError(f"split must be three fractions (train, val, test), got {split!r}") from None
    if len(fr) != 3 or any(not np.isfinite(x) or x <= 0 for x in fr) or abs(sum(fr) - 1.0) > 1e-6:
        raise UsageError(f"split must be three positive fractions summing to 1 (train, val, test), got {split!r}")
    raw = [x * n for x in fr]
    counts = [int(np.floor(r)) for r in raw]
    for i in sorted(range(3), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    for i in range(3):
        while counts[i] < 1:
            j = int(np.argmax(counts))
            counts[j] -= 1
            counts[i] += 1
    return counts[0], counts[1], counts[2]


def _prepare_root(root: Path, layout_entries: Iterable[str], meta: dict[str, Any]) -> Path:
    """Create/clear ``root`` for writing (see the module docstring) and write the marker."""
    root = Path(root).expanduser()
    if root.exists() and not root.is_dir():
        raise OutputExists(f"{root} exists and is not a folder")
    root.mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if any(root.iterdir()):
        if not marker.is_file():
            raise OutputExists(
                f"{root} is not empty and was not written by mvd_edge.synth (no {MARKER}); "
                "refusing to write a synthetic data set into it: choose an empty or new folder"
            )
        for name in (*layout_entries, MARKER):
            path = root / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    marker.write_text(json.dumps({"generator": "mvd_edge.synth", **meta}, indent=1) + "\n")
    return root


def _camera(seed: int, dataset: int, cam: int, modality: Modality, indoor: bool) -> CameraStyle:
    return sample_camera_style(modality, np.random.default_rng([_CAM_TAG, seed, dataset, cam, int(modality)]), indoor)


def _track(seed: int, dataset: int, cam: int, pid: int, modality: Modality) -> tuple[str, int]:
    """A tracklet's view and walking direction (one per identity and camera)."""
    rng = np.random.default_rng([_TRACK_TAG, seed, dataset, cam, pid, int(modality)])
    view = sample_crop_view(rng)
    return view, (1 if rng.random() < 0.5 else -1)


def _crop(identity: Identity, modality: Modality, rng: np.random.Generator, size: tuple[int, int],
          style: CameraStyle, track: tuple[str, int]) -> np.ndarray:
    """One image of a tracklet (:func:`_track`)."""
    view, facing = track
    if rng.random() < 0.2:  # a tracklet turns now and then
        view = VIEWS[int(rng.integers(3))]
    return render_crop(identity, modality, rng, size, style, view=view, facing=facing)


def _scene_images(people: Sequence[Identity], modality: Modality, scene_seed: int, n_images: int,
                  size: tuple[int, int]) -> list[list[np.ndarray]]:
    """``n_images`` matcher-style crops of each of ``people`` walking through one synthetic scene."""
    from mvd_edge.core.preprocess import box_crop, box_overlap

    H, W = size
    stream = "ir" if modality is Modality.INFRARED else "rgb"
    renderer = SynthVideoRenderer(n_ids=len(people), seed=scene_seed, identities=people)
    seen: list[list[tuple[float, bool, np.ndarray]]] = [[] for _ in people]  # (visibility, clear, crop) in frame order
    for frame in range(0, _SCENE_FRAMES, _SCENE_STEP):
        img, boxes = renderer.render(stream, frame)
        xyxy = np.array([[x, y, x + w, y + h] for _, x, y, w, h, _ in boxes], np.float32)
        overlap = box_overlap(xyxy)
        for (pid, x, y, w, h, vis), box, ov in zip(boxes, xyxy, overlap):
            crop = box_crop(img, box, aspect=W / H, min_height=_SCENE_MIN_BOX)
            if crop is not None:
                seen[int(pid) - 1].append((float(vis), bool(ov <= _SCENE_MAX_OVERLAP),
                                           cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA)))
    out = []
    for i, cands in enumerate(seen):
        # best first: clear (visible and not covered), then visible, then by visibility; then in frame order
        order = sorted(range(len(cands)), key=lambda j: (-(cands[j][0] >= _SCENE_MIN_VIS and cands[j][1]),
                                                          -(cands[j][0] >= _SCENE_MIN_VIS), -cands[j][0]))
        clear = [j for j in order if cands[j][0] >= _SCENE_MIN_VIS and cands[j][1]]
        if len(clear) >= n_images:  # spread the picks over the clear frames
            keep = [clear[k] for k in np.linspace(0, len(clear) - 1, n_images).round().astype(int)]
        else:
            keep = order[:n_images]
        good = [cands[j][2] for j in sorted(keep)]
        if not good:  # never in view (cannot happen with the default walks): a plain crop
            rng = np.random.default_rng([_SCENE_TAG, scene_seed, i])
            good = [render_crop(people[i], modality, rng, size)]
        pick = np.linspace(0, len(good) - 1, n_images).round().astype(int)
        out.append([good[j] for j in pick])
    return out


def _identity_split(n: int, counts: Sequence[int], rng: np.random.Generator) -> list[list[int]]:
    """Ids 1..n randomly divided into groups of ``counts``; each group sorted."""
    perm = rng.permutation(np.arange(1, n + 1))
    return [sorted(int(x) for x in part) for part in np.split(perm, np.cumsum(counts)[:-1])]


# --------------------------------------------------------------------------- SYSU-MM01


def sysu_marker(n_ids: int, images_per_cam: int, size: tuple[int, int], seed: int,
                split: Sequence[float] = (0.6, 0.15, 0.25), render: str = "crops", scene_people: int = 6) -> dict[str, Any]:
    """The generator parameters :func:`write_sysu` records in :data:`MARKER` (what makes two sets the same)."""
    meta = {"layout": "sysu", "render": render, "n_ids": n_ids, "images_per_cam": images_per_cam, "size": list(size),
            "seed": seed, "split": [float(x) for x in split]}
    if render == "scenes":
        meta["scene_people"] = scene_people
    return meta


def _write_images(root: Path, folder: str, images: Iterable[tuple[str, np.ndarray]]) -> list[str]:
    """``root/folder/<name>`` for each ``(name, image)``, JPEG q95 or PNG by the name (the folder must not
    exist yet); returns their paths relative to ``root``."""
    (root / folder).mkdir(parents=True)
    rels = []
    for name, img in images:
        path = root / folder / name
        if not cv2.imwrite(str(path), img, _PNG if name.endswith(".png") else _JPEG):
            # OpenCV says only "failed": ask the file system why
            raise OSError(write_errno(path.parent), "cannot write the image", str(path))
        rels.append(f"{folder}/{name}")
    return rels


def _write_indexes(idx: Path, parts: dict[str, list[int]], files: dict[Modality, dict[int, list[str]]],
                   tags: dict[Modality, str], suffix: str = "") -> None:
    """``idx/<part>_<tag><suffix>.txt``: lines ``relative/path label`` of the images of a part's ids in one
    modality, labelled 0.. in the order of the ids."""
    idx.mkdir(exist_ok=True)
    for part, pids in parts.items():
        for modality, tag in tags.items():
            lines = [f"{rel} {label}" for label, pid in enumerate(pids) for rel in files[modality][pid]]
            (idx / f"{part}_{tag}{suffix}.txt").write_text("\n".join(lines) + "\n")


def _write_sysu_images(root: Path, cam: int, pid: int, images: Iterable[np.ndarray]) -> None:
    """``root/cam<cam>/<pid:04d>/0001.jpg, 0002.jpg, ...`` (the folder must not exist yet)."""
    _write_images(root, f"cam{cam}/{pid:04d}", ((f"{k:04d}.jpg", img) for k, img in enumerate(images, start=1)))


def write_sysu(root: Path, n_ids: int = 100, images_per_cam: int = 4, size: tuple[int, int] = (128, 64),
               seed: int = 0, split: Sequence[float] = (0.6, 0.15, 0.25), progress: bool = False,
               render: str = "crops", scene_people: int = 6) -> dict[str, Any]:
    """Write a synthetic data set in the SYSU-MM01 layout.

    Layout::

        root/cam1 .. cam6/<pid:04d>/<k:04d>.jpg     k = 1..images_per_cam, JPEG q95
        root/exp/train_id.txt, val_id.txt, test_id.txt, available_id.txt
        root/synthetic.json                         generator parameters

    Cameras 1, 2, 4, 5 are visible, 3 and 6 infrared (:data:`SYSU_IR_CAMS`); 1-3 are
    indoor, 4-6 outdoor. Each camera has its own look (background palette, lighting,
    IR gain/offset). Every identity ``1..n_ids`` appears in every camera; the images
    of one identity in one camera share a tracklet view and direction. The split
    files hold one line of comma-separated ids (disjoint, together all ids, sizes by
    ``split`` with at least one id each). The ``exp`` folder is written last, so
    ``exp/test_id.txt`` existing means the set is complete.

    ``render`` says how an image is made:

    * ``crops`` (default): a re-id style crop of one person (:func:`render_crop`), a
      random background of the camera's look, the person centred;
    * ``scenes``: the way the camera-stream matcher sees people. The identities of each
      split are taken in groups of ``scene_people``; each group walks through one
      synthetic scene per camera (a :class:`~mvd_edge.synth.video.SynthVideoRenderer`
      stream, 360x640, with its own camera look, walks and occlusions), and an identity's
      images are its boxes in frames spread over 20 s, cut out exactly as ``mvd-edge
      match`` cuts them (:func:`mvd_edge.core.preprocess.box_crop`: margin, aspect, so
      neighbours show at the sides) and resized to ``size``. Frames where the person is
      at least 60 % visible and its box at most 30 % covered by another box are preferred. The scene seeds are >= 10**6, so the scenes
      share no camera or walk with a ``synth-video`` of a small seed, and the people are
      ``sample_identities(n_ids, seed)``, never those of ``synth-video``.

    Args:
        root: output folder: new, empty, or one written earlier by this module.
        n_ids: identities (>= 3).
        images_per_cam: images per identity and camera (>= 1).
        size: ``(height, width)`` of the crops (>= 16 x 8).
        seed: non-negative integer; the output is a function of the arguments.
        split: fractions of identities for (train, val, test), positive, sum 1.
        progress: show a ``tqdm`` progress bar.
        render: ``crops`` or ``scenes`` (above).
        scene_people: ``scenes``: people per scene (>= 1).

    Returns:
        ``{"root", "layout", "render", "n_ids", "seed", "size", "visible_cams", "ir_cams",
        "ids": {split: [pid, ...]}, "images": {split: {"cam1": n, ...}},
        "images_per_camera": {"cam1": n, ...}, "total_images"}``.

    Raises:
        ValueError: bad arguments. OutputExists (a FileExistsError): ``root`` holds other data.
    """
    n_ids = _check_int("n_ids", n_ids, 3)
    images_per_cam = _check_int("images_per_cam", images_per_cam, 1)
    size = _check_size(size)
    seed = _check_int("seed", seed, 0)
    counts = _split_counts(n_ids, split)
    scene_people = _check_render(render, scene_people, images_per_cam)
    meta = sysu_marker(n_ids, images_per_cam, size, seed, split, render, scene_people)
    root = _prepare_root(Path(root), [f"cam{c}" for c in SYSU_CAMS] + ["exp"], meta)

    identities = sample_identities(n_ids, seed)
    names = ("train", "val", "test")
    groups = _identity_split(n_ids, counts, np.random.default_rng([_SPLIT_TAG, seed, 1]))
    _write_sysu_cameras(root, identities, groups, seed, images_per_cam, size, render, scene_people, progress)
    _write_id_lists(root / "exp", {"available": range(1, n_ids + 1), **dict(zip(names, groups))})
    per_cam = {f"cam{c}": n_ids * images_per_cam for c in SYSU_CAMS}
    return {"root": str(root), "layout": "sysu", "render": render, "n_ids": n_ids, "seed": seed, "size": size,
            "visible_cams": [c for c in SYSU_CAMS if c not in SYSU_IR_CAMS], "ir_cams": list(SYSU_IR_CAMS),
            "ids": dict(zip(names, groups)),
            "images": {name: {f"cam{c}": len(ids) * images_per_cam for c in SYSU_CAMS} for name, ids in zip(names, groups)},
            "images_per_camera": per_cam, "total_images": sum(per_cam.values())}


def _write_sysu_cameras(root: Path, identities: list[Identity], groups, seed: int, images_per_cam: int,
                        size: tuple[int, int], render: str, scene_people: int, progress: bool) -> None:
    """Every camera's images (``render``: crops or scenes), on one progress bar."""
    with tqdm(total=len(identities) * len(SYSU_CAMS) * images_per_cam, desc=f"synthetic SYSU-MM01 ({render})",
              unit="img", disable=not progress) as bar:
        for cam in SYSU_CAMS:
            modality = Modality.INFRARED if cam in SYSU_IR_CAMS else Modality.VISIBLE
            if render == "scenes":
                _write_sysu_scenes(root, cam, modality, identities, groups, seed, images_per_cam, size, scene_people,
                                   bar.update)
            else:
                _write_sysu_crops(root, cam, modality, identities, seed, images_per_cam, size, bar.update)


def _check_render(render: str, scene_people: Any, images_per_cam: int) -> int:
    """``scene_people`` checked, after ``render`` and what it can give."""
    if render not in RENDERS:
        raise UsageError(f"render must be one of {', '.join(RENDERS)}, got {render!r}")
    scene_people = _check_int("scene_people", scene_people, 1)
    if render == "scenes" and images_per_cam > SCENE_MAX_IMAGES:
        raise UsageError(f"render='scenes' gives at most {SCENE_MAX_IMAGES} distinct images per identity and camera; "
                         f"got images_per_cam={images_per_cam}")
    return scene_people


def _write_id_lists(exp: Path, ids: dict[str, Iterable[int]]) -> None:
    """``exp/<name>_id.txt``: one line of comma-separated ids each (the folder must not exist yet)."""
    exp.mkdir()
    for name, pids in ids.items():
        (exp / f"{name}_id.txt").write_text(",".join(str(i) for i in pids) + "\n")


def _write_sysu_scenes(root: Path, cam: int, modality: Modality, identities: Sequence[Identity],
                       groups: Sequence[Sequence[int]], seed: int, images_per_cam: int, size: tuple[int, int],
                       scene_people: int, update: Callable[[int], None]) -> None:
    """``render="scenes"``: each split's identities in groups of ``scene_people``, one scene a group."""
    for g, pids in enumerate(ids[i:i + scene_people] for ids in groups for i in range(0, len(ids), scene_people)):
        scene_seed = int(np.random.default_rng([_SCENE_TAG, seed, cam, g]).integers(10**6, 2**31))
        images = _scene_images([identities[p - 1] for p in pids], modality, scene_seed, images_per_cam, size)
        for pid, imgs in zip(pids, images):
            _write_sysu_images(root, cam, pid, imgs)
        update(len(pids) * images_per_cam)


def _write_sysu_crops(root: Path, cam: int, modality: Modality, identities: Sequence[Identity], seed: int,
                      images_per_cam: int, size: tuple[int, int], update: Callable[[int], None]) -> None:
    """``render="crops"``: one tracklet of re-id crops an identity in camera ``cam``."""
    style = _camera(seed, 1, cam, modality, indoor=cam in _SYSU_INDOOR_CAMS)
    for pid in range(1, len(identities) + 1):
        track = _track(seed, 1, cam, pid, modality)
        _write_sysu_images(root, cam, pid, (
            _crop(identities[pid - 1], modality, np.random.default_rng([_IMG_TAG, seed, 1, cam, pid, k]), size,
                  style, track)
            for k in range(1, images_per_cam + 1)))
        update(images_per_cam)


# --------------------------------------------------------------------------- RegDB


def write_regdb(root: Path, n_ids: int = 40, images_per_modality: int = 10, size: tuple[int, int] = (128, 64),
                seed: int = 0, n_trials: int = 10) -> dict[str, Any]:
    """Write a synthetic data set in the RegDB layout.

    Layout::

        root/Visible/<pid:04d>/<k:04d>.png     k = 1..images_per_modality
        root/Thermal/<pid:04d>/<k:04d>.png
        root/idx/train_visible_{t}.txt, train_thermal_{t}.txt,
                 test_visible_{t}.txt,  test_thermal_{t}.txt     t = 1..n_trials

    One visible and one thermal camera. As in RegDB, image ``k`` of an identity is
    a co-registered pair: the same pose and placement in both modalities. Index
    lines are ``Visible/0007/0003.png 5`` (path relative to ``root``, label). In each
    trial a seeded random half (``n_ids // 2``) of the identities is train and the
    rest test; train labels run ``0..n_train-1`` and test labels ``0..n_test-1``, in
    increasing pid order (as in the real idx files).

    Returns:
        ``{"root", "layout", "n_ids", "seed", "size", "images": {"Visible": n,
        "Thermal": n}, "trials": [{"trial", "train": [pid...], "test": [pid...]}]}``.

    Raises:
        ValueError: bad arguments. OutputExists (a FileExistsError): ``root`` holds other data.
    """
    n_ids = _check_int("n_ids", n_ids, 2)
    images_per_modality = _check_int("images_per_modality", images_per_modality, 1)
    size = _check_size(size)
    seed = _check_int("seed", seed, 0)
    n_trials = _check_int("n_trials", n_trials, 1)
    meta = {"layout": "regdb", "n_ids": n_ids, "images_per_modality": images_per_modality, "size": list(size),
            "seed": seed, "n_trials": n_trials}
    root = _prepare_root(Path(root), ["Visible", "Thermal", "idx"], meta)

    identities = sample_identities(n_ids, seed)
    folders = {Modality.VISIBLE: "Visible", Modality.INFRARED: "Thermal"}
    styles = {m: _camera(seed, 2, 1, m, indoor=False) for m in folders}
    files: dict[Modality, dict[int, list[str]]] = {m: {} for m in folders}
    for pid in range(1, n_ids + 1):
        for modality, name in folders.items():
            # the same seed for both modalities: co-registered pairs
            files[modality][pid] = _write_images(root, f"{name}/{pid:04d}", (
                (f"{k:04d}.png", render_crop(identities[pid - 1], modality, np.random.default_rng(
                    [_IMG_TAG, seed, 2, pid, k]), size, styles[modality])) for k in range(1, images_per_modality + 1)))

    n_train = n_ids // 2
    trials = []
    for t in range(1, n_trials + 1):
        train, test = _identity_split(n_ids, (n_train, n_ids - n_train), np.random.default_rng([_SPLIT_TAG, seed, 2, t]))
        _write_indexes(root / "idx", {"train": train, "test": test}, files,
                       {Modality.VISIBLE: "visible", Modality.INFRARED: "thermal"}, f"_{t}")
        trials.append({"trial": t, "train": train, "test": test})
    return {"root": str(root), "layout": "regdb", "n_ids": n_ids, "seed": seed, "size": size,
            "images": {name: n_ids * images_per_modality for name in folders.values()}, "trials": trials}


# --------------------------------------------------------------------------- LLCM


def write_llcm(root: Path, n_ids: int = 40, cams_per_identity: int = 3, images_per_cam: int = 2,
               size: tuple[int, int] = (128, 64), seed: int = 0, train_fraction: float = 2 / 3) -> dict[str, Any]:
    """Write a synthetic data set in the LLCM layout.

    Layout::

        root/vis/<pid:04d>/<pid:04d>_c<cam:02d>_<k:04d>.jpg
        root/nir/<pid:04d>/<pid:04d>_c<cam:02d>_<k:04d>.jpg
        root/idx/train_vis.txt, train_nir.txt, test_vis.txt, test_nir.txt

    LLCM's 9 cameras (:data:`LLCM_CAMS`) each film in visible and in near-infrared
    mode; every identity is seen by ``cams_per_identity`` randomly chosen cameras in
    each modality, ``images_per_cam`` images each. Index lines are ``relative/path
    label``; ``round(train_fraction * n_ids)`` identities (at least 1, at most
    ``n_ids - 1``) are train with labels ``0..n_train-1``, the rest test with labels
    ``0..n_test-1``, in increasing pid order.

    Returns:
        ``{"root", "layout", "n_ids", "seed", "size", "images": {"vis": n, "nir": n},
        "ids": {"train": [...], "test": [...]}}``.

    Raises:
        ValueError: bad arguments. OutputExists (a FileExistsError): ``root`` holds other data.
    """
    n_ids = _check_int("n_ids", n_ids, 2)
    cams_per_identity = _check_int("cams_per_identity", cams_per_identity, 1)
    if cams_per_identity > len(LLCM_CAMS):
        raise UsageError(f"cams_per_identity must be <= {len(LLCM_CAMS)}, got {cams_per_identity}")
    images_per_cam = _check_int("images_per_cam", images_per_cam, 1)
    size = _check_size(size)
    seed = _check_int("seed", seed, 0)
    if not 0.0 < float(train_fraction) < 1.0:
        raise UsageError(f"train_fraction must be in (0, 1), got {train_fraction!r}")
    meta = {"layout": "llcm", "n_ids": n_ids, "cams_per_identity": cams_per_identity,
            "images_per_cam": images_per_cam, "size": list(size), "seed": seed,
            "train_fraction": float(train_fraction)}
    root = _prepare_root(Path(root), ["vis", "nir", "idx"], meta)

    identities = sample_identities(n_ids, seed)
    folders = {Modality.VISIBLE: "vis", Modality.INFRARED: "nir"}
    styles = {(m, c): _camera(seed, 3, c, m, indoor=c <= 4) for m in folders for c in LLCM_CAMS}
    files: dict[Modality, dict[int, list[str]]] = {m: {} for m in folders}
    for pid in range(1, n_ids + 1):
        for modality, name in folders.items():
            cam_rng = np.random.default_rng([_TRACK_TAG, seed, 3, pid, int(modality)])
            cams = sorted(int(c) for c in cam_rng.choice(LLCM_CAMS, size=cams_per_identity, replace=False))
            tracks = {cam: _track(seed, 3, cam, pid, modality) for cam in cams}
            files[modality][pid] = _write_images(root, f"{name}/{pid:04d}", (
                (f"{pid:04d}_c{cam:02d}_{k:04d}.jpg",
                 _crop(identities[pid - 1], modality, np.random.default_rng([_IMG_TAG, seed, 3, int(modality), cam, pid, k]),
                       size, styles[(modality, cam)], tracks[cam]))
                for cam in cams for k in range(1, images_per_cam + 1)))

    n_train = min(max(1, int(round(float(train_fraction) * n_ids))), n_ids - 1)
    train, test = _identity_split(n_ids, (n_train, n_ids - n_train), np.random.default_rng([_SPLIT_TAG, seed, 3]))
    _write_indexes(root / "idx", {"train": train, "test": test}, files, folders)
    n_per = n_ids * cams_per_identity * images_per_cam
    return {"root": str(root), "layout": "llcm", "n_ids": n_ids, "seed": seed, "size": size,
            "images": {name: n_per for name in folders.values()}, "ids": {"train": train, "test": test}}
