"""Everything TensorRT-version-specific, in one small module (TensorRT 10.x and 11.x).

Precision lives in the ONNX graph (FP16 graph, or INT8 Q/DQ graph), so both versions build
*strongly typed* networks and no precision builder flag is ever set:

* TensorRT 10.x (JetPack 6 ships 10.3): ``create_network`` needs the
  ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` flag.
* TensorRT 11.x: strong typing is the only mode; FP16/INT8 builder flags and INT8
  calibrators no longer exist, and ``create_network()`` takes no typing flag.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

from mvd_edge.core.errors import TensorRTUnavailable  # one class for the engine builder and the plugin
from mvd_edge.runtime.sidecar import EngineError

INSTALL_HINT = ("TensorRT is not installed: pip install 'mvd-edge[trt-cu12]' (CUDA 12 drivers) or "
                "'mvd-edge[trt-cu13]' (CUDA 13) on a machine with an NVIDIA GPU; on Jetson use JetPack's TensorRT "
                "(a venv made with --system-site-packages); or build an ONNX Runtime engine with --backend ort")


def import_tensorrt():
    """``import tensorrt`` or a one-line error saying how to install it."""
    try:
        import tensorrt as trt  # noqa: PLC0415
    except Exception as exc:  # ImportError, or the PyPI stub failing to find its libraries
        raise TensorRTUnavailable(INSTALL_HINT) from exc
    if not hasattr(trt, "Builder"):  # tensorrt-stubs alone: an empty `tensorrt` namespace package
        raise TensorRTUnavailable(f"`tensorrt` here holds only type stubs (tensorrt-stubs). {INSTALL_HINT}")
    return trt


def major_version(version: str) -> int:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        raise TensorRTUnavailable(f"cannot parse TensorRT version {version!r}") from None


def network_flags(trt) -> int:
    """Creation flags for a strongly typed network on this TensorRT."""
    major = major_version(trt.__version__)
    if major < 10:
        raise TensorRTUnavailable(f"TensorRT {trt.__version__} is too old: mvd-edge needs 10.x (strongly typed) or 11.x")
    if major == 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    return 0


class TrtBuild(NamedTuple):
    """What :func:`build_serialized_engine` built: write ``engine`` first, then ``timing_cache``."""

    engine: bytes
    facts: dict
    timing_cache: bytes | None  # the updated timing cache to save, None when the build used none


def build_serialized_engine(onnx_path: Path, input_name: str, input_chw: tuple[int, int, int],
                            batch: tuple[int, int, int], workspace_bytes: int, timing_cache: Path | None = None,
                            verbose: bool = False) -> TrtBuild:
    """Parse ``onnx_path`` into a strongly typed network and build it.

    ``batch`` is the optimisation profile (min, opt, max) of the dynamic batch axis. The
    timing cache file is read if present; TensorRT refuses one made on another GPU or
    TensorRT version, and then the build goes on without it (with a warning). Nothing is
    written here: the caller saves the engine, then :func:`save_timing_cache`.
    """
    import_tensorrt()  # the one-line install hint when it is absent
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    trt.init_libnvinfer_plugins(logger, "")
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise EngineError(f"TensorRT could not parse {onnx_path}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    cache_used = timing_cache is not None and _use_timing_cache(config, timing_cache)
    profile = builder.create_optimization_profile()
    c, h, w = input_chw
    bmin, bopt, bmax = batch
    # tuples, as NVIDIA's samples pass them: the bindings convert them to Dims (the stubs only know Dims)
    profile.set_shape(input_name, (bmin, c, h, w), (bopt, c, h, w), (bmax, c, h, w))  # type: ignore[arg-type]
    config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise EngineError(f"TensorRT failed to build an engine from {onnx_path} (run with --verbose for the log)")
    cache = config.get_timing_cache() if cache_used else None  # None when no cache is set
    facts = {"tensorrt": trt.__version__, "strongly_typed": True, "network_flags": network_flags(trt)}
    return TrtBuild(bytes(serialized), facts, bytes(cache.serialize()) if cache is not None else None)


def _use_timing_cache(config, path: Path) -> bool:
    """Give ``config`` the timing cache in ``path`` (a new one if there is no file); False, with a
    warning, when TensorRT refuses it (made on another GPU or TensorRT version) or cannot read it."""
    cache = config.create_timing_cache(path.read_bytes() if path.is_file() else b"")
    if cache is not None and config.set_timing_cache(cache, ignore_mismatch=False):
        return True
    warnings.warn(f"TensorRT refused the timing cache {path} (made on another GPU or TensorRT version, or damaged); "
                  "building without one and leaving the file as it is: delete it to start a new cache here",
                  stacklevel=3)
    return False


def save_timing_cache(path: Path, data: bytes) -> bool:
    """Write a timing cache (atomically); a cache that cannot be written is only a warning."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        tmp.replace(path)
    except OSError as exc:
        warnings.warn(f"could not save the TensorRT timing cache {path}: {exc}; the engine is saved", stacklevel=2)
        return False
    return True
