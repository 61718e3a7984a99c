"""Report trees made on two CPU kinds: the structure diff passes, and the interval rule's verdicts agree.

Fixtures (tests/fixtures/reports-81e20c7/): the tables/*.csv of the default and smoke profiles as
committed at 81e20c7 (`committed/`, a CPU without AMX) and as a fresh clone of that commit made them
on a CPU with AVX-512 FP16 and AMX (`amx/`). Same code, seeds and data; the float kernels move the
numbers as another training seed would (default BS 79.14 ± 0.50 against 78.30 ± 0.91).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from rescom.cli import app
from rescom.report.claims import verdict
from rescom.report.diff import diff_reports, row_keys

TREES = Path(__file__).parent / "fixtures" / "reports-81e20c7"
runner = CliRunner()


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_structure_only_passes_across_cpu_kinds(profile):
    result = runner.invoke(app, ["report", "diff", str(TREES / "committed" / profile), str(TREES / "amx" / profile),
                                 "--structure-only"])
    assert result.exit_code == 0, result.output
    assert "reports agree: structure" in result.output


def test_numbers_across_cpu_kinds_differ_by_cell_never_by_row():
    problems = diff_reports(TREES / "committed" / "default", TREES / "amx" / "default", 0.01)
    assert problems and not [p for p in problems if "rows differ" in p or "columns differ" in p]
    # the verdict the old rule flipped shows as a cell of its claim's row
    assert ("tables/claims.csv [claim=hard positives (Q_p = 1 of 10) over no mining] verdict: within noise -> "
            "not reproduced") in problems


def _copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TREES / "committed" / "smoke", tmp_path / "smoke"))


@pytest.mark.parametrize("change, message", [
    (lambda t: (t / "tables" / "beta.csv").unlink(), "tables/beta.csv: only in"),
    (lambda t: pd.read_csv(t / "tables/main.csv").drop(columns=["n_seeds"]).to_csv(t / "tables/main.csv", index=False),
     "tables/main.csv: columns differ"),
    (lambda t: pd.read_csv(t / "tables/main.csv").iloc[1:].to_csv(t / "tables/main.csv", index=False),
     "tables/main.csv: rows differ: only in"),
])
def test_structure_only_still_fails_on_a_missing_file_column_or_row(tmp_path, change, message):
    tree = _copy(tmp_path)
    change(tree)
    result = runner.invoke(app, ["report", "diff", str(TREES / "amx" / "smoke"), str(tree), "--structure-only"])
    assert result.exit_code == 1 and message in result.output, result.output
    if "rows" in message:
        assert "dataset=fashion-mnist-lt method=ce imbalance=10.0" in result.output


def test_row_keys_are_labels_repeats_told_apart_and_unknown_files_by_position():
    frame = pd.DataFrame({"method": ["bs", "bs"], "subsample_seed": [0, 0], "last_test_all": [70.0, 71.0]})
    assert row_keys(frame, Path("tables/draws.csv")) == ["method=bs subsample_seed=0", "method=bs subsample_seed=0 #2"]
    assert row_keys(frame, Path("analysis/new/other.csv")) == ["row 0", "row 1"]
    claims = pd.read_csv(TREES / "committed" / "default" / "tables" / "claims.csv")
    assert row_keys(claims, Path("tables/claims.csv"))[0] == "claim=Balanced Softmax over cross-entropy"


def _verdicts(profile: str, tree: str) -> dict[str, str]:
    claims = pd.read_csv(TREES / tree / profile / "tables" / "claims.csv", dtype=str, keep_default_na=False)
    return {row.claim: verdict(pd.Series([float(d) for d in row.per_seed.split(" / ") if d], dtype=float))
            for row in claims.itertuples()}


@pytest.mark.parametrize("profile", ["default", "smoke"])
def test_interval_rule_gives_the_same_verdicts_on_both_cpu_kinds(profile):
    committed, amx = _verdicts(profile, "committed"), _verdicts(profile, "amx")
    assert committed == amx
    if profile == "default":
        assert committed["Balanced Softmax over cross-entropy"] == "reproduced"
        ablations = pd.read_csv(TREES / "committed" / "default" / "tables" / "claims.csv").query("table != 'main'")
        assert {committed[c] for c in ablations["claim"]} == {"within noise"}  # 2 seeds: t = 12.7
    else:
        assert set(committed.values()) == {"undetermined"}  # one seed
