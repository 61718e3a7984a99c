"""The claims table's interval and seeds-needed numbers (report.claim_statistics) against computations
that do not use scipy: closed forms of Student's t quantile, a numerical integral of its density, and
a printed t table."""

import functools
import math

import pytest

from rescom.report.claim_statistics import mean_interval, seeds_for_interval, t_quantile

P = 0.975  # two-sided 95%


def _t_cdf(x: float, dof: int, steps: int = 2000) -> float:
    """P(T <= x) for x >= 0: 1/2 plus Simpson's rule on the density from 0 to x."""
    log_norm = math.lgamma((dof + 1) / 2) - math.lgamma(dof / 2) - 0.5 * math.log(dof * math.pi)

    def density(u):
        return math.exp(log_norm - (dof + 1) / 2 * math.log1p(u * u / dof))

    h = x / steps
    total = density(0) + density(x) + sum((4 if i % 2 else 2) * density(i * h) for i in range(1, steps))
    return 0.5 + total * h / 3


@functools.cache
def _t_quantile_by_bisection(dof: int, p: float = P) -> float:
    low, high = 0.0, 20.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if _t_cdf(mid, dof) < p else (low, mid)
    return (low + high) / 2


def test_t_quantile_closed_forms():
    assert t_quantile(1) == pytest.approx(math.tan(math.pi * (P - 0.5)), rel=1e-12)  # Cauchy
    assert t_quantile(2) == pytest.approx((2 * P - 1) / math.sqrt(2 * P * (1 - P)), rel=1e-12)
    alpha = 4 * P * (1 - P)  # dof 4: 2 sqrt(q - 1), q = cos(arccos(sqrt(alpha)) / 3) / sqrt(alpha)
    q = math.cos(math.acos(math.sqrt(alpha)) / 3) / math.sqrt(alpha)
    assert t_quantile(4) == pytest.approx(2 * math.sqrt(q - 1), rel=1e-12)


@pytest.mark.parametrize("dof", [3, 5, 7, 10, 15, 20, 30])
def test_t_quantile_against_integrated_density(dof):
    assert t_quantile(dof) == pytest.approx(_t_quantile_by_bisection(dof), abs=1e-7)


def test_t_quantile_refuses_zero_dof():
    with pytest.raises(ValueError, match="degree"):
        t_quantile(0)


def test_mean_interval_by_hand():
    # differences 1, 2, 3: mean 2, std 1, half-width t(0.975, 2) / sqrt(3) = 4.302653 / 1.732051
    low, high = mean_interval(2.0, 1.0, 3)
    assert (low, high) == pytest.approx((2 - 2.484138, 2 + 2.484138), abs=1e-6)


def test_one_seed_has_no_interval():
    assert mean_interval(5.0, math.nan, 1) is None
    assert seeds_for_interval(5.0, math.nan) is None


# Printed two-sided 95% t table (dof: quantile), used for the seeds-needed search by hand.
PRINTED = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
           10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 19: 2.093, 29: 2.045}


def test_printed_table_agrees():
    for dof, value in PRINTED.items():
        assert t_quantile(dof) == pytest.approx(value, abs=5e-4)


@pytest.mark.parametrize("mean, std, expected", [
    (1.70, 0.86, 4),    # half-width t/sqrt(n) * std: 4.303/1.732*0.86 = 2.14 at 3, 3.182/2*0.86 = 1.37 at 4
    (1.26, 1.51, 9),    # 2.365/2.828*1.51 = 1.263 at 8 (just over 1.26), 2.306/3*1.51 = 1.161 at 9
    (2.5, 0.5, 3),      # 12.706/1.414*0.5 = 4.49 at 2, 4.303/1.732*0.5 = 1.24 at 3
    (-0.5, 1.0, 18),    # the sign does not matter: 2.120/4.123 = 0.514 at 17, 2.110/4.243 = 0.497 at 18
])
def test_seeds_for_interval(mean, std, expected):
    brute = next(n for n in range(2, 100) if _t_quantile_by_bisection(n - 1) * std / math.sqrt(n) < abs(mean))
    assert brute == expected
    assert seeds_for_interval(mean, std) == expected


def test_seeds_for_interval_edges():
    assert seeds_for_interval(0.0, 1.0) is None        # no gap: no number of seeds
    assert seeds_for_interval(0.01, 10.0) is None      # past 1000 seeds
    assert seeds_for_interval(1.0, 0.0) == 2           # no noise at all
