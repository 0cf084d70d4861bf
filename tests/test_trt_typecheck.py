"""mypy on mvd-edge's TensorRT code against the type stubs of the real API (tensorrt-stubs, TensorRT 10.13).

The stubs cannot be a plain test dependency: ``tensorrt-stubs`` requires ``tensorrt==10.13.0.35`` (the
whole library and its CUDA 12 wheels), and installed without it, its ``tensorrt/__init__.pyi`` leaves an
empty ``tensorrt`` namespace package that makes ``import tensorrt`` succeed. So they are installed
apart and named here::

    pip install --no-deps --target .trt-stubs 'tensorrt-stubs==10.13.0.35.1'   # in the repository root
    python -m pytest tests/test_trt_typecheck.py

(``MVD_TRT_STUBS=<folder>`` names another folder; an ordinary install of tensorrt-stubs, next to
TensorRT itself, is found too). The published stubs do
not parse as they are (four methods have a parameter named ``in``, ``add_scale_nd`` has a parameter
without a default after defaulted ones): the test checks against a copy with those two repairs, and
ignores errors inside the stubs themselves.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "mvd_edge" / "runtime").glob("trt_*.py")) + [
    "mvd_edge/kernels/trt_plugin.py"]
INSTALL = "pip install --no-deps --target .trt-stubs 'tensorrt-stubs==10.13.0.35.1' (in the repository root)"
MYPY_INI = """[mypy]
check_untyped_defs = True
follow_imports = silent

[mypy-tensorrt,tensorrt.*,tensorrt_bindings,tensorrt_bindings.*]
ignore_errors = True

[mypy-torch,torch.*,triton,triton.*,torchvision,torchvision.*]
follow_imports = skip
"""


def _stubs_dir() -> Path:
    """The folder holding ``tensorrt/__init__.pyi`` and ``tensorrt_bindings/``, or a skip saying how to get it."""
    named = os.environ.get("MVD_TRT_STUBS")
    if named:
        path = Path(named).resolve()
        if not (path / "tensorrt" / "__init__.pyi").is_file():
            pytest.fail(f"MVD_TRT_STUBS={named} holds no tensorrt/__init__.pyi: {INSTALL}")
        return path
    if (ROOT / ".trt-stubs" / "tensorrt" / "__init__.pyi").is_file():
        return ROOT / ".trt-stubs"
    from importlib import metadata

    try:
        dist = metadata.distribution("tensorrt-stubs")
    except metadata.PackageNotFoundError:
        pytest.skip(f"the TensorRT type stubs are not installed: {INSTALL}")
    return Path(str(dist.locate_file("")))


def _repaired_copy(src: Path, dst: Path) -> Path:
    for package in ("tensorrt", "tensorrt_bindings"):
        for pyi in (src / package).glob("*.pyi"):
            text = pyi.read_text()
            text = re.sub(r"([(,]\s*)in: ", r"\1in_: ", text)  # `in` is a keyword: rename the parameter
            text = text.replace("power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = ...)")
            (dst / package).mkdir(parents=True, exist_ok=True)
            (dst / package / pyi.name).write_text(text)
    return dst


def _mypy(tmp_path: Path, files: list[str]) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy", reason="pip install mypy")
    stubs = _repaired_copy(_stubs_dir(), tmp_path / "stubs")
    ini = tmp_path / "mypy.ini"
    ini.write_text(MYPY_INI)
    env = {**os.environ, "MYPYPATH": str(stubs)}
    cmd = [sys.executable, "-m", "mypy", "--config-file", str(ini), "--cache-dir", str(tmp_path / "cache"), *files]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


def test_stubs_are_in_force(tmp_path):
    """A wrong call into TensorRT must be an error: the check below is against the stubs, not Any."""
    probe = tmp_path / "probe.py"
    probe.write_text("import tensorrt as trt\n\n"
                     "def f(config: trt.IBuilderConfig) -> None:\n"
                     "    config.set_timing_cache(b'cache')\n"
                     "    trt.Builder(trt.Logger()).create_network('strongly typed')\n")
    res = _mypy(tmp_path, [str(probe)])
    out = res.stdout + res.stderr
    assert res.returncode == 1, out
    assert 'Missing positional argument "ignore_mismatch"' in out and '"create_network"' in out, out


def test_tensorrt_code_typechecks_against_the_tensorrt_stubs(tmp_path):
    res = _mypy(tmp_path, FILES)
    assert res.returncode == 0, f"mypy on {FILES} against the TensorRT stubs:\n{res.stdout}{res.stderr}"


def _stub_methods(stubs: Path) -> dict[str, dict[str, list[list[str]]]]:
    """class -> method -> the parameter-name lists of its overloads, read from the stub source."""
    import ast

    tree = ast.parse((stubs / "tensorrt_bindings" / "tensorrt.pyi").read_text())
    out: dict[str, dict[str, list[list[str]]]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            names = [a.arg for a in fn.args.posonlyargs + fn.args.args][1:]
            out.setdefault(cls.name, {}).setdefault(fn.name, []).append(names)
    return out


def test_the_fakes_follow_the_tensorrt_stubs(tmp_path):
    """tests/trt_fake.py's TensorRT classes have the real classes' methods, with their parameter names."""
    import inspect

    from trt_fake import fake_tensorrt

    stubs = _stub_methods(_repaired_copy(_stubs_dir(), tmp_path / "stubs"))
    trt, _ = fake_tensorrt("10.3.0")
    checked = []
    for name in ("Logger", "Builder", "INetworkDefinition", "OnnxParser", "ParserError", "IBuilderConfig",
                 "ITimingCache", "IOptimizationProfile", "IHostMemory", "Runtime", "ICudaEngine", "IExecutionContext"):
        fake = getattr(trt, name)
        assert name in stubs, f"TensorRT has no class {name}"
        for attr, value in vars(fake).items():
            if attr.startswith("_") and attr != "__init__" or not callable(value) and not isinstance(value, property):
                continue
            if attr == "__init__" and attr not in stubs[name]:  # made by a factory (Builder.create_network...)
                continue
            assert attr in stubs[name], f"{name}.{attr} is not in TensorRT's API"
            if callable(value):
                params = list(inspect.signature(value).parameters)[1:]
                assert any(o[:len(params)] == params for o in stubs[name][attr]), (
                    f"{name}.{attr}{tuple(params)}: TensorRT's is one of {stubs[name][attr]}")
            checked.append(f"{name}.{attr}")
    assert len(checked) >= 28, checked
