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

``import mvd_edge.kernels`` pulls in neither Triton nor TensorRT. ``TRITON_INTERPRET=1``
must be set before ``fused_head`` is first imported.
"""
