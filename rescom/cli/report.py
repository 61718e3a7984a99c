"""`rescom report` (render from finished runs), `rescom report diff A B`, and `rescom ablate NAME`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from rescom.cli.common import expected_errors, fail
from rescom.pipeline.catalogue import profile_params

report_app = typer.Typer(invoke_without_command=True, help="Render reports from finished runs, or compare two report trees.")


@report_app.callback()
@expected_errors
def report(ctx: typer.Context,
           params: Optional[Path] = typer.Option(None, help="A profile's params file (default: --profile's)."),
           profile: str = typer.Option("default", help="smoke, default or paper.")):
    """Render reports/<profile>/ from the runs that have finished."""
    if ctx.invoked_subcommand is not None:
        return
    from rescom.report.render import render_reports

    out = render_reports(params or profile_params(profile))
    typer.echo(f"wrote {out}")


@report_app.command("diff")
def diff(old: Path = typer.Argument(..., help="Report tree A (e.g. the committed reports/smoke)."),
         new: Path = typer.Argument(..., help="Report tree B (e.g. regenerated)."),
         tolerance: Optional[float] = typer.Option(None, help="Largest allowed |A - B| per cell (required unless --params gives report.tolerance)."),
         params: Optional[Path] = typer.Option(None, help="Take the tolerance from this params file's report section."),
         structure_only: bool = typer.Option(False, "--structure-only",
                                             help="Compare files, columns and row keys, no cell (trees made on different kinds of machine).")):
    """Compare every CSV cell of two report trees, rows matched by their label columns; exit 1 and list
    the files, columns, rows and cells that differ (cells beyond the tolerance).

    The timings/ folder (wall-clock measurements, which no rerun reproduces) is never compared.
    """
    from rescom.report.diff import diff_reports
    from rescom.report.layout import TIMINGS

    if params is not None and tolerance is None and not structure_only:
        from rescom.pipeline.catalogue import load_profile

        tolerance = float(load_profile(params).section("report")["tolerance"])
    if tolerance is None and not structure_only:
        fail("give --tolerance or --params (whose report.tolerance is used)")
    for tree in (old, new):
        if not tree.is_dir():
            fail(f"{tree} is not a directory")
    compared = "structure (files, columns, row keys)" if structure_only else f"every cell within {tolerance}"
    problems = diff_reports(old, new, None if structure_only else tolerance, skip_dirs=(TIMINGS,))
    typer.echo(f"not compared: {TIMINGS}/ (wall-clock timings)")
    if problems:
        typer.echo(f"{len(problems)} difference(s), comparing {compared}:")
        for line in problems:
            typer.echo(f"  {line}")
        raise typer.Exit(1)
    typer.echo(f"reports agree: {compared}")


def referenced_stages(profile, table: str) -> list[str]:
    """DVC stage names of the runs a table reuses from other tables (its `references`).

    A matrix stage is named <table>@<axis values joined by '-'>, in axis order.
    """
    from rescom.pipeline.catalogue import expand_table, format_value

    stages = []
    for reference in profile.section(table).get("references") or []:
        source, _, name = reference["run"].partition("/")
        spec = next(s for s in expand_table(profile, source) if s.name == name)
        stages.append(f"{source}@" + "-".join(format_value(v) for v in spec.item.values()))
    return stages


@expected_errors
def ablate(name: str = typer.Argument(..., help="A report table, e.g. queue-type, beta, spm, siambs, entirety or draws."),
           profile: str = typer.Option("default", help="smoke, default or paper."),
           jobs: int = typer.Option(1, "--jobs", "-j", help="Stages at once (local Dask workers; one per GPU on a GPU machine)."),
           scheduler: Optional[str] = typer.Option(None, help="Address of an existing Dask scheduler instead of local workers.")):
    """Run only the missing runs of one ablation (what `dvc repro` would run, through `rescom repro`'s
    executor), then print and write its table."""
    from rescom.report.tables import TABLES, ablation_tables

    ablations = ablation_tables()
    if name not in ablations:
        fail(f"unknown ablation {name!r}; choose one of {', '.join(ablations)}")
    from rescom.pipeline.catalogue import load_profile
    from rescom.pipeline.dvcfile import dvc_path
    from rescom.report.render import render_rows

    loaded = load_profile(profile_params(profile))
    table = ablations[name]
    stage = TABLES[table].runs_of or table  # the stages that train its runs
    dvcfile = dvc_path(loaded)
    targets = [f"{dvcfile}:{stage}", *(f"{dvcfile}:{s}" for s in referenced_stages(loaded, stage))]
    target = " ".join(targets)
    typer.echo(f"$ rescom repro {target}  (finished runs are skipped)")
    from rescom.executor.session import repro

    summary = repro(targets, jobs=None if scheduler else jobs, scheduler=scheduler)
    if not summary.ok:
        fail(f"rescom repro {target}: {len(summary.failed)} stage(s) failed, {len(summary.not_run)} not run")
    out_dir = Path("reports") / loaded.name / "tables"  # where `rescom report` keeps every table
    out_dir.mkdir(parents=True, exist_ok=True)
    if render_rows(loaded, table, out_dir) is None:
        fail(f"no finished runs for {table}")
    typer.echo((out_dir / f"{table}.md").read_text())
