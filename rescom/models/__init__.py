"""Backbones, projection head and the ResCom network."""

from rescom.models.network import ResComNet, build_model
from rescom.models.resnet_cifar import resnet32

__all__ = ["ResComNet", "build_model", "resnet32"]
