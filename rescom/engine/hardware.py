"""The device a run or an analysis uses, and one line naming the hardware a time was measured on
(run summaries, inference-cost tables)."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from rescom.config import ConfigError, TrainConfig

# CPU flags that change which float kernels run (oneDNN and ATen dispatch on them).
NUMERIC_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile")
CPUINFO = Path("/proc/cpuinfo")


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


def cpu_flags() -> list[str]:
    """The NUMERIC_FLAGS this CPU has (from /proc/cpuinfo; empty where that file does not exist)."""
    if not CPUINFO.is_file():
        return []
    line = next((line for line in CPUINFO.read_text().splitlines() if line.startswith("flags")), "flags:")
    flags = set(line.split(":", 1)[1].split())
    return [f for f in NUMERIC_FLAGS if f in flags]


def emulated_bf16_warning(config: TrainConfig) -> str | None:
    """A warning when run.bf16 trains on an x86 CPU without bf16 instructions (AVX512-BF16 or AMX-BF16),
    where torch emulates bf16: 9.2x the fp32 step on an AVX2-only CPU (docs/results.md). None otherwise,
    and where /proc/cpuinfo cannot tell."""
    if not config.run.bf16 or select_device(config.run.device).type != "cpu":
        return None
    if platform.machine() not in ("x86_64", "AMD64") or not CPUINFO.is_file():
        return None
    if {"avx512_bf16", "amx_bf16"} & set(cpu_flags()):
        return None
    return ("run.bf16 on a CPU without bf16 instructions (no avx512_bf16 or amx_bf16 in /proc/cpuinfo): torch "
            "emulates bf16 here, about 9x slower per step than fp32. The numbers stay those of this profile; "
            "for speed, run it on a CPU with AVX512-BF16, or set run.bf16=false (then it is another profile)")
