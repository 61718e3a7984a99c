"""One `rescom repro`: DVC's plan (bad input ends here), cluster and tracking up, the loop, all closed after."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rescom.executor.controller import Controller, ReproSettings, Summary, print_summary, say


@contextlib.contextmanager
def dask_client(jobs: int | None, scheduler: str | None):
    """A client of the scheduler, or of a local cluster started here (its nannies spawn workers with
    this process's environment: quiet_dask_config empties Dask's pre-spawn settings)."""
    import dask
    from distributed import Client

    from rescom.executor.cluster import quiet_dask_config, start_local_cluster

    with dask.config.set(quiet_dask_config()), \
            (contextlib.nullcontext(scheduler) if scheduler else start_local_cluster(jobs)) as cluster, \
            Client(cluster) as client:
        yield client


@contextlib.contextmanager
def slurm_client(settings, root: Path, log_dir: Path):
    """A client of a SLURM job pool started here (its scheduler in this process, TLS), the pool
    adjusting its jobs until the client closes; every job of the run is cancelled after."""
    import dask
    from distributed import Client

    from rescom.executor.cluster import quiet_dask_config
    from rescom.executor.slurm import JobPool

    # A stage whose job was lost (walltime, preemption) is given to the next worker up to this many
    # times; the lost job's spec is restarted once its worker has been gone this long.
    lenient = {"distributed.scheduler.allowed-failures": 10, "distributed.deploy.lost-worker-timeout": "5s"}
    with dask.config.set({**quiet_dask_config(), **lenient}):
        pool = JobPool(settings, root, log_dir / "slurm")
        try:
            with Client(pool.cluster, security=pool.cluster.security) as client:
                pool.start()
                say(f"SLURM jobs named {pool.job_name}: up to {settings.max_gpu_jobs} GPU job(s) "
                    f"({settings.gpus_per_job} GPU each) and {settings.max_cpu_jobs} CPU job(s), "
                    f"{settings.cores} core(s) and {settings.memory} each, walltime {settings.walltime}; "
                    f"job logs in {log_dir / 'slurm'}")
                yield client
        finally:
            pool.close()


@contextlib.contextmanager
def tracking(uri: str | None, serve: str | None, root: Path):
    """uri: use it. serve: start an MLflow server bound to that host over the workspace's store.
    Neither: the stages use the sqlite store a sequential run uses (rescom.tracking)."""
    if uri or not serve:
        yield uri
        return
    from rescom.executor.tracking_server import start_server
    from rescom.tracking import ui_url

    server = start_server(root / "mlflow.db", host=serve)
    say(f"MLflow tracking server {server.uri}, its UI at {ui_url(server.uri)} (log {server.log_path})")
    try:
        yield server.uri
    finally:
        server.stop()


def repro(targets: list[str], jobs: int | None = None, scheduler: str | None = None, pack: int = 1,
          threads: int | None = None, tracking_uri: str | None = None, serve_tracking: str | None = None,
          log_dir: Path = Path("logs/repro"), slurm=None, push: bool = False, remote: str | None = None) -> Summary:
    from rescom.executor.cluster import cpu_workers, usable_cores, visible_gpus
    from rescom.executor.plan import open_repo, plan_stages

    repo = open_repo()
    root = Path(repo.root_dir)
    try:
        stage_plan = plan_stages(repo, targets)  # bad targets or files end here, in one line
        import torch  # its thread count here is what a stage of a sequential `dvc repro` gets

        sequential_threads = torch.get_num_threads()
        if slurm is None and scheduler is None and pack == 1 and not (serve_tracking or push) and not visible_gpus():
            fit, fewer = cpu_workers(jobs, threads or sequential_threads, usable_cores())
            if fit == 1:  # one stage at a time: DVC itself is that, without a controller's overhead
                say((fewer + "; " if fewer else "") + "one stage at a time fits: handing the run to `dvc repro`")
                repo.close()
                return dvc_repro(targets, threads, tracking_uri)
        pusher = None
        if push:  # a missing remote is bad input: it ends here, before any cluster starts
            from rescom.executor.push import StagePusher, remote_name

            pusher = StagePusher(repo, remote_name(repo, remote))
        settings = ReproSettings(threads=threads or sequential_threads, pack=pack, log_dir=root / log_dir)
        if slurm is not None:
            from rescom.executor.slurm import needs_gpu, stage_resources

            settings.resources = lambda names, records: stage_resources(
                all(needs_gpu(n, r, slurm) for n, r in zip(names, records, strict=True)), slurm)
        elif scheduler is None and not visible_gpus():
            jobs, fewer = cpu_workers(jobs, settings.threads, usable_cores())
            if fewer:
                say(fewer)
        if settings.threads != sequential_threads:
            say(f"{settings.threads} thread(s) per stage where a sequential dvc repro stage runs "
                f"{sequential_threads}: its CPU numbers will differ (float sums split by thread count)")
        cluster = (slurm_client(slurm, root, settings.log_dir) if slurm is not None
                   else dask_client(jobs, scheduler))
        with tracking(tracking_uri, serve_tracking, root) as uri, cluster as client:
            settings.tracking_uri = uri
            say(f"Dask scheduler {client.scheduler.address}, {len(client.nthreads())} worker(s); "
                f"dashboard {client.dashboard_link or 'not available (needs bokeh)'}; "
                f"{settings.threads} thread(s) per stage; stage logs in {settings.log_dir}")
            summary = Controller(repo, client, settings,
                                 after_record=pusher.after_record if pusher else None).reproduce(stage_plan)
        if pusher:
            pusher.finish(summary)
    finally:
        repo.close()
    print_summary(summary)
    return summary


def dvc_repro(targets: list[str], threads: int | None, tracking_uri: str | None) -> Summary:
    """`dvc repro TARGETS` in a child process with the stages' settings; its exit status as a Summary."""
    import subprocess
    import sys
    import time

    env = dict(os.environ)
    if threads:
        env |= {"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    if tracking_uri:
        env["MLFLOW_TRACKING_URI"] = tracking_uri
    start = time.monotonic()
    try:
        returncode = subprocess.call([sys.executable, "-m", "dvc", "repro", *targets], env=env)
    except KeyboardInterrupt:  # dvc got the same Ctrl-C from the terminal and stops itself
        returncode = 130
    summary = Summary(wall_seconds=time.monotonic() - start, interrupted=returncode in (130, -2))
    if returncode and not summary.interrupted:
        summary.failed["dvc repro"] = f"exit status {returncode}"
    return summary


def dry_run(targets: list[str], slurm, log_dir: Path) -> None:
    """`rescom repro --slurm --dry-run`: the two job scripts, then every stage of the plan with the
    kind of job it would run on and whether it would run (changed, or downstream of one that
    runs) or be skipped. Nothing is submitted and no scheduler starts."""
    from rescom.executor.plan import needs_run, open_repo, plan_stages, stage_record
    from rescom.executor.slurm import job_scripts, needs_gpu, scheduler_host, slurm_nodes

    repo = open_repo()
    try:
        stage_plan = plan_stages(repo, targets)
        host = scheduler_host(slurm, slurm_nodes())
        for kind, script in job_scripts(slurm, host, Path(repo.root_dir) / log_dir / "slurm").items():
            print(f"# the {kind.upper()} job script\n{script}")  # unwrapped: a script to read or copy
        will_run: set[str] = set()
        print(f"# plan: {len(stage_plan.order)} stage(s)")
        for name in stage_plan.order:
            runs = bool(stage_plan.upstream[name] & will_run) or needs_run(repo, stage_plan, name)
            if runs:
                will_run.add(name)
            kind = "GPU" if needs_gpu(name, stage_record(stage_plan, name), slurm) else "CPU"
            print(f"{'run ' if runs else 'skip'}  {kind}  {name}")
        print(f"# {len(will_run)} to run, {len(stage_plan.order) - len(will_run)} up to date; nothing submitted")
    finally:
        repo.close()
