"""scripts/gpu_check.sh: every command it would run on the GPU machine exists and parses here, on the CPU.

The script's ``--dry-run`` prints ``RUN <name> <timeout> <expected rc> :: <command>``; each
``mvd-edge`` command is parsed by the real Click command (options, types, choices) without
running it, each Python script's options are checked against its ``--help``, the pytest
selection is collected, and the offline install is resolved with pip's ``--dry-run``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import load_repo_script
from typer.main import get_command

from mvd_edge.cli import app

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
BUDGET_S = 8 * 60


def _dry_run(out: Path) -> list[dict]:
    proc = subprocess.run(["bash", str(SCRIPT), "--dry-run", str(out)], capture_output=True, text=True, cwd=ROOT,
                          timeout=60, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert proc.returncode == 0, proc.stderr
    steps = []
    for line in proc.stdout.splitlines():
        m = re.fullmatch(r"RUN (\S+) (\d+) (\d+) :: (.*)", line)
        assert m, f"unexpected dry-run line: {line!r}"
        steps.append({"name": m.group(1), "timeout": int(m.group(2)), "rc": int(m.group(3)),
                      "argv": shlex.split(m.group(4))})
    assert not out.exists()  # a dry run writes nothing
    return steps


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> list[dict]:
    return _dry_run(tmp_path_factory.mktemp("gc") / "gpu_check")


def test_the_steps_the_issue_asks_for_are_all_there(steps):
    names = [s["name"] for s in steps]
    for name in ("install", "doctor", "pytest-gpu", "fused-head", "train-throughput", "ort-cuda-build",
                 "ort-cuda-profile", "trt-hint"):
        assert name in names
    assert len(set(names)) == len(names)
    text = SCRIPT.read_text()
    budget = int(re.search(r'BUDGET="\$\{GPU_CHECK_BUDGET:-(\d+)\}"', text).group(1))
    assert budget <= BUDGET_S - 30  # every step's timeout is cut to the budget: the whole run fits
    install = next(s for s in steps if s["name"] == "install")["argv"]
    assert install[1:] == ["-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-e", "."]
    assert next(s for s in steps if s["name"] == "trt-hint")["rc"] == 2


def test_every_mvd_edge_command_parses(steps):
    group = get_command(app)
    cli = [s for s in steps if s["argv"][1:3] == ["-m", "mvd_edge.cli"]]
    assert len(cli) >= 6
    for s in cli:
        sub, args = s["argv"][3], s["argv"][4:]
        assert sub in group.commands, s
        cmd = group.commands[sub]
        ctx = cmd.make_context(sub, list(args))  # raises click.UsageError on an unknown option or a bad value
        assert ctx.params  # parsed into the command's parameters


def test_every_python_script_option_is_in_its_help(steps):
    scripts = [s for s in steps if len(s["argv"]) > 1 and s["argv"][1].endswith(".py")]
    assert {Path(s["argv"][1]).name for s in scripts} == {"fused_head.py", "train_throughput.py"}
    for s in scripts:
        proc = subprocess.run([sys.executable, s["argv"][1], "--help"], capture_output=True, text=True, cwd=ROOT,
                              timeout=120)
        assert proc.returncode == 0, proc.stderr
        for opt in (a for a in s["argv"][2:] if a.startswith("--")):
            assert re.search(rf"{re.escape(opt)}\b", proc.stdout), (opt, s["argv"][1])
    fused = next(s for s in scripts if s["argv"][1].endswith("fused_head.py"))["argv"]
    args = load_repo_script("benchmarks/fused_head.py").build_parser().parse_args(fused[2:])  # the exact values parse (types, nargs)
    assert args.batch == [1, 32, 256, 1024] and args.no_compile


def test_the_gpu_test_selection_collects(steps):
    argv = next(s for s in steps if s["name"] == "pytest-gpu")["argv"]
    files = [a for a in argv if a.startswith("tests/")]
    gpu_mark = re.compile(r"^\s*(@pytest\.mark\.gpu|pytestmark.*mark\.gpu)", re.M)
    marked = sorted(f"tests/{p.name}" for p in (ROOT / "tests").glob("test_*.py") if gpu_mark.search(p.read_text()))
    assert sorted(files) == marked and "tests/test_kernels.py" in files  # every file with gpu marks, read by the script
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "gpu", "-p",
                           "no:cacheprovider", *files], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert re.search(r"(\d+)/\d+ tests collected", proc.stdout) or re.search(r"\d+ tests? collected", proc.stdout)


def test_the_offline_install_resolves_without_the_network(steps):
    argv = next(s for s in steps if s["name"] == "install")["argv"]
    proc = subprocess.run([sys.executable, *argv[1:4], "--dry-run", *argv[4:]], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Would install mvd-edge" in proc.stdout


def test_the_trt_step_gives_the_one_line_hint_here(steps, tmp_path):
    """Run for real (no TensorRT on the CPU machines): exit 2 and one line naming the install."""
    from mvd_edge.doctor import tensorrt_importable

    argv = next(s for s in steps if s["name"] == "trt-hint")["argv"]
    argv = [a if "/trt/" not in a else str(tmp_path / "tiny.engine") for a in argv]
    proc = subprocess.run([sys.executable, *argv[1:]], capture_output=True, text=True, cwd=ROOT, timeout=120)
    if tensorrt_importable():
        assert "TensorRT is not installed" not in proc.stderr
    else:
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert "pip install 'mvd-edge[trt-cu12]'" in proc.stderr
