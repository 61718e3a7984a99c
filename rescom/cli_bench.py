"""`rescom bench`: speed of the training step and of the method's core ops on the current device."""

from __future__ import annotations

import typer

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (ratios measured in one run; no timed tests).")


@bench_app.command("step")
def step(device: str = typer.Option("auto", help="auto, cpu or cuda."),
         steps: int = typer.Option(10), warmup: int = typer.Option(3), batch_size: int = typer.Option(128),
         bf16: bool = typer.Option(False), channels_last: bool = typer.Option(False),
         compile: bool = typer.Option(False, "--compile", help="torch.compile the model (untested on CPU)."),
         quick: bool = typer.Option(False, help="1 warm-up and 2 timed steps.")):
    """rescom step vs a plain two-view BS step on the released CIFAR-100-LT IF=100 shapes: ms, epoch s, img/s, ratio, memory."""
    import torch

    from rescom.bench.step import bench_step, format_step

    resolved = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    result = bench_step(resolved, batch_size=batch_size, steps=steps, warmup=warmup, bf16=bf16,
                        channels_last=channels_last, compile=compile, quick=quick)
    typer.echo(format_step(result))


@bench_app.command("core")
def core(device: str = typer.Option("cpu"), repeat: int = typer.Option(10)):
    """One enqueue of 256 keys and one SPM loss fwd+bwd (K = 100 and K = 8,142) beside ResNet-32 fwd+bwd, as ratios."""
    from rescom.bench.core_ops import bench_core_ops, format_rows

    typer.echo(format_rows(bench_core_ops(device, repeat), device))
