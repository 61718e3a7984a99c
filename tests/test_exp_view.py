"""`rescom exp show`: real `dvc exp show` on a toy git + DVC project with two profiles, narrowed to one
profile's headline metrics and defining params; and the summary's column-safe row labels."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from rescom.report.summary import summary_labels

ENV = {**os.environ, "DVC_NO_ANALYTICS": "1", "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
       "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}


def _profile_files(root: Path, name: str, folder: Path, summary: dict, epochs: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    params = {"profile": name,
              "datasets": {"fm-if100": {"dataset": "fashion-mnist-lt", "imbalance": 100, "max_count": 1000},
                           "fm-if10": {"dataset": "fashion-mnist-lt", "imbalance": 10, "max_count": 1000}},
              "train": {"optim": {"epochs": epochs, "batch_size": 64, "lr": 0.1, "cosine_warmup_epochs": 2},
                        "model": {"backbone": "resnet8", "width": 16}, "run": {"bf16": True}},
              "main": {"name": "{method}-s{seed}", "axes": {"method": ["bs", "rescom"], "seed": [0]}}}
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    report = root / "reports" / name
    report.mkdir(parents=True)
    (report / "summary.json").write_text(json.dumps(summary))
    relative = os.path.relpath(report / "summary.json", folder)
    stage = {"cmd": "echo", "params": [{"params.yaml": ["train", "main", "datasets"]}]}
    (folder / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"report": stage}, "metrics": [relative]}))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("exp") / "project"
    root.mkdir()
    subprocess.run(["git", "init", "-q"], cwd=root, check=True, env=ENV)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, check=True, env=ENV)
    main = {"bs": {"all": 79.1, "few": 83.3}, "rescom": {"all": 79.5, "few": 90.3}}
    _profile_files(root, "default", root, {"main": main, "beta": {"0.999999": {"all": 79.5}}}, epochs=25)
    # smoke alone has an spm table: its key is unique in the repo, so DVC names it without the file
    _profile_files(root, "smoke", root / "pipelines" / "smoke",
                   {"main": main, "spm": {"p1-n12": {"all": 40.0}}}, epochs=4)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, env=ENV)
    subprocess.run(["git", "commit", "-qm", "baseline"], cwd=root, check=True, env=ENV)
    return root


def _columns(project: Path, *args: str) -> tuple[list[str], list[list[str]]]:
    rescom = Path(sys.executable).parent / "rescom"
    result = subprocess.run([str(rescom), "exp", "show", *args, "--csv"], cwd=project, env=ENV,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    return rows[0], rows[1:]


def test_a_profile_shows_its_metrics_and_defining_params_only(project):
    header, rows = _columns(project, "--profile", "smoke")
    smoke_params, smoke_summary = "pipelines/smoke/params.yaml", "reports/smoke/summary.json"
    assert header == [
        "Experiment", "Created",
        f"{smoke_summary}:main.bs.all", f"{smoke_summary}:main.bs.few", f"{smoke_summary}:main.rescom.all",
        f"{smoke_summary}:main.rescom.few", "spm.p1-n12.all",
        # no profile column: smoke's stages do not declare the key, and root's bare `profile` is not smoke's
        f"{smoke_params}:train.optim.epochs", f"{smoke_params}:train.optim.batch_size",
        f"{smoke_params}:train.optim.lr", f"{smoke_params}:train.model.backbone",
        f"{smoke_params}:datasets.fm-if100.imbalance", f"{smoke_params}:datasets.fm-if10.imbalance"]
    baseline = rows[-1]  # the workspace first, then the commit
    assert baseline[header.index("spm.p1-n12.all")] == "40.0"
    assert baseline[header.index(f"{smoke_params}:train.optim.epochs")] == "4"


def test_another_profiles_unique_keys_do_not_slip_in(project):
    header, _ = _columns(project, "--profile", "default")
    assert "spm.p1-n12.all" not in header and "beta.0.999999.all" in header
    assert "params.yaml:train.optim.epochs" in header and not any(c.startswith("pipelines/") for c in header)
    assert len(header) == 2 + 5 + 7  # name, date; 5 metrics; profile, 4 training settings, 2 imbalances


def test_tables_and_extra_dvc_options(project):
    header, rows = _columns(project, "--profile", "smoke", "--table", "spm", "--sort-by", "spm.p1-n12.all")
    assert [c for c in header if "summary" in c or c.endswith(".all")] == ["spm.p1-n12.all"]


def test_redirected_output_is_every_column_as_tsv_under_short_names(project):
    rescom = Path(sys.executable).parent / "rescom"
    result = subprocess.run([str(rescom), "exp", "show", "--profile", "smoke", "--sort-by", "main.bs.all"], cwd=project,
                            env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    assert rows[0] == ["Experiment", "Created", "main.bs.all", "main.bs.few", "main.rescom.all", "main.rescom.few",
                       "spm.p1-n12.all", "epochs", "batch_size", "lr", "backbone", "imbalance.fm-if100",
                       "imbalance.fm-if10"]
    assert [r[0] for r in rows[1:]] == ["workspace", "master"] and rows[-1][rows[0].index("epochs")] == "4"


def test_a_terminal_gets_the_headline_table_whole_and_every_column_on_request():
    from rich.console import Console

    from rescom.pipeline.exp_view import render

    columns = {"s.json:main.bs.all": ("main", "bs", "all"), "s.json:main.bs.few": ("main", "bs", "few"),
               "spm.all.all": ("spm", "all", "all"), "profile": ("profile",), "p.yaml:train.optim.lr": ("lr",),
               "datasets.fm-if100.imbalance": ("imbalance", "fm-if100")}
    dvc_csv = ("Experiment,rev,typ,Created,s.json:main.bs.all,s.json:main.bs.few,spm.all.all,profile,"
               "datasets.fm-if100.imbalance,p.yaml:train.optim.lr\n"
               ",main,baseline,2026-12-02T16:46:37,79.14,83.32,80.42,default,100,0.1\n"
               "lr005,13813c0,branch_base,2026-12-03T09:00:00,79.5,,80.1,default,100,0.05\n")

    def lines(every_column: bool, width: int) -> list[str]:
        console = Console(width=width, force_terminal=True, record=True)
        render(dvc_csv, columns, every_column, console)
        return console.export_text().splitlines()

    headline = lines(False, 60)
    assert [line.split() for line in headline[:3]] == [["main"], ["bs"], ["Experiment", "Created", "all", "few", "lr"]]
    assert headline[-1].split() == ["└", "lr005", "2026-12-03", "09:00", "79.5", "-", "0.05"]
    every = lines(True, 60)  # wider than the console: printed whole, never folded
    assert every[2].split()[-4:] == ["all", "profile", "fm-if100", "lr"] and max(map(len, every)) > 60
    assert every[-1].split()[-5:] == ["-", "80.1", "default", "100", "0.05"]


def test_unknown_table_or_profile_is_one_line(project):
    rescom = Path(sys.executable).parent / "rescom"
    for args, message in ((["--profile", "smoke", "--table", "large"],
                           "error: reports/smoke/summary.json has no table large (it has main, spm)"),
                          (["--profile", "nope"], "error: --profile nope: no params file pipelines/nope/params.yaml "
                                                  "(run from the project's root)")):
        result = subprocess.run([str(rescom), "exp", "show", *args], cwd=project, env=ENV, capture_output=True,
                                text=True)
        assert result.returncode == 2 and result.stderr.strip() == message and result.stdout == ""


def test_summary_labels_use_the_fewest_keys_that_tell_rows_apart():
    spm = pd.DataFrame({"grid": ["all", "neg40", "pos1"], "queue_size": [10, 10, 10],
                        "num_pos": [float("nan"), float("nan"), 1.0], "num_neg": [float("nan"), 40.0, 90.0]})
    assert summary_labels(spm, ["grid", "queue_size", "num_pos", "num_neg"]) == ["all", "neg40", "pos1"]
    main = pd.DataFrame({"dataset": ["c10", "c10", "c100"], "method": ["bs", "rescom", "bs"], "imbalance": [100] * 3})
    assert summary_labels(main, ["dataset", "method", "imbalance"]) == ["c10/bs", "c10/rescom", "c100/bs"]
    one_dataset = main.iloc[:2]
    assert summary_labels(one_dataset, ["dataset", "method", "imbalance"]) == ["bs", "rescom"]
