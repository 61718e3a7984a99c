"""Wall-clock timing of a callable: CUDA events on a CUDA device, perf_counter otherwise; median of repeats."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch


def _summary(times_ms: list[float]) -> dict[str, float]:
    """median_ms, min_ms and spread = (max - min) / median of per-call times in milliseconds."""
    median = statistics.median(times_ms)
    spread = (max(times_ms) - min(times_ms)) / median if median > 0 else 0.0
    return {"median_ms": median, "min_ms": min(times_ms), "spread": spread}


class _Clock:
    """Times one call of fn in ms. On CUDA the events are read after one synchronise per batch of calls."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"
        self.device = device
        self._pending: list[tuple[torch.cuda.Event, torch.cuda.Event, list[float]]] = []

    def call(self, fn: Callable[[], object], out: list[float]) -> None:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            self._pending.append((start, end, out))
        else:
            t0 = time.perf_counter()
            fn()
            out.append((time.perf_counter() - t0) * 1000.0)

    def flush(self) -> None:
        """Wait for the device once and read every recorded event pair."""
        if self.cuda:
            torch.cuda.synchronize(self.device)
            for start, end, out in self._pending:
                out.append(start.elapsed_time(end))
        self._pending.clear()


def time_fn(fn: Callable[[], object], *, warmup: int, repeat: int,
            device: torch.device | str = "cpu") -> dict[str, float]:
    """Time fn() `repeat` times after `warmup` untimed calls.

    Returns {"median_ms", "min_ms", "spread"}; spread = (max - min) / median over the repeats.
    On CUDA each call is bracketed by events (the host is not blocked between calls; one synchronise
    at the end), so a call's time is its device time including any host sync inside fn.
    """
    return time_interleaved({"fn": fn}, warmup=warmup, repeat=repeat, device=device)["fn"]


def time_interleaved(fns: dict[str, Callable[[], object]], *, warmup: int, repeat: int,
                     device: torch.device | str = "cpu") -> dict[str, dict[str, float]]:
    """Time several callables in alternation (a, b, a, b, ...), so that drift in machine load
    (other processes, thermal state) falls on all of them alike; returns time_fn's dict per name."""
    if repeat < 1 or warmup < 0:
        raise ValueError(f"repeat must be >= 1 and warmup >= 0, got repeat={repeat}, warmup={warmup}")
    device = torch.device(device)
    clock = _Clock(device)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            clock.call(fn, times[name])
    clock.flush()
    return {name: _summary(t) for name, t in times.items()}
