"""A stage depends on exactly the code its command runs: an edit makes stale the stages that run it, no others.

The check uses DVC itself on a copy of the package and the smoke profile: every stage's outputs are
stand-ins, `dvc commit` records the lock, one module is edited, and `dvc status` names the stale stages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rescom.pipeline.catalogue import load_profile
from rescom.pipeline.code_deps import code_files
from rescom.pipeline.dvcfile import code_deps, command_entry

REPO = Path(__file__).resolve().parents[1]
TRAINING = set(load_profile(REPO / "pipelines/smoke/params.yaml").tables())  # the smoke profile's training tables
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
    assert stale_after_editing(locked_copy, "rescom/report/render.py") == {"report"}
    # the preparation code: prepare, every training run (it prepares or checks its set), the analyses
    # that load a run's data; not the report, which reads finished runs
    assert stale_after_editing(locked_copy, "rescom/data/preparation/run_data.py") == {"prepare", *TRAINING, *ANALYSES}
    # a loss: the training runs and the analyses that recompute it, never prepare or report
    assert stale_after_editing(locked_copy, "rescom/losses/contrastive.py") == {*TRAINING, *ANALYSES}


def test_a_stage_command_resolves_to_its_cli_function():
    assert command_entry("rescom pipeline prepare --params p --key k") == ("rescom.cli.pipeline", "prepare")
    assert command_entry("rescom pipeline train --params p --table t") == ("rescom.cli.pipeline", "train")
    assert command_entry("rescom report --params p") == ("rescom.cli.report", "report")
    assert command_entry("rescom data download cifar10") == ("rescom.cli.data", "download")
    with pytest.raises(ValueError, match="no rescom command"):
        command_entry("rescom nonsense")


def test_prepare_runs_the_preparation_code_and_not_the_training():
    deps = code_deps("rescom pipeline prepare")
    # what builds a prepared set (issue 20: these were missing) ...
    for path in ("rescom/data/preparation", "rescom/pipeline/runner.py", "rescom/config.py", "rescom/pipeline/catalogue.py"):
        assert path in deps
    # ... and not what only training runs (the runner imports it lazily for train_table_run)
    assert not {"rescom/engine/train.py", "rescom/engine", "rescom/losses", "rescom/models"} & set(deps)
    assert deps == sorted(deps)


def test_a_package_whose_every_module_runs_is_listed_as_its_folder():
    train = code_deps("rescom pipeline train")
    # every loss module runs in training; of engine/, pack.py runs only under train-pack
    assert "rescom/losses" in train and not any(p.startswith("rescom/losses/") for p in train)
    assert "rescom/engine/train.py" in train and "rescom/engine/pack.py" not in train
    assert "rescom/report/paper" in code_deps("rescom report")  # the paper's numbers, data beside the code


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
import json, sys
from rescom.cli import app
try:
    app(sys.argv[1:])
except SystemExit as end:
    assert not end.code, end.code
print(json.dumps(sorted(m.__file__ for name, m in sys.modules.items()
                        if name.startswith("rescom") and getattr(m, "__file__", None))))
"""


def _imported_by(args: list[str], cwd: Path) -> list[str]:
    """The rescom source files a real run of `rescom <args>` imported (in a fresh interpreter)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", RUN_AND_LIST_MODULES, *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return [Path(f).resolve().relative_to(REPO).as_posix() for f in json.loads(done.stdout.strip().splitlines()[-1])]


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep + "/") for dep in deps)


@pytest.mark.slow
def test_every_module_a_real_stage_imports_is_among_its_deps(tmp_path, tiny_folder):
    """The static walk against what Python actually loads: a tiny profile's prepare and train stages."""
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
    prepare = ["pipeline", "prepare", "--params", str(params), "--key", "tiny-if6"]
    train = ["pipeline", "train", "--params", str(params), "--table", "main",
             "--item", "method=rescom", "--item", "imbalance=6", "--item", "seed=0"]
    for args, command, ran in ((prepare, "rescom pipeline prepare", "rescom/data/preparation/prepared.py"),
                               (train, "rescom pipeline train", "rescom/engine/train.py")):
        imported = _imported_by(args, tmp_path)
        deps = code_deps(command)
        assert ran in imported  # the run really went through the stage's code
        assert [path for path in imported if not _covered(path, deps)] == [], command
