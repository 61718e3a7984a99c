"""The ResCom network: encoder, linear classifier, projection head (training only)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from rescom.models.backbones import build_backbone
from rescom.models.pretrained import load_pretrained


class ProjectionHead(nn.Module):
    """Linear-BN-ReLU-Linear, then l2-normalisation: z = g(f) / ||g(f)|| (fidelity note 6)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim),
        )

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.net(feature), dim=1)


class ResComNet(nn.Module):
    """Encoder f, classifier s = W f, projection z. Inference uses encoder + classifier only."""

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int,
                 proj_hidden: int = 64, proj_dim: int = 32, with_projection: bool = True):
        super().__init__()
        self.encoder = encoder
        self.classifier = nn.Linear(feature_dim, num_classes)
        self.projection = ProjectionHead(feature_dim, proj_hidden, proj_dim) if with_projection else None

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x [B, C, H, W] -> (logits [B, K], z [B, D] or None without a projection head)."""
        feature = self.encoder(x)
        z = self.projection(feature) if self.projection is not None else None
        return self.classifier(feature), z

    def inference_model(self) -> nn.Module:
        """Encoder + classifier: the model that is evaluated and timed at test time."""
        return nn.Sequential(self.encoder, self.classifier)


def build_model(backbone: str, num_classes: int, in_channels: int = 3, width: int = 16,
                proj_hidden: int | None = None, proj_dim: int = 32,
                with_projection: bool = True, pretrained: str | None = None) -> ResComNet:
    """ResComNet over a named backbone; proj_hidden defaults to the feature size (64 -> 64 -> 32).
    pretrained: a torchvision ImageNet file for the encoder; the heads take the same draws either way."""
    encoder, feature_dim = build_backbone(backbone, in_channels, width)
    if pretrained is not None:
        load_pretrained(encoder, pretrained, backbone)
    return ResComNet(encoder, feature_dim, num_classes, proj_hidden or feature_dim, proj_dim, with_projection)
