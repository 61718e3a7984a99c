"""`rescom runs` and `rescom ui`: look at the tracked runs in the project's MLflow store.

The functions are registered on the app by rescom.cli (this module builds no Typer app of its own).
"""

from __future__ import annotations

import os
import sys
from typing import Optional

import typer

from rescom.cli.common import expected_errors


@expected_errors
def runs(experiment: Optional[str] = typer.Option(None, help="Only this MLflow experiment."),
         limit: int = typer.Option(50)):
    """A table of MLflow runs: method, dataset, profile, last and best accuracy, ECE."""
    from rich.table import Table

    from rescom.progress import console
    from rescom.runs_table import runs_frame

    frame = runs_frame(experiment, limit)
    if frame.empty:
        typer.echo("no runs yet")
        return
    table = Table()
    for column in frame.columns:
        table.add_column(str(column))
    for _, row in frame.iterrows():
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row))
    console.print(table)


def ui(host: str = typer.Option("127.0.0.1", help="Interface to bind (default loopback only)."),
       port: int = typer.Option(5000)):
    """Start the MLflow UI on the project's store (one worker)."""
    from rescom.tracking import default_tracking_uri

    uri = default_tracking_uri()
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host,
               "--port", str(port), "--workers", "1"]
    typer.echo(f"MLflow UI for {uri} on http://{host}:{port}")
    os.execv(sys.executable, command)
