"""The experiment catalogue, the generated dvc.yaml files and report diffs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from rescom.config import ConfigError
from rescom.pipeline.catalogue import expand_table, find_run, load_profile, run_config_overrides, training_tables
from rescom.pipeline.dvcfile import dvc_path, profile_params_files, render
from rescom.pipeline.runner import run_config
from rescom.report.diff import diff_reports

ROOT = Path(__file__).resolve().parents[1]
# Every profile in the tree (a new one is checked without being listed here); the three built in must be there.
PROFILES = [p.relative_to(ROOT).as_posix() for p in profile_params_files(ROOT)]


def test_every_profile_is_found():
    assert {"params.yaml", "pipelines/smoke/params.yaml", "pipelines/paper/params.yaml",
            "pipelines/cifar10-jpeg/params.yaml"} <= set(PROFILES)


@pytest.mark.parametrize("params", PROFILES)
def test_committed_dvc_yaml_is_generated_from_params(params, monkeypatch):
    monkeypatch.chdir(ROOT)
    profile = load_profile(params)
    assert dvc_path(profile).read_text() == render(profile), f"run `rescom pipeline write-dvc {params}`"


def test_a_folder_sets_images_are_a_dep_of_its_prepare_stage(monkeypatch):
    """DVC itself resolves the committed cifar10-jpeg pipeline: its prepare stage depends on the
    image folder, so new images make the prepared set stale; Debian's Fashion-MNIST has no root."""
    from dvc.repo import Repo

    monkeypatch.chdir(ROOT)
    with Repo(str(ROOT)) as repo:
        deps = {stage.addressing: [dep.def_path for dep in stage.deps] for stage in repo.index.stages
                if stage.addressing.split(":")[-1].startswith("prepare@")}
    assert deps["pipelines/cifar10-jpeg/dvc.yaml:prepare@cifar10-jpeg-if100"][0] == "data/raw/cifar10-jpeg"
    assert not any(dep.startswith("data/raw") for dep in deps["prepare@fmnist-if100"])
    mixed = load_profile("pipelines/cifar10-jpeg/params.yaml")
    mixed.params["datasets"]["fmnist"] = {"dataset": "fashion-mnist-lt", "imbalance": 100}
    # one foreach body for every set: ${item.root} cannot be filled for a set without a root
    assert "${item.root}" not in yaml.safe_load(render(mixed))["stages"]["prepare"]["do"]["deps"]


@pytest.mark.parametrize("params", PROFILES)
def test_every_run_of_every_profile_has_a_valid_config(params, tmp_path, monkeypatch):
    # model.pretrained must name a file (validate refuses a missing one): a stand-in for the user's download
    (tmp_path / "data" / "pretrained").mkdir(parents=True)
    (tmp_path / "data" / "pretrained" / "resnet152-394f9c45.pth").touch()
    monkeypatch.chdir(tmp_path)
    profile = load_profile(ROOT / params)
    names = set()
    for table in training_tables(profile):
        for spec in expand_table(profile, table):
            config = run_config(profile, spec)  # validates choices and ranges
            assert config.run.run_name == spec.name and config.run.profile == profile.name
            names.add((table, spec.name))
    assert len(names) == sum(len(expand_table(profile, t)) for t in training_tables(profile))  # no name collisions


def test_override_order_preset_then_train_then_table_then_axis(monkeypatch):
    monkeypatch.chdir(ROOT)
    profile = load_profile("params.yaml")
    spec = find_run(profile, "beta", {"beta": "0.0", "seed": "1"})
    config = run_config(profile, spec)
    assert config.method.beta == 0.0 and config.run.seed == 1  # axes
    assert config.method.queue_size == 10                   # table set
    assert config.optim.epochs == profile.params["train"]["optim"]["epochs"]  # profile-wide
    assert config.method.num_pos == 1                       # rescom preset default
    overrides = run_config_overrides(profile, spec)
    assert overrides["data.prepared_dir"] == "data/prepared/default/fmnist-if100"
    assert overrides["run.runs_dir"] == "runs/default/beta"


def test_variant_axis_and_unknown_run(monkeypatch):
    monkeypatch.chdir(ROOT)
    profile = load_profile("params.yaml")
    moco = run_config(profile, find_run(profile, "main", {"method": "moco_bs", "imbalance": "100", "seed": "1"}))
    assert moco.method.key_encoder == "momentum" and moco.method.queue == "fifo" and moco.method.queue_size == 100
    with pytest.raises(ConfigError, match="no run"):
        find_run(profile, "main", {"method": "nope", "imbalance": "100", "seed": "0"})


def _tree(root: Path, value: float, timing: float = 1.0) -> Path:
    (root / "tables").mkdir(parents=True)
    pd.DataFrame({"method": ["bs", "rescom"], "last_test_all_mean": [80.0, value]}).to_csv(root / "tables/main.csv", index=False)
    (root / "timings/inference-cost").mkdir(parents=True)
    pd.DataFrame({"model": ["eval"], "ms": [timing]}).to_csv(root / "timings/inference-cost/inference_cost.csv", index=False)
    return root


def test_report_diff_reports_cells_beyond_tolerance_only(tmp_path):
    old = _tree(tmp_path / "a", 82.0)
    same = _tree(tmp_path / "b", 82.005, timing=9.0)
    moved = _tree(tmp_path / "c", 82.5)
    skip = ("timings",)
    assert diff_reports(old, same, 0.01, skip) == []
    problems = diff_reports(old, moved, 0.01, skip)
    assert len(problems) == 1 and "main.csv" in problems[0] and "method=rescom" in problems[0]
    assert "82.0 -> 82.5" in problems[0]
    assert any("inference_cost.csv" in p for p in diff_reports(old, same, 0.01))  # timings differ if compared


def test_report_diff_cli_exit_codes(tmp_path):
    from typer.testing import CliRunner

    from rescom.cli import app

    old, moved = _tree(tmp_path / "a", 82.0), _tree(tmp_path / "c", 83.0)
    runner = CliRunner()
    assert runner.invoke(app, ["report", "diff", str(old), str(old), "--tolerance", "0.01"]).exit_code == 0
    result = runner.invoke(app, ["report", "diff", str(old), str(moved), "--tolerance", "0.01"])
    assert result.exit_code == 1 and "1 difference(s)" in result.output and "main.csv" in result.output


@pytest.mark.slow
def test_the_inference_cost_output_is_declared_and_hashed_without_its_times(tmp_path):
    """reports/<profile>/timings/inference-cost/ is its stage's output: new times leave the stage up to
    date (.dvcignore keeps them out of the hash), a deleted reports/ makes DVC run it again."""
    import json
    import os
    import shutil
    import subprocess
    import sys

    shutil.copytree(ROOT / "rescom", tmp_path / "rescom", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".dvcignore", tmp_path / ".dvcignore")
    (tmp_path / "pipelines/smoke").mkdir(parents=True)
    for name in ("params.yaml", "claims.yaml", "dvc.yaml"):
        shutil.copy(ROOT / "pipelines/smoke" / name, tmp_path / "pipelines/smoke" / name)
    checkpoint = tmp_path / "runs/smoke/main/rescom-if10-s0/checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_text("stand-in")
    out = tmp_path / "reports/smoke/timings/inference-cost"
    out.mkdir(parents=True)
    (out / "measured.json").write_text("{}")
    (out / "inference_cost.csv").write_text("ms\n1.0\n")
    stage = "pipelines/smoke/dvc.yaml:analysis_inference_cost"

    def dvc(*args: str) -> str:
        done = subprocess.run([str(Path(sys.executable).with_name("dvc")), *args], cwd=tmp_path, capture_output=True,
                              text=True, env={**os.environ, "DVC_NO_ANALYTICS": "1"}, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    dvc("init", "--no-scm", "-q")
    dvc("commit", "-f", "-q", stage)
    (out / "inference_cost.csv").write_text("ms\n2.0\n")  # measured again: other times
    assert json.loads(dvc("status", "--json", stage)) == {}
    shutil.rmtree(tmp_path / "reports")
    assert "analysis_inference_cost" in " ".join(json.loads(dvc("status", "--json", stage)))


def test_pipeline_continues_only_interrupted_runs_of_the_same_code(monkeypatch):
    from rescom.engine.checkpoint import training_code_identity
    from rescom.pipeline import runner

    monkeypatch.chdir(ROOT)
    profile = load_profile("pipelines/smoke/params.yaml")
    config = run_config(profile, find_run(profile, "beta", {"beta": "0.0", "seed": "0"}))
    monkeypatch.setattr(runner, "_same_config", lambda config, saved: True)
    epochs = config.optim.epochs
    assert runner._continuable(config, {"epoch": epochs - 1, "code": training_code_identity(), "config": {}})
    assert not runner._continuable(config, {"epoch": epochs, "code": training_code_identity(), "config": {}})  # finished
    assert not runner._continuable(config, {"epoch": epochs - 1, "code": "other", "config": {}})  # other code


def test_pipeline_continues_a_run_whose_checkpoint_holds_the_resolved_pipeline(monkeypatch):
    """Training saves data.pipeline resolved (auto -> tensor/pil); the stage must still see the same config."""
    from types import SimpleNamespace

    import numpy as np

    from rescom.config import resolve_for_data
    from rescom.data.loading import loaders
    from rescom.data.preparation import run_data
    from rescom.data.preparation.longtail import exponential_counts
    from rescom.pipeline import runner

    monkeypatch.chdir(ROOT)
    profile = load_profile("pipelines/smoke/params.yaml")
    config = run_config(profile, find_run(profile, "beta", {"beta": "0.0", "seed": "0"}))
    counts = exponential_counts(10, 60, 10)
    in_memory = SimpleNamespace(images=np.zeros((1, 28, 28, 1), dtype=np.uint8))
    data = SimpleNamespace(class_counts=counts, train=in_memory, test=in_memory)
    monkeypatch.setattr(run_data, "get_data", lambda cfg, *args, **kwargs: data)
    saved = resolve_for_data(config, counts)
    saved.data.pipeline = loaders.resolve_pipeline(saved.data, data)  # as engine/run.py writes the checkpoint
    assert config.data.pipeline == "auto" and saved.data.pipeline in ("tensor", "pil")
    assert runner._same_config(config, saved.to_dict())
    saved.optim.lr = 2 * config.optim.lr
    assert not runner._same_config(config, saved.to_dict())
