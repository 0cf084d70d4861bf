"""Calibration ranges with onnxruntime.quantization's calibrators, cached on disk.

``compute_ranges`` feeds a manifest's crops through ``mvd_edge.core.preprocess.preprocess_batch``
into an ``onnxruntime.quantization`` calibrator (``create_calibrator``: MinMax, Entropy or
Percentile) and returns the per-tensor ranges (``TensorsData``) of every float tensor of
the graph. The ranges are raw (not symmetrised): the ``trt`` flavour symmetrises them when
it builds its Q/DQ graph, the ``cpu`` flavour uses them as they are.

Cache: ``<cache_dir>/ranges-<key[:20]>.json``, where ``key`` is the sha256 of
(model sha256, preprocessing spec, manifest sha256 and content sha256, method, method
parameters, onnxruntime version). A second call with the same key loads the file instead
of running the calibrator.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from mvd_edge.core.errors import MvdEdgeError, UsageError
from mvd_edge.core.preprocess import PreprocessSpec, preprocess_batch
from mvd_edge.core.util import read_json, write_json
from mvd_edge.quant.manifest import Manifest, canonical_sha256, load_manifest

METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
#: Parameters each method accepts (names of ``create_calibrator``'s ``extra_options``) and their defaults.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "minmax": {"moving_average": False, "averaging_constant": 0.01},
    # onnxruntime's own default (128 bins, 128 quantized bins) cannot clip anything; 512 keeps the
    # KL search affordable (its threshold loop is pure Python: ~6 s for 124 tensors, 2048 bins ~40 s)
    "entropy": {"num_bins": 512, "num_quantized_bins": 128},
    "percentile": {"num_bins": 2048, "percentile": 99.999},
}
CACHE_FORMAT = "mvd-edge-calib-ranges/1"
INPUT_NAME = "input"


class RangesError(MvdEdgeError, RuntimeError):
    """Ranges cannot be computed or a cache file is unusable."""


@dataclass
class Ranges:
    """Per-tensor calibration ranges of one graph (``tensors``: onnxruntime ``TensorsData``)."""

    tensors: Any
    key: str
    method: str
    params: dict[str, Any]
    key_material: dict[str, Any]
    n_crops: int
    cache_path: Path | None = None
    cache_hit: bool = False
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {"method": self.method, "params": self.params, "key": self.key, "n_crops": self.n_crops,
                "n_tensors": len(self.tensors.data), "cache_path": str(self.cache_path) if self.cache_path else None,
                "cache_hit": self.cache_hit, "seconds": round(self.seconds, 3)}


def method_enum(method: str):
    from onnxruntime.quantization import CalibrationMethod

    if method not in METHODS:
        raise UsageError(f"unknown calibration method {method!r}; choose one of {', '.join(METHODS)}")
    return {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
            "percentile": CalibrationMethod.Percentile}[method]


def resolve_params(method: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults of ``method`` updated with ``params``; unknown parameter names are an error."""
    method_enum(method)
    out = dict(DEFAULT_PARAMS[method])
    unknown = set(params or {}) - set(out)
    if unknown:
        raise UsageError(f"unknown parameter(s) {sorted(unknown)} for calibration method {method!r}; "
                         f"allowed: {sorted(out)}")
    out.update(params or {})
    return out


def spec_from_onnx(onnx_path: str | Path) -> PreprocessSpec:
    """The preprocessing spec recorded in an exported graph's metadata (``GraphMeta.preprocess``)."""
    from mvd_edge.core.graphmeta import GraphMeta, MetadataError

    try:
        return GraphMeta.from_onnx(onnx_path).preprocess
    except MetadataError as exc:
        raise RangesError(f"{exc}; or pass the preprocessing spec explicitly") from exc


def range_key(model_sha256: str, spec: PreprocessSpec, manifest: Manifest, method: str,
              params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Cache key (sha256 hex) and the material it hashes."""
    import onnxruntime

    material = {"format": CACHE_FORMAT, "model_sha256": model_sha256, "preprocess": spec.to_dict(),
                "manifest_sha256": manifest.sha256, "manifest_content_sha256": manifest.content_sha256,
                "method": method, "params": params, "onnxruntime": onnxruntime.__version__}
    return canonical_sha256(material), material


class CropBatchReader(CalibrationDataReader):
    """``CalibrationDataReader`` over uint8 BGR crops: ``{"input": float32 [B, 3, H, W]}`` batches.

    :meth:`chunk` limits how many batches the next calibrator round reads, so a histogram
    calibrator's intermediate tensors stay bounded in memory. Updates an optional tqdm
    bar per crop.
    """

    def __init__(self, crops: Iterator[np.ndarray], spec: PreprocessSpec, batch_size: int = 32,
                 input_name: str = INPUT_NAME, bar: Any = None):
        self._crops = iter(crops)
        self._next: np.ndarray | None = None
        self.spec = spec
        self.batch_size = batch_size
        self.input_name = input_name
        self.bar = bar
        self.n_seen = 0
        self._budget: int | None = None

    def has_more(self) -> bool:
        if self._next is None:
            self._next = next(self._crops, None)
        return self._next is not None

    def chunk(self, limit: int | None) -> "CropBatchReader":
        self._budget = limit
        return self

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._budget == 0 or not self.has_more():
            return None
        batch = []
        while len(batch) < self.batch_size and self.has_more():
            batch.append(self._next)
            self._next = None
        if self._budget is not None:
            self._budget -= 1
        self.n_seen += len(batch)
        if self.bar is not None:
            self.bar.update(len(batch))
        return {self.input_name: preprocess_batch(batch, self.spec)}


def _make_calibrator(model_path: Path, method: str, params: dict[str, Any], workdir: Path):
    """onnxruntime's calibrator for ``method``; raw (asymmetric) ranges over every float tensor."""
    from onnxruntime.quantization import create_calibrator

    return create_calibrator(Path(model_path), None, augmented_model_path=str(workdir / "augmented.onnx"),
                             calibrate_method=method_enum(method), extra_options={**params, "symmetric": False})


def _save_cache(path: Path, ranges: Ranges) -> None:
    from onnxruntime.quantization.calibrate import CalibrationCacheEncoder

    payload = {"format": CACHE_FORMAT, "key": ranges.key, "key_material": ranges.key_material,
               "n_crops": ranges.n_crops, "seconds": ranges.seconds, "tensors": ranges.tensors.to_dict()}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, payload, cls=CalibrationCacheEncoder)


def _load_cache(path: Path, key: str) -> dict[str, Any]:
    from onnxruntime.quantization.calibrate import TensorsData

    payload = read_json(path, RangesError, "a calibration cache", fmt=CACHE_FORMAT, hint="delete it to recompute")
    if payload.get("key") != key:
        raise RangesError(f"calibration cache {path} does not hold the ranges for key {key[:12]}; delete it")
    payload["tensors"] = TensorsData.from_dict(payload["tensors"])
    return payload


def compute_ranges(model_path: str | Path, manifest: "Manifest | str | Path", method: str = "minmax",
                   params: dict[str, Any] | None = None, spec: PreprocessSpec | None = None,
                   cache_dir: str | Path | None = None, model_sha256: str | None = None, batch_size: int = 32,
                   chunk_batches: int = 8, progress: bool = True) -> Ranges:
    """Calibration ranges of ``model_path``'s float tensors on ``manifest``'s crops.

    Args:
        model_path: the (prepared) FP32 ONNX graph to calibrate; input ``input`` float32 [N,3,H,W].
        manifest: a :class:`Manifest` or the path of its JSON.
        method: ``minmax`` | ``entropy`` | ``percentile``.
        params: method parameters (see :data:`DEFAULT_PARAMS`); unknown names are an error.
        spec: preprocessing; default: the ``mvd_edge.preprocess`` metadata of ``model_path``.
        cache_dir: where ranges are cached (``None``: no cache).
        model_sha256: identity of the model in the cache key (default: sha256 of ``model_path``).
        batch_size, chunk_batches: crops per calibrator batch, batches per collection round.
        progress: show a tqdm bar (crops).
    """
    from mvd_edge.runtime.sidecar import sha256_file

    t0 = time.perf_counter()
    manifest = load_manifest(manifest)
    params = resolve_params(method, params)
    spec = spec or spec_from_onnx(model_path)
    key, material = range_key(model_sha256 or sha256_file(model_path), spec, manifest, method, params)
    cache_path = Path(cache_dir) / f"ranges-{key[:20]}.json" if cache_dir is not None else None
    if cache_path is not None and cache_path.is_file():
        payload = _load_cache(cache_path, key)
        return Ranges(payload["tensors"], key, method, params, material, int(payload["n_crops"]), cache_path,
                      cache_hit=True, seconds=time.perf_counter() - t0)
    manifest.verify()
    from tqdm import tqdm

    with tempfile.TemporaryDirectory(prefix="mvd-calib-") as tmp, \
            tqdm(total=len(manifest), desc=f"calibration ranges ({method})", unit="crop", disable=not progress,
                 leave=False) as bar:
        calibrator = _make_calibrator(Path(model_path), method, params, Path(tmp))
        reader = CropBatchReader(manifest.crops(), spec, batch_size=batch_size, bar=bar)
        while reader.has_more():
            calibrator.collect_data(reader.chunk(chunk_batches))
        tensors = calibrator.compute_data()
        del calibrator
    if reader.n_seen != len(manifest):
        raise RangesError(f"calibration read {reader.n_seen} crops, the manifest lists {len(manifest)}")
    ranges = Ranges(tensors, key, method, params, material, reader.n_seen, cache_path, cache_hit=False,
                    seconds=time.perf_counter() - t0)
    if cache_path is not None:
        _save_cache(cache_path, ranges)
    return ranges
