"""A network-free embedder for checking the matcher itself: ``--model colorhist``.

:class:`ColorHistogramEmbedder` describes a crop by the colour histogram of its central
region (hue x saturation bins for coloured pixels, brightness bins for grey ones). It has
no notion of infrared, so it only makes sense when both streams are colour, e.g.
``mvd-edge synth-video --ir-modality rgb`` (the "IR" view rendered in colour): then the
matcher's detection, tracking, banks and association can be measured apart from the
re-id model. Same interface and stage timings as every :class:`~mvd_edge.runtime.Embedder`.

:class:`OracleEmbedder` is a perfect re-id model for measuring everything else (detection,
tracking, banks, association, the site gallery): the measuring script replaces each crop by
:func:`label_crop` of the ground-truth person its box covers, and the oracle embeds that
label as a unit vector. ``benchmarks/tracking.py`` and ``scripts/site_soak.py --oracle`` use it.
"""

from __future__ import annotations

import cv2
import numpy as np

from mvd_edge.core.preprocess import IMAGENET_MEAN, IMAGENET_STD, PreprocessSpec
from mvd_edge.runtime.base import Embedder

__all__ = ["ColorHistogramEmbedder", "OracleEmbedder", "label_crop"]


class ColorHistogramEmbedder(Embedder):
    """Colour histograms of the crop centre in ``bands`` horizontal bands (head/torso/legs for
    3): ``bands x (hue_bins x sat_bins + grey_bins)`` dims, square-rooted, L2-normalised."""

    backend = "colorhist"

    def __init__(self, hue_bins: int = 12, sat_bins: int = 3, grey_bins: int = 4, bands: int = 3, max_batch: int = 64):
        self.hue_bins, self.sat_bins, self.grey_bins, self.bands = int(hue_bins), int(sat_bins), int(grey_bins), int(bands)
        self.per_band = self.hue_bins * self.sat_bins + self.grey_bins
        super().__init__(PreprocessSpec(height=64, width=32), self.bands * self.per_band, max_batch,
                         {"precision": "fp32", "recipe": "colorhist"})

    def infer(self, x: np.ndarray) -> np.ndarray:
        mean = np.asarray(IMAGENET_MEAN, np.float32)[None, :, None, None]
        std = np.asarray(IMAGENET_STD, np.float32)[None, :, None, None]
        rgb = np.clip((x * std + mean) * 255.0, 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
        n, h, w = rgb.shape[:3]
        out = np.zeros((n, self.dim), np.float32)
        y0, y1 = int(0.1 * h), int(0.9 * h)
        xs = slice(int(0.3 * w), int(0.7 * w))
        edges = np.linspace(y0, y1, self.bands + 1).round().astype(int)
        nh = self.hue_bins * self.sat_bins
        for i in range(n):
            for b in range(self.bands):
                band = np.ascontiguousarray(rgb[i, edges[b]:edges[b + 1], xs])
                hsv = cv2.cvtColor(band, cv2.COLOR_RGB2HSV).reshape(-1, 3).astype(np.int32)
                hue, sat, val = hsv[:, 0], hsv[:, 1], hsv[:, 2]
                coloured = (sat >= 60) & (val >= 40)
                hb = np.minimum(hue * self.hue_bins // 180, self.hue_bins - 1)
                sb = np.minimum((sat - 60) * self.sat_bins // 196, self.sat_bins - 1)
                hist = np.zeros(self.per_band, np.float32)
                np.add.at(hist, (hb * self.sat_bins + sb)[coloured], 1.0)
                gb = np.minimum(val * self.grey_bins // 256, self.grey_bins - 1)
                np.add.at(hist, nh + gb[~coloured], 1.0)
                out[i, b * self.per_band:(b + 1) * self.per_band] = hist / max(1.0, float(hist.sum()))
        out = np.sqrt(out)  # Hellinger-style: damp dominant bins
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def label_crop(person: int) -> np.ndarray:
    """The crop :class:`OracleEmbedder` reads as ground-truth person ``person`` (0..255; 0: nobody)."""
    if not 0 <= int(person) <= 255:
        raise ValueError(f"person label must be in [0, 255], got {person}")
    return np.full((4, 4, 3), int(person), np.uint8)


class OracleEmbedder(Embedder):
    """A perfect re-id model: a :func:`label_crop` of person ``p`` embeds as the unit vector
    ``e_(p mod dim)``, so two crops are alike (cosine 1) exactly when they show the same person.
    Only for crops made by :func:`label_crop` (see the module docstring)."""

    backend = "oracle"

    def __init__(self, dim: int = 128):
        super().__init__(PreprocessSpec(256, 128), int(dim), 64, {"precision": "fp32", "recipe": "oracle"})

    def infer(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - embed is overridden
        raise AssertionError("OracleEmbedder reads label crops in embed(), never preprocessed tensors")

    def embed(self, crops) -> np.ndarray:
        out = np.zeros((len(crops), self.dim), np.float32)
        for i, c in enumerate(crops):
            out[i, int(np.asarray(c)[0, 0, 0]) % self.dim] = 1.0
        return out
