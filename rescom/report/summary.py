"""The compact views of a profile's results that DVC shows: the headline summary (DVC metrics) and
the per-table test-accuracy curves (DVC plots), both written by the report stage and tracked by git.

reports/<profile>/summary.json   {table: {row: {"all": last-epoch top-1, "few": ...}}}: one number
                                 per row of each table (main also Few), mean over seeds, so
                                 `dvc exp show` / `dvc metrics diff` compare profiles across commits
                                 and experiments in a few columns.
reports/<profile>/curves/<table>.csv   epoch, then one column per variant of the table (its axis
                                 values but the seed): test top-1 at each evaluated epoch, mean over
                                 seeds; the top-level plots of dvc.yaml overlay them, and <table>.png
                                 draws the same for reading offline (DVC's HTML loads Vega from a CDN).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rescom.pipeline.catalogue import Profile, expand_table, format_value, training_tables
from rescom.report.tables import TABLES
from rescom.report.render_labels import row_labels

SUMMARY_NAME = "summary.json"
CURVES_DIR = "curves"


def _rounded_or_none(value) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else round(float(value), 2)


def summary_labels(agg: pd.DataFrame, keys: list[str]) -> list[str]:
    """The rows' labels from the fewest leading key columns that tell them apart, '/' between
    values: 'neg40' rather than the report's 'neg40 40' (a grid's name already says its counts),
    'cifar10-lt/rescom' where datasets vary. DVC makes each a column name: no spaces in it."""
    for count in range(1, len(keys) + 1):
        labels = [label.replace(" ", "/") for label in row_labels(agg, keys[:count])]
        if len(set(labels)) == len(labels):
            return labels
    return labels


def headline_summary(aggregates: dict[str, pd.DataFrame]) -> dict:
    """One entry per row of each table: last-epoch All (main: also Few), mean over seeds, 2 decimals."""
    summary = {}
    for table, agg in aggregates.items():
        if not TABLES[table].curves:
            continue  # entirety repeats main's rows
        labels = summary_labels(agg, list(TABLES[table].keys))
        summary[table] = {label: {"all": _rounded_or_none(row["last_test_all_mean"]),
                                  **({"few": _rounded_or_none(row["last_test_few_mean"])} if table == "main" else {})}
                          for label, (_, row) in zip(labels, agg.iterrows(), strict=True)}
    return summary


def curve_runs(profile: Profile, table: str) -> dict[str, list[Path]]:
    """label -> run folders (one per seed) of a table's curves, known before any run: the label is
    the run's axis values other than the seed, only those that vary ('bs', 'balanced', '0.999');
    a table's `references` (runs reused from another table) are points of their own."""
    specs = [(spec.item, spec.run_dir(profile.name)) for spec in expand_table(profile, table)]
    for reference in profile.section(table).get("references") or []:
        item = {k: v for k, v in reference.items() if k != "run"}
        specs.append((item, Path("runs") / profile.name / reference["run"]))
    axes = [a for a in profile.section(table).get("axes", {}) if a != "seed"]
    varying = [a for a in axes if len({format_value(item.get(a)) for item, _ in specs}) > 1] or axes[:1]
    runs: dict[str, list[Path]] = {}
    for item, run_dir in specs:
        label = " ".join(format_value(item[a]) for a in varying if a in item)
        runs.setdefault(label, []).append(run_dir)
    return runs


def table_curves(profile: Profile, table: str) -> pd.DataFrame | None:
    """epoch x label: test top-1 at each evaluated epoch, mean over the seeds that finished."""
    columns = {}
    for label, run_dirs in curve_runs(profile, table).items():
        runs = []
        for run_dir in run_dirs:
            history = run_dir / "history.csv"
            if history.is_file():
                frame = pd.read_csv(history)
                if "test_all" in frame:
                    runs.append(frame.dropna(subset=["test_all"]).set_index("epoch")["test_all"])
        if runs:
            columns[label] = pd.concat(runs, axis=1).mean(axis=1)
    if not columns:
        return None
    return pd.DataFrame(columns).rename_axis("epoch").reset_index()


def curves_path(profile_name: str, table: str) -> Path:
    return Path("reports") / profile_name / CURVES_DIR / f"{table}.csv"


def write_curves(profile: Profile, root: Path) -> list[Path]:
    """reports/<profile>/curves/<table>.csv for every table with a finished run."""
    directory = root / CURVES_DIR
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for table in training_tables(profile):
        curves = table_curves(profile, table) if TABLES[table].curves else None
        if curves is not None:
            from rescom.report.figures import plot_curves

            paths.append(directory / f"{table}.csv")
            curves.to_csv(paths[-1], index=False, float_format="%.4f")
            title, reference = TABLES[table].title, TABLES[table].reference
            paths.append(plot_curves(curves, f"{title} ({reference})\nprofile {profile.name}: test top-1 over epochs",
                                     directory / f"{table}.png"))
    return paths
