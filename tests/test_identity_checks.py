"""Issue 34, class 5: the model's identity (its checkpoint hash) is recorded by what embeds and
checked on use; an engine that lost its sidecar says so instead of silently using 0.5."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_checkpoint
from typer.testing import CliRunner

pytest.importorskip("faiss")


def _crops(root):
    import cv2

    rng = np.random.default_rng(3)
    for pid in (1, 2, 3):
        for j in range(2):
            p = root / str(pid) / f"c1_{j:04d}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(p), rng.integers(0, 256, size=(80, 40, 3), dtype=np.uint8))
    return root


def _gallery(tmp_path, model):
    from mvd_edge.cli import app

    crops, out = _crops(tmp_path / "crops"), tmp_path / "gal"
    r = CliRunner().invoke(app, ["gallery", "build", str(crops), "--model", str(model), "--out", str(out),
                                 "--index", "flat"])
    assert r.exit_code == 0, r.output
    return app, crops, out


def _search(app, gallery, model, query):
    return CliRunner().invoke(app, ["gallery", "search", str(gallery), "--model", str(model), "--query", str(query),
                                    "--json"])


def test_gallery_records_its_model_hash_and_refuses_another_models_engine(tmp_path, tiny_onnx):
    from mvd_edge.core.graphmeta import GraphMeta
    from mvd_edge.deploy.export import export_onnx

    app, crops, gallery = _gallery(tmp_path, tiny_onnx)
    want = GraphMeta.from_onnx(tiny_onnx).checkpoint_sha256
    assert json.loads((gallery / "gallery.json").read_text())["info"]["embedder"]["checkpoint_sha256"] == want
    other = tmp_path / "other.onnx"
    export_onnx(make_checkpoint(tmp_path / "other.pt", seed=3), other)
    have = GraphMeta.from_onnx(other).checkpoint_sha256
    r = _search(app, gallery, other, crops / "1" / "c1_0000.jpg")
    assert r.exit_code == 2, r.output
    msg = " ".join(r.output.split())
    assert want[:12] in msg and have[:12] in msg and "rebuild the gallery" in msg and "Traceback" not in msg
    r = _search(app, gallery, tiny_onnx, crops / "1" / "c1_0000.jpg")  # its own model: accepted
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["queries"][0]["results"][0]["score"] > 0.9999


def test_a_gallery_without_a_model_hash_is_refused_not_trusted(tmp_path, tiny_onnx):
    app, crops, gallery = _gallery(tmp_path, tiny_onnx)
    side = json.loads((gallery / "gallery.json").read_text())
    del side["info"]["embedder"]["checkpoint_sha256"]  # as galleries were written before
    (gallery / "gallery.json").write_text(json.dumps(side))
    r = _search(app, gallery, tiny_onnx, crops / "1" / "c1_0000.jpg")
    assert r.exit_code == 2 and "records no model hash" in " ".join(r.output.split())


def test_an_engine_without_its_sidecar_says_why_its_threshold_is_the_default(tmp_path, tiny_onnx):
    from mvd_edge.match.config import MatcherConfig, resolve
    from mvd_edge.runtime import load_embedder
    from mvd_edge.runtime.engine import build_engine
    from mvd_edge.runtime.sidecar import set_operating_point, sidecar_path

    engine = tmp_path / "model.ort.onnx"
    build_engine(tiny_onnx, engine, backend="ort")
    set_operating_point(engine, {"threshold": 0.71, "margin": 0.02})
    emb = load_embedder(engine)
    assert resolve(MatcherConfig(), emb.info).config.association.threshold == 0.71
    sidecar_path(engine).unlink()  # the calibrated threshold lived there
    op = resolve(MatcherConfig(), load_embedder(engine).info)
    default = MatcherConfig().association.threshold
    (warning,) = op.warnings
    assert op.config.association.threshold == default
    assert str(sidecar_path(engine)) in warning and "missing" in warning
    assert "calibrated threshold is not known" in warning and str(default) in warning
