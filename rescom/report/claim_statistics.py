"""How sure a claim's paired comparison is: the t-interval its verdict reads, and the seeds it needs.

Per claim there are n per-seed differences d_1..d_n (better - worse, same seed), mean m, sample std
s (ddof 1). The verdict (claims.py) reads the 95% t-interval m +- t_{0.975, n-1} s / sqrt(n)
(Student t with n - 1 degrees of freedom: the differences are treated as independent normal draws;
with 2-3 seeds the interval is wide because t_{0.975, 1} = 12.7 and t_{0.975, 2} = 4.30). The
interval narrows as 1 / sqrt(n), so at the observed m and s the seeds a decision needs are the
smallest n >= 2 with t_{0.975, n-1} s / sqrt(n) < |m - threshold|. With one seed there is no s:
nothing is determined.
"""

from __future__ import annotations

import math

from scipy.stats import t as student_t

LEVEL = 0.95
MAX_SEEDS = 1000  # past this, "more than 1000": no profile trains that many


def t_quantile(dof: int) -> float:
    """The two-sided LEVEL quantile of Student's t with `dof` degrees of freedom (12.706 at dof 1)."""
    if dof < 1:
        raise ValueError(f"a t quantile needs at least 1 degree of freedom, got {dof}")
    return float(student_t.ppf(0.5 + LEVEL / 2, dof))


def mean_interval(mean: float, std: float, n: int) -> tuple[float, float] | None:
    """(low, high) of the t-interval on the mean of n differences; None below 2 seeds (no std)."""
    if n < 2 or math.isnan(std):
        return None
    half = t_quantile(n - 1) * std / math.sqrt(n)
    return mean - half, mean + half


def seeds_for_interval(mean: float, std: float) -> int | None:
    """The fewest seeds n >= 2 at which the t-interval at this mean and std excludes 0; None when
    none up to MAX_SEEDS does (a zero mean, or a gap far below the noise). For a threshold other
    than 0, pass the mean's distance from it."""
    if math.isnan(mean) or math.isnan(std):
        return None
    if std == 0:
        return 2 if mean != 0 else None
    for n in range(2, MAX_SEEDS + 1):
        if t_quantile(n - 1) * std / math.sqrt(n) < abs(mean):
            return n
    return None
