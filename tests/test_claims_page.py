"""The claims page as a reader gets it: tables/claims.md and claims.csv written by render_claims from
a profile's claims and its runs' table frames, compared line by line with a page written out by hand
(tests/golden/claims_page.md).

The runs are given as the table frames `rescom report` collects (table_frame is replaced by a lookup
of frames built here, draw spread by a constant), so the test runs in milliseconds and mutation
testing (scripts/mutation-check.sh) can afford it per mutant. Every number on the expected page was
worked out by hand from the per-seed values below: means and sample stds, the 95% t-intervals with
t(0.975, 1) = 12.7062 and t(0.975, 2) = 4.3027, and the seeds at which the interval would clear the
threshold (for a mean of 0.5 and a std of 1: t(0.975, 16) / sqrt(17) = 0.514, t(0.975, 17) / sqrt(18)
= 0.497, so 18; for Many, mean 0 and std 0.25 against -1: 12.7062 / sqrt(2) * 0.25 = 2.25 at 2 seeds,
4.3027 / sqrt(3) * 0.25 = 0.62 at 3, so 3).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from rescom.pipeline.catalogue import Profile
from rescom.report import claims

SPREAD = 1.5


def _rows(table_column: str, values: dict, finished: bool = True, **context) -> list[dict]:
    return [{"finished": finished, table_column: key, "seed": seed, "last_test_all": value, **context}
            for key, per_seed in values.items() for seed, value in enumerate(per_seed)]


MAIN = pd.DataFrame(
    _rows("method", {"ce": [70.0, 71.0, 72.0], "bs": [73.0, 75.0, 77.0], "rescom": [70.0, 71.0, 72.0],
                     "moco_bs": [74.25]}, dataset="fmnist", imbalance=100)
    + _rows("method", {"supcon_bs": [76.0, 76.0]}, finished=False, dataset="fmnist", imbalance=100)
    + _rows("method", {"bs": [60.0, 61.0, 62.0], "rescom": [60.5, 62.5, 61.5]}, dataset="fmnist", imbalance=10))
# Many and Few of BS and ResCom at IF 100 (no other run's groups are read): Few +10 / +9 / +11, Many
# -0.25 / 0 / +0.25, whose interval [-0.62, +0.62] contains 0 but lies above the margin's -1.
for _method, _column, _values in (("bs", "last_test_many", [85.0] * 3), ("rescom", "last_test_many", [84.75, 85.0, 85.25]),
                                  ("bs", "last_test_few", [60.0, 62.0, 64.0]), ("rescom", "last_test_few", [70.0, 71.0, 75.0])):
    MAIN.loc[(MAIN["method"] == _method) & (MAIN["imbalance"] == 100), _column] = _values
BETA = pd.DataFrame(_rows("beta", {0.999: [80.0, 82.2], 0.0: [78.0, 80.0]}))

CLAIMS = [
    {"claim": "BS over CE", "table": "main", "column": "method", "better": "bs", "worse": "ce",
     "paper": "+5.0", "where": {"imbalance": 100}},
    {"claim": "ResCom over BS at IF 10", "table": "main", "column": "method", "better": "rescom", "worse": "bs",
     "paper": "+1.2", "where": {"imbalance": 10}},
    {"claim": "ResCom over BS", "table": "main", "column": "method", "better": "rescom", "worse": "bs",
     "where": {"imbalance": 100}},
    {"claim": "MoCo+BS over BS", "table": "main", "column": "method", "better": "moco_bs", "worse": "bs",
     "paper": "+0.3", "where": {"imbalance": 100}},
    {"claim": "SupCon+BS over BS", "table": "main", "column": "method", "better": "supcon_bs", "worse": "bs",
     "paper": "+0.1", "where": {"imbalance": 100}},
    {"claim": "reweighting helps", "table": "beta", "column": "beta", "better": 0.999, "worse": 0.0,
     "paper": "Fig. 4"},
    {"claim": "ResCom over BS on Few", "table": "main", "column": "method", "better": "rescom", "worse": "bs",
     "group": "few", "paper": "Sec. 1", "where": {"imbalance": 100}},
    {"claim": "ResCom keeps BS's Many", "table": "main", "column": "method", "better": "rescom", "worse": "bs",
     "group": "many", "margin": 1.0, "paper": "Sec. 1", "where": {"imbalance": 100}},
]

# The whole page for CLAIMS with a draw spread of 1.5 and a data note, written out by hand.
GOLDEN = (Path(__file__).parent / "golden" / "claims_page.md").read_text()
GOLDEN_LINES = GOLDEN.splitlines()
BS_OVER_CE, MOCO_ROW = GOLDEN_LINES[11], GOLDEN_LINES[14]
SPREAD_LINE = GOLDEN_LINES[7]
NO_SPREAD_LINE = ("- draw spread: not measured for this profile (no `draws` table, or fewer than 2 draws trained): "
                  "every seed here trains on one draw of the subset, so no row says how another draw would move it")
THREE_SEEDS_ONLY = GOLDEN_LINES[5].replace("at 2 seeds t = 12.71, so a row decides only when its mean lies more than "
                                           "8.98 std from the threshold; ", "")
BEYOND, BELOW = "gap beyond the draw spread", "**gap smaller than the draw spread**"


@pytest.fixture
def frames(monkeypatch):
    """table_frame replaced by the frames above; returns the list of tables it was asked for."""
    asked: list[str] = []

    def table_frame(profile, table):
        asked.append(table)
        return {"main": MAIN, "beta": BETA}[table].copy()

    monkeypatch.setattr(claims, "table_frame", table_frame)
    return asked


def _profile(claim_list, note=None) -> Profile:
    params = {"profile": "toy", "datasets": {}, "train": {}, "main": {}, "beta": {}, "claims": claim_list}
    if note:
        params["report"] = {"note": note}
    return Profile(Path("pipelines/toy/params.yaml"), params)


def test_claims_page_line_by_line(tmp_path, frames, monkeypatch):
    monkeypatch.setattr(claims, "profile_draw_spread", lambda profile: SPREAD)
    frame = claims.render_claims(_profile(CLAIMS, note="a synthetic draw"), tmp_path)
    page = (tmp_path / "claims.md").read_text()
    assert page.splitlines() == GOLDEN_LINES
    assert page == GOLDEN  # down to the final newline
    assert frames == ["main", "beta"]  # each table collected once, however many claims read it
    assert list(frame["verdict"]) == ["reproduced", "within noise", "not reproduced", "undetermined", "not run",
                                      "reproduced", "reproduced", "reproduced"]
    assert frame["draw_spread"].isna().tolist() == [False] * 6 + [True] * 2  # the spread is measured on All


def test_claims_csv_holds_every_number_at_four_decimals(tmp_path, frames, monkeypatch):
    monkeypatch.setattr(claims, "profile_draw_spread", lambda profile: SPREAD)
    claims.render_claims(_profile(CLAIMS), tmp_path)
    text = (tmp_path / "claims.csv").read_text().splitlines()
    assert text[0] == ("claim,table,column,better,worse,group,margin,paper,seeds,per_seed,mean,std,ci95_low,ci95_high,"
                       "seeds_for_interval,draw_spread,below_draw_spread,verdict")
    # seeds needed: a float column (NaN where undetermined), so 3 prints as 3.0000
    assert text[1] == ('BS over CE,main,method,bs,ce,all,0.0000,+5.0,"0,1,2",+3.00 / +4.00 / +5.00,4.0000,1.0000,'
                       "1.5159,6.4841,3.0000,1.5000,False,reproduced")
    read = pd.read_csv(tmp_path / "claims.csv")
    one_seed = read.set_index("claim").loc["MoCo+BS over BS"]
    assert one_seed["mean"] == 1.25 and one_seed["below_draw_spread"]
    assert pd.isna(one_seed["std"]) and pd.isna(one_seed["ci95_low"]) and pd.isna(one_seed["seeds_for_interval"])
    within = read.set_index("claim").loc["ResCom over BS at IF 10"]
    assert within["seeds_for_interval"] == 18
    not_run = read.set_index("claim").loc["SupCon+BS over BS"]
    assert pd.isna(not_run["mean"]) and not not_run["below_draw_spread"] and pd.isna(not_run["seeds"])


def test_claims_page_without_draws_says_the_spread_is_not_measured(tmp_path, frames, monkeypatch):
    monkeypatch.setattr(claims, "profile_draw_spread", lambda profile: None)
    frame = claims.render_claims(_profile(CLAIMS[:1] + CLAIMS[3:4]), tmp_path)
    lines = (tmp_path / "claims.md").read_text().splitlines()
    # the golden page less its data note, t for 3 seeds only (no 2-seed row), another spread line, and
    # no draw-spread cells
    assert lines[:6] == GOLDEN_LINES[:2] + GOLDEN_LINES[3:5] + [THREE_SEEDS_ONLY] + GOLDEN_LINES[6:7]
    assert lines[6] == NO_SPREAD_LINE
    assert lines[-2:] == [BS_OVER_CE.replace(f"| {BEYOND} |", "|  |"), MOCO_ROW.replace(f"| {BELOW} |", "|  |")]
    assert frame["draw_spread"].isna().all() and not frame["below_draw_spread"].any()
    assert frames == ["main"]


def test_a_profile_without_claims_writes_no_page(tmp_path, frames):
    assert claims.render_claims(_profile([]), tmp_path) is None
    assert claims.render_claims(Profile(Path("p.yaml"), {"profile": "toy", "main": {}}), tmp_path) is None
    assert list(tmp_path.iterdir()) == [] and frames == []


def test_where_narrows_each_claim_to_its_setting(frames):
    unnarrowed = {key: value for key, value in CLAIMS[0].items() if key != "where"}
    with pytest.raises(ValueError, match=r"^pipelines/toy/params.yaml: claims entry 'BS over CE': the runs span "
                                         r"several imbalance: narrow the claim with where: \{\.\.\.\}$"):
        claims.claims_frame(_profile([unnarrowed]))
    several = CLAIMS[1] | {"where": {"imbalance": 10, "dataset": "fmnist"}}
    assert claims.claims_frame(_profile([several]))["per_seed"].tolist() == ["+0.50 / +1.50 / -0.50"]
    nothing = CLAIMS[1] | {"where": {"imbalance": 10, "dataset": "cifar"}}
    assert claims.claims_frame(_profile([nothing]))["verdict"].tolist() == ["not run"]


QUEUE = pd.DataFrame(_rows("queue", {"balanced": [80.0, 81.0], "fifo": [79.0, 82.0]}))
SPM = pd.DataFrame(_rows("grid", {"a": [81.5, 82.5], "b": [80.0, 81.0]}))
LARGE = pd.DataFrame(_rows("dataset", {"imagenet-lt": [50.0, 51.0], "places-lt": [40.0, 40.5]}))
EDGE_CLAIMS = {
    # mean 0, std 1.41: no number of seeds makes the interval exclude 0
    "zero": {"claim": "balanced over FIFO", "table": "queue_type", "column": "queue", "better": "balanced",
             "worse": "fifo", "paper": "Fig. 3"},
    # a gap exactly as large as the draw spread is not smaller than it; a std of 0 decides at 2 seeds
    "at spread": {"claim": "grid a over b", "table": "spm", "column": "grid", "better": "a", "worse": "b"},
    # a table without a baseline (large) pairs its rows without context columns
    "large": {"claim": "ImageNet over Places", "table": "large", "column": "dataset", "better": "imagenet-lt",
              "worse": "places-lt"},
}


@pytest.fixture
def edge_frames(monkeypatch):
    monkeypatch.setattr(claims, "table_frame",
                        lambda profile, table: {"queue_type": QUEUE, "spm": SPM, "large": LARGE}[table].copy())
    monkeypatch.setattr(claims, "profile_draw_spread", lambda profile: SPREAD)


def _edge_profile(*names: str) -> Profile:
    params = {"profile": "toy", "datasets": {}, "train": {}, "queue_type": {}, "spm": {}, "large": {},
              "claims": [EDGE_CLAIMS[n] for n in names]}
    return Profile(Path("pipelines/toy/params.yaml"), params)


def test_a_claim_no_seed_count_decides_reads_over_1000(tmp_path, edge_frames):
    """Alone on its page, so its seeds-needed column holds nothing but 'no number' (None becomes NaN)."""
    frame = claims.render_claims(_edge_profile("zero"), tmp_path)
    lines = (tmp_path / "claims.md").read_text().splitlines()
    assert lines[-1] == ("| balanced over FIFO | Fig. 3 | queue_type: balanced - fifo | +1.00 / -1.00 (seeds 0,1) "
                         f"| +0.00 ± 1.41 | [-12.71, +12.71] | interval > 0 | over 1000 | {BELOW} | **within noise** |")
    assert lines[6] == SPREAD_LINE
    assert frame["seeds_for_interval"].isna().all()


def test_a_gap_equal_to_the_draw_spread_is_not_below_it(tmp_path, edge_frames):
    claims.render_claims(_edge_profile("at spread", "large"), tmp_path)
    lines = (tmp_path / "claims.md").read_text().splitlines()
    assert lines[-2:] == [
        f"| grid a over b |  | spm: a - b | +1.50 / +1.50 (seeds 0,1) | +1.50 ± 0.00 | [+1.50, +1.50] | interval > 0 | 2 "
        f"| {BEYOND} | **reproduced** |",
        f"| ImageNet over Places |  | large: imagenet-lt - places-lt | +10.00 / +10.50 (seeds 0,1) | +10.25 ± 0.35 "
        f"| [+7.07, +13.43] | interval > 0 | 2 | {BEYOND} | **reproduced** |"]


def test_a_claim_names_a_known_group_and_a_margin_of_at_least_0(frames):
    for bad in ({"group": "tail"}, {"group": "few", "margin": -0.5}):
        with pytest.raises(ValueError, match=r"^pipelines/toy/params.yaml: claims entry 'BS over CE': group must be "
                                             r"one of all, many, medium, few and margin >= 0"):
            claims.claims_frame(_profile([CLAIMS[0] | bad]))


def test_strength_counts_seeds_from_the_distance_to_the_margin():
    # "not worse by more than 1.0": the interval must clear -1.0, so the distance is mean + 1.0 = 0.6
    # (3 seeds at std 0.1), not mean - 1.0 = -1.4 (2 seeds would do).
    from rescom.report.claims import _strength

    strength = _strength(pd.Series([-0.5, -0.3, -0.4]), None, margin=1.0)
    assert strength["seeds_for_interval"] == 3 and pd.isna(strength["draw_spread"])


def test_quantile_note_only_for_rows_of_several_seeds():
    from rescom.report.claims import _quantile_note

    assert _quantile_note(pd.DataFrame({"seeds": ["0", "", "0"]})) == ""
    assert _quantile_note(pd.DataFrame({"seeds": ["0,1,2", "0"]})) == (
        "; at 3 seeds t = 4.30, so a row decides only when its mean lies more than 2.48 std from the threshold")
