"""Forked DataLoader workers never garbage-collect the parent's objects (mvd_edge.train.dataset.loader_iter)."""

from __future__ import annotations

import gc

import torch
from torch.utils.data import DataLoader, Dataset

from mvd_edge.train.dataset import loader_iter


class FrozenCount(Dataset):
    """Each item: how many objects the worker's collector leaves alone (the frozen generation)."""

    def __len__(self) -> int:
        return 2

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.tensor(gc.get_freeze_count())


def test_workers_inherit_the_parent_objects_frozen_and_the_parent_unfreezes():
    loader = DataLoader(FrozenCount(), batch_size=1, num_workers=1, multiprocessing_context="fork")
    counts = [int(b) for b in loader_iter(loader)]
    assert all(c > 1000 for c in counts), counts  # the parent's objects: out of the worker's collections
    assert gc.get_freeze_count() == 0  # the parent collects as before
    plain = [int(b) for b in iter(loader)]
    assert plain == [0, 0]  # without it the worker's collector visits everything it inherited
