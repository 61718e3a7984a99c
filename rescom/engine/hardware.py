"""One line naming the hardware a time was measured on (run summaries, inference-cost tables)."""

from __future__ import annotations

import platform

import torch


def device_description(device: torch.device) -> str:
    """'NVIDIA H200 (CUDA 13.0, torch 2.11.0)' or 'x86_64, 2 threads (torch 2.14.1)'."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda}, torch {torch.__version__})"
    cpu = platform.processor() or platform.machine() or "CPU"
    return f"{cpu}, {torch.get_num_threads()} threads (torch {torch.__version__})"
