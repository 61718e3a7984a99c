"""What a user sees of a tracked run: `rescom ui` started on 127.0.0.1 over a store that was moved
after training, read through MLflow's REST API (curves, summary section, dataset input, artifacts),
and `rescom runs` (its columns, an unknown experiment)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import pytest

from test_train_cli import run_cli, tiny_args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(base: str, path: str, **query) -> dict:
    url = f"{base}{path}?{urllib.parse.urlencode(query)}" if query else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else {}


def _wait_for(base: str, server: subprocess.Popen, seconds: float = 300.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"rescom ui exited with {server.returncode}: {server.stdout.read()}")
        try:
            urllib.request.urlopen(base + "/health", timeout=2).read()
            return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"rescom ui did not answer on {base} within {seconds} s")


@pytest.fixture
def moved_store(tmp_path, monkeypatch, tiny_folder):
    """A tiny tracked run in store/ of one directory, then that directory moved elsewhere."""
    before = tmp_path / "before"
    before.mkdir()
    monkeypatch.chdir(before)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{before / 'store' / 'mlflow.db'}")
    result = run_cli(tiny_args(tiny_folder, extra=["--set", "run.run_name=seen", "--set", "run.experiment=ui/main"]))
    assert result.exit_code == 0, result.output
    run_id = json.loads((before / "runs/seen/run_log.json").read_text())["mlflow_run_id"]
    after = tmp_path / "after"
    shutil.move(before, after)
    monkeypatch.chdir(after)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{after / 'store' / 'mlflow.db'}")
    return after, run_id


@pytest.mark.slow
def test_ui_shows_curves_summary_dataset_and_artifacts_after_the_store_moved(moved_store):
    root, run_id = moved_store
    port = _free_port()
    env = os.environ | {"MLFLOW_TRACKING_URI": f"sqlite:///{root / 'store' / 'mlflow.db'}"}
    server = subprocess.Popen([sys.executable, "-m", "rescom", "ui", "--port", str(port)], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(base, server)
        api = base + "/api/2.0/mlflow"
        run = _get(api, "/runs/get", run_id=run_id)["run"]
        metrics = {m["key"]: m["value"] for m in run["data"]["metrics"]}
        # Curves: one point per epoch, step = epoch.
        history = _get(api, "/metrics/get-history", run_id=run_id, metric_key="curves/test_all")["metrics"]
        assert sorted(m["step"] for m in history) == [1, 2]
        # Two chart sections, curves/ before summary/ (the UI sorts prefixed sections by name), and no
        # unprefixed key that would open a third.
        sections = {key.split("/", 1)[0] for key in metrics}
        assert sections == {"curves", "summary"}, sorted(metrics)
        assert {"curves/test_all", "curves/loss", "curves/lr"} <= set(metrics)
        assert {"summary/best_test_all", "summary/last_test_all", "summary/last_test_few", "summary/epochs"} <= set(metrics)
        assert all(float(f"{v:.6g}") == v for v in metrics.values())  # rounded for display
        # The prepared set as a dataset input whose digest is its fingerprint.
        tags = {t["key"]: t["value"] for t in run["data"]["tags"]}
        (dataset_input,) = run["inputs"]["dataset_inputs"]
        dataset = dataset_input["dataset"]
        assert dataset["name"].startswith("folder-lt")  # the prepared set's folder name
        assert json.loads(dataset["source"])["uri"].endswith(dataset["name"])
        assert tags["dataset_fingerprint"].startswith(dataset["digest"]) and len(dataset["digest"]) == 36
        assert json.loads(dataset["profile"])["fingerprint"] == tags["dataset_fingerprint"]
        # Marked as model training, so the UI opens the runs, not the GenAI view.
        experiment = _get(api, "/experiments/get", experiment_id=run["info"]["experiment_id"])["experiment"]
        assert {"key": "mlflow.experimentKind", "value": "custom_model_development"} in experiment["tags"]
        # Artifacts still listed and served although the store moved.
        listed = _get(base + "/ajax-api/2.0/mlflow", "/artifacts/list", run_id=run_id)["files"]
        assert {"config.yaml", "confusion_matrix.png", "per_class_accuracy.png"} <= {f["path"] for f in listed}
        with urllib.request.urlopen(f"{base}/get-artifact?" + urllib.parse.urlencode(
                {"path": "config.yaml", "run_uuid": run_id}), timeout=10) as response:
            assert b"method:" in response.read()
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    # The printed address opens the experiment in the model-training view.
    assert f"127.0.0.1:{port}/#/experiments/{run['info']['experiment_id']}?workflowType=machine_learning" in server.stdout.read()


def test_runs_lists_experiment_variant_seed_epochs_and_headline(workdir, tiny_folder):
    result = run_cli(tiny_args(tiny_folder, extra=["--set", "run.run_name=listed-s0", "--set", "run.experiment=runs/main"]))
    assert result.exit_code == 0, result.output
    from rescom.runs_table import runs_frame

    frame = runs_frame("runs/main")
    assert list(frame.columns) == ["experiment", "variant", "seed", "epochs", "status", "last All", "best All",
                                   "last Few", "last ECE"]
    row = frame.iloc[0]
    assert (row["experiment"], row["variant"], row["seed"], row["epochs"]) == ("runs/main", "listed", "0", "2")
    assert 0.0 <= row["last All"] <= 100.0
    # Piped (not a terminal): TSV, every cell whole however narrow the pipe's reader.
    piped = run_cli(["runs", "--experiment", "runs/main"])
    header, line = (text.split("\t") for text in piped.output.splitlines())
    assert header == list(frame.columns) and line[:4] == ["runs/main", "listed", "0", "2"]


def test_runs_of_an_unknown_experiment_is_one_line_and_exit_2(workdir, tiny_folder):
    result = run_cli(["runs", "--experiment", "no/such"])
    assert result.exit_code == 2
    assert "no/such" in result.output and len(result.output.strip().splitlines()) == 1


def test_ui_opens_the_main_table_not_the_newest_experiment(tmp_path):
    from mlflow.tracking import MlflowClient

    from rescom.cli.runs import ui_landing

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert ui_landing(uri, "127.0.0.1", 5000) == "http://127.0.0.1:5000/#/?workflowType=machine_learning"
    assert not (tmp_path / "mlflow.db").exists()  # reading never creates a store
    client = MlflowClient(uri)
    ids = {}
    for name in ("other/beta", "default/main", "smoke/main", "default/beta"):  # created oldest to newest
        ids[name] = client.create_experiment(name)
        time.sleep(0.01)
    opened = lambda *experiment: ui_landing(uri, "h", 1, *experiment).split("/#/experiments/")[1].split("?")[0]  # noqa: E731
    assert opened() == ids["default/main"]                   # the default profile's main table, not default/beta
    assert opened("smoke/main") == ids["smoke/main"]
    assert opened("paper/main") == ids["smoke/main"]          # absent: the newest main table
    client.delete_experiment(ids["default/main"])
    client.delete_experiment(ids["smoke/main"])
    assert opened() == ids["default/beta"]                    # no main table: the newest experiment
