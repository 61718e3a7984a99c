"""`rescom exp show`: DVC's experiments table for one profile, narrowed to the columns that matter; `rescom
status`: whether each profile is up to date, one line each."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import List, Optional

import typer

from rescom.cli.common import expected_errors, fail

exp_app = typer.Typer(no_args_is_help=True, help="DVC experiments, one profile at a time.")


@exp_app.command("show", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@expected_errors
def show(ctx: typer.Context,
         profile: str = typer.Option("default", help="smoke, default, paper or cifar10-jpeg."),
         table: Optional[List[str]] = typer.Option(None, help="Only these tables' metrics (repeat the option)."),
         all_columns: bool = typer.Option(False, "--all-columns", help="Every table and defining param on a terminal too."),
         print_command: bool = typer.Option(False, "--print-command", help="Print the dvc command instead of running it.")):
    """`dvc exp show` with only the profile's headline metrics (reports/<profile>/summary.json) and the params
    that define it, under short names: on a terminal the main table and training settings, redirected every
    column as TSV. Other options (-A, --sort-by main.bs.all, ...) go to `dvc exp show`; with --csv, --md or
    --json DVC prints its own format and names."""
    import shlex

    from rescom.pipeline.catalogue import load_profile, profile_params
    from rescom.pipeline.exp_view import exp_show_args, profile_columns, render

    params = profile_params(profile)
    if not params.is_file():
        fail(f"--profile {profile}: no params file {params} (run from the project's root)")
    columns = profile_columns(load_profile(params), table)
    own_table = not {"--csv", "--md", "--json"} & set(ctx.args)
    argv = [sys.executable, "-m", "dvc", *exp_show_args(columns, ctx.args, own_table)]
    if print_command:
        typer.echo(shlex.join(["dvc", *argv[3:]]))
        return
    done = subprocess.run(argv, env={**os.environ, "DVC_NO_ANALYTICS": "1"}, text=True,
                          stdout=subprocess.PIPE if own_table else None)
    if own_table and done.returncode == 0:
        render(done.stdout, columns, all_columns)
    raise typer.Exit(done.returncode)


def status():
    """Whether each profile is up to date, one line each: the stages `dvc repro` would run again, or "not
    run" for a profile never run here (where a bare `dvc status` lists every stage of every profile)."""
    from pathlib import Path

    from rescom.pipeline.status import profile_status

    if not Path(".dvc").is_dir():
        fail("no .dvc/ here: run from the project's root")
    for profile in profile_status():
        typer.echo(profile.line())
