"""`rescom analyze`: the paper's analyses of trained checkpoints (Fig. 1 right, Fig. 5, Tables 5 and 8).

Each command is a thin shell around a function of rescom.analysis; it prints what it wrote as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors as _expected_errors
from rescom.cli.run_config import build_config
from rescom.errors import MissingFileError, UsageError

analysis_app = typer.Typer(no_args_is_help=True,
                           help="Analyses of trained runs: gradients by similarity rank (Fig. 1 right), "
                                "positive-pair similarities (Fig. 5), inference cost (Tables 5 and 8).")


def _check_checkpoint(path: Path) -> None:
    if not path.is_file():
        raise MissingFileError(f"no checkpoint at {path}")


def parse_run_options(items: list[str]) -> dict[str, Path]:
    """['rescom=runs/a/checkpoint.pt', ...] -> {label: path}; every path must exist, labels unique."""
    runs: dict[str, Path] = {}
    for item in items:
        label, sep, path = (part.strip() for part in item.partition("="))
        if not sep or not label or not path:
            raise UsageError(f"--run {item!r}: expected LABEL=CHECKPOINT")
        if label in runs:
            raise UsageError(f"--run: label {label!r} given twice")
        runs[label] = Path(path)
        _check_checkpoint(runs[label])
    if not runs:
        raise UsageError("--run LABEL=CHECKPOINT is required (repeatable)")
    return runs


def _echo(result: dict) -> None:
    typer.echo(json.dumps(result, indent=2, default=str))


@analysis_app.command("gradients")
@_expected_errors
def gradients(checkpoint: Path = typer.Argument(..., help="A run's checkpoint.pt."),
              out: Optional[Path] = typer.Option(None, help="Output directory (default: analysis/ beside the checkpoint)."),
              num_batches: int = typer.Option(8, help="Batches of training images used as queries."),
              batch_size: int = typer.Option(128, help="Images per batch."),
              queue_source: str = typer.Option("auto", help="Keys: queue (the run's), batch (other training images) or auto."),
              seed: int = typer.Option(0, help="Seed of the image sample."),
              device: Optional[str] = typer.Option(None, help="cpu / cuda (default: the run's run.device).")):
    """Mean |dL/ds| of positives and negatives by similarity rank (vanishing gradients, Fig. 1 right)."""
    from rescom.analysis.gradients import gradient_analysis

    _check_checkpoint(checkpoint)
    result = gradient_analysis(checkpoint, num_batches=num_batches, batch_size=batch_size,
                               queue_source=queue_source, out_dir=out, seed=seed, device=device)
    r = result.pop("result")
    result["ranks"] = {"positive": int(r["positive"].size), "negative": int(r["negative"].size)}
    _echo(result)


@analysis_app.command("similarity")
@_expected_errors
def similarity(runs: list[str] = typer.Option([], "--run", help="LABEL=CHECKPOINT (repeatable), e.g. rescom=runs/x/checkpoint.pt."),
               out: Path = typer.Option(..., help="Output directory."),
               many: int = typer.Option(100, help="Many-shot: more than this many training images."),
               few: int = typer.Option(20, help="Few-shot: fewer than this many training images."),
               device: Optional[str] = typer.Option(None, help="cpu / cuda (default: each run's run.device).")):
    """Positive-pair cosine similarity of test images by many / medium / few (Fig. 5)."""
    from rescom.analysis.similarity import similarity_analysis

    checkpoints = parse_run_options(runs)
    result = similarity_analysis(checkpoints, out, many=many, few=few, device=device)
    _echo({k: v for k, v in result.items() if k != "summary"} | {"groups": [
        {k: row[k] for k in ("method", "group", "n_pairs", "mean")} for row in result["summary"]]})


@analysis_app.command("inference-cost")
@_expected_errors
def inference_cost(checkpoint: Optional[Path] = typer.Argument(None, help="A run's checkpoint.pt (or give --method)."),
                   out: Optional[Path] = typer.Option(None, help="Output directory (default: analysis/ beside the checkpoint)."),
                   device: str = typer.Option("auto", help="cpu / cuda / auto (cuda when available)."),
                   batch: int = typer.Option(64, help="Images per batch (the paper's 64)."),
                   repeat: int = typer.Option(20, help="Timed calls (the median is reported)."),
                   warmup: int = typer.Option(3, help="Untimed calls first."),
                   method: Optional[str] = typer.Option(None, help="Time a preset's untrained network instead of a checkpoint."),
                   dataset: Optional[str] = typer.Option(None, help="With --method: the dataset (sets classes and image size)."),
                   sets: list[str] = typer.Option([], "--set", help="With --method: config overrides, as for train.")):
    """Inference (encoder + classifier) vs training forward time and parameters (Tables 5 and 8)."""
    from rescom.analysis.inference_cost import inference_cost as measure

    if (checkpoint is None) == (method is None):
        raise UsageError("give a CHECKPOINT or --method (with --dataset), not both")
    if checkpoint is not None:
        _check_checkpoint(checkpoint)
    elif out is None:
        raise UsageError("--out is required with --method")
    target = checkpoint or build_config(method, dataset, None, None, sets, {})
    _echo(measure(target, device=device, batch=batch, repeat=repeat, warmup=warmup, out_dir=out))
