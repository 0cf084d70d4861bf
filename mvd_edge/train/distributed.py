"""Distributed training plumbing (``torchrun``): the process group, and the collectives the trainer needs.

The trainer runs under DistributedDataParallel when launched by ``torchrun`` (NCCL on CUDA, gloo on
the CPU); rank 0 writes checkpoints, logs and evaluates. Built so that ``W`` processes with
``data.p_ids = P`` train like one process with ``data.p_ids = W * P`` (same steps, same parameters
up to floating-point summation order; tests/test_ddp.py measures it):

- the sampler's identity split: each step's global batch of ``W * P`` identities is the one a
  single process draws, rank ``r`` takes identities ``r*P ... r*P+P-1`` (``batches_per_epoch``
  counts steps);
- the loss sees the global batch: every rank all-gathers the network outputs, labels and
  modalities of all ranks (:func:`global_batch`, with gradient: :func:`gather_rows`) and computes
  the loss of the whole batch, so batch-coupled terms (batch-hard triplet / ranked list,
  cross-modal pairs) are those of the large batch; with DDP's gradient averaging the gradient is
  exactly the large batch's (see :func:`gather_rows`). A trainer subclass that overrides
  ``compute_loss`` (the distiller) computes its loss on its own rank's rows unless it calls
  :func:`global_batch`;
- ``dist.sync_bn`` (default on): BatchNorm statistics over the global batch, with
  ``torch.nn.SyncBatchNorm`` where torch runs it (CUDA, XPU, HPU) and :class:`AllReduceBatchNorm`
  elsewhere (torch's SyncBatchNorm refuses CPU tensors);
- what is *not* equal: random draws. Augmentation and dropout use each rank's own stream
  (seeded ``seed + rank``), so they are statistically, not draw for draw, those of one process.
  Every rank's RNG state is saved in ``last.pt`` (:meth:`DistInfo.all_gather_object`), so a
  resumed distributed run on the same number of processes continues draw for draw.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    """This process's place in the run; every method is a no-op (or the identity) in one process."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_gather_object(self, obj) -> list | None:
        """Every rank's ``obj``, in rank order, on every rank (a collective); None in one process."""
        if not self.enabled:
            return None
        objs: list = [None] * self.world_size
        dist.all_gather_object(objs, obj)
        return objs

    def wrap(self, module: torch.nn.Module, device: str) -> torch.nn.Module:
        """``module`` under DistributedDataParallel (its gradients averaged over ranks); itself in one process."""
        if not self.enabled:
            return module
        ids = [torch.device(device).index] if device.startswith("cuda") else None
        return torch.nn.parallel.DistributedDataParallel(module, device_ids=ids)

    def close(self) -> None:
        """Wait for every rank, then leave the process group."""
        if self.enabled:
            dist.barrier()
            dist.destroy_process_group()


def init_distributed(device: str) -> DistInfo:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        dist.init_process_group(backend=backend)
    return info


class _GatherRows(torch.autograd.Function):
    """``x [n, D]`` of every rank -> ``[world_size * n, D]`` in rank order (equal ``n`` on every rank)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.contiguous()
        ctx.rank, ctx.n = dist.get_rank(), x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x)
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)  # sum over ranks of d(rank's loss)/d(gathered); all_reduce runs on gloo and NCCL
        return grad[ctx.rank * ctx.n:(ctx.rank + 1) * ctx.n]


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks, differentiable: the backward sums the gradients over ranks too."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x = x.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(x)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        grad = grad.clone(memory_format=torch.contiguous_format)
        dist.all_reduce(grad)
        return grad


def gather_rows(tensors: list[torch.Tensor]) -> list[torch.Tensor]:
    """All-gather each ``[n, ...]`` tensor along dim 0 over the process group: ``[world_size * n, ...]``,
    rows in rank order, differentiable. One collective per dtype (the tensors are packed side by side).

    Gradient: the backward sums, over ranks, the gradient every rank's loss sends to the gathered
    tensor and keeps this rank's rows. When every rank computes the same loss ``L`` of the gathered
    batch, rank ``r``'s parameters get ``W * dL/dx_r * dx_r/dθ``; DDP averages over the ``W`` ranks,
    so the step uses ``sum_r dL/dx_r * dx_r/dθ = dL/dθ``: the gradient of the large batch.
    """
    out: list[torch.Tensor | None] = [None] * len(tensors)
    groups: dict[torch.dtype, list[int]] = {}
    for i, t in enumerate(tensors):
        groups.setdefault(t.dtype, []).append(i)
    for idx in groups.values():
        n = tensors[idx[0]].shape[0]
        flat = [tensors[i].reshape(n, -1) for i in idx]
        widths = [f.shape[1] for f in flat]
        whole = _GatherRows.apply(torch.cat(flat, dim=1))
        for i, part in zip(idx, torch.split(whole, widths, dim=1)):
            out[i] = part.reshape(whole.shape[0], *tensors[i].shape[1:])
    return out  # type: ignore[return-value]



def global_batch(outputs: dict, labels: torch.Tensor, mods: torch.Tensor) -> tuple[dict, torch.Tensor, torch.Tensor]:
    """This rank's training outputs (``{obs: {key: [n, ...]}}``), labels ``[n]`` and modalities ``[n]``
    -> those of every rank, ``[world_size * n, ...]`` in rank order: the batch one process with
    ``world_size * p_ids`` identities sees (the sampler's identity split). Differentiable
    (:func:`gather_rows`)."""
    keys = [(o, k) for o in outputs for k in outputs[o]]
    tensors = [outputs[o][k] for o, k in keys] + [labels, mods.to(labels.device)]
    gathered = gather_rows(tensors)
    out: dict = {o: {} for o in outputs}
    for (o, k), t in zip(keys, gathered):
        out[o][k] = t
    return out, gathered[-2], gathered[-1]


#: device types torch.nn.SyncBatchNorm runs on (it raises ValueError for others, the CPU among them)
TORCH_SYNC_BN_DEVICES = ("cuda", "hpu", "xpu", torch._C._get_privateuse1_backend_name())


class AllReduceBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm (any ``[N, C, ...]`` input) whose training-mode statistics are those of the
    global batch over the process group: what ``torch.nn.SyncBatchNorm`` does, for the devices it
    refuses (the CPU under gloo). Per call: one differentiable all-reduce of the per-channel
    sums and counts, one of the centred squares (two passes, float64 accumulation like ATen's
    CPU batch norm); normalisation with the biased variance, running statistics updated with the
    unbiased one, momentum and ``num_batches_tracked`` as ``torch.nn.BatchNorm*d``. In eval mode,
    or without a process group of more than one rank, it is plain BatchNorm. The backward's
    all-reduces sum the statistics' gradients over ranks (the same convention as SyncBatchNorm
    and :func:`gather_rows`), so with DDP's averaging the gradient is that of BatchNorm on the
    concatenated batch. State dict keys are BatchNorm's: checkpoints load into the plain model.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {input.dim()}D input)")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(input)
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        c = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, c] + [1] * (input.dim() - 2)
        x = input.double()
        sums = _AllReduceSum.apply(torch.cat([x.sum(dims), x.new_full((1,), input.numel() // c)]))
        count = sums[c].detach()
        if float(count) <= 1:
            raise ValueError(f"expected more than 1 value per channel when training, got input size {list(input.shape)}"
                             f" on each of {dist.get_world_size()} processes")
        mean = sums[:c] / count
        var = _AllReduceSum.apply(((x - mean.view(shape)) ** 2).sum(dims)) / count
        scale = torch.rsqrt(var + self.eps)
        if self.weight is not None:
            scale = scale * self.weight.double()
        shift = -mean * scale
        if self.bias is not None:
            shift = shift + self.bias.double()
        if self.training and self.track_running_stats and self.running_mean is not None:
            with torch.no_grad():
                n = float(count)
                self.running_mean.mul_(1.0 - factor).add_(mean.detach().to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1.0 - factor).add_((var.detach() * n / (n - 1)).to(self.running_var.dtype),
                                                         alpha=factor)
        return input * scale.to(input.dtype).view(shape) + shift.to(input.dtype).view(shape)


def convert_sync_batchnorm(module: torch.nn.Module, device: str) -> torch.nn.Module:
    """Every ``BatchNorm*d`` of ``module`` -> ``torch.nn.SyncBatchNorm`` on the devices torch runs it
    on (``TORCH_SYNC_BN_DEVICES``), :class:`AllReduceBatchNorm` elsewhere. Parameters are shared (the
    same ``Parameter`` objects, ``requires_grad`` kept), buffers and train/eval mode carried over."""
    if torch.device(device).type in TORCH_SYNC_BN_DEVICES:
        return torch.nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, torch.nn.modules.batchnorm._BatchNorm) and not isinstance(
            module, (AllReduceBatchNorm, torch.nn.SyncBatchNorm)):
        new = AllReduceBatchNorm(module.num_features, module.eps, module.momentum, module.affine,
                                 module.track_running_stats)
        if module.affine:
            new.weight, new.bias = module.weight, module.bias
        new.running_mean, new.running_var = module.running_mean, module.running_var
        new.num_batches_tracked = module.num_batches_tracked
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module
