"""``mvd-edge doctor``: rows and fix commands with faked probes (present, absent, broken), and the real run."""

from __future__ import annotations

import json
import subprocess
import sys
from types import ModuleType, SimpleNamespace

import pytest
from typer.testing import CliRunner

from mvd_edge import doctor
from mvd_edge.cli import app

# ----------------------------------------------------------------------------- fakes


def _module(name: str, **attrs) -> ModuleType:
    mod = ModuleType(name)
    for k, v in attrs.items():
        setattr(mod, k, v)
    return mod


def _torch(cuda: bool, cuda_build: str | None = "12.4") -> ModuleType:
    gpu = SimpleNamespace(is_available=lambda: cuda, device_count=lambda: 1 if cuda else 0,
                          get_device_capability=lambda i: (9, 0), get_device_name=lambda i: "NVIDIA H100 80GB HBM3")
    return _module("torch", __version__="2.5.0", version=SimpleNamespace(cuda=cuda_build), cuda=gpu)


def _cuda_python(name: bytes = b"NVIDIA H200") -> dict[str, ModuleType]:
    attr = SimpleNamespace(CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR="major",
                           CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR="minor")
    drv = _module("cuda.bindings.driver", cuInit=lambda flags: (0,), cuDeviceGetCount=lambda: (0, 2),
                  cuDeviceGet=lambda i: (0, i), cuDeviceGetName=lambda n, dev: (0, name + b"\0" * 5),
                  CUdevice_attribute=attr,
                  cuDeviceGetAttribute=lambda a, dev: (0, 9 if a == "major" else 0))
    rt = _module("cuda.bindings.runtime", cudaRuntimeGetVersion=lambda: (0, 12080))
    return {"cuda.bindings.driver": drv, "cuda.bindings.runtime": rt}


def _ort(providers) -> ModuleType:
    return _module("onnxruntime", __version__="1.20.1", get_available_providers=lambda: list(providers))


def _trt(version: str = "10.9.0.34") -> ModuleType:
    return _module("tensorrt", __version__=version, Builder=object)


ABSENT = object()


@pytest.fixture()
def machine(monkeypatch):
    """Install a fake machine: ``machine(modules={name: module | ABSENT | exception}, driver=12040, smi=..., ...)``."""

    def install(modules: dict, driver: int | None = None, smi: str | None = None, dists=(), jetson=False):
        def fake_import(name):
            value = modules.get(name, ABSENT)
            if value is ABSENT:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            if isinstance(value, BaseException):
                raise value
            return value

        def fake_run(cmd, timeout=10.0):
            if smi is None:
                return None
            return smi if "--query-gpu=name,compute_cap,driver_version" in cmd else "| CUDA Version: 12.4 |"

        monkeypatch.setattr(doctor, "_import", fake_import)
        monkeypatch.setattr(doctor, "_run", fake_run)
        monkeypatch.setattr(doctor, "_libcuda_version", lambda: driver)
        monkeypatch.setattr(doctor, "_dist_names", lambda: list(dists))
        monkeypatch.setattr(doctor, "_is_jetson", lambda: jetson)
        rep = doctor.report()
        return rep, {c["name"]: c for c in rep["components"]}, {b["backend"]: b for b in rep["backends"]}

    return install


# ----------------------------------------------------------------------------- rows and fixes


def test_a_bare_cpu_machine_lists_every_missing_piece_with_its_command(machine):
    rep, rows, caps = machine({"onnxruntime": _ort(["CPUExecutionProvider"]), "onnx": _module("onnx", __version__="1.16.0")})
    assert set(rows) == {"GPU", "CUDA driver", "CUDA runtime", "TensorRT", "pycuda", "cuda-python", "onnxruntime",
                         "onnx", "Triton", "OpenVINO", "torch"}
    assert rows["GPU"]["status"] == "none" and rows["CUDA driver"]["status"] == "none"
    trt = rows["TensorRT"]
    assert trt["status"] == "missing"
    assert "pip install 'mvd-edge[trt-cu12]'" in trt["fix"] and "'mvd-edge[trt-cu13]'" in trt["fix"]
    assert rows["torch"]["status"] == "missing" and rows["torch"]["fix"] == "pip install 'mvd-edge[train]'"
    assert rows["pycuda"]["fix"].startswith("pip install pycuda")
    assert rows["cuda-python"]["fix"] == "pip install cuda-python"
    assert rows["Triton"]["fix"].startswith("pip install triton") and rows["OpenVINO"]["fix"] == "pip install 'mvd-edge[openvino]'"
    assert rows["onnxruntime"]["status"] == "ok" and rows["onnxruntime"]["facts"]["providers"] == ["CPUExecutionProvider"]
    assert caps["ort cpu"] == {"backend": "ort cpu", "fp32": True, "fp16": True, "int8": True, "missing": [], "fix": "",
                               "note": ""}
    assert not any(caps["trt"][p] for p in ("fp32", "fp16", "int8"))
    assert caps["trt"]["missing"] == ["TensorRT", "GPU", "pycuda or cuda-python"]
    assert "mvd-edge[trt-cu12]" in caps["trt"]["fix"] and "needs an NVIDIA GPU" in caps["trt"]["fix"]
    assert caps["ort cuda"]["missing"] == ["CUDAExecutionProvider"] and "onnxruntime-gpu" in caps["ort cuda"]["fix"]
    assert not any(caps["openvino"][p] for p in ("fp32", "fp16", "int8"))
    assert caps["openvino"]["missing"] == ["OpenVINO"] and caps["openvino"]["fix"] == "pip install 'mvd-edge[openvino]'"
    json.dumps(rep)  # JSON-able as it is


def test_a_full_gpu_machine(machine):
    modules = {"torch": _torch(cuda=True), "tensorrt": _trt(), "pycuda.driver": _module("pycuda.driver"),
               "pycuda": _module("pycuda", VERSION_TEXT="2024.1.2"), "triton": _module("triton", __version__="3.1.0"),
               "onnxruntime": _ort(["CUDAExecutionProvider", "CPUExecutionProvider"]),
               "onnx": _module("onnx", __version__="1.16.0"), "openvino": _module("openvino", __version__="2024.4"),
               **_cuda_python()}
    rep, rows, caps = machine(modules, driver=12040, smi="NVIDIA H100 80GB HBM3, 9.0, 550.54.15\n",
                              dists=["tensorrt-cu12", "tensorrt_cu12_libs", "numpy"])
    bad = {n: r for n, r in rows.items() if r["status"] != "ok"}
    assert not bad, bad
    assert rows["CUDA driver"]["version"] == "550.54.15" and rows["CUDA driver"]["facts"]["cuda"] == "12.4"
    assert rows["GPU"]["version"] == "NVIDIA H100 80GB HBM3" and rows["GPU"]["facts"]["via"] == "torch.cuda"
    assert rows["GPU"]["facts"]["compute_capability"] == "9.0"
    assert rows["CUDA runtime"]["facts"] == {"torch": "12.4", "cuda-python": "12.8"}
    assert rows["TensorRT"]["version"] == "10.9.0.34" and rows["TensorRT"]["details"] == "built for CUDA 12"
    assert rows["pycuda"]["version"] == "2024.1.2" and rows["torch"]["details"] == "CUDA 12.4 build, 1 GPU(s) visible"
    for backend in ("ort cpu", "ort cuda", "trt", "openvino"):
        assert all(caps[backend][p] for p in ("fp32", "fp16", "int8")), caps[backend]
    assert caps["torch"]["fp16"] and not caps["torch"]["int8"] and caps["torch fused head"]["fp16"]


def test_gpu_without_torch_is_found_through_cuda_python_else_nvidia_smi(machine):
    _, rows, _ = machine({**_cuda_python(b"NVIDIA H200")}, driver=12080)
    assert rows["GPU"]["version"] == "NVIDIA H200" and rows["GPU"]["facts"]["via"] == "cuda-python"
    assert rows["GPU"]["facts"]["count"] == 2 and rows["CUDA runtime"]["version"] == "12.8"
    _, rows, _ = machine({}, driver=None, smi="Orin (nvgpu), 8.7, 540.3.0\n")
    assert rows["GPU"]["version"] == "Orin (nvgpu)" and rows["GPU"]["facts"]["via"] == "nvidia-smi"
    assert rows["CUDA driver"]["version"] == "540.3.0" and rows["CUDA driver"]["facts"]["cuda"] == "12.4"


@pytest.mark.parametrize("driver, fix", [
    (12040, "pip install 'mvd-edge[trt-cu12]'"),
    (13000, "pip install 'mvd-edge[trt-cu13]'"),
])
def test_the_tensorrt_fix_matches_the_driver_cuda(machine, driver, fix):
    _, rows, _ = machine({"torch": _torch(cuda=True)}, driver=driver)
    assert rows["TensorRT"]["status"] == "missing" and rows["TensorRT"]["fix"] == fix
    assert rows["cuda-python"]["fix"] == f"pip install 'cuda-python=={driver // 1000}.*'"


def test_jetson_points_at_jetpack_tensorrt_in_a_system_site_packages_venv(machine):
    _, rows, _ = machine({}, driver=12020, jetson=True)
    assert "JetPack" in rows["TensorRT"]["fix"] and "--system-site-packages" in rows["TensorRT"]["fix"]


def test_half_installed_packages_are_reported_broken_never_raised(machine):
    modules = {
        "tensorrt": OSError("libnvinfer.so.10: cannot open shared object file: No such file or directory"),
        "torch": RuntimeError("CUDA driver initialization failed\nsecond line"),
        "onnxruntime": SystemExit(1),
        "triton": ModuleNotFoundError("No module named 'triton._C'", name="triton._C"),  # inside triton: broken
        "openvino": ModuleNotFoundError("No module named 'openvino_runtime'", name="openvino_runtime"),
        "pycuda.driver": ImportError("libcuda.so.1: cannot open shared object file"),
        "cuda.bindings.driver": AttributeError("partially initialized module"),
    }
    _, rows, caps = machine(modules)
    for name, needle in (("TensorRT", "libnvinfer.so.10"), ("torch", "CUDA driver initialization failed"),
                         ("onnxruntime", "SystemExit"), ("Triton", "triton._C"), ("OpenVINO", "openvino_runtime"),
                         ("pycuda", "libcuda.so.1"), ("cuda-python", "partially initialized")):
        assert rows[name]["status"] == "broken" and needle in rows[name]["details"], rows[name]
        assert "\n" not in rows[name]["details"]
    assert rows["TensorRT"]["fix"].startswith("reinstall it: pip install 'mvd-edge[trt-cu12]'")
    assert rows["torch"]["fix"] == "pip install --force-reinstall torch"
    assert rows["pycuda"]["fix"] == "pip install --force-reinstall pycuda"
    assert rows["cuda-python"]["fix"] == doctor.NEEDS_DRIVER  # no driver here: reinstalling would not help
    assert not caps["ort cpu"]["fp32"] and caps["ort cpu"]["missing"] == ["onnxruntime"]


def test_a_stubs_only_tensorrt_is_missing_and_a_driver_too_old_for_it_is_broken(machine):
    _, rows, _ = machine({"tensorrt": _module("tensorrt")}, driver=12040)  # a namespace package: no Builder
    assert rows["TensorRT"]["status"] == "missing" and "stubs" in rows["TensorRT"]["details"]
    assert rows["TensorRT"]["fix"] == "pip install 'mvd-edge[trt-cu12]'"
    _, rows, _ = machine({"tensorrt": _trt("10.13.0")}, driver=12040, dists=["tensorrt-cu13"])
    assert rows["TensorRT"]["status"] == "broken" and "the driver supports CUDA 12 only" in rows["TensorRT"]["details"]
    assert rows["TensorRT"]["fix"] == "update the driver, or pip install 'mvd-edge[trt-cu12]'"


def test_a_failing_probe_becomes_a_row_and_the_others_still_run(machine, monkeypatch):
    def boom(ctx):
        raise KeyError("unexpected")

    boom.__name__ = "_probe_boom"
    monkeypatch.setattr(doctor, "PROBES", [boom, *doctor.PROBES])
    _, rows, _ = machine({"onnxruntime": _ort(["CPUExecutionProvider"])})
    assert rows["boom"]["status"] == "broken" and "KeyError" in rows["boom"]["details"]
    assert rows["onnxruntime"]["status"] == "ok"


# ----------------------------------------------------------------------------- the command


def test_cli_table_and_json_exit_0_with_broken_packages(machine, monkeypatch):
    machine({"tensorrt": OSError("libnvinfer.so.10: cannot open shared object file"),
             "onnxruntime": _ort(["CPUExecutionProvider"])})  # installs the fakes for the CLI runs below
    from mvd_edge.cli._common import console

    monkeypatch.setattr(console, "_width", 250)  # one table row per line
    res = CliRunner().invoke(app, ["doctor"])
    assert res.exit_code == 0 and "Traceback" not in res.output, res.output
    lines = res.output.splitlines()
    (trt_line,) = [line for line in lines if line.startswith("│ TensorRT")]
    assert "broken" in trt_line and "libnvinfer.so.10" in trt_line and "mvd-edge[trt-cu12]" in trt_line
    assert "backends x precisions on this machine" in res.output
    (ort_line,) = [line for line in lines if line.startswith("│ ort cpu")]
    assert ort_line.count("yes") == 3
    res = CliRunner().invoke(app, ["doctor", "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert {c["name"]: c["status"] for c in data["components"]}["TensorRT"] == "broken"


def test_the_real_run_on_this_machine(tmp_path):
    """No fakes: the console script, as a user runs it. TensorRT is listed as it really is here
    (on the CPU test machines: missing, with its install command)."""
    proc = subprocess.run([sys.executable, "-m", "mvd_edge.cli", "doctor", "--json"], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    rows = {c["name"]: c for c in json.loads(proc.stdout)["components"]}
    trt = rows["TensorRT"]
    if doctor.tensorrt_importable():
        assert trt["status"] == "ok" and trt["version"]
    else:
        assert trt["status"] == "missing" and "pip install 'mvd-edge[trt-cu1" in trt["fix"], trt
    import onnxruntime as ort  # a base dependency: always here
    assert rows["onnxruntime"]["version"] == ort.__version__
    assert "CPUExecutionProvider" in rows["onnxruntime"]["facts"]["providers"]
