"""A run killed by SIGTERM in the middle of an epoch resumes to the same metrics and checkpoint.

The existing kill-and-resume test stops at an epoch boundary; here the signal arrives after a step
of the second epoch has already changed the model, optimizer and queue in memory, so a resume that
reused any of that state (instead of the last checkpoint's) would drift from the uninterrupted run.
Real processes: `rescom train` runs in a subprocess whose step counts itself and sends itself
SIGTERM after step k, the way a scheduler would stop it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_train_cli import tiny_args

REPO = Path(__file__).resolve().parents[1]
EPOCHS = 2
# Run the CLI with the step wrapped: count each finished step in a file; after step `kill_at`
# (0 = never) send this process SIGTERM, as `kill` or a batch scheduler would.
DRIVER = """
import os, signal, sys
from pathlib import Path
import rescom.engine.step as step_module
from rescom.cli import app

kill_at, counter = int(sys.argv[1]), Path(sys.argv[2])
real_step, calls = step_module.train_step, [0]

def counted_step(*args, **kwargs):
    out = real_step(*args, **kwargs)
    calls[0] += 1
    counter.write_text(str(calls[0]))
    if calls[0] == kill_at:
        os.kill(os.getpid(), signal.SIGTERM)
    return out

step_module.train_step = counted_step
app(sys.argv[3:], prog_name="rescom")
"""


def _train(cwd: Path, kill_at: int, args: list) -> tuple[subprocess.CompletedProcess, int]:
    counter = cwd / "steps.txt"
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true"}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(kill_at), str(counter), *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    return done, int(counter.read_text()) if counter.is_file() else 0


def _components(path: Path) -> dict:
    return torch.load(path, weights_only=True)["components"]


def _assert_same_tensors(a, b, where=""):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            _assert_same_tensors(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_same_tensors(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume_equals_uninterrupted(tmp_path, tiny_folder):
    args = tiny_args(tiny_folder, epochs=EPOCHS, extra=["--set", "run.run_name=cut", "--no-track"])
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    full_dir.mkdir(), cut_dir.mkdir()
    full, steps = _train(full_dir, 0, args)
    assert full.returncode == 0, full.stdout + full.stderr
    assert steps % EPOCHS == 0 and steps // EPOCHS >= 4, steps
    per_epoch = steps // EPOCHS

    kill_at = per_epoch + per_epoch // 2  # in the middle of epoch 2, never at its start or end
    killed, done_steps = _train(cut_dir, kill_at, args)
    assert killed.returncode != 0, killed.stdout + killed.stderr
    assert done_steps == kill_at  # the signal stopped the run at once, not an epoch later
    run = cut_dir / "runs" / "cut"
    assert torch.load(run / "checkpoint.pt", weights_only=True)["epoch"] == 1  # epoch 2 never finished
    assert not (run / "metrics.json").exists()

    resumed, resumed_steps = _train(cut_dir, 0, args + ["--resume"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert resumed_steps == (EPOCHS - 1) * per_epoch  # epoch 2 redone from its start

    reference = full_dir / "runs" / "cut"
    for name in ("metrics.json", "history.csv", "per_class.csv", "config.yaml"):
        assert (run / name).read_bytes() == (reference / name).read_bytes(), name
    _assert_same_tensors(_components(reference / "checkpoint.pt"), _components(run / "checkpoint.pt"))
    # Byte for byte too: dvc.lock after an interruption must be a sequential run's (the pickle's memo
    # differed when the resumed history shared its key strings, which the live history did not).
    assert (run / "checkpoint.pt").read_bytes() == (reference / "checkpoint.pt").read_bytes()
