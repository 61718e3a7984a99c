"""`rescom prepare`, `rescom train`, `rescom evaluate`: one run's life, from its data to its checkpoint's metrics.

The functions are registered on the app by rescom.cli (this module builds no Typer app of its own).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors, fail
from rescom.cli.run_config import build_config


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
    seeds: Optional[str] = typer.Option(None, help="Train one run per seed, e.g. 0,1,2, packed in this process on "
                                                   "one device; each run is the solo run of its seed."),
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
    if seeds is None:
        _print_metrics(run_training(config, resume=resume, overwrite=overwrite, allow_change=allowed))
    else:
        _train_seeds(config, seeds, seed, resume, overwrite, allowed)


def _train_seeds(config, seeds: str, seed, resume: bool, overwrite: bool, allowed: tuple[str, ...]) -> None:
    """--seeds: the runs of every seed as one pack; the others finish when one fails. Then a bug (any error
    but an ExpectedError) is raised with its traceback; expected errors exit 2 naming each failed run."""
    from rescom.config import ConfigError
    from rescom.errors import ExpectedError
    from rescom.engine.pack import parse_seeds, seed_configs
    from rescom.engine.resume import RunStart
    from rescom.engine.train import train_pack

    if seed is not None:
        raise ConfigError("--seed and --seeds: give one of them")
    configs = seed_configs(config, parse_seeds(seeds))
    outcomes = train_pack(configs, [RunStart(resume, overwrite, allowed)] * len(configs))
    for outcome in outcomes:
        if outcome.summary is not None:
            _print_metrics(outcome.summary)
    bugs = [o.error for o in outcomes if o.error is not None and not isinstance(o.error, ExpectedError)]
    if bugs:
        raise bugs[0]
    failed = [f"{o.run_dir}: {o.error}" for o in outcomes if o.error is not None]
    if failed:
        fail("; ".join(failed))


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
    log = summary.get("run_log") or {}
    if log.get("mean_epoch_seconds") is not None:
        table.caption = f"{log['mean_epoch_seconds']:.2f} s per epoch on {log['hardware']}"
    console.print(table)


@expected_errors
def evaluate(checkpoint: Path = typer.Argument(..., help="A run's checkpoint.pt."),
             out: Optional[Path] = typer.Option(None, help="Write the metrics as JSON here.")):
    """Evaluate a checkpoint's encoder + classifier on its test set."""
    from rescom.analysis.checkpoint_analyses import load_run_state
    from rescom.data.loading import loaders
    from rescom.engine.evaluate import evaluation_metrics, predict
    from rescom.engine.outputs import json_safe

    config, data, model, state = load_run_state(checkpoint)
    device = next(model.parameters()).device
    probs, targets = predict(model.inference_model(), loaders.test_loader(data, config.data, 256), device)
    metrics = evaluation_metrics(probs, targets, data.class_counts)
    metrics.pop("per_class")
    metrics["epoch"] = state["epoch"]
    text = json.dumps(json_safe(metrics), indent=2, allow_nan=False)  # strict JSON: null, never NaN
    typer.echo(text)
    if out is not None:
        out.write_text(text + "\n")


@expected_errors
def prepare(dataset: str = typer.Option(..., help="e.g. fashion-mnist-lt, cifar10-lt."),
            imbalance: Optional[float] = typer.Option(None), max_count: Optional[int] = typer.Option(None),
            seed: int = typer.Option(0, help="Subsampling seed."), data_root: Optional[str] = typer.Option(None),
            out: Optional[Path] = typer.Option(None, help="Output directory (default data/prepared/<name>).")):
    """Locate the raw data and write the long-tailed training set with its class counts."""
    from rescom.config import DataConfig, apply_overrides, validate
    from rescom.data.preparation.run_data import parse_dataset, prepare_data, prepared_dir
    from rescom.methods import preset_config

    parse_dataset(dataset)
    cfg = DataConfig(dataset=dataset, root=data_root, imbalance=imbalance if imbalance is not None else 100.0,
                     max_count=max_count, subsample_seed=seed, prepared_dir=str(out) if out else None)
    validate(apply_overrides(preset_config("ce"), {f"data.{k}": v for k, v in cfg.__dict__.items()}))
    data = prepare_data(cfg)
    typer.echo(f"{prepared_dir(cfg)}: {sum(data.class_counts)} training images in {len(data.class_counts)} "
               f"classes (n_max {max(data.class_counts)}, n_min {min(data.class_counts)}), {len(data.test.labels)} test")
