"""Contrastive losses on projection batches.

`supcon` is the general form (Khosla et al. 2020, L_out): every other view with the same label is
a positive, every other view a candidate. With instance labels (each crop its own label) it is
SimCLR's loss for any number of views; with two views it is exactly `nt_xent`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def nt_xent(z_a: torch.Tensor, z_b: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """NT-Xent of two (N, d) views: mean over the 2N anchors, each with 2N − 2 negatives."""
    return supcon(torch.stack([z_a, z_b], dim=1), None, temperature)


def supcon(features: torch.Tensor, labels: torch.Tensor | None = None,
           temperature: float = 0.07) -> torch.Tensor:
    """Supervised contrastive loss of (N, V, d) features; `labels` (N,) or None for instances."""
    n, views = features.shape[:2]
    if labels is None:
        labels = torch.arange(n, device=features.device)
    flat = features.reshape(n * views, -1)
    flat_labels = labels.repeat_interleave(views)
    loss, _ = supcon_rows(flat, flat_labels, flat, flat_labels,
                          torch.arange(n * views, device=features.device), temperature)
    return loss


def supcon_rows(anchors: torch.Tensor, anchor_labels: torch.Tensor, candidates: torch.Tensor,
                candidate_labels: torch.Tensor, anchor_index: torch.Tensor,
                temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean SupCon loss of `anchors` (A, d) against `candidates` (M, d).

    `anchor_index[i]` is where anchor i sits among the candidates (excluded from its own
    denominator). Used directly by the distributed path, where candidates come from all ranks.
    Returns the loss and the (A, M) logits with self-similarity set to -inf, for accuracy.
    """
    a = F.normalize(anchors.float(), dim=1)
    c = F.normalize(candidates.float(), dim=1)
    logits = a @ c.T / temperature
    rows = torch.arange(len(a), device=a.device)
    self_mask = torch.zeros_like(logits, dtype=torch.bool)
    self_mask[rows, anchor_index] = True
    logits = logits.masked_fill(self_mask, float("-inf"))
    positives = (anchor_labels[:, None] == candidate_labels[None, :]) & ~self_mask
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    n_pos = positives.sum(1)
    per_anchor = -(log_prob.masked_fill(~positives, 0.0).sum(1)) / n_pos.clamp(min=1)
    has_pos = n_pos > 0
    loss = per_anchor[has_pos].mean() if has_pos.any() else logits.new_zeros(()) * 0
    return loss, logits


@torch.no_grad()
def positive_topk(logits: torch.Tensor, anchor_labels: torch.Tensor,
                  candidate_labels: torch.Tensor, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Share of anchors with a positive among their k most similar candidates (the seed's
    contrastive 'accuracy')."""
    positives = anchor_labels[:, None] == candidate_labels[None, :]
    positives &= torch.isfinite(logits)
    order = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices
    hit = positives.gather(1, order)
    return {f"top{k}": hit[:, :k].any(1).float().mean().item() for k in ks}
