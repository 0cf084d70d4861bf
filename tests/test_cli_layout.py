"""The CLI package: every command still registered, light ``--help``, one error base class, one size parser.

These are cheap (no training run): they pin the contract of ``mvd_edge.cli`` and
``mvd_edge.core.errors`` that ``tests/test_cli.py`` exercises end to end.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner

from mvd_edge.cli import app, main
from mvd_edge.core.errors import DeviceUnavailable, MissingExtra, MvdEdgeError, TensorRTUnavailable, UsageError, require
from mvd_edge.core.sizes import MIN_SIDE, parse_size

runner = CliRunner()

# every command of the single-module CLI (mvd_edge/cli.py + match/commands.py) before the split
OLD_COMMANDS = ["synth", "train", "distill", "eval", "export", "fp16", "int8", "build-engine", "verify", "calibrate-threshold",
                "profile", "bench", "export-triton", "demo", "match", "synth-video", "train-detector", "score-matches"]
GROUPS = ["gallery"]  # the one command group (`mvd-edge gallery build|search`), listed after the commands
HEAVY = ["cv2", "torch", "onnxruntime", "onnx", "scipy", "matplotlib"]


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


# ----------------------------------------------------------------------------- registration


def test_every_old_command_is_a_top_level_command_in_the_old_order():
    group = get_command(app)
    assert list(group.commands) == OLD_COMMANDS + ["doctor"] + GROUPS
    nested = [name for name, cmd in group.commands.items() if isinstance(cmd, type(group))]
    assert nested == GROUPS  # no other nested groups
    assert sorted(group.commands["gallery"].commands) == ["build", "search"]
    res = runner.invoke(app, ["--help"], terminal_width=200)
    assert res.exit_code == 0
    listed = [line.split()[1] for line in res.output.splitlines()
              if line.startswith("│ ") and not line.startswith("│  ") and len(line.split()) > 2]  # wrapped help: indented
    assert [n for n in listed if n in OLD_COMMANDS] == OLD_COMMANDS


def test_console_script_and_python_m_reach_the_same_main():
    (ep,) = [e for e in metadata.entry_points(group="console_scripts") if e.name == "mvd-edge"]
    assert ep.value == "mvd_edge.cli:main" and ep.load() is main
    proc = subprocess.run([sys.executable, "-m", "mvd_edge.cli", "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "score-matches" in proc.stdout


# ----------------------------------------------------------------------------- lazy imports


def test_help_imports_no_heavy_module():
    code = f"""
import json, sys
from mvd_edge.cli import main
for argv in [[]] + [[c] for c in {OLD_COMMANDS!r}]:
    sys.argv = ["mvd-edge", *argv, "--help"]
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None), (argv, exc.code)
print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    assert "Usage: mvd-edge score-matches" in proc.stdout  # the loop really printed every command's help


def test_match_package_is_lazy_with_the_same_public_names():
    code = """
import json, sys
import mvd_edge.match as m
before = [x for x in ("cv2", "scipy") if x in sys.modules]
values = {n: getattr(m, n) for n in m.__all__}
print(json.dumps({"before": before, "after": "cv2" in sys.modules, "names": sorted(values),
                  "run_match": values["run_match"].__module__}))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["before"] == [] and out["after"] is True
    assert out["run_match"] == "mvd_edge.match.pipeline"
    assert out["names"] == sorted([
        "EVENT_SCHEMA_VERSION", "ByteTracker", "CrossModalAssociator", "Detections", "EventWriter", "FeatureBank",
            "ForegroundDetector",
        "FramePacket", "FrameSource", "HogDetector", "MatcherConfig", "Matcher", "MotBoxes", "OnnxDetector",
        "PairPolicy", "PairUpdate", "PassthroughTracker", "SourceError", "SourceSpec", "Track", "load_cameras", "make_detector",
        "parse_source", "read_events", "run_match", "load_matcher_config", "resolve",
        # the site matcher and the network sinks
        "MatchMetrics", "MqttSink", "SiteCamera", "SitePolicy", "Runner", "TimeSync", "WebhookSink"])
    import mvd_edge.match

    with pytest.raises(AttributeError, match="no_such_name"):
        mvd_edge.match.no_such_name  # noqa: B018


# ----------------------------------------------------------------------------- user errors vs bugs


def test_missing_engine_is_one_line_exit_2(tmp_path):
    res = runner.invoke(app, ["profile", str(tmp_path / "missing.onnx")])
    assert res.exit_code == 2
    assert _lines(res.output) == [f"error: engine not found: {tmp_path / 'missing.onnx'}"]
    assert "Traceback" not in res.output


def test_debug_env_shows_the_user_error(tmp_path, monkeypatch):
    from mvd_edge.runtime import EngineError

    monkeypatch.setenv("MVD_EDGE_DEBUG", "1")
    res = runner.invoke(app, ["profile", str(tmp_path / "missing.onnx")])
    assert isinstance(res.exception, EngineError) and res.exit_code == 1


@pytest.mark.parametrize("bug", [KeyError("batches"), ValueError("operands could not be broadcast"),
                                 RuntimeError("internal state")])
def test_an_internal_bug_keeps_its_traceback(tmp_path, monkeypatch, bug):
    import mvd_edge.runtime

    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(mvd_edge.runtime, "load_embedder", broken)
    engine = tmp_path / "model.onnx"
    engine.write_bytes(b"")
    res = runner.invoke(app, ["profile", str(engine)])
    assert res.exception is bug and res.exit_code == 1  # not turned into a one-liner with exit code 2
    with pytest.raises(type(bug)):
        runner.invoke(app, ["profile", str(engine)], catch_exceptions=False)


def test_an_internal_bug_prints_a_traceback_from_the_console_script():
    proc = subprocess.run([sys.executable, "-c", "import sys; from mvd_edge.cli import main; "
                           "sys.argv = ['mvd-edge', 'score-matches', 'x', 'y', '--iou', '0.5']; "
                           "import mvd_edge.eval.scoring as s; s.score_matches = lambda *a, **k: {}['precision']; "
                           "main()"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError: 'precision'" in proc.stderr


def test_user_error_message_is_printed_verbatim_not_as_markup(monkeypatch):
    import mvd_edge.eval.scoring

    def missing(*args, **kwargs):
        raise MissingExtra("pycuda is not installed: pip install 'mvd-edge[trt]' [/b]")

    monkeypatch.setattr(mvd_edge.eval.scoring, "score_matches", missing)
    res = runner.invoke(app, ["score-matches", "ev.jsonl", "gt.json"])
    assert res.exit_code == 2
    assert _lines(res.output) == ["error: pycuda is not installed: pip install 'mvd-edge[trt]' [/b]"]


def test_former_value_errors_of_user_input_are_still_one_line(tmp_path):
    bad = tmp_path / "events.jsonl"
    bad.write_text("{not json\n")
    gt = tmp_path / "gt.json"
    gt.write_text("{}")
    res = runner.invoke(app, ["score-matches", str(bad), str(gt)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert len(_lines(res.output)) == 1 and "error:" in res.output


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the message where CUDA is missing")
def test_cuda_requested_without_cuda_is_one_line(tmp_path):
    res = runner.invoke(app, ["eval", str(tmp_path / "x.pt"), "--device", "cuda"])
    assert res.exit_code == 2 and "CUDA is not available" in res.output and len(_lines(res.output)) == 1


# ----------------------------------------------------------------------------- the error classes


@pytest.mark.parametrize("module, name, base", [
    ("mvd_edge.core.config", "ConfigError", ValueError),
    ("mvd_edge.core.graphmeta", "MetadataError", ValueError),
    ("mvd_edge.runtime.sidecar", "EngineError", RuntimeError),
    ("mvd_edge.match.sources", "SourceError", RuntimeError),
    ("mvd_edge.quant.manifest", "ManifestError", ValueError),
    ("mvd_edge.quant.ranges", "RangesError", RuntimeError),
    ("mvd_edge.data.base", "DatasetError", ValueError),
    ("mvd_edge.model.checkpoint", "CheckpointError", ValueError),
    ("mvd_edge.model.net", "WeightsError", ValueError),
    ("mvd_edge.deploy.export", "ExportError", RuntimeError),
    ("mvd_edge.core.errors", "UsageError", ValueError),
    ("mvd_edge.core.errors", "DeviceUnavailable", RuntimeError),
    ("mvd_edge.core.errors", "MissingExtra", ImportError),
])
def test_user_error_classes_share_the_base_and_keep_theirs(module, name, base):
    import importlib

    cls = getattr(importlib.import_module(module), name)
    assert issubclass(cls, MvdEdgeError) and issubclass(cls, base)


def test_tensorrt_unavailable_is_one_class():
    from mvd_edge.kernels import trt_plugin
    from mvd_edge.runtime import trt_compat

    assert trt_compat.TensorRTUnavailable is trt_plugin.TensorRTUnavailable is TensorRTUnavailable
    for base in (MissingExtra, MvdEdgeError, ImportError, RuntimeError):
        assert issubclass(TensorRTUnavailable, base)


def test_user_facing_messages_raise_user_errors():
    from mvd_edge.core.spec import check_recipe
    from mvd_edge.data.registry import load_dataset
    from mvd_edge.match.sources import parse_source

    with pytest.raises(UsageError, match="unknown recipe"):
        check_recipe("zz")
    with pytest.raises(UsageError, match="unknown data set"):
        load_dataset("nope", ".")
    with pytest.raises(UsageError, match="unknown source"):
        parse_source("lobby")
    assert issubclass(DeviceUnavailable, RuntimeError)


def test_require_imports_or_names_the_extra(tmp_path, monkeypatch):
    import json as json_module

    assert require("json", "train") is json_module
    with pytest.raises(MissingExtra, match=r"^mvd_edge_no_such_mod is not installed: pip install 'mvd-edge\[quant\]'$"):
        require("mvd_edge_no_such_mod", "quant")
    monkeypatch.setitem(sys.modules, "mvd_edge_blocked", None)  # as tests block an installed package
    with pytest.raises(MissingExtra, match=r"mvd-edge\[trt\]"):
        require("mvd_edge_blocked", "trt")
    # installed, but broken inside: a real problem, not a missing extra
    (tmp_path / "mvd_edge_broken_mod.py").write_text("import mvd_edge_missing_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ModuleNotFoundError) as info:
        require("mvd_edge_broken_mod", "train")
    assert not isinstance(info.value, MissingExtra) and info.value.name == "mvd_edge_missing_dependency"


# ----------------------------------------------------------------------------- one size parser


@pytest.mark.parametrize("text, size", [("256x128", (256, 128)), ("64X32", (64, 32)), (" 360 x 640 ", (360, 640)),
                                        (f"{MIN_SIDE}x{MIN_SIDE}", (MIN_SIDE, MIN_SIDE))])
def test_parse_size_good(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["big", "", "256", "256x", "x128", "256x128x3", "2.5x8", "256,128"])
def test_parse_size_malformed(text):
    with pytest.raises(UsageError, match=r"--detector-size must look like HEIGHTxWIDTH \(e\.g\. 256x128\)"):
        parse_size(text, "--detector-size")


@pytest.mark.parametrize("text", [f"{MIN_SIDE - 1}x128", f"128x{MIN_SIDE - 1}", "0x0", "-64x32"])
def test_parse_size_too_small(text):
    with pytest.raises(UsageError, match=f"size too small: '{text}'.*>= {MIN_SIDE}"):
        parse_size(text)


@pytest.mark.parametrize("args, message", [
    (["synth", "--size", "big"], "HEIGHTxWIDTH"),
    (["synth", "--size", "4x4"], "too small"),
    (["synth-video", "--size", "big"], "HEIGHTxWIDTH"),
    (["synth-video", "--size", "4x4"], "too small"),  # the same rule for every size option
    (["match", "--ir", "cam0", "--rgb", "cam1", "--model", "colorhist", "--set", "detector.size=640x"], "HEIGHTxWIDTH"),
])
def test_every_size_option_uses_the_one_parser(args, message, tmp_path):
    res = runner.invoke(app, args + (["--out", str(tmp_path)] if args[0].startswith("synth") else []))
    assert res.exit_code == 2 and message in res.output and "Traceback" not in res.output
    assert not any(tmp_path.iterdir())  # rejected before anything was written


def test_cli_wraps_the_parser_as_a_typer_usage_error():
    from mvd_edge.cli._common import parse_int_list
    from mvd_edge.cli._common import parse_size as cli_parse_size

    assert cli_parse_size("128x64") == (128, 64)
    with pytest.raises(typer.BadParameter, match="too small"):
        cli_parse_size("4x4")
    assert parse_int_list("1, 8,32", "--batch") == [1, 8, 32]
    for bad in ("1,x", "0,2", ""):
        with pytest.raises(typer.BadParameter, match="--batch"):
            parse_int_list(bad, "--batch")


@pytest.mark.parametrize("batch", ["1,a,32", "1,8", "8,1,32"])
def test_a_malformed_batch_profile_is_one_line(tmp_path, batch):
    from pathlib import Path

    model = Path(__file__).parent / "data" / "edge" / "tiny.onnx"
    r = runner.invoke(app, ["build-engine", str(model), "--out", str(tmp_path / "x.onnx"), "--batch", batch])
    assert r.exit_code == 2 and "--batch" in r.output and "Traceback" not in r.output, r.output
