"""Data-parallel training of the self-supervised family (issue 15): several processes (``torchrun``, one per GPU;
on the CPU the gloo backend), one global batch split among them, gradients averaged, BatchNorm statistics of the
global batch.

How it is done (plain ``torch.distributed``, no wrapper): every process holds the whole dataset and the same
seeded generators, so all draw the same global batch; process r trains on its contiguous share
(:func:`shard`, ``batch_size / world_size`` samples), ``all_reduce_gradients_`` averages the gradients after the
backward pass (the gradient of the mean loss over the global batch), and every process steps the same optimiser
on the same weights, so the replicas stay equal (rank 0's weights are broadcast at the start). Losses over the
batch as a whole (ProPos's prototypes, CC's cluster columns and entropy, MoCo's enqueued keys) use
:func:`gather`, differentiable where the loss needs it; as every process then computes the same global term, the
backward pass through the gather (a sum over processes) times the averaging gives exactly its gradient.

BatchNorm: :class:`SyncBatchNorm` normalises with the mean and variance of the **global** batch (sums and counts
all-reduced, differentiably), on the CPU and GPU alike (torch's ``nn.SyncBatchNorm`` is GPU-only). It stands in for
ProPos's shuffle-BN (which only hides the per-GPU statistics from the key / target network): with it, N processes
compute the same losses and gradients as one process on the concatenated batch (tested with gloo and 2 processes).
Without it (``sync_bn: false``) each process normalises its share, as plain DDP.

Only rank 0 writes (checkpoints, history, model); every rank reads a resume checkpoint. ``brb pretrain
--nproc-per-node N`` starts the N processes itself through ``torch.distributed.run`` (inside one SLURM job: the
workflow's ``resources.pretrain.gpus``).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def context() -> DistContext:
    """The running process group's rank and size (one process: rank 0 of 1)."""
    if dist.is_available() and dist.is_initialized():
        return DistContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))
    return DistContext()


def is_main_process() -> bool:
    return context().is_main


def init_from_env(device: str = "auto") -> DistContext:
    """Join the process group that ``torchrun`` describes in the environment (``WORLD_SIZE`` > 1): NCCL with one
    GPU per process when CUDA is used, gloo on the CPU. A no-op for a single process or an existing group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1 or (dist.is_available() and dist.is_initialized()):
        return context()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if use_cuda:
        torch.cuda.set_device(local)
    dist.init_process_group("nccl" if use_cuda else "gloo")
    return context()


def local_device(device: torch.device) -> torch.device:
    """The device of this process: its own GPU (``LOCAL_RANK``) when training on CUDA with several processes."""
    ctx = context()
    if device.type == "cuda" and ctx.enabled:
        return torch.device("cuda", ctx.local_rank)
    return device


def shard(batch: torch.Tensor, ctx: DistContext | None = None) -> torch.Tensor:
    """This process's contiguous share of a global batch (all processes: the batch in rank order)."""
    ctx = ctx or context()
    if not ctx.enabled:
        return batch
    if len(batch) % ctx.world_size:
        raise ValueError(f"a global batch of {len(batch)} samples does not split evenly among {ctx.world_size} "
                         "processes: make pretrain.batch_size a multiple of the process count")
    return batch.tensor_split(ctx.world_size)[ctx.rank]


def gather(t: torch.Tensor, grad: bool = True) -> torch.Tensor:
    """The concatenation over processes (rank order) of ``t`` (N_r, ...); differentiable with ``grad``."""
    ctx = context()
    if not ctx.enabled:
        return t
    if grad:
        with warnings.catch_warnings():  # deprecated in favour of the private functional collectives
            warnings.simplefilter("ignore", FutureWarning)
            from torch.distributed.nn.functional import all_gather

            return torch.cat(all_gather(t))
    parts = [torch.empty_like(t) for _ in range(ctx.world_size)]
    dist.all_gather(parts, t.detach().contiguous())
    return torch.cat(parts)


def all_reduce_gradients_(params) -> None:
    """Average the gradients of ``params`` over the processes (in place; parameters without a gradient skipped)."""
    ctx = context()
    if not ctx.enabled:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_processes(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Each value (a scalar tensor) averaged over the processes, detached (the logged losses)."""
    ctx = context()
    if not ctx.enabled or not values:
        return values
    keys = list(values)
    flat = torch.stack([values[k].detach().float().reshape(()) for k in keys])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    return dict(zip(keys, flat.unbind()))


def broadcast_(tensors, src: int = 0) -> None:
    """Rank ``src``'s values of ``tensors`` to every process (in place)."""
    if not context().enabled:
        return
    with torch.no_grad():
        for t in tensors:
            dist.broadcast(t, src)


def lowest_rank(value: float, device: torch.device | str = "cpu") -> int:
    """The rank whose ``value`` is lowest (ties: the lowest rank); 0 in one process. ``device``: where the
    exchanged scalar lives (the GPU with NCCL)."""
    ctx = context()
    if not ctx.enabled:
        return 0
    mine = torch.tensor([float(value)], dtype=torch.float64, device=device)
    every = [torch.zeros_like(mine) for _ in range(ctx.world_size)]
    dist.all_gather(every, mine)
    return int(torch.cat(every).argmin())


def broadcast_modules_(modules) -> None:
    """Rank 0's parameters and buffers of every module to every process."""
    broadcast_([t for m in modules for t in [*m.parameters(), *m.buffers()]])


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the global batch of all processes (module notes), 1-d or 2-d inputs; one process: plain BN."""

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() not in (2, 3, 4, 5):
            raise ValueError(f"expected a 2-d to 5-d input, got {x.dim()}-d")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and context().enabled):
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims = [0, *range(2, x.dim())]
        count = x.new_tensor([x.numel() / x.shape[1]])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            stats = all_reduce(torch.cat([x.sum(dims), (x * x).sum(dims), count]))
        c = x.shape[1]
        n = stats[2 * c]
        mean = stats[:c] / n
        var = (stats[c:2 * c] / n - mean * mean).clamp_min(0)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        shape = [1, c] + [1] * (x.dim() - 2)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_sync_batchnorm_(module: nn.Module) -> nn.Module:
    """Replace every BatchNorm1d/2d below ``module`` by :class:`SyncBatchNorm`, keeping the **same** parameter
    objects (an optimiser built before still holds them) and buffers. Returns ``module``."""
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm1d, nn.BatchNorm2d)) and not isinstance(child, SyncBatchNorm):
            sync = SyncBatchNorm(child.num_features, child.eps, child.momentum, child.affine, child.track_running_stats)
            if child.affine:
                sync.weight, sync.bias = child.weight, child.bias
            if child.track_running_stats:
                sync.running_mean, sync.running_var = child.running_mean, child.running_var
                sync.num_batches_tracked = child.num_batches_tracked
            sync.train(child.training)
            setattr(module, name, sync)
        else:
            convert_sync_batchnorm_(child)
    return module


__all__ = [
    "DistContext", "SyncBatchNorm", "all_reduce_gradients_", "broadcast_", "broadcast_modules_", "context",
    "convert_sync_batchnorm_", "gather", "init_from_env", "is_main_process", "local_device", "mean_over_processes",
    "shard",
]
