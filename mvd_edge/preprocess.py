"""Preprocessing, defined once: uint8 BGR crops (as OpenCV decodes them) -> network input.

Used by training evaluation, calibration and every runtime backend. numpy + OpenCV only
(the edge runtime must not import torch).

The network input is float32 ``[N, 3, H, W]``, RGB channel order, scaled to [0, 1] and
normalised with the ImageNet mean/std below. The grayscale view the infrared and shared
branches also see is computed inside the network (``MVDNet``), not here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
# ITU-R BT.601 luma weights on RGB, as in the MVD release: g = 0.2989 R + 0.5870 G + 0.1140 B
GRAY_WEIGHTS: tuple[float, float, float] = (0.2989, 0.5870, 0.1140)


@dataclass(frozen=True)
class PreprocessSpec:
    """Everything needed to reproduce the network input from a BGR crop."""

    height: int = 256
    width: int = 128
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    color_order: str = "RGB"  # channel order the network expects
    interpolation: str = "linear"  # cv2.INTER_LINEAR

    def to_dict(self) -> dict:
        return {
            "height": self.height,
            "width": self.width,
            "mean": list(self.mean),
            "std": list(self.std),
            "color_order": self.color_order,
            "interpolation": self.interpolation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        return cls(
            height=int(d["height"]),
            width=int(d["width"]),
            mean=tuple(float(x) for x in d["mean"]),  # type: ignore[arg-type]
            std=tuple(float(x) for x in d["std"]),  # type: ignore[arg-type]
            color_order=str(d.get("color_order", "RGB")),
            interpolation=str(d.get("interpolation", "linear")),
        )


def check_crop(crop: np.ndarray, index: int = 0) -> np.ndarray:
    """Validate one crop: uint8 ``[H, W, 3]`` (or ``[H, W]`` grayscale, expanded to 3 channels)."""
    if not isinstance(crop, np.ndarray):
        raise TypeError(f"crop {index}: expected a numpy array, got {type(crop).__name__}")
    if crop.dtype != np.uint8:
        raise ValueError(f"crop {index}: expected dtype uint8, got {crop.dtype}")
    if crop.ndim == 2:
        crop = np.repeat(crop[:, :, None], 3, axis=2)
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise ValueError(f"crop {index}: expected shape [H, W, 3], got {list(crop.shape)}")
    if crop.shape[0] < 2 or crop.shape[1] < 2:
        raise ValueError(f"crop {index}: too small ({crop.shape[0]}x{crop.shape[1]})")
    return crop


def resize_rgb(crop_bgr: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 BGR ``[h, w, 3]`` -> uint8 RGB ``[H, W, 3]`` at the spec's size."""
    crop_bgr = check_crop(crop_bgr)
    resized = cv2.resize(crop_bgr, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def normalize(rgb_uint8: np.ndarray, spec: PreprocessSpec) -> np.ndarray:
    """uint8 RGB ``[..., H, W, 3]`` -> float32 ``[..., 3, H, W]`` normalised."""
    x = rgb_uint8.astype(np.float32) * (1.0 / 255.0)
    x = (x - np.asarray(spec.mean, np.float32)) / np.asarray(spec.std, np.float32)
    return np.ascontiguousarray(np.moveaxis(x, -1, -3))


def preprocess_batch(crops: Sequence[np.ndarray], spec: PreprocessSpec) -> np.ndarray:
    """List of uint8 BGR crops of any size -> float32 ``[N, 3, H, W]`` network input."""
    if len(crops) == 0:
        return np.zeros((0, 3, spec.height, spec.width), np.float32)
    batch = np.empty((len(crops), spec.height, spec.width, 3), np.uint8)
    for i, crop in enumerate(crops):
        batch[i] = resize_rgb(check_crop(crop, i), spec)
    return normalize(batch, spec)


def read_image(path: str) -> np.ndarray | None:
    """Decode an image file to uint8 BGR ``[H, W, 3]``; ``None`` if unreadable or corrupt."""
    data = np.fromfile(path, dtype=np.uint8) if os.path.isfile(path) else None
    if data is None or data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.ndim != 3 or img.shape[0] < 2 or img.shape[1] < 2:
        return None
    return img

