"""`rescom status` on a toy repository of three profiles: one run here, one whose dvc.lock is
committed but that was not run here, one never run. Each gets one line, never its stages' listing."""

from __future__ import annotations

import subprocess
import sys

import yaml

from executor_repos import DIAMOND, PY, make_repo
from test_train_cli import run_cli


def _profile(root, name, lock: bool) -> None:
    folder = root / "pipelines" / name
    folder.mkdir(parents=True)
    stages = {f"s{i}": {"cmd": f"{PY} -c \"open('o{i}.txt', 'w')\"", "outs": [f"o{i}.txt"]} for i in range(20)}
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": stages}, sort_keys=False))
    if lock:
        (folder / "dvc.lock").write_text("schema: '2.0'\nstages: {}\n")


def test_status_is_one_line_per_profile(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo", DIAMOND)
    _profile(root, "paper", lock=False)
    _profile(root, "smoke", lock=True)
    subprocess.run([sys.executable, "-m", "dvc", "repro", "dvc.yaml"], cwd=root, check=True, capture_output=True)
    (root / "runs" / "default").mkdir(parents=True)
    monkeypatch.chdir(root)

    result = run_cli(["status"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "default       up to date (4 stages)",
        "paper         not run (no pipelines/paper/dvc.lock)",
        "smoke         not run (pipelines/smoke/dvc.lock committed, no runs/smoke/ here)"]

    (root / "c.txt").write_text("edited")  # c's output, which d reads
    (root / "runs" / "smoke").mkdir()      # now smoke counts as run here: its 20 stages, 5 named
    lines = run_cli(["status"]).output.splitlines()
    assert lines[0] == "default       2 of 4 stages to run: c, d (dvc status dvc.yaml)"
    assert lines[2] == ("smoke         20 of 20 stages to run: s0, s1, s2, s3, s4, ... "
                        "(dvc status pipelines/smoke/dvc.yaml)")


def test_status_outside_the_project_says_where_to_run_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli(["status"])
    assert result.exit_code == 2 and "project's root" in result.output
