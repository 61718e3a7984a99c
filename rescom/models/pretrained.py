"""ImageNet-pretrained encoders from a local torchvision-format file (`model.pretrained`; Places-LT, note 10)."""

from __future__ import annotations

import torch
import torch.nn as nn

from rescom.config import ConfigError, imagenet_weights_url

# ImageNet's 1000-way head: the run's classifier W and projection g start from its seed instead.
SKIPPED = ("fc.weight", "fc.bias")


def load_pretrained(encoder: nn.Module, path: str, backbone: str) -> None:
    """Copy every encoder tensor from the file (safe unpickling), refusing unknown keys, other shapes
    and missing keys in one line. BatchNorm's num_batches_tracked may be absent (torchvision's V1 files
    predate it): it stays 0, which only momentum=None BatchNorm would read."""
    def refused(why: str) -> ConfigError:
        return ConfigError(f"model.pretrained: {path} {why}; expected torchvision's {backbone} ImageNet "
                           f"weights ({imagenet_weights_url(backbone)})")

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001  (missing, truncated, not torch's, a pickled callable: one line each)
        raise refused(f"cannot be read as a state dict ({type(err).__name__})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise refused("is not a state dict of tensors")
    own = encoder.state_dict()
    # Unknown keys first: a file of another architecture reads as that, not as a list of gaps.
    problems = {"has unknown keys": sorted(state.keys() - own.keys() - set(SKIPPED)),
                "has other shapes": [f"{k} {tuple(state[k].shape)} (needs {tuple(v.shape)})"
                                     for k, v in own.items() if k in state and state[k].shape != v.shape],
                "lacks": sorted(k for k in own.keys() - state.keys() if not k.endswith("num_batches_tracked"))}
    for what, keys in problems.items():
        if keys:
            raise refused(f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}")
    encoder.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
