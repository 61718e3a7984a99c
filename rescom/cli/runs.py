"""`rescom runs` and `rescom ui`: look at the tracked runs in the project's MLflow store (how a run looks
there is decided in rescom.tracking; which page `rescom ui` opens, here).

The functions are registered on the app by rescom.cli (this module builds no Typer app of its own).
"""

from __future__ import annotations

import math
import os
import sys
from typing import Optional

import typer

from rescom.cli.common import expected_errors
from rescom.tracking import default_tracking_uri, local_artifacts_root, sqlite_path, ui_url


@expected_errors
def runs(experiment: Optional[str] = typer.Option(None, help="Only this MLflow experiment."),
         limit: int = typer.Option(50)):
    """A table of MLflow runs: experiment (profile/table), variant, seed, epochs, last and best All, Few, ECE."""
    from rich.console import Console
    from rich.table import Table

    from rescom.runs_table import NUMERIC, runs_frame

    frame = runs_frame(experiment, limit)
    if frame.empty:
        typer.echo("no runs yet")
        return
    rows = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    console = Console()
    if not console.is_terminal:  # piped or redirected: no width to fit, so whole cells as TSV
        typer.echo("\n".join("\t".join(cells) for cells in [list(frame.columns), *rows]))
        return
    table = Table(box=None, pad_edge=False)
    for column in frame.columns:
        numeric = column in NUMERIC
        table.add_column(str(column), justify="right" if numeric else "left", no_wrap=numeric, overflow="fold")
    for cells in rows:
        table.add_row(*cells)
    console.print(table)


def _cell(value) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.2f}"  # NaN: never logged (e.g. a run that failed)
    return str(value)


def ui(host: str = typer.Option("127.0.0.1", help="Interface to bind (default loopback only)."),
       port: int = typer.Option(5000),
       experiment: str = typer.Option("default/main", help="The experiment (profile/table) whose address is printed; "
                                      "without it, another profile's main table.")):
    """Start the MLflow UI on the project's store (one worker); prints the address of the main table's runs."""
    uri = default_tracking_uri()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    root = local_artifacts_root(uri)
    if root is not None:  # proxied artifacts, served from the store's mlartifacts/ wherever the store now lies
        command += ["--serve-artifacts", "--artifacts-destination", root.resolve().as_uri()]
    typer.echo(f"MLflow UI for {uri}: {ui_landing(uri, host, port, experiment)}")
    os.execv(sys.executable, command)


def ui_landing(uri: str, host: str, port: int, experiment: str = "default/main") -> str:
    """The address to open, in the model-training view: `experiment`'s runs (the default profile's main
    table); without it, the newest experiment of a main table (`<profile>/main`), else the newest
    experiment, else the UI's home page. Reading never creates a store."""
    database = sqlite_path(uri)
    if database is not None and not database.is_file():
        return ui_url(f"http://{host}:{port}")
    from mlflow.tracking import MlflowClient

    newest_first = [e for e in MlflowClient(uri).search_experiments(order_by=["last_update_time DESC"])
                    if e.name != "Default"]
    ranked = sorted(newest_first, key=lambda e: (e.name != experiment, not e.name.endswith("/main")))
    return ui_url(f"http://{host}:{port}", ranked[0].experiment_id if ranked else None)
