"""A synthetic multi-camera site with ground truth, for the N-camera matcher.

A site has ``locations`` places and any number of RGB and IR cameras, each at one place.
Cameras at the same place see the same scene: the same people at the same times, each
camera with its own look, background and walking depths (visible colours for RGB, the
thermal-like rendering with B == G == R for IR), as the two views of
:mod:`mvd_edge.synth.video`. People move between places: each person crosses a place
(enters at one side of the frame, leaves at the other), is gone for a while (walking to
the next place, seen by no camera), then crosses another place, and so on. So a person's
identity has to be carried across time and places, not only across modalities at one
moment.

Cameras are named ``rgb0, rgb1, ...`` and ``ir0, ir1, ...``. By default they are spread so
that each place gets an RGB and an IR camera when the counts allow it (RGB camera ``k`` at
place ``k % locations``; each IR camera at the place with the fewest IR cameras, then the
fewest cameras, then the lowest index): 2 RGB + 2 IR over 2 places gives place 0: rgb0, ir0;
place 1: rgb1, ir1. Each camera has its own frame rate (``fps={"ir1": 7.5}`` runs one
stream at half rate); its frame ``k`` shows the site at time ``k / fps``.

Files written by :func:`write_synth_site` into ``out``::

    <camera>.mp4        one video per camera (MPEG-4 'mp4v'; MJPG ``.avi`` where OpenCV here
                        cannot write mp4, see :func:`mvd_edge.synth.video.open_video_writer`)
    <camera>.mot.txt    its boxes in MOT-challenge format (:func:`mvd_edge.synth.video.write_mot`),
                        id = the global person id
    site.yaml           the cameras file for the matcher:
                        ``cameras: {name: {source, modality, fps, resolution}}`` (source: the
                        video's file name, found beside the cameras file; resolution:
                        ``WIDTHxHEIGHT``): people found by the detectors
    site-boxes.yaml     the same with ``boxes: <camera>.mot.txt`` per camera: the matcher on
                        ground-truth boxes
    gt.json             ground truth (below)

Ground truth JSON (``"format": "mvd-edge-site-gt/1"``)::

    {"format": "mvd-edge-site-gt/1", "seed": 0, "n_ids": 6, "identity_seed": 7919,
     "seconds": 30.0, "locations": 2,
     "look_alikes": [[1, 2], ...],      # as in synth-video: pairs of people alike across modalities
     "visits": [{"pid": 1, "location": 0, "start": -1.2, "end": 3.4}, ...],   # seconds, sorted
     "cameras": {"rgb0": {"modality": "rgb", "location": 0, "fps": 15.0, "n_frames": 450,
                          "size": [height, width], "video": "rgb0.mp4", "boxes": "rgb0.mot.txt"},
                 ...},
     "frames": {"rgb0": [[[pid, x, y, w, h, visibility], ...],   # frame 0
                         ...],                                    # n_frames lists
                ...}}

``video`` and ``boxes`` are file names in the folder of ``gt.json``. Person ids are
1..n_ids and mean the same person on every camera. Boxes (top-left corner and size) and
visibility are those of :mod:`mvd_edge.synth.video`. A visit's interval is when the person
is in that place: they step into every camera of the place just after ``start`` and are out
of it by ``end``.

The people are ``sample_identities(n_ids, IDENTITY_SEED_BASE + seed)`` (the people of the
``synth-video`` pair of the same seed); the cameras' looks and walks come from seeds of
their own (``SITE_SEED_BASE + 1000 * seed + camera index``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mvd_edge.core.errors import OutputExists, UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.core.util import write_json
from mvd_edge.synth.identity import sample_identities
from mvd_edge.synth.lookalike import look_alike_pairs
from mvd_edge.synth.video import IDENTITY_SEED_BASE, SynthVideoRenderer, record, write_mot

__all__ = [
    "DEFAULT_FPS",
    "SITE_GT_FORMAT",
    "SITE_SEED_BASE",
    "Visit",
    "camera_names",
    "default_placement",
    "plan_visits",
    "write_synth_site",
]

SITE_GT_FORMAT = "mvd-edge-site-gt/1"
SITE_SEED_BASE = 500_000
DEFAULT_FPS = 15.0
MAX_CAMERAS = 64
_VISIT_TAG, _DIRECTION_TAG = 0x5A1, 0x5A2
_CROSSING_S = (3.0, 6.0)  # seconds a person takes to cross a place
_GAP_S = (0.5, 3.0)  # seconds between two places (seen by no camera)
_MARGIN = 0.3  # of the person's height: just out of the frame at a visit's start and end (sprite half-width 0.28)


@dataclass(frozen=True)
class Visit:
    """Person ``pid`` (1-based) is at place ``location`` from ``start`` to ``end`` (seconds); ``index``:
    the person's ``index``-th visit (0-based)."""

    pid: int
    location: int
    start: float
    end: float
    index: int


def camera_names(rgb_cameras: int, ir_cameras: int) -> list[str]:
    """``["rgb0", ..., "ir0", ...]``: the site's cameras in their index order."""
    return [f"rgb{k}" for k in range(rgb_cameras)] + [f"ir{k}" for k in range(ir_cameras)]


def default_placement(rgb_cameras: int, ir_cameras: int, locations: int) -> dict[str, int]:
    """Camera name -> place (the spread described in the module docstring)."""
    place = {f"rgb{k}": k % locations for k in range(rgb_cameras)}
    n_ir = [0] * locations
    n_all = [0] * locations
    for loc in place.values():
        n_all[loc] += 1
    for k in range(ir_cameras):
        loc = min(range(locations), key=lambda i: (n_ir[i], n_all[i], i))
        place[f"ir{k}"] = loc
        n_ir[loc] += 1
        n_all[loc] += 1
    return place


def plan_visits(n_ids: int, locations: int, seconds: float, seed: int) -> list[Visit]:
    """Who is where when: each person's visits over ``[0, seconds)``, sorted by start then pid.

    A person's first visit may have begun before 0 (they are mid-way across at the start);
    after each visit they are gone for 0.5-3 s and then cross another place (the same one
    when there is only one). A crossing takes 3-6 s.
    """
    visits = []
    for pid in range(n_ids):
        rng = np.random.default_rng([_VISIT_TAG, seed, pid])
        duration = float(rng.uniform(*_CROSSING_S))
        t = float(rng.uniform(-0.5 * duration, min(2.0, 0.2 * seconds)))
        loc = int(rng.integers(locations))
        k = 0
        while t < seconds:
            visits.append(Visit(pid + 1, loc, round(t, 4), round(t + duration, 4), k))
            t += duration + float(rng.uniform(*_GAP_S))
            duration = float(rng.uniform(*_CROSSING_S))
            if locations > 1:
                loc = (loc + 1 + int(rng.integers(locations - 1))) % locations  # another place
            k += 1
    return sorted(visits, key=lambda v: (v.start, v.pid))


class _SiteCameraRenderer(SynthVideoRenderer):
    """One camera of the site: a :class:`SynthVideoRenderer` whose people are only in the frame
    during their visits to this camera's place, crossing it once per visit."""

    def __init__(self, visits: list[Visit], camera_seed: int, modality: Modality, **kwargs: Any):
        super().__init__(seed=camera_seed, ir_modality=Modality.INFRARED, **kwargs)
        self.stream = modality.short  # the renderer's view drawn for this camera: "rgb" or "ir"
        self._visits: dict[int, list[Visit]] = {}
        for v in visits:
            self._visits.setdefault(v.pid - 1, []).append(v)

    def _person_state(self, stream: str, pid: int, t: float) -> tuple[float, float, float, int, str, float]:
        _, foot_y, height, _, _, _ = super()._person_state(stream, pid, t)  # depth and size of the camera's walk
        visit = next((v for v in self._visits.get(pid, ()) if v.start <= t < v.end), None)
        if visit is None:
            return -1e9, foot_y, height, 1, "side", 0.0  # far out of the frame: not drawn
        walk = self.walks[stream][pid]
        margin = _MARGIN * height
        travelled = (t - visit.start) / (visit.end - visit.start) * (self.size[1] + 2 * margin)
        rng = np.random.default_rng([_DIRECTION_TAG, self.seed, pid, visit.index])
        facing = 1 if rng.random() < 0.5 else -1
        x = travelled - margin if facing > 0 else self.size[1] + margin - travelled
        view = walk.views[visit.index % len(walk.views)]
        return x, foot_y, height, facing, view, (travelled / (0.9 * height)) % 1.0


def _check_count(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= int(value) <= high:
        raise UsageError(f"{name} must be an integer in [{low}, {high}], got {value!r}")
    return int(value)


def _camera_fps(names: list[str], fps: float | Mapping[str, float]) -> dict[str, float]:
    if isinstance(fps, Mapping):
        unknown = sorted(set(fps) - set(names))
        if unknown:
            raise UsageError(f"fps given for camera(s) {unknown} that the site does not have; cameras: {names}")
        out = {n: float(fps.get(n, DEFAULT_FPS)) for n in names}
    else:
        out = {n: float(fps) for n in names}
    for n, f in out.items():
        if not (math.isfinite(f) and f > 0):
            raise UsageError(f"fps of camera {n} must be > 0, got {f!r}")
    return out


def _check_placement(names: list[str], placement: Mapping[str, int], locations: int) -> dict[str, int]:
    if set(placement) != set(names):
        raise UsageError(f"placement must give a place for each camera {names}, got {sorted(placement)}")
    return {n: _check_count(f"the place of camera {n}", placement[n], 0, locations - 1) for n in names}


def _site_cameras(rgb_cameras: Any, ir_cameras: Any, locations: Any, fps: float | Mapping[str, float],
                  placement: Mapping[str, int] | None) -> tuple[list[str], int, dict[str, int], dict[str, float]]:
    """The checked cameras: their names, the number of places, each one's place and frame rate."""
    rgb_cameras = _check_count("rgb_cameras", rgb_cameras, 0, MAX_CAMERAS)
    ir_cameras = _check_count("ir_cameras", ir_cameras, 0, MAX_CAMERAS)
    if not 1 <= rgb_cameras + ir_cameras <= MAX_CAMERAS:
        raise UsageError(f"a site needs 1..{MAX_CAMERAS} cameras, got {rgb_cameras} RGB + {ir_cameras} IR")
    locations = _check_count("locations", locations, 1, MAX_CAMERAS)
    names = camera_names(rgb_cameras, ir_cameras)
    if placement is None:
        if len(names) < locations:
            raise UsageError(f"{len(names)} camera(s) cannot cover {locations} places: add cameras, use fewer "
                             f"locations, or give a placement that leaves places unseen")
        place = default_placement(rgb_cameras, ir_cameras, locations)
    else:
        place = _check_placement(names, placement, locations)
    return names, locations, place, _camera_fps(names, fps)


def _write_cameras_files(out: Path, cameras: dict[str, dict[str, Any]], seed: int) -> None:
    """``site.yaml`` (the matcher on its detectors) and ``site-boxes.yaml`` (on the ground-truth boxes)
    from the ground truth's ``cameras``."""
    import yaml

    site = {"cameras": {n: {"source": c["video"], "modality": c["modality"], "fps": c["fps"],
                            "resolution": f"{c['size'][1]}x{c['size'][0]}"} for n, c in cameras.items()}}
    (out / "site.yaml").write_text(f"# synthetic site (mvd_edge.synth.site, seed {seed}); ground truth in gt.json\n"
                                   + yaml.safe_dump(site, sort_keys=False))
    for n, c in cameras.items():
        site["cameras"][n]["boxes"] = c["boxes"]
    (out / "site-boxes.yaml").write_text(f"# synthetic site (seed {seed}) on its ground-truth boxes\n"
                                         + yaml.safe_dump(site, sort_keys=False))


def write_synth_site(out: str | Path, rgb_cameras: int = 2, ir_cameras: int = 2, locations: int = 2, n_ids: int = 6,
                     seconds: float = 30.0, fps: float | Mapping[str, float] = DEFAULT_FPS,
                     size: tuple[int, int] = (360, 640), seed: int = 0, progress: bool = False,
                     overwrite: bool = False, placement: Mapping[str, int] | None = None) -> dict[str, Any]:
    """Render and write a synthetic multi-camera site with ground truth (see the module docstring).

    Args:
        out: output folder (created). A folder that is not empty is refused
            (:class:`~mvd_edge.core.errors.OutputExists`) unless ``overwrite``; then files of
            the same names are replaced (others are left).
        rgb_cameras, ir_cameras: how many cameras of each modality (>= 0, 1..64 in all).
        locations: places (>= 1); by default every place needs a camera.
        n_ids: people (>= 1). seconds: duration (> 0). seed: non-negative integer.
        fps: one frame rate for all cameras, or ``{camera: fps}`` (cameras left out run at 15).
        size: ``(height, width)`` of every camera (each >= 64).
        progress: show a tqdm bar.
        placement: ``{camera: place}`` for every camera instead of the default spread; a place
            may then have no camera (a blind spot people walk through unseen).

    Returns:
        The ground truth dict, as written to ``out/gt.json``.
    """
    names, locations, place, rates = _site_cameras(rgb_cameras, ir_cameras, locations, fps, placement)
    n_ids = _check_count("n_ids", n_ids, 1, 1000)
    seed = _check_count("seed", seed, 0, 2**31 - 1)
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds > 0):
        raise UsageError(f"seconds must be > 0, got {seconds!r}")
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputExists(f"{out} exists and is not a folder; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExists(f"{out} is not empty; pass overwrite=True (--overwrite) to replace a site there, "
                           f"or choose another folder")

    identity_seed = IDENTITY_SEED_BASE + seed
    identities = sample_identities(n_ids, identity_seed)
    visits = plan_visits(n_ids, locations, float(seconds), seed)
    renderers: dict[str, _SiteCameraRenderer] = {}
    for index, name in enumerate(names):
        modality = Modality.VISIBLE if name.startswith("rgb") else Modality.INFRARED
        renderers[name] = _SiteCameraRenderer(
            [v for v in visits if v.location == place[name]], SITE_SEED_BASE + 1000 * seed + index, modality,
            n_ids=n_ids, fps=rates[name], size=size, identities=identities, duration=seconds)
    H, W = renderers[names[0]].size
    n_frames = {n: max(1, int(round(seconds * rates[n]))) for n in names}
    out.mkdir(parents=True, exist_ok=True)
    videos, frames = record(out, {n: (r, r.stream, rates[n], n_frames[n]) for n, r in renderers.items()}, progress,
                            "synth-site")
    for name in names:
        write_mot(out / f"{name}.mot.txt", frames[name])

    cameras = {n: {"modality": renderers[n].stream, "location": place[n], "fps": rates[n],
                   "n_frames": n_frames[n], "size": [H, W], "video": videos[n].name, "boxes": f"{n}.mot.txt"}
               for n in names}
    gt = {"format": SITE_GT_FORMAT, "seed": seed, "n_ids": n_ids, "identity_seed": identity_seed,
          "seconds": float(seconds), "locations": locations,
          "look_alikes": [[i + 1, j + 1] for i, j in look_alike_pairs(identities)],
          "visits": [{"pid": v.pid, "location": v.location, "start": v.start, "end": v.end} for v in visits],
          "cameras": cameras, "frames": frames}
    _write_cameras_files(out, cameras, seed)
    write_json(out / "gt.json", gt, separators=(",", ":"))
    return gt
