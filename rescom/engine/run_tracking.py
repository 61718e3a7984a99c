"""A run's MLflow run: started with its params and tags, or continued after a resume."""

from __future__ import annotations

import os
import re

from rescom.config import TrainConfig
from rescom.data.preparation import run_data
from rescom.data.preparation.prepared import PreparedData
from rescom.engine.run_state import RunPaths, RunState
from rescom.tracking import NullTracker, Tracker, git_commit


def open_tracker(config: TrainConfig, data: PreparedData, paths: RunPaths, state: RunState, changes: str = ""):
    """The run's tracker; a new MLflow run's id goes into state (the run log keeps it for a resume)."""
    if not config.run.track:
        return NullTracker()
    tracker = Tracker(config.run.experiment)
    if state.mlflow_run_id:
        tracker.resume(state.mlflow_run_id)
        tracker.log_missing_epochs(state.history, state.epoch_seconds)
        if changes:  # MLflow params cannot change; the run says what the continuation changed
            tracker.set_tags({f"resume_change_epoch_{state.epoch}": changes})
        return tracker
    tags = {
        "git_commit": git_commit(), "profile": config.run.profile, "method": config.method_name,
        # the run name without its seed: the MLflow UI's Group by gathers a variant's seeds with it
        "variant": re.sub(r"-s\d+$", "", paths.root.name),
        "dataset": config.data.dataset, "dataset_fingerprint": data.meta.get("fingerprint", ""),
        "class_counts": ",".join(map(str, data.class_counts)), "run_dir": str(paths.root.resolve()),
        "dvc_stage": os.environ.get("DVC_STAGE", ""),
    }
    state.mlflow_run_id = tracker.start(paths.root.name, config.flat(), tags)
    prepared = run_data.prepared_dir(config.data)
    tracker.log_dataset(prepared.name, data.meta.get("fingerprint", ""), str(prepared), config.run.profile)
    return tracker
