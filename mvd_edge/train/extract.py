"""Feature extraction with a torch model (the numpy evaluation is :mod:`mvd_edge.eval.reid`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from mvd_edge.core.preprocess import PreprocessSpec
from mvd_edge.data.base import Sample
from mvd_edge.train.dataset import ReidImageDataset, loader_iter


@torch.no_grad()
def extract_features(model: torch.nn.Module, samples: Sequence[Sample], spec: PreprocessSpec, recipe: str,
                     batch_size: int = 64, device: str | torch.device = "cpu", workers: int = 0,
                     progress: bool = False) -> np.ndarray:
    """Embed ``samples`` with ``model`` in eval mode -> float32 ``[N, D]`` (L2-normalised)."""
    was_training = model.training
    model.eval()
    loader = DataLoader(ReidImageDataset(samples, spec), batch_size=batch_size, shuffle=False,
                        num_workers=workers)
    from tqdm import tqdm

    feats = []
    for x, *_ in tqdm(loader_iter(loader), total=len(loader), desc=f"features ({recipe})", unit="batch", leave=False,
                      disable=not progress):
        feats.append(model(x.to(device), recipe).float().cpu())
    model.train(was_training)
    if not feats:
        return np.zeros((0, 0), np.float32)
    return torch.cat(feats).numpy()
