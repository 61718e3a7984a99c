"""How sure a claim's paired comparison is: a t-interval on its mean and the seeds a decision needs.

Per claim there are n per-seed differences d_1..d_n (better - worse, same seed), mean m, sample std
s (ddof 1). Two numbers say how far the claim is from a decision:

- the 95% t-interval m +- t_{0.975, n-1} s / sqrt(n) (Student t with n - 1 degrees of freedom:
  the differences are treated as independent normal draws; with 2-3 seeds the interval is wide
  because t_{0.975, 1} = 12.7 and t_{0.975, 2} = 4.30);
- the seeds needed at the observed noise: the verdict rule (claims.py) compares m with 2 s, the
  spread of one seed's difference, which more seeds estimate better but do not shrink, so at the
  observed m and s the rule is cleared at any n >= 2 when |m| > 2 s and at no n otherwise; the
  interval narrows as 1 / sqrt(n), so the seeds at which it would exclude 0 are the smallest n >= 2
  with t_{0.975, n-1} s / sqrt(n) < |m|.
With one seed there is no s: nothing is determined.
"""

from __future__ import annotations

import math

from scipy.stats import t as student_t

LEVEL = 0.95
MAX_SEEDS = 1000  # past this, "more than 1000": no profile trains that many


def t_quantile(dof: int, level: float = LEVEL) -> float:
    """The two-sided `level` quantile of Student's t with `dof` degrees of freedom (12.706 at dof 1)."""
    if dof < 1:
        raise ValueError(f"a t quantile needs at least 1 degree of freedom, got {dof}")
    return float(student_t.ppf(0.5 + level / 2, dof))


def mean_interval(mean: float, std: float, n: int, level: float = LEVEL) -> tuple[float, float] | None:
    """(low, high) of the t-interval on the mean of n differences; None below 2 seeds (no std)."""
    if n < 2 or math.isnan(std):
        return None
    half = t_quantile(n - 1, level) * std / math.sqrt(n)
    return mean - half, mean + half


def seeds_to_clear_rule(mean: float, std: float) -> int | None:
    """The fewest seeds at which the verdict rule's |mean| > 2 std holds at this mean and std: 2 (the
    fewest the rule decides on) when it holds, None when no number of seeds makes it hold.

    The rule's other half (every seed of one sign) follows from this one up to 5 seeds: no seed lies
    more than (n - 1) / sqrt(n) stds from the mean (1.79 at n = 5), so none crosses 0 while
    |mean| > 2 std; from 6 seeds on it is not predicted.
    """
    if math.isnan(mean) or math.isnan(std):
        return None
    return 2 if abs(mean) > 2 * std else None


def seeds_for_interval(mean: float, std: float, level: float = LEVEL) -> int | None:
    """The fewest seeds n >= 2 at which the t-interval at this mean and std excludes 0; None when
    none up to MAX_SEEDS does (a zero mean, or a gap far below the noise)."""
    if math.isnan(mean) or math.isnan(std):
        return None
    if std == 0:
        return 2 if mean != 0 else None
    for n in range(2, MAX_SEEDS + 1):
        if t_quantile(n - 1, level) * std / math.sqrt(n) < abs(mean):
            return n
    return None
