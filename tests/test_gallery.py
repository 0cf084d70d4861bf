"""mvd_edge.gallery: faiss index kinds against exact numpy search, save/load checks, the crops CLI,
and IdentityMemory against the associator's linear scan."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")
faiss.omp_set_num_threads(1)  # small indexes: threads only add OpenMP spin-waits on a busy CI machine

from typer.testing import CliRunner  # noqa: E402

from mvd_edge.core.errors import UsageError  # noqa: E402
from mvd_edge.gallery.index import GALLERY_FORMAT, Gallery, GalleryError  # noqa: E402
from mvd_edge.gallery.memory import IdentityMemory  # noqa: E402
from mvd_edge.gallery.store import list_crops  # noqa: E402


def clustered(n: int, dim: int, n_ids: int, noise: float, rng: np.random.Generator, centres=None):
    """Unit vectors around ``n_ids`` random unit centres (noise of norm ``noise``); returns x, labels, centres."""
    if centres is None:
        centres = rng.standard_normal((n_ids, dim)).astype(np.float32)
        centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    lab = rng.integers(0, len(centres), n)
    x = centres[lab] + (noise / np.sqrt(dim)) * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), lab, centres


def brute_force(x: np.ndarray, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    s = q.astype(np.float64) @ x.astype(np.float64).T
    rows = np.argsort(-s, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(s, rows, 1), rows, s


# ---------------------------------------------------------------------------------------------- exact
def test_flat_equals_numpy_brute_force():
    rng = np.random.default_rng(1)
    x, lab, centres = clustered(3000, 64, 300, 0.75, rng)
    q, _, _ = clustered(60, 64, 300, 0.75, rng, centres)
    ids = [int(i) for i in rng.permutation(10_000)[:3000]]  # ids unrelated to rows: the mapping is tested
    g = Gallery.build(x, ids, [{"row": i} for i in range(3000)], kind="flat")
    scores, got = g.search(q, 10)
    ref_s, ref_rows, full = brute_force(x, q, 10)
    assert scores.shape == (60, 10) and got.dtype == np.int64
    np.testing.assert_allclose(scores, ref_s, atol=1e-5)
    id_arr = np.array(ids)
    row_of = {i: r for r, i in enumerate(ids)}
    for qi in range(60):
        for j in range(10):
            if got[qi, j] != id_arr[ref_rows[qi, j]]:  # allowed only for a float tie between the two entries
                assert abs(full[qi, row_of[int(got[qi, j])]] - ref_s[qi, j]) < 1e-5
    exact_match = np.mean(got == id_arr[ref_rows])
    assert exact_match > 0.99
    _, rows = g.search_rows(q[:3], 10)
    assert [g.entry(int(r))[1]["row"] for r in rows[0]] == rows[0].tolist()


def test_k_above_count_and_string_ids():
    rng = np.random.default_rng(2)
    x, _, _ = clustered(5, 16, 2, 0.5, rng)
    g = Gallery.build(x, ["a", "b", "c", "d", "e"], kind="flat")
    scores, ids = g.search(x[:2], 50)
    assert scores.shape == (2, 5) and ids.dtype == object
    assert ids[0, 0] == "a" and ids[1, 0] == "b"
    assert scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_input_validation():
    rng = np.random.default_rng(3)
    x, _, _ = clustered(20, 8, 4, 0.5, rng)
    with pytest.raises(UsageError, match="not L2-normalised"):
        Gallery.build(x * 2.0, list(range(20)), kind="flat")
    g = Gallery.build(x * 2.0, list(range(20)), kind="flat", normalize=True)
    np.testing.assert_allclose(g.search(x[:1], 1)[0][0, 0], 1.0, atol=1e-5)
    with pytest.raises(UsageError, match="mix"):
        Gallery.build(x, [*range(19), "a"], kind="flat")
    with pytest.raises(UsageError, match="19 ids for 20"):
        Gallery.build(x, list(range(19)), kind="flat")
    with pytest.raises(UsageError, match=r"\[N, 8\]"):
        g.search(np.ones((2, 9), np.float32), 1)
    with pytest.raises(UsageError, match="unknown index kind"):
        Gallery(8, "lsh")
    with pytest.raises(UsageError, match="unknown index parameters"):
        Gallery(8, "ivf", params={"nprobes": 3})


# ---------------------------------------------------------------------------------------------- approximate
@pytest.fixture(scope="module")
def big():
    """20k x 64-d clustered gallery (2000 identities), 200 queries, exact top-10, and the approximate galleries."""
    rng = np.random.default_rng(0)
    x, lab, centres = clustered(20_000, 64, 2000, 0.75, rng)
    q, _, _ = clustered(200, 64, 2000, 0.75, rng, centres)
    _, exact, full = brute_force(x, q, 10)
    ids = lab.tolist()
    meta = [{"row": i} for i in range(len(x))]
    galleries = {kind: Gallery.build(x, ids, meta, kind=kind) for kind in ("ivf", "ivfpq", "hnsw")}
    return {"x": x, "q": q, "exact": exact, "full": full, "ids": ids, "g": galleries}


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_approximate_recall_at_10(big, kind):
    g = big["g"][kind]
    assert g.kind == kind and g.fallback is None
    scores, rows = g.search_rows(big["q"], 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows.tolist(), big["exact"].tolist())])
    assert recall >= 0.95, f"{kind} recall@10 {recall:.3f}"
    if kind != "ivfpq" or g.params.refine_factor > 0:  # exact re-ranking: the scores are true cosines
        true = np.take_along_axis(big["full"], rows, 1)
        np.testing.assert_allclose(scores, true, atol=1e-5)
    # fewer probes must cost recall for ivf: the parameter reaches the index
    if kind == "ivf":
        _, rows1 = g.search_rows(big["q"], 10, nprobe=1)
        low = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows1.tolist(), big["exact"].tolist())])
        assert low < recall - 0.1


def test_ivfpq_without_refine_is_coarser(big):
    g = Gallery.build(big["x"][:4000], big["ids"][:4000], kind="ivfpq", params={"refine_factor": 0, "pq_bits": 6})
    assert g.kind == "ivfpq"
    scores, rows = g.search_rows(big["q"][:50], 10)
    true = np.take_along_axis(big["full"][:50], rows, 1)
    assert np.abs(scores - true).max() > 1e-4  # PQ scores are approximations, unlike the refined ones


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_save_load_round_trip(big, kind, tmp_path):
    g = big["g"][kind]
    g.save(tmp_path / kind)
    side = json.loads((tmp_path / kind / "gallery.json").read_text())
    assert side["format"] == GALLERY_FORMAT and side["kind"] == kind and side["count"] == 20_000
    assert side["faiss_version"] == faiss.__version__ and len(side["index_sha256"]) == 64
    h = Gallery.load(tmp_path / kind)
    assert (h.kind, h.dim, h.count, h.params, h.ids, h.metadata) == (g.kind, g.dim, g.count, g.params, g.ids,
                                                                      g.metadata)
    s1, i1 = g.search(big["q"], 10)
    s2, i2 = h.search(big["q"], 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(s1, s2)


# ---------------------------------------------------------------------------------------------- files
@pytest.fixture()
def saved(tmp_path):
    rng = np.random.default_rng(4)
    x, lab, _ = clustered(4000, 32, 100, 0.5, rng)
    g = Gallery.build(x, lab.tolist(), [{"path": f"{i}.jpg"} for i in range(4000)], kind="ivf")
    g.save(tmp_path / "g")
    return tmp_path / "g"


def _edit(folder: Path, **changes):
    p = folder / "gallery.json"
    side = json.loads(p.read_text())
    for key, value in changes.items():
        if callable(value):
            value(side)
        else:
            side[key] = value
    p.write_text(json.dumps(side))


@pytest.mark.parametrize("change, field", [
    ({"dim": 64}, "dim"),
    ({"count": 3999}, "ids"),  # ids/metadata lengths are checked against count before the index
    ({"kind": "flat"}, "kind"),
    ({"kind": "annoy"}, "kind"),
    ({"ids": lambda s: s["ids"].pop()}, "ids"),
    ({"metadata": lambda s: s["metadata"].append({})}, "metadata"),
    ({"params": lambda s: s["params"].update(nlist=7)}, "params"),
    ({"params": lambda s: s["params"].update(bogus=1)}, "params"),
    ({"index_sha256": "0" * 64}, "index_sha256"),
    ({"index_bytes": 12}, "index_bytes"),
    ({"id_type": "str"}, "id_type"),
    ({"metric": "l2"}, "metric"),
])
def test_tampered_sidecar_fails_naming_the_field(saved, change, field):
    _edit(saved, **change)
    with pytest.raises(GalleryError, match=f"field '{field}'"):
        Gallery.load(saved)


def test_count_mismatch_with_index(saved):
    def shrink(side):
        side["count"] = 3999
        side["ids"].pop()
        side["metadata"].pop()
    _edit(saved, x=shrink)
    with pytest.raises(GalleryError, match="field 'count'.*4000"):
        Gallery.load(saved)


def test_modified_or_truncated_index_file(saved):
    p = saved / "index.faiss"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))
    with pytest.raises(GalleryError, match="field 'index_sha256'"):
        Gallery.load(saved)
    p.write_bytes(bytes(data[:-10]))
    with pytest.raises(GalleryError, match="field 'index_bytes'"):
        Gallery.load(saved)
    p.unlink()
    with pytest.raises(GalleryError, match="field 'index_file'"):
        Gallery.load(saved)
    (saved / "gallery.json").write_text("{}")
    with pytest.raises(GalleryError, match="not an mvd-edge gallery sidecar"):
        Gallery.load(saved)


def test_save_leaves_no_temp_files(saved):
    assert sorted(p.name for p in saved.iterdir()) == ["gallery.json", "index.faiss"]


# ---------------------------------------------------------------------------------------------- training
def test_untrained_index_refuses_search_then_trains():
    rng = np.random.default_rng(5)
    x, lab, _ = clustered(3000, 32, 50, 0.5, rng)
    g = Gallery(32, "ivf")
    g.add(x[:2000], lab[:2000].tolist())
    assert not g.is_trained
    with pytest.raises(GalleryError, match="not trained yet.*2000 vectors waiting"):
        g.search(x[:1], 5)
    g.train()
    g.add(x[2000:], lab[2000:].tolist())
    assert g.is_trained and g.kind == "ivf" and g.params.nlist >= 2 and g._index.ntotal == 3000
    _, rows = g.search_rows(x[2500:2501], 1, nprobe=g.params.nlist)  # all lists probed: exact
    assert rows[0, 0] == 2500
    with pytest.raises(GalleryError, match="already trained"):
        g.train()


def test_too_few_vectors_fall_back_and_record_it(tmp_path):
    rng = np.random.default_rng(6)
    x, lab, _ = clustered(60, 16, 5, 0.5, rng)
    g = Gallery.build(x, lab.tolist(), kind="ivf")
    assert g.kind == "flat" and "ivf requested" in g.fallback and "got 60" in g.fallback
    g.save(tmp_path / "small")
    side = json.loads((tmp_path / "small" / "gallery.json").read_text())
    assert (side["requested_kind"], side["kind"]) == ("ivf", "flat") and side["fallback"] == g.fallback
    assert Gallery.load(tmp_path / "small").fallback == g.fallback
    # an explicit nlist the data cannot train: flat, said so
    x2, lab2, _ = clustered(500, 16, 5, 0.5, rng)
    g2 = Gallery.build(x2, lab2.tolist(), kind="ivf", params={"nlist": 100})
    assert g2.kind == "flat" and "3900 training vectors for 100 lists" in g2.fallback
    # ivfpq without enough vectors for 256 PQ centroids: ivf
    x3, lab3, _ = clustered(3000, 16, 30, 0.5, rng)
    g3 = Gallery.build(x3, lab3.tolist(), kind="ivfpq")
    assert g3.kind == "ivf" and "PQ centroids" in g3.fallback
    # auto: flat for a small gallery, and that is no fallback
    g4 = Gallery.build(x3, lab3.tolist(), kind="auto")
    assert g4.kind == "flat" and g4.fallback is None


def test_use_gpu_without_gpu_is_an_error():
    if faiss.get_num_gpus() > 0:
        pytest.skip("a GPU is here")
    from mvd_edge.core.errors import DeviceUnavailable

    rng = np.random.default_rng(7)
    x, lab, _ = clustered(50, 8, 5, 0.5, rng)
    g = Gallery.build(x, lab.tolist(), kind="flat", use_gpu=True)
    with pytest.raises(DeviceUnavailable, match="no GPU"):
        g.search(x[:1], 1)


def test_import_without_faiss_or_torch():
    code = ("import sys; sys.modules['faiss'] = None\n"
            "import mvd_edge.gallery as mg\n"
            "from mvd_edge.gallery import Gallery, IdentityMemory\n"
            "heavy = [m for m in ('torch', 'torchvision', 'onnx', 'matplotlib', 'cv2', 'mvd_edge.model') if m in sys.modules]\n"
            "m = IdentityMemory(4, parts=1, faiss_above=10)\n"
            "m.put(1, [1, 0, 0, 0]); assert m.best([1, 0, 0, 0], threshold=0.5) == (1, 1.0)\n"
            "try:\n    Gallery(4, 'flat')\nexcept ImportError as e:\n    print('ERR', e)\n"
            "print('HEAVY', heavy)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "ERR faiss is not installed: pip install 'mvd-edge[gallery]'" in out
    assert "HEAVY []" in out


# ---------------------------------------------------------------------------------------------- memory
class ReferenceMemory:
    """The associator's ended-id memory as written in mvd_edge/match/associate.py (OrderedDict + linear scan)."""

    def __init__(self, capacity: int):
        self.d: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self.capacity = capacity

    def put(self, gid, a, b):
        self.d[gid] = (a, b)
        self.d.move_to_end(gid)
        evicted = []
        while len(self.d) > self.capacity:
            evicted.append(self.d.popitem(last=False)[0])
        return evicted

    def take(self, a, b, threshold):
        best, best_sim = None, threshold
        for gid, (ga, gb) in self.d.items():
            sim = 0.5 * (float(ga @ a) + float(gb @ b))
            if sim >= best_sim:
                best, best_sim = gid, sim
        if best is None:
            return None
        del self.d[best]
        return best, best_sim


def _unit(rng, d):
    v = rng.standard_normal(d).astype(np.float32)
    return v / np.linalg.norm(v)


@pytest.mark.parametrize("faiss_above", [10**9, 200])
def test_identity_memory_matches_the_linear_scan(faiss_above):
    """Random put/pop/take sequences: same ids, same scores, same evictions as the OrderedDict scan; with
    faiss_above=200 the faiss flat index answers for most of the run (exact path: identical results)."""
    rng = np.random.default_rng(8)
    d, cap = 32, 600
    ref, mem = ReferenceMemory(cap), IdentityMemory(d, parts=2, capacity=cap, faiss_above=faiss_above)
    used_faiss, takes, hits = False, 0, 0
    for step in range(4000):
        r = rng.random()
        if r < 0.55:
            gid = int(rng.integers(0, 1500))
            a, b = _unit(rng, d), _unit(rng, d)
            ref.d.pop(gid, None)
            assert mem.put(gid, a, b) == ref.put(gid, a, b)
        elif r < 0.65:
            gid = int(rng.integers(0, 1500))
            assert mem.pop(gid) == (ref.d.pop(gid, None) is not None)
        elif ref.d:
            keys = list(ref.d)
            ga, gb = ref.d[keys[int(rng.integers(len(keys)))]]
            a = ga + 0.6 * _unit(rng, d)
            b = gb + 0.6 * _unit(rng, d)
            a, b = a / np.linalg.norm(a), b / np.linalg.norm(b)
            want, got = ref.take(a, b, 0.6), mem.take(a, b, threshold=0.6)
            takes += 1
            if want is None:
                assert got is None
            else:
                hits += 1
                assert got[0] == want[0] and got[1] == pytest.approx(want[1], abs=1e-6)
        used_faiss |= mem.uses_faiss
        assert mem.ids() == list(ref.d)
    assert takes > 500 and hits > 200  # the threshold is crossed both ways
    assert used_faiss == (faiss_above < cap)


def test_identity_memory_ties_go_to_the_newest_and_threshold_is_inclusive():
    v = np.eye(4, dtype=np.float32)
    for faiss_above in (10**9, 1):
        m = IdentityMemory(4, parts=1, faiss_above=faiss_above)
        m.put(7, v[0])
        m.put(3, v[0])
        m.put(9, v[1])
        assert m.uses_faiss == (faiss_above == 1)
        assert m.best(v[0], threshold=1.0) == (3, 1.0)  # equal scores: the newest (3), as the scan's >= does
        assert m.best(v[2], threshold=0.0) == (9, 0.0)  # all three score 0: the newest
        assert m.best(v[2], threshold=0.01) is None
        m.put(7, v[0])  # refreshed: now the newest
        assert m.take(v[0], threshold=0.5) == (7, 1.0) and 7 not in m and len(m) == 2


# ---------------------------------------------------------------------------------------------- crops + CLI
def _write_crops(root: Path, rng) -> None:
    import cv2

    for pid, sub in ((17, "17"), (5, "rgb/0005"), (8, "ir/8")):
        for j in range(3):
            img = rng.integers(0, 256, size=(int(rng.integers(60, 120)), int(rng.integers(30, 60)), 3), dtype=np.uint8)
            p = root / sub / f"c{j + 1}_{j:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(p), img)
    img = rng.integers(0, 256, size=(80, 40, 3), dtype=np.uint8)
    cv2.imwrite(str(root / "0042_walk.png"), img)
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    cv2.imwrite(str(root / ".hidden" / "x.jpg"), img)


def test_list_crops_rule(tmp_path):
    _write_crops(tmp_path, np.random.default_rng(10))
    paths, ids, meta, ignored = list_crops(tmp_path)
    assert len(paths) == 10 and ignored == 1
    by_path = {m["path"]: (i, m) for i, m in zip(ids, meta)}
    assert by_path["0042_walk.png"][0] == 42
    assert by_path["rgb/0005/c2_0001.jpg"] == (5, {"path": "rgb/0005/c2_0001.jpg", "cam": 2, "modality": "rgb"})
    assert by_path["ir/8/c1_0000.jpg"][1]["modality"] == "ir"
    assert by_path["17/c3_0002.jpg"] == (17, {"path": "17/c3_0002.jpg", "cam": 3})
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "a.jpg").write_bytes((tmp_path / "0042_walk.png").read_bytes())
    _, ids2, _, _ = list_crops(tmp_path)
    assert all(isinstance(i, str) for i in ids2) and "alice" in ids2 and "0042" in ids2


def _cli():
    from mvd_edge.cli import app as root  # the real root app: `mvd-edge gallery ...`

    return root


def _text(result) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def test_cli_build_and_search(tmp_path, tiny_onnx):
    rng = np.random.default_rng(11)
    crops = tmp_path / "crops"
    _write_crops(crops, rng)
    out = tmp_path / "gal"
    runner, app = CliRunner(), _cli()
    r = runner.invoke(app, ["gallery", "build", str(crops), "--model", str(tiny_onnx), "--out", str(out),
                            "--index", "flat"])
    assert r.exit_code == 0, r.output
    assert "10 crops of 4 ids" in _text(r)
    side = json.loads((out / "gallery.json").read_text())
    assert side["kind"] == "flat" and side["count"] == 10 and side["info"]["embedder"]["engine"] == str(tiny_onnx)
    # the output policy: an existing gallery is not replaced without --overwrite
    r = runner.invoke(app, ["gallery", "build", str(crops), "--model", str(tiny_onnx), "--out", str(out)])
    assert r.exit_code == 2 and "--overwrite" in _text(r)
    r = runner.invoke(app, ["gallery", "build", str(crops), "--model", str(tiny_onnx), "--out", str(out),
                            "--index", "ivf", "--overwrite"])
    assert r.exit_code == 0, r.output
    assert "requested ivf" in _text(r) and "built flat" in _text(r)  # 10 crops cannot train IVF: said so
    assert json.loads((out / "gallery.json").read_text())["requested_kind"] == "ivf"
    # a query that is one of the gallery's own crops finds itself first, at cosine 1
    query = crops / "rgb" / "0005" / "c2_0001.jpg"
    r = runner.invoke(app, ["gallery", "search", str(out), "--model", str(tiny_onnx), "--query", str(query),
                            "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)["queries"]
    assert len(res) == 1 and len(res[0]["results"]) == 3
    top = res[0]["results"][0]
    assert top["id"] == 5 and top["metadata"]["path"] == "rgb/0005/c2_0001.jpg" and top["score"] > 0.9999
    assert res[0]["results"][1]["score"] < top["score"]
    # a folder of queries, table output
    r = runner.invoke(app, ["gallery", "search", str(out), "--model", str(tiny_onnx), "--query", str(crops / "17")])
    assert r.exit_code == 0, r.output
    assert _text(r).count("top 10 of 10") == 3 and "path=17/c1_0000.jpg" in _text(r)
    # user errors are one line, exit 2
    r = runner.invoke(app, ["gallery", "search", str(tmp_path / "nope"), "--model", str(tiny_onnx), "--query",
                            str(query)])
    assert r.exit_code == 2 and "gallery sidecar not found" in _text(r)
    r = runner.invoke(app, ["gallery", "build", str(crops), "--model", str(tiny_onnx), "--out", str(tmp_path / "g2"),
                            "--index", "lsh"])
    assert r.exit_code == 2 and "--index must be one of" in _text(r)
