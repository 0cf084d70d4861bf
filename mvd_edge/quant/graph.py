"""Graph analysis for Q/DQ placement: which nodes are quantizable layers, which are the head.

Vocabulary (on the prepared FP32 graph):

* **layers** - the nodes Q/DQ is placed around, the way TensorRT fuses them: every
  ``Conv`` (input + per-channel weight) and every *residual* ``Add`` (an ``Add`` of two
  computed ``[N, C, H, W]`` maps below a ``Conv``: both inputs quantized).
* **input** - nodes above every layer (the in-graph grayscale view): kept in FP32.
* **head** - nodes below a layer with no layer below them: everything after the last
  Conv/residual Add of each trunk (final ReLU, global pooling, BN neck, bottleneck
  Gemm/MatMul, concatenation, L2 normalisation): kept in FP32 by default.
* **trunk** - the other nodes between layers (ReLU, MaxPool): quantized only where the
  flavour wants op outputs quantized (``cpu``).

:func:`prepare` runs onnxruntime's ``quant_pre_process`` (shape inference and basic
graph optimisation: drops the ``Identity`` nodes torch emits for the shared branch's
reused weights, so every Conv weight is an initializer) and names unnamed nodes.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import onnx

Q_OPS = ("QuantizeLinear",)
DQ_OPS = ("DequantizeLinear",)
#: ops of the head that ``include_head=True`` hands to the quantizer (normalisation ops never are)
HEAD_QUANTIZABLE_OPS = ("GlobalAveragePool", "AveragePool", "ReduceMean", "Flatten", "Reshape",
                        "BatchNormalization", "Gemm", "MatMul", "Relu", "Concat")


def prepare(onnx_fp32: str | Path, out: str | Path) -> Path:
    """FP32 graph -> quantization-ready FP32 graph at ``out`` (same math, same metadata)."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    quant_pre_process(str(onnx_fp32), str(out), skip_symbolic_shape=True)
    model = onnx.load(str(out))
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            node.name = f"{node.op_type}_{i}__mvd"
        seen.add(node.name)
    strip_unused_opsets(model)
    onnx.save(model, str(out))
    return out


def strip_unused_opsets(model: onnx.ModelProto) -> None:
    """Drop opset imports of domains no node uses (optimisers add several)."""
    used = {n.domain or "" for n in model.graph.node} | {""}
    keep = [op for op in model.opset_import if (op.domain or "") in used]
    del model.opset_import[:]
    model.opset_import.extend(keep)


@dataclass
class Layout:
    """Roles of the nodes of a prepared graph (names, topological order)."""

    convs: list[str]
    residual_adds: list[str]
    trunk_other: list[str]
    head: list[str]
    inputs: list[str]
    op_type: dict[str, str]
    last_layer_of_trunk: list[str]

    @property
    def layers(self) -> list[str]:
        """Quantizable layers (Conv + residual Add) in graph order."""
        s = set(self.convs) | set(self.residual_adds)
        return [n for n in self.op_type if n in s]

    def role(self, name: str) -> str:
        roles = (("conv", self.convs), ("residual_add", self.residual_adds), ("head", self.head),
                 ("input", self.inputs), ("trunk", self.trunk_other))
        return next((role for role, names in roles if name in names), "other")


def analyse(model: onnx.ModelProto) -> Layout:
    """Classify every node of ``model`` (see the module docstring)."""
    g = model.graph
    init = {t.name for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    consumers = consumers_of(model)
    const_out = {o for n in g.node if n.op_type == "Constant" for o in n.output}

    order = [n.name for n in g.node]
    # nodes with a Conv strictly above them (nodes of a valid ONNX graph are topologically sorted)
    below_conv: set[str] = set()
    for n in g.node:
        if any(i in producer and (producer[i].op_type == "Conv" or producer[i].name in below_conv) for i in n.input):
            below_conv.add(n.name)

    rank = {vi.name: len(vi.type.tensor_type.shape.dim) for vi in list(g.value_info) + list(g.input)
            if vi.type.tensor_type.HasField("shape")}

    def feature_map(t: str) -> bool:
        """Computed (not a constant) and, where the shape is known, an [N, C, H, W] map."""
        return (t in producer and t not in init and t not in const_out and producer[t].op_type != "Constant"
                and rank.get(t, 4) == 4)

    convs = [n.name for n in g.node if n.op_type == "Conv"]
    res_adds = [n.name for n in g.node if n.op_type == "Add" and n.name in below_conv and len(n.input) == 2
                and all(feature_map(t) for t in n.input)]
    layer_set = set(convs) | set(res_adds)

    # nodes with a layer strictly below them (backward reachability)
    has_layer_below: set[str] = set()
    for n in reversed(g.node):
        if any(c.name in layer_set or c.name in has_layer_below for o in n.output for c in consumers[o]):
            has_layer_below.add(n.name)
    # nodes with a layer strictly above them
    below_layer: set[str] = set()
    for n in g.node:
        if any(i in producer and (producer[i].name in layer_set or producer[i].name in below_layer)
               for i in n.input):
            below_layer.add(n.name)

    head, inputs, trunk = [], [], []
    for name in order:
        if name in layer_set:
            continue
        if name not in below_layer:
            inputs.append(name)
        elif name in has_layer_below:
            trunk.append(name)
        else:
            head.append(name)
    last = [name for name in order if name in layer_set and name not in has_layer_below]
    return Layout(convs, res_adds, trunk, head, inputs, {n.name: n.op_type for n in g.node}, last)


def restore_float_inputs(quantized: onnx.ModelProto, prepared: onnx.ModelProto, nodes: set[str]) -> list[str]:
    """Give each node in ``nodes`` back the exact inputs it had in ``prepared`` (FP32 tensors).

    onnxruntime's QDQ quantizer rewires *every* consumer of a quantized tensor to its
    DequantizeLinear output (and shared weights to their int8 copy), including nodes it
    was told to leave alone; this undoes that for excluded/head nodes, re-adds FP32
    initializers they need, and removes Q/DQ nodes left without consumers. Returns the
    names of the nodes whose inputs changed. The caller must make sure no producer of
    those inputs was folded away (removable activations).
    """
    orig = {n.name: n for n in prepared.graph.node}
    orig_init = {t.name: t for t in prepared.graph.initializer}
    changed = []
    for node in quantized.graph.node:
        if node.name in nodes and node.name in orig and list(node.input) != list(orig[node.name].input):
            del node.input[:]
            node.input.extend(orig[node.name].input)
            changed.append(node.name)
    have_init = {t.name for t in quantized.graph.initializer}
    produced = {o for n in quantized.graph.node for o in n.output} | {i.name for i in quantized.graph.input}
    for name in nodes:
        for t in orig.get(name, onnx.NodeProto()).input:
            if t and t not in have_init and t not in produced:
                if t not in orig_init:
                    raise RuntimeError(f"cannot restore input {t!r} of {name!r}: no longer in the graph")
                quantized.graph.initializer.append(copy.deepcopy(orig_init[t]))
                have_init.add(t)
    remove_dead_qdq(quantized)
    return changed


def dedicate_dequantize(model: onnx.ModelProto) -> int:
    """Give every reader of a shared DequantizeLinear output its own copy of the node.

    onnxruntime's ``DedicatedQDQPair`` does this for activations only; weights reused by
    two Convs (the shared branch runs on both views) still share one DequantizeLinear.
    TensorRT fuses a Q/DQ pair into one consumer, so the ``trt`` flavour dedicates them
    all. The copies read the same int8 initializer. Returns the number of copies made.
    """
    g = model.graph
    consumers = consumers_of(model)
    copies = 0
    for dq in [n for n in g.node if n.op_type in DQ_OPS]:
        readers = consumers.get(dq.output[0], [])
        for k, reader in enumerate(readers[1:], start=2):
            clone = copy.deepcopy(dq)
            clone.name = f"{dq.name}_{k}"
            clone.output[0] = f"{dq.output[0]}_{k}"
            g.node.append(clone)
            for idx, name in enumerate(reader.input):
                if name == dq.output[0]:
                    reader.input[idx] = clone.output[0]
            copies += 1
    return copies


def consumers_of(model: onnx.ModelProto) -> dict[str, list[onnx.NodeProto]]:
    """``{tensor name: the nodes that read it}``."""
    consumers: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].append(n)
    return consumers


def remove_unread_nodes(model: onnx.ModelProto, op_types: tuple[str, ...]) -> None:
    """Remove the nodes of ``op_types`` whose outputs nobody reads, until there are none."""
    g = model.graph
    outputs = {o.name for o in g.output}
    while True:
        used = {i for n in g.node for i in n.input} | outputs
        dead = [n for n in g.node if n.op_type in op_types and not any(o in used for o in n.output)]
        if not dead:
            return
        for n in dead:
            g.node.remove(n)


def remove_dead_qdq(model: onnx.ModelProto) -> None:
    """Remove Q/DQ nodes whose outputs nobody reads, then initializers nobody reads."""
    remove_unread_nodes(model, Q_OPS + DQ_OPS)
    g = model.graph
    used = {i for n in g.node for i in n.input} | {o.name for o in g.output}
    keep = [t for t in g.initializer if t.name in used]
    if len(keep) != len(g.initializer):
        del g.initializer[:]
        g.initializer.extend(keep)


def placement_report(quantized: onnx.ModelProto, layout: Layout, requested: set[str], excluded: dict[str, str]
                     ) -> dict:
    """What was actually quantized in ``quantized``, node by node of the prepared graph.

    A node counts as quantized when at least one of its inputs comes from a
    DequantizeLinear. ``excluded`` maps node name -> reason for nodes left in FP32 on
    purpose. Returns ``{"quantized": [...], "excluded": [...], "folded": [...], "counts": {...}}``.
    """
    g = quantized.graph
    producer = {o: n for n in g.node for o in n.output}
    present = {n.name: n for n in g.node}
    quantized_rows, excluded_rows, folded = [], [], []
    for name, op in layout.op_type.items():
        node = present.get(name)
        if node is None:
            folded.append({"node": name, "op": op, "role": layout.role(name),
                           "note": "removed by the quantizer (folded into the neighbouring QuantizeLinear range)"})
            continue
        q_inputs = [i for i in node.input if i in producer and producer[i].op_type in DQ_OPS]
        row = {"node": name, "op": op, "role": layout.role(name)}
        if q_inputs:
            quantized_rows.append({**row, "quantized_inputs": len(q_inputs),
                                   "inputs": len([i for i in node.input if i])})
        else:
            reason = excluded.get(name) or ("not quantized in this flavour" if name not in requested
                                            else "no quantizable input")
            excluded_rows.append({**row, "reason": reason})
    counts = {
        "layers": len(layout.layers),
        "layers_quantized": sum(1 for r in quantized_rows if r["role"] in ("conv", "residual_add")),
        "nodes_quantized": len(quantized_rows),
        "nodes_excluded": len(excluded_rows),
        "nodes_folded": len(folded),
        "quantize_linear": sum(1 for n in g.node if n.op_type in Q_OPS),
        "dequantize_linear": sum(1 for n in g.node if n.op_type in DQ_OPS),
    }
    return {"quantized": quantized_rows, "excluded": excluded_rows, "folded": folded, "counts": counts}

