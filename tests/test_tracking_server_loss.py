"""A tracking server that is not there, or goes away mid-run: one line naming it, nothing prepared
before the check, the checkpoint kept and a rerun continuing the same MLflow run."""

from __future__ import annotations

import json
import time

import pytest
import torch

from cli_errors import assert_one_line_error
from rescom.executor.tracking_server import start_server
from test_train_cli import run_cli, tiny_args


def test_unreachable_server_is_one_line_before_any_data_is_prepared(workdir, tiny_folder, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    start = time.monotonic()
    result = run_cli(tiny_args(tiny_folder))
    assert time.monotonic() - start < 30  # MLflow's own retries took over four minutes
    assert_one_line_error(result, "MLflow tracking server http://127.0.0.1:9 does not answer")
    assert not (workdir / "data").exists() and not (workdir / "runs").exists()


@pytest.mark.slow
def test_server_gone_mid_run_is_one_line_and_the_rerun_resumes(workdir, tiny_folder, monkeypatch):
    import rescom.engine.run as engine

    server = start_server(workdir / "mlflow.db")
    port = int(server.uri.rsplit(":", 1)[1])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    original = engine.Run.epoch

    def server_dies_in_second_epoch(run):
        if run.state.epoch == 1:
            server.stop()
        yield from original(run)

    monkeypatch.setattr(engine.Run, "epoch", server_dies_in_second_epoch)
    try:
        lost = run_cli(tiny_args(tiny_folder, epochs=3))
        assert_one_line_error(lost, f"MLflow tracking server {server.uri} went away")
        assert "the last checkpoint is kept" in lost.output
        run_dir = workdir / "runs" / "rescom-folder-lt-if6-s0"
        # The second epoch was on disk before its values were sent: the rerun continues after it.
        assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] == 2

        monkeypatch.setattr(engine.Run, "epoch", original)
        server = start_server(workdir / "mlflow.db", port=port)
        resumed = run_cli(tiny_args(tiny_folder, epochs=3, extra=["--resume"]))
        assert resumed.exit_code == 0, resumed.output
        from mlflow.tracking import MlflowClient

        run_id = json.loads((run_dir / "run_log.json").read_text())["mlflow_run_id"]
        history = MlflowClient(server.uri).get_metric_history(run_id, "curves/test_all")
        assert sorted(m.step for m in history) == [1, 2, 3]  # epoch 2's values sent on resume
    finally:
        server.stop()


@pytest.mark.slow
def test_a_server_dies_with_the_process_that_started_it(tmp_path):
    """A controller killed before its `finally` (kill -9, a test's timeout) leaves no server listening."""
    import signal
    import subprocess
    import sys
    import urllib.request

    controller = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path\n"
         "from rescom.executor.tracking_server import start_server\n"
         "print(start_server(Path(sys.argv[1])).uri, flush=True); time.sleep(600)", str(tmp_path / "mlflow.db")],
        stdout=subprocess.PIPE, text=True)
    try:
        uri = controller.stdout.readline().strip()
        with urllib.request.urlopen(f"{uri}/health", timeout=5) as answer:
            assert answer.status == 200
    finally:
        controller.send_signal(signal.SIGKILL)
        controller.wait()
    deadline = time.monotonic() + 30  # the guard's SIGTERM, then SIGKILL after 15 s
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"{uri}/health", timeout=2).close()
        except OSError:
            break  # nothing answers any more
        time.sleep(0.5)
    else:
        pytest.fail(f"the server at {uri} still answers 30 s after its controller was killed")
