"""Paired differences to a baseline row, seed by seed.

Seeds move every method together (same subsample, same initialisation stream, same augmentation
draws), so the difference of two methods on one seed is far less noisy than either number alone.
For each row of a table: the mean and sample std over seeds of (row's last-epoch All - baseline's
last-epoch All on the same seed), and how many seeds were paired. A gap whose mean is within about
two of its stds is within noise; one that rests on one seed is undetermined (no std to judge by).
"""

from __future__ import annotations

import pandas as pd

from rescom.report.numbers import signed
from rescom.report.tables import TABLES

METRICS = ("all", "few")


def matches(values: pd.Series, value) -> pd.Series:
    """values == value, numerically where both are numbers (100 == 100.0, 0.99 == '0.99')."""
    try:
        return pd.to_numeric(values, errors="coerce") == float(value)
    except (TypeError, ValueError):
        return values.astype(str) == str(value)


def baseline_label(table: str) -> str | None:
    """'bs' for the main table, 'grid=all' for spm, ...; None for a table without a baseline."""
    baseline = TABLES[table].baseline
    return None if baseline is None else baseline.label


def paired_differences(frame: pd.DataFrame, table: str, keys: list[str]) -> pd.DataFrame | None:
    """Per row (keys): paired_<metric>_mean / _std over seeds and paired_n; None without a baseline.

    frame: one row per finished or unfinished run (report.collect.table_frame), with `seed` and
    last_test_<metric> columns. Rows of the baseline itself get differences of 0.
    """
    baseline = TABLES[table].baseline
    if baseline is None:
        return None
    column, value, context = baseline.column, baseline.value, list(baseline.context)
    done = frame[frame["finished"]] if "finished" in frame else frame
    if done.empty or column not in done:
        return None
    values = [f"last_test_{m}" for m in METRICS]
    base = done[matches(done[column], value)][[*context, "seed", *values]]
    if base.empty:
        return None
    merged = done.merge(base, on=[*context, "seed"], suffixes=("", "_baseline"))
    for m in METRICS:
        merged[f"paired_{m}"] = merged[f"last_test_{m}"] - merged[f"last_test_{m}_baseline"]
    grouped = merged.groupby(keys, sort=False, dropna=False)
    out = pd.concat([grouped[[f"paired_{m}" for m in METRICS]].mean().add_suffix("_mean"),
                     grouped[[f"paired_{m}" for m in METRICS]].std(ddof=1).add_suffix("_std")], axis=1)
    out["paired_n"] = grouped.size()
    out = out.reset_index()
    out["paired_is_baseline"] = matches(out[column], value)
    return out


def paired_cell(row: pd.Series, metric: str = "all") -> str:
    """'+1.23 ± 0.40 (3)' -- or '(baseline)' / '' when there is nothing to show."""
    n, mean, std = row.get("paired_n"), row.get(f"paired_{metric}_mean"), row.get(f"paired_{metric}_std")
    if pd.isna(n) or pd.isna(mean):  # pd.isna(None) is True too
        return ""
    flag = row.get("paired_is_baseline")  # numpy bool, or NaN after a left merge
    if not pd.isna(flag) and bool(flag):
        return "(baseline)"
    return f"{signed(mean)}{'' if pd.isna(std) else f' ± {std:.2f}'} ({int(n)})"
