"""Each registry (report tables, analyses, data sources) is the one place its facts are declared, and
every user agrees with it: the profiles' sections, the generated dvc.yaml files (stages, outputs, the
record each command is rendered from), the report, `rescom ablate` and the data preparation. Unknown
names raise."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rescom.analysis import ANALYSES, analysis
from rescom.config import ConfigError
from rescom.data.sources.registry import SOURCES, load_source, source
from rescom.pipeline.catalogue import load_profile, training_tables
from rescom.pipeline.dvcfile import dvc_path, profile_params_files
from rescom.pipeline.stage_record import StageRecord
from rescom.report.tables import TABLES, ablation_tables

ROOT = Path(__file__).resolve().parents[1]
PROFILES = [p.relative_to(ROOT).as_posix() for p in profile_params_files(ROOT)]


def _stages(profile) -> dict:
    return yaml.safe_load((ROOT / dvc_path(profile)).read_text())["stages"]


# ---------------------------------------------------------------- report tables


def test_the_table_registry_is_consistent():
    for name, entry in TABLES.items():
        assert entry.runs_of is None or TABLES[entry.runs_of].runs_of is None, name  # it shows runs of their own
        assert entry.rows in ("runs", "draws"), name
    assert set(ablation_tables().values()) == set(TABLES)


@pytest.mark.parametrize("params", PROFILES)
def test_a_profiles_tables_are_registered_and_each_training_table_is_its_pipelines_stages(params):
    profile = load_profile(ROOT / params)
    layouts = {name for name, section in profile.params.items() if isinstance(section, dict) and "axes" in section}
    assert layouts <= set(TABLES), "a profile section laid out as a table has no registry entry"
    stages = _stages(profile)
    trained = [name for name, body in stages.items() if "matrix" in body]
    assert trained == training_tables(profile) == [t for t in TABLES if t in layouts]
    for table in [t for t in TABLES if t in profile.params]:  # what `rescom ablate` runs for it is a stage
        assert (TABLES[table].runs_of or table) in stages, table
    assert set(stages["report"]["params"][0][params]) == {"report", *(t for t in TABLES if t in profile.params)}


def test_rescom_ablate_refuses_an_unknown_table(monkeypatch):
    from typer.testing import CliRunner

    from rescom.cli import app

    result = CliRunner().invoke(app, ["ablate", "no-such-table"])
    assert result.exit_code == 2 and "unknown ablation 'no-such-table'" in result.output
    assert "queue-type" in result.output and "entirety" in result.output


# ---------------------------------------------------------------- analyses


def test_every_analysis_entry_names_a_module_with_its_stage_function():
    import importlib

    for name, entry in ANALYSES.items():
        assert entry.title, name
        assert callable(importlib.import_module(entry.module).run_stage), name
    with pytest.raises(ConfigError, match="no analysis 'nope'; analyses: simulate_pairs"):
        analysis("nope")


@pytest.mark.parametrize("params", PROFILES)
def test_a_profiles_analyses_are_registered_and_each_is_one_stage_with_its_output(params):
    from rescom.report.layout import analysis_dir

    profile = load_profile(ROOT / params)
    configured = profile.params.get("analysis") or {}
    assert set(configured) <= set(ANALYSES)
    stages = _stages(profile)
    assert [n for n in stages if n.startswith("analysis_")] == [f"analysis_{name}" for name in configured]
    for name in configured:
        body = stages[f"analysis_{name}"]
        assert body["outs"] == [{analysis_dir(profile.name, name).as_posix(): {"cache": False}}]
        assert StageRecord.from_meta(body["meta"]) == StageRecord("analysis", name, {"params": params})


def test_an_unknown_analysis_is_refused_by_its_stage(tmp_path, monkeypatch, capsys):
    from rescom.pipeline.runner import run_analysis
    from rescom.stages.analysis import main

    monkeypatch.chdir(ROOT)
    with pytest.raises(ConfigError, match="no analysis 'nope'"):
        run_analysis("pipelines/smoke/params.yaml", "nope")
    with pytest.raises(SystemExit):  # argparse: not one of the registry's names
        main(["nope", "--params", "pipelines/smoke/params.yaml"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_the_report_lists_each_registered_analysis_under_its_title(tmp_path, monkeypatch):
    from rescom.report.render import _analysis_index

    profile = load_profile(ROOT / "params.yaml")
    for name, entry in ANALYSES.items():
        if not entry.wall_clock:
            (tmp_path / "analysis" / name.replace("_", "-")).mkdir(parents=True)
            (tmp_path / "analysis" / name.replace("_", "-") / "result.csv").write_text("x\n")
    index = "\n".join(_analysis_index(tmp_path, profile))
    for name, entry in ANALYSES.items():
        assert entry.title in index, name


# ---------------------------------------------------------------- data sources


def test_every_source_is_a_dataset_name_with_a_known_recipe():
    from rescom.config import CHOICES
    from rescom.data.preparation.run_data import parse_dataset

    for name, entry in SOURCES.items():
        assert callable(entry.load) and callable(entry.fingerprint), name
        assert entry.recipe in CHOICES["data.recipe"] and entry.recipe != "auto", name
        assert entry.shape is None or len(entry.shape) == 3, name
        assert parse_dataset(name) == (name, False)
        if not entry.long_tailed:
            assert parse_dataset(f"{name}-lt") == (name, True)
    with pytest.raises(ConfigError, match="unknown dataset 'nope-lt'"):
        parse_dataset("nope-lt")


def test_an_unknown_source_raises_in_the_registry_and_its_users():
    from rescom.data.sources.signature import source_signature

    for call in (lambda: source("mnist"), lambda: load_source("mnist"), lambda: source_signature("mnist", None)):
        with pytest.raises(ValueError, match="unknown data source 'mnist'; valid names: cifar10"):
            call()


# ---------------------------------------------------------------- stage records


@pytest.mark.parametrize("params", PROFILES)
def test_every_stage_command_is_its_record_rendered(params):
    """In dvc.yaml as written (interpolations unresolved): the cmd is the meta's record, rendered."""
    for name, stage in _stages(load_profile(ROOT / params)).items():
        body = stage.get("do", stage)
        assert StageRecord.from_meta(body["meta"]).command() == body["cmd"], name


def test_dvc_interpolates_each_record_as_it_interpolates_the_command(tmp_path):
    """What the executor reads (each stage's meta, as DVC resolves it) renders to the very command DVC
    runs, for every stage of the smoke and default profiles (matrix, foreach and plain stages)."""
    import shutil

    from dvc.repo import Repo

    from rescom.pipeline.catalogue import find_run
    from rescom.pipeline.packing import train_stage

    for name in ("params.yaml", "claims.yaml", "dvc.yaml", ".dvcignore"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / "pipelines/smoke").mkdir(parents=True)
    for name in ("params.yaml", "claims.yaml", "dvc.yaml"):
        shutil.copy(ROOT / "pipelines/smoke" / name, tmp_path / "pipelines/smoke" / name)
    Repo.init(str(tmp_path), no_scm=True).close()
    with Repo(str(tmp_path)) as repo:
        stages = list(repo.index.stages)
    assert len(stages) > 50
    for stage in stages:
        assert StageRecord.from_meta(stage.meta).command() == stage.cmd, stage.addressing
        train = train_stage(stage.addressing, stage.meta)  # what `rescom repro --pack` trains from it
        if train is not None:
            profile = load_profile(tmp_path / train.params)
            assert find_run(profile, train.table, train.item).run_dir(profile.name).as_posix() in stage.cmd + str(stage.outs)
