"""Packed runs (`rescom train --seeds`, engine.pack): each run of a pack equals its solo run bit for bit on CPU.

The runs use the PIL pipeline with a random crop and flip, whose draws come from torch's global
generator (the state a pack must keep per run), and the tensor pipeline, whose draws come from
generators of its own. Compared byte for byte: every DVC output of the run directory
(checkpoint.pt, metrics.json, history.csv, per_class.csv, config.yaml, figures).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from test_train_cli import run_cli

OUTPUTS = ("checkpoint.pt", "metrics.json", "history.csv", "per_class.csv", "config.yaml",
           "per_class_accuracy.png", "confusion_matrix.png")


@pytest.fixture(scope="module")
def folder28(tmp_path_factory):
    """train/test folders of 28x28 grayscale images (4 classes, 24 train / 4 test each): the
    fashion-mnist-basic recipe's random crop and flip apply to them."""
    root = tmp_path_factory.mktemp("folder28")
    rng = np.random.default_rng(1)
    for split, per_class in (("train", 24), ("test", 4)):
        for c in range(4):
            directory = root / split / f"class{c}"
            directory.mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 60, size=(28, 28))
                image[c * 7:c * 7 + 7, :] += 180
                Image.fromarray(image.clip(0, 255).astype(np.uint8), mode="L").save(directory / f"{i}.png")
    return root


def args_for(root, method="rescom", epochs=2, extra=()):
    return ["train", "--method", method, "--dataset", "folder-lt", "--imbalance", "6", "--data-root", str(root),
            "--epochs", str(epochs), "--no-track", "--set", "optim.batch_size=8", "--set", "model.width=4",
            "--set", "method.queue_size=4", "--set", "data.recipe=fashion-mnist-basic", "--set", "optim.lr=0.05",
            *extra]


def outputs(run_dir: Path) -> dict[str, bytes]:
    return {name: (run_dir / name).read_bytes() for name in OUTPUTS}


def in_dir(monkeypatch, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    monkeypatch.chdir(path)
    return path


def assert_same_runs(solo: Path, packed: Path, names: list[str], checkpoint_bytes: bool = True) -> None:
    """Every output byte for byte; checkpoint_bytes=False compares the checkpoint's content instead
    (a resumed run's history rows are unpickled objects, which pickle memoises differently)."""
    import torch

    for name in names:
        a, b = outputs(solo / "runs" / name), outputs(packed / "runs" / name)
        compared = OUTPUTS if checkpoint_bytes else [f for f in OUTPUTS if f != "checkpoint.pt"]
        assert [f for f in compared if a[f] != b[f]] == [], name
        if not checkpoint_bytes:
            load = [torch.load(d / "runs" / name / "checkpoint.pt", weights_only=True) for d in (solo, packed)]
            assert same_content(*load), name


def same_content(x, y) -> bool:
    """Equal trees: tensors bit for bit (torch.equal), floats with NaN equal to NaN."""
    import math

    import torch

    if isinstance(x, dict):
        return isinstance(y, dict) and x.keys() == y.keys() and all(same_content(x[k], y[k]) for k in x)
    if isinstance(x, (list, tuple)):
        return type(x) is type(y) and len(x) == len(y) and all(same_content(u, v) for u, v in zip(x, y, strict=True))
    if isinstance(x, torch.Tensor):
        return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x):
        return math.isnan(y)
    return x == y


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", ["pil", "tensor"])
def test_packed_runs_equal_their_solo_runs_bit_for_bit(tmp_path, folder28, monkeypatch, pipeline):
    extra = ["--set", f"data.pipeline={pipeline}"]
    in_dir(monkeypatch, tmp_path / "solo")
    for seed in (0, 1, 2):
        result = run_cli(args_for(folder28, extra=[*extra, "--seed", str(seed)]))
        assert result.exit_code == 0, result.output
    in_dir(monkeypatch, tmp_path / "packed")
    result = run_cli(args_for(folder28, extra=[*extra, "--seeds", "0,1,2"]))
    assert result.exit_code == 0, result.output
    names = [f"rescom-folder-lt-if6-s{seed}" for seed in (0, 1, 2)]
    assert_same_runs(tmp_path / "solo", tmp_path / "packed", names)
    # The seeds really differ (a pack that trained one run three times would pass the check above only
    # if the solo runs were equal too).
    histories = {(tmp_path / "packed/runs" / n / "history.csv").read_text() for n in names}
    assert len(histories) == 3
    log = json.loads((tmp_path / "packed/runs" / names[0] / "run_log.json").read_text())
    assert "packed with 2 other run(s)" in log["hardware"]


@pytest.mark.slow
def test_runs_differing_in_method_and_beta_pack_and_equal_their_solo_runs(tmp_path, folder28, monkeypatch):
    from rescom.cli.run_config import build_config
    from rescom.engine.resume import RunStart
    from rescom.engine.train import train_pack

    variants = [("rescom", ["method.beta=0.5"]), ("bs", []), ("supcon_bs", ["run.seed=3"])]

    def configs():
        made = []
        for method, sets in variants:
            config = build_config(method, "folder-lt", 6, None,
                                  ["optim.batch_size=8", "model.width=4", "method.queue_size=4", "optim.lr=0.05",
                                   "data.recipe=fashion-mnist-basic", "run.track=false", "optim.epochs=2", *sets],
                                  {"data.root": str(folder28)})
            made.append(config)
        return made

    in_dir(monkeypatch, tmp_path / "solo")
    for config in configs():
        [outcome] = train_pack([config], [RunStart()])
        assert outcome.error is None
    in_dir(monkeypatch, tmp_path / "packed")
    outcomes = train_pack(configs(), [RunStart()] * len(variants))
    assert [o.error for o in outcomes] == [None] * 3
    assert_same_runs(tmp_path / "solo", tmp_path / "packed",
                     ["rescom-folder-lt-if6-s0", "bs-folder-lt-if6-s0", "supcon_bs-folder-lt-if6-s3"])


@pytest.mark.slow
def test_a_killed_pack_resumes_as_a_pack_and_one_member_alone(tmp_path, folder28, monkeypatch):
    import rescom.engine.run as engine

    in_dir(monkeypatch, tmp_path / "solo")
    assert run_cli(args_for(folder28, epochs=3, extra=["--seeds", "0"])).exit_code == 0
    assert run_cli(args_for(folder28, epochs=3, extra=["--seed", "1"])).exit_code == 0
    assert run_cli(args_for(folder28, epochs=3, extra=["--seed", "2"])).exit_code == 0

    original = engine.Run.epoch

    def killed_in_third_epoch(run):
        if run.state.epoch == 2:
            raise KeyboardInterrupt  # the process dies mid-pack: every run's last checkpoint is epoch 2
        yield from original(run)

    in_dir(monkeypatch, tmp_path / "packed")
    with monkeypatch.context() as patch:
        patch.setattr(engine.Run, "epoch", killed_in_third_epoch)
        killed = run_cli(args_for(folder28, epochs=3, extra=["--seeds", "0,1,2"]))
    assert killed.exit_code != 0
    import torch

    for seed in (0, 1, 2):
        state = torch.load(tmp_path / f"packed/runs/rescom-folder-lt-if6-s{seed}/checkpoint.pt", weights_only=True)
        assert state["epoch"] == 2
    # Seed 2 alone, then seeds 0 and 1 as a pack.
    alone = run_cli(args_for(folder28, epochs=3, extra=["--seed", "2", "--resume"]))
    assert alone.exit_code == 0, alone.output
    pack = run_cli(args_for(folder28, epochs=3, extra=["--seeds", "0,1", "--resume"]))
    assert pack.exit_code == 0, pack.output
    assert_same_runs(tmp_path / "solo", tmp_path / "packed", [f"rescom-folder-lt-if6-s{s}" for s in (0, 1, 2)],
                     checkpoint_bytes=False)


@pytest.mark.slow
@pytest.mark.parametrize("expected", [True, False], ids=["expected-error", "bug"])
def test_one_failed_run_of_a_pack_lets_the_others_finish(tmp_path, folder28, monkeypatch, expected):
    import rescom.engine.run as engine
    from rescom.errors import NonFiniteLossError

    original = engine.Run.epoch

    def seed_one_breaks(run):
        if run.config.run.seed == 1 and run.state.epoch == 1:
            raise (NonFiniteLossError if expected else RuntimeError)("disk full")
        yield from original(run)

    in_dir(monkeypatch, tmp_path)
    monkeypatch.setattr(engine.Run, "epoch", seed_one_breaks)
    result = run_cli(args_for(folder28, extra=["--seeds", "0,1"]))
    if expected:  # one line naming the run, exit 2
        assert result.exit_code == 2
        assert "rescom-folder-lt-if6-s1: disk full" in " ".join(result.output.split())
    else:  # a bug: raised with its traceback once the other run has finished
        assert result.exit_code == 1 and type(result.exception) is RuntimeError, result.output
        assert "rescom-folder-lt-if6-s1: stopped, RuntimeError: disk full" in " ".join(result.output.split())
    assert (tmp_path / "runs/rescom-folder-lt-if6-s0/metrics.json").is_file()
    assert not (tmp_path / "runs/rescom-folder-lt-if6-s1/metrics.json").exists()


def test_a_pack_that_would_not_fit_says_so_before_training(tmp_path, tiny_folder, monkeypatch):
    import rescom.engine.pack as pack
    from test_train_cli import tiny_args

    in_dir(monkeypatch, tmp_path)
    monkeypatch.setattr(pack, "available_host_memory", lambda: 2**20)  # 1 MiB free
    args = tiny_args(tiny_folder, extra=["--no-track"])
    seed_at = args.index("--seed")
    result = run_cli([*args[:seed_at], *args[seed_at + 2:], "--seeds", "0,1,2,3"])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    import re

    fits = re.search(r"a pack of 4 runs needs about .* pack at most (\d+) runs", output)
    assert fits and int(fits.group(1)) < 4, output
    assert not (tmp_path / "runs").exists()  # refused before any run directory was written


def test_seeds_refuses_a_run_name_and_repeated_seeds(tmp_path, tiny_folder, monkeypatch):
    from test_train_cli import tiny_args

    in_dir(monkeypatch, tmp_path)
    args = tiny_args(tiny_folder, extra=["--no-track"])
    seed_at = args.index("--seed")
    base = [*args[:seed_at], *args[seed_at + 2:]]
    named = run_cli([*base, "--seeds", "0,1", "--set", "run.run_name=x"])
    assert named.exit_code == 2 and "run.run_name names one run" in named.output
    twice = run_cli([*base, "--seeds", "0,0"])
    assert twice.exit_code == 2 and "appears twice" in twice.output
    both = run_cli([*base, "--seeds", "0,1", "--seed", "1"])
    assert both.exit_code == 2 and "--seed and --seeds" in both.output
    assert not (tmp_path / "runs").exists()


SMOKE = Path(__file__).resolve().parents[1] / "pipelines/smoke/params.yaml"


def _record(kind: str, target: str | None = None, **arguments) -> dict:
    """A stage's record as dvc.yaml's meta holds it once DVC interpolated it."""
    from rescom.pipeline.stage_record import StageRecord

    return StageRecord(kind, target, {"params": "pipelines/smoke/params.yaml", **arguments}).as_meta()


def _beta(beta: float) -> dict:
    return _record("train", table="beta", item={"beta": beta, "seed": 0})


def test_pack_key_groups_training_stages_of_one_params_file_only(monkeypatch):
    from rescom.pipeline.packing import TrainStage, pack_command, pack_key

    monkeypatch.chdir(SMOKE.parents[2])
    keys = {pack_key(_beta(b)) for b in (0.0, 0.999)}
    main = pack_key(_record("train", table="main", item={"method": "bs", "imbalance": 10, "seed": 0}))
    assert len(keys) == 1 and None not in keys and main in keys  # runs of other tables and methods pack too
    assert pack_key(_record("prepare", key="fmnist-if10")) is None
    assert pack_key(_record("report")) is None
    assert pack_key(_record("analysis", "gradients")) is None
    assert pack_key(None) is None  # a stage written by hand, without a record
    assert pack_key(_beta(0.5)) is None  # no such run: it runs alone and reports its own error
    other = {**_beta(0.0), "arguments": {**_beta(0.0)["arguments"], "params": "params.yaml", "table": "main",
                                         "item": {"method": "bs", "imbalance": 100, "seed": 0}}}
    assert pack_key(other) not in keys  # another profile
    argv = pack_command({"beta@0.0-0": _beta(0.0), "beta@0.999-0": _beta(0.999)}, "out/results.json")
    assert argv[:7] == ["rescom", "pipeline", "train-pack", "--params", "pipelines/smoke/params.yaml",
                        "--results", "out/results.json"]
    assert argv[7::2] == ["--stage", "--stage"]
    stage = TrainStage.from_json(argv[10], "pipelines/smoke/params.yaml")
    assert (stage.name, stage.table, stage.item) == ("beta@0.999-0", "beta", {"beta": 0.999, "seed": 0})
    with pytest.raises(ValueError):
        pack_command({"report": _record("report")}, "r.json")


@pytest.mark.slow
def test_train_pack_trains_each_stage_as_alone_and_records_a_failed_one(tmp_path, monkeypatch):
    import shutil

    from test_train_cli import runner

    from rescom.cli import app

    def workspace(name: str) -> Path:
        root = in_dir(monkeypatch, tmp_path / name)
        (root / "pipelines/smoke").mkdir(parents=True)
        shutil.copy(SMOKE, root / "pipelines/smoke/params.yaml")
        prepared = runner.invoke(app, ["pipeline", "prepare", "--params", "pipelines/smoke/params.yaml",
                                       "--key", "fmnist-if10"])
        assert prepared.exit_code == 0, prepared.output
        return root

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    alone = workspace("alone")
    result = runner.invoke(app, ["pipeline", "train", "--params", "pipelines/smoke/params.yaml", "--table", "beta",
                                 "--item", "beta=0.0", "--item", "seed=0"])  # the stage's run, via the CLI
    assert result.exit_code == 0, result.output

    packed = workspace("packed")
    records = {f"beta@{b}-0": _beta(b) for b in (0.0, 0.999, 0.5)}
    from rescom.pipeline.packing import pack_command

    argv = pack_command(records, str(packed / "results.json"))
    result = runner.invoke(app, argv[1:])
    assert result.exit_code == 1, result.output  # one stage failed
    results = json.loads((packed / "results.json").read_text())
    assert set(results) == set(records)
    assert results["beta@0.0-0"] == {"ok": True, "error": ""} and results["beta@0.999-0"]["ok"]
    assert not results["beta@0.5-0"]["ok"] and "no run with" in results["beta@0.5-0"]["error"]
    run = "runs/smoke/beta/beta0.0-s0"
    for name in ("metrics.json", "history.csv", "checkpoint.pt", "per_class.csv"):
        assert (alone / run / name).read_bytes() == (packed / run / name).read_bytes(), name
    assert (packed / "runs/smoke/beta/beta0.999-s0/metrics.json").is_file()


@pytest.mark.slow
def test_gpu_pack_script_dry_run_on_cpu_without_mlflow_dvc_or_dask(tmp_path):
    """scripts/gpu-pack.sh, tiny and on the CPU, where MLflow, DVC and Dask cannot be imported (as on
    the GPU machine): it prints the bench table and every packed run finishes."""
    import os
    import subprocess
    import sys

    blocked = tmp_path / "blocked"
    for name in ("mlflow", "dvc", "dask", "distributed"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(f"raise ImportError('{name} is not installed here')\n")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(blocked), "GPU_PACK_DIR": str(tmp_path / "out"), "DEVICE": "cpu", "PYTHON": sys.executable,
           "RUNS": "2", "EPOCHS": "1", "EPOCHS_TRAIN": "1", "PACK_TRAIN": "2",
           "SHAPE": "--classes 4 --max-count 64 --imbalance 2 --test-per-class 4"}
    done = subprocess.run(["bash", str(repo / "scripts/gpu-pack.sh")], env=env, capture_output=True, text=True,
                          timeout=1500)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    summary = (tmp_path / "out/summary.txt").read_text()
    assert "bench-pack: pass" in summary and "train-pack: pass" in summary, summary
    assert "2 of 2 runs finished" in summary, summary
    rows = [line.split() for line in summary.splitlines() if line.startswith(" ") and line.split()[0].isdigit()]
    assert [row[0] for row in rows] == ["1", "2"], summary
    assert float(rows[0][3]) == 1.0 and float(rows[1][3]) > 0, summary  # the ratio column
