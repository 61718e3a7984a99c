"""`rescom report` end to end: synthetic finished runs, written as a run writes them, rendered and read back.

Each run directory gets metrics.json, history.csv, per_class.csv and config.yaml through the same
writers `rescom train` uses (rescom.engine.outputs), with the summary laid out as the training loop's
finish writes it. The test then checks the numbers of main.md (mean +- std over seeds, paired cells,
best epoch) and the verdicts of claims.md against values it computes itself with `statistics`.
The markdown is read tolerantly: cells are found by header words, numbers by pattern, so layout
changes of the renderer do not break the test, wrong numbers do.
"""

from __future__ import annotations

import math
import re
import statistics
import pytest
import yaml
from typer.testing import CliRunner

from rescom.cli import app
from rescom.config import apply_overrides
from rescom.engine.outputs import write_config, write_history, write_json, write_per_class
from rescom.methods import preset_config
from rescom.pipeline.catalogue import expand_table, load_profile, run_config_overrides

SEEDS = (0, 1, 2)
EPOCHS = 4
# Last-epoch All per method and seed. rescom - bs = +3.0 / +3.5 / +4.0 (95% interval [+2.26, +4.74]);
# rescom - moco_bs = +2.51 / +1.81 / +0.79 (every seed positive, the interval [-0.44, +3.84] holds 0).
LAST_ALL = {"bs": (60.0, 62.0, 61.0), "rescom": (63.0, 65.5, 65.0), "moco_bs": (60.49, 63.69, 64.21)}
# Per seed, the epoch whose test accuracy is the best (the last one or an earlier peak).
BEST_EPOCH = {"bs": (3, 4, 2), "rescom": (4, 2, 4), "moco_bs": (1, 4, 3)}
CLAIMS = [
    {"claim": "ResCom over BS", "better": "rescom", "worse": "bs", "verdict": "reproduced"},
    {"claim": "BS over ResCom (planted)", "better": "bs", "worse": "rescom", "verdict": "not reproduced"},
    {"claim": "ResCom over MoCo+BS", "better": "rescom", "worse": "moco_bs", "verdict": "within noise"},
]
PARAMS = {
    "profile": "e2e",
    "datasets": {"fmnist-if10": {"dataset": "fashion-mnist-lt", "imbalance": 10, "max_count": 60, "seed": 0,
                                 "test_per_class": 20}},
    "train": {"optim": {"epochs": EPOCHS, "batch_size": 32}, "run": {"eval_every": 1}},
    "main": {"dataset": "fmnist", "name": "{method}-if{imbalance}-s{seed}", "set": {},
             "methods": {"bs": {"preset": "bs"}, "moco_bs": {"preset": "moco_bs"}, "rescom": {"preset": "rescom"}},
             "axes": {"method": list(LAST_ALL), "imbalance": [10], "seed": list(SEEDS)},
             "apply": {"method": "variant:methods", "imbalance": "imbalance", "seed": "run.seed"}},
    "claims": [{"claim": c["claim"], "table": "main", "column": "method", "better": c["better"],
                "worse": c["worse"], "paper": "synthetic"} for c in CLAIMS],
}
CLASSES = [f"c{k}" for k in range(4)]
COUNTS = [60, 22, 8, 3]


def _test_metrics(method: str, seed: int, accuracy_all: float) -> dict:
    """Shot accuracies and ECE of one evaluation: deterministic, distinct per run."""
    offset = (0.37 * seed + 0.11) * len(method) / 4  # varies with method and seed, so paired Few has its own spread
    return {"test_all": accuracy_all, "test_many": accuracy_all + 10 + offset, "test_medium": accuracy_all - offset,
            "test_few": accuracy_all - 20 + 2 * offset, "test_ece": 5 + offset}


def _write_run(profile, spec, method: str, seed: int) -> None:
    """One finished run's files, laid out as the training loop's finish writes them."""
    last_all = LAST_ALL[method][seed]
    best_epoch = BEST_EPOCH[method][seed]
    history = []
    for epoch in range(1, EPOCHS + 1):
        if epoch == EPOCHS:
            accuracy = last_all
        else:  # below the last epoch, except the planted peak
            accuracy = last_all + 1.25 + seed if epoch == best_epoch else last_all - 3 * (EPOCHS - epoch)
        history.append({"epoch": epoch, "lr": 0.05, "loss": 2.0 / epoch, "train_acc": 50.0 + epoch,
                        **_test_metrics(method, seed + epoch, accuracy)})
    history[-1].update(_test_metrics(method, seed, last_all))
    last = history[-1]
    best = max(history, key=lambda row: row["test_all"])
    assert best["epoch"] == best_epoch
    shots = ("test_all", "test_many", "test_medium", "test_few", "test_ece")
    metrics = {f"last_{k}": last[k] for k in shots} | {f"best_{k}": best[k] for k in shots}
    metrics |= {"best_epoch": best["epoch"], "last_epoch": last["epoch"], "epochs": EPOCHS}
    config = apply_overrides(preset_config(spec.preset), run_config_overrides(profile, spec))
    config.method_name = method
    root = spec.run_dir(profile.name)
    root.mkdir(parents=True)
    write_config(root / "config.yaml", config.to_dict())
    write_json(root / "metrics.json", {"method": method, "dataset": config.data.dataset,
                                       "imbalance": config.data.imbalance, "seed": seed,
                                       "profile": profile.name, "metrics": metrics})
    write_history(root / "history.csv", history)
    write_per_class(root / "per_class.csv", CLASSES, COUNTS, [0.9, 0.6, 0.3, 0.1])


def _tables(markdown: str) -> list[list[dict[str, str]]]:
    """Every pipe table of a markdown text as rows of {header: cell}."""
    tables, lines = [], [line.strip() for line in markdown.splitlines()]
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|$", lines[i + 1]):
            header = [c.strip() for c in lines[i].strip("|").split("|")]
            rows, i = [], i + 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, (c.strip() for c in lines[i].strip("|").split("|")), strict=True)))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def _column(row: dict[str, str], *words: str, without: tuple[str, ...] = ()) -> str:
    """The one cell whose header holds every word (case-insensitive) and none of `without`."""
    found = [h for h in row if all(w.lower() in h.lower() for w in words)
             and not any(w.lower() in h.lower() for w in without)]
    assert len(found) == 1, f"no single column with {words} (without {without}) in {list(row)}"
    return row[found[0]]


def _mean_std(cell: str) -> tuple[float, float]:
    match = re.search(r"([+-]?\d+\.\d+)\s*±\s*(\d+\.\d+)", cell)
    assert match, f"no 'mean ± std' in {cell!r}"
    return float(match[1]), float(match[2])


def _expected(values) -> tuple[float, float]:
    return round(statistics.fmean(values), 2), round(statistics.stdev(values), 2)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """Write the runs, run `rescom report` in a fresh directory; return (main.md, claims.md) texts."""
    root = tmp_path_factory.mktemp("report-e2e")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)  # runs/ and reports/ are relative to the working directory
        params = root / "params.yaml"
        params.write_text(yaml.safe_dump(PARAMS, sort_keys=False))
        profile = load_profile(params)
        for spec in expand_table(profile, "main"):
            _write_run(profile, spec, spec.item["method"], spec.item["seed"])
        result = CliRunner().invoke(app, ["report", "--params", str(params)])
        assert result.exit_code == 0, result.output
    tables = root / "reports" / "e2e" / "tables"
    return (tables / "main.md").read_text(), (tables / "claims.md").read_text()


def _row(rows: list[dict[str, str]], first_cell_value: str) -> dict[str, str]:
    found = [r for r in rows if first_cell_value in r.values()]
    assert len(found) == 1, f"{first_cell_value!r}: {len(found)} rows"
    return found[0]


@pytest.mark.slow
def test_main_table_numbers_match_the_runs(report):
    main_md, _ = report
    rows = _tables(main_md)[0]
    assert len(rows) == len(LAST_ALL)
    for method in LAST_ALL:
        row = _row(rows, method)
        # mean +- sample std over seeds of the last epoch, and of the best epoch
        assert _mean_std(_column(row, "all", "last")) == _expected(LAST_ALL[method])
        best_all = [_test_metrics(method, s, LAST_ALL[method][s])["test_all"]
                    + (1.25 + s if BEST_EPOCH[method][s] != EPOCHS else 0) for s in SEEDS]
        assert _mean_std(_column(row, "all", "best")) == _expected(best_all)
        few = [_test_metrics(method, s, LAST_ALL[method][s])["test_few"] for s in SEEDS]
        assert _mean_std(_column(row, "few", without=("paired",))) == _expected(few)
        epochs = [int(e) for e in re.findall(r"\d+", _column(row, "best epoch", without=("all",)))]
        assert epochs == list(BEST_EPOCH[method])
        paired = _column(row, "all", "paired")
        if method == "bs":
            assert "baseline" in paired
            continue
        # paired with bs seed by seed: mean +- std of the differences, over 3 seeds
        diffs = [a - b for a, b in zip(LAST_ALL[method], LAST_ALL["bs"], strict=True)]
        assert _mean_std(paired) == _expected(diffs)
        assert re.search(r"\(\s*3\s*\)", paired), paired
        few_diffs = [_test_metrics(method, s, LAST_ALL[method][s])["test_few"]
                     - _test_metrics("bs", s, LAST_ALL["bs"][s])["test_few"] for s in SEEDS]
        assert _mean_std(_column(row, "few", "paired")) == _expected(few_diffs)


@pytest.mark.slow
def test_claims_verdicts_match_the_rule(report):
    _, claims_md = report
    rows = _tables(claims_md)[0]
    assert len(rows) == len(CLAIMS)
    for claim in CLAIMS:
        row = _row(rows, claim["claim"])
        diffs = [a - b for a, b in zip(LAST_ALL[claim["better"]], LAST_ALL[claim["worse"]], strict=True)]
        mean, std = statistics.fmean(diffs), statistics.stdev(diffs)
        half = 4.303 * std / math.sqrt(3)  # the rule, computed here: the 95% t-interval (printed t, 2 dof) vs 0
        expected = "reproduced" if mean > half else "not reproduced" if mean < -half else "within noise"
        assert expected == claim["verdict"]  # the planted data says what it was made to say
        verdicts = [c.strip("* ") for c in row.values()]
        assert expected in verdicts, row
        assert not ({"reproduced", "not reproduced", "within noise"} - {expected}) & set(verdicts), row
        assert _mean_std(_column(row, "mean", "std")) == (round(mean, 2), round(std, 2))
        per_seed = [float(v) for v in re.findall(r"[+-]\d+\.\d+", _column(row, "per seed"))]
        assert per_seed == [round(d, 2) for d in diffs]


def _profile_with(tmp_path, claims):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**PARAMS, "claims": claims}, sort_keys=False))
    return load_profile(params)


def test_claims_entries_are_checked(tmp_path):
    from rescom.report.claims import claims_frame

    base = {"claim": "c", "table": "main", "column": "method", "better": "rescom", "worse": "bs"}
    assert claims_frame(_profile_with(tmp_path, [])) is None
    with pytest.raises(ValueError, match=r"params.yaml: claims entry .* lacks better, worse$"):
        claims_frame(_profile_with(tmp_path, [{k: base[k] for k in ("claim", "table", "column")}]))
    with pytest.raises(ValueError, match=r"claims entry 'c' names table 'spm', which the profile does not run"):
        claims_frame(_profile_with(tmp_path, [base | {"table": "spm"}]))


def test_claims_without_finished_runs_are_not_run(tmp_path, monkeypatch):
    from rescom.report.claims import claims_frame

    monkeypatch.chdir(tmp_path)
    frame = claims_frame(_profile_with(tmp_path, PARAMS["claims"][:1]))
    row = frame.iloc[0]
    assert (row["verdict"], row["seeds"], row["per_seed"], row["paper"]) == ("not run", "", "", "synthetic")
    assert math.isnan(row["mean"]) and math.isnan(row["std"])
