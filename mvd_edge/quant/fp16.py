"""FP16 ONNX graph with FP32 input/output, and a report of values FP16 cannot hold.

The graph is converted by ``onnxruntime.transformers.float16.convert_float_to_float16``
with ``keep_io_types=True`` (Cast nodes at the boundary; callers keep feeding float32
and get float32 back). Before converting, the FP32 graph runs on calibration crops (or,
without any, on seeded random crops) with every intermediate tensor as an output; any
tensor whose ``|max|`` exceeds 65504 (the largest finite FP16) is reported, and with
``keep_overflow_fp32=True`` (default) the nodes producing or reading it stay FP32. Initializers
outside the FP16 range are reported too (the converter clamps them).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import numpy as np
import onnx

from mvd_edge.core.util import random_crops
from mvd_edge.quant.graph import remove_unread_nodes

FP16_MAX = 65504.0


def tensor_absmax(model: onnx.ModelProto, batches: Iterable[np.ndarray], input_name: str = "input") -> dict[str, float]:
    """``{tensor: max |value|}`` over every float tensor of ``model`` on the given input batches."""
    from onnx import shape_inference

    from mvd_edge.quant.sensitivity import session

    m = shape_inference.infer_shapes(copy.deepcopy(model))
    known = {o.name for o in m.graph.output}
    m.graph.output.extend([vi for vi in m.graph.value_info
                           if vi.type.tensor_type.elem_type == onnx.TensorProto.FLOAT and vi.name not in known])
    sess = session(m, exact_qdq=True)  # no graph optimisation: every tensor is kept
    names = [o.name for o in sess.get_outputs()]
    out: dict[str, float] = {}
    for x in batches:
        for name, val in zip(names, sess.run(None, {input_name: x})):
            if isinstance(val, np.ndarray) and val.dtype == np.float32 and val.size:
                out[name] = max(out.get(name, 0.0), float(np.nanmax(np.abs(val))))
    return out


def fp16_graph(model: onnx.ModelProto, crops: Sequence[np.ndarray] | None, spec, keep_overflow_fp32: bool = True,
               op_block_list: Sequence[str] | None = None, n_random: int = 16, seed: int = 0,
               batch_size: int = 32) -> tuple[onnx.ModelProto, dict]:
    """FP32 ``model`` -> (FP16 model with FP32 I/O, report).

    Args:
        model: the FP32 graph (input ``input`` float32 [N,3,H,W]).
        crops: uint8 BGR calibration crops for the overflow check; ``None``: ``n_random``
            seeded random crops (reported as such).
        spec: ``PreprocessSpec`` of the graph.
        keep_overflow_fp32: keep the nodes that produce or read an overflowing tensor in FP32.
        op_block_list: op types kept in FP32 (default: the converter's ``DEFAULT_OP_BLOCK_LIST``).

    Report: ``{"overflow": [{"tensor", "node", "op", "absmax"}], "initializers_out_of_range": [...],
    "kept_fp32": [{"node", "op", "reason"}], "checked_on": {...}}``.
    """
    from onnxruntime.quantization.onnx_model import ONNXModel
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    from mvd_edge.core.preprocess import preprocess_batch

    source = "calibration crops"
    if crops is None:
        crops = random_crops(n_random, seed)
        source = f"{n_random} random crops (seed {seed}): no calibration crops given"
    crops = list(crops)
    batches = [preprocess_batch(crops[i:i + batch_size], spec) for i in range(0, len(crops), batch_size)]
    absmax = tensor_absmax(model, batches)
    producer = {o: n for n in model.graph.node for o in n.output}
    overflow = [{"tensor": t, "node": producer[t].name if t in producer else None,
                 "op": producer[t].op_type if t in producer else None, "absmax": v}
                for t, v in sorted(absmax.items()) if v > FP16_MAX]
    init_absmax = {t.name: float(np.abs(onnx.numpy_helper.to_array(t)).max(initial=0.0))
                   for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    init_bad = [{"initializer": name, "absmax": v} for name, v in init_absmax.items() if v > FP16_MAX]
    blocked_ops = list(DEFAULT_OP_BLOCK_LIST if op_block_list is None else op_block_list)
    # an overflowing tensor must stay FP32 for its producer and for every node reading it
    over_names = {o["tensor"] for o in overflow}
    node_block = sorted({n.name for n in model.graph.node
                         if over_names & (set(n.output) | set(n.input))}) if keep_overflow_fp32 else []
    converted = convert_float_to_float16(copy.deepcopy(model), keep_io_types=True, op_block_list=blocked_ops,
                                         node_block_list=node_block)
    ops = {n.name: n.op_type for n in model.graph.node}
    kept = [{"node": n.name, "op": n.op_type, "reason": "op type in the FP32 block list"}
            for n in model.graph.node if n.op_type in blocked_ops]
    kept += [{"node": n, "op": ops[n], "reason": "reads or writes a tensor that overflows FP16"} for n in node_block]
    collapsed = collapse_cast_round_trips(converted)
    ONNXModel(converted).topological_sort()  # the converter appends its boundary Casts at the end
    onnx.checker.check_model(converted)
    report = {"overflow": overflow, "initializers_out_of_range": init_bad, "kept_fp32": kept,
              "max_abs_activation": max(absmax.values()) if absmax else 0.0,
              "cast_round_trips_removed": collapsed,
              "checked_on": {"source": source, "crops": len(crops), "tensors": len(absmax)},
              "keep_io_types": True, "fp16_max": FP16_MAX}
    return converted, report



def collapse_cast_round_trips(model: onnx.ModelProto) -> int:
    """Rewire ``Cast(to=FLOAT)(Cast(to=FLOAT16)(x))`` with FP32 ``x`` to read ``x``; returns how many.

    The converter casts the output of every node it keeps in FP32 to FP16, even when the
    next node is kept in FP32 too; the lossy (and for overflowing values, infinite) round
    trip between two FP32 nodes is removed here. Casts left without readers are dropped.
    """
    from onnx import shape_inference

    typed = shape_inference.infer_shapes(model)
    elem = {vi.name: vi.type.tensor_type.elem_type
            for vi in list(typed.graph.value_info) + list(typed.graph.input) + list(typed.graph.output)}
    elem.update({t.name: t.data_type for t in model.graph.initializer})
    producer = {o: n for n in model.graph.node for o in n.output}

    def cast_to(node: onnx.NodeProto) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    rename: dict[str, str] = {}
    for node in model.graph.node:
        if cast_to(node) != onnx.TensorProto.FLOAT:
            continue
        inner = producer.get(node.input[0])
        if inner is not None and cast_to(inner) == onnx.TensorProto.FLOAT16 and \
                elem.get(inner.input[0]) == onnx.TensorProto.FLOAT:
            rename[node.output[0]] = inner.input[0]
    outputs = {o.name for o in model.graph.output}
    rename = {k: v for k, v in rename.items() if k not in outputs}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
    remove_unread_nodes(model, ("Cast",))
    return len(rename)
