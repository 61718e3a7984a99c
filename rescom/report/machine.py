"""Which kind of machine made a report tree: the facts that decide its floating-point results.

CPU training is bit-for-bit reproducible on one kind of machine, but the kernels torch picks
depend on the instruction set (AVX2 / AVX-512 / AMX for bf16), the torch version and the thread
count, and a toy run amplifies the last-bit differences into different accuracies. A report tree
carries this fingerprint (tables/machine.json) so that a check compares numbers cell by cell only
against a tree made on the same kind of machine (scripts/check-smoke-reports.sh).
"""

from __future__ import annotations

from pathlib import Path

import torch

# CPU flags that change which float kernels run (oneDNN and ATen dispatch on them).
NUMERIC_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_tile")


def cpu_flags() -> list[str]:
    """The NUMERIC_FLAGS this CPU has (from /proc/cpuinfo; empty where that file does not exist)."""
    info = Path("/proc/cpuinfo")
    if not info.is_file():
        return []
    line = next((line for line in info.read_text().splitlines() if line.startswith("flags")), "flags:")
    flags = set(line.split(":", 1)[1].split())
    return [f for f in NUMERIC_FLAGS if f in flags]


def machine_fingerprint() -> dict:
    """{"torch", "cpu_capability", "cpu_flags", "threads"}: equal fingerprints give equal CPU results."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": cpu_flags(), "threads": torch.get_num_threads()}
