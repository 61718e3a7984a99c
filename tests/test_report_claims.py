"""The claims table: per-seed differences and the verdict rule (report.claims)."""

import pandas as pd
import pytest

from rescom.report.claims import seed_differences, verdict


def _frame(values: dict[str, list[float]], **extra) -> pd.DataFrame:
    rows = [{"finished": True, "method": m, "seed": s, "last_test_all": v, **extra}
            for m, vs in values.items() for s, v in enumerate(vs)]
    return pd.DataFrame(rows)


@pytest.mark.parametrize("diffs, margin, expected", [
    # 95% t-interval mean +- t(0.975, n - 1) std / sqrt(n); t = 12.706 at 2 seeds, 4.303 at 3
    ([2.0, 2.5, 3.0], 0, "reproduced"),          # 2.5 +- 1.24: [+1.26, +3.74], above 0
    ([-2.0, -2.5, -3.0], 0, "not reproduced"),   # [-3.74, -1.26], below 0
    ([0.5, 4.0, 0.1], 0, "within noise"),        # 1.53 +- 5.33
    ([1.0, 2.0, 3.0], 0, "within noise"),        # 2 +- 2.48: every seed positive, the interval still holds 0
    ([2.17, 3.15], 0, "within noise"),           # the default profile's queue over FIFO: 2.66 +- 6.23
    ([-0.25, 0.0, 0.25], 0, "within noise"),     # [-0.62, +0.62] holds 0 ...
    ([-0.25, 0.0, 0.25], 1.0, "reproduced"),     # ... and lies above the margin's -1: "not worse by more than 1"
    ([-1.5, -1.0, -0.5], 1.0, "within noise"),   # [-2.24, +0.24] holds -1
    ([-3.0, -2.5, -2.0], 1.0, "not reproduced"),  # [-3.74, -1.26]: worse by more than the margin
    ([5.0], 0, "undetermined"),                  # one seed: no std, no interval
    ([], 0, "not run"),
])
def test_verdict_rule(diffs, margin, expected):
    assert verdict(pd.Series(diffs, dtype=float), margin) == expected


def test_seed_differences_pair_by_seed():
    frame = _frame({"bs": [80.0, 70.0, 75.0], "ce": [60.0, 65.0]})
    diffs = seed_differences(frame, "method", "bs", "ce")
    assert diffs.to_dict() == {0: 20.0, 1: 5.0}  # seed 2 has no ce run


def test_seed_differences_refuse_mixed_settings():
    frame = pd.concat([_frame({"bs": [80.0], "ce": [60.0]}, imbalance=100.0),
                       _frame({"bs": [90.0], "ce": [85.0]}, imbalance=10.0)])
    with pytest.raises(ValueError, match="where"):
        seed_differences(frame, "method", "bs", "ce", context=("dataset", "imbalance"))


def test_seed_differences_of_a_group_of_classes():
    frame = _frame({"rescom": [80.0, 70.0], "bs": [79.0, 71.0]}).assign(last_test_few=[60.0, 50.0, 52.0, 40.0])
    assert seed_differences(frame, "method", "rescom", "bs", metric="last_test_few").to_dict() == {0: 8.0, 1: 10.0}
