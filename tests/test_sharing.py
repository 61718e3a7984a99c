"""Sharing a campaign through a DVC remote (docs/sharing.md): which outputs DVC caches, the lab's flow
on a tiny pipeline with a local-directory and an SSH remote, resume under cached outputs, pulled run
folders registered in MLflow once, and `rescom repro --push`: about a minute in all on 2 cores.

The whole flow on the real smoke profile is scripts/check-sharing.sh (CI, after the smoke profile)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

import ssh_server
from rescom.pipeline.catalogue import load_profile
from rescom.pipeline.dvcfile import build_dvc, profile_params_files

ROOT = Path(__file__).resolve().parents[1]
PROFILES = [p.relative_to(ROOT).as_posix() for p in profile_params_files(ROOT)]


def _outs(profile) -> dict[str, dict]:
    """{out path as dvc.yaml writes it: its flags} over every stage of the profile."""
    found = {}
    for stage in build_dvc(profile)["stages"].values():
        body = stage.get("do", stage)
        for entry in body.get("outs", []) + body.get("metrics", []):
            (path, flags), = entry.items()
            found[path] = flags
    return found


@pytest.mark.parametrize("params", PROFILES)
def test_outputs_others_need_are_cached_and_the_rest_is_git_tracked_or_downloaded(params, monkeypatch):
    """Prepared sets and every run file are cached (the checkpoint persists, for resume); cache false is
    only the dataset archive (fetched by its own stage) and the report under reports/<profile>/, which
    git tracks where the profile's report is committed: DVC refuses to cache a git-tracked file."""
    monkeypatch.chdir(ROOT)
    profile = load_profile(params)
    outs = _outs(profile)
    tracked = set(subprocess.run(["git", "ls-files", f"reports/{profile.name}"], capture_output=True, text=True,
                                 check=True).stdout.split())
    for path, flags in outs.items():
        if path.startswith(("data/prepared/", "runs/")):
            assert flags.get("cache") is True, path
            assert flags.get("persist", False) == path.endswith("/checkpoint.pt"), path
        elif path.startswith("data/raw/"):
            assert flags == {"cache": False, "persist": True}, path
        else:
            assert path.startswith(f"reports/{profile.name}/") and flags.get("cache") is False, path
            # A committed report: each uncached output is in git, but for wall-clock timings, which the
            # smoke profile does not commit (toy runs: noise); a pull reruns that cheap stage, no training.
            if tracked and "/timings/" not in path:
                assert any(t == path or t.startswith(path + "/") for t in tracked), path
    assert not {p for p, f in outs.items() if f.get("cache")} & tracked  # DVC would refuse these


# A toy lab project in the real layout (runs/default/<table>/<name>/, data/prepared/default/<set>, a
# git-tracked report): `make.py train` continues from its checkpoint, which it replaces atomically.
MAKE = textwrap.dedent('''
    import json, os, sys, time
    from pathlib import Path
    kind = sys.argv[1]
    if kind == "prepare":
        out = Path("data/prepared/default/set"); out.mkdir(parents=True, exist_ok=True)
        (out / "images.txt").write_text("pixels\\n")
    elif kind == "train":
        seed, steps = sys.argv[2], int(sys.argv[3])
        run = Path(f"runs/default/main/r-s{seed}"); run.mkdir(parents=True, exist_ok=True)
        checkpoint = run / "checkpoint.pt"
        done = int(checkpoint.read_text()) if checkpoint.exists() else 0
        print(f"training r-s{seed} from step {done}", flush=True)
        for step in range(done, steps):
            time.sleep(float(os.environ.get("STEP_SECONDS", "0")))
            (run / ".tmp").write_text(str(step + 1)); os.replace(run / ".tmp", checkpoint)
        data = Path("data/prepared/default/set/images.txt").read_text()
        (run / "metrics.json").write_text(json.dumps({"seed": seed, "acc": 50 + int(seed), "data": data}))
    else:
        rows = [p.read_text() for p in sorted(Path("runs/default").rglob("metrics.json"))]
        Path("reports/default").mkdir(parents=True, exist_ok=True)
        Path("reports/default/table.md").write_text("\\n".join(rows) + "\\n")
''')


def lab_dvc_yaml(steps: int = 3) -> dict:
    py = Path(sys.executable).as_posix()
    run = "runs/default/main/r-s${item.seed}"
    return {"stages": {
        "prepare": {"cmd": f"{py} make.py prepare", "deps": ["make.py"],
                    "outs": [{"data/prepared/default/set": {"cache": True}}]},
        "main": {"matrix": {"seed": [0, 1]}, "cmd": f"{py} make.py train ${{item.seed}} {steps}",
                 "deps": ["make.py", "data/prepared/default/set"],
                 "outs": [{f"{run}/checkpoint.pt": {"cache": True, "persist": True}},
                          {f"{run}/metrics.json": {"cache": True}}]},
        "report": {"cmd": f"{py} make.py report", "deps": ["make.py", "runs/default"],
                   "outs": [{"reports/default/table.md": {"cache": False}}]},
    }}


def sh(root: Path, *command: str, env: dict | None = None) -> str:
    done = subprocess.run(command, cwd=root, capture_output=True, text=True,
                          env={**os.environ, "DVC_NO_ANALYTICS": "1", **(env or {})})
    assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"
    return done.stdout + done.stderr


def dvc(root: Path, *args: str) -> str:
    return sh(root, sys.executable, "-m", "dvc", *args)


def git(root: Path, *args: str) -> str:
    return sh(root, "git", *args)


def make_lab(root: Path, steps: int = 3) -> Path:
    root.mkdir(parents=True)
    git(root, "init", "-q")
    git(root, "config", "user.email", "a@lab.test")
    git(root, "config", "user.name", "Member A")
    dvc(root, "init", "-q")
    (root / ".gitignore").write_text("/runs/\n/data/\n")
    (root / "make.py").write_text(MAKE)
    (root / "dvc.yaml").write_text(yaml.safe_dump(lab_dvc_yaml(steps), sort_keys=False))
    return root


def git_commit(root: Path, message: str) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", message)


def add_remote(root: Path, url: str, keyfile: Path | None = None) -> None:
    """A member's remote, in .dvc/config.local (not committed: each member may reach it differently)."""
    dvc(root, "remote", "add", "--local", "-d", "lab", url)
    if keyfile is not None:
        dvc(root, "remote", "modify", "--local", "lab", "keyfile", str(keyfile))


@pytest.fixture(params=["local", "ssh"])
def remote(request, tmp_path):
    """(url of an empty remote, keyfile or None): a local directory, or a directory over SSH to 127.0.0.1."""
    if request.param == "local":
        yield str(tmp_path / "remote"), None
        return
    why = ssh_server.unavailable()
    if why:
        pytest.skip(why)
    with ssh_server.sshd(tmp_path / "sshd") as server:
        yield server.url(tmp_path / "remote"), server.keyfile


@pytest.mark.slow
def test_member_b_pulls_reproduces_nothing_and_fetches_one_run_alone(tmp_path, remote, monkeypatch):
    url, keyfile = remote
    a = make_lab(tmp_path / "a")
    dvc(a, "repro")
    git_commit(a, "campaign")
    add_remote(a, url, keyfile)
    assert "files pushed" in dvc(a, "push")

    b = tmp_path / "b"
    git(tmp_path, "clone", "-q", str(a), str(b))
    add_remote(b, url, keyfile)
    dvc(b, "pull")
    assert (b / "runs/default/main/r-s1/checkpoint.pt").read_text() == "3"
    repro = dvc(b, "repro")
    assert "Running stage" not in repro and "up to date" in dvc(b, "status"), repro
    (b / "reports/default/table.md").unlink()  # rendered again from the pulled runs: A's bytes
    dvc(b, "repro", "report", "--force")
    assert (b / "reports/default/table.md").read_bytes() == (a / "reports/default/table.md").read_bytes()

    c = tmp_path / "c"  # one run alone, with the prepared set it reads, through `rescom share pull`
    git(tmp_path, "clone", "-q", str(a), str(c))
    add_remote(c, url, keyfile)
    from rescom.share.pull import pull

    monkeypatch.chdir(c)
    pulled = pull("default", ["main/r-s1"])
    assert pulled.targets == ["main@1"] and pulled.run_dirs == [Path("runs/default/main/r-s1")]
    assert pulled.fetched == 4  # the run's two files, the set's file and its directory listing
    assert sorted(p.name for p in (c / "runs/default/main").iterdir()) == ["r-s1"]
    assert (c / "data/prepared/default/set/images.txt").is_file()
    with pytest.raises(ValueError, match="no run of profile 'default'.*tables: main"):
        pull("default", ["main/r-s7"])


@pytest.mark.slow
def test_interrupted_stage_resumes_from_its_cached_persisted_checkpoint(tmp_path):
    """Ctrl-C during training keeps the checkpoint (persist); the next `dvc repro` continues from it
    and caches the finished file. DVC keeps no run cache for a stage with a persist output."""
    lab = make_lab(tmp_path / "lab", steps=8)
    first = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=lab, start_new_session=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env={**os.environ, "DVC_NO_ANALYTICS": "1", "STEP_SECONDS": "0.3"})
    checkpoint = lab / "runs/default/main/r-s0/checkpoint.pt"
    deadline = time.monotonic() + 60
    while not (checkpoint.exists() and int(checkpoint.read_text() or 0) >= 2) and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGINT)  # Ctrl-C at the terminal: DVC and the stage's command
    first.communicate(timeout=60)
    stopped_at = int(checkpoint.read_text())
    assert 2 <= stopped_at < 8
    again = dvc(lab, "repro")
    assert f"training r-s0 from step {stopped_at}" in again, again
    assert "up to date" in dvc(lab, "status")
    lock = yaml.safe_load((lab / "dvc.lock").read_text())["stages"]
    md5 = next(o["md5"] for o in lock["main@0"]["outs"] if o["path"].endswith("checkpoint.pt"))
    assert (lab / ".dvc/cache/files/md5" / md5[:2] / md5[2:]).read_text() == "8"  # the finished file is cached
    assert len(list((lab / ".dvc/cache/runs").glob("*/*/*"))) == 1  # prepare's only: none for persist stages


@pytest.mark.slow
def test_register_pulled_run_folders_as_mlflow_runs_once(workdir, tiny_folder, tmp_path, monkeypatch):
    """A run trained here is in the store already; its folder pulled into another checkout (no run log,
    no MLflow run) registers once, with the trained run's params and per-epoch curves."""
    from mlflow.tracking import MlflowClient
    from typer.testing import CliRunner

    from rescom.cli import app

    runner = CliRunner()
    trained = runner.invoke(app, [
        "train", "--method", "bs", "--dataset", "folder-lt", "--imbalance", "6", "--data-root", str(tiny_folder),
        "--epochs", "2", "--seed", "0", "--set", "optim.batch_size=8", "--set", "model.width=4",
        "--set", "data.recipe=none", "--set", "run.eval_every=1", "--set", "run.profile=shared",
        "--set", "run.experiment=shared/main", "--set", "run.runs_dir=runs/shared/main",
        "--set", "run.run_name=bs-if6-s0"])
    assert trained.exit_code == 0, trained.output
    folder = workdir / "runs/shared/main/bs-if6-s0"
    trained_client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    trained_run = trained_client.get_run(json.loads((folder / "run_log.json").read_text())["mlflow_run_id"])
    here = runner.invoke(app, ["share", "register", "--profile", "shared"])
    assert here.exit_code == 0 and "0 run(s) registered, 1 already there" in here.output, here.output

    pulled = tmp_path / "b"  # member B: the DVC outputs only, seeds 0 and 1 of one variant
    for seed in (0, 1):
        target = pulled / f"runs/shared/main/bs-if6-s{seed}"
        shutil.copytree(folder, target, ignore=shutil.ignore_patterns("run_log.json", "checkpoint.pt"))
        config = yaml.safe_load((target / "config.yaml").read_text())
        config["run"]["seed"] = seed
        (target / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    store = f"sqlite:///{tmp_path / 'b-mlflow.db'}"
    monkeypatch.chdir(pulled)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    first = runner.invoke(app, ["share", "register"])
    assert first.exit_code == 0 and "2 run(s) registered, 0 already there" in first.output, first.output
    second = runner.invoke(app, ["share", "register", "runs/shared"])
    assert "0 run(s) registered, 2 already there" in second.output, second.output

    client = MlflowClient(store)
    experiment = client.get_experiment_by_name("shared/main")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert sorted(runs) == ["bs-if6-s0", "bs-if6-s1"]
    registered = runs["bs-if6-s0"]
    assert registered.info.status == "FINISHED"
    assert {k: registered.data.tags[k] for k in ("profile", "variant", "seed")} == \
        {"profile": "shared", "variant": "bs-if6", "seed": "0"}
    assert runs["bs-if6-s1"].data.tags["variant"] == "bs-if6" and runs["bs-if6-s1"].data.tags["seed"] == "1"
    assert registered.data.params == trained_run.data.params
    for key in ("curves/test_all", "curves/loss_cls", "curves/lr"):
        curve = [(m.step, m.value) for m in client.get_metric_history(registered.info.run_id, key)]
        assert curve == [(m.step, m.value) for m in trained_client.get_metric_history(trained_run.info.run_id, key)]
        assert [step for step, _ in curve] == [1, 2]
    assert registered.data.metrics["summary/last_test_all"] == trained_run.data.metrics["summary/last_test_all"]


def test_repro_push_needs_a_remote_and_says_so_before_dask(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from executor_repos import make_repo
    from rescom.cli import app

    root = make_repo(tmp_path / "repo", {"a": {"out": "a.txt"}})
    monkeypatch.chdir(root)
    result = CliRunner().invoke(app, ["repro", "--push"])
    assert result.exit_code == 2 and "no default DVC remote" in result.output, result.output
    result = CliRunner().invoke(app, ["repro", "--push", "--remote", "nowhere"])
    assert result.exit_code == 2 and "no DVC remote 'nowhere'" in result.output, result.output
    result = CliRunner().invoke(app, ["repro", "--remote", "lab"])
    assert result.exit_code == 2 and "give --push too" in result.output, result.output


def test_a_failed_push_is_reported_and_counts_as_a_failure_without_stopping():
    from rescom.executor.controller import Summary
    from rescom.executor.push import StagePusher

    class Repo:  # DVC's Repo.push: the number of files sent, or an error
        def push(self, targets, remote):
            if "bad" in targets:
                raise OSError("remote unreachable")
            return len(targets)

    pusher = StagePusher(Repo(), "lab")
    pusher.after_record("good")
    pusher.after_record("bad")
    summary = Summary(ran=["good", "bad"], skipped=["old"])
    pusher.finish(summary)  # the up-to-date stages in one call
    assert pusher.pushed == ["good", "old"] and pusher.failed == {"bad": "remote unreachable"}
    assert summary.failed == {"bad (push to lab)": "remote unreachable"} and not summary.ok


@pytest.mark.slow
def test_repro_push_leaves_a_campaign_stopped_half_way_on_the_remote(tmp_path):
    """Each stage is pushed once recorded; Ctrl-C while `slow` trains: `quick` is on the remote."""
    from executor_repos import make_repo

    root = make_repo(tmp_path / "repo", {"quick": {"out": "quick.txt"},
                                         "slow": {"out": "slow.txt", "args": ["--sleep", "120"], "persist": True}})
    remote = tmp_path / "remote"
    dvc(root, "remote", "add", "-d", "lab", str(remote))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    controller = subprocess.Popen([sys.executable, "-m", "rescom", "repro", "--jobs", "2", "--threads", "1", "--push"],
                                  cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = root / "logs/repro/slow.log"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (log.exists() and (remote / "files").exists()):
        time.sleep(0.2)
    time.sleep(1.0)
    controller.send_signal(signal.SIGINT)
    output, _ = controller.communicate(timeout=120)
    assert controller.returncode == 130, output
    assert "pushed   quick  (1 file(s) to lab)" in output, output
    md5 = yaml.safe_load((root / "dvc.lock").read_text())["stages"]["quick"]["outs"][0]["md5"]
    assert (remote / "files/md5" / md5[:2] / md5[2:]).read_text() == "quick"
    assert "slow" not in yaml.safe_load((root / "dvc.lock").read_text())["stages"]
