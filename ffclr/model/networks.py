"""`SimCLRModel`: a torchvision ResNet with the seed's MLP projection head.

Parameter names match sthalles/SimCLR's `ResNetSimCLR` (`backbone.*`, head at `backbone.fc.0`
and `backbone.fc.2`), so the seed's checkpoints load into it.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision import models

from ffclr.errors import FfclrError

ARCHS = {"resnet18": models.resnet18, "resnet50": models.resnet50}
"""Name → torchvision constructor; the names are also `ffclr.train.config.ARCH_NAMES`, for the
CLI without torch."""


class SimCLRModel(nn.Module):
    """ResNet encoder + projection head.

    `small_stem` swaps the 7×7/2 conv and max-pool for a 3×3/1 conv, as for CIFAR-sized inputs:
    a 32 px symbol then keeps a 4×4 map at the last stage instead of vanishing to 1×1. Off by
    default, as `PretrainConfig.small_stem`.
    """

    def __init__(self, arch: str = "resnet18", out_dim: int = 128, small_stem: bool = False):
        super().__init__()
        if arch not in ARCHS:
            raise FfclrError(f"unknown architecture {arch!r} (choose from {', '.join(ARCHS)})")
        backbone = ARCHS[arch](weights=None, num_classes=out_dim)
        if small_stem:
            backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
            backbone.maxpool = nn.Identity()
        dim = backbone.fc.in_features
        backbone.fc = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), backbone.fc)
        self.backbone = backbone
        self.arch = arch
        self.out_dim = out_dim
        self.small_stem = small_stem
        self.feature_dim = dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features before the projection head: (N, 512) or (N, 2048)."""
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.layer4(b.layer3(b.layer2(b.layer1(x))))
        return torch.flatten(b.avgpool(x), 1)

    def project(self, features: torch.Tensor) -> torch.Tensor:
        return self.backbone.fc(features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.features(x))


class FeatureExtractor(nn.Module):
    """The backbone of a `SimCLRModel` alone: normalised images → features."""

    def __init__(self, model: SimCLRModel):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.features(x)
