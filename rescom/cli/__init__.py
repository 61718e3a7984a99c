"""The `rescom` command line: repro, status, ablate, train, evaluate, prepare, runs, ui, exp, share, simulate, and the command groups.

This module only assembles the Typer `app` from the command modules of the package and is the top of
its import graph: the command modules import rescom.cli.common (error handling) and
rescom.cli.run_config (options -> config), never this module nor each other.

Each command is a thin shell around a function of the package; every expected failure (bad config,
missing data, existing run, NaN loss) prints one line naming the problem and exits with status 2.
"""

from __future__ import annotations

import os

import typer

# Modules, not their functions: `from rescom.cli.train import train` would rebind the name
# rescom.cli.train from the module to the function.
from rescom.cli import analysis, data, experiments, pipeline, report, repro, runs, share, simulate, train

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="ResCom reproduction suite: train, evaluate and compare long-tailed recognition methods.")
app.add_typer(simulate.simulate_app, name="simulate")
app.add_typer(pipeline.pipeline_app, name="pipeline")
app.add_typer(report.report_app, name="report")
app.add_typer(experiments.exp_app, name="exp")
app.add_typer(share.share_app, name="share")
app.add_typer(analysis.analysis_app, name="analyze")
app.add_typer(data.data_app, name="data")
# Registration order is the order `rescom --help` lists the commands in.
app.command()(repro.repro)
app.command()(experiments.status)
app.command()(report.ablate)
app.command()(train.train)
app.command()(train.evaluate)
app.command()(train.prepare)
app.command()(runs.runs)
app.command()(runs.ui)


def main() -> None:
    app()
