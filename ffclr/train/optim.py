"""Optimisers and the learning-rate schedule of pretraining (warm-up, then cosine, per step)."""
from __future__ import annotations

import math

import torch
from torch import nn

from ffclr.errors import FfclrError

def default_lr(optimizer: str, batch_size: int) -> float:
    """Adam: 1e-3 (the seed's 3e-4 learns too slowly within a CPU budget; see docs/measurements.md,
    Evaluation, "How the default recipe was chosen"). LARS/SGD: SimCLR's 0.3 × batch / 256."""
    return 1e-3 if optimizer == "adam" else 0.3 * batch_size / 256


class LARS(torch.optim.Optimizer):
    """SGD with momentum and a layer-wise trust ratio (You et al. 2017), as SimCLR trains.

    Biases and normalisation parameters (1-D tensors) get neither weight decay nor adaptation.
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
                 trust_coefficient: float = 0.001):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      trust_coefficient=trust_coefficient))

    @torch.no_grad()
    def step(self, closure=None):
        loss = closure() if closure is not None else None
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                if p.ndim > 1:
                    grad = grad.add(p, alpha=group["weight_decay"])
                    w_norm, g_norm = torch.norm(p), torch.norm(grad)
                    ratio = torch.where((w_norm > 0) & (g_norm > 0),
                                        group["trust_coefficient"] * w_norm / g_norm,
                                        torch.ones_like(w_norm))
                    grad = grad.mul(ratio)
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.clone(grad).detach()
                else:
                    state["momentum_buffer"].mul_(group["momentum"]).add_(grad)
                p.add_(state["momentum_buffer"], alpha=-group["lr"])
        return loss


OPTIMIZERS = {
    "adam": lambda params, lr, weight_decay: torch.optim.Adam(
        params, lr=lr, weight_decay=weight_decay, fused=True),
    "lars": lambda params, lr, weight_decay: LARS(params, lr=lr, weight_decay=weight_decay),
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=weight_decay, fused=True),
}
"""Name → (parameters, lr, weight decay) → optimiser; the names are also
`ffclr.train.config.OPTIMIZER_NAMES`, for the CLI without torch."""


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float):
    if name not in OPTIMIZERS:
        raise FfclrError(f"unknown optimizer {name!r} (choose from {', '.join(OPTIMIZERS)})")
    return OPTIMIZERS[name](model.parameters(), lr, weight_decay)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up over `warmup_steps`, then cosine decay to 0 at `total_steps`."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return base_lr * 0.5 * (1.0 + math.cos(math.pi * progress))
