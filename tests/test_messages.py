"""Issue 34, class 7: inputs are checked before any work, and only outputs a run writes are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner


def _app():
    from mvd_edge.cli import app

    return app


def _text(result) -> str:
    return " ".join(result.output.split())


@pytest.mark.parametrize("bad", ["missing.pt", "garbage.pt"])
def test_train_detector_checks_init_before_rendering_anything(tmp_path, monkeypatch, bad):
    import mvd_edge.synth.video as synth_video

    def no_rendering(*args, **kwargs):
        raise AssertionError("rendered training videos before checking --init")

    monkeypatch.setattr(synth_video, "write_synth_video", no_rendering)
    (tmp_path / "garbage.pt").write_bytes(b"not a detector")
    init = tmp_path / bad
    r = CliRunner().invoke(_app(), ["train-detector", "--out", str(tmp_path / "det"), "--init", str(init)])
    assert r.exit_code == 2, r.output
    assert str(init) in _text(r) and "Traceback" not in r.output
    assert not (tmp_path / "det" / "videos").exists()


def test_verify_chart_path_follows_the_json_path():
    from mvd_edge.deploy.verify import chart_path

    pytest.importorskip("matplotlib")
    assert chart_path(Path("runs/a/new.json"), None) == Path("runs/a/new.png")
    assert chart_path(Path("runs/a/new.json"), Path("x/chart.svg")) == Path("x/chart.svg")


def test_a_second_verify_with_a_new_json_is_not_refused_for_the_first_runs_chart(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    first = Path("runs/verify")
    first.mkdir(parents=True)
    (first / "verify.json").write_text("{}")  # the first run's default outputs
    (first / "verify.png").write_bytes(b"png")
    missing = tmp_path / "no-such.pt"  # stops the run right after the output checks, before any work
    r = CliRunner().invoke(_app(), ["verify", str(missing), "m.onnx", "--json", "runs/verify/second.json"])
    assert r.exit_code == 2 and "checkpoint not found" in _text(r), r.output
    # the chart this run would write is still protected
    (first / "second.png").write_bytes(b"png")
    r = CliRunner().invoke(_app(), ["verify", str(missing), "m.onnx", "--json", "runs/verify/second.json"])
    assert r.exit_code == 2 and "second.png: already exists" in _text(r), r.output
