"""Data-set loaders, the registry and the evaluation protocols on tiny fake data sets."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.io

from mvd_edge.core.config import ConfigError
from mvd_edge.core.modality import Modality
from mvd_edge.data.base import TEST_PID_OFFSET, DatasetError, Sample, holdout_identities
from mvd_edge.data.folder import load_folder
from mvd_edge.data.llcm import load_llcm, parse_llcm_camera
from mvd_edge.data.protocols import (
    PROTOCOLS,
    Trial,
    llcm_trials,
    make_trials,
    protocol_names,
    regdb_trials,
    sysu_trials,
)
from mvd_edge.data.regdb import load_regdb
from mvd_edge.data.registry import DATASETS, dataset_entry, default_eval_settings, load_dataset
from mvd_edge.data.sysu import load_sysu
from mvd_edge.eval.metrics import evaluate


def _write_image(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = np.full((8, 4, 3), value % 256, dtype=np.uint8)
    assert cv2.imwrite(str(path), img), path


# ----------------------------------------------------------------------------------
# SYSU-MM01

SYSU_TRAIN, SYSU_VAL, SYSU_TEST = [1, 2, 3, 7], [4], [5, 6]  # 7 has no images
# images per camera (cam -> count) for every identity that exists; cam 5 has a single image
SYSU_COUNTS = {1: 3, 2: 12, 3: 2, 4: 4, 5: 1, 6: 3}


def _make_sysu(root: Path, split_format: str = "txt") -> Path:
    for cam in range(1, 7):
        (root / f"cam{cam}").mkdir(parents=True, exist_ok=True)
    for pid in SYSU_TRAIN + SYSU_VAL + SYSU_TEST:
        if pid == 7:
            continue
        for cam, count in SYSU_COUNTS.items():
            for k in range(count):
                suffix = ".png" if k == 0 else ".jpg"
                _write_image(root / f"cam{cam}" / f"{pid:04d}" / f"{k + 1:04d}{suffix}", pid)
    exp = root / "exp"
    exp.mkdir()
    for name, ids in (("train", SYSU_TRAIN), ("val", SYSU_VAL), ("test", SYSU_TEST)):
        if split_format == "txt":
            # comma-separated with stray whitespace / line breaks
            (exp / f"{name}_id.txt").write_text(",\n ".join(str(i) for i in ids) + "\n")
        else:
            scipy.io.savemat(exp / f"{name}_id.mat", {"id": np.asarray([ids], dtype=np.float64)})
    (root / "cam1" / "0001" / "notes.txt").write_text("not an image")
    return root


def test_sysu_parsing_and_splits(tmp_path):
    ds = load_sysu(_make_sysu(tmp_path / "SYSU-MM01"))
    per_id = sum(SYSU_COUNTS.values())
    assert ds.name == "sysu"
    assert len(ds.train) == 3 * per_id and len(ds.val) == per_id and len(ds.test) == 2 * per_id
    assert ds.train_pids() == [1, 2, 3]
    assert {s.pid for s in ds.val} == {4} and {s.pid for s in ds.test} == {5, 6}
    assert ds.meta["missing_ids"] == {"train": [7], "val": [], "test": []}
    for s in ds.train + ds.val + ds.test:
        assert s.path.is_absolute() and s.path.is_file()
        assert s.path.parent.parent.name == f"cam{s.cam}"
        assert s.modality is (Modality.INFRARED if s.cam in (3, 6) else Modality.VISIBLE)
        assert s.path.suffix in (".jpg", ".png")


def test_sysu_use_val_false_merges_val_into_train(tmp_path):
    ds = load_sysu(_make_sysu(tmp_path / "s"), use_val=False)
    assert ds.val == []
    assert ds.train_pids() == [1, 2, 3, 4]


@pytest.mark.parametrize("variable", ["id", "ids_custom"])
def test_sysu_mat_split_fallback(tmp_path, variable):
    root = _make_sysu(tmp_path / "s", split_format="mat")
    if variable != "id":
        for name, ids in (("train", SYSU_TRAIN), ("val", SYSU_VAL), ("test", SYSU_TEST)):
            scipy.io.savemat(root / "exp" / f"{name}_id.mat", {variable: np.asarray([ids])})
    ds = load_sysu(root)
    assert ds.train_pids() == [1, 2, 3]
    assert ds.meta["split_files"]["test"].endswith("test_id.mat")


def test_sysu_missing_things_name_the_path(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "nowhere"))):
        load_sysu(tmp_path / "nowhere")
    root = _make_sysu(tmp_path / "s")
    (root / "exp" / "val_id.txt").unlink()
    with pytest.raises(DatasetError) as err:
        load_sysu(root)
    assert str(root / "exp" / "val_id.txt") in str(err.value)
    assert str(root / "exp" / "val_id.mat") in str(err.value)
    shutil.rmtree(root / "cam4")
    with pytest.raises(DatasetError, match=re.escape(str(root / "cam4"))):
        load_sysu(root)


def test_sysu_malformed_and_overlapping_splits(tmp_path):
    root = _make_sysu(tmp_path / "s")
    (root / "exp" / "test_id.txt").write_text("5,six")
    with pytest.raises(DatasetError, match="six"):
        load_sysu(root)
    (root / "exp" / "test_id.txt").write_text("5,1")
    with pytest.raises(DatasetError, match="overlap"):
        load_sysu(root)


# ----------------------------------------------------------------------------------
# RegDB


def _make_regdb(root: Path, trial: int = 1, n_train: int = 10, n_test: int = 4) -> Path:
    idx = root / "idx"
    idx.mkdir(parents=True)
    for split, n in (("train", n_train), ("test", n_test)):
        for word, folder in (("visible", "Visible"), ("thermal", "Thermal")):
            lines = []
            for label in range(n):
                for k in range(2):
                    rel = f"{folder}/{split}{label}/{word[0]}_{label}_{k}.bmp"
                    _write_image(root / rel)
                    lines.append(f"{rel} {label}")
            (idx / f"{split}_{word}_{trial}.txt").write_text("\n".join(lines) + "\n")
    return root


def test_regdb_parsing_offsets_and_holdout(tmp_path):
    root = _make_regdb(tmp_path / "RegDB")
    ds = load_regdb(root, trial=1, val_fraction=0.2, seed=3)
    assert ds.name == "regdb" and ds.meta["trial"] == 1
    assert len(ds.test) == 4 * 2 * 2
    assert {s.pid for s in ds.test} == {TEST_PID_OFFSET + i for i in range(4)}
    train_ids, val_ids = {s.pid for s in ds.train}, {s.pid for s in ds.val}
    assert len(val_ids) == 2 and train_ids | val_ids == set(range(10)) and not train_ids & val_ids
    for s in ds.train + ds.val + ds.test:
        assert s.path.is_absolute() and s.path.is_file()
        assert (s.modality, s.cam) == ((Modality.VISIBLE, 1) if "Visible" in s.path.parts else (Modality.INFRARED, 2))
    # both modalities of a held-out identity go to val
    for pid in val_ids:
        assert {s.modality for s in ds.val if s.pid == pid} == {Modality.VISIBLE, Modality.INFRARED}
    again = load_regdb(root, trial=1, val_fraction=0.2, seed=3)
    assert {s.pid for s in again.val} == val_ids
    assert load_regdb(root, val_fraction=0.0).val == []


@pytest.mark.parametrize("trial", [0, 11, -1])
def test_regdb_bad_trial(tmp_path, trial):
    with pytest.raises(ValueError, match="trial"):
        load_regdb(_make_regdb(tmp_path / "r"), trial=trial)


def test_regdb_missing_index_and_image_name_the_path(tmp_path):
    root = _make_regdb(tmp_path / "r")
    with pytest.raises(DatasetError, match=re.escape(str(root / "idx" / "train_visible_2.txt"))):
        load_regdb(root, trial=2)
    victim = root / "Thermal" / "test3" / "t_3_1.bmp"
    victim.unlink()
    with pytest.raises(DatasetError, match=re.escape(str(victim))):
        load_regdb(root, trial=1)


def test_regdb_malformed_line(tmp_path):
    root = _make_regdb(tmp_path / "r")
    (root / "idx" / "test_thermal_1.txt").write_text("Thermal/x.bmp\n")
    with pytest.raises(DatasetError, match="test_thermal_1.txt:1"):
        load_regdb(root)


# ----------------------------------------------------------------------------------
# LLCM


def _make_llcm(root: Path) -> Path:
    idx = root / "idx"
    idx.mkdir(parents=True)
    specs = {
        # split: list of (pid, label)
        "train": [(1, 0), (2, 1), (4, 2), (8, 3), (9, 4)],
        "test": [(3, 0), (5, 1), (6, 2)],
    }
    for split, people in specs.items():
        for word in ("vis", "nir"):
            cams = (1, 2, 3) if word == "vis" else (1, 2, 4)
            lines = []
            for pid, label in people:
                for cam in cams:
                    for k in range(2):
                        name = f"{pid:04d}_c{cam:02d}_s1200{k}_f{100 + k}_{word}.jpg"
                        if split == "test":
                            rel = f"test_{word}/cam{cam}/{pid:04d}/{name}"
                        else:
                            rel = f"{word}/{pid:04d}/{name}"
                        _write_image(root / rel)
                        lines.append(f"{rel} {label}")
            (idx / f"{split}_{word}.txt").write_text("\n".join(lines) + "\n")
    (idx / "test_id.txt").write_text("3,5,6")
    return root


def test_llcm_parsing(tmp_path):
    ds = load_llcm(_make_llcm(tmp_path / "LLCM"), val_fraction=0.2, seed=1)
    assert ds.name == "llcm"
    assert {s.pid for s in ds.test} == {TEST_PID_OFFSET + i for i in range(3)}
    assert len({s.pid for s in ds.val}) == 1
    assert {s.pid for s in ds.train} | {s.pid for s in ds.val} == set(range(5))
    for s in ds.train + ds.val + ds.test:
        assert s.path.is_absolute() and s.path.is_file()
        assert f"_c{s.cam:02d}_" in s.path.name
        assert s.modality is (Modality.VISIBLE if s.path.name.endswith("_vis.jpg") else Modality.INFRARED)
    assert {s.cam for s in ds.test if s.modality is Modality.INFRARED} == {1, 2, 4}


def test_llcm_camera_parsing():
    assert parse_llcm_camera("test_nir/cam1/0003/0003_c01_s185734_f3195_nir.jpg") == 1
    assert parse_llcm_camera("nir/0001/0001_c09_s185535_f7010_nir.jpg") == 9
    assert parse_llcm_camera("test_vis/cam7/0003/img.jpg") == 7
    assert parse_llcm_camera("vis/0003/img.jpg") is None


def test_llcm_errors_name_the_path(tmp_path):
    root = _make_llcm(tmp_path / "LLCM")
    (root / "idx" / "test_nir.txt").unlink()
    with pytest.raises(DatasetError, match=re.escape(str(root / "idx" / "test_nir.txt"))):
        load_llcm(root)
    root = _make_llcm(tmp_path / "LLCM2")
    (root / "idx" / "train_vis.txt").write_text("vis/0001/img.jpg 0\n")
    with pytest.raises(DatasetError, match="camera"):
        load_llcm(root)
    root = _make_llcm(tmp_path / "LLCM3")
    # nir list numbers identity 0003 differently from the vis list
    text = (root / "idx" / "test_nir.txt").read_text().replace("_nir.jpg 0", "_nir.jpg 2")
    (root / "idx" / "test_nir.txt").write_text(text)
    with pytest.raises(DatasetError, match="disagrees"):
        load_llcm(root)


# ----------------------------------------------------------------------------------
# Generic folder format


def _make_folder(root: Path, with_val: bool = True) -> Path:
    layout = {"train": range(1, 7), "test": range(20, 23)}
    if with_val:
        layout["val"] = range(10, 12)
    for split, pids in layout.items():
        for pid in pids:
            for mod, cams in (("rgb", (1, 2)), ("ir", (3,))):
                for cam in cams:
                    _write_image(root / split / mod / f"{pid:04d}" / f"c{cam}_{pid}_0.jpg")
    (root / "train" / "rgb" / "0001" / "labels.csv").write_text("x")
    (root / "train" / "rgb" / ".DS_Store").write_text("x")
    return root


def test_folder_parsing(tmp_path):
    ds = load_folder(_make_folder(tmp_path / "crops"))
    assert ds.name == "folder" and ds.meta["val_source"] == "folder"
    assert ds.train_pids() == list(range(1, 7))
    assert {s.pid for s in ds.val} == {10, 11} and {s.pid for s in ds.test} == {20, 21, 22}
    assert ds.meta["ignored_files"] == 1
    for s in ds.train + ds.val + ds.test:
        assert s.path.is_absolute()
        assert s.path.name.startswith(f"c{s.cam}_")
        assert s.modality is (Modality.VISIBLE if s.path.parent.parent.name == "rgb" else Modality.INFRARED)


def test_folder_without_val_holds_out_identities(tmp_path):
    root = _make_folder(tmp_path / "crops", with_val=False)
    ds = load_folder(root, val_fraction=0.34, seed=0)
    assert ds.meta["val_source"] == "holdout" and len({s.pid for s in ds.val}) == 2
    assert not {s.pid for s in ds.val} & set(ds.train_pids())
    assert load_folder(root, use_val=False).val == []


def test_folder_errors(tmp_path):
    with pytest.raises(DatasetError, match=re.escape(str(tmp_path / "empty" / "train"))):
        (tmp_path / "empty").mkdir()
        load_folder(tmp_path / "empty")
    root = _make_folder(tmp_path / "a")
    _write_image(root / "train" / "ir" / "0001" / "frame_1.jpg")
    with pytest.raises(DatasetError, match="frame_1.jpg"):
        load_folder(root)
    root = _make_folder(tmp_path / "b")
    (root / "train" / "thermal").mkdir()
    with pytest.raises(DatasetError, match="thermal"):
        load_folder(root)
    root = _make_folder(tmp_path / "c")
    _write_image(root / "test" / "ir" / "0003" / "c1_x.jpg")
    with pytest.raises(DatasetError, match="repeat"):
        load_folder(root)


# ----------------------------------------------------------------------------------
# Registry and identity hold-out


def test_registry_dispatch_and_defaults(tmp_path):
    assert list(DATASETS) == ["synthetic", "sysu", "regdb", "llcm", "folder"]
    assert all(name == entry.name and entry.about for name, entry in DATASETS.items())
    sysu_root = _make_sysu(tmp_path / "s")
    assert load_dataset("sysu", sysu_root, use_val=False).val == []
    assert load_dataset("synthetic", sysu_root).train == load_dataset("sysu", sysu_root).train  # SYSU layout
    assert load_dataset("regdb", _make_regdb(tmp_path / "r", trial=3), trial=3).meta["trial"] == 3
    assert load_dataset("llcm", _make_llcm(tmp_path / "l"), use_val=False).val == []
    assert load_dataset("folder", _make_folder(tmp_path / "f")).name == "folder"
    with pytest.raises(ValueError, match="synthetic, sysu, regdb, llcm, folder"):
        load_dataset("market1501", tmp_path)
    for name in DATASETS:
        settings = default_eval_settings(name)
        assert settings and set(settings) <= set(protocol_names())
    assert default_eval_settings("sysu") == default_eval_settings("synthetic") == ["sysu-all-single",
                                                                                 "sysu-indoor-single"]
    assert default_eval_settings("folder") == ["cross-i2v"]
    with pytest.raises(ValueError):
        default_eval_settings("nope")


def test_only_the_synthetic_set_is_written_and_has_a_root_in_the_run_folder(tmp_path):
    assert [n for n, e in DATASETS.items() if e.write is not None] == ["synthetic"]
    assert dataset_entry("synthetic").root(None, tmp_path) == tmp_path / "synthetic"
    assert dataset_entry("synthetic").root("/data/s", tmp_path) == Path("/data/s")
    with pytest.raises(ConfigError, match=r"data\.root is required for data\.dataset='sysu'"):
        dataset_entry("sysu").root(None, tmp_path)


def _samples(n_ids: int) -> list[Sample]:
    return [
        Sample(Path(f"/x/{pid}_{m}.jpg"), pid, 1 if m == Modality.VISIBLE else 2, m)
        for pid in range(n_ids)
        for m in (Modality.VISIBLE, Modality.INFRARED)
    ]


def test_holdout_identities():
    samples = _samples(20)
    train, val = holdout_identities(samples, 0.25, seed=5)
    assert len({s.pid for s in val}) == 5 and len(train) + len(val) == len(samples)
    assert not {s.pid for s in train} & {s.pid for s in val}
    assert holdout_identities(samples, 0.25, seed=5) == (train, val)
    assert {s.pid for s in holdout_identities(samples, 0.25, seed=6)[1]} != {s.pid for s in val}
    assert holdout_identities(samples, 0.0, seed=0) == (samples, [])
    assert len({s.pid for s in holdout_identities(samples, 0.001, seed=0)[1]}) == 1
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError):
            holdout_identities(samples, bad, seed=0)


# ----------------------------------------------------------------------------------
# Protocols


def _group_counts(test, trial: Trial) -> dict[tuple[int, int], int]:
    counts: dict[tuple[int, int], int] = {}
    for i in trial.gallery:
        s = test[i]
        counts[(s.pid, s.cam)] = counts.get((s.pid, s.cam), 0) + 1
    return counts


@pytest.mark.parametrize("mode, cams", [("all", (1, 2, 4, 5)), ("indoor", (1, 2))])
@pytest.mark.parametrize("shots", [1, 10])
def test_sysu_trials(tmp_path, mode, cams, shots):
    test = load_sysu(_make_sysu(tmp_path / "s")).test
    trials = sysu_trials(test, mode=mode, shots=shots, n_trials=4, seed=11)
    assert len(trials) == 4
    expected_query = [i for i, s in enumerate(test) if s.cam in (3, 6)]
    for t in trials:
        assert t.query.tolist() == expected_query
        assert all(test[i].modality is Modality.INFRARED for i in t.query)
        assert all(test[i].modality is Modality.VISIBLE and test[i].cam in cams for i in t.gallery)
        counts = _group_counts(test, t)
        assert set(counts) == {(pid, cam) for pid in SYSU_TEST for cam in cams}
        for (_, cam), n in counts.items():
            assert n == min(shots, SYSU_COUNTS[cam])
        assert len(set(t.gallery.tolist())) == len(t.gallery)
    again = sysu_trials(test, mode=mode, shots=shots, n_trials=4, seed=11)
    assert all(np.array_equal(a.gallery, b.gallery) for a, b in zip(trials, again))
    galleries = {tuple(t.gallery.tolist()) for t in trials}
    assert len(galleries) > 1  # draws differ between trials
    assert trials[0].name.startswith(f"sysu-{mode}-{'single' if shots == 1 else 'multi'}")


def test_trial_arrays_are_read_only():
    t = Trial("x", [1, 2], [3])
    assert t.query.dtype == np.int64
    with pytest.raises(ValueError):
        t.query[0] = 5


def test_regdb_and_llcm_trials(tmp_path):
    test = load_regdb(_make_regdb(tmp_path / "r")).test
    (v2t,) = regdb_trials(test, "v2t")
    assert all(test[i].modality is Modality.VISIBLE for i in v2t.query)
    assert all(test[i].modality is Modality.INFRARED for i in v2t.gallery)
    assert len(v2t.query) + len(v2t.gallery) == len(test)
    (t2v,) = regdb_trials(test, "t2v")
    assert np.array_equal(t2v.query, v2t.gallery) and np.array_equal(t2v.gallery, v2t.query)
    with pytest.raises(ValueError):
        regdb_trials(test, "i2v")

    test = load_llcm(_make_llcm(tmp_path / "l")).test
    trials = llcm_trials(test, "i2v", n_trials=5, seed=2)
    for t in trials:
        assert sorted(t.query.tolist()) == [i for i, s in enumerate(test) if s.modality is Modality.INFRARED]
        counts = _group_counts(test, t)
        assert set(counts.values()) == {1}
        assert {cam for _, cam in counts} == {1, 2, 3}
        assert all(test[i].modality is Modality.VISIBLE for i in t.gallery)
    assert len({tuple(t.gallery.tolist()) for t in trials}) > 1


def test_make_trials_settings(tmp_path):
    assert set(protocol_names()) == set(PROTOCOLS) >= {
        "sysu-all-single", "sysu-all-multi", "sysu-indoor-single", "sysu-indoor-multi",
        "regdb-v2t", "regdb-t2v", "llcm-v2i", "llcm-i2v", "cross-i2v",
    }
    sysu_test = load_sysu(_make_sysu(tmp_path / "s")).test
    proto, trials = make_trials("sysu-indoor-multi", sysu_test, n_trials=3, seed=0)
    assert proto == "sysu" and len(trials) == 3
    assert max(_group_counts(sysu_test, trials[0]).values()) == 10
    proto, trials = make_trials("cross-i2v", sysu_test, n_trials=3)
    assert proto == "regdb" and len(trials) == 1
    regdb_test = load_regdb(_make_regdb(tmp_path / "r")).test
    assert make_trials("regdb-t2v", regdb_test)[0] == "regdb"
    llcm_test = load_llcm(_make_llcm(tmp_path / "l")).test
    proto, trials = make_trials("llcm-v2i", llcm_test, n_trials=2)
    assert proto == "llcm" and len(trials) == 2
    with pytest.raises(ValueError, match="sysu-all-single"):
        make_trials("sysu-all", sysu_test)


@pytest.mark.parametrize("setting", ["sysu-all-single", "sysu-indoor-multi", "cross-i2v"])
def test_perfect_features_give_perfect_scores_end_to_end(tmp_path, setting):
    test = load_sysu(_make_sysu(tmp_path / "s")).test
    pids = np.array([s.pid for s in test])
    cams = np.array([s.cam for s in test])
    proto, trials = make_trials(setting, test, n_trials=2, seed=0)
    for t in trials:
        dist = (pids[t.query][:, None] != pids[t.gallery][None, :]).astype(float)
        out = evaluate(dist, pids[t.query], pids[t.gallery], cams[t.query], cams[t.gallery], proto)
        assert out["cmc"][0] == 1.0 and out["mAP"] == 1.0 and out["mINP"] == 1.0


def test_random_channel_augmentation_copies_one_channel():
    import torch

    from mvd_edge.train.dataset import RandomChannel

    torch.manual_seed(0)
    img = torch.randint(0, 256, (3, 16, 8), dtype=torch.uint8)
    assert torch.equal(RandomChannel(0.0)(img), img)
    picked = set()
    for _ in range(60):
        out = RandomChannel(1.0)(img)
        assert out.shape == img.shape and out.dtype == img.dtype
        assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])
        matches = [c for c in range(3) if torch.equal(out[0], img[c])]
        assert len(matches) == 1
        picked.add(matches[0])
    assert picked == {0, 1, 2}  # every channel gets chosen
    gray = img[:1].expand(3, -1, -1).clone()  # an IR-like image is left as it is
    assert torch.equal(RandomChannel(1.0)(gray), gray)


def test_sysu_protocol_warns_loudly_when_a_camera_has_no_test_images():
    from mvd_edge.data.protocols import DataSetWarning, sysu_trials

    def sample(pid, cam):
        mod = Modality.INFRARED if cam in (3, 6) else Modality.VISIBLE
        return Sample(path=Path(f"{pid}_{cam}.jpg"), pid=pid, cam=cam, modality=mod)

    full = [sample(p, c) for p in (1, 2) for c in (1, 2, 3, 4, 5, 6)]
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a complete split: no warning
        sysu_trials(full, "all", n_trials=1)
    no_cam6 = [s for s in full if s.cam != 6]
    with pytest.warns(DataSetWarning, match="no images in query cam 6.*not the protocol's number"):
        trials = sysu_trials(no_cam6, "all", n_trials=1)
    assert len(trials[0].query) == 2
    with pytest.warns(DataSetWarning, match="gallery cam 4, gallery cam 5"):
        sysu_trials([s for s in full if s.cam not in (4, 5)], "all", n_trials=1)


@pytest.mark.parametrize("setting", ["regdb-v2t", "llcm-v2i", "cross-v2i"])
def test_queries_whose_identity_has_no_gallery_image_are_counted_and_warned(setting):
    """A folder/RegDB/LLCM split whose infrared side lacks some identities: those visible
    queries can never match; the evaluation says how many were left out, loudly."""
    import warnings

    from mvd_edge.data.protocols import DataSetWarning
    from mvd_edge.eval.reid import evaluate_features

    def sample(pid, cam, mod):
        return Sample(path=Path(f"{pid}_{cam}.jpg"), pid=pid, cam=cam, modality=mod)

    full = [sample(p, c, Modality.VISIBLE) for p in range(4) for c in (1, 2)]
    full += [sample(p, c, Modality.INFRARED) for p in range(4) for c in (3, 4)]
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(len(full), 8)).astype(np.float32)
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # every identity on both sides: no warning
        res = evaluate_features(feats, full, [setting], n_trials=1)
    assert res[setting]["n_query_unmatched"] == 0
    keep = [i for i, s in enumerate(full) if not (s.modality is Modality.INFRARED and s.pid >= 2)]
    with pytest.warns(DataSetWarning, match=r"4 of 8 queries \(2 identities\) have no image.*not the protocol's"):
        res = evaluate_features(feats[keep], [full[i] for i in keep], [setting], n_trials=1)
    assert res[setting]["n_query_unmatched"] == 4
