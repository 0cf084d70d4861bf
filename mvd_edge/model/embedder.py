"""PyTorch backend, straight from a training checkpoint (imports torch only when used).

On CUDA it runs fp16 (``precision="fp16"``) or fp32, optionally ``torch.compile``d, and uses the
fused Triton embedding head by default (``fused_head=False`` turns it off; see
``mvd_edge.kernels``).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from mvd_edge.core.errors import DeviceUnavailable, UsageError
from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.runtime.base import Embedder


class TorchEmbedder(Embedder):
    backend = "torch"

    def __init__(self, checkpoint: str | Path, recipe: str | None = None, device: str = "cpu", precision: str = "fp32",
                 fused_head: bool | None = None, compile: bool = False, max_batch: int = 64):
        import torch

        from mvd_edge.model.checkpoint import model_from_checkpoint

        if precision not in ("fp32", "fp16"):
            raise UsageError(f"torch backend precision must be fp32 or fp16, got {precision!r}")
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise DeviceUnavailable(f"device {device!r} requested but CUDA is not available")
        if precision == "fp16" and not device.startswith("cuda"):
            raise UsageError("fp16 on the torch backend needs --device cuda (CPU fp16 convolutions are not a fast path)")
        model, state = model_from_checkpoint(checkpoint, recipe=recipe, map_location="cpu")
        self.torch = torch
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model = model.to(self.device, self.dtype).eval()
        use_fused = device.startswith("cuda") if fused_head is None else fused_head
        if use_fused and not device.startswith("cuda"):
            raise UsageError("the fused Triton head runs on CUDA (use --no-fused-head on the CPU)")
        self.forward = self._make_forward(use_fused)
        if compile:
            self.forward = torch.compile(self.forward)
        info = {"backend": "torch", "precision": precision, "recipe": self.model.recipe, "fused_head": use_fused,
                "compiled": compile, "device": device, "checkpoint": str(checkpoint)}
        super().__init__(PreprocessSpec.from_dict(state["preprocess"]), self.model.embedding_dim(), max_batch, info)

    def _make_forward(self, fused: bool):
        if fused:
            from mvd_edge.kernels.fused_head import make_fused_embed

            return make_fused_embed(self.model, self.model.recipe, self.dtype)
        return lambda x: self.model.embed(x)

    def infer(self, x: np.ndarray) -> np.ndarray:
        torch = self.torch
        cuda = self.device.type == "cuda"
        with torch.inference_mode():
            t0 = time.perf_counter()
            xt = torch.from_numpy(x).to(self.device, self.dtype, non_blocking=False)
            if cuda:  # split the stages for the profiler: copies and kernels, each synchronised
                torch.cuda.synchronize(self.device)
            t1 = time.perf_counter()
            y = self.forward(xt)
            if cuda:
                torch.cuda.synchronize(self.device)
            t2 = time.perf_counter()
            out = y.float().cpu().numpy()
            t3 = time.perf_counter()
        if cuda:
            self._tick("h2d", t1 - t0)
            self._tick("gpu", t2 - t1)
            self._tick("d2h", t3 - t2)
        return out
