"""`rescom repro` on a local Dask cluster over toy DVC projects: parallel equals sequential, faults
lose nothing, packs record their good stages, Ctrl-C keeps what finished. Each test starts and
closes its own cluster (a few seconds), so all are slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from executor_repos import DIAMOND, PY, make_repo
from rescom.executor.session import repro

pytestmark = pytest.mark.slow


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1"})


def lock_stages(root: Path) -> list[str]:
    import yaml

    lock = root / "dvc.lock"
    # polled while the controller rewrites the file: an empty read is "nothing recorded yet"
    data = yaml.safe_load(lock.read_text()) if lock.exists() else None
    return list((data or {}).get("stages", {}))


def test_parallel_repro_equals_sequential_dvc_repro(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo", DIAMOND)
    monkeypatch.chdir(root)
    summary = repro(["dvc.yaml"], jobs=2, threads=1)
    assert summary.ok and sorted(summary.ran) == ["a", "b", "c", "d"]
    assert (root / "d.txt").read_text() == "abcd"
    assert "up to date" in dvc(root, "status").stdout
    again = repro(["dvc.yaml"], jobs=2, threads=1)
    assert again.ran == [] and sorted(again.skipped) == ["a", "b", "c", "d"]
    parallel_lock = (root / "dvc.lock").read_text()
    for name in ("dvc.lock", "a.txt", "b.txt", "c.txt", "d.txt"):
        (root / name).unlink()
    assert dvc(root, "repro").returncode == 0
    assert (root / "dvc.lock").read_text() == parallel_lock  # byte for byte, entry order included


def test_one_worker_on_a_cpu_hands_the_run_to_dvc_repro(tmp_path, monkeypatch, capsys):
    import rescom.executor.cluster as cluster

    root = make_repo(tmp_path / "repo", DIAMOND)
    monkeypatch.chdir(root)
    monkeypatch.setattr(cluster, "usable_cores", lambda: 2)
    summary = repro(["dvc.yaml"], jobs=2, threads=2)  # 2 cores hold one 2-thread stage
    assert summary.ok and "handing the run to `dvc repro`" in capsys.readouterr().err
    assert (root / "d.txt").read_text() == "abcd" and "up to date" in dvc(root, "status").stdout
    assert not (root / "logs").exists()  # no controller, no stage logs: DVC ran the stages itself


def test_failing_stage_is_reported_with_its_log_and_others_go_on(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo", {
        "bad": {"out": "bad.txt", "args": ["--fail"]},
        "after_bad": {"out": "after.txt", "deps": ["bad.txt"]},
        "good": {"out": "good.txt", "args": ["--sleep", "0.5"]},
    })
    monkeypatch.chdir(root)
    summary = repro(["dvc.yaml"], jobs=2, threads=1)
    assert summary.ran == ["good"] and list(summary.failed) == ["bad"] and summary.not_run == ["after_bad"]
    log = root / "logs" / "repro" / "bad.log"
    assert str(log) in summary.failed["bad"] and "failing on purpose" in log.read_text()
    assert lock_stages(root) == ["good"]  # no entry for the failed stage nor the one it blocked


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash"])
def test_worker_killed_mid_stage_is_retried_and_resumes(tmp_path, monkeypatch, shell):
    # /bin/sh (dash, CI's shell when SHELL is unset) forks the stage's python instead of exec'ing it:
    # the orphan must die with the worker all the same.
    monkeypatch.setenv("SHELL", shell)
    root = make_repo(tmp_path / "repo", {"long": {"out": "long.txt", "args": ["--resumable", "12"], "persist": True}})
    monkeypatch.chdir(root)
    result = {}
    # Two workers (one would hand the run to dvc repro): the retry goes to the other or a restarted one.
    thread = threading.Thread(target=lambda: result.update(summary=repro(["dvc.yaml"], jobs=2, threads=1)))
    thread.start()
    progress, pids = root / "long.txt.progress", root / "long.txt.pids"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (progress.exists() and len(progress.read_text().splitlines()) >= 3):
        time.sleep(0.1)
    os.kill(int(pids.read_text().split()[0]), signal.SIGKILL)  # the worker process, mid-stage
    thread.join(180)
    summary = result["summary"]
    assert summary.ok and summary.ran == ["long"]
    assert len(set(pids.read_text().split())) == 2  # a second worker ran the retry
    steps = progress.read_text().splitlines()
    assert steps == [f"step {i}" for i in range(12)]  # resumed, no step twice: the orphan died with its worker
    resumed_at = [line for line in (root / "logs" / "repro" / "long.log").read_text().splitlines() if "resuming" in line]
    assert resumed_at[0] == "resuming at step 0" and resumed_at[-1] != "resuming at step 0"
    assert lock_stages(root) == ["long"]


class FakePacking:
    """The interface rescom.pipeline.packing offers (companion issue), on records: stages whose record
    is a toy step share a key; the pack command runs each step and writes {stage name: {"ok", "error"}}."""

    RUNNER = '''
import json, subprocess, sys
results_path, stages = sys.argv[1], json.loads(sys.argv[2])
results = {}
for name, args in stages.items():
    code = subprocess.run([sys.executable, "step.py", *args]).returncode
    results[name] = {"ok": code == 0, "error": "" if code == 0 else f"exit {code}"}
open(results_path, "w").write(json.dumps(results))
sys.exit(0 if all(r["ok"] for r in results.values()) else 1)
'''

    def __init__(self, root: Path):
        self.runner = root / "pack_runner.py"
        self.runner.write_text(self.RUNNER)
        self.packed: list[list[str]] = []

    def pack_key(self, record):
        return "toy" if record and record["kind"] == "step" else None

    def pack_command(self, records: dict, results_path: str) -> list[str]:
        self.packed.append(list(records))
        return [PY, str(self.runner), results_path, json.dumps({n: r["arguments"]["args"] for n, r in records.items()})]


def _step(out: str, *args: str) -> dict:
    """A toy stage with its record (the step.py arguments), as rescom's stages carry theirs."""
    return {"out": out, "args": list(args), "meta": {"kind": "step", "arguments": {"args": [out, *args]}}}


def test_pack_records_every_stage_that_succeeded(tmp_path, monkeypatch):
    from rescom.executor import packs

    root = make_repo(tmp_path / "repo", {"p1": _step("p1.txt"), "p2": _step("p2.txt", "--fail"),
                                         "p3": _step("p3.txt"), "p4": {"out": "p4.txt", "deps": ["p1.txt"]}})
    monkeypatch.chdir(root)
    fake = FakePacking(root)
    monkeypatch.setattr(packs, "packing_module", lambda: fake)
    summary = repro(["dvc.yaml"], jobs=1, threads=1, pack=3)
    assert [sorted(names) for names in fake.packed] == [["p1", "p2", "p3"]]  # p1-p3 as one job; p4 (ready after p1, no record) alone runs its own cmd
    assert sorted(summary.ran) == ["p1", "p3", "p4"] and list(summary.failed) == ["p2"]
    assert sorted(lock_stages(root)) == ["p1", "p3", "p4"]


def test_ctrl_c_stops_running_stages_and_keeps_finished_ones(tmp_path):
    root = make_repo(tmp_path / "repo", {"quick": {"out": "quick.txt"},
                                         "slow": {"out": "slow.txt", "args": ["--sleep", "120"], "persist": True}})
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    controller = subprocess.Popen([sys.executable, "-m", "rescom", "repro", "--jobs", "2", "--threads", "1"],
                                  cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ("quick" in lock_stages(root) and (root / "logs/repro/slow.log").exists()):
        time.sleep(0.2)
    time.sleep(1.0)  # the slow stage's command is running now
    controller.send_signal(signal.SIGINT)
    output, _ = controller.communicate(timeout=120)
    assert controller.returncode == 130, output
    interrupted = [line for line in output.splitlines() if "interrupted slow" in line]
    assert len(interrupted) == 1 and "checkpoint is kept" in interrupted[0], output  # a persist out stays
    assert "failed" not in output.replace("0 failed", ""), output  # the SIGTERM we sent is no failure
    assert "terminated by SIGTERM" in (root / "logs" / "repro" / "slow.log").read_text()
    assert lock_stages(root) == ["quick"]
    status = dvc(root, "status").stdout
    assert "slow:" in status and "quick:" not in status  # running again continues with `slow` only
