"""The tiny MVDNet the calibration, build-engine and polygraphy tests convert: BatchNorm statistics from one
train-mode pass, so FP16/INT8 conversions see real ranges; and the folder of random crops they calibrate on."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.model.checkpoint import CKPT_FORMAT, save_checkpoint
from mvd_edge.model.net import MVDNet


def tiny_model(seed: int, spec: PreprocessSpec) -> MVDNet:
    torch.manual_seed(seed)
    model = MVDNet(num_classes=5, backbone="tiny")
    for mod in model.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.momentum = None
            mod.reset_running_stats()
    model.train()
    with torch.no_grad():
        model(torch.randn(48, 3, spec.height, spec.width))
    return model.eval()


def tiny_checkpoint(path: Path, spec: PreprocessSpec) -> Path:
    model = tiny_model(0, spec)
    save_checkpoint({"format": CKPT_FORMAT, "epoch": 0, "model": model.state_dict(),
                     "model_spec": model.spec.to_dict(), "recipe": "full", "preprocess": spec.to_dict()}, path)
    return path


def write_calib_crops(folder: Path) -> Path:
    """24 random crops of random sizes per modality in ``folder/rgb`` and ``folder/ir`` (cameras 1 and 2)."""
    rng = np.random.default_rng(0)
    for mod in ("rgb", "ir"):
        (folder / mod).mkdir(parents=True)
        for i in range(24):
            cv2.imwrite(str(folder / mod / f"c{1 + i % 2}_{i:04d}.png"),
                        rng.integers(0, 256, (int(rng.integers(40, 160)), int(rng.integers(20, 80)), 3), np.uint8))
    return folder
