"""Paired differences to the baseline row, seed by seed (report.paired)."""

import math

import pandas as pd

from rescom.report.paired import paired_cell, paired_differences


def _frame(rows):
    return pd.DataFrame([{"finished": True, "dataset": "d", "imbalance": 100.0, "last_test_few": 0.0, **r} for r in rows])


def test_paired_difference_pairs_by_seed_and_ignores_unpaired_seeds():
    frame = _frame([
        {"method": "bs", "seed": 0, "last_test_all": 80.0}, {"method": "bs", "seed": 1, "last_test_all": 70.0},
        {"method": "rescom", "seed": 0, "last_test_all": 81.0}, {"method": "rescom", "seed": 1, "last_test_all": 73.0},
        {"method": "rescom", "seed": 2, "last_test_all": 10.0},  # bs has no seed 2: not paired
    ])
    out = paired_differences(frame, "main", ["dataset", "method", "imbalance"]).set_index("method")
    assert out.loc["rescom", "paired_all_mean"] == 2.0 and out.loc["rescom", "paired_n"] == 2
    assert math.isclose(out.loc["rescom", "paired_all_std"], math.sqrt(2.0))  # diffs 1 and 3
    assert out.loc["bs", "paired_is_baseline"] and not out.loc["rescom", "paired_is_baseline"]
    assert paired_cell(out.loc["rescom"]) == "+2.00 ± 1.41 (2)"
    assert paired_cell(out.loc["bs"]) == "(baseline)"


def test_no_baseline_row_or_table_gives_none():
    frame = _frame([{"method": "rescom", "seed": 0, "last_test_all": 81.0}])
    assert paired_differences(frame, "main", ["dataset", "method", "imbalance"]) is None
    assert paired_differences(frame, "entirety", ["method"]) is None
