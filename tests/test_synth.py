"""Synthetic cross-modal people and the SYSU-MM01 / RegDB / LLCM layout writers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from mvd_edge.core.modality import Modality
from mvd_edge.synth import (
    COAT_LENGTH,
    LOOK_ALIKE_TOLERANCE,
    MARKER,
    SYSU_IR_CAMS,
    Identity,
    cross_modal_traits,
    look_alike,
    look_alike_pairs,
    render_crop,
    render_sprite,
    sample_camera_style,
    sample_identities,
    write_llcm,
    write_regdb,
    write_sysu,
)

VIS, IR = Modality.VISIBLE, Modality.INFRARED
SMALL = (32, 16)


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng(list(key))


def _recolour(idt: Identity) -> Identity:
    """Same identity with every colour changed (materials untouched)."""
    c1, c2 = (10, 200, 30), (250, 20, 90)
    return dataclasses.replace(
        idt,
        body=dataclasses.replace(idt.body, skin=(40, 60, 90)),
        hair=dataclasses.replace(idt.hair, color=(200, 200, 10)),
        upper=dataclasses.replace(idt.upper, color=c1, color2=c2),
        lower=dataclasses.replace(idt.lower, color=c2),
        shoes=dataclasses.replace(idt.shoes, color=c1),
        accessory=dataclasses.replace(idt.accessory, color=c2),
    )


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# --------------------------------------------------------------------------- identities


def test_identity_i_does_not_depend_on_n_and_seed_matters():
    a, b = sample_identities(3, 7), sample_identities(6, 7)
    assert a == b[:3]
    assert sample_identities(3, 8) != a
    assert len(set(b)) == 6  # frozen dataclasses: hashable, and all different


def _with(idt: Identity, **parts) -> Identity:
    """``idt`` with fields of its parts replaced: ``_with(a, hair={"style": "bald"})``."""
    return dataclasses.replace(idt, **{k: dataclasses.replace(getattr(idt, k), **v) for k, v in parts.items()})


def test_look_alikes_share_every_cross_modal_trait_whatever_their_colours_and_materials():
    a = _with(sample_identities(1, 3)[0], hair={"style": "short"}, upper={"pattern": "hstripes", "pattern_freq": 4.0,
                                                                           "length": 0.0, "sleeves": "short"},
              lower={"kind": "skirt", "length": 0.5}, accessory={"kind": "shoulder_bag", "side": 1})
    twin = _with(_recolour(a), body={"shoulder_width": a.body.shoulder_width + 0.01},
                 upper={"emissivity": 1.0 - a.upper.emissivity, "pattern_freq": 4.5},
                 lower={"emissivity": 0.5, "length": 0.55}, accessory={"side": -1})  # the side flips with the view
    assert cross_modal_traits(twin) == cross_modal_traits(a) and look_alike(a, twin)
    differ = [
        _with(a, hair={"style": "long"}),
        _with(a, upper={"pattern": "vstripes"}),
        _with(a, upper={"sleeves": "long"}),
        _with(a, upper={"length": COAT_LENGTH + 0.05}),
        _with(a, lower={"kind": "shorts"}),
        _with(a, accessory={"kind": "backpack"}),
        _with(a, upper={"pattern_freq": 4.0 - LOOK_ALIKE_TOLERANCE["pattern_freq"]}),  # wider stripes ...
        _with(a, lower={"length": 0.5 - LOOK_ALIKE_TOLERANCE["lower_length"]}),  # ... a shorter skirt
    ]
    for other in differ:
        assert not look_alike(a, other) and not look_alike(other, a), other
    assert look_alike_pairs([a, *differ[:3], twin, *differ[3:]]) == [(0, 4)]
    coat = _with(a, upper={"length": 0.1})
    assert look_alike(coat, _with(coat, upper={"length": 0.12}))
    assert not look_alike(coat, _with(coat, upper={"length": 0.1 + LOOK_ALIKE_TOLERANCE["coat_length"]}))
    logo = _with(a, upper={"pattern": "logo"}), _with(a, upper={"pattern": "logo", "pattern_freq": 6.0})
    assert look_alike(*logo)  # a logo has no frequency to tell
    # with the default video seeds: seed 2's people 1 and 2 (0-based 0 and 1) are such a pair, seed 0 has none
    assert look_alike_pairs(sample_identities(6, 7919 + 2)) == [(0, 1)]
    assert look_alike_pairs(sample_identities(6, 7919)) == []
    assert look_alike_pairs([]) == []


# --------------------------------------------------------------------------- rendering


@pytest.mark.parametrize("modality", [VIS, IR])
def test_crop_deterministic_and_seed_dependent(modality):
    idt = sample_identities(1, 0)[0]
    a = render_crop(idt, modality, _rng(1, 2))
    b = render_crop(idt, modality, _rng(1, 2))
    c = render_crop(idt, modality, _rng(1, 3))
    assert a.shape == (128, 64, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ir_is_grey_and_rgb_is_colour():
    for i, idt in enumerate(sample_identities(6, 1)):
        ir = render_crop(idt, IR, _rng(i)).astype(np.int16)
        assert np.array_equal(ir[..., 0], ir[..., 1]) and np.array_equal(ir[..., 0], ir[..., 2])
        rgb = render_crop(idt, VIS, _rng(i)).astype(np.int16)
        chroma = np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])
        assert chroma.mean() > 8.0


def test_ir_brightness_ignores_colour_but_not_material_or_pattern():
    for i, idt in enumerate(sample_identities(5, 2)):
        other = _recolour(idt)
        assert np.array_equal(render_crop(idt, IR, _rng(i)), render_crop(other, IR, _rng(i)))
        assert not np.array_equal(render_crop(idt, VIS, _rng(i)), render_crop(other, VIS, _rng(i)))
        # the garment's emissivity does change the IR image
        warm = dataclasses.replace(other, upper=dataclasses.replace(other.upper, emissivity=0.95))
        cold = dataclasses.replace(other, upper=dataclasses.replace(other.upper, emissivity=0.25))
        diff = render_crop(warm, IR, _rng(i)).astype(int) - render_crop(cold, IR, _rng(i)).astype(int)
        assert diff.max() > 40 and diff.min() >= 0


def test_ir_lookup_gives_every_part_its_thermal_brightness():
    # thermal.part_brightness names the parts, raster maps them to labels: none may be left black
    from mvd_edge.synth.raster import _N_LABELS, _thermal_lut
    from mvd_edge.synth.thermal import apparent, part_brightness

    for idt in sample_identities(8, 5):
        parts, lut = part_brightness(idt), _thermal_lut(idt)
        assert lut[0] == 0.0 and len(parts) == _N_LABELS - 1
        assert sorted(lut[1:].tolist()) == sorted(float(np.float32(v)) for v in parts.values())
        assert all(0.0 < v < 1.0 for v in parts.values()) and parts["skin"] == max(parts.values())
    # emitted + reflected: a black body shows its surface, a mirror the cold surroundings
    assert apparent(1.0, 0.7) == 0.7 and apparent(0.0, 0.7) == apparent(0.0, 0.9) < apparent(0.5, 0.7)


def test_pattern_shows_in_both_modalities():
    idt = sample_identities(1, 3)[0]
    striped = dataclasses.replace(idt, upper=dataclasses.replace(
        idt.upper, pattern="hstripes", pattern_freq=4.0, pattern_emissivity_delta=0.2))
    plain = dataclasses.replace(striped, upper=dataclasses.replace(striped.upper, pattern="plain"))
    for modality in (VIS, IR):
        a, _ = render_sprite(striped, modality, 128, 0.0, "front", None)
        b, _ = render_sprite(plain, modality, 128, 0.0, "front", None)
        diff = np.abs(a.astype(int) - b.astype(int)).max(axis=2)
        rows = np.nonzero(diff.max(axis=1) > 10)[0]
        # differences only on the torso, and several separate bands (stripes)
        assert rows.size > 8
        assert rows.min() > 20 and rows.max() < 90
        assert np.count_nonzero(np.diff(rows) > 1) >= 2


@pytest.mark.parametrize("view", ["front", "back", "side"])
def test_sprite_is_person_alone_with_matching_alpha(view):
    idt = sample_identities(4, 4)[3]
    rgb, a_rgb = render_sprite(idt, VIS, 96, 0.3, view, _rng(5))
    ir, a_ir = render_sprite(idt, "ir", 96, 0.3, view, _rng(5))
    assert rgb.shape == ir.shape == (96, 54, 3) and rgb.dtype == np.uint8
    assert a_rgb.dtype == np.float32 and a_rgb.shape == (96, 54)
    assert np.array_equal(a_rgb, a_ir)  # geometry does not depend on the modality
    assert 0.0 <= a_rgb.min() and a_rgb.max() <= 1.0
    assert a_rgb[0, 0] == a_rgb[0, -1] == a_rgb[-1, 0] == a_rgb[-1, -1] == 0.0  # no background
    assert a_rgb[-3:].max() > 0.5 and a_rgb[:6].max() > 0.5  # head to sole
    assert 0.15 < a_rgb.mean() < 0.5
    assert np.array_equal(ir[..., 0], ir[..., 2])


def test_walking_phase_moves_the_legs():
    idt = sample_identities(1, 5)[0]
    _, a0 = render_sprite(idt, VIS, 96, 0.0, "side", None, facing=1)
    _, a1 = render_sprite(idt, VIS, 96, 0.25, "side", None, facing=1)
    _, a2 = render_sprite(idt, VIS, 96, 1.25, "side", None, facing=1)
    assert np.abs(a0 - a1)[60:].sum() > 50.0
    assert np.array_equal(a1, a2)  # phase is periodic
    _, left = render_sprite(idt, VIS, 96, 0.25, "side", None, facing=-1)
    # facing left is the mirror image (up to rasterisation), and clearly not the same sprite
    assert np.abs(left - a1[:, ::-1]).sum() < 0.05 * a1.sum()
    assert np.abs(left - a1).sum() > 0.2 * a1.sum()


def test_render_rejects_bad_arguments():
    idt = sample_identities(1, 0)[0]
    with pytest.raises(ValueError):
        render_sprite(idt, VIS, 64, 0.0, "top", None)
    with pytest.raises(ValueError):
        render_sprite(idt, VIS, 4, 0.0, "front", None)
    with pytest.raises(ValueError):
        render_crop(idt, VIS, _rng(0), size=(8, 4))
    with pytest.raises(ValueError):
        render_crop(idt, VIS, _rng(0), camera_style=sample_camera_style(IR, _rng(0)))
    with pytest.raises(ValueError):
        sample_identities(3, -1)


_HOG = cv2.HOGDescriptor((64, 128), (16, 16), (8, 8), (8, 8), 9)


def _hog(img: np.ndarray) -> np.ndarray:
    f = _HOG.compute(cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)).ravel()
    return f / (np.linalg.norm(f) + 1e-6)


def test_cross_modal_matching_is_learnable():
    """HOG nearest neighbour, RGB queries vs IR gallery, 20 identities: well above chance.

    (Rank-1 is 0.15-0.30 over seeds 0-7, chance 0.05; the IR look carries shape and
    pattern cues of the identity, not just a generic person.)
    """
    n, per = 20, 3
    ids = sample_identities(n, 0)
    sv, si = sample_camera_style(VIS, _rng(0, 1)), sample_camera_style(IR, _rng(0, 2))
    q = np.array([_hog(render_crop(d, VIS, _rng(10, i, k), (128, 64), sv)) for i, d in enumerate(ids) for k in range(per)])
    g = np.array([_hog(render_crop(d, IR, _rng(20, i, k), (128, 64), si)) for i, d in enumerate(ids) for k in range(per)])
    labels = np.repeat(np.arange(n), per)
    rank1 = float(np.mean(labels[(q @ g.T).argmax(axis=1)] == labels))
    assert rank1 >= 0.12


# --------------------------------------------------------------------------- SYSU-MM01


def test_write_sysu_layout(tmp_path):
    root = tmp_path / "sysu"
    info = write_sysu(root, n_ids=7, images_per_cam=2, size=SMALL, seed=3)
    assert SYSU_IR_CAMS == (3, 6) and info["ir_cams"] == [3, 6] and info["visible_cams"] == [1, 2, 4, 5]
    for cam in range(1, 7):
        pids = sorted(p.name for p in (root / f"cam{cam}").iterdir())
        assert pids == [f"{i:04d}" for i in range(1, 8)]
        for pid in pids:
            assert sorted(p.name for p in (root / f"cam{cam}" / pid).iterdir()) == ["0001.jpg", "0002.jpg"]
        img = cv2.imread(str(root / f"cam{cam}" / "0001" / "0001.jpg"))
        assert img.shape == (32, 16, 3)
        grey = int(np.abs(img[..., 0].astype(int) - img[..., 2]).max()) <= 2
        assert grey == (cam in (3, 6))
    ids = {}
    for split in ("train", "val", "test"):
        text = (root / "exp" / f"{split}_id.txt").read_text().strip()
        assert "\n" not in text
        ids[split] = [int(t) for t in text.split(",")]
        assert ids[split] == info["ids"][split]
    assert [len(ids[s]) for s in ("train", "val", "test")] == [4, 1, 2]
    assert sorted(ids["train"] + ids["val"] + ids["test"]) == list(range(1, 8))  # disjoint and complete
    assert info["images"]["train"]["cam3"] == 8 and info["total_images"] == 7 * 6 * 2
    assert (root / MARKER).is_file()


def test_write_sysu_deterministic(tmp_path):
    write_sysu(tmp_path / "a", n_ids=3, images_per_cam=1, size=SMALL, seed=5)
    write_sysu(tmp_path / "b", n_ids=3, images_per_cam=1, size=SMALL, seed=5)
    write_sysu(tmp_path / "c", n_ids=3, images_per_cam=1, size=SMALL, seed=6)
    a, b, c = (_files(tmp_path / x) for x in "abc")
    assert a == b
    assert a.keys() == c.keys() and a["cam1/0001/0001.jpg"] != c["cam1/0001/0001.jpg"]


def test_write_sysu_overwrites_only_its_own_output(tmp_path):
    root = tmp_path / "s"
    write_sysu(root, n_ids=4, images_per_cam=1, size=SMALL)
    write_sysu(root, n_ids=3, images_per_cam=1, size=SMALL)  # own marker: rewritten cleanly
    assert not (root / "cam1" / "0004").exists()
    foreign = tmp_path / "real"
    (foreign / "cam1").mkdir(parents=True)
    with pytest.raises(FileExistsError):
        write_sysu(foreign, n_ids=3, images_per_cam=1, size=SMALL)
    assert (foreign / "cam1").is_dir()


def test_write_sysu_scenes_cuts_people_out_of_scenes_of_their_split(tmp_path, monkeypatch):
    """render='scenes': each image is a cut-out of one person walking through a scene with the
    others of its group; groups never mix splits; deterministic; a bad render is refused."""
    import mvd_edge.synth.dataset as ds

    scenes, real = [], ds._scene_images
    monkeypatch.setattr(ds, "_scene_images", lambda people, *a: scenes.append(list(people)) or real(people, *a))
    root = tmp_path / "sc"
    info = write_sysu(root, n_ids=9, images_per_cam=2, size=(64, 32), seed=4, render="scenes", scene_people=3)
    assert info["render"] == "scenes" and info["total_images"] == 9 * 6 * 2
    meta = json.loads((root / MARKER).read_text())
    assert meta["render"] == "scenes" and meta["scene_people"] == 3
    crops = write_sysu(tmp_path / "cr", n_ids=9, images_per_cam=2, size=(64, 32), seed=4)
    assert crops["ids"] == info["ids"]  # same identities and split as the crops set of the same seed
    pid_of = {idt: k + 1 for k, idt in enumerate(sample_identities(9, 4))}
    split_of = {pid: name for name, ids in info["ids"].items() for pid in ids}
    assert len(scenes) == 6 * 4  # per camera: train 6 ids -> 2 scenes, val 1 -> 1, test 2 -> 1
    for people in scenes:
        assert 1 <= len(people) <= 3 and len({split_of[pid_of[p]] for p in people}) == 1
    for cam in range(1, 7):
        for pid in range(1, 10):
            imgs = [cv2.imread(str(p)) for p in sorted((root / f"cam{cam}" / f"{pid:04d}").iterdir())]
            assert len(imgs) == 2 and all(im.shape == (64, 32, 3) for im in imgs)
            grey = max(int(np.abs(im[..., 0].astype(int) - im[..., 2]).max()) for im in imgs) <= 3
            assert grey == (cam in SYSU_IR_CAMS)
            assert not np.array_equal(imgs[0], imgs[1])  # two different frames of the scene
    # deterministic
    write_sysu(tmp_path / "sc2", n_ids=9, images_per_cam=2, size=(64, 32), seed=4, render="scenes", scene_people=3)
    assert _files(root) == _files(tmp_path / "sc2")
    with pytest.raises(ValueError, match="render"):
        write_sysu(tmp_path / "bad", n_ids=3, images_per_cam=1, size=SMALL, render="video")
    with pytest.raises(ValueError, match="at most 30"):  # a scene offers 30 distinct frames per person
        write_sysu(tmp_path / "bad", n_ids=3, images_per_cam=31, size=SMALL, render="scenes")
    assert not (tmp_path / "bad").exists()


def test_scene_images_prefer_clear_frames_and_look_like_the_matcher_crop():
    """The chosen frames show the person >= 60 % visible with a box <= 30 % covered where such frames exist,
    and a crop equals the matcher's own cut-out (box_crop with the pipeline's defaults) resized."""
    from mvd_edge.core.preprocess import box_crop, box_overlap
    from mvd_edge.synth.dataset import _scene_images
    from mvd_edge.synth.video import SynthVideoRenderer

    people = sample_identities(4, 11)
    out = _scene_images(people, VIS, 12345678, 3, (128, 64))
    assert [len(x) for x in out] == [3, 3, 3, 3]
    r = SynthVideoRenderer(n_ids=4, seed=12345678, identities=people)
    clear = {i: [] for i in range(4)}
    for f in range(0, 300, 10):
        img, boxes = r.render("rgb", f)
        xyxy = np.array([[x, y, x + w, y + h] for _, x, y, w, h, _ in boxes], np.float32)
        for (pid, *_rest, vis), box, ov in zip(boxes, xyxy, box_overlap(xyxy)):
            c = box_crop(img, box, margin=0.08, aspect=0.5, min_height=32)
            if c is not None and vis >= 0.6 and ov <= 0.3:
                clear[pid - 1].append(cv2.resize(c, (64, 128), interpolation=cv2.INTER_AREA))
    for i in range(4):
        assert len(clear[i]) >= 3
        for img in out[i]:
            assert any(np.array_equal(img, c) for c in clear[i])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_ids": 2},
        {"n_ids": 3.5},
        {"images_per_cam": 0},
        {"size": (8, 8)},
        {"size": 32},
        {"seed": -1},
        {"split": (0.5, 0.5, 0.5)},
        {"split": (0.9, 0.1)},
        {"split": (1.0, 0.0, 0.0)},
    ],
)
def test_write_sysu_bad_arguments(tmp_path, kwargs):
    args = {"n_ids": 3, "images_per_cam": 1, "size": SMALL} | kwargs
    with pytest.raises(ValueError):
        write_sysu(tmp_path / "x", **args)
    assert not (tmp_path / "x").exists()


# --------------------------------------------------------------------------- RegDB, LLCM


def _index(path: Path) -> list[tuple[str, int]]:
    out = []
    for line in path.read_text().splitlines():
        rel, label = line.rsplit(" ", 1)
        out.append((rel, int(label)))
    return out


def test_write_regdb_layout_and_trials(tmp_path):
    root = tmp_path / "regdb"
    info = write_regdb(root, n_ids=5, images_per_modality=2, size=SMALL, seed=1, n_trials=3)
    assert sorted(p.name for p in (root / "Thermal").iterdir()) == [f"{i:04d}" for i in range(1, 6)]
    splits = set()
    for t in range(1, 4):
        pids = {}
        for part, n in (("train", 2), ("test", 3)):
            vis, th = _index(root / "idx" / f"{part}_visible_{t}.txt"), _index(root / "idx" / f"{part}_thermal_{t}.txt")
            assert len(vis) == len(th) == n * 2
            for entries, folder in ((vis, "Visible"), (th, "Thermal")):
                assert all(rel.startswith(folder + "/") and (root / rel).is_file() for rel, _ in entries)
                assert sorted({lab for _, lab in entries}) == list(range(n))
                # one folder (identity) per label
                assert len({rel.split("/")[1] for rel, _ in entries}) == n
            pids[part] = {int(rel.split("/")[1]) for rel, _ in vis}
            assert pids[part] == {int(rel.split("/")[1]) for rel, _ in th}
        assert not pids["train"] & pids["test"] and pids["train"] | pids["test"] == set(range(1, 6))
        assert sorted(pids["train"]) == info["trials"][t - 1]["train"]
        splits.add(tuple(sorted(pids["train"])))
    assert len(splits) > 1  # trials differ
    img = cv2.imread(str(root / "Thermal" / "0001" / "0001.png"))
    assert np.array_equal(img[..., 0], img[..., 1])
    with pytest.raises(ValueError):
        write_regdb(tmp_path / "bad", n_ids=1)
    with pytest.raises(ValueError):
        write_regdb(tmp_path / "bad", n_ids=4, n_trials=0)


def test_write_llcm_layout(tmp_path):
    root = tmp_path / "llcm"
    info = write_llcm(root, n_ids=6, cams_per_identity=2, images_per_cam=1, size=SMALL, seed=2)
    seen = {"train": set(), "test": set()}
    for part in ("train", "test"):
        for tag in ("vis", "nir"):
            entries = _index(root / "idx" / f"{part}_{tag}.txt")
            for rel, _ in entries:
                assert rel.startswith(tag + "/") and (root / rel).is_file()
                name = Path(rel).name
                cam = int(name.split("_c")[1][:2])
                assert 1 <= cam <= 9 and name.startswith(Path(rel).parent.name + "_")
            pids = sorted({int(rel.split("/")[1]) for rel, _ in entries})
            assert sorted({lab for _, lab in entries}) == list(range(len(pids)))
            assert len(entries) == 2 * len(pids)
            seen[part] |= set(pids)
    assert not seen["train"] & seen["test"] and seen["train"] | seen["test"] == set(range(1, 7))
    assert sorted(seen["train"]) == info["ids"]["train"] and len(seen["train"]) == 4
    with pytest.raises(ValueError):
        write_llcm(tmp_path / "bad", n_ids=4, cams_per_identity=10)
