"""The site matcher (mvd_edge/match/site.py): frames paired by timestamp across N cameras (jitter,
half rate, a camera dropping out and coming back), N-camera identities through one gallery, the
runner and its events."""

from __future__ import annotations

import time

import numpy as np
import pytest
from match_fakes import KEY_COLORS, BlockCapture, BlockWorld

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality
from mvd_edge.gallery.memory import IdentityMemory
from mvd_edge.match.baselines import ColorHistogramEmbedder
from mvd_edge.match.config import MatcherConfig
from mvd_edge.match.detect import Detections, Detector
from mvd_edge.match.events import read_events
from mvd_edge.match.runner import Runner, TimeSync
from mvd_edge.match.site import SiteCamera, site_matcher
from mvd_edge.match.sources import FramePacket, FrameSource, SourceSpec

# ---------------------------------------------------------------- time pairing


class FakeLive:
    """A live source whose frames arrive at their capture times (monotonic clock): ``times`` are
    offsets from ``base``; a frame is handed out only once its time has come."""

    live = True

    def __init__(self, name: str, times: list[float], base: float, fps: float):
        self.name, self.fps, self.base = name, fps, base
        self.spec = SourceSpec("camera", 0, name)
        self.packets = [FramePacket(k, t, np.zeros((8, 8, 3), np.uint8), captured=base + t) for k, t in enumerate(times)]
        self.pos = 0

    def get(self, timeout: float | None = None):
        if self.pos >= len(self.packets):
            return None
        pkt = self.packets[self.pos]
        wait = pkt.captured - time.monotonic()
        if wait > (timeout or 0.0):
            time.sleep(max(0.0, timeout or 0.0))
            return False
        time.sleep(max(0.0, wait))
        self.pos += 1
        return pkt


def site_config(**kw) -> MatcherConfig:
    """A matcher config with the site tests' settings (threshold, hysteresis: association; the rest: site)."""
    own = ("threshold", "hysteresis")
    return MatcherConfig().updated({f"{'association' if k in own else 'site'}.{k}": v for k, v in kw.items()})

def test_live_streams_are_paired_by_capture_time_and_a_stalled_camera_never_blocks():
    rng = np.random.default_rng(0)
    base = time.monotonic() + 0.2
    period = 0.05  # 20 fps
    full = [k * period + rng.uniform(-0.2, 0.2) * period for k in range(40)]  # jittered
    half = [k * 2 * period + rng.uniform(-0.2, 0.2) * period for k in range(20)]  # 10 fps
    drop = [t for t in full if not 0.5 <= t < 1.2]  # away for 0.7 s, then back
    srcs = {"a": FakeLive("a", full, base, 20), "b": FakeLive("b", half, base, 10), "c": FakeLive("c", drop, base, 20)}
    sync = TimeSync(srcs)
    assert sync.period == pytest.approx(period) and sync.tolerance == pytest.approx(period / 2)
    steps = []
    while (nxt := sync.next()) is not None:
        steps.append(nxt)
    # the run kept pace: nobody waited on the stalled camera (every frame of a is in its step, none late)
    assert sum("a" in f for _, f in steps) == 40
    for t, frames in steps:
        for name, pkt in frames.items():
            assert abs(pkt.captured - sync.t0 - t) <= sync.tolerance + 1e-9, (name, t)
    assert sync.used["a"] == 40 and sync.late["a"] == 0
    assert 18 <= sync.used["b"] <= 20  # the half-rate camera joins every other step
    with_b = [t for t, f in steps if "b" in f]
    assert all(abs((t2 - t1) - 2 * period) < period / 2 for t1, t2 in zip(with_b, with_b[1:]))
    gap = [t for t, f in steps if 0.5 + period <= t < 1.2 - period]
    assert gap and all("c" not in f and "a" in f for t, f in steps if t in gap)  # others go on meanwhile
    assert any("c" in f for t, f in steps if t >= 1.2)  # and the camera is back afterwards
    assert sync.used["c"] + sync.late["c"] == len(drop) and sync.late["c"] <= 2  # every frame it sent was used


def _file_source(name: str, n: int, fps: float, world: BlockWorld, stream: str) -> FrameSource:
    return FrameSource(SourceSpec("file", name, name, fps=fps), name, queue_size=4,
                       open_fn=lambda spec: BlockCapture(world, stream, n, fps=fps))


def test_files_at_different_rates_pair_by_media_time_without_dropping_frames():
    world = BlockWorld(n=2)
    srcs = {"fast": _file_source("fast", 30, 15.0, world, "rgb"), "slow": _file_source("slow", 15, 7.5, world, "ir")}
    for s in srcs.values():
        s.start()
    sync = TimeSync(srcs)
    pairs = []
    while (nxt := sync.next()) is not None:
        _, frames = nxt
        pairs.append((frames["fast"].index if "fast" in frames else None,
                      frames["slow"].index if "slow" in frames else None))
    assert [f for f, _ in pairs] == list(range(30))  # every frame of the fast file, in order
    assert [(f, s) for f, s in pairs if s is not None] == [(2 * k, k) for k in range(15)]  # same media time
    assert sync.late == {"fast": 0, "slow": 0}


# ---------------------------------------------------------------- identities across N cameras


class SiteWorld:
    """Two locations, each seen by an IR and an RGB camera (a :class:`BlockWorld` per location).
    People 0-2 are at location 0 during frames [0, 40) and at location 1 during [55, 95);
    person 3 is only ever at location 1."""

    def __init__(self):
        self.worlds = [BlockWorld(n=4, seed=5), BlockWorld(n=4, seed=9)]
        self.cams = {"ir0": (0, "ir"), "rgb0": (0, "rgb"), "ir1": (1, "ir"), "rgb1": (1, "rgb")}

    def present(self, loc: int, pid: int, k: int) -> bool:
        if pid == 3:
            return loc == 1
        return (loc == 0 and k < 40) or (loc == 1 and 55 <= k < 95)

    def boxes(self, cam: str, k: int):
        loc, stream = self.cams[cam]
        return [(i, b) for i, b in self.worlds[loc].boxes(stream, k) if self.present(loc, i, k)]

    def frame(self, cam: str, k: int) -> np.ndarray:
        loc, stream = self.cams[cam]
        img = np.repeat(self.worlds[loc].bg[stream][..., None], 3, axis=2).copy()
        for i, b in self.boxes(cam, k):
            x1, y1, x2, y2 = (int(v) for v in b)
            img[y1:y2, x1:x2] = KEY_COLORS[i]
            img[y1:y1 + (y2 - y1) // 5, x1:x2] = (60, 60, 60)
        return img


class SiteDetector(Detector):
    name = "site-blocks"
    has_ids = False

    def __init__(self, world: SiteWorld, cam: str):
        self.world, self.cam = world, cam

    def detect(self, image, frame_index: int) -> Detections:
        bx = self.world.boxes(self.cam, frame_index)
        return Detections(np.array([b for _, b in bx], np.float32).reshape(-1, 4), np.ones(len(bx), np.float32))


def _identity_of(world: SiteWorld, cam: str, frame: int, box) -> int | None:
    x, y, w, h = box
    for i, b in world.boxes(cam, frame):
        if abs(b[0] - x) < 3 and abs(b[1] - y) < 3:
            return i
    return None


def test_four_cameras_one_identity_per_person_across_modalities_places_and_time():
    world = SiteWorld()
    cams = [SiteCamera(n, Modality.parse(s)) for n, (_, s) in world.cams.items()]
    matcher = site_matcher(ColorHistogramEmbedder(), cams, {c.name: SiteDetector(world, c.name) for c in cams},
                          site_config(threshold=0.7, same_threshold=0.8, hysteresis=3))
    events = []
    for k in range(95):
        events.extend(matcher.step({c.name: FramePacket(k, k / 15, world.frame(c.name, k)) for c in cams}).events)
    sightings = [e for e in events if e["event"] == "sighting"]
    assert sightings
    gid_of: dict[int, set[int]] = {}
    for e in sightings:
        pid = _identity_of(world, e["camera"], e["frame"], e["box"])
        assert pid is not None
        gid_of.setdefault(pid, set()).add(e["global_id"])
    assert all(len(g) == 1 for g in gid_of.values()), gid_of  # one global id per person, on every camera
    assert len({next(iter(g)) for g in gid_of.values()}) == 4  # and distinct people, distinct ids
    assert matcher.policy.identities == 4
    cams_of = {pid: {e["camera"] for e in sightings if _identity_of(world, e["camera"], e["frame"], e["box"]) == pid}
               for pid in range(4)}
    assert all(cams_of[p] == {"ir0", "rgb0", "ir1", "rgb1"} for p in range(3)) and cams_of[3] == {"ir1", "rgb1"}
    idents = [e for e in events if e["event"] == "identity"]
    assert {e["via"] for e in idents} >= {"new", "cross"}
    # people 0-2 came back at location 1 after 15 frames away: recognised, not new
    assert all(e["via"] != "new" for e in idents if e["camera"] in ("ir1", "rgb1") and e["global_id"] in
               {next(iter(gid_of[p])) for p in range(3)})


def test_same_modality_cameras_recognise_people_through_the_gallery():
    """RGB cameras only, at two places: a person seen at location 0 and later at location 1
    gets their id back by an RGB <-> RGB match (``via: same``)."""
    world = SiteWorld()
    cams = [SiteCamera("rgb0", Modality.VISIBLE), SiteCamera("rgb1", Modality.VISIBLE)]
    matcher = site_matcher(ColorHistogramEmbedder(), cams, {c.name: SiteDetector(world, c.name) for c in cams},
                          site_config(threshold=0.99, same_threshold=0.8, hysteresis=3))
    events = []
    for k in range(95):
        events.extend(matcher.step({c.name: world.frame(c.name, k) for c in cams}).events)
    idents = [e for e in events if e["event"] == "identity"]
    first = {e["global_id"] for e in idents if e["camera"] == "rgb0"}
    later = [e for e in idents if e["camera"] == "rgb1" and e["global_id"] in first]
    assert len(first) == 3 and len(later) == 3 and all(e["via"] == "same" for e in later)
    assert matcher.policy.identities == 4  # person 3, never at location 0, is the only new one there
    # the control: a gallery that remembers one person only: the others come back as new people
    forgetful = site_matcher(ColorHistogramEmbedder(), cams, {c.name: SiteDetector(world, c.name) for c in cams},
                            site_config(threshold=0.99, same_threshold=0.8, hysteresis=3, gallery_size=1))
    for k in range(95):
        forgetful.step({c.name: world.frame(c.name, k) for c in cams})
    assert forgetful.policy.identities >= 6


def test_a_camera_left_out_of_a_step_keeps_its_tracks_and_unknown_cameras_are_refused():
    world = SiteWorld()
    cams = [SiteCamera("ir0", Modality.INFRARED), SiteCamera("rgb0", Modality.VISIBLE)]
    matcher = site_matcher(ColorHistogramEmbedder(), cams, {c.name: SiteDetector(world, c.name) for c in cams},
                          site_config(threshold=0.7, hysteresis=2))
    for k in range(20):  # rgb0 at half rate
        frames = {"ir0": world.frame("ir0", k)}
        if k % 2 == 0:
            frames["rgb0"] = world.frame("rgb0", k)
        matcher.step(frames)
    assert matcher.policy.identities == 3
    with pytest.raises(UsageError, match="unknown camera"):
        matcher.step({"lobby": world.frame("ir0", 0)})
    with pytest.raises(UsageError, match="no detector"):
        site_matcher(ColorHistogramEmbedder(), cams, {"ir0": SiteDetector(world, "ir0")})


def test_identity_table_forgets_the_least_recently_seen_and_grows():
    t = IdentityMemory(4, tuple(Modality), capacity=100)
    rng = np.random.default_rng(1)
    vecs = rng.normal(size=(150, 4)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    for g in range(1, 151):
        t.update(g, Modality.VISIBLE, vecs[g - 1], 0.5)
    assert len(t) == 100 and 1 not in t and 150 in t and len(t.gid) >= 128
    sims = t.similarities(Modality.VISIBLE, vecs[[149]])
    assert sims[0, t.row[150]] == pytest.approx(1.0, abs=1e-6)
    assert np.isneginf(t.similarities(Modality.INFRARED, vecs[[0]])).all()  # no IR descriptor yet
    t.update(51, Modality.VISIBLE, vecs[50], 0.5)  # seen again: now the most recent
    t.add(151)
    assert 51 in t and 52 not in t


def test_site_config_checks_its_own_settings():
    for bad in ({"same_threshold": 2.0}, {"gallery_size": 0}, {"identity_momentum": 1.0}, {"faiss_above": -1},
                {"faiss_above": 1.5}, {"faiss_above": True}):
        with pytest.raises(ValueError, match=f"^site.{next(iter(bad))}"):
            site_config(**bad)
    assert site_config(faiss_above=0).site.faiss_above == 0
    assert site_config(faiss_above=10**12).site.faiss_above == 10**12


# ---------------------------------------------------------------- the gallery on faiss


def _unit(rng, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _index_rows(table: IdentityMemory, m: Modality) -> np.ndarray:
    """The rows the faiss index of ``m`` holds (brought up to date first)."""
    import faiss

    return np.sort(faiss.vector_to_array(table._synced(m).id_map))


def test_the_faiss_shortlist_finds_what_exact_search_finds_and_follows_every_change():
    """3000 random identities: the faiss path (faiss_above=0) gives every query the same best row
    as exact search, scores its shortlisted rows exactly and the rest -inf, and stays in sync
    when identities are evicted, their rows reused and their descriptors updated."""
    pytest.importorskip("faiss")
    rng = np.random.default_rng(7)
    n, dim = 3000, 64
    ir, rgb = _unit(rng, n + 300, dim), _unit(rng, n + 300, dim)
    exact, fast = IdentityMemory(dim, tuple(Modality), n), IdentityMemory(dim, tuple(Modality), n, faiss_above=0)
    for t in (exact, fast):
        for g in range(n):
            t.update(g, Modality.VISIBLE, rgb[g], 0.5)
            if g % 3:  # a third of the people were never seen in IR
                t.update(g, Modality.INFRARED, ir[g], 0.5)
    assert fast.uses_faiss and not exact.uses_faiss

    def agree(queries: np.ndarray, m: Modality, always=None) -> np.ndarray:
        e, f = exact.similarities(m, queries), fast.similarities(m, queries, always)
        assert e.shape == f.shape == (len(queries), len(exact.gid))
        assert (e.argmax(axis=1) == f.argmax(axis=1)).all()
        shown = np.isfinite(f)
        assert np.allclose(f[shown], e[shown], atol=1e-5)  # shortlisted rows are scored exactly
        assert (shown.sum(axis=1) < 0.2 * len(fast)).all()  # and only they are
        assert np.isneginf(e[~np.isfinite(e)]).all() and not shown[~np.isfinite(e)].any()
        return f

    noisy = rgb[rng.choice(n, 8)] + 0.3 * _unit(rng, 8, dim) / np.sqrt(2)
    for q in (noisy / np.linalg.norm(noisy, axis=1, keepdims=True), _unit(rng, 8, dim)):  # near someone; anywhere
        for m in Modality:
            agree(q, m)
    always = np.array([fast.row[5], fast.row[2999]])
    assert np.isfinite(agree(_unit(rng, 8, dim), Modality.VISIBLE, always)[:, always]).all()  # always scored
    assert np.array_equal(_index_rows(fast, Modality.INFRARED), np.flatnonzero(fast.have[Modality.INFRARED]))

    # eviction: 300 newcomers (IR only) push the 300 least recently seen out; they take their rows
    for t in (exact, fast):
        for g in range(n, n + 300):
            t.update(g, Modality.INFRARED, ir[g], 0.5)
    assert len(fast) == n and 0 not in fast and 299 not in fast and n + 299 in fast
    for m in Modality:
        assert np.array_equal(_index_rows(fast, m), np.flatnonzero(fast.have[m]))
    gone = rgb[:300]  # the evicted people's descriptors are found no more: their rows hold the newcomers (IR only)
    f = agree(gone[:8], Modality.VISIBLE)
    assert not np.isin(fast.gid[f.argmax(axis=1)], np.arange(300)).any()
    assert np.isneginf(f[:, [fast.row[g] for g in range(n, n + 8)]]).all()  # no RGB descriptor: never a candidate
    free = fast._free[-1]  # the last evicted row stays free: faiss never returns it
    assert fast.gid[free] == -1 and not np.isin(fast.candidates(tuple(Modality), np.vstack([ir, rgb])[::50]),
                                                [free]).any()
    agree(ir[n:n + 8], Modality.INFRARED)

    # an update moves a descriptor: it is found at its new value, and no longer at its old one
    moved = _unit(rng, 1, dim)[0]
    for t in (exact, fast):
        t.update(1000, Modality.VISIBLE, moved, 0.0)
    f = agree(np.vstack([moved, rgb[1000]]), Modality.VISIBLE)
    assert f[0].argmax() == fast.row[1000] and f[0].max() == pytest.approx(1.0, abs=1e-5)
    assert f[1].argmax() != fast.row[1000]


def test_the_gallery_imports_no_faiss_below_its_threshold():
    import subprocess
    import sys

    code = ("import sys, numpy as np, mvd_edge.match; from mvd_edge.core.modality import Modality;"
            "from mvd_edge.gallery.memory import IdentityMemory;"
            "t = IdentityMemory(8, tuple(Modality), 100); [t.update(g, Modality.VISIBLE, np.eye(8, dtype=np.float32)[g % 8], 0.5)"
            " for g in range(50)];"
            "assert t.similarities(Modality.VISIBLE, np.eye(8, dtype=np.float32)[:2]).shape == (2, 64);"
            "assert t.candidates(tuple(Modality), np.eye(8, dtype=np.float32)) is None;"
            "assert 'faiss' not in sys.modules, 'faiss imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


@pytest.mark.parametrize("shortlist", [32, 1])
def test_a_site_on_the_faiss_shortlist_makes_the_same_identities_as_exact_search(shortlist):
    """The four-camera world with 400 strangers in the gallery: searched through faiss (a shortlist
    that leaves most of the gallery out) it gives the same events as exact search."""
    pytest.importorskip("faiss")
    world = SiteWorld()
    cams = [SiteCamera(n, Modality.parse(s)) for n, (_, s) in world.cams.items()]
    strangers = _unit(np.random.default_rng(3), 800, ColorHistogramEmbedder().dim)
    runs = []
    for faiss_above in (10**9, 0):
        matcher = site_matcher(ColorHistogramEmbedder(), cams, {c.name: SiteDetector(world, c.name) for c in cams},
                              site_config(threshold=0.7, same_threshold=0.8, hysteresis=3, faiss_above=faiss_above))
        matcher.policy.gallery.shortlist = shortlist
        asked, candidates = [], matcher.policy.gallery.candidates

        def spy(modalities, desc, always=None, candidates=candidates, asked=asked):
            rows = candidates(modalities, desc, always)
            asked.append((always, rows))
            return rows

        matcher.policy.gallery.candidates = spy
        for k in range(400):
            matcher.policy.gallery.update(10**6 + k, Modality.INFRARED, strangers[k], 0.8)
            matcher.policy.gallery.update(10**6 + k, Modality.VISIBLE, strangers[400 + k], 0.8)
        events = []
        for k in range(95):
            frames = {c.name: FramePacket(k, k / 15, world.frame(c.name, k)) for c in cams}
            events.extend(matcher.step(frames).events)
        assert matcher.policy.gallery.uses_faiss == (faiss_above == 0) and len(matcher.policy.gallery) == 404
        assert matcher.policy.identities == 4  # the four people, none of them taken for a stranger
        if faiss_above == 0:  # the tracks' own identities are always scored, shortlisted or not
            held = [(a, r) for a, r in asked if a.size]
            assert held and all(np.isin(a, r).all() and len(r) < len(matcher.policy.gallery) for a, r in held)
        runs.append(events)
    exact, fast = runs
    assert {e["via"] for e in exact if e["event"] == "identity"} >= {"new", "cross"}
    assert len(exact) == len(fast)
    for a, b in zip(exact, fast):
        # the same events; a similarity may differ by float32 rounding of a smaller matrix product
        sim_a, sim_b = a.pop("similarity", None), b.pop("similarity", None)
        assert a == b
        assert (sim_a is None) == (sim_b is None) and (sim_a is None or abs(sim_a - sim_b) <= 1e-4)


# ---------------------------------------------------------------- the runner


def test_runner_writes_site_events_and_ends_when_every_file_has(tmp_path):
    world = SiteWorld()
    cams = [SiteCamera(n, Modality.parse(s), SourceSpec("file", n, n, fps=15.0)) for n, (_, s) in world.cams.items()]

    class Cap(BlockCapture):
        def __init__(self, cam, n):
            super().__init__(None, cam, n)

        def read(self):
            if self.k >= self.n:
                return False, None
            self.k += 1
            return True, world.frame(self.stream, self.k - 1)

    lengths = {"ir0": 60, "rgb0": 60, "ir1": 80, "rgb1": 80}
    sources = {c.name: FrameSource(c.spec, c.name, open_fn=lambda spec, n=c.name: Cap(n, lengths[n])) for c in cams}
    matcher = site_matcher(ColorHistogramEmbedder(), cams, {c.name: SiteDetector(world, c.name) for c in cams},
                           site_config(threshold=0.7, same_threshold=0.8, hysteresis=3))
    runner = Runner(matcher, sources, events=tmp_path / "site.jsonl")
    stepped = []
    summary = runner.run(on_step=lambda r: stepped.append(r.steps))
    evs = list(read_events(tmp_path / "site.jsonl"))
    assert evs[0]["event"] == "start" and evs[0]["schema"] == "site/1" and evs[0]["view"] == "site"
    assert evs[0]["cameras"]["ir1"] == {"modality": "ir", "source": "ir1", "fps": 15.0}
    assert evs[-1]["event"] == "end" and evs[-1]["frames"] == {"ir0": [[0, 60]], "rgb0": [[0, 60]],
                                                              "ir1": [[0, 80]], "rgb1": [[0, 80]]}
    assert summary["steps"] == 80 and stepped == list(range(1, 81)) and summary["ended"] == "all sources ended"
    assert summary["cameras"]["ir0"]["frames_used"] == 60 and summary["global_ids"] == 4
    assert [e["seq"] for e in evs] == list(range(len(evs)))


def test_runner_stops_cleanly_on_interrupt(tmp_path):
    world = SiteWorld()
    cams = [SiteCamera("ir0", Modality.INFRARED, SourceSpec("file", "ir0", "ir0", fps=15.0))]
    src = FrameSource(cams[0].spec, "ir0", open_fn=lambda spec: BlockCapture(world.worlds[0], "ir", 10_000))
    runner = Runner(site_matcher(ColorHistogramEmbedder(), cams, {"ir0": SiteDetector(world, "ir0")}),
                    {"ir0": src}, events=tmp_path / "e.jsonl")

    def interrupt(r):
        if r.steps == 5:
            raise KeyboardInterrupt

    summary = runner.run(on_step=interrupt)
    assert summary["ended"] == "interrupted (SIGINT)" and summary["steps"] == 5
    assert list(read_events(tmp_path / "e.jsonl"))[-1]["event"] == "end"


def test_the_faiss_search_leaves_faiss_settings_as_it_found_them():
    """The table lowers faiss's process-wide BLAS threshold for its own search only."""
    faiss = pytest.importorskip("faiss")
    rng = np.random.default_rng(1)
    table = IdentityMemory(16, tuple(Modality), 100, faiss_above=0)
    for gid in range(50):
        v = rng.normal(size=16).astype(np.float32)
        table.update(gid, Modality.VISIBLE, v / np.linalg.norm(v), momentum=0.8)
    before = faiss.cvar.distance_compute_blas_threshold
    q = table.mat[Modality.VISIBLE][:3].copy()
    rows = table.candidates([Modality.VISIBLE], q)
    assert faiss.cvar.distance_compute_blas_threshold == before
    assert {table.row[g] for g in (0, 1, 2)} <= set(rows.tolist())


def test_global_ids_hold_over_many_passes_of_a_looped_site():
    """The site world played three times in a row (people leave every camera at the loop's end and
    come back at its start): with an embedding that tells the people apart the gallery keeps one
    id per person; the ids do not grow with time."""
    world = SiteWorld()
    cams = [SiteCamera(n, Modality.parse(s)) for n, (_, s) in world.cams.items()]

    class Looped(SiteDetector):
        def detect(self, image, frame_index):
            return super().detect(image, frame_index % 95)

    matcher = site_matcher(ColorHistogramEmbedder(), cams, {c.name: Looped(world, c.name) for c in cams},
                          site_config(threshold=0.7, same_threshold=0.8, hysteresis=3))
    gids: dict[int, set[int]] = {}
    after_pass = []
    for k in range(3 * 95):
        for e in matcher.step({c.name: FramePacket(k, k / 15, world.frame(c.name, k % 95)) for c in cams}).events:
            if e["event"] == "sighting":
                gids.setdefault(_identity_of(world, e["camera"], k % 95, e["box"]), set()).add(e["global_id"])
        if k % 95 == 94:
            after_pass.append(matcher.policy.identities)
    assert after_pass == [4, 4, 4]
    assert None not in gids and all(len(g) == 1 for g in gids.values()), gids
