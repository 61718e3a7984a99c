"""The paper's claims against a profile's runs: one paired comparison per claim, with a verdict.

A profile lists its claims in its params file (section `claims`): which table, which column tells
the two rows apart, the row the paper says is better and the row it says is worse. For each claim
the per-seed difference (better - worse, last-epoch All, same seed) gives a mean and a sample std.

Verdict, a rule fixed before any number was looked at (README):
  reproduced       every seed's difference has the paper's sign and the mean exceeds twice the std
  not reproduced   every seed's difference has the opposite sign and |mean| exceeds twice the std
  within noise     anything else, with 2 or more paired seeds
  undetermined     a single paired seed: without a std the rule cannot tell signal from noise
With 2-3 seeds this is a screen, not a significance test: it says which gaps stand clear of the
seed-to-seed spread at this scale, nothing about the paper's scale. Beside the verdict each row
gives how far it is from a decision (claim_statistics.py: the 95% t-interval on the mean, the seeds
needed at the observed noise) and whether the gap is smaller than the draw spread (draws.py).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rescom.pipeline.catalogue import Profile
from rescom.report.claim_statistics import mean_interval, seeds_for_interval, seeds_to_clear_rule
from rescom.report.collect import table_frame
from rescom.report.draws import profile_draw_spread
from rescom.report.numbers import difference_label
from rescom.report.paired import BASELINES, matches  # BASELINES: each table's context columns

FIELDS = ("claim", "table", "column", "better", "worse")


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
        raise ValueError(f"the runs span several {', '.join(varying)}: narrow the claim with where: {{...}}")
    pick = lambda value: done[matches(done[column], value)].set_index("seed")[metric]  # noqa: E731
    return (pick(better) - pick(worse)).dropna()


def _where(frame: pd.DataFrame, where: dict) -> pd.DataFrame:
    for column, value in where.items():
        frame = frame[matches(frame[column], value)]
    return frame


def verdict(differences: pd.Series) -> str:
    """The README's rule (module docstring) on per-seed differences in the paper's direction."""
    if len(differences) < 2:
        return "undetermined" if len(differences) else "not run"
    mean, std = float(differences.mean()), float(differences.std(ddof=1))
    if (differences > 0).all() and mean > 2 * std:
        return "reproduced"
    if (differences < 0).all() and -mean > 2 * std:
        return "not reproduced"
    return "within noise"


def _frame(profile: Profile, table: str, cache: dict) -> pd.DataFrame:
    if table not in cache:
        cache[table] = table_frame(profile, table)
    return cache[table]


def claims_frame(profile: Profile) -> pd.DataFrame | None:
    """One row per claim of the profile's `claims` section; None when the profile lists none."""
    claims = profile.params.get("claims")
    if not claims:
        return None
    rows, cache, spread = [], {}, profile_draw_spread(profile)
    for claim in claims:
        missing = [f for f in FIELDS if f not in claim]
        if missing:
            raise ValueError(f"{profile.path}: claims entry {claim} lacks {', '.join(missing)}")
        if claim["table"] not in profile.tables():
            raise ValueError(f"{profile.path}: claims entry {claim['claim']!r} names table {claim['table']!r}, "
                             f"which the profile does not run")
        frame = _where(_frame(profile, claim["table"], cache), claim.get("where") or {})
        try:
            diffs = seed_differences(frame, claim["column"], claim["better"], claim["worse"],
                                     tuple(BASELINES[claim["table"]][2]) if claim["table"] in BASELINES else ())
        except ValueError as err:
            raise ValueError(f"{profile.path}: claims entry {claim['claim']!r}: {err}") from None
        rows.append({**{f: claim[f] for f in FIELDS}, "paper": claim.get("paper", ""),
                     "seeds": ",".join(str(int(s)) for s in diffs.index),
                     "per_seed": " / ".join(f"{d:+.2f}" for d in diffs), **_strength(diffs, spread),
                     "verdict": verdict(diffs)})
    return pd.DataFrame(rows)


def _strength(diffs: pd.Series, spread: float | None) -> dict:
    """Mean, std, 95% t-interval, seeds needed (rule / interval) and the draw-spread check of one claim."""
    n = len(diffs)
    # pandas gives NaN for the mean of no value and the ddof=1 std of fewer than two: no guard needed
    mean, std = float(diffs.mean()), float(diffs.std(ddof=1))
    low, high = mean_interval(mean, std, n) or (math.nan, math.nan)
    rule, interval = seeds_to_clear_rule(mean, std), seeds_for_interval(mean, std)
    return {"mean": mean, "std": std, "ci95_low": low, "ci95_high": high,
            "seeds_to_clear_rule": math.nan if rule is None else rule,
            "seeds_for_interval": math.nan if interval is None else interval,
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
             "(same seed = same subsample, initialisation and augmentation draws)",
             "- reproduced: every seed has the paper's sign and the mean exceeds twice the std; not reproduced: "
             "every seed has the opposite sign, beyond twice the std; otherwise within noise; one seed: undetermined "
             "(no std to judge it by)",
             "- 95% interval: mean ± t(0.975, n - 1) · std / √n over the n paired seeds (Student t)",
             "- seeds needed at the observed mean and std: *rule* — the rule compares the mean with twice the std of "
             "one seed's difference, which more seeds do not shrink, so it is cleared at 2 seeds or at none "
             "(\"never\"); *interval* — the fewest seeds at which the 95% interval would exclude 0",
             f"- draw spread: {_spread_line(frame)}", "",
             "| claim | paper | comparison | per seed | mean ± std | 95% interval | seeds needed (rule · interval) "
             "| vs draw spread | verdict |", "|---|---|---|---|---|---|---|---|---|"]
    note = (profile.params.get("report") or {}).get("note")
    if note:
        lines[2:2] = [f"- **data: {note}**; the paper's numbers are for its own runs on the official data"]
    for _, row in frame.iterrows():
        lines.append(f"| {row['claim']} | {row['paper']} | {row['table']}: {difference_label(row['better'], row['worse'])} | "
                     f"{row['per_seed'] or 'n/a'} (seeds {row['seeds'] or '-'}) | {_mean_cell(row)} | "
                     f"{_interval_cell(row)} | {_seeds_cell(row)} | {_spread_cell(row)} | **{row['verdict']}** |")
    (out_dir / "claims.md").write_text("\n".join(lines) + "\n")
    return frame


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
    rule = "never" if math.isnan(row["seeds_to_clear_rule"]) else str(int(row["seeds_to_clear_rule"]))
    interval = "over 1000" if math.isnan(row["seeds_for_interval"]) else str(int(row["seeds_for_interval"]))
    return f"{rule} · {interval}"


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
            "training seed varies")
