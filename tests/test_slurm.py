"""`rescom repro --slurm` on a real one-node SLURM: GPU stages on gres jobs and the others on CPU
jobs, a cancelled job's stage resumed on the next, workers retiring before their walltime, every
job cancelled on Ctrl-C or a failure, TLS only.

The SLURM is the one SLURM_CONF names if it answers, else one these tests start as root with
scripts/slurm-local.sh (Debian's slurm-wlm and munge, which scripts/setup.sh installs as root) and
stop at the end. Without either they skip with the reason; under RESCOM_REQUIRE_SLURM=1 (CI) they fail.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from executor_repos import make_repo
from rescom.executor.slurm import load_settings, walltime_seconds, worker_lifetime

REPO = Path(__file__).resolve().parents[1]


def slurm_problem() -> str | None:
    try:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except (FileNotFoundError, subprocess.TimeoutExpired) as err:
        return f"no SLURM here ({err}); start one: bash scripts/slurm-local.sh start, export SLURM_CONF=..."
    if done.returncode != 0 or "idle" not in done.stdout and "mix" not in done.stdout:
        return f"SLURM does not answer or has no idle node: {done.stderr.strip() or done.stdout.strip()}"
    return None


@pytest.fixture(scope="session")
def one_node_slurm(tmp_path_factory):
    """The SLURM to test on: a running one, or one started here (and stopped after the tests)."""
    started = None
    problem = slurm_problem() if os.environ.get("SLURM_CONF") else "SLURM_CONF is not set"
    if problem and os.geteuid() == 0 and shutil.which("slurmctld"):
        state = tmp_path_factory.mktemp("slurm")
        env = {**os.environ, "RESCOM_SLURM_DIR": str(state)}
        done = subprocess.run(["bash", str(REPO / "scripts" / "slurm-local.sh"), "start"], env=env,
                              capture_output=True, text=True)
        os.environ["SLURM_CONF"] = str(state / "slurm.conf")
        started = env
        problem = None if done.returncode == 0 else f"scripts/slurm-local.sh start failed: {done.stdout}{done.stderr}"
    yield problem
    if started is not None:
        subprocess.run(["bash", str(REPO / "scripts" / "slurm-local.sh"), "stop"], env=started, capture_output=True)


@pytest.fixture
def slurm(one_node_slurm):
    if one_node_slurm:
        if os.environ.get("RESCOM_REQUIRE_SLURM") == "1":
            pytest.fail(f"RESCOM_REQUIRE_SLURM=1 but {one_node_slurm}")
        pytest.skip(one_node_slurm)
    yield
    assert our_jobs() == [], "a test left SLURM jobs behind"


def our_jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "rescom-repro-" in line]


def site_file(root: Path, **settings) -> Path:
    path = root / "site.yaml"
    path.write_text(yaml.safe_dump({"max_gpu_jobs": 2, "max_cpu_jobs": 1, "memory": "1GB", **settings}))
    return path


def start_repro(root: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "DVC_NO_ANALYTICS": "1"}
    return subprocess.Popen([sys.executable, "-m", "rescom", "repro", "--slurm", "--threads", "1", *args],
                            cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(controller: subprocess.Popen, timeout: float = 240) -> str:
    output, _ = controller.communicate(timeout=timeout)
    return output


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def log_header(root: Path, stage: str) -> dict[str, str]:
    """The worker, SLURM job and GPU count a stage's log says it ran on (its first line per attempt)."""
    lines = [line for line in (root / "logs" / "repro" / f"{stage}.log").read_text().splitlines()
             if line.startswith("# worker")]
    found = re.match(r"# worker (\S+), SLURM job (\d+), GPUs (\d+)", lines[-1])
    return {"worker": found[1], "job": found[2], "gpus": found[3]}


# Settings: no SLURM needed.

def test_walltime_and_lifetime():
    assert walltime_seconds("04:00:00") == 14400 and walltime_seconds("1-00:00:00") == 86400
    assert walltime_seconds("30") == 1800 and walltime_seconds("10:30") == 630
    lifetime, stagger = worker_lifetime("04:00:00")
    assert lifetime + stagger < 14400 and stagger > 0  # every worker retires before the walltime
    lifetime, stagger = worker_lifetime("00:01:00")
    assert (lifetime, stagger) == (54, 3)


def test_site_file_unknown_key_and_bad_walltime_are_one_line(tmp_path):
    from rescom.errors import UsageError

    bad = tmp_path / "site.yaml"
    bad.write_text("partiton: gpu\n")
    with pytest.raises(UsageError, match="unknown SLURM setting 'partiton'"):
        load_settings(bad, {})
    with pytest.raises(UsageError, match="walltime"):
        load_settings(None, {"walltime": "four hours"})
    good = tmp_path / "good.yaml"
    good.write_text("partition: gpu\nprologue: module load cuda\ndirectives: [--qos=high]\n")
    settings = load_settings(good, {"partition": "a100", "cores": 8})
    assert (settings.partition, settings.prologue, settings.directives, settings.cores) == (
        "a100", ["module load cuda"], ["--qos=high"], 8)


def test_cli_refuses_bad_site_file_before_anything_starts(tmp_path):
    root = make_repo(tmp_path / "repo", {"a": {"out": "a.txt"}})
    site = tmp_path / "site.yaml"
    site.write_text("walltime: soon\n")
    done = subprocess.run([sys.executable, "-m", "rescom", "repro", "--slurm", "--slurm-config", str(site)],
                          cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "walltime" in done.stderr, done.stderr
    assert not (root / "dvc.lock").exists()


# On the real one-node SLURM.

@pytest.mark.slow
def test_dry_run_prints_job_scripts_and_plan_and_submits_nothing(tmp_path, slurm):
    root = make_repo(tmp_path / "repo", {"prepare": {"out": "p.txt"}, "train": {"out": "t.txt", "deps": ["p.txt"]}})
    done = subprocess.run([sys.executable, "-m", "rescom", "repro", "--slurm", "--dry-run",
                           "--slurm-config", str(site_file(root, gpu_stages=["train"])), "--prologue", "module load cuda"],
                          cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stdout + done.stderr
    gpu_script, cpu_script = done.stdout.split("# the CPU job script")
    assert "#SBATCH --gres=gpu:1" in gpu_script and "--resources GPU=1" in gpu_script
    assert "--gres" not in cpu_script and "--resources CPU_STAGE=1" in cpu_script
    assert "module load cuda" in gpu_script and "module load cuda" in cpu_script
    assert re.search(r"run\s+CPU\s+prepare", done.stdout) and re.search(r"run\s+GPU\s+train", done.stdout)
    assert our_jobs() == [] and not (root / "dvc.lock").exists()


@pytest.mark.slow
def test_gpu_stages_run_on_gres_jobs_and_the_rest_on_cpu_jobs(tmp_path, slurm):
    stages = {"prepare": {"out": "p.txt"},
              "train_a": {"out": "a.txt", "deps": ["p.txt"], "args": ["--sleep", "1"]},
              "train_b": {"out": "b.txt", "deps": ["p.txt"], "args": ["--sleep", "1"]},
              "report": {"out": "r.txt", "deps": ["a.txt", "b.txt"]}}
    root = make_repo(tmp_path / "repo", stages)
    output = finish(start_repro(root, "--slurm-config", str(site_file(root, gpu_stages=["train_*"]))))
    assert "4 stage(s) run" in output and "0 failed" in output, output
    for stage in ("train_a", "train_b"):
        where = log_header(root, stage)
        assert where["worker"].startswith("gpu-") and where["gpus"] == "1", (stage, where)
    for stage in ("prepare", "report"):
        where = log_header(root, stage)
        assert where["worker"].startswith("cpu-") and where["gpus"] == "0", (stage, where)
    assert (root / "r.txt").read_text() == "papbr"  # the report saw both trained outputs
    for stage in stages:  # each ran once: retiring an idle job never makes Dask rebuild a result
        assert (root / "logs" / "repro" / f"{stage}.log").read_text().count("# worker") == 1, stage
    assert set(yaml.safe_load((root / "dvc.lock").read_text())["stages"]) == set(stages)


@pytest.mark.slow
def test_cancelled_job_loses_nothing_its_stage_resumes_on_a_new_job(tmp_path, slurm):
    root = make_repo(tmp_path / "repo", {"train": {"out": "t.txt", "args": ["--resumable", "40"], "persist": True}})
    controller = start_repro(root, "--slurm-config", str(site_file(root, gpu_stages=["train"])))
    progress = root / "t.txt.progress"
    wait_for(lambda: progress.exists() and len(progress.read_text().splitlines()) >= 5, 120, "the stage's progress")
    first = log_header(root, "train")["job"]
    subprocess.run(["scancel", first], check=True)  # what a walltime or a preemption does
    output = finish(controller)
    assert "1 stage(s) run" in output and "0 failed" in output, output
    steps = progress.read_text().splitlines()
    assert steps == [f"step {i}" for i in range(40)]  # nothing redone, nothing lost
    log = (root / "logs" / "repro" / "train.log").read_text()
    resumed = [int(n) for n in re.findall(r"resuming at step (\d+)", log)]
    assert resumed[0] == 0 and resumed[-1] >= 5, log
    assert log_header(root, "train")["job"] != first


@pytest.mark.slow
def test_worker_retires_before_walltime_and_the_stage_continues(tmp_path, slurm):
    # walltime 1 minute: workers retire after 54 +- 3 s; the stage needs about 75 s.
    root = make_repo(tmp_path / "repo", {"train": {"out": "t.txt", "args": ["--resumable", "250"], "persist": True}})
    output = finish(start_repro(root, "--slurm-config", str(site_file(root, gpu_stages=["train"], walltime="00:01:00"))),
                    timeout=400)
    assert "1 stage(s) run" in output and "0 failed" in output, output
    assert len((root / "t.txt.progress").read_text().splitlines()) == 250
    log = (root / "logs" / "repro" / "train.log").read_text()
    assert len(re.findall(r"# worker gpu-\d+, SLURM job (\d+)", log)) >= 2, log  # a second job took over
    slurm_logs = "".join(p.read_text() for p in (root / "logs" / "repro" / "slurm").glob("*.err"))
    assert "DUE TO TIME LIMIT" not in slurm_logs  # retired by Dask, never killed by SLURM's walltime


@pytest.mark.slow
def test_ctrl_c_cancels_every_job(tmp_path, slurm):
    root = make_repo(tmp_path / "repo", {"long": {"out": "l.txt", "args": ["--sleep", "300"], "persist": True},
                                         "other": {"out": "o.txt", "args": ["--sleep", "300"]}})
    controller = start_repro(root, "--slurm-config", str(site_file(root, gpu_stages=["long"])))
    wait_for(lambda: (root / "logs/repro/long.log").exists() and (root / "logs/repro/other.log").exists(), 120,
             "both stages running")
    assert len(our_jobs()) == 2
    controller.send_signal(signal.SIGINT)
    output = finish(controller)
    assert controller.returncode == 130, output
    assert our_jobs() == []


@pytest.mark.slow
def test_failed_stage_cancels_every_job(tmp_path, slurm):
    root = make_repo(tmp_path / "repo", {"bad": {"out": "b.txt", "args": ["--fail"]},
                                         "after": {"out": "a.txt", "deps": ["b.txt"]}})
    output = finish(start_repro(root, "--slurm-config", str(site_file(root))))
    assert "failed   bad" in output and "1 not run" in output, output
    assert our_jobs() == []


@pytest.mark.slow
def test_scheduler_refuses_a_client_without_the_runs_certificate(tmp_path, slurm):
    from distributed import Client
    from distributed.security import Security

    root = make_repo(tmp_path / "repo", {"long": {"out": "l.txt", "args": ["--sleep", "300"]}})
    controller = start_repro(root, "--slurm-config", str(site_file(root)))
    lines: list[str] = []
    while not any("Dask scheduler" in line for line in lines):
        line = controller.stdout.readline()
        assert line, "".join(lines)
        lines.append(line)
    address = re.search(r"Dask scheduler (tls://\S+?),", "".join(lines))[1]
    try:
        # TLS with a certificate of another run (another CA), and plain TCP: both turned away.
        with pytest.raises((OSError, TimeoutError)):
            Client(address, security=Security.temporary(), timeout=5).close()
        with pytest.raises((OSError, TimeoutError)):
            Client(address.replace("tls://", "tcp://"), timeout=5).close()
    finally:
        controller.send_signal(signal.SIGINT)
        finish(controller)
    assert controller.returncode == 130
