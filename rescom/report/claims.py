"""The paper's claims against a profile's runs: one paired comparison per claim, with a verdict.

A profile lists its claims in its claims file (section `claims`): which table, which column tells
the two rows apart, the row the paper says is better and the row it says is worse, and optionally the
group of classes (`group`: all, the default, or many / medium / few) and a `margin` in points. For
each claim the per-seed difference (better - worse, last epoch, same seed) gives a mean, a sample std
and the 95% Student-t interval of the mean (claim_statistics.py).

Verdict, a rule fixed before the runs were looked at, with threshold -margin (0 by default: "better";
a margin > 0 states "not worse by more than the margin"):
  reproduced       the interval lies wholly above the threshold
  not reproduced   the interval lies wholly below it
  within noise     the interval contains it
  undetermined     a single paired seed: no std, no interval
At 2 seeds t = 12.7 (a gap decides only beyond 9.0 std of its differences), at 3 seeds 4.30 (2.5
std); the page says so for its rows' seed counts, and gives the seeds that would decide each row.
CPU kinds, which move results as another seed would, disagree only at the interval's edge. Each row
also says whether the gap is smaller than the draw spread (draws.py; on All, so for All claims).
"""

from __future__ import annotations

import functools
import math
from pathlib import Path

import pandas as pd

from rescom.errors import UsageError
from rescom.pipeline.catalogue import Profile, training_tables
from rescom.report.claim_statistics import mean_interval, seeds_for_interval, t_quantile
from rescom.report.collect import table_frame
from rescom.report.draws import profile_draw_spread
from rescom.report.numbers import difference_label
from rescom.report.paired import matches
from rescom.report.tables import TABLES

FIELDS = ("claim", "table", "column", "better", "worse")
GROUPS = ("all", "many", "medium", "few")  # last_test_<group>: the shot groups of metrics.py


def seed_differences(frame: pd.DataFrame, column: str, better, worse, context: tuple[str, ...] = (),
                     metric: str = "last_test_all") -> pd.Series:
    """better - worse on each seed both have (indexed by seed), over finished runs of one setting.

    context: the table's other row keys (dataset, imbalance, queue size, ...); the two rows must share
    them, so a table spanning several settings needs the claim narrowed with `where`.
    """
    done = frame[frame["finished"]]
    if done.empty or metric not in done:  # nothing finished yet: the runs' rows carry only their axes
        return pd.Series(dtype=float)
    varying = [c for c in context if c in done and c != column and done[c].nunique(dropna=False) > 1]
    if varying:
        raise UsageError(f"the runs span several {', '.join(varying)}: narrow the claim with where: {{...}}")
    def pick(value) -> pd.Series:  # the row's metric by seed
        return done[matches(done[column], value)].set_index("seed")[metric]

    return (pick(better) - pick(worse)).dropna()


def verdict(differences: pd.Series, margin: float = 0.0) -> str:
    """The rule (module docstring) on per-seed differences in the paper's direction."""
    interval = mean_interval(float(differences.mean()), float(differences.std(ddof=1)), len(differences))
    if interval is None:
        return "undetermined" if len(differences) else "not run"
    if interval[0] > -margin:
        return "reproduced"
    return "not reproduced" if interval[1] < -margin else "within noise"


def claims_frame(profile: Profile) -> pd.DataFrame | None:
    """One row per claim of the profile's `claims` section; None when the profile lists none."""
    claims = profile.params.get("claims")
    if not claims:
        return None
    rows, spread = [], profile_draw_spread(profile)
    frames = functools.cache(functools.partial(table_frame, profile))  # each table collected once
    for claim in claims:
        missing = [f for f in FIELDS if f not in claim]
        if missing:
            raise UsageError(f"{profile.path}: claims entry {claim} lacks {', '.join(missing)}")
        if claim["table"] not in training_tables(profile):
            raise UsageError(f"{profile.path}: claims entry {claim['claim']!r} names table {claim['table']!r}, "
                             f"which the profile does not run")
        group, margin = claim.get("group", "all"), float(claim.get("margin", 0))
        if group not in GROUPS or margin < 0:
            raise UsageError(f"{profile.path}: claims entry {claim['claim']!r}: group must be one of "
                             f"{', '.join(GROUPS)} and margin >= 0, got {group!r} and {margin}")
        frame = frames(claim["table"])
        for column, value in (claim.get("where") or {}).items():  # narrows the table to one setting
            frame = frame[matches(frame[column], value)]
        baseline = TABLES[claim["table"]].baseline  # the two rows share the columns its baseline pairs on
        try:
            diffs = seed_differences(frame, claim["column"], claim["better"], claim["worse"],
                                     baseline.context if baseline else (), metric=f"last_test_{group}")
        except UsageError as err:
            raise UsageError(f"{profile.path}: claims entry {claim['claim']!r}: {err}") from None
        rows.append({**{f: claim[f] for f in FIELDS}, "group": group, "margin": margin,
                     "paper": claim.get("paper", ""), "seeds": ",".join(str(int(s)) for s in diffs.index),
                     "per_seed": " / ".join(f"{d:+.2f}" for d in diffs),
                     **_strength(diffs, spread if group == "all" else None, margin),
                     "verdict": verdict(diffs, margin)})
    return pd.DataFrame(rows)


def _strength(diffs: pd.Series, spread: float | None, margin: float) -> dict:
    """Mean, std, 95% t-interval, seeds the interval needs to clear -margin, and the draw-spread check."""
    n = len(diffs)
    # pandas gives NaN for the mean of no value and the ddof=1 std of fewer than two: no guard needed
    mean, std = float(diffs.mean()), float(diffs.std(ddof=1))
    low, high = mean_interval(mean, std, n) or (math.nan, math.nan)
    seeds = seeds_for_interval(mean + margin, std)
    return {"mean": mean, "std": std, "ci95_low": low, "ci95_high": high,
            "seeds_for_interval": math.nan if seeds is None else seeds,
            "draw_spread": math.nan if spread is None else spread,
            "below_draw_spread": bool(spread is not None and n and abs(mean) < spread)}


def render_claims(profile: Profile, out_dir: Path) -> pd.DataFrame | None:
    """Write tables/claims.{csv,md}; None when the profile lists no claims."""
    frame = claims_frame(profile)
    if frame is None:
        return None
    frame.to_csv(out_dir / "claims.csv", index=False, float_format="%.4f")
    lines = [f"# The paper's claims at this scale (profile **{profile.name}**)", "",
             "- each row: last-epoch top-1 (%) of the row the paper says is better minus the other, seed by seed "
             "(same seed = same subsample, initialisation and augmentation draws), on All or on one group of "
             "classes (Many > 100 training images, Medium 20-100, Few < 20)",
             "- verdict, by the 95% interval of the paired mean: *reproduced* when it lies wholly above the claim's "
             "threshold, *not reproduced* when wholly below, *within noise* when it contains the threshold; one seed: "
             "*undetermined* (no interval). The threshold is 0 (\"better\"), or -margin for \"not worse by more "
             "than the margin\" (the margin fixed in the claims file before the runs were looked at)",
             "- 95% interval: mean ± t(0.975, n - 1) · std / √n over the n paired seeds (Student t)"
             + _quantile_note(frame),
             "- seeds needed: the fewest seeds at which the 95% interval would clear the threshold at the observed "
             "mean and std",
             f"- draw spread: {_spread_line(frame)}", "",
             "| claim | paper | comparison | per seed | mean ± std | 95% interval | holds when | seeds needed "
             "| vs draw spread | verdict |", "|---|---|---|---|---|---|---|---|---|---|"]
    note = (profile.params.get("report") or {}).get("note")
    if note:
        lines[2:2] = [f"- **data: {note}**; the paper's numbers are for its own runs on the official data"]
    for _, row in frame.iterrows():
        group = "" if row["group"] == "all" else f", {row['group'].capitalize()}"
        holds = f"> {-row['margin']:+.2f} (margin {row['margin']:.2f})" if row["margin"] else "> 0"
        lines.append(f"| {row['claim']} | {row['paper']} | {row['table']}: "
                     f"{difference_label(row['better'], row['worse'])}{group} | "
                     f"{row['per_seed'] or 'n/a'} (seeds {row['seeds'] or '-'}) | {_mean_cell(row)} | "
                     f"{_interval_cell(row)} | interval {holds} | {_seeds_cell(row)} | {_spread_cell(row)} "
                     f"| **{row['verdict']}** |")
    (out_dir / "claims.md").write_text("\n".join(lines) + "\n")
    return frame


def _quantile_note(frame: pd.DataFrame) -> str:
    """What the rows' seed counts decide: t(0.975, n - 1) and the distance from the threshold, in stds
    of the per-seed differences, beyond which the interval excludes it."""
    counts = sorted({len(seeds.split(",")) for seeds in frame["seeds"] if seeds} - {1})
    notes = [f"at {n} seeds t = {t_quantile(n - 1):.2f}, so a row decides only when its mean lies more than "
             f"{t_quantile(n - 1) / math.sqrt(n):.2f} std from the threshold" for n in counts]
    return "; " + "; ".join(notes) if notes else ""


def _mean_cell(row: pd.Series) -> str:
    if math.isnan(row["mean"]):
        return "n/a"
    return f"{row['mean']:+.2f}" + ("" if math.isnan(row["std"]) else f" ± {row['std']:.2f}")


def _interval_cell(row: pd.Series) -> str:
    if math.isnan(row["ci95_low"]):
        return "undetermined" if not math.isnan(row["mean"]) else "n/a"
    return f"[{row['ci95_low']:+.2f}, {row['ci95_high']:+.2f}]"


def _seeds_cell(row: pd.Series) -> str:
    if math.isnan(row["std"]):
        return "undetermined" if not math.isnan(row["mean"]) else "n/a"
    return "over 1000" if math.isnan(row["seeds_for_interval"]) else str(int(row["seeds_for_interval"]))


def _spread_cell(row: pd.Series) -> str:
    if math.isnan(row["draw_spread"]) or math.isnan(row["mean"]):
        return ""
    return "**gap smaller than the draw spread**" if row["below_draw_spread"] else "gap beyond the draw spread"


def _spread_line(frame: pd.DataFrame) -> str:
    spreads = frame["draw_spread"].dropna()
    if spreads.empty:
        return ("not measured for this profile (no `draws` table, or fewer than 2 draws trained): every seed "
                "here trains on one draw of the subset, so no row says how another draw would move it")
    return (f"{spreads.iloc[0]:.2f} points, the largest std over draws of one method's All (tables/draws.md); "
            "a gap smaller than it could change with the choice of images of the same counts, which no "
            "training seed varies (measured on All: group claims are not compared with it)")
