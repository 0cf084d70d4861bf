"""Entry points: ``quantize`` (INT8 Q/DQ graphs) and ``to_fp16`` (FP16 graph).

``quantize(model.onnx, out_dir, manifest)`` writes into ``out_dir``:

* ``<stem>.int8-trt.onnx`` - symmetric int8 Q/DQ graph for TensorRT (strongly typed builds);
* ``<stem>.int8-cpu.onnx`` - uint8-activation Q/DQ graph for ONNX Runtime on x86;
* ``<stem>.int8-report.json`` - the returned report (ranges, placement, fallback, parity);
* ``<stem>.calib-manifest.json`` - the calibration manifest that was used;

where ``<stem>`` is the FP32 file's name without ``.onnx``. Ranges are cached in
``cache_dir`` (default ``out_dir/calib-cache``). Each graph carries the FP32 graph's
:class:`~mvd_edge.core.graphmeta.GraphMeta` derived with :meth:`~GraphMeta.derive_int8`
(``precision="int8"``, flavour, calibration method, manifest hash and placement details).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from mvd_edge.core.errors import UsageError
from mvd_edge.core.graphmeta import GraphMeta
from mvd_edge.core.util import random_crops, write_json
from mvd_edge.deploy.formats import INT8_FLAVOURS, graph_path
from mvd_edge.deploy.parity import compare
from mvd_edge.quant import graph as graph_mod
from mvd_edge.quant.manifest import Manifest, load_manifest
from mvd_edge.quant.qdq import build_qdq, load_for_quantization
from mvd_edge.quant.ranges import compute_ranges
from mvd_edge.quant.sensitivity import embed, fallback, load_samples, session

#: Parity check of every written graph: seeded random crops, cosine vs the FP32 graph.
PARITY_CROPS = 16
PARITY_SEED = 1234


def _stem(onnx_fp32: Path) -> str:
    name = Path(onnx_fp32).name
    return name[: -len(".onnx")] if name.endswith(".onnx") else Path(onnx_fp32).stem


def _random_batch(spec) -> np.ndarray:
    from mvd_edge.core.preprocess import preprocess_batch

    return preprocess_batch(random_crops(PARITY_CROPS, PARITY_SEED), spec)


def _parity(got: np.ndarray, ref: np.ndarray, **facts) -> dict:
    """The parity record of a written graph: its embeddings of the random batch vs the FP32 graph's."""
    par = compare(got, ref)
    return {"inputs": f"{PARITY_CROPS} random crops (seed {PARITY_SEED})", **facts, "mean_cosine": par.mean_cosine,
            "min_cosine": par.min_cosine}


def _set_metadata(model: onnx.ModelProto, meta: GraphMeta) -> None:
    """Give a written precision graph exactly ``meta``: all earlier entries go, including the
    ``onnx.infer``/``onnx.quant.pre_process`` markers ONNX Runtime's pre-processing leaves (they
    describe the tooling, not the model, and these graphs never carried them)."""
    del model.metadata_props[:]
    meta.write_to(model)


def _fp32_metadata(onnx_fp32: Path) -> GraphMeta:
    """The metadata of an FP32 export; refuses a missing file and graphs this module cannot run."""
    if not onnx_fp32.is_file():
        raise FileNotFoundError(f"FP32 ONNX graph not found: {onnx_fp32}")
    meta = GraphMeta.from_onnx(onnx_fp32)
    if meta.precision != "fp32":
        raise UsageError(f"{onnx_fp32} is already a {meta.precision} graph; start from the FP32 export")
    if meta.fused_head:
        raise UsageError(f"{onnx_fp32} holds the fused-head plugin op, which ONNX Runtime cannot run for "
                         f"calibration; export without the fused head to make the FP16/INT8 graph")
    return meta


def _int8_metadata(base: GraphMeta, fp32_sha: str, flavour: str, placement: dict, ranges: Any,
                   manifest: Manifest) -> GraphMeta:
    return base.derive_int8(flavour=flavour, activation_type=placement["activation_type"],
                            weight_bits=placement["weight_bits"], include_head=placement["include_head"],
                            excluded_layers=placement["excluded_layers"], calib_method=ranges.method,
                            calib_params=ranges.params, calib_ranges_key=ranges.key,
                            calib_manifest_sha256=manifest.sha256, calib_crops=ranges.n_crops,
                            source_onnx_sha256=fp32_sha)


def quantize(onnx_fp32: str | Path, out_dir: str | Path, manifest: "Manifest | str | Path", method: str = "minmax",
             flavours: Sequence[str] = INT8_FLAVOURS, include_head: bool = False, max_rank1_drop: float | None = None,
             val_samples: Sequence[Any] | None = None, cache_dir: str | Path | None = None,
             method_params: dict[str, Any] | None = None, reduce_range: bool = True, min_cosine: float | None = None,
             holdout_fraction: float = 0.2, seed: int = 0, progress: bool = True) -> dict:
    """Calibrate ``onnx_fp32`` on ``manifest`` and write one INT8 Q/DQ graph per flavour.

    Args:
        onnx_fp32: FP32 graph from ``mvd_edge.deploy.export.export_onnx``.
        out_dir: output folder (see the module docstring for file names).
        manifest: calibration :class:`Manifest` or the path of its JSON.
        method: ``minmax`` | ``entropy`` | ``percentile`` (``method_params``: its parameters).
        flavours: any of ``trt``, ``cpu``.
        include_head: also quantize the embedding head (default: kept in FP32).
        max_rank1_drop: accuracy budget in Rank-1 points; needs ``val_samples`` (a validation
            split's ``Sample`` list with both modalities, never the test split). A seeded
            ``holdout_fraction`` of the manifest is then held out of the ranges for the
            per-layer sensitivity (:mod:`mvd_edge.quant.sensitivity`).
        min_cosine: a second (or the only) fallback budget: mean embedding cosine vs FP32 on
            the held-out crops at least this.
        cache_dir: range cache (default ``out_dir/calib-cache``).
        reduce_range: ``cpu`` flavour: 7-bit weights (ORT's advice for x86 without VNNI).

    Returns the report dict (also written to ``<stem>.int8-report.json``).
    """
    from mvd_edge.runtime.sidecar import sha256_file

    t0 = time.perf_counter()
    onnx_fp32 = Path(onnx_fp32)
    base_meta = _fp32_metadata(onnx_fp32)
    _check_inputs(flavours, max_rank1_drop, val_samples)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "calib-cache"
    stem = _stem(onnx_fp32)
    manifest = load_manifest(manifest)
    spec = base_meta.preprocess
    fp32_sha = sha256_file(onnx_fp32)
    use_fallback = max_rank1_drop is not None or min_cosine is not None
    ranges_manifest, held = manifest.split_holdout(holdout_fraction, seed) if use_fallback else (manifest, None)
    manifest.save(out_dir / f"{stem}.calib-manifest.json")
    fp32_sess = session(str(onnx_fp32))
    rand_x = _random_batch(spec)
    ref_rand = embed(fp32_sess, rand_x)
    report: dict[str, Any] = {"source": str(onnx_fp32), "source_sha256": fp32_sha,
                              "manifest": {"sha256": manifest.sha256, "counts": manifest.counts,
                                           "source": manifest.source},
                              "include_head": include_head, "flavours": {}}
    with tempfile.TemporaryDirectory(prefix="mvd-quant-") as tmp:
        prepared = graph_mod.prepare(onnx_fp32, Path(tmp) / "prepared.onnx")
        ranges = compute_ranges(prepared, ranges_manifest, method=method, params=method_params, spec=spec,
                                cache_dir=cache_dir, model_sha256=fp32_sha, progress=progress)
        base = load_for_quantization(prepared)
    report["ranges"] = ranges.summary()
    fb: dict[str, Any] | None = None
    if use_fallback:
        fb = _fallback_inputs(fp32_sess, spec, held, max_rank1_drop, min_cosine, val_samples)  # type: ignore[arg-type]
        report["holdout"] = {"fraction": holdout_fraction, "seed": seed, "held_out": len(held),  # type: ignore[arg-type]
                             "ranges_crops": len(ranges_manifest)}
    for fl in flavours:
        exclude: list[str] = []
        entry: dict[str, Any] = {}
        if fb is not None:
            exclude, entry["fallback"] = fallback(base, ranges, fl, include_head=include_head,
                                                  reduce_range=reduce_range, progress=progress, **fb)
        model, placement = build_qdq(base, ranges, fl, include_head=include_head, exclude=exclude,
                                     reduce_range=reduce_range)
        _set_metadata(model, _int8_metadata(base_meta, fp32_sha, fl, placement, ranges, manifest))
        model.doc_string = f"MVD embedding, INT8 Q/DQ ({fl} flavour) calibrated by mvd-edge ({ranges.method})"
        path = graph_path(out_dir, stem, "int8", fl)
        onnx.save(model, str(path))
        arithmetic = "exact Q/DQ (TensorRT's)" if fl == "trt" else "ORT fused QLinear kernels"
        entry.update(onnx=str(path), sha256=sha256_file(path), placement=placement,
                     parity=_parity(embed(session(str(path), exact_qdq=fl == "trt"), rand_x), ref_rand,
                                    arithmetic=arithmetic))
        report["flavours"][fl] = entry
    report["seconds"] = time.perf_counter() - t0
    write_json(out_dir / f"{stem}.int8-report.json", report, indent=1, default=str)
    return report


def _check_inputs(flavours: Sequence[str], max_rank1_drop: float | None, val_samples: Sequence[Any] | None) -> None:
    bad = [f for f in flavours if f not in INT8_FLAVOURS]
    if bad or not flavours:
        raise UsageError(f"unknown INT8 flavour(s) {bad}; choose from {', '.join(INT8_FLAVOURS)}")
    if max_rank1_drop is not None:
        from mvd_edge.core.modality import Modality

        mods = {Modality.parse(s.modality) for s in (val_samples or [])}
        if mods != {Modality.VISIBLE, Modality.INFRARED}:
            raise UsageError("max_rank1_drop needs val_samples: a validation split with both RGB and IR images "
                             "(e.g. load_dataset(...).val)")


def _fallback_inputs(fp32_sess, spec, held: Manifest, max_rank1_drop: float | None, min_cosine: float | None,
                     val_samples: Sequence[Any] | None) -> dict[str, Any]:
    """The accuracy fallback's inputs and their FP32 embeddings (see :func:`mvd_edge.quant.sensitivity.fallback`)."""
    held_x = _preprocess_all(held, spec)
    fb = {"held_x": held_x, "ref_held": embed(fp32_sess, held_x), "max_rank1_drop": max_rank1_drop,
          "min_cosine": min_cosine}
    if max_rank1_drop is not None:
        val_x = load_samples(val_samples, spec)  # type: ignore[arg-type]
        fb.update(val_x=val_x, val_samples=list(val_samples), ref_val=embed(fp32_sess, val_x))  # type: ignore[arg-type]
    return fb


def _preprocess_all(manifest: Manifest, spec, batch: int = 64) -> np.ndarray:
    from mvd_edge.core.preprocess import preprocess_batch

    crops = list(manifest.crops())
    return np.concatenate([preprocess_batch(crops[i:i + batch], spec) for i in range(0, len(crops), batch)])


def to_fp16(onnx_fp32: str | Path, out: str | Path, manifest: "Manifest | str | Path | None" = None,
            keep_overflow_fp32: bool = True, max_check_crops: int = 128) -> dict:
    """Write an FP16 graph with FP32 input/output at ``out``; returns a report.

    Overflow is checked on up to ``max_check_crops`` crops of ``manifest`` (or on seeded
    random crops without one); see :mod:`mvd_edge.quant.fp16`. Metadata: the FP32 graph's
    plus ``mvd_edge.precision=fp16`` and ``mvd_edge.fp16_kept_fp32`` (JSON node list).
    """
    import itertools

    from mvd_edge.quant.fp16 import fp16_graph
    from mvd_edge.runtime.sidecar import sha256_file

    onnx_fp32, out = Path(onnx_fp32), Path(out)
    base_meta = _fp32_metadata(onnx_fp32)
    spec = base_meta.preprocess
    crops = None if manifest is None else list(itertools.islice(load_manifest(manifest).crops(), max_check_crops))
    model = onnx.load(str(onnx_fp32))
    converted, report = fp16_graph(model, crops, spec, keep_overflow_fp32=keep_overflow_fp32)
    _set_metadata(converted, base_meta.derive_fp16(kept_fp32=[k["node"] for k in report["kept_fp32"]],
                                                   source_onnx_sha256=sha256_file(onnx_fp32)))
    converted.doc_string = "MVD embedding, FP16 graph with FP32 input/output (mvd-edge)"
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(converted, str(out))
    rand_x = _random_batch(spec)
    report.update(onnx=str(out), sha256=sha256_file(out), source=str(onnx_fp32),
                  parity=_parity(embed(str(out), rand_x), embed(str(onnx_fp32), rand_x)))
    return report
