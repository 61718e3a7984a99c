"""The draws table (report.draws) and the claims table's draw-spread column, on a tiny synthetic
profile whose runs are written by hand (metrics.json + config.yaml, no training)."""

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rescom.pipeline.catalogue import _spec, expand_table, load_profile, run_config_overrides
from rescom.pipeline.dvcfile import build_dvc
from rescom.report.claims import claims_frame, render_claims
from rescom.report.collect import table_frame
from rescom.report.draws import draw_gaps, draw_spread, draw_values, render_draws

PARAMS = {
    "profile": "tiny",
    "datasets": {"set": {"dataset": "fashion-mnist-lt", "imbalance": 10, "max_count": 60, "seed": 0},
                 "set-d1": {"dataset": "fashion-mnist-lt", "imbalance": 10, "max_count": 60, "seed": 1},
                 "set-d2": {"dataset": "fashion-mnist-lt", "imbalance": 10, "max_count": 60, "seed": 2}},
    "train": {"optim": {"epochs": 2}},
    "main": {"data": "set", "name": "{method}-s{seed}", "set": {},
             "methods": {"bs": {"preset": "bs"}, "rescom": {"preset": "rescom", "set": {"method.queue_size": 4}}},
             "axes": {"method": ["bs", "rescom"], "seed": [0, 1]},
             "apply": {"method": "variant:methods", "seed": "run.seed"}},
    "draws": {"name": "{method}-{data}-s{seed}", "set": {},
              "methods": {"bs": {"preset": "bs"}, "rescom": {"preset": "rescom", "set": {"method.queue_size": 4}}},
              "axes": {"method": ["bs", "rescom"], "data": ["set-d1", "set-d2"], "seed": [0]},
              "apply": {"method": "variant:methods", "data": "data", "seed": "run.seed"},
              "references": [{"run": "main/bs-s0", "method": "bs", "data": "set"},
                             {"run": "main/rescom-s0", "method": "rescom", "data": "set"}]},
    "claims": [{"claim": "ResCom over BS", "table": "main", "column": "method", "better": "rescom", "worse": "bs"}],
}
# last-epoch All by (table, run): main seeds 0/1; draws 1 and 2 (draw 0 is main's seed-0 run)
ALL = {("main", "bs-s0"): 70.0, ("main", "bs-s1"): 71.0, ("main", "rescom-s0"): 72.0, ("main", "rescom-s1"): 72.5,
       ("draws", "bs-set-d1-s0"): 74.0, ("draws", "rescom-set-d1-s0"): 75.0,
       ("draws", "bs-set-d2-s0"): 68.0, ("draws", "rescom-set-d2-s0"): 71.0}


def _write_run(table: str, name: str, method: str, seed: int, draw: int, top1: float) -> None:
    run_dir = Path("runs/tiny") / table / name
    run_dir.mkdir(parents=True)
    metrics = {"epochs": 2, "best_epoch": 2, **{f"{k}_test_{m}": top1 - (10 if m == "few" else 0)
                                                for k in ("last", "best") for m in ("all", "many", "medium", "few", "ece")}}
    (run_dir / "metrics.json").write_text(json.dumps(
        {"method": method, "dataset": "fashion-mnist-lt", "imbalance": 10, "seed": seed, "metrics": metrics}))
    config = {"method": {"queue": "balanced", "queue_size": 4, "num_pos": 1, "num_neg": 12, "beta": 0.999999,
                         "classifier_loss": "siambs"}, "optim": {"schedule": "constant"}, "run": {"eval_every": 1},
              "data": {"subsample_seed": draw}}
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS, sort_keys=False))
    profile = load_profile(tmp_path / "params.yaml")
    for spec in [*expand_table(profile, "main"), *expand_table(profile, "draws")]:
        draw = profile.params["datasets"][spec.data_key]["seed"]
        _write_run(spec.table, spec.name, spec.item["method"], spec.item["seed"], draw, ALL[spec.table, spec.name])
    return profile


def test_draws_reuse_main_runs_and_span_three_draws(tiny):
    values = draw_values(table_frame(tiny, "draws"))
    table = values.set_index(["method", "subsample_seed"])["last_test_all"].to_dict()
    assert table == {("bs", 0): 70.0, ("bs", 1): 74.0, ("bs", 2): 68.0,
                     ("rescom", 0): 72.0, ("rescom", 1): 75.0, ("rescom", 2): 71.0}
    # spread: std over draws of bs (70, 74, 68) = 3.055, of rescom (72, 75, 71) = 2.082; the larger
    assert draw_spread(values) == pytest.approx(math.sqrt(((70 - 70.6667) ** 2 + (74 - 70.6667) ** 2
                                                           + (68 - 70.6667) ** 2) / 2), abs=1e-3)
    gaps = draw_gaps(values).set_index("subsample_seed")["gap_all"].to_dict()
    assert gaps == {0: 2.0, 1: 1.0, 2: 3.0}


def test_draws_table_rendered(tiny, tmp_path):
    out = tmp_path / "tables"
    out.mkdir()
    assert render_draws(tiny, out) is not None
    text = (out / "draws.md").read_text()
    assert "| bs | 70.00 / 74.00 / 68.00 | 70.67 ± 3.06 | 6.00 |" in text
    assert "| rescom - bs | +2.00 / +1.00 / +3.00 | +2.00 ± 1.00 |" in text
    assert "draw spread (the largest std over draws of one method's All): 3.06" in text
    csv = pd.read_csv(out / "draws.csv")
    assert list(csv.columns) == ["method", "subsample_seed", "last_test_all", "last_test_few", "gap_all"]
    assert len(csv) == 6


def test_claim_gap_below_draw_spread_is_marked(tiny, tmp_path):
    frame = claims_frame(tiny)
    row = frame.iloc[0]
    # rescom - bs on seeds 0, 1: +2.0, +1.5: mean 1.75 < draw spread 3.06
    assert row["mean"] == pytest.approx(1.75)
    assert bool(row["below_draw_spread"]) and row["draw_spread"] == pytest.approx(3.055, abs=1e-3)
    out = tmp_path / "tables"
    out.mkdir()
    render_claims(tiny, out)
    assert "**gap smaller than the draw spread**" in (out / "claims.md").read_text()


def test_claims_without_draws_say_the_spread_is_not_measured(tiny, tmp_path):
    del tiny.params["draws"]
    frame = claims_frame(tiny)
    assert math.isnan(frame.iloc[0]["draw_spread"]) and not frame.iloc[0]["below_draw_spread"]
    out = tmp_path / "tables"
    out.mkdir()
    render_claims(tiny, out)
    assert "draw spread: not measured for this profile" in (out / "claims.md").read_text()


def test_one_seed_claim_is_undetermined(tiny, tmp_path):
    tiny.params["main"]["axes"]["seed"] = [0]
    row = claims_frame(tiny).iloc[0]
    assert row["verdict"] == "undetermined" and math.isnan(row["ci95_low"])
    out = tmp_path / "tables"
    out.mkdir()
    render_claims(tiny, out)
    line = next(ln for ln in (out / "claims.md").read_text().splitlines() if ln.startswith("| ResCom over BS"))
    assert line.count("undetermined") == 3  # interval, seeds needed, verdict


def test_draws_stage_in_dvc_yaml(tiny):
    stage = build_dvc(tiny)["stages"]["draws"]
    assert stage["matrix"] == {"method": "${draws.axes.method}", "data": "${draws.axes.data}",
                               "seed": "${draws.axes.seed}"}
    assert stage["deps"][0] == "data/prepared/tiny/${item.data}"


@pytest.mark.parametrize("params", ["params.yaml", "pipelines/smoke/params.yaml"])
def test_reused_draw_zero_is_the_draws_table_run(params):
    """The draws table's draw 0 is main's run: its config must be what the draws table would make."""
    root = Path(__file__).resolve().parents[1]
    profile = load_profile(root / params)
    section = profile.section("draws")

    def strip(o):
        return {k: v for k, v in o.items() if not k.startswith("run.") or k == "run.seed"}

    for reference in section["references"]:
        table, _, name = reference["run"].partition("/")
        reused = next(s for s in expand_table(profile, table) if s.name == name)
        item = {"method": reference["method"], "data": reference["data"], "seed": section["axes"]["seed"][0]}
        would_be = _spec(profile, "draws", section, item, section["apply"])
        assert strip(run_config_overrides(profile, would_be)) == strip(run_config_overrides(profile, reused))
