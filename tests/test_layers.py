"""The layer contracts of pyproject.toml ([tool.importlinter]) hold, and they can fail.

``lint-imports`` (import-linter) reads every import statement of the package, lazy ones inside
functions included. The second test proves the contract is live: a copy of the tree with one
deliberate ``import torch`` in the runtime must be refused, naming the offending import.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT = shutil.which("lint-imports")
needs_linter = pytest.mark.skipif(LINT is None, reason="import-linter is not installed (pip install -e '.[test]')")


def _lint(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}  # the copy under test, ahead of the installed tree
    return subprocess.run([LINT, "--no-cache"], cwd=root, env=env,  # reads root/pyproject.toml
                          capture_output=True, text=True, timeout=120)


def _copy_tree(dest: Path) -> Path:
    shutil.copytree(ROOT / "mvd_edge", dest / "mvd_edge", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", dest / "pyproject.toml")
    return dest


@needs_linter
def test_the_tree_keeps_its_layer_contracts():
    res = _lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 broken" in res.stdout and " kept" in res.stdout


@needs_linter
@pytest.mark.parametrize("module, line, forbidden", [
    ("runtime/base.py", "import torch", "torch"),
    ("match/bank.py", "from mvd_edge.train import trainer", "mvd_edge.train"),
    ("quant/graph.py", "import mvd_edge.model.net", "mvd_edge.model"),
    ("core/spec.py", "import mvd_edge.cli", "mvd_edge.cli"),
])
def test_a_deliberate_violation_is_refused(tmp_path, module, line, forbidden):
    root = _copy_tree(tmp_path)
    target = root / "mvd_edge" / module
    target.write_text(target.read_text() + f"\n\ndef _violation():\n    {line}  # noqa\n")  # lazy, inside a function
    res = _lint(root)
    assert res.returncode != 0, res.stdout
    dotted = "mvd_edge." + module.removesuffix(".py").replace("/", ".")
    assert f"{dotted} -> {forbidden}" in res.stdout, res.stdout


def test_the_runtime_and_matcher_import_without_torch(tmp_path):
    """Behavioural twin of the contract: with torch unimportable, engines and the matcher still load."""
    code = ("import sys; sys.modules['torch'] = None; sys.modules['torchvision'] = None\n"
            "import mvd_edge.runtime, mvd_edge.runtime.ort_backend, mvd_edge.runtime.engine, mvd_edge.match.pipeline\n"
            "import mvd_edge.quant.api, mvd_edge.data.registry, mvd_edge.eval.reid, mvd_edge.synth.video\n"
            "print('ok')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff is not installed (pip install -e '.[test]')")
def test_ruff_is_clean():
    res = subprocess.run(["ruff", "check", "--no-cache", "--output-format", "concise", "."], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
