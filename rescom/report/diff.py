"""Compare two report trees cell by cell: every CSV of one against the same CSV of the other."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass
class CellDiff:
    file: str
    row: str
    column: str
    old: object
    new: object

    def __str__(self) -> str:
        delta = ""
        if isinstance(self.old, float) and isinstance(self.new, float):
            delta = f" (Δ {self.new - self.old:+.4f})"
        return f"{self.file} [{self.row}] {self.column}: {self.old} -> {self.new}{delta}"


def _row_labels(frame: pd.DataFrame) -> list[str]:
    labels = [c for c in frame.columns
              if not pd.api.types.is_numeric_dtype(frame[c]) or c in ("imbalance", "beta", "queue_size", "num_pos", "num_neg", "subsample_seed")]
    return [" ".join(f"{c}={row[c]}" for c in labels) for _, row in frame.iterrows()]


def _same(a, b, tolerance: float) -> bool:
    a_nan = isinstance(a, float) and math.isnan(a)
    b_nan = isinstance(b, float) and math.isnan(b)
    if a_nan or b_nan:
        return a_nan and b_nan
    # numbers.Real covers numpy's integer cells (an int column such as best_epoch), which int does not.
    if isinstance(a, numbers.Real) and isinstance(b, numbers.Real) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= tolerance
    return str(a) == str(b)


def diff_reports(old_dir: str | Path, new_dir: str | Path, tolerance: float,
                 skip_dirs: tuple[str, ...] = ()) -> list[str]:
    """Readable differences between the CSV tables of two report trees ([] when they agree).

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
        old_labels, new_labels = _row_labels(old), _row_labels(new)
        if old_labels != new_labels:
            problems.append(f"{name}: rows differ: {old_labels} vs {new_labels}")
            continue
        for i, label in enumerate(old_labels):
            for column in old.columns:
                a, b = old.at[i, column], new.at[i, column]
                if not _same(a, b, tolerance):
                    problems.append(str(CellDiff(str(name), label, column, a, b)))
    return problems
