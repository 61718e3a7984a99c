"""Tracking under parallel runs: 16 writers at about one epoch per second each into the sqlite store
and into an MLflow server on 127.0.0.1 lose no metric and hit no "database is locked"; two Dask
workers logging into a server leave every run FINISHED with its full history. A few seconds of
logging each, on top of the store's and server's start-up, so all are slow."""

from __future__ import annotations

import multiprocessing
import time
import traceback

import pytest

from rescom.tracking import CURVES_PREFIX, Tracker

pytestmark = pytest.mark.slow

WRITERS, EPOCHS, EPOCH_S = 16, 3, 1.0
METRICS = ("loss", "train_acc", "test_all", "lr")


def log_like_training(uri: str, name: str, epochs: int = EPOCHS, epoch_s: float = EPOCH_S) -> None:
    """What a training run sends: one run, one batch of metrics per epoch, then FINISHED."""
    tracker = Tracker("parallel", uri)
    tracker.start(name, {"writer": name}, {"rescom.test": "parallel"})
    start = time.monotonic()
    for epoch in range(epochs):
        tracker.log_metrics({m: float(epoch) for m in METRICS}, step=epoch)
        time.sleep(max(0.0, start + (epoch + 1) * epoch_s - time.monotonic()))
    tracker.finish()


def _writer(uri, name, barrier, errors) -> None:
    try:
        barrier.wait(60)
        log_like_training(uri, name)
    except Exception:  # noqa: BLE001 - the parent reports every writer's failure
        errors.put(traceback.format_exc())


def assert_complete(uri: str, names: list[str], epochs: int = EPOCHS) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("parallel")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert sorted(r.info.run_name for r in runs) == sorted(names)
    for run in runs:
        assert run.info.status == "FINISHED", run.info.run_name
        for metric in METRICS:
            history = client.get_metric_history(run.info.run_id, CURVES_PREFIX + metric)
            assert sorted(m.step for m in history) == list(range(epochs)), (run.info.run_name, metric)


def sixteen_writers(uri: str) -> None:
    Tracker("parallel", uri)  # store and experiment exist and mlflow is imported before the writers fork
    context = multiprocessing.get_context("fork")
    barrier, errors = context.Barrier(WRITERS), context.Queue()
    names = [f"writer{i}" for i in range(WRITERS)]
    processes = [context.Process(target=_writer, args=(uri, name, barrier, errors)) for name in names]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    failures = []
    while not errors.empty():
        failures.append(errors.get())
    assert not failures, failures[0]
    assert all(p.exitcode == 0 for p in processes)
    assert_complete(uri, names)


@pytest.fixture
def server(tmp_path):
    from rescom.executor.tracking_server import start_server

    running = start_server(tmp_path / "mlflow.db", host="127.0.0.1")
    try:
        yield running
    finally:
        running.stop()
    assert running.process.poll() is not None


def test_sixteen_writers_into_sqlite(tmp_path):
    sixteen_writers(f"sqlite:///{tmp_path / 'mlflow.db'}")


def test_sixteen_writers_into_a_server(server):
    assert server.uri.startswith("http://127.0.0.1:")
    sixteen_writers(server.uri)


def test_a_finished_run_prints_its_address_in_the_training_view(server, capsys):
    tracker = Tracker("parallel", server.uri)
    run_id = tracker.start("addressed", {}, {})
    tracker.finish()
    printed = capsys.readouterr().out
    assert f"/#/experiments/{tracker.experiment_id}/runs/{run_id}?workflowType=machine_learning" in printed
    assert "View run" not in printed  # MLflow's own line, without the view, stays silent


def test_two_dask_workers_log_into_a_server(server, tmp_path):
    from distributed import Client

    from rescom.executor.cluster import start_local_cluster

    names = [f"run{i}" for i in range(4)]
    with start_local_cluster(2, gpus=[]) as cluster, Client(cluster) as client:
        futures = [client.submit(log_like_training, server.uri, name, 3, 0.5, pure=False) for name in names]
        client.gather(futures)
        assert len(client.nthreads()) == 2
    assert_complete(server.uri, names, epochs=3)


def test_server_with_basic_auth_refuses_requests_without_credentials(tmp_path, monkeypatch):
    """What a server bound beyond 127.0.0.1 runs (here on 127.0.0.1 with auth forced on)."""
    import urllib.error
    import urllib.request

    from rescom.executor.tracking_server import start_server

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "rescom-admin")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-long-test-password")
    server = start_server(tmp_path / "mlflow.db", host="127.0.0.1", auth=True)
    try:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
        assert refused.value.code == 401
        log_like_training(server.uri, "authenticated", epochs=2, epoch_s=0.1)  # the workers' credentials
        assert_complete(server.uri, ["authenticated"], epochs=2)
    finally:
        server.stop()
