"""Compare two report trees: the same CSV files, columns and rows, then (unless structure only) every cell.

Rows are matched by their key, the label columns that name a row (method, axis value, claim, epoch),
never a measured number or a value computed from one (seeds, per_seed, verdict, best_epoch): those
differ between CPU kinds as between seeds, and a moved number is a cell difference, not a lost row.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import pandas as pd

from rescom.report.tables import TABLES

# Key columns by file name (tables/: the registry's, analysis/); every curves/ file (summary.CURVES_DIR) is keyed by
# its epoch. A file not listed is matched row by row in order.
ROW_KEYS = {name: table.keys for name, table in TABLES.items()} | {
    "claims": ("claim", "group"), "queue_histograms": ("class",),
    "gradient_by_rank": ("rank", "embedding", "keys"), "similarity_summary": ("method", "embedding", "group"),
    "pair_frequency": ("queue", "anchor_class", "key_class"),
}


def row_keys(frame: pd.DataFrame, name: Path) -> list[str]:
    """Each row's key, 'column=value ...' over the file's key columns it has, or 'row i'."""
    columns = ["epoch"] if name.parts[0] == "curves" else ROW_KEYS.get(name.stem, ())
    columns = [c for c in columns if c in frame]
    if not columns:
        return [f"row {i}" for i in range(len(frame))]
    keys = [" ".join(f"{c}={v}" for c, v in zip(columns, row, strict=True))
            for row in frame[columns].itertuples(index=False)]
    repeat = pd.Series(keys).groupby(keys).cumcount()  # a repeated key is told apart by its occurrence
    return [key if n == 0 else f"{key} #{n + 1}" for key, n in zip(keys, repeat, strict=True)]


def _same(a, b, tolerance: float) -> bool:
    a_nan, b_nan = (isinstance(v, float) and math.isnan(v) for v in (a, b))
    if a_nan or b_nan:
        return a_nan and b_nan
    # numbers.Real covers numpy's integer cells (an int column such as best_epoch), which int does not.
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= tolerance
    return str(a) == str(b)


def _cell(name: Path, key: str, column: str, old, new) -> str:
    delta = f" (Δ {new - old:+.4f})" if isinstance(old, float) and isinstance(new, float) else ""
    return f"{name} [{key}] {column}: {old} -> {new}{delta}"


def diff_reports(old_dir: str | Path, new_dir: str | Path, tolerance: float | None,
                 skip_dirs: tuple[str, ...] = ()) -> list[str]:
    """Readable differences between the CSV tables of two report trees ([] when they agree).

    tolerance: the largest allowed |old - new| of a number; None compares the structure only (files,
    columns, row keys), for trees made on different kinds of machine.
    skip_dirs: top-level folders not compared (timings/: wall-clock times, which no rerun reproduces).
    """
    old_dir, new_dir = Path(old_dir), Path(new_dir)
    problems: list[str] = []

    def tables(root: Path) -> set[Path]:
        found = (p.relative_to(root) for p in root.rglob("*.csv"))
        return {p for p in found if p.parts[0] not in skip_dirs}

    old_files, new_files = tables(old_dir), tables(new_dir)
    problems += [f"{f}: only in {old_dir}" for f in sorted(old_files - new_files)]
    problems += [f"{f}: only in {new_dir}" for f in sorted(new_files - old_files)]
    for name in sorted(old_files & new_files):
        old, new = pd.read_csv(old_dir / name), pd.read_csv(new_dir / name)
        if list(old.columns) != list(new.columns):
            problems.append(f"{name}: columns differ: {list(old.columns)} vs {list(new.columns)}")
            continue
        old.index, new.index = row_keys(old, name), row_keys(new, name)
        gone, added = old.index.difference(new.index, sort=False), new.index.difference(old.index, sort=False)
        if len(gone) or len(added):
            problems.append(f"{name}: rows differ: only in {old_dir}: {list(gone)}; only in {new_dir}: {list(added)}")
            continue
        if tolerance is None:
            continue
        problems += [_cell(name, key, column, old.at[key, column], new.at[key, column])
                     for key in old.index for column in old.columns
                     if not _same(old.at[key, column], new.at[key, column], tolerance)]
    return problems
