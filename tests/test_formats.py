"""The formats table (mvd_edge.deploy.formats) and its readers agree: load_embedder's backend for each
format, build-engine's backends and precisions, bench's plan, and the file names the commands write."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import mvd_edge.runtime as runtime
from mvd_edge.cli import app
from mvd_edge.core.errors import UsageError
from mvd_edge.core.spec import PRECISIONS
from mvd_edge.deploy import formats
from mvd_edge.deploy.bench import plan_variants
from mvd_edge.deploy.formats import FORMATS


def test_rows_are_well_formed():
    assert len({f.name for f in FORMATS}) == len(FORMATS)
    for f in FORMATS:
        assert f.suffixes and set(f.precisions) <= set(PRECISIONS) and f.modules, f
    # every precision has its ONNX graph, and every INT8 flavour its own
    for p in PRECISIONS:
        assert formats.graph_format(p, "trt").precisions == (p,)
    assert formats.INT8_FLAVOURS == ("trt", "cpu")
    assert formats.ENGINE_BACKENDS == ("ort", "trt", "openvino")
    assert formats.BENCH_BACKENDS == ("torch", "ort", "trt", "openvino")
    # the backends that run a bare ONNX graph as it is (load_embedder(graph, backend=...), the detector)
    assert [f.backend for f in FORMATS if f.reads_onnx] == ["ort", "openvino"]


@pytest.fixture()
def opened(monkeypatch):
    """load_embedder with every backend's opener recording which backend it was asked for."""
    calls = []
    openers = {b: (lambda *a, _b=b, **k: calls.append(_b) or type("E", (), {"info": {}})())
               for b in runtime._OPENERS}
    monkeypatch.setattr(runtime, "_OPENERS", openers)
    return calls


def test_load_embedder_opens_each_format_with_its_backend(tmp_path, monkeypatch, opened):
    assert set(runtime._OPENERS) == {f.backend for f in FORMATS}
    monkeypatch.setattr(runtime, "read_sidecar", lambda p: {"backend": formats.for_path(p).backend})
    for f in FORMATS:
        for suffix in f.suffixes:
            if f.kind == formats.SERVED:
                runtime.load_embedder(f"{suffix}localhost:8001/model")
            else:
                path = tmp_path / f"m{suffix}"
                path.write_bytes(b"x")
                if f.kind == formats.ENGINE:
                    runtime.sidecar_path(path).write_text("{}")
                runtime.load_embedder(path)
            assert opened[-1] == f.backend, (f.name, suffix)
    # an engine that lost its sidecar: .engine refuses, .ort.onnx opens as the ONNX graph it is
    (tmp_path / "lost.engine").write_bytes(b"x")
    with pytest.raises(runtime.EngineError, match="no sidecar"):
        runtime.load_embedder(tmp_path / "lost.engine")
    (tmp_path / "lost.ort.onnx").write_bytes(b"x")
    runtime.load_embedder(tmp_path / "lost.ort.onnx")
    assert opened[-1] == "ort"


def test_file_names_round_trip_through_the_table(tmp_path):
    for p in PRECISIONS:
        for fl in formats.INT8_FLAVOURS:
            graph = formats.graph_path(tmp_path, "model", p, fl)
            assert formats.for_path(graph) == formats.graph_format(p, fl)
            for b in formats.ENGINE_BACKENDS:
                assert formats.for_path(formats.engine_path(graph, b)) == formats.engine_format(b)
    assert formats.graph_path(tmp_path, "model", "int8", "cpu").name == "model.int8-cpu.onnx"
    assert formats.engine_path(tmp_path / "model.fp16.onnx", "trt").name == "model.fp16.engine"
    with pytest.raises(UsageError, match="unknown INT8 flavour"):
        formats.graph_path(tmp_path, "model", "int8", "arm")


def test_build_engine_takes_the_tables_backends_and_precisions(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"x")
    run = CliRunner()
    bad = run.invoke(app, ["build-engine", str(model), "--precision", "int4"])
    assert bad.exit_code == 2 and f"choose one of {', '.join(PRECISIONS)}" in bad.output
    bad = run.invoke(app, ["build-engine", str(model), "--backend", "tvm"])
    assert bad.exit_code == 2 and f"choose one of {', '.join(formats.ENGINE_BACKENDS)}" in bad.output
    for p in PRECISIONS:  # accepted: they fail later, on the fake graph, not on the option
        res = run.invoke(app, ["build-engine", str(model), "--precision", p, *(["--calib", str(tmp_path)] * (p == "int8"))])
        assert "choose one of" not in res.output, res.output
    text = run.invoke(app, ["build-engine", "--help"], env={"COLUMNS": "250"}).output
    for b in formats.ENGINE_BACKENDS:
        assert f"{b} ({formats.engine_format(b).title})" in text


def test_bench_plan_skips_exactly_what_the_table_rules_out():
    run, skipped = plan_variants(formats.BENCH_BACKENDS, PRECISIONS, ["full"], [False], compiled=False,
                                 device="cuda")
    planned = {(v.backend, v.precision) for v in run} | {(v.backend, v.precision) for v, _ in skipped}
    assert planned == {(b, p) for b in formats.BENCH_BACKENDS for p in PRECISIONS}
    for v, reason in skipped:
        if v.precision not in formats.for_backend(v.backend).precisions:
            assert f"no {v.precision.upper()}" in reason
    for v in run:
        assert v.precision in formats.for_backend(v.backend).precisions
    with pytest.raises(UsageError, match="unknown precision"):
        plan_variants(["ort"], ["int4"], ["full"], [False], False, "cpu")
