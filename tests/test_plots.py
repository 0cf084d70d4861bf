"""PNG plots are optional: without matplotlib the JSON results are written and one message says so."""

from __future__ import annotations

import json
import sys

import pytest

from mvd_edge.core import plots
from mvd_edge.deploy.profile import save_profile

RESULTS = {"backend": "ort", "precision": "fp32", "recipe": "full",
           "batches": {"1": {"samples_ms": {"preprocess": [0.1, 0.2], "infer": [1.0, 1.2], "total": [1.2, 1.5]},
                             "throughput_crops_per_s": 700.0},
                       "8": {"samples_ms": {"preprocess": [0.5, 0.6], "infer": [3.0, 3.1], "total": [3.6, 3.8]},
                             "throughput_crops_per_s": 2100.0}}}


def test_profile_writes_json_and_pngs_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    paths = save_profile(RESULTS, tmp_path)
    assert set(paths) == {"json", "latency_png", "throughput_png"}
    assert all(p.stat().st_size > 1000 for k, p in paths.items() if k != "json")


def test_without_matplotlib_plots_are_skipped_with_a_message(tmp_path, monkeypatch, capsys):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(plots._warned, "done", False)
    with pytest.warns(plots.PlotsSkipped, match=r"mvd-edge\[plots\]"):
        paths = save_profile(RESULTS, tmp_path)
    assert set(paths) == {"json"} and json.loads(paths["json"].read_text())["backend"] == "ort"
    assert not list(tmp_path.glob("*.png"))
    assert "PNG plots skipped" in capsys.readouterr().err
