"""End-to-end `rescom train` on a tiny long-tailed folder: every preset, determinism, resume, MLflow, errors."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from cli_errors import assert_one_line_error
from rescom.cli import app

runner = CliRunner()


def tiny_args(root, method="rescom", epochs=2, extra=()):
    """A tiny but real run: folder-lt (counts 24, 13, 7, 4), 8x8 images, width-4 ResNet-32, batch 8."""
    return ["train", "--method", method, "--dataset", "folder-lt", "--imbalance", "6", "--data-root", str(root),
            "--epochs", str(epochs), "--seed", "0",
            "--set", "optim.batch_size=8", "--set", "model.width=4", "--set", "method.queue_size=4",
            "--set", "data.recipe=none", "--set", "optim.lr=0.05", *extra]


def run_cli(args):
    result = runner.invoke(app, [str(a) for a in args])
    return result


def metrics_of(workdir, name):
    return json.loads((workdir / "runs" / name / "metrics.json").read_text())["metrics"]


@pytest.mark.parametrize("method", ["ce", "bs", "supcon_bs", "moco_bs", "rescom"])
def test_every_preset_trains_end_to_end(workdir, tiny_folder, method):
    extra = ["--set", "method.queue_size=16"] if method == "moco_bs" else []
    result = run_cli(tiny_args(tiny_folder, method, extra=extra))
    assert result.exit_code == 0, result.output
    run_dir = workdir / "runs" / f"{method}-folder-lt-if6-s0"
    m = metrics_of(workdir, run_dir.name)
    for key in ("last_test_all", "last_test_many", "last_test_medium", "last_test_few", "last_test_ece",
                "best_test_all", "best_epoch"):
        assert key in m
    assert 0.0 <= m["last_test_all"] <= 100.0
    for name in ("config.yaml", "checkpoint.pt", "history.csv", "per_class.csv", "per_class_accuracy.png",
                 "confusion_matrix.png"):
        assert (run_dir / name).is_file(), name
    history = (run_dir / "history.csv").read_text().splitlines()
    assert len(history) == 3  # header + 2 epochs
    if method in ("rescom", "supcon_bs", "moco_bs"):
        assert "loss_con" in history[0]


def test_rescom_learns_the_tiny_task(workdir, tiny_folder):
    result = run_cli(tiny_args(tiny_folder, "rescom", epochs=8))
    assert result.exit_code == 0, result.output
    # 4 classes: chance is 25%. The bright band makes the task easy; 8 epochs must beat chance clearly.
    assert metrics_of(workdir, "rescom-folder-lt-if6-s0")["best_test_all"] >= 50.0


def test_two_runs_with_one_seed_are_identical(workdir, tiny_folder):
    a = run_cli(tiny_args(tiny_folder, extra=["--set", "run.run_name=a"]))
    b = run_cli(tiny_args(tiny_folder, extra=["--set", "run.run_name=b"]))
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert metrics_of(workdir, "a") == metrics_of(workdir, "b")
    wa = torch.load(workdir / "runs/a/checkpoint.pt", weights_only=True)["components"]["model"]
    wb = torch.load(workdir / "runs/b/checkpoint.pt", weights_only=True)["components"]["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_repeated_run_rewrites_its_dvc_outputs_byte_for_byte(workdir, tiny_folder):
    """What a DVC stage declares as outputs repeats exactly; wall-clock seconds and the MLflow run id,
    which differ each time, are only in run_log.json (so regenerating a profile leaves dvc.lock as it was)."""
    outputs = ("checkpoint.pt", "metrics.json", "history.csv", "per_class.csv", "config.yaml",
               "per_class_accuracy.png", "confusion_matrix.png")
    args = tiny_args(tiny_folder, extra=["--set", "run.run_name=again"])
    assert run_cli(args).exit_code == 0
    run_dir = workdir / "runs/again"
    first = {name: (run_dir / name).read_bytes() for name in outputs}
    first_log = json.loads((run_dir / "run_log.json").read_text())
    result = run_cli([*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert [name for name in outputs if (run_dir / name).read_bytes() != first[name]] == []
    second_log = json.loads((run_dir / "run_log.json").read_text())
    assert second_log["mlflow_run_id"] != first_log["mlflow_run_id"]
    assert len(second_log["epoch_seconds"]) == 2 and second_log["hardware"]
    assert "seconds" not in first["history.csv"].decode() and b"mlflow" not in first["metrics.json"]


def test_killed_and_resumed_run_matches_uninterrupted(workdir, tiny_folder, monkeypatch):
    import rescom.engine.run as engine

    full = run_cli(tiny_args(tiny_folder, epochs=3, extra=["--set", "run.run_name=full"]))
    assert full.exit_code == 0, full.output

    original = engine.Run.epoch

    def killed_in_third_epoch(run):
        if run.state.epoch == 2:
            raise KeyboardInterrupt  # the process dies mid-epoch: epoch 2's checkpoint is the last
        yield from original(run)

    monkeypatch.setattr(engine.Run, "epoch", killed_in_third_epoch)
    killed = run_cli(tiny_args(tiny_folder, epochs=3, extra=["--set", "run.run_name=resumed"]))
    assert killed.exit_code != 0
    assert torch.load(workdir / "runs/resumed/checkpoint.pt", weights_only=True)["epoch"] == 2
    monkeypatch.setattr(engine.Run, "epoch", original)
    resumed = run_cli(tiny_args(tiny_folder, epochs=3, extra=["--set", "run.run_name=resumed", "--resume"]))
    assert resumed.exit_code == 0, resumed.output

    assert metrics_of(workdir, "full") == metrics_of(workdir, "resumed")
    # The run log holds every epoch's seconds once: the resumed run appended epoch 3 to epochs 1-2.
    assert len(json.loads((workdir / "runs/resumed/run_log.json").read_text())["epoch_seconds"]) == 3
    wf = torch.load(workdir / "runs/full/checkpoint.pt", weights_only=True)["components"]
    wr = torch.load(workdir / "runs/resumed/checkpoint.pt", weights_only=True)["components"]
    assert all(torch.equal(wf["model"][k], wr["model"][k]) for k in wf["model"])
    assert torch.equal(wf["queue"]["queue_keys"], wr["queue"]["queue_keys"])

    # The resumed run continued the same MLflow run: one run, three epochs of history.
    from mlflow.tracking import MlflowClient

    run_id = json.loads((workdir / "runs/resumed/run_log.json").read_text())["mlflow_run_id"]
    client = MlflowClient()
    history = client.get_metric_history(run_id, "curves/test_all")
    assert sorted(m.step for m in history) == [1, 2, 3]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_resume_refuses_a_checkpoint_written_by_other_training_code(workdir, tiny_folder, monkeypatch):
    """The checkpoint's code identity (the training stage's code deps) differs: one line, nothing written."""
    import rescom.engine.run as engine
    from rescom.engine.checkpoint import save_checkpoint

    original = engine.Run.epoch

    def killed_in_second_epoch(run):
        if run.state.epoch == 1:
            raise KeyboardInterrupt
        yield from original(run)

    monkeypatch.setattr(engine.Run, "epoch", killed_in_second_epoch)
    assert run_cli(tiny_args(tiny_folder, epochs=2, extra=["--set", "run.run_name=other"])).exit_code != 0
    monkeypatch.setattr(engine.Run, "epoch", original)
    path = workdir / "runs/other/checkpoint.pt"
    state = torch.load(path, weights_only=True)
    save_checkpoint({**state, "code": "0" * 64}, path)  # as an edit of the engine would have written it
    before = path.read_bytes()
    resumed = run_cli(tiny_args(tiny_folder, epochs=2, extra=["--set", "run.run_name=other", "--resume"]))
    assert_one_line_error(resumed, "other training code")
    assert path.read_bytes() == before


def test_mlflow_run_has_params_tags_metrics_artifacts(workdir, tiny_folder):
    from mlflow.tracking import MlflowClient

    result = run_cli(tiny_args(tiny_folder, extra=["--set", "run.run_name=tracked"]))
    assert result.exit_code == 0, result.output
    run_id = json.loads((workdir / "runs/tracked/run_log.json").read_text())["mlflow_run_id"]
    run = MlflowClient().get_run(run_id)
    assert run.data.params["method.num_pos"] == "1"
    assert run.data.params["method.queue"] == "balanced"
    assert run.data.params["method.num_neg"] == "12"  # auto = min(400, (K-1)Q) = 3 * 4
    assert run.data.tags["class_counts"] == "24,13,7,4"
    assert len(run.data.tags["dataset_fingerprint"]) == 64
    assert run.data.tags["git_commit"]
    for key in ("curves/loss_cls", "curves/loss_con", "curves/lr", "curves/train_acc", "curves/test_all",
                "curves/test_medium", "curves/test_few", "curves/test_ece", "summary/last_test_all",
                "summary/best_test_all", "summary/last_test_ece"):
        assert key in run.data.metrics, key
    from rescom.tracking import artifact_repository

    artifacts = {a.path for a in artifact_repository(MlflowClient(), run_id).list_artifacts()}
    assert {"config.yaml", "per_class.csv", "confusion_matrix.png", "per_class_accuracy.png"} <= artifacts


def test_nan_loss_stops_and_keeps_last_good_checkpoint(workdir, tiny_folder, monkeypatch):
    import rescom.engine.step as engine

    ok = run_cli(tiny_args(tiny_folder, epochs=2, extra=["--set", "run.run_name=nan"]))
    assert ok.exit_code == 0
    before = (workdir / "runs/nan/checkpoint.pt").read_bytes()
    real_step = engine.train_step

    def exploding_step(*args, **kwargs):
        losses = real_step(*args, **kwargs)
        losses["loss"] = losses["loss"] * float("nan")
        return losses

    monkeypatch.setattr(engine, "train_step", exploding_step)
    result = run_cli(tiny_args(tiny_folder, epochs=3, extra=["--set", "run.run_name=nan", "--overwrite"]))
    assert_one_line_error(result, "loss is nan")
    # A fresh (overwritten) run failed in epoch 1: nothing newer than the old checkpoint was written.
    assert (workdir / "runs/nan/checkpoint.pt").read_bytes() == before


def _nan_from_epoch(monkeypatch, first_bad_epoch):
    """Make the real step's loss NaN from 0-based epoch first_bad_epoch on."""
    import rescom.engine.step as step_module
    import rescom.engine.run as engine

    real_step, real_epoch = step_module.train_step, engine.Run.epoch
    current = {"epoch": 0}

    def maybe_exploding_step(*args, **kwargs):
        losses = real_step(*args, **kwargs)
        if current["epoch"] >= first_bad_epoch:
            losses["loss"] = losses["loss"] * float("nan")
        return losses

    def tracking_epoch(run):
        current["epoch"] = run.state.epoch
        yield from real_epoch(run)

    monkeypatch.setattr(step_module, "train_step", maybe_exploding_step)
    monkeypatch.setattr(engine.Run, "epoch", tracking_epoch)


def test_nan_in_the_first_epoch_does_not_claim_a_checkpoint(workdir, tiny_folder, monkeypatch):
    _nan_from_epoch(monkeypatch, 0)
    result = run_cli(tiny_args(tiny_folder, epochs=2, extra=["--set", "run.run_name=nan0", "--no-track"]))
    assert_one_line_error(result, "No checkpoint of this run was written")
    assert "epoch 0" not in result.output
    assert not (workdir / "runs/nan0/checkpoint.pt").exists()


def test_run_stopped_by_nan_continues_with_a_lower_lr(workdir, tiny_folder, monkeypatch):
    from mlflow.tracking import MlflowClient

    args = tiny_args(tiny_folder, epochs=3, extra=["--set", "run.run_name=nanlate"])
    with monkeypatch.context() as patch:
        _nan_from_epoch(patch, 1)
        stopped = run_cli(args)
    assert_one_line_error(stopped, "runs/nanlate/checkpoint.pt keeps epoch 1",
                          "--resume --allow-change optim.lr --set optim.lr=0.005")
    assert torch.load(workdir / "runs/nanlate/checkpoint.pt", weights_only=True)["epoch"] == 1

    refused = run_cli(args + ["--resume", "--set", "optim.lr=0.005"])
    assert_one_line_error(refused, "--allow-change optim.lr")
    wrong_key = run_cli(args + ["--resume", "--allow-change", "method.queue_size", "--set", "method.queue_size=8"])
    assert_one_line_error(wrong_key, "cannot change on resume")

    resumed = run_cli(args + ["--resume", "--allow-change", "optim.lr", "--set", "optim.lr=0.005"])
    assert resumed.exit_code == 0, resumed.output
    state = torch.load(workdir / "runs/nanlate/checkpoint.pt", weights_only=True)
    assert state["epoch"] == 3 and state["config"]["optim"]["lr"] == 0.005
    assert [row["lr"] for row in state["history"]] == [0.05, 0.005, 0.005]
    run = MlflowClient().get_run(metrics_of_run_id(workdir, "nanlate"))
    assert run.data.tags["resume_change_epoch_1"] == "after epoch 1: optim.lr: 0.05 -> 0.005"


def metrics_of_run_id(workdir, name):
    return json.loads((workdir / "runs" / name / "run_log.json").read_text())["mlflow_run_id"]


@pytest.mark.parametrize("extra, message", [
    (["--method", "nope"], "unknown preset 'nope'"),
    (["--set", "method.bogus=1"], "method.bogus: unknown key"),
    (["--set", "optim.epochs=two"], "optim.epochs: expected int"),
    (["--set", "method.num_pos=5"], "method.num_pos"),          # Q_p > Q = 4
    (["--set", "method.num_neg=13"], "method.num_neg"),        # Q_n > (K-1)Q = 12
    (["--imbalance", "0.5"], "data.imbalance"),
    (["--set", "optim.batch_size=1000"], "optim.batch_size"),
    (["--set", "method.beta=1.0"], "method.beta"),
    (["--method", "moco_bs", "--set", "method.in_batch=true"], "method.in_batch"),  # its path has no in-batch term
    (["--dataset", "mnist-lt"], "unknown dataset"),
    (["--set", "method.queue=ring"], "method.queue"),
    (["--set", "nokey"], "expected key=value"),
])
def test_bad_input_exits_nonzero_and_writes_nothing(workdir, tiny_folder, extra, message):
    args = tiny_args(tiny_folder)
    # later options win: append the bad one after the defaults
    result = run_cli(args + extra)
    assert_one_line_error(result, message)
    assert not (workdir / "runs").exists() and not (workdir / "data").exists()


@pytest.mark.parametrize("dataset", ["fashion-mnist-lt", "cifar10-lt", "folder-lt"])
def test_missing_data_root_is_an_error_not_a_fallback(workdir, tiny_folder, dataset):
    result = run_cli(tiny_args(tiny_folder) + ["--dataset", dataset, "--data-root", workdir / "does-not-exist"])
    assert_one_line_error(result, "does-not-exist does not exist")
    assert not (workdir / "runs").exists() and not (workdir / "data").exists()


def test_existing_run_needs_resume_or_overwrite(workdir, tiny_folder):
    import shutil

    assert run_cli(tiny_args(tiny_folder, epochs=1)).exit_code == 0
    shutil.rmtree(workdir / "data" / "prepared")
    again = run_cli(tiny_args(tiny_folder, epochs=1))
    assert_one_line_error(again, "--resume")
    assert not (workdir / "data" / "prepared").exists()  # refused before its data was prepared again


def test_evaluate_checkpoint_matches_training_metrics(workdir, tiny_folder):
    assert run_cli(tiny_args(tiny_folder, extra=["--set", "run.run_name=ev"])).exit_code == 0
    result = run_cli(["evaluate", workdir / "runs/ev/checkpoint.pt", "--out", workdir / "ev.json"])
    assert result.exit_code == 0, result.output
    evaluated = json.loads((workdir / "ev.json").read_text())
    assert evaluated["test_all"] == pytest.approx(metrics_of(workdir, "ev")["last_test_all"])


def test_runs_in_an_empty_directory_creates_no_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    result = run_cli(["runs"])
    assert result.exit_code == 0 and "no runs yet" in result.output, result.output
    assert list(tmp_path.iterdir()) == []


def test_runs_lists_tracked_runs(workdir, tiny_folder):
    assert run_cli(tiny_args(tiny_folder, epochs=1, extra=["--set", "run.run_name=listed"])).exit_code == 0
    result = run_cli(["runs"])
    assert result.exit_code == 0 and "listed" in result.output


def test_an_explicit_prepared_set_needs_no_raw_source(workdir):
    """data.prepared_dir (a synthetic set, as scripts/gpu-check.sh uses) trains with no CIFAR files anywhere."""
    from benchmarks.cli import app as benchmarks_app

    made = runner.invoke(benchmarks_app, ["synthetic-data", str(workdir / "syn"), "--classes", "4", "--max-count", "40",
                                          "--imbalance", "4", "--test-per-class", "8"])
    assert made.exit_code == 0, made.output
    args = ["train", "--method", "rescom", "--dataset", "cifar10", "--epochs", "1", "--no-track",
            "--set", "optim.batch_size=16", "--set", "model.width=4", "--set", "method.queue_size=4"]
    result = run_cli([*args, "--set", f"data.prepared_dir={workdir / 'syn'}"])
    assert result.exit_code == 0, result.output
    (run_dir,) = (workdir / "runs").iterdir()
    assert metrics_of(workdir, run_dir.name)["last_epoch"] == 1
    missing = run_cli([*args, "--set", f"data.prepared_dir={workdir / 'nothing'}", "--overwrite"])
    assert_one_line_error(missing, "holds no prepared set")


def test_train_help_shows_the_defaults():
    text = " ".join(runner.invoke(app, ["train", "--help"], env={"COLUMNS": "250"}).output.split())
    assert "(default: 400" in text and "(default: fashion-mnist-lt" in text and "[default: rescom]" in text


def test_bf16_training_on_a_cpu_without_bf16_instructions_says_so_at_start(workdir, tiny_folder, tmp_path, monkeypatch):
    from rescom.engine import hardware

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu avx avx2\n")  # an AVX2-only x86 CPU, as CI's machines may be
    monkeypatch.setattr(hardware, "CPUINFO", cpuinfo)
    monkeypatch.setattr(hardware.platform, "machine", lambda: "x86_64")
    result = run_cli(tiny_args(tiny_folder, epochs=1, extra=["--no-track", "--set", "run.bf16=true"]))
    assert result.exit_code == 0, result.output
    assert "torch emulates bf16 here" in result.output
    assert result.output.index("torch emulates bf16") < result.output.index("epoch")
