"""``mvd-edge doctor``: what this machine has for each backend and precision, and how to fix what is missing.

Every probe imports its package inside a ``try`` that catches *any* exception (a half-installed
wheel raises ``OSError``, ``RuntimeError``, even ``SystemExit`` from its loader), so the report
itself never fails. Probes go through three small indirections (:func:`_import`, :func:`_run`,
:func:`_libcuda_version`) that the tests replace to fake present, absent and broken packages.

Nothing here is needed to run an engine; the CLI imports this module only for ``doctor`` and
for the TensorRT install hint of ``build-engine``.
"""

from __future__ import annotations

import importlib
import platform
import re
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mvd_edge.core.spec import PRECISIONS
from mvd_edge.deploy import formats

__all__ = ["TENSORRT_MISSING", "Component", "backends", "report", "tensorrt_fix", "tensorrt_importable"]

JETSON_TRT = ("on Jetson: JetPack's TensorRT (apt install python3-libnvinfer) in a venv made with "
              "`python3 -m venv --system-site-packages`")

TENSORRT_MISSING = ("TensorRT is not installed: pip install 'mvd-edge[trt-cu12]' (CUDA 12 driver) or "
                    "'mvd-edge[trt-cu13]' (CUDA 13); " + JETSON_TRT + " (`mvd-edge doctor` shows the CUDA version)")
"""The one-line error of ``build-engine --backend trt`` without TensorRT."""


#: the report's row of each Python module the formats table names (the others: the module's own name)
_COMPONENTS = {"tensorrt": "TensorRT", "triton": "Triton", "openvino": "OpenVINO"}

NEEDS_DRIVER = "installed, but it needs the NVIDIA driver (see the CUDA driver row)"


@dataclass
class Component:
    """One row of the report: ``status`` is ``ok``, ``missing`` (not installed), ``broken`` (installed
    but failing to import or to answer) or ``none`` (hardware not present)."""

    name: str
    status: str
    version: str = ""
    details: str = ""
    fix: str = ""
    facts: dict[str, Any] = field(default_factory=dict)


# ----------------------------------------------------------------------------- indirections (faked in tests)


def _import(name: str):
    return importlib.import_module(name)


def _run(cmd: list[str], timeout: float = 10.0) -> str | None:
    """stdout of ``cmd``, or None when it is missing, fails or hangs."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout if proc.returncode == 0 else None


def _libcuda_version() -> int | None:
    """The CUDA version the installed driver supports (``cuDriverGetVersion``, e.g. 12040)."""
    from mvd_edge.kernels.trt_plugin import driver_version

    return driver_version()


def _dist_names() -> list[str]:
    names = []
    for dist in metadata.distributions():
        try:
            names.append(dist.metadata["Name"] or "")
        except Exception:  # a broken dist-info folder
            continue
    return names


def _is_jetson() -> bool:
    return Path("/etc/nv_tegra_release").exists()


# ----------------------------------------------------------------------------- helpers


def _cuda_text(version: int | None) -> str:
    """12040 -> ``12.4`` (the encoding of cuDriverGetVersion / cudaRuntimeGetVersion)."""
    return f"{version // 1000}.{(version % 1000) // 10}" if version else ""


def _try_import(name: str) -> tuple[Any, str, str]:
    """(module, status, error text): status ``ok``, ``missing`` (the module itself is not there) or
    ``broken`` (it is there and fails: a missing shared library, a wrong dependency, anything)."""
    try:
        return _import(name), "ok", ""
    except ModuleNotFoundError as exc:
        if exc.name is None or name == exc.name or name.startswith(exc.name + "."):
            return None, "missing", ""
        return None, "broken", _one_line(exc)
    except BaseException as exc:  # noqa: BLE001 - a half-installed package may raise anything, even SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        return None, "broken", _one_line(exc)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _version(mod: Any, *dists: str) -> str:
    v = getattr(mod, "__version__", None) or getattr(mod, "VERSION_TEXT", None)
    if v:
        return str(v)
    for d in dists:
        try:
            return metadata.version(d)
        except Exception:
            continue
    return "?"


def tensorrt_importable() -> bool:
    """``import tensorrt`` works and is the library (not a stubs-only namespace package)."""
    trt, _, _ = _try_import("tensorrt")
    return trt is not None and hasattr(trt, "Builder")


def tensorrt_fix(cuda_major: int | None, jetson: bool = False) -> str:
    """The install command of TensorRT for this machine (the CUDA-matched extra, or JetPack's)."""
    if jetson:
        return JETSON_TRT
    if cuda_major in (12, 13):
        return f"pip install 'mvd-edge[trt-cu{cuda_major}]'"
    return "pip install 'mvd-edge[trt-cu12]' (CUDA 12 driver) or 'mvd-edge[trt-cu13]' (CUDA 13)"


# ----------------------------------------------------------------------------- probes


def _probe_driver(ctx: dict) -> list[Component]:
    """The CUDA driver: the CUDA version it supports (libcuda) and its release (nvidia-smi)."""
    try:
        ver = _libcuda_version()
    except Exception:
        ver = None
    smi = _run(["nvidia-smi", "--query-gpu=name,compute_cap,driver_version", "--format=csv,noheader"])
    release = ""
    if smi and smi.strip():
        lines = smi.strip().splitlines()
        first = [p.strip() for p in lines[0].split(",")]
        if len(first) >= 3:
            release = first[2]
            ctx["gpu_nvidia-smi"] = {"name": first[0], "compute_capability": first[1], "count": len(lines)}
    cuda = _cuda_text(ver)
    if not cuda and release:
        m = re.search(r"CUDA Version:\s*([\d.]+)", _run(["nvidia-smi"]) or "")
        cuda = m.group(1) if m else ""
    if not (cuda or release):
        return [Component("CUDA driver", "none", details="no NVIDIA driver (libcuda) found",
                          fix="JetPack provides it" if ctx.get("jetson") else
                          "install the NVIDIA driver (then nvidia-smi lists the GPU)")]
    ctx["driver"] = True
    if cuda:
        ctx["driver_cuda_major"] = int(cuda.split(".")[0])
    return [Component("CUDA driver", "ok", release or "?", f"supports CUDA {cuda}" if cuda else "",
                      facts={"cuda": cuda, "release": release})]


def _probe_torch(ctx: dict) -> list[Component]:
    torch, status, err = _try_import("torch")
    if torch is None:
        return [Component("torch", status, details=err, fix="pip install 'mvd-edge[train]'" if status == "missing"
                          else "pip install --force-reinstall torch")]
    built = getattr(getattr(torch, "version", None), "cuda", None) or ""
    try:
        avail = bool(torch.cuda.is_available())
        count = torch.cuda.device_count() if avail else 0
        if avail:
            major, minor = torch.cuda.get_device_capability(0)
            ctx["gpu_torch.cuda"] = {"name": torch.cuda.get_device_name(0), "compute_capability": f"{major}.{minor}",
                                     "count": count}
    except Exception as exc:  # a broken CUDA runtime inside torch
        return [Component("torch", "broken", _version(torch), f"torch.cuda: {type(exc).__name__}: {exc}",
                          fix="pip install --force-reinstall torch")]
    ctx["torch_cuda"] = avail
    if built:
        ctx["runtime_torch"] = built
    details = (f"CUDA {built} build, " + (f"{count} GPU(s) visible" if avail else "no GPU visible")) if built \
        else "CPU build"
    return [Component("torch", "ok", _version(torch), details, facts={"cuda_build": built, "cuda_available": avail})]


def _probe_cuda_python(ctx: dict) -> list[Component]:
    drv, status, err = _try_import("cuda.bindings.driver")  # cuda-python >= 12.6
    if drv is None and status == "missing":
        drv, status, err = _try_import("cuda.cuda")  # older cuda-python
    if drv is None:
        major = ctx.get("driver_cuda_major")
        fix = f"pip install 'cuda-python=={major}.*'" if major else "pip install cuda-python"
        if status == "broken":
            fix = (NEEDS_DRIVER if not ctx.get("driver") else fix.replace("pip install", "pip install --force-reinstall"))
        return [Component("cuda-python", status, details=err, fix=fix)]
    version = _version(None, "cuda-python", "cuda-bindings")
    facts: dict[str, Any] = {}
    try:
        (res,) = drv.cuInit(0)
        if int(res) == 0:
            _, n = drv.cuDeviceGetCount()
            if int(n) > 0:
                _, dev = drv.cuDeviceGet(0)
                _, name = drv.cuDeviceGetName(64, dev)
                attr = drv.CUdevice_attribute
                _, cmaj = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev)
                _, cmin = drv.cuDeviceGetAttribute(attr.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev)
                ctx["gpu_cuda-python"] = {"name": bytes(name).split(b"\0")[0].decode(errors="replace"),
                                          "compute_capability": f"{int(cmaj)}.{int(cmin)}", "count": int(n)}
        else:
            facts["cuInit"] = f"error {int(res)} (no GPU or no driver)"
        rt, _, _ = _try_import("cuda.bindings.runtime")
        if rt is not None:
            res, ver = rt.cudaRuntimeGetVersion()
            if int(res) == 0:
                ctx["runtime_cuda-python"] = facts["runtime"] = _cuda_text(int(ver))
    except Exception as exc:
        return [Component("cuda-python", "broken", version, f"{type(exc).__name__}: {exc}",
                          fix=NEEDS_DRIVER if not ctx.get("driver") else "pip install --force-reinstall cuda-python")]
    return [Component("cuda-python", "ok", version, ", ".join(f"{k} {v}" for k, v in facts.items()), facts=facts)]


def _probe_pycuda(ctx: dict) -> list[Component]:
    drv, status, err = _try_import("pycuda.driver")
    if drv is None:
        return [Component("pycuda", status, details=err, fix="pip install pycuda (builds against the CUDA toolkit; "
                          "or use cuda-python)" if status == "missing" else "pip install --force-reinstall pycuda")]
    pkg, _, _ = _try_import("pycuda")
    return [Component("pycuda", "ok", _version(pkg, "pycuda"))]


def _probe_gpu(ctx: dict) -> list[Component]:
    """The GPU and the CUDA runtime, from the first probe that found them (torch.cuda, cuda-python, nvidia-smi)."""
    rows = []
    via = next((v for v in ("torch.cuda", "cuda-python", "nvidia-smi") if ctx.get(f"gpu_{v}")), None)
    if via:
        gpu = ctx["gpu"] = {**ctx[f"gpu_{via}"], "via": via}
        rows.append(Component("GPU", "ok", gpu["name"], f"compute capability {gpu['compute_capability']}, "
                              f"{gpu['count']} device(s), via {via}", facts=dict(gpu)))
    else:
        rows.append(Component("GPU", "none", details="no CUDA GPU found (torch.cuda, cuda-python, nvidia-smi)",
                              fix="CPU backends only (ort cpu); TensorRT needs an NVIDIA GPU"))
    found = [(v, ctx[f"runtime_{v}"]) for v in ("torch", "cuda-python") if ctx.get(f"runtime_{v}")]
    if found:
        rows.append(Component("CUDA runtime", "ok", found[0][1], ", ".join(f"{v} {r}" for v, r in found),
                              facts={v: r for v, r in found}))
    else:
        rows.append(Component("CUDA runtime", "missing", details="no CUDA runtime (torch is a CPU build or absent, "
                              "no cuda-python)", fix="a CUDA build of torch, or pip install cuda-python"))
    return rows


def _probe_tensorrt(ctx: dict) -> list[Component]:
    fix = tensorrt_fix(ctx.get("driver_cuda_major"), ctx.get("jetson", False))
    trt, status, err = _try_import("tensorrt")
    if trt is not None and not hasattr(trt, "Builder"):  # a namespace package: type stubs, no library
        trt, status, err = None, "missing", "only type stubs (a `tensorrt` folder without the library)"
    if trt is None:
        return [Component("TensorRT", status, details=err or "not installed",
                          fix=fix if status == "missing" else f"reinstall it: {fix}")]
    version = _version(trt, "tensorrt")
    built = sorted({m.group(1) for n in _dist_names() if (m := re.match(r"tensorrt[-_]cu(\d+)", n.lower()))})
    facts = {"cuda_build": built[0] if built else ""}
    details = f"built for CUDA {built[0]}" if built else "CUDA build not discoverable"
    major = ctx.get("driver_cuda_major")
    if built and major and int(built[0]) > major:
        details += f"; the driver supports CUDA {major} only"
        return [Component("TensorRT", "broken", version, details, fix=f"update the driver, or {tensorrt_fix(major)}",
                          facts=facts)]
    return [Component("TensorRT", "ok", version, details, facts=facts)]


def _probe_onnxruntime(ctx: dict) -> list[Component]:
    ort, status, err = _try_import("onnxruntime")
    if ort is None:
        return [Component("onnxruntime", status, details=err, fix="pip install 'onnxruntime>=1.17' (a base "
                          "dependency of mvd-edge)" if status == "missing" else
                          "pip install --force-reinstall onnxruntime")]
    try:
        providers = list(ort.get_available_providers())
    except Exception as exc:
        return [Component("onnxruntime", "broken", _version(ort), f"get_available_providers: {exc}",
                          fix="pip install --force-reinstall onnxruntime")]
    ctx["ort_providers"] = providers
    fix = ""
    if ctx.get("gpu") and "CUDAExecutionProvider" not in providers:
        fix = "for --device cuda: pip uninstall -y onnxruntime && pip install onnxruntime-gpu"
    return [Component("onnxruntime", "ok", _version(ort), "providers: " + ", ".join(providers), fix=fix,
                      facts={"providers": providers})]


def _simple(name: str, module: str, fix: str, dists: tuple[str, ...] = ()):
    def probe(ctx: dict) -> list[Component]:
        mod, status, err = _try_import(module)
        ctx[module] = mod is not None
        if mod is None:
            return [Component(name, status, details=err, fix=fix if status == "missing" else
                              fix.replace("pip install", "pip install --force-reinstall"))]
        return [Component(name, "ok", _version(mod, *dists))]

    probe.__name__ = f"_probe_{module}"
    return probe


PROBES = [
    _probe_driver,
    _probe_torch,
    _probe_cuda_python,
    _probe_pycuda,
    _probe_gpu,
    _probe_tensorrt,
    _probe_onnxruntime,
    _simple("onnx", "onnx", "pip install 'mvd-edge[quant]' (fp16/int8 graphs)"),
    _simple("Triton", "triton", "pip install triton (Linux x86-64 with torch; the fused head)"),
    _simple("OpenVINO", "openvino", "pip install 'mvd-edge[openvino]'"),
]
"""Run in this order: later probes read what earlier ones found (the GPU, the driver's CUDA major)."""


# ----------------------------------------------------------------------------- the capability table


def backends(rows: list[Component], ctx: dict) -> list[dict]:
    """Per backend of the formats table (ONNX Runtime per device, torch also with the fused head): can this
    machine build/run it at each precision the table gives it, and if not, what is missing."""
    ok = {r.name: r.status == "ok" for r in rows}
    fix = {r.name: r.fix for r in rows}
    ok["pycuda or cuda-python"] = bool(ok.get("pycuda") or ok.get("cuda-python"))  # the TensorRT engine's CUDA calls
    fix.update({"GPU": "needs an NVIDIA GPU", "pycuda or cuda-python": fix.get("cuda-python", "")})
    gpu = ctx.get("gpu")
    cc = tuple(int(v) for v in gpu["compute_capability"].split(".")[:2]) if gpu and re.fullmatch(
        r"\d+\.\d+", str(gpu.get("compute_capability", ""))) else None
    quant_note = "" if ok.get("onnx") else "making fp16/int8 graphs needs onnx"
    gpu_can = {"fp16": cc is None or cc >= (5, 3), "int8": cc is None or cc >= (6, 1)}  # TensorRT's GPU floor
    out = []
    for label, backend, extra, note in (
            ("ort cpu", "ort", [], quant_note),
            ("ort cuda", "ort", ["GPU"], quant_note),
            ("trt", "trt", ["pycuda or cuda-python"], f"compute capability {gpu['compute_capability']}" if gpu else ""),
            ("openvino", "openvino", [], "cpu; runs the fp32/fp16/int8 ONNX graphs as they are"),
            ("torch", "torch", [], "fp16 needs CUDA; int8 is for ort/trt/openvino engines"),
            ("torch fused head", "torch", ["Triton", "GPU"], "")):
        providers = ctx.get("ort_providers", [])
        if label == "ort cuda" and ok.get("onnxruntime") and "CUDAExecutionProvider" not in providers:
            out.append({"backend": label, **dict.fromkeys(PRECISIONS, False), "missing": ["CUDAExecutionProvider"],
                        "fix": "pip uninstall -y onnxruntime && pip install onnxruntime-gpu", "note": ""})
            continue
        fmt = formats.for_backend(backend)
        needs = [_COMPONENTS.get(m, m) for m in fmt.modules] + (["GPU"] if "*" in fmt.cuda else []) + extra
        missing = [n for n in needs if not ok.get(n)]
        can = {p: not missing and p in fmt.precisions for p in PRECISIONS}
        if backend == "trt":
            can = {p: yes and gpu_can.get(p, True) for p, yes in can.items()}
        elif "GPU" not in needs:  # torch without the fused head: what needs CUDA needs torch's
            can = {p: yes and (not fmt.needs_cuda(p) or bool(ctx.get("torch_cuda"))) for p, yes in can.items()}
        out.append({"backend": label, **can, "missing": missing,
                    "fix": "; ".join(f for f in (fix.get(n, "") for n in missing) if f), "note": note})
    return out


def report() -> dict:
    """Everything ``mvd-edge doctor`` shows, as JSON-able data; never raises on a broken install."""
    ctx: dict[str, Any] = {"jetson": _safe_bool(_is_jetson)}
    rows: list[Component] = []
    for probe in PROBES:
        try:
            rows.extend(probe(ctx))
        except Exception as exc:  # a probe's own bug must not hide the others
            name = probe.__name__.removeprefix("_probe_")
            rows.append(Component(name, "broken", details=f"probe failed: {type(exc).__name__}: {exc}"))
    order = ["GPU", "CUDA driver", "CUDA runtime", "TensorRT", "pycuda", "cuda-python", "onnxruntime", "onnx",
             "Triton", "OpenVINO", "torch"]
    rows.sort(key=lambda r: order.index(r.name) if r.name in order else len(order))
    return {"python": platform.python_version(), "platform": platform.platform(), "jetson": ctx["jetson"],
            "components": [asdict(r) for r in rows], "backends": backends(rows, ctx)}


def _safe_bool(fn) -> bool:
    try:
        return bool(fn())
    except Exception:
        return False
