"""Gather finished runs of a profile's tables into pandas frames (one row per run)."""

from __future__ import annotations

import json
import math

import pandas as pd
import yaml

from rescom.config import ConfigError
from rescom.pipeline.catalogue import Profile, RunSpec, expand_table

METRICS = ("test_all", "test_many", "test_medium", "test_few", "test_ece")
def run_row(profile: Profile, spec: RunSpec) -> dict:
    """The run's axes, config highlights and last/best metrics; `finished` False when not yet trained."""
    run_dir = spec.run_dir(profile.name)
    row = {"table": spec.table, "run": spec.name, **spec.item, "finished": False}
    metrics_path = run_dir / "metrics.json"
    if not metrics_path.is_file():
        return row
    summary = json.loads(metrics_path.read_text())
    metrics = summary["metrics"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    row.update({
        "finished": True, "method": summary["method"], "dataset": summary["dataset"],
        "imbalance": summary["imbalance"], "seed": summary["seed"], "epochs": metrics["epochs"],
        "best_epoch": metrics["best_epoch"],
        "queue": config["method"]["queue"], "queue_size": config["method"]["queue_size"],
        "num_pos": config["method"]["num_pos"], "num_neg": config["method"]["num_neg"],
        "beta": config["method"]["beta"], "classifier_loss": config["method"]["classifier_loss"],
        "schedule": config["optim"]["schedule"], "eval_every": config["run"]["eval_every"],
        "subsample_seed": config["data"]["subsample_seed"],  # which draw of the long-tailed subset
    })
    # null (no class in that group) is NaN in the tables
    row.update({f"{when}_{m}": math.nan if (value := metrics[f"{when}_{m}"]) is None else float(value)
                for when in ("last", "best") for m in METRICS})
    return row


def table_frame(profile: Profile, table: str) -> pd.DataFrame:
    """One row per run of the table, plus its `references`: runs of other tables whose config is the
    table's missing grid point (e.g. beta's default value is main's rescom run), reused, not retrained."""
    rows = [run_row(profile, spec) for spec in expand_table(profile, table)]
    for reference in profile.section(table).get("references") or []:
        source_table, _, name = reference["run"].partition("/")
        spec = next((s for s in expand_table(profile, source_table) if s.name == name), None)
        if spec is None:
            raise ConfigError(f"{profile.path}: {table}.references names {reference['run']}, which is no run")
        row = run_row(profile, spec)
        row.update({k: v for k, v in reference.items() if k != "run"})
        row.update({"table": table, "run": f"{reference['run']} (reused)"})
        rows.append(row)
    return pd.DataFrame(rows)


def aggregate(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean and sample std over seeds of every metric, per combination of keys; n = seeds finished."""
    done = frame[frame["finished"]]
    value_columns = [c for c in done.columns if c.startswith(("last_", "best_test"))]
    grouped = done.groupby(keys, sort=False, dropna=False)
    out = pd.concat([grouped[value_columns].mean().add_suffix("_mean"),
                     grouped[value_columns].std(ddof=1).add_suffix("_std")], axis=1)
    out["n_seeds"] = grouped.size()
    out["seeds"] = grouped["seed"].apply(lambda s: ",".join(str(int(v)) for v in sorted(s)))
    out["epochs"] = grouped["epochs"].first()
    out["best_epoch"] = grouped["best_epoch"].apply(lambda s: ",".join(str(int(v)) for v in s))
    for column in ("dataset", "method"):  # identify the setting for paper values (not a key of every table)
        out[f"{column}_of_runs"] = grouped[column].first()
    out["imbalance_of_runs"] = grouped["imbalance"].first() if "imbalance" not in keys else None
    return out.reset_index()
