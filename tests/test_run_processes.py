"""Trainings as real processes: SIGTERM closes the MLflow run, and runs started at once share one store.

These start `python -m rescom train` in subprocesses (signals and races need real processes), on the
tiny folder with one or a few epochs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from test_train_cli import tiny_args

REPO = Path(__file__).resolve().parents[1]


def _start(args, cwd, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true", **(env_extra or {})}
    return subprocess.Popen([sys.executable, "-m", "rescom", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigterm_marks_the_run_killed_and_keeps_the_checkpoint(tmp_path, tiny_folder):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    process = _start(tiny_args(tiny_folder, epochs=200, extra=["--set", "run.run_name=term"]), tmp_path,
                     {"MLFLOW_TRACKING_URI": uri})
    checkpoint = tmp_path / "runs/term/checkpoint.pt"
    deadline = time.monotonic() + 240
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert checkpoint.exists(), process.communicate()[0] if process.poll() is not None else "no epoch in time"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, output
    assert "Traceback" not in output, output
    assert torch.load(checkpoint, weights_only=True)["epoch"] >= 1
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("rescom").experiment_id])
    assert [r.info.status for r in runs] == ["KILLED"]


def test_three_trainings_at_once_in_a_fresh_directory_all_finish(tmp_path, tiny_folder):
    from mlflow.tracking import MlflowClient

    env = {"MLFLOW_TRACKING_URI": ""}  # the default store: mlflow.db in the (fresh) working directory
    processes = [_start(tiny_args(tiny_folder, epochs=1, extra=["--set", f"run.run_name=r{i}"]), tmp_path, env)
                 for i in range(3)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0, 0], "\n".join(outputs)
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    for i in range(3):
        run_id = json.loads((tmp_path / f"runs/r{i}/run_log.json").read_text())["mlflow_run_id"]
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED"
        assert {"curves/test_all", "summary/last_test_all", "summary/best_test_all", "curves/loss"} <= set(run.data.metrics)
