"""TensorRT plugin ``mvd::FusedHead`` (TensorRT's Python plugin API, ahead-of-time Triton kernel).

``register_trt_plugin()`` registers, with ``tensorrt.plugin`` (TensorRT >= 10.9):

* ``@trtp.register("mvd::FusedHead")``: inputs ``x0, x1, x2, x3, params`` and attributes
  ``recipe: str``, ``num_maps: int``, ``dims: int32 array`` (the node ``onnx_op`` writes);
  output ``[N, D]`` float32 where ``D`` comes from ``dims``.
* ``@trtp.autotune``: maps fp32 or fp16 (all four alike), params fp32 or fp16
  (independently), output fp32, linear layout.
* ``@trtp.aot_impl``: compiles the single-launch Triton kernel of the recipe
  (``fused_head.compile_head_kernel``: ``_bn_head_row_kernel`` for full/shared,
  ``_z_head_kernel`` for z) to PTX for the build GPU's architecture with
  ``triton.compile`` and returns ``(kernel name, PTX, KernelLaunchParams, extra args)``.
  ``C`` and the MLP dims are compiled in; the int32 extra arguments are ``N`` and
  ``h*w`` (symbolic, so the engine keeps a dynamic batch). TensorRT passes the kernel
  ``(inputs..., extra args..., outputs...)``, which is the kernels' parameter order.

No JIT (``@trtp.impl``) implementation is registered, so the engine embeds only the
PTX and runs without Python. Call ``register_trt_plugin()`` before parsing the ONNX
model and again (in the same process or another) before deserialising an engine.

This module imports without TensorRT; ``register_trt_plugin()`` raises
``TensorRTUnavailable`` with install instructions when it is missing or too old.
(No ``from __future__ import annotations`` here: ``tensorrt.plugin`` inspects the real
annotation objects of the registered functions.)
"""

import ctypes
import re
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np
import numpy.typing as npt

from mvd_edge.core.errors import DeviceUnavailable, TensorRTUnavailable  # TensorRTUnavailable: one class, see core
from mvd_edge.core.spec import RECIPES

PLUGIN_ID = "mvd::FusedHead"
MIN_TRT = (10, 9)
INSTALL_HINT = (
    "TensorRT >= 10.9 with its Python plugin API (tensorrt.plugin) is needed for the mvd::FusedHead plugin: "
    "pip install 'mvd-edge[trt-cu12]' or 'mvd-edge[trt-cu13]' (the CUDA major of your driver; x86_64/aarch64 "
    "servers), or an NGC TensorRT container; JetPack 6 ships TensorRT 10.3, too old for this plugin: serve "
    "--recipe engines without the fused head there"
)

_STATE: Dict[str, Any] = {"registered": False, "arch": None, "ptx_version": None}


def _version_tuple(v: str) -> tuple:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:2])


def import_tensorrt():
    """``(tensorrt, tensorrt.plugin)``, or ``TensorRTUnavailable`` with an install hint."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise TensorRTUnavailable(f"tensorrt is not installed: {INSTALL_HINT}") from exc
    version = getattr(trt, "__version__", "0")
    if _version_tuple(version) < MIN_TRT:
        raise TensorRTUnavailable(f"tensorrt {version} is too old (no AOT Python plugins): {INSTALL_HINT}")
    try:
        import tensorrt.plugin as trtp  # type: ignore[import-not-found]  # tensorrt-stubs (10.13) has no stubs of tensorrt.plugin
    except ImportError as exc:
        raise TensorRTUnavailable(f"tensorrt {version} has no tensorrt.plugin module: {INSTALL_HINT}") from exc
    if not hasattr(trtp, "aot_impl"):
        raise TensorRTUnavailable(f"tensorrt {version} has no tensorrt.plugin.aot_impl: {INSTALL_HINT}")
    return trt, trtp


def attr_str(value: Union[str, bytes]) -> str:
    """A string attribute as a plugin function receives it, without the ONNX parser's NUL terminator.

    onnx-tensorrt copies a string attribute *with* its terminating NUL (``copyField(std::string)``,
    onnx-tensorrt issue #921) and ``tensorrt.plugin`` decodes the whole field, so ``"full"``
    arrives as ``"full\\x00"``.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value.rstrip("\x00")


def out_dim(recipe: str, dims) -> int:
    """Embedding width of a ``FusedHead`` node: ``dims[1]`` (full/shared) or ``dims[-1]`` (z)."""
    dims = [int(d) for d in np.asarray(dims).reshape(-1)]
    if recipe not in RECIPES:
        raise ValueError(f"FusedHead: unknown recipe {recipe!r}; expected one of {RECIPES}")
    if recipe == "z":
        if len(dims) != 4:
            raise ValueError(f"FusedHead z: dims must be [C, d1, d2, d3], got {dims}")
        return dims[3]
    if len(dims) != 2:
        raise ValueError(f"FusedHead {recipe}: dims must be [C, D], got {dims}")
    return dims[1]


def _torch_dtype(trt, dt):
    import torch

    table = {trt.float16: torch.float16, trt.float32: torch.float32}
    if hasattr(trt, "bfloat16"):
        table[trt.bfloat16] = torch.bfloat16
    if dt not in table:
        raise ValueError(f"FusedHead: unsupported TensorRT data type {dt}")
    return table[dt]


def _build_arch() -> int:
    if _STATE["arch"] is not None:
        return int(_STATE["arch"])
    import torch

    if not torch.cuda.is_available():
        raise DeviceUnavailable("FusedHead AOT: no CUDA device to read the architecture from; pass register_trt_plugin(arch=...)")
    major, minor = torch.cuda.get_device_capability()
    return major * 10 + minor


def max_ptx_isa(driver_version: int) -> Optional[int]:
    """The newest PTX ISA (84 for 8.4) a CUDA driver loads; ``driver_version`` as ``cuDriverGetVersion``
    reports it (12040 for CUDA 12.4). None for a driver newer than this table knows (it loads any PTX
    Triton writes).

    From the PTX ISA release history (PTX ISA manual, "Release Notes"): CUDA 11.x -> 7.x,
    12.0-12.5 -> 8.0-8.5, 12.6 -> 8.5, 12.7 -> 8.6, 12.8 -> 8.7, 12.9 -> 8.8, 13.x -> 9.x.
    """
    major, minor = driver_version // 1000, driver_version % 1000 // 10
    if major == 11:
        return 70 + min(minor, 8)
    if major == 12:
        return 80 + minor if minor <= 5 else 79 + min(minor, 9)
    if major == 13:
        return 90 + minor
    if major > 13:
        return None
    raise DeviceUnavailable(f"FusedHead AOT: the CUDA driver supports CUDA {major}.{minor}; Triton needs 11.0 or newer")


def driver_version() -> Optional[int]:
    """``cuDriverGetVersion`` of the installed NVIDIA driver (12040 for CUDA 12.4), None without one."""
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        version = ctypes.c_int(0)
        if lib.cuDriverGetVersion(ctypes.byref(version)) == 0 and version.value > 0:
            return int(version.value)
    return None


def _ptx_cap() -> Optional[int]:
    """PTX ISA cap for the AOT kernel: ``register_trt_plugin(ptx_version=...)`` or the installed driver's."""
    if _STATE["ptx_version"] is not None:
        return int(_STATE["ptx_version"])
    version = driver_version()
    return max_ptx_isa(version) if version is not None else None


def register_trt_plugin(arch: Optional[int] = None, ptx_version: Optional[int] = None) -> str:
    """Register ``mvd::FusedHead`` with ``tensorrt.plugin`` (idempotent); returns the plugin id.

    ``arch``: compute capability to compile for, e.g. 90 (H100) or 87 (Jetson Orin);
    default: the current CUDA device's. ``ptx_version``: the newest PTX ISA to write (e.g. 84
    for CUDA 12.4 drivers); default: the newest the installed driver loads (:func:`max_ptx_isa`),
    since the driver refuses PTX newer than itself when TensorRT loads the kernel.
    Raises ``TensorRTUnavailable`` (an ``ImportError``) when TensorRT >= 10.9 is missing.
    """
    import_tensorrt()  # the install hint when it is missing or too old
    import tensorrt as trt
    import tensorrt.plugin as trtp  # type: ignore[import-not-found]  # tensorrt-stubs (10.13) has no stubs of tensorrt.plugin

    if arch is not None:
        _STATE["arch"] = int(arch)
    if ptx_version is not None:
        _STATE["ptx_version"] = int(ptx_version)
    if _STATE["registered"]:
        return PLUGIN_ID

    @trtp.register(PLUGIN_ID)
    def fused_head_desc(x0: trtp.TensorDesc, x1: trtp.TensorDesc, x2: trtp.TensorDesc, x3: trtp.TensorDesc,
                        params: trtp.TensorDesc, recipe: str, num_maps: int,
                        dims: npt.NDArray[np.int32]) -> trtp.TensorDesc:
        return trtp.from_shape_expr((x0.shape_expr[0], out_dim(attr_str(recipe), dims)), dtype=trt.float32)

    @trtp.autotune(PLUGIN_ID)
    def fused_head_autotune(x0: trtp.TensorDesc, x1: trtp.TensorDesc, x2: trtp.TensorDesc, x3: trtp.TensorDesc,
                            params: trtp.TensorDesc, outputs: Tuple[trtp.TensorDesc]) -> List[trtp.AutoTuneCombination]:
        return [trtp.AutoTuneCombination("FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16, FP32*FP16, FP32", "LINEAR")]

    @trtp.aot_impl(PLUGIN_ID)
    def fused_head_aot(x0: trtp.TensorDesc, x1: trtp.TensorDesc, x2: trtp.TensorDesc, x3: trtp.TensorDesc,
                       params: trtp.TensorDesc, recipe: str, num_maps: int, dims: npt.NDArray[np.int32],
                       outputs: Tuple[trtp.TensorDesc], tactic: int
                       ) -> Tuple[Union[str, bytes], Union[str, bytes], trtp.KernelLaunchParams, trtp.SymExprs]:
        from mvd_edge.kernels.fused_head import compile_head_kernel

        recipe = attr_str(recipe)
        dims_t = tuple(int(d) for d in np.asarray(dims).reshape(-1))
        out_dim(recipe, dims_t)  # validates recipe/dims
        if int(num_maps) != (4 if recipe == "full" else 1):
            raise ValueError(f"FusedHead: recipe {recipe!r} with num_maps={num_maps}")
        kernel = compile_head_kernel(recipe, int(num_maps), dims_t, _torch_dtype(trt, x0.dtype),
                                     _torch_dtype(trt, params.dtype), _build_arch(),
                                     ptx_version=_ptx_cap())
        n = x0.shape_expr[0]
        launch = trtp.KernelLaunchParams()
        launch.grid_x = trtp.cdiv(n, kernel.rows_per_program)
        launch.block_x = kernel.num_warps * 32
        launch.shared_mem = kernel.shared
        extra = trtp.SymIntExprs(2)
        extra[0] = trtp.SymInt32(n)
        extra[1] = trtp.SymInt32(x0.shape_expr[2] * x0.shape_expr[3])
        return kernel.name, kernel.ptx, launch, extra

    _STATE["registered"] = True
    return PLUGIN_ID


__all__ = ["INSTALL_HINT", "PLUGIN_ID", "TensorRTUnavailable", "attr_str", "driver_version", "import_tensorrt",
           "max_ptx_isa", "out_dim", "register_trt_plugin"]
