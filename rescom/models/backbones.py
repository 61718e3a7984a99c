"""Backbone registry: CIFAR ResNets (32 as in the paper; 8/14/20 for CPU profiles) and torchvision's ImageNet ResNets (fidelity note 10)."""

from __future__ import annotations

import torch.nn as nn

from rescom.config import TORCHVISION_BACKBONES as _TORCHVISION
from rescom.models.resnet_cifar import CIFAR_DEPTHS, CifarResNet

# torchvision is imported only for _TORCHVISION (its import costs about a second per process).
BACKBONES = (*CIFAR_DEPTHS, *_TORCHVISION)


def build_backbone(name: str, in_channels: int = 3, width: int = 16) -> tuple[nn.Module, int]:
    """Return (encoder mapping images to features f [B, F], F). width applies to the CIFAR ResNets only.

    torchvision backbones start from random weights here; build_model loads `model.pretrained` over them.
    """
    if name in CIFAR_DEPTHS:
        net = CifarResNet(CIFAR_DEPTHS[name], in_channels, width)
        return net, net.feature_dim
    if name not in _TORCHVISION:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    import torchvision

    net = getattr(torchvision.models, name)(weights=None)
    if in_channels != 3:
        net.conv1 = nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False)
    feature_dim = net.fc.in_features
    net.fc = nn.Identity()
    return net, feature_dim
