"""A stage depends on exactly the code its entry point runs: an edit makes stale the stages that run it, no others.

The check uses DVC itself on a copy of the package and the smoke profile: every stage's outputs are
stand-ins, `dvc commit` records the lock, one module is edited, and `dvc status` names the stale stages.
And a checkpoint's bytes follow the same deps: retrained after an edit elsewhere, it is the same file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rescom.pipeline.catalogue import load_profile, training_tables
from rescom.pipeline.code_deps import code_files
from rescom.pipeline.dvcfile import stage_code_deps
from rescom.pipeline.stage_record import STAGE_ENTRY, StageRecord

REPO = Path(__file__).resolve().parents[1]
TRAINING = set(training_tables(load_profile(REPO / "pipelines/smoke/params.yaml")))  # the smoke profile's training tables
ANALYSES = {"analysis_simulate_pairs", "analysis_gradients", "analysis_similarity", "analysis_inference_cost"}


def _dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    dvc = Path(sys.executable).with_name("dvc")
    done = subprocess.run([str(dvc), *args], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def locked_copy(tmp_path_factory):
    """The package and the smoke profile in a DVC repo, every stage recorded as up to date."""
    from dvc.repo import Repo

    repo = tmp_path_factory.mktemp("stage-deps")
    shutil.copytree(REPO / "rescom", repo / "rescom", ignore=shutil.ignore_patterns("__pycache__"))
    (repo / "pipelines/smoke").mkdir(parents=True)
    for name in ("params.yaml", "claims.yaml", "dvc.yaml"):
        shutil.copy(REPO / "pipelines/smoke" / name, repo / "pipelines/smoke" / name)
    _dvc(repo, "init", "--no-scm", "-q")
    for stage in Repo(str(repo)).index.stages:  # stand-in outputs: a file, or a folder holding one
        for out in stage.outs:
            path = Path(out.fs_path)
            target = path if path.suffix else path / "stand-in"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("stand-in")
    _dvc(repo, "commit", "-f", "-q")
    assert json.loads(_dvc(repo, "status", "--json")) == {}
    return repo


def stale_after_editing(repo: Path, module: str) -> set[str]:
    """The stages (matrix and foreach entries by their stage name) `dvc status` finds stale by code."""
    path = repo / module
    original = path.read_bytes()
    path.write_bytes(original + b"\n# edited\n")
    try:
        status = json.loads(_dvc(repo, "status", "--json"))
    finally:
        path.write_bytes(original)
    stale = set()
    for name, changes in status.items():
        for change in changes:
            if isinstance(change, dict) and "changed deps" in change:
                stale.add(name.rpartition(":")[2].split("@")[0])
    return stale


@pytest.mark.slow
def test_editing_one_module_makes_exactly_the_stages_that_run_it_stale(locked_copy):
    # code no stage runs: the CLI, the executor
    for module in ("rescom/cli/runs.py", "rescom/cli/__init__.py", "rescom/cli/experiments.py",
                   "rescom/executor/controller.py"):
        assert stale_after_editing(locked_copy, module) == set(), module
    assert stale_after_editing(locked_copy, "rescom/report/render.py") == {"report"}
    # one analysis's code: that analysis alone; its new output then stales the report, and nothing else
    assert stale_after_editing(locked_copy, "rescom/analysis/pairs.py") == {"analysis_simulate_pairs"}
    assert stale_after_editing(locked_copy, "reports/smoke/analysis/simulate-pairs/stand-in") == {"report"}
    # what the analyses of checkpoints share: those three, never a run or the pair simulation
    assert stale_after_editing(locked_copy, "rescom/analysis/checkpoint_analyses.py") == ANALYSES - {"analysis_simulate_pairs"}
    # the preparation code: prepare, every training run (it prepares or checks its set), the analyses
    # that load a run's data; not the report, which reads finished runs
    assert stale_after_editing(locked_copy, "rescom/data/preparation/prepared.py") == {"prepare", *TRAINING, *ANALYSES}
    # a loss or the engine: the training runs and the analyses that rebuild a model (not the pair
    # simulation, which has none), never prepare
    assert stale_after_editing(locked_copy, "rescom/losses/contrastive.py") == {*TRAINING, *ANALYSES} - {"analysis_simulate_pairs"}
    engine = stale_after_editing(locked_copy, "rescom/engine/run.py")
    assert TRAINING <= engine and "prepare" not in engine


def test_every_stage_runs_a_narrow_entry_point_and_no_cli_code():
    import yaml

    for dvc_file in (REPO / "dvc.yaml", *sorted(REPO.glob("pipelines/*/dvc.yaml"))):
        for name, stage in yaml.safe_load(dvc_file.read_text())["stages"].items():
            body = stage.get("do", stage)
            assert body["cmd"].startswith(STAGE_ENTRY), (dvc_file, name)
            assert not [dep for dep in body["deps"] if dep.startswith("rescom/cli")], (dvc_file, name)


def test_prepare_runs_the_preparation_code_and_not_the_training():
    deps = stage_code_deps(StageRecord("prepare"))
    # what builds a prepared set (issue 20: these were missing) ...
    for path in ("rescom/data/preparation", "rescom/pipeline/runner.py", "rescom/config.py", "rescom/pipeline/catalogue.py"):
        assert path in deps
    # ... and not the engine, the losses or the models (training imports them lazily)
    assert not [path for path in deps if path.startswith(("rescom/engine", "rescom/losses", "rescom/models"))]
    assert deps == sorted(deps)


def test_a_package_whose_every_module_runs_is_listed_as_its_folder():
    train = stage_code_deps(StageRecord("train"))
    # every loss module runs in training
    assert "rescom/losses" in train and not any(p.startswith("rescom/losses/") for p in train)
    assert "rescom/report/paper" in stage_code_deps(StageRecord("report"))  # the paper's numbers, data beside the code


def _toy_package(root: Path, files: dict[str, str]) -> Path:
    package = root / "rescom"
    for name, text in files.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    return package


def test_the_walk_follows_what_runs_and_skips_lazy_imports_of_functions_never_reached(tmp_path):
    package = _toy_package(tmp_path, {
        "__init__.py": "",
        "cli.py": "from rescom import helpers\n\ndef used():\n    from rescom.lazy_used import f\n    f()\n\n"
                  "def unused():\n    from rescom.lazy_unused import g\n    g()\n",
        "helpers.py": "from rescom.base import CONSTANT\n",
        "base.py": "CONSTANT = 1\n",
        "lazy_used.py": "def f():\n    from rescom.deep import h\n    h()\n\ndef other():\n    import rescom.never\n",
        "lazy_unused.py": "def g():\n    pass\n",
        "deep.py": "def h():\n    pass\n",
        "never.py": "",
        "pkg/__init__.py": "", "pkg/a.py": "", "pkg/b.py": "",
        "table.py": "from rescom.pkg import a\nfrom rescom.pkg import b\nKINDS = {'a': a}\n",
    })
    files = code_files([("rescom.cli", "used")], root=package)
    assert files == ["rescom/__init__.py", "rescom/base.py", "rescom/cli.py", "rescom/deep.py",
                     "rescom/helpers.py", "rescom/lazy_used.py"]
    assert code_files([("rescom.table", "KINDS")], root=package) == ["rescom/__init__.py", "rescom/pkg",
                                                                        "rescom/table.py"]


RUN_AND_LIST_MODULES = """
import importlib, json, sys
importlib.import_module("rescom.stages." + sys.argv[1]).main(sys.argv[2:])
print(json.dumps(sorted(m.__file__ for name, m in sys.modules.items()
                        if name.startswith("rescom") and getattr(m, "__file__", None))))
"""


def _run_stage(kind: str, args: list[str], cwd: Path, package: Path = REPO) -> subprocess.CompletedProcess:
    """`python -m rescom.stages.<kind> <args>` in a fresh interpreter, the package taken from `package`,
    printing the rescom modules it imported as its last line."""
    env = {**os.environ, "PYTHONPATH": str(package), "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, kind, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def _imported_by(kind: str, args: list[str], cwd: Path) -> list[str]:
    """The rescom source files a real run of a stage imported (in a fresh interpreter)."""
    modules = json.loads(_run_stage(kind, args, cwd).stdout.strip().splitlines()[-1])
    return [Path(f).resolve().relative_to(REPO).as_posix() for f in modules]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep + "/") for dep in deps)


def _tiny_profile(tmp_path: Path, tiny_folder: Path) -> tuple[list[str], list[str]]:
    """A one-run profile on the tiny image folder: (prepare args, train args)."""
    params = tmp_path / "params.yaml"
    params.write_text(f"""profile: tiny
datasets:
  tiny-if6: {{dataset: folder-lt, root: {tiny_folder}, imbalance: 6, seed: 0}}
train:
  optim: {{epochs: 1, batch_size: 8, lr: 0.05}}
  model: {{width: 4}}
  data: {{recipe: none}}
  run: {{track: false}}
main:
  dataset: tiny
  name: "{{method}}-if{{imbalance}}-s{{seed}}"
  set: {{}}
  methods: {{rescom: {{preset: rescom, set: {{method.queue_size: 4}}}}}}
  axes: {{method: [rescom], imbalance: [6], seed: [0]}}
  apply: {{method: "variant:methods", imbalance: imbalance, seed: run.seed}}
""")
    return (["--params", str(params), "--key", "tiny-if6"],
            ["--params", str(params), "--table", "main", "--item", "method=rescom", "--item", "imbalance=6",
             "--item", "seed=0"])


@pytest.mark.slow
def test_every_module_a_real_stage_imports_is_among_its_deps(tmp_path, tiny_folder):
    """The static walk against what Python actually loads: a tiny profile's prepare and train stages."""
    prepare, train = _tiny_profile(tmp_path, tiny_folder)
    for kind, args, ran in (("prepare", prepare, "rescom/data/preparation/prepared.py"),
                            ("train", train, "rescom/engine/run.py")):
        imported = _imported_by(kind, args, tmp_path)
        deps = stage_code_deps(StageRecord(kind))
        assert ran in imported  # the run really went through the stage's code
        assert [path for path in imported if not _covered(path, deps)] == [], kind


@pytest.mark.slow
def test_an_analysis_stage_imports_its_own_analysis_and_no_other(tmp_path):
    """The pair simulation as its stage runs it (imported by its registry entry's name, which the walk
    is told): every module it loads is among its deps, and no other analysis is loaded."""
    params = tmp_path / "params.yaml"
    params.write_text("profile: tiny\ndatasets: {}\ntrain: {}\nanalysis:\n  simulate_pairs: {num_classes: 4, "
                      "max_count: 40, imbalance: 10, batch_size: 8, queue_size: 16, epochs: 1, seed: 0}\n")
    imported = _imported_by("analysis", ["simulate_pairs", "--params", str(params)], tmp_path)
    deps = stage_code_deps(StageRecord("analysis", "simulate_pairs"))
    assert "rescom/analysis/pairs.py" in imported and "rescom/analysis/pairs.py" in deps
    assert [path for path in imported if not _covered(path, deps)] == []
    others = ("gradients.py", "similarity.py", "inference_cost.py", "checkpoint_analyses.py")
    assert not [path for path in [*imported, *deps] if path.startswith("rescom/analysis/") and path.endswith(others)]


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + line)


@pytest.mark.slow
def test_a_run_retrained_after_an_edit_outside_its_deps_writes_the_same_checkpoint(tmp_path, tiny_folder):
    """What a later commit that touched no dep of the stage does: the checkpoint (and so dvc.lock)
    is the same file; an edit of the engine gives the checkpoint another code identity."""
    package = tmp_path / "package"
    shutil.copytree(REPO / "rescom", package / "rescom", ignore=shutil.ignore_patterns("__pycache__"))
    prepare, train = _tiny_profile(tmp_path, tiny_folder)

    def checkpoint_after_training(name: str) -> bytes:
        work = tmp_path / name
        work.mkdir()
        _run_stage("prepare", prepare, work, package)
        _run_stage("train", train, work, package)
        return (work / "runs/tiny/main/rescom-if6-s0/checkpoint.pt").read_bytes()

    before = checkpoint_after_training("before")
    for module in ("cli/train.py", "report/render.py", "analysis/pairs.py", "executor/plan.py"):
        _append(package / "rescom" / module, "\n# a later commit's edit\n")
    assert checkpoint_after_training("after-unrelated-edits") == before
    _append(package / "rescom/engine/run.py", "\n# an edit of the training code\n")
    assert checkpoint_after_training("after-engine-edit") != before
