"""Export MVDNet with its embedding head as one ONNX node ``mvd::FusedHead``.

The node (domain ``mvd``, opset version 1) replaces GAP, BN neck, (bottleneck MLP),
concat and L2 norm. TensorRT runs it through the plugin in ``trt_plugin.py``.

Inputs (always five, so the plugin has one fixed signature):

====  ==========  ===========================================================================
 #    name        meaning
====  ==========  ===========================================================================
0-3   maps        the recipe's trunk outputs ``[N, C, h, w]`` in ``model.feature_maps``
                  order (full: ir, shared_g, rgb, shared_x); a one-map recipe repeats map 0
                  in slots 1-3 (``num_maps`` says how many are real)
4     params      initializer ``head_params``: the flat folded parameters of
                  ``fold.FoldedHead`` (layout ``fold.param_layout``; fp16 or fp32)
====  ==========  ===========================================================================

Attributes: ``recipe`` (string: full | shared | z), ``num_maps`` (int: 4 or 1),
``dims`` (ints: ``[C, D]`` for full/shared, ``[C, d1, d2, d3]`` for z), plus
``plugin_namespace = "mvd"`` and ``plugin_version = "1"``, which TensorRT's ONNX parser
reads to find the plugin ``mvd::FusedHead`` (the ONNX domain alone is not used there).
Output: ``[N, D]`` float32, L2-normalised. ``h * w`` is taken from the map shape at run
time (the 1/(h*w) of the pooling is applied in the kernel).

ONNX Runtime has no kernel for this node; export the plain model (no wrapper) for ORT.
Uses the TorchScript exporter (``dynamo=False``) with a ``symbolic`` on an
``autograd.Function``; its eager ``forward`` is ``fold.folded_head_torch``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

from mvd_edge.core.spec import check_recipe
from mvd_edge.kernels.fold import fold_head, folded_math
from mvd_edge.kernels.trt_plugin import out_dim as node_out_dim  # the node's output width, as the plugin reads it
from mvd_edge.model.net import MVDNet

DOMAIN = "mvd"
OP_TYPE = "FusedHead"
OPSET_VERSION = 1
PARAMS_NAME = "head_params"
NUM_SLOTS = 4


class FusedHeadFunction(torch.autograd.Function):
    """``(x0, x1, x2, x3, params, recipe, num_maps, dims) -> [N, D]``; exports as ``mvd::FusedHead``."""

    @staticmethod
    def forward(ctx, x0, x1, x2, x3, params, recipe: str, num_maps: int, dims: tuple[int, ...]):  # noqa: D401
        maps = [x0, x1, x2, x3][:num_maps]
        return folded_math(maps, recipe, tuple(dims), params).to(torch.float32)

    @staticmethod
    def symbolic(g, x0, x1, x2, x3, params, recipe: str, num_maps: int, dims: tuple[int, ...]):
        out = g.op(
            f"{DOMAIN}::{OP_TYPE}", x0, x1, x2, x3, params,
            recipe_s=recipe, num_maps_i=int(num_maps), dims_i=[int(d) for d in dims],
            plugin_namespace_s=DOMAIN, plugin_version_s="1",
        )
        x_type = x0.type()
        try:
            sizes = x_type.sizes()
            n = sizes[0] if sizes else None
        except RuntimeError:
            n = None
        out.setType(x_type.with_dtype(torch.float32).with_sizes([n, node_out_dim(recipe, dims)]))
        return out


class FusedHeadExportWrapper(nn.Module):
    """``x [N, 3, H, W] -> [N, D]``: the model's trunks, then one ``mvd::FusedHead`` op.

    ``model`` must be in eval mode; its head is folded once here (``dtype``: fp32 or fp16
    storage of the ``head_params`` initializer). Eager ``forward`` runs the folded math in
    torch, so the wrapper can be checked against ``model.embed`` before export.
    """

    def __init__(self, model: MVDNet, recipe: str | None = None, dtype: torch.dtype = torch.float32):
        super().__init__()
        self.model = model
        self.recipe = check_recipe(recipe or model.recipe)
        if dtype not in (torch.float16, torch.float32):
            raise ValueError(f"head parameters are stored fp16 or fp32, got {dtype}")
        folded = fold_head(model, self.recipe, dtype=dtype)
        self.observations = folded.observations
        self.dims = tuple(folded.dims)
        self.register_buffer(PARAMS_NAME, folded.params.clone())

    @property
    def num_maps(self) -> int:
        return len(self.observations)

    @property
    def out_dim(self) -> int:
        return node_out_dim(self.recipe, self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = list(self.model.feature_maps(x, self.recipe))
        slots = (maps + [maps[0]] * NUM_SLOTS)[:NUM_SLOTS]
        return FusedHeadFunction.apply(*slots, getattr(self, PARAMS_NAME), self.recipe, self.num_maps, self.dims)


def export_fused_onnx(model: MVDNet, path: str | Path, recipe: str | None = None, *,
                      dtype: torch.dtype = torch.float32, input_size: tuple[int, int] = (256, 128),
                      opset: int = 17, input_name: str = "input", output_name: str = "embedding",
                      dynamic_batch: bool = True) -> Path:
    """Export ``model`` (eval mode) with the fused head to ``path``; returns the path.

    Input ``[N, 3, H, W]`` float32 (normalised RGB), output ``[N, D]`` float32; the batch
    dimension is dynamic unless ``dynamic_batch=False``.
    """
    if model.training:
        raise ValueError("export needs an eval-mode model: call model.eval()")
    wrapper = FusedHeadExportWrapper(model, recipe, dtype).eval()
    device = next(model.parameters()).device
    dummy = torch.zeros(2, 3, *input_size, device=device)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dyn = {input_name: {0: "N"}, output_name: {0: "N"}} if dynamic_batch else None
    with warnings.catch_warnings():
        # the TorchScript exporter is deprecated but is the one with symbolic functions for custom ops
        warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX export.*", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message="The feature will be removed.*", category=DeprecationWarning)
        torch.onnx.export(
            wrapper, (dummy,), str(path), dynamo=False, opset_version=opset,
            input_names=[input_name], output_names=[output_name], dynamic_axes=dyn,
            custom_opsets={DOMAIN: OPSET_VERSION}, do_constant_folding=True,
        )
    return path


def find_fused_head_nodes(onnx_model) -> list:
    """The ``mvd::FusedHead`` nodes of a loaded ``onnx.ModelProto``."""
    return [n for n in onnx_model.graph.node if n.domain == DOMAIN and n.op_type == OP_TYPE]


def fused_head_node_spec(onnx_model) -> dict:
    """Decode the single ``mvd::FusedHead`` node: attributes, input names, params initializer.

    Returns ``{"recipe", "num_maps", "dims", "inputs", "params": np.ndarray, "plugin_namespace"}``.
    Raises ``ValueError`` unless there is exactly one such node with a params initializer.
    """
    from onnx import helper, numpy_helper

    nodes = find_fused_head_nodes(onnx_model)
    if len(nodes) != 1:
        raise ValueError(f"expected exactly one {DOMAIN}::{OP_TYPE} node, found {len(nodes)}")
    node = nodes[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    inits = {i.name: i for i in onnx_model.graph.initializer}
    if len(node.input) != NUM_SLOTS + 1 or node.input[NUM_SLOTS] not in inits:
        raise ValueError(f"{OP_TYPE} node must have {NUM_SLOTS} map inputs and a params initializer; got {list(node.input)}")
    return {
        "recipe": attrs["recipe"].decode() if isinstance(attrs["recipe"], bytes) else attrs["recipe"],
        "num_maps": int(attrs["num_maps"]),
        "dims": [int(d) for d in attrs["dims"]],
        "plugin_namespace": attrs.get("plugin_namespace", b"").decode(),
        "inputs": list(node.input),
        "params": numpy_helper.to_array(inits[node.input[NUM_SLOTS]]),
    }


__all__ = [
    "DOMAIN",
    "OP_TYPE",
    "PARAMS_NAME",
    "FusedHeadExportWrapper",
    "FusedHeadFunction",
    "export_fused_onnx",
    "find_fused_head_nodes",
    "fused_head_node_spec",
]
