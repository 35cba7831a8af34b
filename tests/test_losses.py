import math

import numpy as np
import pytest
import torch

from ffclr.train.losses import nt_xent, positive_topk, supcon, supcon_rows


def _unit(v):
    return v / np.linalg.norm(v)


def reference_nt_xent(za, zb, t):
    """NT-Xent written plainly (SimCLR paper, eq. 1), float64."""
    z = [_unit(v) for v in np.concatenate([za, zb]).astype(np.float64)]
    n = len(za)
    total = 0.0
    for i in range(2 * n):
        j = (i + n) % (2 * n)
        sims = {k: float(z[i] @ z[k]) / t for k in range(2 * n) if k != i}
        assert len(sims) - 1 == 2 * n - 2  # one positive, 2N-2 negatives
        total += -math.log(math.exp(sims[j]) / sum(math.exp(s) for s in sims.values()))
    return total / (2 * n)


def reference_supcon(features, labels, t):
    """Khosla et al. 2020, L_out, float64: features (N, V, d), labels (N,)."""
    n, v, _ = features.shape
    z = [_unit(features[i, a].astype(np.float64)) for i in range(n) for a in range(v)]
    lab = [labels[i] for i in range(n) for _ in range(v)]
    losses = []
    for i in range(len(z)):
        others = [k for k in range(len(z)) if k != i]
        denom = sum(math.exp(z[i] @ z[k] / t) for k in others)
        pos = [k for k in others if lab[k] == lab[i]]
        losses.append(-sum(math.log(math.exp(z[i] @ z[p] / t) / denom) for p in pos) / len(pos))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("t", [0.07, 0.5])
def test_nt_xent_matches_reference(t):
    rng = np.random.default_rng(0)
    za, zb = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    got = nt_xent(torch.tensor(za, dtype=torch.float32), torch.tensor(zb, dtype=torch.float32), t)
    assert got.item() == pytest.approx(reference_nt_xent(za, zb, t), rel=1e-4)


def test_nt_xent_is_low_for_matching_views_and_high_for_random():
    rng = np.random.default_rng(1)
    generator = torch.Generator().manual_seed(1)
    z = torch.tensor(rng.normal(size=(8, 16)), dtype=torch.float32)
    matched = nt_xent(z, z + 0.01 * torch.randn(z.shape, generator=generator), 0.1)
    shuffled = nt_xent(z, z[torch.randperm(8, generator=generator)], 0.1)
    assert matched < shuffled


def test_supcon_matches_reference_with_classes_and_three_views():
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(5, 3, 4))
    labels = np.array([0, 1, 0, 2, 1])
    got = supcon(torch.tensor(feats, dtype=torch.float32), torch.tensor(labels), 0.2)
    assert got.item() == pytest.approx(reference_supcon(feats, labels, 0.2), rel=1e-4)


def test_instance_supcon_with_many_views_matches_reference():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(4, 4, 6))
    got = supcon(torch.tensor(feats, dtype=torch.float32), None, 0.3)
    assert got.item() == pytest.approx(reference_supcon(feats, np.arange(4), 0.3), rel=1e-4)


def test_two_view_instance_supcon_is_nt_xent():
    rng = np.random.default_rng(4)
    za, zb = (torch.tensor(rng.normal(size=(7, 3)), dtype=torch.float32) for _ in range(2))
    assert supcon(torch.stack([za, zb], 1), None, 0.1).item() == pytest.approx(
        nt_xent(za, zb, 0.1).item(), rel=1e-5)


def test_gradient_flows_and_topk_counts_positives():
    z = torch.randn(6, 2, 8, generator=torch.Generator().manual_seed(5), requires_grad=True)
    flat = z.reshape(12, 8)
    labels = torch.arange(6).repeat_interleave(2)
    loss, logits = supcon_rows(flat, labels, flat, labels, torch.arange(12), 0.5)
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    same = torch.stack([torch.eye(3)] * 2, 1).reshape(6, 3)
    _, logits = supcon_rows(same, torch.tensor([0, 0, 1, 1, 2, 2]), same,
                            torch.tensor([0, 0, 1, 1, 2, 2]), torch.arange(6), 0.5)
    assert positive_topk(logits, torch.tensor([0, 0, 1, 1, 2, 2]),
                         torch.tensor([0, 0, 1, 1, 2, 2]), (1,))["top1"] == 1.0
