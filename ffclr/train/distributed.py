"""Data-parallel pretraining under `torchrun`: process group, gather with gradients, global BN.

One process per device; NCCL on GPUs, Gloo on CPUs. Each rank takes its slice of the global
batch, projections from all ranks are gathered (gradients flow back through the gather, as in
lightly's `gather_distributed`) so every anchor sees the whole batch's negatives, and batch norm
uses statistics over the global batch. Only rank 0 writes checkpoints, logs and the store.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_from_env(use_cuda: bool) -> DistContext:
    """Join the process group `torchrun` describes in the environment (single process if none)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistContext()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank,
                                world_size=world_size, timeout=timedelta(minutes=10))
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank)


def shutdown(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor):
        out = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(out, tensor.contiguous())
        return tuple(out)

    @staticmethod
    def backward(ctx, *grads):
        stacked = torch.stack(grads)
        dist.all_reduce(stacked)
        return stacked[dist.get_rank()]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """All ranks' `tensor` concatenated along dim 0, in rank order; differentiable."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return tensor
    return torch.cat(_GatherWithGrad.apply(tensor), 0)


def all_mean(value: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()):
        return value
    value = value.detach().clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


def any_rank(flag: bool) -> bool:
    """True on every rank when it is True on any (stop/cancel decisions taken together)."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0])
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor):
        out = tensor.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum over ranks; differentiable (the gradient is summed over ranks too)."""
    return _AllReduceSum.apply(tensor)


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d with statistics over all ranks, on any device (SyncBatchNorm is GPU-only)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            return super().forward(x)
        xf = x.float()
        channels = xf.shape[1]
        count = torch.tensor([xf.numel() / channels], dtype=torch.float32, device=x.device)
        sums = all_reduce(torch.cat([xf.sum((0, 2, 3)), count]))
        total = sums[-1]
        mean = sums[:channels] / total
        centred = xf - mean.view(1, channels, 1, 1)
        var = all_reduce((centred * centred).sum((0, 2, 3))) / total
        with torch.no_grad():
            m = self.momentum if self.momentum is not None else 0.1
            self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
            self.running_var.mul_(1 - m).add_(var.detach() * total / (total - 1), alpha=m)
            self.num_batches_tracked.add_(1)
        shape = (1, channels, 1, 1)
        y = centred * torch.rsqrt(var.view(shape) + self.eps)
        y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def convert_batchnorm(module: nn.Module, use_cuda: bool) -> nn.Module:
    """Global batch norm: torch's SyncBatchNorm on CUDA, `GlobalBatchNorm2d` elsewhere."""
    if use_cuda:
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d) and not isinstance(child, GlobalBatchNorm2d):
            bn = GlobalBatchNorm2d(child.num_features, child.eps, child.momentum, child.affine,
                                   child.track_running_stats)
            bn.load_state_dict(child.state_dict())
            setattr(module, name, bn)
        else:
            convert_batchnorm(child, use_cuda)
    return module
