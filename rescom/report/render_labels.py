"""Short row labels of a report table: only the key columns whose value changes between rows."""

from __future__ import annotations

import math

import pandas as pd


def key_text(key: str, value, nan: str = "all") -> str:
    """A key column's value as a row label: NaN as `nan` (a mining count of None: every key of that kind),
    an integral float as an int."""
    if isinstance(value, float) and math.isnan(value):
        return nan
    if isinstance(value, float) and value.is_integer() and key != "beta":  # beta 0.0 stays as written
        return str(int(value))
    return str(value)


def row_labels(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """'bs', 'rescom' for main on one dataset and IF; 'cifar10-lt rescom 100' when both vary."""
    varying = [k for k in keys if k in frame and frame[k].astype(str).nunique() > 1] or keys[:1]
    return [" ".join(key_text(k, row[k]) for k in varying) for _, row in frame.iterrows()]
