"""Backbones, projection head and the ResCom network."""

from rescom.models.network import ResComNet, build_model

__all__ = ["ResComNet", "build_model"]
