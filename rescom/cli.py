"""The `rescom` command line: train, evaluate, prepare, runs, ui, bench, simulate.

Each command is a thin shell around a function of the package; every expected failure (bad config,
missing data, existing run, NaN loss) prints one line naming the problem and exits with status 2.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Optional

import typer

from rescom.cli_common import expected_errors, fail as _fail
from rescom.cli_pipeline import pipeline_app
from rescom.cli_analysis import analysis_app
from rescom.cli_bench import bench_app
from rescom.cli_data import data_app
from rescom.cli_report import ablate, report_app

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ResCom reproduction suite: train, evaluate and compare long-tailed recognition methods.")
simulate_app = typer.Typer(no_args_is_help=True, help="Simulations without images (paper Fig. 1).")
app.add_typer(simulate_app, name="simulate")
app.add_typer(pipeline_app, name="pipeline")
app.add_typer(report_app, name="report")
app.add_typer(analysis_app, name="analyze")
app.add_typer(bench_app, name="bench")
app.add_typer(data_app, name="data")
app.command()(ablate)


def build_config(method: str, dataset: Optional[str], imbalance: Optional[float], config_file: Optional[Path],
                 sets: list[str], extra: dict):
    """Preset -> config file -> named options -> --set overrides, validated once."""
    from rescom.config import apply_overrides, flatten_file, parse_set_options, validate
    from rescom.methods import preset_config

    config = preset_config(method)
    if config_file is not None:
        config = apply_overrides(config, flatten_file(config_file))
    named = {k: v for k, v in extra.items() if v is not None}
    if dataset is not None:
        named["data.dataset"] = dataset
    if imbalance is not None:
        named["data.imbalance"] = imbalance
    config = apply_overrides(config, named)
    config = apply_overrides(config, parse_set_options(sets))
    validate(config)
    from rescom.engine.data import parse_dataset

    parse_dataset(config.data.dataset)
    return config


@app.command()
@expected_errors
def train(
    method: str = typer.Option("rescom", help="Preset: ce, bs, supcon_bs, moco_bs, rescom."),
    dataset: Optional[str] = typer.Option(None, help="e.g. cifar10-lt, cifar100-lt, fashion-mnist-lt, folder-lt, "
                                                     "imagenet-lt (default: fashion-mnist-lt, data.dataset)."),
    imbalance: Optional[float] = typer.Option(None, help="Imbalance factor n_max/n_min of the subsample "
                                                         "(default: 100, data.imbalance)."),
    data_root: Optional[str] = typer.Option(None, help="Directory with the raw data files (default: the "
                                                       "source's standard place, e.g. data/raw/cifar10)."),
    epochs: Optional[int] = typer.Option(None, help="Shortcut for --set optim.epochs=N (default: 400, the "
                                                    "released recipe: set a smaller number on a CPU)."),
    seed: Optional[int] = typer.Option(None, help="Shortcut for --set run.seed=N (default: 0)."),
    config_file: Optional[Path] = typer.Option(None, "--config", help="YAML file {section: {key: value}}."),
    sets: list[str] = typer.Option([], "--set", help="Override any key: --set method.num_neg=400 (repeatable)."),
    resume: bool = typer.Option(False, help="Continue the run from its last checkpoint (same MLflow run)."),
    allow_change: list[str] = typer.Option([], "--allow-change", help="With --resume: a key that may differ from the "
                                           "checkpoint's config, e.g. optim.lr after a NaN (repeatable; "
                                           "learning-rate schedule keys, optim.epochs, run.eval_every)."),
    overwrite: bool = typer.Option(False, help="Start over even if the run directory holds a checkpoint."),
    track: bool = typer.Option(True, help="Log to MLflow (--no-track to skip)."),
):
    """Train and evaluate one method variant; the run lands in runs/<name> and in MLflow."""
    from rescom.config import check_allow_change
    from rescom.engine.train import train as run_training

    allowed = check_allow_change(allow_change, resume)
    config = build_config(method, dataset, imbalance, config_file, sets,
                          {"data.root": data_root, "optim.epochs": epochs, "run.seed": seed,
                           **({} if track else {"run.track": False})})
    summary = run_training(config, resume=resume, overwrite=overwrite, allow_change=allowed)
    _print_metrics(summary)


def _print_metrics(summary: dict) -> None:
    from rich.table import Table

    from rescom.progress import console

    m = summary["metrics"]
    table = Table(title=f"{summary['method']} on {summary['dataset']} (IF {summary['imbalance']}, seed "
                        f"{summary['seed']}, profile {summary['profile']})")
    for column in ("", "All", "Many", "Medium", "Few", "ECE"):
        table.add_column(column, justify="right")
    for label, prefix, epoch in (("last epoch", "last_", m["last_epoch"]), ("best epoch", "best_", m["best_epoch"])):
        table.add_row(f"{label} ({epoch})", *(f"{m[prefix + 'test_' + k]:.2f}" for k in ("all", "many", "medium", "few", "ece")))
    console.print(table)


@app.command()
@expected_errors
def evaluate(checkpoint: Path = typer.Argument(..., help="A run's checkpoint.pt."),
             out: Optional[Path] = typer.Option(None, help="Write the metrics as JSON here.")):
    """Evaluate a checkpoint's encoder + classifier on its test set."""
    from rescom.analysis.checkpoint_analyses import load_run_state
    from rescom.engine import data as run_data
    from rescom.engine.evaluate import evaluation_metrics, predict

    config, data, model, state = load_run_state(checkpoint)
    device = next(model.parameters()).device
    probs, targets = predict(model.inference_model(), run_data.test_loader(data, config.data, 256), device)
    metrics = evaluation_metrics(probs, targets, data.class_counts)
    metrics.pop("per_class")
    metrics["epoch"] = state["epoch"]
    from rescom.engine.outputs import json_safe

    text = json.dumps(json_safe(metrics), indent=2, allow_nan=False)  # strict JSON: null, never NaN
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


@app.command()
@expected_errors
def prepare(dataset: str = typer.Option(..., help="e.g. fashion-mnist-lt, cifar10-lt."),
            imbalance: Optional[float] = typer.Option(None), max_count: Optional[int] = typer.Option(None),
            seed: int = typer.Option(0, help="Subsampling seed."), data_root: Optional[str] = typer.Option(None),
            out: Optional[Path] = typer.Option(None, help="Output directory (default data/prepared/<name>).")):
    """Locate the raw data and write the long-tailed training set with its class counts."""
    from rescom.config import DataConfig, apply_overrides, validate
    from rescom.engine.data import parse_dataset, prepare_data, prepared_dir
    from rescom.methods import preset_config

    parse_dataset(dataset)
    cfg = DataConfig(dataset=dataset, root=data_root, imbalance=imbalance if imbalance is not None else 100.0,
                     max_count=max_count, subsample_seed=seed, prepared_dir=str(out) if out else None)
    validate(apply_overrides(preset_config("ce"), {f"data.{k}": v for k, v in cfg.__dict__.items()}))
    data = prepare_data(cfg)
    typer.echo(f"{prepared_dir(cfg)}: {sum(data.class_counts)} training images in {len(data.class_counts)} "
               f"classes (n_max {max(data.class_counts)}, n_min {min(data.class_counts)}), {len(data.test.labels)} test")


@app.command()
@expected_errors
def runs(experiment: Optional[str] = typer.Option(None, help="Only this MLflow experiment."),
         limit: int = typer.Option(50)):
    """A table of MLflow runs: method, dataset, profile, last and best accuracy, ECE."""
    from rich.table import Table

    from rescom.progress import console
    from rescom.runs_table import runs_frame

    frame = runs_frame(experiment, limit)
    if frame.empty:
        typer.echo("no runs yet")
        return
    table = Table()
    for column in frame.columns:
        table.add_column(str(column))
    for _, row in frame.iterrows():
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


@app.command()
def ui(host: str = typer.Option("127.0.0.1", help="Interface to bind (default loopback only)."),
       port: int = typer.Option(5000)):
    """Start the MLflow UI on the project's store (one worker)."""
    from rescom.tracking import default_tracking_uri

    uri = default_tracking_uri()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    typer.echo(f"MLflow UI for {uri} on http://{host}:{port}")
    os.execv(sys.executable, command)


@simulate_app.command("pairs")
@expected_errors
def simulate_pairs(dataset: str = typer.Option("cifar10-lt"), imbalance: float = typer.Option(10.0),
                   batch_size: int = typer.Option(128), queue_size: int = typer.Option(8192),
                   epochs: int = typer.Option(200), seed: int = typer.Option(0),
                   out: Path = typer.Option(Path("reports/simulate-pairs"))):
    """Count contrastive pairs per class combination under sampling (Fig. 1 centre, Prop. 1)."""
    from rescom.analysis import simulate_report
    from rescom.data.longtail import exponential_counts

    sizes = {"cifar10-lt": (10, 5000), "cifar100-lt": (100, 500), "fashion-mnist-lt": (10, 6000)}
    if dataset not in sizes:
        _fail(f"--dataset: simulate knows {', '.join(sizes)}")
    counts = exponential_counts(*sizes[dataset], imbalance)
    result = simulate_report(counts, batch_size, queue_size, epochs, seed, out)
    typer.echo(json.dumps(result, indent=2, default=str))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
