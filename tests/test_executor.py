"""rescom.executor without a cluster: DVC's plan, packs, job environment, worker specs, SLURM script."""

from __future__ import annotations

import os

import pytest

from executor_repos import DIAMOND, make_repo
from rescom.executor import packs, plan
from rescom.executor.controller import ReproSettings, job_environment, log_path
from rescom.executor.stage_job import Job, run_job


def test_plan_is_dvcs_order_and_graph(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo", DIAMOND)
    monkeypatch.chdir(root)
    repo = plan.open_repo(root)
    try:
        stage_plan = plan.plan_stages(repo, ["dvc.yaml"])
        assert set(stage_plan.order) == {"a", "b", "c", "d"}
        assert stage_plan.order.index("a") < stage_plan.order.index("b") < stage_plan.order.index("d")
        assert stage_plan.upstream == {"a": set(), "b": {"a"}, "c": set(), "d": {"b", "c"}}
        assert stage_plan.downstream_of("a") == {"b", "d"}
        assert all(plan.needs_run(repo, stage_plan, n) for n in stage_plan.order)  # nothing ran yet
        only_b = plan.plan_stages(repo, ["b"])  # a target brings its upstream, not its siblings
        assert only_b.order == ["a", "b"]
    finally:
        repo.close()


def test_group_into_packs_by_key_and_size():
    records = {f"s{i}": {"kind": "train", "group": "x" if i < 5 else "y"} for i in range(7)}
    records["prep"] = {"kind": "prepare"}
    records["by-hand"] = None  # a stage written without a record never packs

    def key(record):
        return record["group"] if record and record["kind"] == "train" else None

    names = ["prep", *[f"s{i}" for i in range(7)], "by-hand"]
    jobs = packs.group_into_packs(names, records, 2, key)
    assert jobs == [["prep"], ["s0", "s1"], ["s2", "s3"], ["s4"], ["s5", "s6"], ["by-hand"]]
    assert packs.group_into_packs(names, records, 1, key) == [[n] for n in names]


def test_pack_results_record_only_ok_stages():
    results = {"a": {"ok": True, "error": ""}, "b": {"ok": False, "error": "NaN loss"}}
    assert packs.stages_that_succeeded(["a", "b", "c"], results) == {
        "a": "", "b": "NaN loss", "c": "the pack wrote no result for this stage"}
    assert packs.stages_that_succeeded(["a"], None) == {"a": "the pack wrote no result for this stage"}


def test_the_plan_gives_each_stage_its_record_as_dvc_interpolates_it(tmp_path, monkeypatch):
    root = make_repo(tmp_path / "repo", {"a": {"out": "a.txt", "meta": {"kind": "toy", "arguments": {"out": "a.txt"}}},
                                         "b": {"out": "b.txt"}})
    monkeypatch.chdir(root)
    repo = plan.open_repo(root)
    try:
        stage_plan = plan.plan_stages(repo, ["dvc.yaml"])
        assert plan.stage_record(stage_plan, "a") == {"kind": "toy", "arguments": {"out": "a.txt"}}
        assert plan.stage_record(stage_plan, "b") is None
    finally:
        repo.close()


def test_job_environment_fixes_threads_and_tracking(tmp_path):
    settings = ReproSettings(threads=3, tracking_uri="http://127.0.0.1:5000")
    env = job_environment(settings, str(tmp_path), ["main@ce-10-0"])
    assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "3"
    assert env["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5000" and env["DVC_STAGE"] == "main@ce-10-0"
    assert "MLFLOW_TRACKING_URI" not in job_environment(ReproSettings(threads=1), str(tmp_path), ["a"])
    assert log_path(tmp_path, ["pipelines/smoke/dvc.yaml:main@ce-10-0"]).name == "pipelines_smoke_dvc.yaml_main@ce-10-0.log"


def test_run_job_logs_output_and_stops_at_first_failure(tmp_path):
    log = tmp_path / "logs" / "x.log"
    job = Job(["x"], ["echo first; echo $OMP_NUM_THREADS", "exit 4", "echo never"], str(tmp_path), str(log),
              {"OMP_NUM_THREADS": "7"})
    result = run_job(job)
    assert result.returncode == 4 and result.log_path == str(log)
    text = log.read_text()
    assert "first\n7\n" in text and "exit status 4" in text and "never\n" not in text


def test_commands_get_the_controllers_environment_not_dasks_worker_settings(tmp_path, monkeypatch):
    # A Dask nanny starts its worker with MALLOC_TRIM_THRESHOLD_=65536 (and one BLAS thread); a stage
    # under it trained 2.2x slower. The command sees the controller's value, or none, as under dvc repro.
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # as in a Dask worker process
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    log = tmp_path / "x.log"
    run_job(Job(["x"], ['echo "trim=${MALLOC_TRIM_THRESHOLD_-unset} blas=${OPENBLAS_NUM_THREADS-unset}"'],
                str(tmp_path), str(log), {"OPENBLAS_NUM_THREADS": "4"}))
    assert "trim=unset blas=4\n" in log.read_text()


def test_a_local_cluster_leaves_the_controllers_environment_as_it_was(monkeypatch):
    # A local nanny writes Dask's pre-spawn settings (MALLOC_TRIM_THRESHOLD_=65536, one BLAS thread)
    # into the process that starts it, and so into every stage's environment; quiet_dask_config empties them.
    from rescom.executor.session import dask_client

    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "4")
    with dask_client(1, None) as client:
        worker_env = client.submit(lambda: dict(os.environ), pure=False).result()
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ and os.environ["OPENBLAS_NUM_THREADS"] == "4"
    assert "MALLOC_TRIM_THRESHOLD_" not in worker_env and worker_env["OPENBLAS_NUM_THREADS"] == "4"


def test_worker_specs_one_worker_per_gpu_with_its_device():
    from rescom.executor.cluster import worker_specs

    specs = worker_specs(None, ["0", "1", "3"])
    assert {name: s["options"]["env"]["CUDA_VISIBLE_DEVICES"] for name, s in specs.items()} == {
        "gpu0": "0", "gpu1": "1", "gpu3": "3"}
    assert all(s["options"]["nthreads"] == 1 for s in specs.values())
    assert list(worker_specs(2, ["0", "1", "3"])) == ["gpu0", "gpu1"]
    cpu = worker_specs(4, [])
    assert list(cpu) == ["cpu0", "cpu1", "cpu2", "cpu3"] and all(s["options"]["env"] == {} for s in cpu.values())


def test_cpu_workers_never_more_stages_than_the_cores_hold():
    from rescom.executor.cluster import cpu_workers

    workers, why = cpu_workers(2, threads=2, cores=2)  # dvc repro's 2 threads: one stage fills 2 cores
    assert workers == 1 and "--jobs 2" in why and "running 1" in why and "--threads 1" in why
    assert cpu_workers(5, threads=2, cores=4)[0] == 2
    assert cpu_workers(2, threads=1, cores=2) == (2, None)  # cores split: each stage 1 thread
    assert cpu_workers(3, threads=4, cores=16) == (3, None)
    assert cpu_workers(None, threads=8, cores=2) == (1, None)  # one worker is always started


def test_slurm_job_scripts_render_site_settings_without_slurm(tmp_path):
    from rescom.executor.slurm import SlurmSettings, job_scripts, worker_lifetime

    site = SlurmSettings(partition="gpu", cpu_partition="cpu", account="lab", walltime="02:00:00", cores=8,
                         memory="32GB", gpus_per_job=2, directives=["--qos=high"], prologue=["module load cuda"])
    scripts = job_scripts(site, "login1", tmp_path)
    gpu, cpu = scripts["gpu"], scripts["cpu"]
    for line in ("#SBATCH --gres=gpu:2", "#SBATCH -p gpu", "#SBATCH -A lab", "#SBATCH -t 02:00:00",
                 "#SBATCH --cpus-per-task=8", "#SBATCH --qos=high", "module load cuda", "--resources GPU=2"):
        assert line in gpu, gpu
    assert "--gres" not in cpu and "#SBATCH -p cpu" in cpu and "--resources CPU_STAGE=1" in cpu
    lifetime, stagger = worker_lifetime("02:00:00")
    assert f"--lifetime {lifetime}s --lifetime-stagger {stagger}s" in gpu and lifetime + stagger < 7200
    assert "--host 127.0.0.1" not in gpu  # a cluster's workers listen where the scheduler can reach them
    assert "--nthreads 1" in gpu and "rescom.executor.worker_setup" in gpu


def test_tracking_server_binds_loopback_and_needs_auth_beyond(tmp_path, monkeypatch):
    from rescom.executor.tracking_server import TrackingServerError, auth_environment, server_argv

    argv = server_argv(tmp_path / "mlflow.db", "127.0.0.1", 5000)
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and "basic-auth" not in argv
    assert "basic-auth" in server_argv(tmp_path / "mlflow.db", "0.0.0.0", 5000)
    monkeypatch.delenv("MLFLOW_TRACKING_USERNAME", raising=False)
    with pytest.raises(TrackingServerError, match="MLFLOW_TRACKING_USERNAME"):
        auth_environment(tmp_path / "mlflow.db")


@pytest.mark.parametrize("args, message", [
    (["--jobs", "2", "--scheduler", "tcp://127.0.0.1:8786"], "give one of --jobs, --scheduler and --slurm"),
    (["--jobs", "2", "--slurm"], "give one of --jobs, --scheduler and --slurm"),
    (["--dry-run"], "--dry-run goes with --slurm"),
    (["--jobs", "0"], "--jobs must be at least 1"),
    (["--scheduler", "tcp://10.1.2.3:8786"], "--tracking-uri"),
])
def test_repro_bad_options_exit_2_with_one_line(args, message):
    from typer.testing import CliRunner

    from rescom.cli import app

    result = CliRunner().invoke(app, ["repro", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args, broken, messages", [
    (["--profile", "nosuch"], None, ["unknown profile 'nosuch'", "profiles: default, smoke"]),
    (["nosuch"], None, ["'nosuch' not found inside 'dvc.yaml'", "its stages: prep, train@…"]),
    (["--profile", "smoke", "train@z"], None, ["'train@z' not found inside 'pipelines/smoke/dvc.yaml'",
                                               "its stages: train@x, train@y"]),
    (["pipelines/gone/dvc.yaml"], None, ["gone/dvc.yaml' does not exist", "dvc.yaml files: dvc.yaml, pipelines/smoke/dvc.yaml"]),
    ([], ("params.yaml", "greeting: [hi\n"), ["'params.yaml', YAML file structure is corrupted", "at line 2, column 1"]),
    ([], ("dvc.yaml", "stages:\n  prep: [\n"), ["'dvc.yaml', YAML file structure is corrupted", "at line 3, column 1"]),
    ([], ("dvc.yaml", "stagez: {}\n"), ["dvc.yaml' validation failed", "stagez"]),
])
def test_repro_bad_target_or_file_exits_2_in_one_line_before_dask(tmp_path, monkeypatch, args, broken, messages):
    from dvc.repo import Repo
    from typer.testing import CliRunner

    from rescom.cli import app
    from rescom.executor import session

    Repo.init(str(tmp_path), no_scm=True).close()
    pipeline = "stages:\n  prep:\n    cmd: echo ${greeting}\n  train:\n    foreach: [x, y]\n    do:\n      cmd: echo ${item}\n"
    for folder in (tmp_path, tmp_path / "pipelines" / "smoke"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "dvc.yaml").write_text(pipeline)
        (folder / "params.yaml").write_text("greeting: hi\n")
    if broken:
        (tmp_path / broken[0]).write_text(broken[1])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(session, "dask_client", lambda *a: pytest.fail("a cluster started for a bad input"))
    result = CliRunner().invoke(app, ["repro", *args])
    assert result.exit_code == 2, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert all(m in result.output for m in messages), result.output


def test_repro_ctrl_c_outside_the_loop_exits_130_in_one_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from rescom.cli import app
    from rescom.executor import session

    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # e.g. while the cluster starts

    monkeypatch.setattr(session, "repro", interrupted)
    result = CliRunner().invoke(app, ["repro"])
    assert result.exit_code == 130 and result.output.strip() == "interrupted", result.output
