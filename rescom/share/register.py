"""Register finished run folders as MLflow runs, once: runs fetched by `dvc pull` show in the UI as
the runs trained here do (experiment `<profile>/<table>`, named as the folder, tagged profile,
variant and seed, so Group by > Tags > variant gathers a variant's seeds).

A run folder carries what MLflow needs: config.yaml (the resolved config: params), history.csv (one
row per epoch: the `curves/` metrics, step = epoch), metrics.json (the `summary/` metrics) and the
files training logs as artifacts. The MLflow run itself is not a DVC output, so a pulled folder has
none. Once: each registered run is tagged with a digest of those three files, and a folder whose
digest the experiment already has is skipped, as is one trained here (its run_log.json names a run
of this store). The digest tag is set last, so a registration cut short is deleted and redone.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from rescom.errors import MissingFileError, UsageError

DIGEST_TAG = "rescom.run_folder_digest"
REGISTERED_FILES = ("config.yaml", "metrics.json", "history.csv")  # what a registered run is made of
ARTIFACTS = ("config.yaml", "per_class.csv", "history.csv", "metrics.json", "per_class_accuracy.png",
             "confusion_matrix.png")  # what training logs (engine/run.py), where the folder has them
METRICS_PER_BATCH = 1000  # MLflow's log_batch limit


@dataclass
class Registration:
    registered: list[Path] = field(default_factory=list)
    already: list[Path] = field(default_factory=list)  # registered before, or trained into this store


def run_folders(paths: list[Path]) -> list[Path]:
    """The finished run folders (config.yaml and metrics.json) at or under each path, sorted."""
    found = set()
    for path in paths:
        if not path.exists():
            raise MissingFileError(f"{path}: no such run folder or directory")
        found |= {p.parent for p in [path / "metrics.json", *path.rglob("metrics.json")]
                  if p.is_file() and (p.parent / "config.yaml").is_file()}
    return sorted(found)


def folder_digest(folder: Path) -> str:
    """sha256 over the registered files' names and bytes: the identity of a finished run's results."""
    digest = hashlib.sha256()
    for name in REGISTERED_FILES:
        path = folder / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return digest.hexdigest()


def register_runs(folders: list[Path], uri: str | None = None) -> Registration:
    """One MLflow run per folder not registered yet, in the store at uri (default: the project's)."""
    from rescom.tracking import Tracker

    result = Registration()
    trackers: dict[str, Tracker] = {}
    for folder in folders:
        run = _read(folder)
        experiment = run["config"]["run"]["experiment"]
        if experiment not in trackers:
            trackers[experiment] = Tracker(experiment, uri)
        tracker = trackers[experiment]
        if _known(tracker, run["digest"], run["log"]):
            result.already.append(folder)
            continue
        _register(tracker, folder, run)
        result.registered.append(folder)
    return result


def _read(folder: Path) -> dict:
    import json

    import pandas as pd
    import yaml

    from rescom.engine.outputs import RUN_LOG_NAME, read_run_log

    config = yaml.safe_load((folder / "config.yaml").read_text())
    if not isinstance(config, dict) or "experiment" not in (config.get("run") or {}):
        raise UsageError(f"{folder / 'config.yaml'}: not a run's resolved config (no run.experiment)")
    history = folder / "history.csv"
    return {"config": config, "summary": json.loads((folder / "metrics.json").read_text()),
            "history": pd.read_csv(history).to_dict("records") if history.is_file() else [],
            "log": read_run_log(folder / RUN_LOG_NAME), "digest": folder_digest(folder)}


def _known(tracker, digest: str, log: dict) -> bool:
    """Registered before (its digest is in the experiment), or trained into this store."""
    from mlflow.exceptions import MlflowException

    client = tracker.client
    if client.search_runs([tracker.experiment_id], filter_string=f"tags.`{DIGEST_TAG}` = '{digest}'", max_results=1):
        return True
    trained_as = log.get("mlflow_run_id")
    if trained_as:
        try:
            return client.get_run(trained_as).info.experiment_id == tracker.experiment_id
        except MlflowException:  # trained into another store (another machine): not here
            return False
    return False


def _register(tracker, folder: Path, run: dict) -> None:
    from rescom.config import flatten
    from rescom.tracking import CURVES_PREFIX, SUMMARY_PREFIX

    config, summary = run["config"], run["summary"]
    name = folder.name
    tags = {"profile": str(config["run"].get("profile", "")), "variant": re.sub(r"-s\d+$", "", name),
            "seed": str(config["run"].get("seed", "")), "method": str(summary.get("method", "")),
            "dataset": str(config.get("data", {}).get("dataset", "")), "run_dir": str(folder.resolve()),
            "rescom.registered_from": "run folder (rescom share register)"}
    tracker.start(name, flatten(config), tags)
    try:
        seconds = run["log"].get("epoch_seconds") or []
        curves = []
        for i, row in enumerate(run["history"]):
            epoch = int(row["epoch"])
            values = {k: v for k, v in row.items() if k != "epoch"}
            if i < len(seconds):
                values["epoch_seconds"] = seconds[i]
            curves += [(CURVES_PREFIX + k, v, epoch) for k, v in values.items() if _number(v)]
        metrics = summary.get("metrics") or {}
        final = {k: v for k, v in metrics.items() if _number(v)}
        if run["log"].get("mean_epoch_seconds") is not None:
            final["mean_epoch_seconds"] = run["log"]["mean_epoch_seconds"]
        step = int(metrics.get("epochs") or config.get("optim", {}).get("epochs") or 0)
        _log_metrics(tracker, curves + [(SUMMARY_PREFIX + k, v, step) for k, v in final.items()])
        tracker.log_artifacts([folder / f for f in ARTIFACTS if (folder / f).is_file()])
        tracker.set_tags({DIGEST_TAG: run["digest"]})  # last: a registration cut short has none
        tracker.finish("FINISHED")
    except BaseException:
        tracker.client.delete_run(tracker.run_id)
        raise


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _log_metrics(tracker, values: list[tuple[str, float, int]]) -> None:
    import time

    from mlflow.entities import Metric

    from rescom.tracking import display_value

    now = int(time.time() * 1000)
    metrics = [Metric(key, display_value(value), now, step) for key, value, step in values]
    for start in range(0, len(metrics), METRICS_PER_BATCH):
        tracker.client.log_batch(tracker.run_id, metrics=metrics[start:start + METRICS_PER_BATCH])
