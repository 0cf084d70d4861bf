"""INT8 Q/DQ graphs from one set of calibration ranges, in two flavours.

Both flavours quantize the same *layers* (:mod:`mvd_edge.quant.graph`): every Conv (input
activation + per-channel symmetric int8 weight) and both inputs of every residual Add;
the input stage (grayscale view) and the embedding head stay FP32 unless
``include_head=True``. They differ where the fast paths differ:

* ``trt`` - what TensorRT's explicit quantization wants: symmetric int8 activations
  (zero point 0, range [-127, 127]), Q/DQ on layer *inputs* only (no Q/DQ on Conv/Add
  outputs, TensorRT fuses those itself), a dedicated Q/DQ pair per consumer (shared
  weights get one DequantizeLinear per Conv), ReLUs kept, float biases. On ONNX Runtime's CPU provider this graph runs as simulated quantization.
* ``cpu`` - ONNX Runtime's x86 fast path: asymmetric uint8 activations, int8 per-channel
  weights, int32 biases, Q/DQ on Conv/Add/ReLU/MaxPool outputs too so ORT fuses them into
  QLinearConv / QLinearAdd, ReLUs folded into the output ranges. ``reduce_range=True``
  (default) quantizes weights to 7 bits, what ORT recommends for CPUs without VNNI
  (u8 x s8 products accumulate in saturating int16 there).

Layers listed in ``exclude`` (the accuracy fallback) keep FP32 inputs and weights.
The Q/DQ nodes themselves are written by onnxruntime.quantization's ``QDQQuantizer``.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import onnx

from mvd_edge.deploy.formats import INT8_FLAVOURS
from mvd_edge.quant.graph import (
    HEAD_QUANTIZABLE_OPS,
    Layout,
    analyse,
    consumers_of,
    dedicate_dequantize,
    placement_report,
    restore_float_inputs,
    strip_unused_opsets,
)

REMOVABLE_ACTIVATIONS = ("Relu", "Clip")


@dataclass(frozen=True)
class Flavour:
    name: str
    activation_type: str  # "int8" | "uint8"
    quantize_outputs: bool
    extra_options: dict[str, Any]
    trunk_ops: tuple[str, ...]  # non-layer trunk ops also handed to the quantizer
    description: str


FLAVOURS: dict[str, Flavour] = {
    "trt": Flavour(
        "trt", "int8", False,
        {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
         "DedicatedQDQPair": True, "AddQDQPairToWeight": False, "QDQKeepRemovableActivations": True},
        (), "TensorRT explicit quantization: symmetric int8 activations (zero point 0), Q/DQ on layer inputs"),
    "cpu": Flavour(
        "cpu", "uint8", True,
        {"ActivationSymmetric": False, "WeightSymmetric": True, "QuantizeBias": True,
         "DedicatedQDQPair": False, "AddQDQPairToWeight": False, "QDQKeepRemovableActivations": False},
        ("Relu", "Clip", "MaxPool"),
        "ONNX Runtime x86: uint8 asymmetric activations, int8 weights, QLinearConv/QLinearAdd fusable"),
}


def flavour(name: str) -> Flavour:
    if name not in FLAVOURS:
        raise ValueError(f"unknown INT8 flavour {name!r}; choose one of {', '.join(INT8_FLAVOURS)}")
    return FLAVOURS[name]


def load_for_quantization(prepared: str | Path) -> onnx.ModelProto:
    """Load a prepared graph with ONNX shape inference (what the quantizer expects)."""
    from onnxruntime.quantization.quant_utils import load_model_with_shape_infer

    return load_model_with_shape_infer(Path(prepared))


def _plan(layout: Layout, model: onnx.ModelProto, fl: Flavour, include_head: bool, exclude: set[str]
          ) -> tuple[list[str], list[str], dict[str, str]]:
    """Nodes handed to the quantizer, op types, and {excluded node: reason}."""
    nodes = [n for n in layout.layers if n not in exclude]
    reasons = {n: "kept in FP32 by the accuracy fallback" for n in exclude}
    reasons.update({n: "input stage (kept in FP32)" for n in layout.inputs})
    op_types = {"Conv", "Add"} | set(fl.trunk_ops)
    nodes += [n for n in layout.trunk_other if layout.op_type[n] in fl.trunk_ops]
    if include_head:
        head_q = [n for n in layout.head if layout.op_type[n] in HEAD_QUANTIZABLE_OPS]
        nodes += head_q
        op_types |= {layout.op_type[n] for n in head_q}
        reasons.update({n: "head normalisation (kept in FP32)" for n in layout.head if n not in head_q})
    else:
        reasons.update({n: "embedding head (kept in FP32; include_head=True to quantize)" for n in layout.head})
    # A removable activation folded into its producer's range would leave no FP32 copy of
    # its output for consumers that must read FP32: keep such activations unquantized.
    chosen = set(nodes)
    if not fl.quantize_outputs:
        nodes = [n for n in nodes if layout.op_type[n] not in REMOVABLE_ACTIVATIONS or n in layout.head]
    else:
        consumers = consumers_of(model)
        outputs_of = {node.name: list(node.output) for node in model.graph.node}
        nodes = [n for n in nodes if layout.op_type[n] not in REMOVABLE_ACTIVATIONS
                 or all(c.name in chosen for o in outputs_of[n] for c in consumers.get(o, []))]
    return nodes, sorted(op_types), reasons


def build_qdq(prepared: str | Path | onnx.ModelProto, ranges: Any, flavour_name: str, include_head: bool = False,
              exclude: Sequence[str] = (), reduce_range: bool = True) -> tuple[onnx.ModelProto, dict]:
    """One INT8 Q/DQ graph from ``ranges`` (a ``Ranges`` or onnxruntime ``TensorsData``).

    Args:
        prepared: the prepared FP32 graph (:func:`mvd_edge.quant.graph.prepare`) the ranges were
            computed on (a path, or a model loaded with :func:`load_for_quantization`).
        flavour_name: ``trt`` or ``cpu`` (see the module docstring).
        include_head: also quantize the embedding head (pooling, BN neck, Gemm/MatMul).
        exclude: layer names (Conv / residual Add) kept in FP32.
        reduce_range: ``cpu`` flavour only: 7-bit weights for CPUs without VNNI.

    Returns:
        ``(model, placement_report)``; the model is checked with ``onnx.checker``.
    """
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.onnx_model import ONNXModel
    from onnxruntime.quantization.qdq_quantizer import QDQQuantizer

    fl = flavour(flavour_name)
    base = prepared if isinstance(prepared, onnx.ModelProto) else load_for_quantization(prepared)
    layout = analyse(base)
    exclude_set = set(exclude)
    unknown = exclude_set - set(layout.layers)
    if unknown:
        raise ValueError(f"cannot exclude {sorted(unknown)[:3]}: not quantizable layers of this graph "
                         f"(layers are its Conv and residual Add nodes)")
    tensors = getattr(ranges, "tensors", ranges)
    nodes, op_types, reasons = _plan(layout, base, fl, include_head, exclude_set)
    model = copy.deepcopy(base)
    if nodes:
        act = QuantType.QInt8 if fl.activation_type == "int8" else QuantType.QUInt8
        quantizer = QDQQuantizer(
            model, True, bool(reduce_range) and fl.name == "cpu", QuantType.QInt8, act, copy.deepcopy(tensors),
            nodes, [], op_types,
            {**fl.extra_options, "OpTypesToExcludeOutputQuantization": [] if fl.quantize_outputs else op_types})
        model = quantizer.quantize_model()
    float_nodes = {n.name for n in base.graph.node} - set(nodes)
    restore_float_inputs(model, base, float_nodes)
    if fl.name == "trt":
        dedicate_dequantize(model)
    strip_unused_opsets(model)
    ONNXModel(model).topological_sort()  # the quantizer appends Q/DQ nodes at the end
    del model.graph.value_info[:]  # stale after rewriting; runtimes re-infer
    onnx.checker.check_model(model)
    report = placement_report(model, layout, set(nodes), reasons)
    report.update(flavour=fl.name, description=fl.description, activation_type=fl.activation_type,
                  weight_type="int8", weight_bits=7 if (reduce_range and fl.name == "cpu") else 8,
                  per_channel_weights=True, include_head=include_head, excluded_layers=sorted(exclude_set),
                  layers=layout.layers, head=layout.head)
    return model, report
