"""Throughput of K packed runs against one run, on synthetic data of CIFAR-100-LT IF=100 shapes.

Each run is a real `rescom train` run (engine.run.Run: tensor pipeline, the step and augmentation
as CUDA graphs on a GPU, evaluation every `eval_every` epochs, a checkpoint every epoch, no
tracking) and the pack is the one `rescom train --seeds` trains (engine.pack, memory checked
first). After one warm-up epoch (graph capture, autotuning), `epochs` epochs are timed; the
aggregate throughput is K x epochs / seconds, and the ratio is that over one run's. The target of
issue 21 on one H100/H200: 8 runs at >= 4x one run, 16 runs at >= 8x.
"""

from __future__ import annotations

import gc
import tempfile
from pathlib import Path

import torch

from benchmarks.core_ops import environment
from benchmarks.epoch import bench_config, write_synthetic
from benchmarks.timing import wall_seconds
from rescom.config import apply_overrides
from rescom.engine import distributed
from rescom.engine.pack import GIB, memory_baseline, peak_rss
from rescom.engine.resume import RunStart
from rescom.engine.scheduler import interleaved_epoch
from rescom.engine.train import build_runs
from rescom.progress import console, progress_bar

TARGETS = {8: 4.0, 16: 8.0}  # runs -> aggregate throughput over one run's (issue 21)


def time_pack(device: torch.device, size: int, configs_for, epochs: int) -> dict:
    """Build a pack of `size` runs, one warm-up epoch, then `epochs` timed epochs of the whole pack."""
    configs = configs_for(size)
    before = memory_baseline(device)
    runs, _ = build_runs(configs, [RunStart()] * size, distributed.World(), True, None)
    with progress_bar() as bar:
        for run in runs:
            run.open(bar, size)
        interleaved_epoch(runs)  # warm-up: CUDA graph capture, cuDNN autotuning, allocator growth
        seconds = wall_seconds(lambda: [interleaved_epoch(runs) for _ in range(epochs)], device)
    if device.type == "cuda":
        memory = (torch.cuda.max_memory_allocated(device) - before["used"]) / size
    else:
        memory = max(peak_rss() - before["used"], 0) / size  # growth of the peak RSS; 0 if an earlier peak was higher
    graphs = [getattr(run.train_step, "captured", None) for run in runs]
    runs.clear()
    gc.collect()  # the runs' graphs and tensors go before the next pack is measured
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {"runs": size, "epochs": epochs, "seconds": seconds, "epoch_s": seconds / epochs,
            "epochs_per_s": size * epochs / seconds, "memory_per_run_gib": memory / GIB,
            "graphs_captured": sum(1 for g in graphs if g), "graphs": len(graphs) if device.type == "cuda" else 0}


def bench_pack(device: torch.device | str = "cpu", *, runs: list[int], method: str = "rescom", epochs: int = 2,
               eval_every: int = 10, graphs: bool = True, num_classes: int = 100, max_count: int = 500,
               imbalance: float = 100.0, test_per_class: int = 100, work_dir: str | None = None) -> dict:
    """One run, then each pack size of `runs`: seconds per epoch, aggregate epochs/s, ratio, memory per run."""
    device = torch.device(device)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:
        prepared = Path(tmp) / "synthetic"
        data = write_synthetic(prepared, num_classes=num_classes, max_count=max_count, imbalance=imbalance,
                               test_per_class=test_per_class)

        def configs_for(size: int):
            base = bench_config(method, device, graphs=graphs, eval_every=eval_every, counts=data.class_counts)
            made = []
            for seed in range(size):
                config = apply_overrides(base, {"data.prepared_dir": str(prepared), "run.seed": seed,
                                                "run.runs_dir": str(Path(tmp) / f"pack{size}"),
                                                "optim.epochs": 400})  # no final-epoch evaluation inside the timing
                config.method_name = method
                made.append(config)
            return made

        rows = []
        for size in [1, *[k for k in runs if k != 1]]:
            console.log(f"bench pack: {size} run(s), 1 warm-up + {epochs} timed epoch(s)")
            rows.append(time_pack(device, size, configs_for, epochs))
    one = rows[0]["epochs_per_s"]
    for row in rows:
        row["ratio"] = row["epochs_per_s"] / one
    steps = sum(data.class_counts) // 128
    return {"env": environment(device), "method": method, "shape": f"K={num_classes}, n_max={max_count}, IF={imbalance:g}",
            "images": sum(data.class_counts), "steps_per_epoch": steps, "eval_every": eval_every, "rows": rows,
            "device": device.type}


def format_pack(result: dict) -> str:
    lines = [result["env"],
             f"method={result['method']}; synthetic long-tailed set ({result['shape']}): {result['images']} images, "
             f"{result['steps_per_epoch']} steps of 128 per epoch; evaluation every {result['eval_every']} epochs",
             f"{'runs':>5} {'s/epoch (pack)':>15} {'epochs/s (all runs)':>20} {'x one run':>10} {'memory/run GiB':>15}"
             + ("  graphs captured" if result["device"] == "cuda" else "")]
    for row in result["rows"]:
        graphs = f"  {row['graphs_captured']}/{row['graphs']}" if result["device"] == "cuda" else ""
        lines.append(f"{row['runs']:>5} {row['epoch_s']:>15.3f} {row['epochs_per_s']:>20.3f} {row['ratio']:>10.2f} "
                     f"{row['memory_per_run_gib']:>15.3f}{graphs}")
    if result["device"] != "cuda":
        lines.append("memory on the CPU: growth of the process's peak RSS per run (the first row includes the "
                     "process's first allocations; a GPU row is the allocator's peak)")
    for size, target in TARGETS.items():
        row = next((r for r in result["rows"] if r["runs"] == size), None)
        if row is not None:
            verdict = "met" if row["ratio"] >= target else "not met"
            lines.append(f"target {size} runs >= {target:g}x one run: {row['ratio']:.2f}x, {verdict}"
                         + (" (a CPU number: the target is for one H100/H200)" if result["device"] != "cuda" else ""))
    return "\n".join(lines)

