"""One `rescom repro`: DVC's plan (bad input ends here), cluster and tracking up, the loop, all closed after."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from rescom.executor.controller import Controller, ReproSettings, Summary, print_summary, say


@contextlib.contextmanager
def dask_client(jobs: int | None, scheduler: str | None):
    """A client of the scheduler, or of a local cluster started here. A local nanny writes Dask's worker
    settings (MALLOC_TRIM_THRESHOLD_, one BLAS thread) into this process's environment before it
    spawns a worker; they are put back afterwards, so a later repro in this process starts clean."""
    import dask
    from distributed import Client

    from rescom.executor.cluster import quiet_dask_config, start_local_cluster
    from rescom.executor.stage_job import dask_worker_settings

    before = {key: os.environ.get(key) for key in dask_worker_settings()}
    try:
        with dask.config.set(quiet_dask_config()), \
                (contextlib.nullcontext(scheduler) if scheduler else start_local_cluster(jobs)) as cluster, \
                Client(cluster) as client:
            yield client
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
          log_dir: Path = Path("logs/repro"), push: bool = False, remote: str | None = None) -> Summary:
    from rescom.executor.cluster import cpu_workers, usable_cores, visible_gpus
    from rescom.executor.plan import open_repo, plan_stages

    repo = open_repo()
    root = Path(repo.root_dir)
    try:
        stage_plan = plan_stages(repo, targets)
        pusher = None
        if push:  # a missing remote is bad input: it ends here, before any cluster starts
            from rescom.executor.push import StagePusher, remote_name

            pusher = StagePusher(repo, remote_name(repo, remote))
        import torch  # its thread count here is what a stage of a sequential `dvc repro` gets

        sequential_threads = torch.get_num_threads()
        settings = ReproSettings(threads=threads or sequential_threads, pack=pack, log_dir=root / log_dir)
        if scheduler is None and not visible_gpus():
            jobs, fewer = cpu_workers(jobs, settings.threads, usable_cores())
            if fewer:
                say(fewer)
        if settings.threads != sequential_threads:
            say(f"{settings.threads} thread(s) per stage where a sequential dvc repro stage runs "
                f"{sequential_threads}: its CPU numbers will differ (float sums split by thread count)")
        with tracking(tracking_uri, serve_tracking, root) as uri, dask_client(jobs, scheduler) as client:
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
