"""Wall-clock timing of a callable: CUDA events on a CUDA device, perf_counter otherwise; median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def wall_seconds(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds of one call of fn, the device's queued work before and inside it included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def time_interleaved(fns: dict[str, Callable[[], object]], *, warmup: int, repeat: int,
                     device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """Time each callable `repeat` times after `warmup` untimed calls, in alternation (a, b, a, b, ...),
    so that drift in machine load (other processes, thermal state) falls on all of them alike.

    Returns {name: {"median_ms", "min_ms", "spread"}}; spread = (max - min) / median over the repeats.
    On CUDA each call is bracketed by events (the host is not blocked between calls; one synchronise
    at the end), so a call's time is its device time including any host sync inside fn.
    """
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    device = torch.device(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    events = []  # CUDA: (name, start, end), read after one synchronise at the end
    for _ in range(repeat):
        for name, fn in fns.items():
            if device.type == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                events.append((name, start, end))
            else:
                t0 = time.perf_counter()
                fn()
                times[name].append((time.perf_counter() - t0) * 1000.0)
    synchronize(device)
    for name, start, end in events:
        times[name].append(start.elapsed_time(end))
    summary = {}
    for name, t in times.items():
        median = statistics.median(t)
        spread = (max(t) - min(t)) / median if median > 0 else 0.0
        summary[name] = {"median_ms": median, "min_ms": min(t), "spread": spread}
    return summary
