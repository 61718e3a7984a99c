"""`rescom pipeline ...`: what DVC stages run (rescom/stages/) as commands of the CLI, and the dvc.yaml generator."""

from __future__ import annotations

from pathlib import Path

import typer

from rescom.cli.common import expected_errors

pipeline_app = typer.Typer(no_args_is_help=True, help="Commands run by the DVC pipeline's stages.")


@pipeline_app.command("prepare")
@expected_errors
def prepare(params: Path = typer.Option(Path("params.yaml"), help="The profile's params file."),
            key: str = typer.Option(..., help="An entry of the params file's datasets section.")):
    """Prepare one dataset of the profile under data/prepared/<profile>/<key> (the prepare stage)."""
    from rescom.stages import prepare as stage

    typer.echo(stage.run(str(params), key))


@pipeline_app.command("train")
@expected_errors
def train(params: Path = typer.Option(Path("params.yaml")), table: str = typer.Option(...),
          items: list[str] = typer.Option([], "--item", help="axis=value, one per axis of the table.")):
    """Train one run of a table (the training stage; continues an interrupted run of the same config)."""
    from rescom.stages import train as stage

    typer.echo(stage.run(str(params), table, items))


@pipeline_app.command("train-pack")
@expected_errors
def train_pack(params: Path = typer.Option(Path("params.yaml")),
               results: Path = typer.Option(..., help="Where to write {stage name: {ok, error}} as JSON."),
               stages: list[str] = typer.Option(..., "--stage", help='A training stage of this params file as JSON, '
                                                '{"name": DVC stage name, "table": T, "item": {axis: value}} (repeatable).')):
    """Train several stages' runs in one process (rescom.pipeline.packing); exit 1 if any failed."""
    from rescom.pipeline.packing import TrainStage, train_stages

    outcome = train_stages([TrainStage.from_json(stage, str(params)) for stage in stages], results)
    for name, result in outcome.items():
        typer.echo(f"{'ok' if result['ok'] else 'FAILED'}: {name}" + ("" if result["ok"] else f" ({result['error']})"))
    if not all(result["ok"] for result in outcome.values()):
        raise typer.Exit(1)


@pipeline_app.command("analysis")
@expected_errors
def analysis(name: str = typer.Argument(..., help="An analysis of rescom.analysis.ANALYSES, e.g. simulate_pairs or gradients."),
             params: Path = typer.Option(Path("params.yaml"))):
    """Run one analysis of the profile into reports/<profile>/analysis/<name>/ (the analysis stage)."""
    from rescom.stages import analysis as stage

    typer.echo(stage.run(str(params), name))


@pipeline_app.command("write-dvc")
@expected_errors
def write_dvc(params: list[Path] = typer.Argument(None, help="Profile params files (default: every profile).")):
    """Regenerate the dvc.yaml of each profile from its params file's table layout."""
    from rescom.pipeline.dvcfile import profile_params_files, write

    for path in params or profile_params_files():
        typer.echo(f"wrote {write(path)}")
