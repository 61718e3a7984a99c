"""The claims table: per-seed differences and the verdict rule (report.claims)."""

import pandas as pd
import pytest

from rescom.report.claims import seed_differences, verdict


def _frame(values: dict[str, list[float]], **extra) -> pd.DataFrame:
    rows = [{"finished": True, "method": m, "seed": s, "last_test_all": v, **extra}
            for m, vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("diffs, expected", [
    ([2.0, 2.5, 3.0], "reproduced"),          # same sign, mean 2.5 > 2 x std 0.5
    ([-2.0, -2.5, -3.0], "not reproduced"),   # opposite sign, beyond twice the std
    ([0.5, 4.0, 0.1], "within noise"),        # right sign, but mean 1.53 < 2 x std 2.14
    ([1.0, -1.0, 2.0], "within noise"),       # signs disagree
    ([5.0], "undetermined"),                  # one seed: no std to judge it by
    ([], "not run"),
])
def test_verdict_rule(diffs, expected):
    assert verdict(pd.Series(diffs, dtype=float)) == expected


def test_seed_differences_pair_by_seed():
    frame = _frame({"bs": [80.0, 70.0, 75.0], "ce": [60.0, 65.0]})
    diffs = seed_differences(frame, "method", "bs", "ce")
    assert diffs.to_dict() == {0: 20.0, 1: 5.0}  # seed 2 has no ce run


def test_seed_differences_refuse_mixed_settings():
    frame = pd.concat([_frame({"bs": [80.0], "ce": [60.0]}, imbalance=100.0),
                       _frame({"bs": [90.0], "ce": [85.0]}, imbalance=10.0)])
    with pytest.raises(ValueError, match="where"):
        seed_differences(frame, "method", "bs", "ce", context=("dataset", "imbalance"))
