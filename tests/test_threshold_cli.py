"""The operating point travels with the engine: calibrate-threshold writes it, match uses it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mvd_edge.match.config import MatcherConfig, resolve
from mvd_edge.runtime.sidecar import EngineError, read_sidecar, set_operating_point

EDGE = Path(__file__).parent / "data" / "edge"
DEFAULT_THRESHOLD = MatcherConfig().association.threshold


def settings(info, **given):
    """``resolve`` of a config whose ``association`` keys ``given`` were set by the user, as a flat dict."""
    r = resolve(MatcherConfig().updated({f"association.{k}": v for k, v in given.items()}), info)
    return {**r.config.as_dict()["association"], "source": r.source, "warnings": r.warnings}


@pytest.fixture(scope="module")
def app():
    from mvd_edge.cli import app as root

    return root


@pytest.fixture()
def engine(tmp_path):
    from mvd_edge.runtime.engine import build_engine

    src = tmp_path / "model.onnx"
    shutil.copy(EDGE / "tiny.onnx", src)
    out = tmp_path / "model.ort.onnx"
    build_engine(src, out, backend="ort", device="cpu")
    return out


def test_resolve_order_of_precedence():
    point = {"operating_point": {"threshold": 0.17, "margin": 0.02, "target_precision": 0.9, "identities": 40}}
    s = settings(point)
    assert (s["threshold"], s["margin"], s["warnings"]) == (0.17, 0.02, []) and "sidecar" in s["source"]
    s = settings(point, threshold=0.3)
    assert (s["threshold"], s["margin"]) == (0.3, 0.0)
    assert s["source"] == "threshold from --set; margin 0 (default)"
    s = settings(point, margin=0.1)
    assert (s["threshold"], s["margin"]) == (0.17, 0.1) and s["source"].endswith("margin from --set")
    s = settings({"backend": "ort"})
    assert s["threshold"] == DEFAULT_THRESHOLD and s["source"].startswith("default threshold")
    assert "calibrate-threshold" in s["warnings"][0]
    assert settings(None)["threshold"] == DEFAULT_THRESHOLD


def test_an_unreached_or_malformed_operating_point_is_not_passed_off_as_good():
    s = settings({"operating_point": {"threshold": 0.93, "margin": 0.0, "reached": False, "precision": 0.6,
                                      "target_precision": 0.9}})
    assert s["threshold"] == 0.93 and "did not reach" in s["warnings"][0] and "not reached" in s["source"]
    for bad in ({"operating_point": {"threshold": "0.2", "margin": 0}}, {"operating_point": [0.2]}):
        with pytest.raises(EngineError, match="operating_point"):
            settings(bad)


def test_operating_point_is_stored_and_the_sidecar_stays_valid(engine):
    before = read_sidecar(engine)
    set_operating_point(engine, {"threshold": 0.123, "margin": 0.0, "target_precision": 0.9})
    after = read_sidecar(engine)  # hash and size checks still pass
    assert after["operating_point"]["threshold"] == 0.123
    assert after["engine_sha256"] == before["engine_sha256"] and after["backend"] == before["backend"]
    assert after["created"] == before["created"]  # the build time is kept
    assert not list(engine.parent.glob(".*.tmp-*"))  # atomic write, no temp left
    with pytest.raises(EngineError, match="numeric 'threshold'"):
        set_operating_point(engine, {"margin": 0.0})


def _match(app, engine, tmp_path, *extra):
    v = EDGE / "video"
    summary = tmp_path / "summary.json"
    r = CliRunner().invoke(app, ["match", "--ir", str(v / "ir.mp4"), "--rgb", str(v / "rgb.mp4"), "--model", str(engine),
                                 "--set", f"detector.ir_boxes={v / 'ir.mot.txt'}",
                                 "--set", f"detector.rgb_boxes={v / 'rgb.mot.txt'}", "--no-status",
                                 "--set", f"outputs.summary_json={summary}", "--overwrite", *extra])
    assert r.exit_code == 0, r.output
    return r.output, json.loads(summary.read_text())["config"]["association"]


def test_match_uses_the_sidecar_threshold_unless_given(app, engine, tmp_path):
    out, config = _match(app, engine, tmp_path)
    assert config["threshold"] == DEFAULT_THRESHOLD and "no operating point" in out  # warned fallback
    set_operating_point(engine, {"threshold": 0.123, "margin": 0.01, "target_precision": 0.9, "identities": 12})
    out, config = _match(app, engine, tmp_path)
    assert (config["threshold"], config["margin"]) == (0.123, 0.01)
    assert "threshold 0.123, margin 0.010 (threshold from the engine sidecar" in " ".join(out.split())
    out, config = _match(app, engine, tmp_path, "--set", "association.threshold=0.4")
    assert (config["threshold"], config["margin"]) == (0.4, 0.0) and "threshold from --set" in out


def test_calibrate_threshold_end_to_end(app, engine, tmp_path):
    from mvd_edge.synth.dataset import write_sysu

    root = tmp_path / "ids"
    write_sysu(root, n_ids=12, images_per_cam=2, size=(64, 32), seed=5)
    r = CliRunner().invoke(app, ["calibrate-threshold", str(engine), "--dataset", "sysu", "--root", str(root),
                                 "--scenes", "40", "--people", "4", "--precision", "0.5"])
    assert r.exit_code == 0, r.output
    point = read_sidecar(engine)["operating_point"]
    assert point["data"]["split"] == "all" and point["data"]["images"] > 0 and point["people_per_scene"] == 4
    assert -1.0 <= point["threshold"] <= 1.0 and point["target_precision"] == 0.5
    assert point["reached"] == (point["precision"] >= 0.5)
    fast = point["fast"]  # the fast-pairing point: its own search on 3-crop tracks at precision 0.99
    assert fast["track_images"] == 3 and fast["target_precision"] == 0.99
    assert fast["reached"] == (fast["precision"] >= 0.99 and fast["accepted"] >= fast["min_pairs"])
    assert "fast pairing: " in r.output
    early = point["fast_early"]  # the same on single-crop tracks, printed as it came out
    assert early["track_images"] == 1 and early["target_precision"] == 0.99
    out = " ".join(r.output.split())
    assert (f"early pairing: threshold {early['threshold']:.4f}" in out) == early["reached"]
    assert ("early pairing: none" in out) == (not early["reached"])
    r = CliRunner().invoke(app, ["calibrate-threshold", str(engine), "--root", str(root), "--split", "nope"])
    assert r.exit_code == 2 and "unknown split" in r.output
    r = CliRunner().invoke(app, ["calibrate-threshold", str(EDGE / "tiny.onnx"), "--root", str(root)])
    assert r.exit_code == 2 and "no sidecar" in r.output  # refused before any embedding work


def test_resolve_carries_the_fast_point_only_when_it_was_reached():
    base = {"threshold": 0.17, "margin": 0.02, "target_precision": 0.9}
    fast = {"threshold": 0.4, "margin": 0.05, "reached": True}
    s = settings({"operating_point": {**base, "fast": fast}})
    assert (s["fast_threshold"], s["fast_margin"]) == (0.4, 0.05) and "fast pairing at 0.400" in s["source"]
    assert settings({"operating_point": {**base, "fast": fast}}, fast_pairing=False)["fast_threshold"] is None
    assert settings({"operating_point": {**base, "fast": fast}}, fast_threshold=0.8)["fast_threshold"] == 0.8
    s = settings({"operating_point": {**base, "fast": {"threshold": 0.9, "margin": 0.1, "reached": False}}})
    assert s["fast_threshold"] is None and "fast" not in s["source"]
    assert settings({"operating_point": base})["fast_threshold"] is None  # calibrated before fast points
    assert settings(None)["fast_threshold"] is None
    for bad in ([0.4], {"threshold": "0.4", "margin": 0, "reached": True}):
        with pytest.raises(EngineError, match="operating_point"):
            settings({"operating_point": {**base, "fast": bad}})
        with pytest.raises(EngineError, match="operating_point.fast_early"):
            settings({"operating_point": {**base, "fast_early": bad}})
    s = settings({"operating_point": {**base, "fast_early": {"threshold": 0.7, "margin": 0.1, "reached": True}}})
    assert (s["early_threshold"], s["early_margin"], s["fast_threshold"]) == (0.7, 0.1, None)
    assert "early pairing at 0.700" in s["source"]
    s = settings({"operating_point": {**base, "fast_early": {"threshold": 0.7, "margin": 0.1, "reached": False}}})
    assert s["early_threshold"] is None and settings(None)["early_threshold"] is None


def test_match_takes_the_fast_point_from_the_sidecar_and_can_be_told_not_to(app, engine, tmp_path):
    set_operating_point(engine, {"threshold": 0.2, "margin": 0.0, "target_precision": 0.9,
                                 "fast": {"threshold": 0.6, "margin": 0.05, "reached": True},
                                 "fast_early": {"threshold": 0.8, "margin": 0.0, "reached": True}})
    out, config = _match(app, engine, tmp_path)
    assert (config["fast_threshold"], config["fast_margin"], config["report_coast"]) == (0.6, 0.05, 1)
    assert config["early_threshold"] == 0.8
    assert "fast pairing at 0.600" in " ".join(out.split())
    out, config = _match(app, engine, tmp_path, "--set", "association.fast_pairing=false",
                         "--set", "association.report_coast=0")
    assert config["fast_threshold"] is None and config["early_threshold"] is None and config["report_coast"] == 0
    r = CliRunner().invoke(app, ["match", "--ir", "cam0", "--rgb", "cam1", "--model", str(engine),
                                 "--set", "association.report_coast=-1"])
    assert r.exit_code == 2 and "association.report_coast must be an integer in [0, 100000]" in r.output


def test_print_config_says_where_each_value_came_from(app, engine, tmp_path):
    set_operating_point(engine, {"threshold": 0.2, "margin": 0.01, "target_precision": 0.9,
                                 "same_modality": {"threshold": 0.7, "reached": True}})
    (tmp_path / "m.yaml").write_text("association:\n  hysteresis: 4\ntrack:\n  split: 2.0\n")
    r = CliRunner().invoke(app, ["match", "--model", str(engine), "--config", str(tmp_path / "m.yaml"), "--set",
                                 "association.margin=0.1", "--set", "track.split=3", "--print-config"])
    assert r.exit_code == 0, r.output
    lines = dict(line.split(" = ", 1) for line in r.output.splitlines() if " = " in line)
    assert lines["association.threshold"] == "0.2  (engine sidecar)"
    assert lines["association.margin"] == "0.1  (--set)"  # given: the sidecar's margin does not replace it
    assert lines["association.hysteresis"] == f"4  (file {tmp_path / 'm.yaml'})"
    assert lines["track.split"] == "3.0  (--set)"  # --set wins over the file
    assert lines["association.stickiness"] == "0.05  (default)" and lines["detector.name"] == '"auto"  (default)'
    assert lines["site.same_threshold"] == "0.6  (default)"  # a pair run: the site's threshold is not resolved
    r = CliRunner().invoke(app, ["match", "--model", str(engine), "--cameras", str(tmp_path / "m.yaml"),
                                 "--print-config"])  # a site (the cameras file is not read to print the config)
    assert r.exit_code == 0, r.output
    assert "site.same_threshold = 0.7  (engine sidecar)" in r.output
