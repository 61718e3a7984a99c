"""Several training runs in one process on one device: `rescom train --seeds 0,1,2`, packed pipeline stages.

One CIFAR-sized step is latency-bound on a large GPU, so K runs whose steps interleave in one process
(docs/design.md, "Packed runs"; engine/scheduler.py) fill it better than K runs one after another.
Each run keeps its own computation, RNG state, CUDA stream, run directory (named as its solo run),
checkpoint, MLflow run and queue, and can be resumed alone or in a pack. Runs of a pack may differ
in any key but the process-wide ones: one run.device, no torchrun, distinct run directories.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import resource
from pathlib import Path

import torch
from torch.utils._pytree import tree_leaves

from rescom.config import ConfigError, TrainConfig, apply_overrides
from rescom.data.loading import loaders
from rescom.engine import distributed
from rescom.engine.hardware import select_device
from rescom.engine.resume import RunStart
from rescom.engine.run import Run, run_name
from rescom.methods import uses_two_views
from rescom.progress import console

GIB = 2**30
# Beyond one run's measured eager peak: each CUDA graph's private memory pool and the caching
# allocator's rounding and fragmentation.
MEMORY_MARGIN = 1.25


class PackTooLargeError(ConfigError):
    """The pack would not fit the device's free memory (estimated before training starts)."""


def seed_configs(config: TrainConfig, seeds: list[int]) -> list[TrainConfig]:
    """One config per seed (run.seed set), each naming its run as a solo run of that seed would."""
    if config.run.run_name and len(seeds) > 1:
        raise ConfigError("run.run_name names one run; with --seeds each run takes its own name (drop run.run_name)")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds: a seed appears twice ({','.join(map(str, seeds))})")
    return [dataclasses.replace(apply_overrides(config, {"run.seed": seed}), method_name=config.method_name)
            for seed in seeds]


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; ConfigError naming --seeds otherwise."""
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds: expected comma-separated integers, got {text!r}") from None
    if not seeds:
        raise ConfigError("--seeds: no seed given")
    return seeds


def check_packable(configs: list[TrainConfig], world: distributed.World) -> None:
    """One device, one process, distinct run directories: what interleaving in one process needs."""
    if len(configs) > 1 and world.size > 1:
        raise ConfigError("packed runs train in one process: run them without torchrun (WORLD_SIZE > 1)")
    devices = sorted({c.run.device for c in configs})
    if len(devices) > 1:
        raise ConfigError(f"run.device: a pack trains on one device; its runs ask for {', '.join(devices)}")
    dirs = [Path(c.run.runs_dir) / run_name(c) for c in configs]
    twice = sorted({str(d) for d in dirs if dirs.count(d) > 1})
    if twice:
        raise ConfigError(f"two runs of the pack would write the same run directory {twice[0]}")


def measured_first_run(config: TrainConfig, start: RunStart, world, cache: dict, pack_size: int) -> Run:
    """Build the pack's first run and check that pack_size runs like it fit (PackTooLargeError if not)."""
    device = select_device(config.run.device)
    before = memory_baseline(device)
    run = Run(config, world, start, cache)
    peak = probe_peak(run, before)
    check_fits(peak, pack_size, before["free"], device)
    return run


def memory_baseline(device: torch.device) -> dict:
    """What the device has free and in use now (CUDA: its allocator; CPU: MemAvailable and peak RSS)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return {"free": torch.cuda.mem_get_info(device)[0], "used": torch.cuda.memory_allocated(device)}
    return {"free": available_host_memory(), "used": peak_rss()}


def available_host_memory() -> int:
    """MemAvailable of /proc/meminfo in bytes (the kernel's estimate of what can be allocated without swapping)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 2**62  # no /proc (not Linux): no basis to refuse


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def probe_peak(run: Run, before: dict) -> int:
    """Bytes one run of this shape takes at its peak: its state, data and one training step.

    The step runs eagerly on a deep copy of the components, on a batch of the run's first epoch from
    a loader of its own, so the run itself is untouched (its first epoch starts from a fresh loader
    and reseeds the RNG). CUDA: the allocator's peak above what was in use before the run was built.
    CPU: the growth of the process's peak RSS, at least the bytes of the run's tensors (a process
    whose earlier peak was higher shows no growth).
    """
    from rescom.engine.step import train_step

    config, device = run.config, run.device
    with run.own_context():
        probe = copy.deepcopy(dataclasses.replace(run.parts, forward_model=None))
        loader = loaders.epoch_batches(run.data, config.data, config.optim.batch_size, uses_two_views(config),
                                        0, device, {}, graphs=False)
        *views, target = next(iter(loader))
        train_step(config, probe, [v.to(device) for v in views], target.to(device))
        held = _tensor_bytes(run)
        del probe, loader, views, target
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - before["used"]
    return max(peak_rss() - before["used"], held)


def _tensor_bytes(run: Run) -> int:
    """Parameters (x2 for their gradients), buffers, optimizer state, queue, and the test tensors."""
    state = run.parts.state_dict()
    tensors = [t for t in tree_leaves(state) if isinstance(t, torch.Tensor)]
    grads = sum(p.nbytes for p in run.parts.model.parameters())
    test = sum(images.nbytes for images, _ in run.test_batches) if isinstance(run.test_batches, list) else 0
    return sum(t.nbytes for t in tensors) + grads + test


def check_fits(peak: int, pack_size: int, free: int, device: torch.device) -> None:
    """PackTooLargeError unless pack_size runs of `peak` bytes (x MEMORY_MARGIN) fit `free` bytes."""
    need = pack_size * peak * MEMORY_MARGIN
    where = "the GPU" if device.type == "cuda" else "host memory (MemAvailable)"
    console.log(f"pack of {pack_size}: one run's measured peak {peak / GIB:.3f} GiB, about {need / GIB:.2f} GiB "
                f"for the pack; {where} has {free / GIB:.1f} GiB free")
    if need > free:
        fit = max(int(free // (peak * MEMORY_MARGIN)), 0)
        raise PackTooLargeError(
            f"a pack of {pack_size} runs needs about {need / GIB:.2f} GiB ({pack_size} x {peak / GIB:.3f} GiB, one run's "
            f"measured peak, x {MEMORY_MARGIN} for graph pools and fragmentation) but {where} has {free / GIB:.2f} GiB "
            f"free: pack at most {fit} runs")
