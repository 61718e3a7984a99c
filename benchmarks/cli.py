"""`python -m benchmarks`: speed of the training step, the method's core ops, an epoch and packed runs on a device."""

from __future__ import annotations

from typing import Optional

import typer

from rescom.cli.common import fail

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Benchmarks (ratios measured in one run; no timed tests).")


def _set_threads(threads: Optional[int]) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)


@app.command("step")
def step(device: str = typer.Option("auto", help="auto, cpu or cuda."),
         steps: int = typer.Option(10), warmup: int = typer.Option(3), batch_size: int = typer.Option(128),
         bf16: bool = typer.Option(False), channels_last: bool = typer.Option(False),
         compile: bool = typer.Option(False, "--compile", help="torch.compile the model (untested on CPU)."),
         quick: bool = typer.Option(False, help="1 warm-up and 2 timed steps."),
         graphs: bool = typer.Option(True, help="Replay the step as a CUDA graph, as training does (GPU only)."),
         threads: Optional[int] = typer.Option(None, help="torch.set_num_threads (default: torch's)."),
         profile: Optional[str] = typer.Option(None, help="rescom or plain: print a torch.profiler table of this "
                                               "method's step (after one warm-up) instead of timing.")):
    """rescom step vs a plain two-view BS step on the released CIFAR-100-LT IF=100 shapes: ms, epoch s, img/s, ratio, memory."""
    from benchmarks.step import bench_step, format_step, profile_step
    from rescom.engine.hardware import select_device

    if profile not in (None, "rescom", "plain"):
        fail(f"--profile: rescom or plain, not {profile!r}")
    _set_threads(threads)
    resolved = select_device(device)
    if profile:
        typer.echo(profile_step(resolved, method=profile, batch_size=batch_size, bf16=bf16,
                                channels_last=channels_last))
        return
    result = bench_step(resolved, batch_size=batch_size, steps=steps, warmup=warmup, bf16=bf16,
                        channels_last=channels_last, compile=compile, quick=quick, graphs=graphs)
    typer.echo(format_step(result))


@app.command("core")
def core(device: str = typer.Option("cpu"), repeat: int = typer.Option(10),
         threads: Optional[int] = typer.Option(None, help="torch.set_num_threads (default: torch's).")):
    """One enqueue of 256 keys and one SPM loss fwd+bwd (K = 100 and K = 8,142) beside ResNet-32 fwd+bwd, as ratios."""
    from benchmarks.core_ops import bench_core_ops, format_rows

    _set_threads(threads)
    typer.echo(format_rows(bench_core_ops(device, repeat), device))


@app.command("epoch")
def epoch(device: str = typer.Option("auto", help="auto, cpu or cuda."),
          method: str = typer.Option("rescom", help="Preset to train."),
          epochs: int = typer.Option(1, help="Timed epochs after one warm-up epoch (median reported)."),
          eval_every: int = typer.Option(10, help="Evaluation interval the time per epoch includes."),
          bf16: bool = typer.Option(False), compile: bool = typer.Option(False, "--compile"),
          graphs: bool = typer.Option(True, help="Replay step and augmentation as CUDA graphs (GPU only)."),
          classes: int = typer.Option(100, help="K of the synthetic set (100: CIFAR-100-LT shapes)."),
          max_count: int = typer.Option(500, help="n_max of the synthetic set (500: CIFAR-100-LT)."),
          imbalance: float = typer.Option(100.0, help="IF of the synthetic set."),
          test_per_class: int = typer.Option(100),
          autoaugment: str = typer.Option("released", help="AutoAugment policy trained: released or torchvision "
                                          "(the other one's augmentation is timed too, for the ratio).")):
    """A real epoch on synthetic CIFAR-100-LT IF=100 shapes: s/epoch, projected 400 epochs, augment vs step share, launches per step."""
    from benchmarks.epoch import bench_epoch, format_epoch
    from rescom.data.augmentation.batched.recipes import POLICIES
    from rescom.engine.hardware import select_device

    if autoaugment not in POLICIES:
        fail(f"--autoaugment: one of {', '.join(POLICIES)}, not {autoaugment!r}")
    typer.echo(format_epoch(bench_epoch(select_device(device), method=method, epochs=epochs, eval_every=eval_every,
                                        bf16=bf16, compile=compile, graphs=graphs, num_classes=classes,
                                        max_count=max_count, imbalance=imbalance, test_per_class=test_per_class,
                                        autoaugment=autoaugment)))


@app.command("pack")
def pack(runs: str = typer.Option("8", help="Pack size K, or several: 2,4,8,16 (one run is always measured too)."),
         device: str = typer.Option("auto", help="auto, cpu or cuda."),
         method: str = typer.Option("rescom", help="Preset every run trains."),
         epochs: int = typer.Option(2, help="Timed epochs after one warm-up epoch."),
         eval_every: int = typer.Option(10, help="Evaluation interval the time per epoch includes."),
         graphs: bool = typer.Option(True, help="Replay step and augmentation as CUDA graphs (GPU only)."),
         classes: int = typer.Option(100), max_count: int = typer.Option(500), imbalance: float = typer.Option(100.0),
         test_per_class: int = typer.Option(100)):
    """K runs packed in one process against one run on synthetic CIFAR-100-LT IF=100 shapes: aggregate epochs/s, ratio, memory per run."""
    from benchmarks.pack import bench_pack, format_pack
    from rescom.engine.hardware import select_device

    try:
        sizes = [int(k) for k in runs.split(",") if k.strip()]
    except ValueError:
        fail(f"--runs: expected a number or comma-separated numbers, got {runs!r}")
    if not sizes or min(sizes) < 1:
        fail(f"--runs: pack sizes must be at least 1, got {runs!r}")
    typer.echo(format_pack(bench_pack(select_device(device), runs=sizes, method=method, epochs=epochs,
                                      eval_every=eval_every, graphs=graphs, num_classes=classes, max_count=max_count,
                                      imbalance=imbalance, test_per_class=test_per_class)))


@app.command("synthetic-data")
def synthetic_data(out: str = typer.Argument(..., help="Output directory of the prepared set."),
                   classes: int = typer.Option(100), max_count: int = typer.Option(500),
                   imbalance: float = typer.Option(100.0), test_per_class: int = typer.Option(100)):
    """Write random images with CIFAR-100-LT IF=100 shapes as a prepared set (train on it with --set data.prepared_dir=OUT)."""
    from benchmarks.epoch import write_synthetic

    data = write_synthetic(out, num_classes=classes, max_count=max_count, imbalance=imbalance,
                           test_per_class=test_per_class)
    typer.echo(f"{out}: {sum(data.class_counts)} training images in {len(data.class_counts)} classes "
               f"(n_max {max(data.class_counts)}, n_min {min(data.class_counts)}), {len(data.test)} test images")
