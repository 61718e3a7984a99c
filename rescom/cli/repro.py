"""`rescom repro`: the profile's pipeline with independent stages in parallel on Dask."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors, fail


def _on_this_machine(address: str) -> bool:
    from urllib.parse import urlparse

    from rescom.executor.tracking_server import is_loopback

    return is_loopback(urlparse(address if "://" in address else f"tcp://{address}").hostname or "")


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
          push: bool = typer.Option(False, "--push", help="Push each finished stage's outputs to the DVC remote as it goes (docs/sharing.md)."),
          remote: Optional[str] = typer.Option(None, help="The DVC remote --push sends to (default: the repository's default remote).")):
    """Run what `dvc repro` would run, independent stages in parallel; only this process writes dvc.lock.
    Exit status: 0 all done, 1 a stage failed, 2 bad input (before any cluster starts), 130 Ctrl-C."""
    if jobs is not None and scheduler is not None:
        fail("give --jobs or --scheduler, not both")
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
    from rescom.executor.session import repro as run_repro

    try:
        summary = run_repro(targets, jobs=jobs if scheduler is None else None, scheduler=scheduler, pack=pack,
                            threads=threads, tracking_uri=tracking_uri, serve_tracking=tracking_server, log_dir=log_dir,
                            push=push, remote=remote)
    except KeyboardInterrupt:  # outside the controller's loop (cluster start, a second Ctrl-C): no traceback
        typer.secho("interrupted", fg=typer.colors.YELLOW, err=True)
        raise typer.Exit(130) from None
    if summary.interrupted or not summary.ok:
        raise typer.Exit(130 if summary.interrupted else 1)
