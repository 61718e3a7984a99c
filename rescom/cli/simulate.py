"""`rescom simulate`: simulations without images (paper Fig. 1)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from rescom.cli.common import expected_errors, fail

simulate_app = typer.Typer(no_args_is_help=True, help="Simulations without images (paper Fig. 1).")


@simulate_app.command("pairs")
@expected_errors
def simulate_pairs(dataset: str = typer.Option("cifar10-lt"), imbalance: float = typer.Option(10.0),
                   batch_size: int = typer.Option(128), queue_size: int = typer.Option(8192),
                   epochs: int = typer.Option(200), seed: int = typer.Option(0),
                   out: Path = typer.Option(Path("reports/simulate-pairs"))):
    """Count contrastive pairs per class combination under sampling (Fig. 1 centre, Prop. 1)."""
    from rescom.analysis.pairs import simulate_report
    from rescom.data.preparation.longtail import exponential_counts

    sizes = {"cifar10-lt": (10, 5000), "cifar100-lt": (100, 500), "fashion-mnist-lt": (10, 6000)}
    if dataset not in sizes:
        fail(f"--dataset: simulate knows {', '.join(sizes)}")
    counts = exponential_counts(*sizes[dataset], imbalance)
    result = simulate_report(counts, batch_size, queue_size, epochs, seed, out)
    typer.echo(json.dumps(result, indent=2, default=str))
