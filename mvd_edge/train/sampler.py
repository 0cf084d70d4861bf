"""Cross-modality identity sampler: every batch holds P identities x (K visible + K infrared) images."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from mvd_edge.core.errors import UsageError
from mvd_edge.core.modality import Modality


class CrossModalIdentitySampler(Sampler[int]):
    """Yields flat sample indices, batch after batch, ``P * 2K`` per batch.

    Each batch: ``p_ids`` distinct identities, for each ``k`` visible then ``k`` infrared
    images (drawn without replacement where an identity has enough, with replacement
    otherwise). Identities that lack either modality cannot form a cross-modal batch and
    are left out (with a warning). The order is a pure function of ``(seed, epoch)``, so
    resuming at an epoch reproduces it. Under DistributedDataParallel each rank takes
    every ``world_size``-th batch (``rank`` offset), so ranks see disjoint batches.

    ``pids``: identity label per sample; ``modalities``: ``Modality`` per sample.
    """

    def __init__(self, pids: Sequence[int], modalities: Sequence[Modality], p_ids: int, k: int, seed: int = 0,
                 batches_per_epoch: int | None = None, rank: int = 0, world_size: int = 1):
        if p_ids < 2 or k < 1:
            raise UsageError(f"need p_ids >= 2 and k >= 1, got p_ids={p_ids}, k={k}")
        self.p, self.k, self.seed = p_ids, k, seed
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        by_id: dict[int, dict[Modality, list[int]]] = {}
        for i, (pid, mod) in enumerate(zip(pids, modalities)):
            by_id.setdefault(int(pid), {Modality.VISIBLE: [], Modality.INFRARED: []})[Modality(mod)].append(i)
        self.index = {pid: (np.array(d[Modality.VISIBLE]), np.array(d[Modality.INFRARED]))
                      for pid, d in by_id.items() if d[Modality.VISIBLE] and d[Modality.INFRARED]}
        dropped = len(by_id) - len(self.index)
        if dropped:
            warnings.warn(f"sampler: {dropped} identities lack one modality and are not sampled", stacklevel=2)
        self.pids = np.array(sorted(self.index))
        if len(self.pids) < p_ids:
            raise UsageError(
                f"only {len(self.pids)} identities have both modalities; a batch needs p_ids={p_ids}"
            )
        n_images = sum(len(a) + len(b) for a, b in self.index.values())
        default = max(1, round(n_images / (p_ids * 2 * k)))
        self.total_batches = int(batches_per_epoch or default)
        self.total_batches = max(self.world_size, self.total_batches - self.total_batches % self.world_size)

    @property
    def batch_size(self) -> int:
        return self.p * 2 * self.k

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.seed = int(state["epoch"]), int(state["seed"])

    def _take(self, rng: np.random.Generator, pool: np.ndarray) -> np.ndarray:
        return rng.choice(pool, size=self.k, replace=len(pool) < self.k)

    def batches(self) -> list[np.ndarray]:
        """All batches of the current epoch for this rank."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = np.empty(0, dtype=np.int64)
        out = []
        for b in range(self.total_batches):
            if len(order) < self.p:
                order = np.concatenate([order, rng.permutation(self.pids)])
            chosen, order = order[: self.p], order[self.p:]
            if len(set(chosen.tolist())) < self.p:  # a duplicate at a permutation seam
                chosen = rng.choice(self.pids, size=self.p, replace=False)
            idx = [np.concatenate([self._take(rng, self.index[pid][0]), self._take(rng, self.index[pid][1])])
                   for pid in chosen]
            if b % self.world_size == self.rank:
                out.append(np.concatenate(idx))
        return out

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return (self.total_batches // self.world_size) * self.batch_size
