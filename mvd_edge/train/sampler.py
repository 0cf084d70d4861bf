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
    are left out (with a warning). The order is a pure function of ``(seed, epoch)`` (and,
    under DDP, ``world_size``), so resuming at an epoch reproduces it.

    Under DistributedDataParallel (``world_size`` > 1) ``split`` says how ranks share the data:

    * ``"identities"`` (what the trainer uses): every optimisation step draws one *global*
      batch of ``world_size * p_ids`` distinct identities, exactly as a single process with
      ``p_ids * world_size`` draws it (same random stream), and rank ``r`` takes identities
      ``r * p_ids ... (r + 1) * p_ids - 1`` of it with their ``2k`` images. The ranks' batches,
      concatenated in rank order, are the single process's batch, row for row; so DDP on
      ``W`` processes with ``p_ids = P`` sees the data of one process with ``p_ids = W * P``.
      ``batches_per_epoch`` counts steps (global batches); its default is one pass over the
      training images at the global batch size.
    * ``"batches"`` (the older split): each rank takes every ``world_size``-th batch of
      ``p_ids`` identities (``rank`` offset); ``batches_per_epoch`` counts batches over all
      ranks (rounded down to a multiple of ``world_size``). The ranks' batches of one step may
      share identities, and no single-process run sees the same steps.

    With ``world_size == 1`` both splits are the same sampler.

    ``pids``: identity label per sample; ``modalities``: ``Modality`` per sample.
    """

    SPLITS = ("identities", "batches")

    def __init__(self, pids: Sequence[int], modalities: Sequence[Modality], p_ids: int, k: int, seed: int = 0,
                 batches_per_epoch: int | None = None, rank: int = 0, world_size: int = 1,
                 split: str = "batches"):
        if p_ids < 2 or k < 1:
            raise UsageError(f"need p_ids >= 2 and k >= 1, got p_ids={p_ids}, k={k}")
        if split not in self.SPLITS:
            raise UsageError(f"unknown sampler split {split!r}; choose one of {', '.join(self.SPLITS)}")
        if not 0 <= rank < world_size:
            raise UsageError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.p, self.k, self.seed = p_ids, k, seed
        self.rank, self.world_size, self.split = rank, world_size, split
        #: identities drawn per step: all ranks' together under the identity split
        self.global_p = p_ids * world_size if split == "identities" else p_ids
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
        if len(self.pids) < self.global_p:
            need = f"p_ids={p_ids}" if self.global_p == p_ids else \
                f"p_ids={p_ids} on each of {world_size} processes ({self.global_p} distinct identities a step)"
            raise UsageError(f"only {len(self.pids)} identities have both modalities; a batch needs {need}")
        n_images = sum(len(a) + len(b) for a, b in self.index.values())
        default = max(1, round(n_images / (self.global_p * 2 * k)))
        self.total_batches = int(batches_per_epoch or default)
        if split == "batches":
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
        """All batches of the current epoch for this rank (each ``[batch_size]`` sample indices)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        order = np.empty(0, dtype=np.int64)
        g = self.global_p
        mine = slice(self.rank * self.p, (self.rank + 1) * self.p) if self.split == "identities" else slice(None)
        out = []
        for b in range(self.total_batches):
            if len(order) < g:
                order = np.concatenate([order, rng.permutation(self.pids)])
            chosen, order = order[:g], order[g:]
            if len(set(chosen.tolist())) < g:  # a duplicate at a permutation seam
                chosen = rng.choice(self.pids, size=g, replace=False)
            # every rank draws the images of every identity, so all ranks follow one random stream
            idx = [np.concatenate([self._take(rng, self.index[pid][0]), self._take(rng, self.index[pid][1])])
                   for pid in chosen]
            if self.split == "identities" or b % self.world_size == self.rank:
                out.append(np.concatenate(idx[mine]))
        return out

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return self.steps_per_epoch * self.batch_size

    @property
    def steps_per_epoch(self) -> int:
        """Batches this rank yields per epoch (optimisation steps)."""
        return self.total_batches if self.split == "identities" else self.total_batches // self.world_size
