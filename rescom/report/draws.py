"""How much the draw of the long-tailed subset moves results: the `draws` table.

The training seed moves initialisation and augmentation but every seed of a profile trains on one
draw of the subset (the `seed` of its `datasets` entry). The `draws` table trains the same methods,
one training seed, on other draws of the same class counts (data seeds 1, 2, ...); draw 0 is the
main table's run, reused. Per method: last-epoch All and Few on each draw, their mean and sample
std over draws; per method other than the baseline: its gap to the baseline draw by draw.

The draw spread is the largest, over the methods, of the std over draws of last-epoch All: how far
one method's number moves when other images of the same counts are drawn. A claim whose gap is
smaller than it rests on this draw (claims.py says so beside the verdict).
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from rescom.pipeline.catalogue import Profile
from rescom.report.collect import table_frame
from rescom.report.numbers import difference_label

BASELINE = "bs"  # the draws table's gaps are to Balanced Softmax, as the main table's


def draw_values(frame: pd.DataFrame) -> pd.DataFrame:
    """method x draw (subsample_seed) -> last-epoch All and Few, over finished runs (mean over
    training seeds where a draw has several, so a draw counts once)."""
    done = frame[frame["finished"]] if "finished" in frame else frame
    if done.empty:
        return pd.DataFrame(columns=["method", "subsample_seed", "last_test_all", "last_test_few"])
    grouped = done.groupby(["method", "subsample_seed"], sort=True)
    return grouped[["last_test_all", "last_test_few"]].mean().reset_index()


def draw_spread(values: pd.DataFrame) -> float | None:
    """The largest std over draws of one method's last-epoch All; None without 2 draws of a method."""
    stds = values.groupby("method")["last_test_all"].std(ddof=1).dropna()
    return float(stds.max()) if len(stds) else None


def draw_gaps(values: pd.DataFrame, baseline: str = BASELINE) -> pd.DataFrame:
    """Per method other than the baseline and per draw both have: method's All - baseline's All."""
    wide = values.pivot(index="subsample_seed", columns="method", values="last_test_all")
    if baseline not in wide:
        return pd.DataFrame(columns=["method", "subsample_seed", "gap_all"])
    gaps = wide.drop(columns=[baseline]).sub(wide[baseline], axis=0)
    long = gaps.reset_index().melt(id_vars="subsample_seed", var_name="method", value_name="gap_all")
    return long.dropna()[["method", "subsample_seed", "gap_all"]]


def profile_draw_spread(profile: Profile) -> float | None:
    """The profile's draw spread (None when it has no draws table or too few draws trained)."""
    if "draws" not in profile.params:
        return None
    return draw_spread(draw_values(table_frame(profile, "draws")))


def _over_draws(series: pd.Series, spec: str = ".2f") -> str:
    """Mean ± sample std of the values present ('n/a' for none, the mean alone for one)."""
    if series.empty:
        return "n/a"
    mean = f"{series.mean():{spec}}"
    return mean if len(series) < 2 else f"{mean} ± {series.std(ddof=1):.2f}"


def _per_draw(series: pd.Series, spec: str = ".2f") -> str:
    """'71.20 / n/a / 70.85': one value per draw, in the draws' order."""
    return " / ".join("n/a" if math.isnan(v) else f"{v:{spec}}" for v in series)


def draws_markdown(profile: Profile, frame: pd.DataFrame, values: pd.DataFrame) -> str:
    done = frame[frame["finished"]]
    seeds = sorted({int(s) for s in done["seed"]})
    draws = sorted({int(s) for s in values["subsample_seed"]})
    missing = frame[~frame["finished"]]["run"].tolist()
    spread = draw_spread(values)
    lines = ["# Draw of the long-tailed subset: the same methods on other draws of the same class counts", "",
             f"- profile: **{profile.name}**; draws (data seeds): {draws}; training seed(s): {seeds}; "
             "draw 0 is the main table's run, reused",
             "- every training seed of a profile trains on one draw; this table shows what choosing other images "
             "of the same counts does: last-epoch top-1 (%), mean ± sample std over draws",
             f"- draw spread (the largest std over draws of one method's All): "
             f"{'n/a (fewer than 2 draws)' if spread is None else f'{spread:.2f}'}; the claims table marks a "
             "claim whose gap is smaller", ""]
    head = " / ".join(str(d) for d in draws)
    lines += [f"| method | All per draw ({head}) | All over draws | range | Few per draw ({head}) | Few over draws |",
              "|---|---|---|---|---|---|"]
    for method, group in values.groupby("method", sort=False):
        group = group.set_index("subsample_seed").reindex(draws)
        alls = group["last_test_all"].dropna()
        lines.append(f"| {method} | {_per_draw(group['last_test_all'])} | {_over_draws(alls)} | "
                     f"{alls.max() - alls.min():.2f} | {_per_draw(group['last_test_few'])} | "
                     f"{_over_draws(group['last_test_few'].dropna())} |")
    gaps = draw_gaps(values)
    if not gaps.empty:
        lines += ["", f"| gap to {BASELINE} (All) | per draw ({head}) | over draws |", "|---|---|---|"]
        for method, group in gaps.groupby("method", sort=False):
            group = group.set_index("subsample_seed").reindex(draws)["gap_all"]
            lines.append(f"| {difference_label(method, BASELINE)} | {_per_draw(group, '+.2f')} | "
                         f"{_over_draws(group.dropna(), '+.2f')} |")
    if missing:
        lines.append(f"\n- **not yet trained**: {', '.join(missing)}")
    return "\n".join(lines) + "\n"


def render_draws(profile: Profile, out_dir: Path) -> pd.DataFrame | None:
    """Write tables/draws.{md,csv}; the per-method-per-draw frame, or None with nothing finished."""
    frame = table_frame(profile, "draws")
    if frame.empty or not frame["finished"].any():
        return None
    values = draw_values(frame)
    values.merge(draw_gaps(values), on=["method", "subsample_seed"], how="left").to_csv(
        out_dir / "draws.csv", index=False, float_format="%.4f")
    (out_dir / "draws.md").write_text(draws_markdown(profile, frame, values))
    return values
