"""Fused embedding head kernels (``mvd_edge.kernels``).

* ``fold``        - fold an eval-mode MVDNet head into flat parameters (pure torch),
                    the unfused ``reference_head`` and the folded math in torch.
* ``fused_head``  - the Triton kernels, ``fused_head(maps, folded)``,
                    ``make_fused_embed(model, recipe, dtype)`` for the torch backend, and
                    ``compile_head_kernel`` (AOT PTX for TensorRT).
* ``onnx_op``     - ``FusedHeadExportWrapper`` / ``export_fused_onnx``: ONNX with one
                    ``mvd::FusedHead`` node.
* ``trt_plugin``  - ``register_trt_plugin()``: the TensorRT plugin (needs TensorRT >= 10.9).
* ``interp_check``- kernel-vs-reference checks (``TRITON_INTERPRET=1`` on the CPU, or CUDA).

Names are imported lazily, so ``import mvd_edge.kernels`` pulls in neither Triton nor
TensorRT. ``TRITON_INTERPRET=1`` must be set before ``fused_head`` is first imported.
"""

from importlib import import_module

_EXPORTS = {
    "FoldedHead": "fold",
    "fold_head": "fold",
    "reference_head": "fold",
    "folded_head_torch": "fold",
    "param_layout": "fold",
    "fused_head": "fused_head",
    "make_fused_embed": "fused_head",
    "FusedEmbedder": "fused_head",
    "compile_head_kernel": "fused_head",
    "FusedHeadExportWrapper": "onnx_op",
    "export_fused_onnx": "onnx_op",
    "register_trt_plugin": "trt_plugin",
    "TensorRTUnavailable": "trt_plugin",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
