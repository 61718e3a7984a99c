"""MLflow tracking through MlflowClient: one run per training, explicit run ids, batched logging.

mlflow is imported lazily so the training path runs where it is not installed (`run.track=false`).
The default store is an absolute sqlite URI in the working directory; MLFLOW_TRACKING_URI overrides.

How a run looks in the MLflow UI is decided here:
- experiments are tagged as model training (`mlflow.experimentKind`), and every address the suite
  prints (`ui_url`) carries `?workflowType=machine_learning`, without which MLflow 3's UI opens the
  GenAI view; MLflow's own "View run at" lines, which lack it, are silenced;
- per-epoch values are the curves (`curves/<key>`, step = epoch); one-off values (best/last
  accuracy, epochs) go under `summary/`, a chart section of its own after the curves;
- values are rounded to 6 significant digits (accuracy 14.000000000000002 shows as 14);
- the prepared set is a dataset input (name, digest = its fingerprint, source, profile);
- artifacts of a sqlite store are proxied (`mlflow-artifacts:/<experiment>`): the database holds
  no absolute path, the files sit in mlartifacts/ beside it, and `rescom ui` serves them from
  there, so a moved checkout keeps its previews.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import subprocess
from pathlib import Path
from typing import Any

from rescom.errors import TrackingUnavailableError

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")  # Tracker.finish prints the address
# MLflow retries a tracking server's request 7 times with exponential backoff, 120 s each: an
# unreachable server held a run for over 4 minutes before its traceback. A few seconds tell.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")


def default_tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else sqlite:////abs/path/mlflow.db in the working directory."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path('mlflow.db').resolve()}"


# MLflow 3's UI draws one chart section per key prefix, prefixed sections sorted by name before the
# unprefixed "Model metrics": `curves/` < `summary/` puts the per-epoch curves first.
CURVES_PREFIX = "curves/"
SUMMARY_PREFIX = "summary/"
PROXY_SCHEME = "mlflow-artifacts:/"
# The tag MLflow 3's UI reads to show an experiment as model training rather than GenAI development.
EXPERIMENT_KIND = {"mlflow.experimentKind": "custom_model_development"}


def is_server(uri: str) -> bool:
    return uri.startswith(("http://", "https://"))


def check_reachable(uri: str | None = None, timeout_s: float = 5.0) -> None:
    """A tracking server's URI must answer before anything is prepared or trained: any HTTP reply
    (401 from a basic-auth server included) will do; no reply within timeout_s is one line."""
    import urllib.error
    import urllib.request

    uri = uri or default_tracking_uri()
    if not is_server(uri):
        return
    try:
        urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s).close()
    except urllib.error.HTTPError:
        return
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise TrackingUnavailableError(
            f"MLflow tracking server {uri} does not answer ({reason}): start it, give another "
            "MLFLOW_TRACKING_URI / --tracking-uri, or unset it to use the local store") from None


def _server_errors(method):
    """A tracking server that goes away during a run: one line naming it (the run stops; its last
    checkpoint is kept and a rerun continues from it), not MLflow's retries' traceback."""
    import functools

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - re-raised unless it is the server's absence
            if not is_server(self.uri) or not _is_connection_failure(err):
                raise
            raise TrackingUnavailableError(
                f"MLflow tracking server {self.uri} went away ({str(err).splitlines()[0][:200]}); "
                "the last checkpoint is kept: run again to continue once it is back") from None
    return call


def _is_connection_failure(err: BaseException) -> bool:
    import requests

    from mlflow.exceptions import MlflowException

    chain = [err, err.__cause__, err.__context__]
    return any(isinstance(e, requests.exceptions.ConnectionError) for e in chain) or (
        isinstance(err, MlflowException) and "Max retries exceeded" in str(err))


def sqlite_path(uri: str) -> Path | None:
    """The database file of a sqlite:/// URI, else None."""
    return Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None


def local_artifacts_root(uri: str) -> Path | None:
    """mlartifacts/ beside a sqlite store: where its proxied artifacts are written and served from."""
    database = sqlite_path(uri)
    return database.parent / "mlartifacts" if database is not None else None


def _artifact_location(uri: str, experiment: str) -> str | None:
    """A proxied location for a sqlite store's experiment (no absolute path in the database)."""
    if sqlite_path(uri) is None:
        return None  # a tracking server or other store keeps its own default
    return PROXY_SCHEME + "/".join(part for part in experiment.replace("\\", "/").split("/") if part not in ("", ".", ".."))


def display_value(value: float) -> float:
    """value at 6 significant digits: what the UI shows without float noise (0.1 + 0.2 -> 0.3)."""
    return float(f"{float(value):.6g}")


def ui_url(base: str, experiment_id: str | None = None, run_id: str | None = None) -> str:
    """The UI at `base` (http://host:port), an experiment's or a run's page, in the model-training view."""
    page = f"experiments/{experiment_id}" + (f"/runs/{run_id}" if run_id else "") if experiment_id else ""
    return f"{base.rstrip('/')}/#/{page}?workflowType=machine_learning"


def artifact_repository(client, run_id: str):
    """Where a run's artifacts are written: the local mlartifacts/ folder for a proxied run of a
    sqlite store (there is no server to proxy through while training), else MLflow's own repository."""
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    artifact_uri = client.get_run(run_id).info.artifact_uri
    root = local_artifacts_root(client.tracking_uri)
    if artifact_uri.startswith(PROXY_SCHEME) and root is not None:
        return LocalArtifactRepository(str(root / artifact_uri[len(PROXY_SCHEME):]))
    return get_artifact_repository(artifact_uri)


@contextlib.contextmanager
def store_setup_lock(uri: str):
    """An exclusive lock on <store>.lock beside a sqlite store, held while the store is set up."""
    database = sqlite_path(uri)
    if database is None:
        yield
        return
    lock_path = Path(f"{database}.lock")
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
        """The experiment's id, created if missing and marked as model training. A tracking server has
        no setup lock, so runs started at once on several workers may race to create it: the loser
        takes the winner's."""
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is None:
            try:
                return self.client.create_experiment(
                    name, artifact_location=_artifact_location(self.uri, name), tags=EXPERIMENT_KIND)
            except MlflowException as err:
                if err.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                found = self.client.get_experiment_by_name(name)
        for key, value in EXPERIMENT_KIND.items():
            if found.tags.get(key) != value:  # a store made before the tag existed
                self.client.set_experiment_tag(found.experiment_id, key, value)
        return found.experiment_id

    @_server_errors
    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, str]) -> str:
        from mlflow.entities import Param, RunTag

        run = self.client.create_run(self.experiment_id, run_name=run_name, tags=tags)
        self.run_id = run.info.run_id
        self.client.log_batch(self.run_id, params=[Param(k, str(v)) for k, v in params.items()],
                              tags=[RunTag(k, v) for k, v in tags.items()])
        return self.run_id

    @_server_errors
    def resume(self, run_id: str) -> None:
        """Continue an earlier run (after --resume): metrics append to the same history."""
        self.client.get_run(run_id)  # fails clearly if the run is not in this store
        self.client.update_run(run_id, status="RUNNING")
        self.run_id = run_id

    @_server_errors
    def log_missing_epochs(self, history: list[dict], epoch_seconds: list[float]) -> None:
        """Log the epochs a resumed run's checkpoint holds and its MLflow run lacks: a server that
        went away after an epoch's checkpoint was written never got that epoch's values."""
        import math

        logged = {m.step for m in self.client.get_metric_history(self.run_id, CURVES_PREFIX + "epoch_seconds")}
        for number, row in enumerate(history, start=1):
            if number in logged:
                continue
            values = {k: v for k, v in row.items() if k != "epoch" and not (isinstance(v, float) and math.isnan(v))}
            seconds = {"epoch_seconds": epoch_seconds[number - 1]} if number <= len(epoch_seconds) else {}
            self.log_metrics(values | seconds, step=number)

    @_server_errors
    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Per-epoch values (step = epoch) as `curves/<key>`: the UI's first chart section."""
        self._log(CURVES_PREFIX, metrics, step)

    def log_summary(self, summary: dict[str, float], step: int) -> None:
        """One-off values of the run (best/last accuracy, epochs) as `summary/<key>`: a section of
        their own in the UI, after the curves, instead of single-dot charts among them."""
        self._log(SUMMARY_PREFIX, summary, step)

    @_server_errors
    def _log(self, prefix: str, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(prefix + k, display_value(v), now, step)
                                                    for k, v in metrics.items()])

    @_server_errors
    def log_dataset(self, name: str, digest: str, source: str, profile: str, context: str = "training") -> None:
        """The prepared set as the run's dataset input: name, digest, source, profile.

        MLflow caps a digest at 36 characters: the digest is the fingerprint's first 36 hex digits
        and the profile field holds the whole fingerprint.
        """
        import json

        from mlflow.entities import Dataset, DatasetInput, InputTag

        dataset = Dataset(name=name, digest=digest[:36], source_type="local", source=json.dumps({"uri": source}),
                          profile=json.dumps({"profile": profile, "fingerprint": digest}))
        self.client.log_inputs(self.run_id, datasets=[DatasetInput(dataset, tags=[InputTag("mlflow.data.context", context)])])

    @_server_errors
    def log_artifacts(self, paths: list[Path], artifact_path: str | None = None) -> None:
        repository = artifact_repository(self.client, self.run_id)
        for path in paths:
            repository.log_artifact(str(path), artifact_path)

    @_server_errors
    def finish(self, status: str = "FINISHED") -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, status=status)
            if is_server(self.uri):  # a tracking server's UI: where to look
                print(f"MLflow run {status.lower()}: {ui_url(self.uri, self.experiment_id, self.run_id)}", flush=True)


class NullTracker:
    """Stands in for Tracker when tracking is off: every method takes anything and does nothing."""

    run_id = None

    def __getattr__(self, name: str):
        if name.startswith("_"):  # copy, pickle and friends probe dunders: those stay missing
            raise AttributeError(name)
        return lambda *args, **kwargs: None
