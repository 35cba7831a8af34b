"""`embed_uint8`, the one embedding routine: in full precision the features of a plain forward
pass in eval mode, bit for bit (so cached and fresh features agree); the model's mode is
restored."""
from __future__ import annotations

import torch

from ffclr.data.preprocess import to_model_input
from ffclr.model.embed import embed_uint8, frozen_cpu_copy
from ffclr.model.networks import FeatureExtractor, SimCLRModel


def test_full_precision_features_equal_a_plain_forward_pass():
    torch.manual_seed(0)
    backbone = FeatureExtractor(SimCLRModel("resnet18", out_dim=8, small_stem=True))
    images = torch.randint(0, 256, (5, 16, 16, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(1))
    backbone.train()
    features = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3,
                           channels_last=False)
    channels_last = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3)
    in_pairs = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3, batch_size=2)
    assert backbone.training
    with torch.no_grad():
        expected = backbone.eval()(to_model_input(images, (0.5,) * 3, (0.25,) * 3))
    assert features.dtype == torch.float32 and torch.equal(features, expected)
    assert channels_last.dtype == torch.float32
    assert torch.allclose(channels_last, expected, atol=1e-4)
    assert torch.allclose(in_pairs, expected, atol=1e-4)
    normalised = embed_uint8(backbone, images.numpy(), mean=(0.5,) * 3, std=(0.25,) * 3,
                             normalise=True)
    assert torch.allclose(normalised.norm(dim=1), torch.ones(5), atol=1e-6)
    assert torch.allclose(normalised, torch.nn.functional.normalize(expected, dim=1), atol=1e-6)
    assert embed_uint8(backbone, images[:0]).shape == (0, 512)


def test_a_frozen_encoder_gives_the_same_features_from_one_cached_copy():
    torch.manual_seed(0)
    backbone = FeatureExtractor(SimCLRModel("resnet18", out_dim=8))
    for module in backbone.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    images = torch.randint(0, 256, (7, 32, 32, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(2))
    expected = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3)
    frozen = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3, frozen=True,
                         batch_size=3)
    copy = frozen_cpu_copy(backbone, 32)
    assert isinstance(copy, torch.jit.ScriptModule)
    assert frozen_cpu_copy(backbone, 32) is copy
    assert torch.allclose(frozen, expected, atol=1e-4)
    assert not torch.equal(frozen, torch.zeros_like(frozen))
    assert embed_uint8(backbone, images[:0], frozen=True).shape == (0, 512)


def relative_error(found: torch.Tensor, expected: torch.Tensor) -> float:
    return float(torch.linalg.norm(found - expected) / torch.linalg.norm(expected))


def test_a_bf16_frozen_copy_is_kept_beside_the_full_precision_one_and_close_to_it():
    torch.manual_seed(0)
    backbone = FeatureExtractor(SimCLRModel("resnet18", out_dim=8))
    images = torch.randint(0, 256, (5, 32, 32, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(4))
    full = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3)
    bf16 = embed_uint8(backbone, images, mean=(0.5,) * 3, std=(0.25,) * 3, frozen=True,
                       dtype=torch.bfloat16)
    copy = frozen_cpu_copy(backbone, 32, torch.bfloat16)
    assert isinstance(copy, torch.jit.ScriptModule) and copy is not frozen_cpu_copy(backbone, 32)
    assert frozen_cpu_copy(backbone, 32, torch.bfloat16) is copy
    assert bf16.dtype == torch.float32 and not torch.allclose(bf16, full, atol=1e-4)
    assert relative_error(bf16, full) < 0.02
    assert next(backbone.parameters()).dtype == torch.float32


def test_a_backbone_torchscript_cannot_trace_runs_as_it_is():
    class Untraceable(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(3, 4)

        def forward(self, x):
            return self.linear(x.mean(dim=(2, 3))) * float(len(x))

    backbone = Untraceable()
    images = torch.randint(0, 256, (5, 8, 8, 3), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(3))
    assert frozen_cpu_copy(backbone, 8) is backbone
    assert frozen_cpu_copy(backbone, 8, torch.bfloat16) is backbone
    frozen = embed_uint8(backbone, images, frozen=True)
    assert torch.equal(frozen, embed_uint8(backbone, images))
    assert torch.equal(embed_uint8(backbone, images, frozen=True, dtype=torch.bfloat16),
                       embed_uint8(backbone, images, dtype=torch.bfloat16))
