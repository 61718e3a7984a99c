"""`rescom repro`: the profile's pipeline with independent stages in parallel on Dask."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors, fail


def _on_this_machine(address: str) -> bool:
    from urllib.parse import urlparse

    from rescom.executor.tracking_server import is_loopback

    return is_loopback(urlparse(address if "://" in address else f"tcp://{address}").hostname or "")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def slurm_site(path: Path | None, **options):
    """The SLURM site settings: the file's, then the options given."""
    try:
        import dask_jobqueue  # noqa: F401 - fail here, before anything starts
    except ImportError:
        fail("--slurm needs dask-jobqueue: pip install -e '.[cluster]'")
    from rescom.executor.slurm import load_settings

    return load_settings(path, options)


def profile_targets(targets: list[str], profile: str) -> list[str]:
    """The profile's dvc.yaml for no targets; a bare stage name (no file part) is one of its stages."""
    dvcfile = Path("dvc.yaml") if profile == "default" else Path("pipelines") / profile / "dvc.yaml"
    if not dvcfile.is_file():
        known = ["default", *sorted(p.parent.name for p in Path("pipelines").glob("*/dvc.yaml"))]
        fail(f"unknown profile {profile!r}: {dvcfile} not found; profiles: {', '.join(known)}")
    return [t if ":" in t or Path(t).suffix in (".yaml", ".yml", ".dvc") else f"{dvcfile}:{t}" for t in targets] or [str(dvcfile)]


@expected_errors
def repro(targets: list[str] = typer.Argument(None, help="DVC targets (the profile's stage names, FILE:stage, FILE); default: the profile's dvc.yaml."),
          profile: str = typer.Option("default", help="smoke, default or paper: its dvc.yaml holds bare stage names and runs when no TARGETS."),
          jobs: Optional[int] = typer.Option(None, "--jobs", "-j", help="Local workers: N on a CPU; one per GPU (at most N) on a GPU machine."),
          scheduler: Optional[str] = typer.Option(None, help="Address of an existing Dask scheduler (tcp://host:8786), e.g. a SLURMCluster's."),
          pack: int = typer.Option(1, help="Up to K ready training stages that can share one process run as one job."),
          threads: Optional[int] = typer.Option(None, help="Torch/OpenMP threads per stage (default: what a sequential `dvc repro` stage gets here; CPU results depend on it)."),
          tracking_uri: Optional[str] = typer.Option(None, help="MLflow tracking URI for the stages (a running server)."),
          tracking_server: Optional[str] = typer.Option(None, help="Start an MLflow server bound to this host (127.0.0.1; beyond it, basic auth) over the workspace's mlflow.db."),
          log_dir: Path = typer.Option(Path("logs/repro"), help="Per-stage logs, relative to the DVC root."),
          slurm: bool = typer.Option(False, "--slurm", help="Run the stages as SLURM jobs (dask-jobqueue): GPU jobs for training, CPU jobs for the rest; see docs/slurm.md."),
          slurm_config: Optional[Path] = typer.Option(None, help="YAML file of SLURM site settings (the keys of the options below, plus cpu_partition, max_cpu_jobs, gpu_stages, python, scheduler_host)."),
          partition: Optional[str] = typer.Option(None, help="SLURM partition (-p) of the jobs."),
          account: Optional[str] = typer.Option(None, help="SLURM account (-A) of the jobs."),
          walltime: Optional[str] = typer.Option(None, help="Walltime per job, e.g. 04:00:00 (workers retire a margin before it)."),
          job_memory: Optional[str] = typer.Option(None, help="Memory per job, e.g. 32GB."),
          job_cores: Optional[int] = typer.Option(None, help="CPU cores per job."),
          gpus_per_job: Optional[int] = typer.Option(None, help="GPUs per GPU job (--gres=gpu:G)."),
          max_jobs: Optional[int] = typer.Option(None, help="At most this many GPU jobs at once."),
          sbatch: list[str] = typer.Option([], help="Extra #SBATCH option for every job (repeatable), e.g. --sbatch=--qos=normal."),
          prologue: list[str] = typer.Option([], help="Shell line each job runs before its worker (repeatable), e.g. 'module load cuda'."),
          dry_run: bool = typer.Option(False, "--dry-run", help="With --slurm: print the job scripts and the plan of stages, submit nothing."),
          push: bool = typer.Option(False, "--push", help="Push each finished stage's outputs to the DVC remote as it goes (docs/sharing.md)."),
          remote: Optional[str] = typer.Option(None, help="The DVC remote --push sends to (default: the repository's default remote).")):
    """Run what `dvc repro` would run, independent stages in parallel; only this process writes dvc.lock.
    Exit status: 0 all done, 1 a stage failed, 2 bad input (before any cluster starts), 130 Ctrl-C."""
    if sum(map(bool, (jobs is not None, scheduler is not None, slurm))) > 1:
        fail("give one of --jobs, --scheduler and --slurm")
    if dry_run and not slurm:
        fail("--dry-run goes with --slurm")
    for name, value in (("--jobs", jobs), ("--pack", pack), ("--threads", threads)):
        if value is not None and value < 1:
            fail(f"{name} must be at least 1, got {value}")
    if remote and not push:
        fail("--remote names where --push sends: give --push too")
    if tracking_uri and tracking_server:
        fail("give --tracking-uri or --tracking-server, not both")
    if scheduler and not (tracking_uri or tracking_server) and not _on_this_machine(scheduler):
        fail(f"--scheduler {scheduler}: workers on other machines need --tracking-uri URI or --tracking-server HOST "
             "(the sqlite store is unsafe on a shared filesystem)")
    targets = profile_targets(targets or [], profile)
    site = None
    if slurm:
        site = slurm_site(slurm_config, partition=partition, account=account, walltime=walltime, memory=job_memory,
                          cores=job_cores, gpus_per_job=gpus_per_job, max_gpu_jobs=max_jobs, directives=sbatch,
                          prologue=prologue)
        if dry_run:
            from rescom.executor.session import dry_run as show_plan

            show_plan(targets, site, log_dir)
            return
        from rescom.executor.slurm import is_this_machine, slurm_nodes

        if not (tracking_uri or tracking_server) and not all(map(is_this_machine, slurm_nodes())):
            fail("--slurm on a cluster of several nodes needs --tracking-server HOST or --tracking-uri URI "
                 "(the workspace's sqlite store is unsafe on a shared filesystem)")
    if tracking_uri:
        from rescom.tracking import check_reachable

        check_reachable(tracking_uri)
    from rescom.executor.session import repro as run_repro

    # SIGTERM (scancel or the walltime of a controller inside an allocation) stops as Ctrl-C does:
    # running stages stopped, finished ones recorded, every SLURM job cancelled.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        summary = run_repro(targets, jobs=jobs if scheduler is None else None, scheduler=scheduler, pack=pack,
                            threads=threads, tracking_uri=tracking_uri, serve_tracking=tracking_server, log_dir=log_dir,
                            slurm=site, push=push, remote=remote)
    except KeyboardInterrupt:  # outside the controller's loop (cluster start, a second Ctrl-C): no traceback
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    if summary.interrupted or not summary.ok:
        raise typer.Exit(130 if summary.interrupted else 1)
