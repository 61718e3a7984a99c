"""MLflow tracking through MlflowClient: one run per training, explicit run ids, batched logging.

mlflow is imported lazily so the training path runs where it is not installed (`run.track=false`).
The default store is an absolute sqlite URI in the working directory; MLFLOW_TRACKING_URI overrides.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:////abs/path/mlflow.db in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


def _artifact_root(uri: str) -> str | None:
    """Artifacts beside a sqlite store (mlartifacts/), so nothing lands relative to the cwd of a later call."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return None


@contextlib.contextmanager
def store_setup_lock(uri: str):
    """An exclusive lock on <store>.lock beside a sqlite store, held while the store is set up."""
    if not uri.startswith("sqlite:///"):
        yield
        return
    lock_path = Path(uri[len("sqlite:///"):] + ".lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def git_commit() -> str:
    """HEAD's commit, with '-dirty' when the tree has uncommitted changes; 'unknown' outside git."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


class Tracker:
    """One MLflow run. Every call is one request: metrics are logged per epoch as one batch."""

    def __init__(self, experiment: str, uri: str | None = None):
        from mlflow.tracking import MlflowClient

        self.uri = uri or default_tracking_uri()
        # Creating a sqlite store (schema migrations) and an experiment are not safe to race: runs
        # started at once in a fresh directory crashed in alembic. One process at a time does it.
        with store_setup_lock(self.uri):
            self.client = MlflowClient(self.uri)
            self.experiment_id = self._experiment_id(experiment)
        self.run_id: str | None = None

    def _experiment_id(self, name: str) -> str:
        """The experiment's id, created if missing. A tracking server has no setup lock, so runs
        started at once on several workers may race to create it: the loser takes the winner's."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=_artifact_root(self.uri))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            return self.client.get_experiment_by_name(name).experiment_id

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        from mlflow.entities import Param, RunTag

        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        return self.run_id

    def resume(self, run_id: str) -> None:
        """Continue an earlier run (after --resume): metrics append to the same history."""
        self.client.get_run(run_id)  # fails clearly if the run is not in this store
        self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])

    def log_artifacts(self, paths: list[Path]) -> None:
        for path in paths:
            self.client.log_artifact(self.run_id, str(path))

    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)


class NullTracker:
    """Stands in for Tracker when tracking is off."""

    run_id = None

    def start(self, *args, **kwargs) -> None:
        return None

    def resume(self, run_id) -> None:
        return None

    def set_tags(self, *args, **kwargs) -> None:
        return None

    def log_metrics(self, *args, **kwargs) -> None:
        return None

    def log_artifacts(self, *args, **kwargs) -> None:
        return None

    def finish(self, *args, **kwargs) -> None:
        return None
