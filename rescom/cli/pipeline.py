"""`rescom pipeline ...`: the commands DVC stages run, and the dvc.yaml generator."""

from __future__ import annotations

from pathlib import Path

import typer

from rescom.cli.common import expected_errors, fail

pipeline_app = typer.Typer(no_args_is_help=True, help="Commands run by the DVC pipeline's stages.")


def _parse_items(items: list[str]) -> dict[str, str]:
    parsed = {}
    for entry in items:
        key, sep, value = entry.partition("=")
        if not sep:
            fail(f"--item {entry!r}: expected axis=value")
        parsed[key] = value
    return parsed


@pipeline_app.command("prepare")
@expected_errors
def prepare(params: Path = typer.Option(Path("params.yaml"), help="The profile's params file."),
            key: str = typer.Option(..., help="An entry of the params file's datasets section.")):
    """Prepare one dataset of the profile under data/prepared/<profile>/<key>."""
    from rescom.pipeline.runner import prepare_dataset

    data = prepare_dataset(str(params), key)
    typer.echo(f"{key}: {sum(data.class_counts)} training images, counts {data.class_counts}, "
               f"{len(data.test.labels)} test images")


@pipeline_app.command("train")
@expected_errors
def train(params: Path = typer.Option(Path("params.yaml")), table: str = typer.Option(...),
          items: list[str] = typer.Option([], "--item", help="axis=value, one per axis of the table.")):
    """Train one run of a table (continues an interrupted run of the same config)."""
    from rescom.pipeline.runner import train_table_run

    summary = train_table_run(str(params), table, _parse_items(items))
    m = summary["metrics"]
    typer.echo(f"{table} {items}: last-epoch top-1 {m['last_test_all']:.2f}, best {m['best_test_all']:.2f} "
               f"(epoch {m['best_epoch']})")


@pipeline_app.command("train-pack")
@expected_errors
def train_pack(params: Path = typer.Option(Path("params.yaml")),
               results: Path = typer.Option(..., help="Where to write {stage cmd: {ok, error}} as JSON."),
               stages: list[str] = typer.Option(..., "--stage", help="A `rescom pipeline train ...` stage command "
                                                "of this params file (repeatable).")):
    """Train several stages' runs in one process (rescom.pipeline.packing); exit 1 if any failed."""
    from rescom.pipeline.packing import train_stages

    outcome = train_stages(str(params), stages, results)
    for cmd, result in outcome.items():
        typer.echo(f"{'ok' if result['ok'] else 'FAILED'}: {cmd}" + ("" if result["ok"] else f" ({result['error']})"))
    if not all(result["ok"] for result in outcome.values()):
        raise typer.Exit(1)


@pipeline_app.command("analysis")
@expected_errors
def analysis(name: str = typer.Argument(..., help="simulate_pairs, gradients, similarity or inference_cost."),
             params: Path = typer.Option(Path("params.yaml"))):
    """Run one analysis of the profile into reports/<profile>/analysis/<name>/."""
    import json

    from rescom.pipeline.runner import run_analysis

    typer.echo(json.dumps(run_analysis(str(params), name), indent=2, default=str))


@pipeline_app.command("write-dvc")
@expected_errors
def write_dvc(params: list[Path] = typer.Argument(None, help="Profile params files (default: every profile).")):
    """Regenerate the dvc.yaml of each profile from its params file's table layout."""
    from rescom.pipeline.dvcfile import profile_params_files, write

    for path in params or profile_params_files():
        typer.echo(f"wrote {write(path)}")
