"""Which kind of machine made a report tree: the facts that decide its floating-point results.

CPU training is bit-for-bit reproducible on one kind of machine, but the kernels torch picks
depend on the instruction set (AVX2 / AVX-512 / AMX for bf16), the torch version and the thread
count, and a toy run amplifies the last-bit differences into different accuracies. A report tree
carries this fingerprint (tables/machine.json) so that a check compares numbers cell by cell only
against a tree made on the same kind of machine (scripts/check-smoke-reports.sh).
"""

from __future__ import annotations

import torch

from rescom.engine.hardware import cpu_flags


def machine_fingerprint() -> dict:
    """{"torch", "cpu_capability", "cpu_flags", "threads"}: equal fingerprints give equal CPU results."""
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_flags": cpu_flags(), "threads": torch.get_num_threads()}
