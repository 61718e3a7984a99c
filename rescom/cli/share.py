"""`rescom share pull` and `rescom share register`: a lab's runs from its DVC remote into this
checkout and its MLflow store, without training them again (docs/sharing.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors
from rescom.errors import UsageError

share_app = typer.Typer(no_args_is_help=True, help="Fetch a lab's runs from its DVC remote and show them in MLflow.")


@share_app.command("pull")
@expected_errors
def pull(runs: list[str] = typer.Argument(None, help="Runs to fetch alone, as runs/<profile>/<table>/<name> or "
                                               "<table>/<name>, each with its prepared set; default: the whole profile."),
         profile: str = typer.Option("default", help="The profile whose dvc.yaml names the outputs."),
         remote: Optional[str] = typer.Option(None, "--remote", "-r", help="DVC remote (default: the repository's default)."),
         allow_missing: bool = typer.Option(False, help="Skip outputs the remote does not have (a campaign pushed half-way)."),
         register: bool = typer.Option(True, help="Register the pulled runs as MLflow runs (rescom share register).")):
    """`dvc pull` of a profile (or of single runs with their prepared sets), then the runs into MLflow."""
    from rescom.share.pull import pull as dvc_pull

    pulled = dvc_pull(profile, runs or [], remote=remote, allow_missing=allow_missing)
    typer.echo(f"dvc pull {' '.join(pulled.targets)}: {pulled.fetched} file(s) fetched")
    if register:
        _register([d for d in pulled.run_dirs if d.exists()])


@share_app.command("register")
@expected_errors
def register(paths: list[Path] = typer.Argument(None, help="Run folders, or folders holding them (default: runs/, or runs/<profile>)."),
             profile: Optional[str] = typer.Option(None, help="Only this profile's runs (runs/<profile>).")):
    """Register finished run folders as MLflow runs, each once: a second call adds none.

    Params from config.yaml, per-epoch metrics from history.csv, tags profile, variant and seed."""
    if paths and profile:
        raise UsageError("give run folders or --profile, not both")
    _register(paths or [Path("runs") / profile if profile else Path("runs")])


def _register(paths: list[Path]) -> None:
    from rescom.share.register import register_runs, run_folders
    from rescom.tracking import default_tracking_uri

    folders = run_folders(paths)
    done = register_runs(folders)
    typer.echo(f"MLflow ({default_tracking_uri()}): {len(done.registered)} run(s) registered, "
               f"{len(done.already)} already there")
