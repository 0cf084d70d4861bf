"""The tiny MVDNet checkpoint the build-engine and polygraphy tests convert (as tests/test_calib.py builds its
model): seed 0, BatchNorm statistics from one train-mode pass, so FP16/INT8 conversions see real ranges."""

from __future__ import annotations

from pathlib import Path

import torch

from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.model.checkpoint import CKPT_FORMAT, save_checkpoint
from mvd_edge.model.net import MVDNet


def tiny_checkpoint(path: Path, spec: PreprocessSpec) -> Path:
    torch.manual_seed(0)
    model = MVDNet(num_classes=5, backbone="tiny")
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None
            mod.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(48, 3, spec.height, spec.width))
    model.eval()
    save_checkpoint({"format": CKPT_FORMAT, "epoch": 0, "model": model.state_dict(),
                     "model_spec": model.spec.to_dict(), "recipe": "full", "preprocess": spec.to_dict()}, path)
    return path
