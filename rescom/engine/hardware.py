"""The device a run or an analysis uses, and one line naming the hardware a time was measured on
(run summaries, inference-cost tables)."""

from __future__ import annotations

import platform

import torch

from rescom.config import ConfigError


def select_device(name: str) -> torch.device:
    """run.device (or a command's --device) as a torch device: auto is cuda when one is available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device {name} (run.device / --device): no CUDA device is available")
    return torch.device(name)


def device_description(device: torch.device) -> str:
    """'NVIDIA H200 (CUDA 13.0, torch 2.11.0)' or 'x86_64, 2 threads (torch 2.14.1)'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    cpu = platform.processor() or platform.machine() or "CPU"
    return f"{cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"
