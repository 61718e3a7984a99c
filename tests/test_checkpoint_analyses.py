"""`rescom analyze` on tiny trained runs: gradients by rank (Fig. 1 right), similarities (Fig. 5), inference cost."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cli_errors import assert_one_line_error
from rescom.cli import app
from rescom.cli.analysis import analysis_app

runner = CliRunner()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def tiny_args(root, method="rescom", epochs=2, extra=()):
    """As in test_train_cli: folder-lt (counts 24, 13, 7, 4), 8x8 images, width-4 ResNet-32, batch 8, Q = 4."""
    return ["train", "--method", method, "--dataset", "folder-lt", "--imbalance", "6", "--data-root", str(root),
            "--epochs", str(epochs), "--seed", "0",
            "--set", "optim.batch_size=8", "--set", "model.width=4", "--set", "method.queue_size=4",
            "--set", "data.recipe=none", "--set", "optim.lr=0.05", *extra]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory, tiny_folder, mlflow_uri):
    """Four tiny runs trained once for the module: rescom, ce, moco_bs (tracked) and rescom untracked."""
    root = tmp_path_factory.mktemp("analysis-runs")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
        for method, extra in (("rescom", []), ("ce", []), ("moco_bs", ["--set", "method.queue_size=16"]),
                              ("rescom", ["--set", "run.run_name=untracked", "--no-track"])):
            result = runner.invoke(app, [str(a) for a in tiny_args(tiny_folder, method, extra=extra)])
            assert result.exit_code == 0, result.output
    return root


@pytest.fixture
def in_runs(runs_root, monkeypatch, mlflow_uri):
    """Work in the module's run directory (data/prepared/ is found there) against the session's store."""
    monkeypatch.chdir(runs_root)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    return runs_root


def checkpoint(name):
    return f"runs/{name}/checkpoint.pt"


RESCOM, CE, MOCO, UNTRACKED = (checkpoint(n) for n in (
    "rescom-folder-lt-if6-s0", "ce-folder-lt-if6-s0", "moco_bs-folder-lt-if6-s0", "untracked"))


def invoke(args):
    result = runner.invoke(analysis_app, [str(a) for a in args])
    return result


def json_output(result):
    return json.loads(result.stdout)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def analysis_artifacts(root, checkpoint_path):
    from mlflow.tracking import MlflowClient

    from rescom.tracking import artifact_repository

    run_id = json.loads((root / checkpoint_path).with_name("run_log.json").read_text())["mlflow_run_id"]
    return {a.path for a in artifact_repository(MlflowClient(), run_id).list_artifacts("analysis")}


def is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def column(rows, name):
    return np.array([float(r[name]) for r in rows if r[name] != ""])


# ---------------------------------------------------------------------------------------------
# vanishing gradients


def _reference_gradient_by_rank(ckpt):
    """Independent reference: embed all training images, Eq. 1 over the checkpoint's queue, torch.autograd,
    then rank each anchor's positive and negative keys by similarity and average |dL/ds| per rank."""
    from rescom.analysis.checkpoint_analyses import load_run_state
    from rescom.data.augmentation.pil.transforms import eval_transform

    config, data, model, _ = load_run_state(ckpt, "cpu")
    state = torch.load(ckpt, weights_only=True)
    keys = state["components"]["queue"]["queue_keys"].double()
    key_labels = state["components"]["queue"]["queue_labels"]
    transform = eval_transform("none", data.channels)  # ToTensor + Normalize(0.5, 0.5)
    images = torch.stack([transform(Image.fromarray(a[..., 0])) for a in data.train.images])  # uint8 [N, 8, 8, 1]
    labels = torch.as_tensor(data.train.labels)
    with torch.no_grad():
        z = model(images)[1].double()
    sim = (z @ keys.T).requires_grad_(True)  # [N, M]
    tau = config.method.temperature
    pos = (labels[:, None] == key_labels[None, :]).double()
    loss = (-(pos * torch.log_softmax(sim / tau, dim=1)).sum(1) / pos.sum(1)).sum()
    loss.backward()
    grad, s = sim.grad.abs().numpy(), sim.detach().numpy()
    out = {}
    for name, mask in (("positive", pos.bool().numpy()), ("negative", ~pos.bool().numpy())):
        per_rank = [[] for _ in range(mask.sum(1).max())]
        for i in range(s.shape[0]):
            idx = np.flatnonzero(mask[i])
            for r, j in enumerate(idx[np.argsort(-s[i, idx], kind="stable")]):
                per_rank[r].append(grad[i, j])
        out[name] = np.array([np.mean(v) for v in per_rank])
    return out, len(labels)


def test_gradients_over_the_queue_match_autograd_and_are_logged(in_runs):
    # 6 batches of 8 cover all 48 training images, so the per-rank means are those of the whole set.
    result = invoke(["gradients", RESCOM, "--num-batches", 6, "--batch-size", 8, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    summary = json_output(result)
    assert summary["keys"] == "queue" and summary["embedding"] == "projection"
    assert summary["num_queries"] == 48 and summary["num_keys"] == 16 and summary["temperature"] == 0.2
    assert summary["mlflow"].startswith("logged")
    out = in_runs / "runs/rescom-folder-lt-if6-s0/analysis"
    rows = read_csv(out / "gradient_by_rank.csv")
    # balanced queue, Q = 4 per class, K = 4: every anchor has 4 positive and 12 negative keys
    assert len(rows) == 12 and [int(r["rank"]) for r in rows] == list(range(12))
    assert len(column(rows, "positive_grad")) == 4 and len(column(rows, "negative_grad")) == 12
    assert (column(rows, "positive_count") == 48).all() and (column(rows, "negative_count") == 48).all()
    neg_grad, neg_sim = column(rows, "negative_grad"), column(rows, "negative_similarity")
    # per anchor p_ij / tau grows with s_ij: harder (more similar) negatives carry more gradient
    assert (np.diff(neg_sim) <= 1e-9).all() and (np.diff(neg_grad) <= 1e-9).all() and (neg_grad > 0).all()
    assert np.abs(np.concatenate([column(rows, "positive_similarity"), neg_sim])).max() <= 1 + 1e-6
    reference, n = _reference_gradient_by_rank(in_runs / RESCOM)
    assert n == 48
    np.testing.assert_allclose(column(rows, "positive_grad"), reference["positive"], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(neg_grad, reference["negative"], rtol=1e-4, atol=1e-6)
    assert is_png(out / "gradient_by_rank.png")
    assert {"analysis/gradient_by_rank.csv", "analysis/gradient_by_rank.png"} <= analysis_artifacts(in_runs, RESCOM)


def test_gradients_without_queue_use_other_images_and_untracked_runs_skip_mlflow(in_runs):
    result = invoke(["gradients", CE, "--num-batches", 3, "--batch-size", 8, "--out", "grad-ce"])
    assert result.exit_code == 0, result.output
    summary = json_output(result)
    assert summary["keys"] == "batch" and summary["num_keys"] == 16  # the other two batches
    assert summary["embedding"].startswith("encoder")
    rows = read_csv(in_runs / "grad-ce/gradient_by_rank.csv")
    assert rows and rows[0]["keys"] == "batch" and rows[0]["embedding"].startswith("encoder")
    assert is_png(in_runs / "grad-ce/gradient_by_rank.png")

    result = invoke(["gradients", UNTRACKED, "--num-batches", 2, "--batch-size", 8, "--queue-source", "batch",
                     "--out", "grad-untracked"])
    assert result.exit_code == 0, result.output
    assert json_output(result)["mlflow"].startswith("skipped: the run has no MLflow run id")
    assert (in_runs / "grad-untracked/gradient_by_rank.csv").is_file()


def test_gradients_of_a_moco_run_use_its_fifo_queue(in_runs):
    result = invoke(["gradients", MOCO, "--num-batches", 2, "--batch-size", 8, "--out", "grad-moco"])
    assert result.exit_code == 0, result.output
    summary = json_output(result)
    assert summary["keys"] == "queue" and summary["num_keys"] == 16
    rows = read_csv(in_runs / "grad-moco/gradient_by_rank.csv")
    # the FIFO queue's class mix follows the data: positives + negatives per anchor = 16 keys
    assert len(column(rows, "negative_grad")) + 1 <= 16
    assert {"analysis/gradient_by_rank.csv", "analysis/gradient_by_rank.png"} <= analysis_artifacts(in_runs, MOCO)


# ---------------------------------------------------------------------------------------------
# similarity distributions


def test_similarity_groups_per_run_with_embedding_named(in_runs):
    result = invoke(["similarity", "--run", f"rescom={RESCOM}", "--run", f"ce={CE}", "--out", "sim"])
    assert result.exit_code == 0, result.output
    rows = read_csv(in_runs / "sim/similarity_summary.csv")
    assert {(r["method"], r["group"]) for r in rows} == {(m, g) for m in ("rescom", "ce")
                                                         for g in ("many", "medium", "few")}
    by = {(r["method"], r["group"]): r for r in rows}
    for method in ("rescom", "ce"):
        # train counts 24 | 13, 7, 4: one medium class, three few; 6 test images each -> C(6, 2) pairs per class
        assert int(by[method, "many"]["n_pairs"]) == 0 and by[method, "many"]["mean"] == ""
        assert int(by[method, "medium"]["n_pairs"]) == 15
        assert int(by[method, "few"]["n_pairs"]) == 45
        for group in ("medium", "few"):
            r = by[method, group]
            q = [float(r[k]) for k in ("q05", "q25", "q50", "q75", "q95")]
            assert -1.0 - 1e-6 <= q[0] <= q[-1] <= 1.0 + 1e-6 and q == sorted(q)
            assert q[0] <= float(r["mean"]) <= q[-1] + 1e-6 and float(r["std"]) >= 0
    assert by["rescom", "few"]["embedding"] == "projection"
    assert by["ce", "few"]["embedding"].startswith("encoder (l2-normalised")
    assert is_png(in_runs / "sim/similarity_hist.png")
    for ckpt in (RESCOM, CE):
        assert {"analysis/similarity_summary.csv", "analysis/similarity_hist.png"} <= analysis_artifacts(in_runs, ckpt)


# ---------------------------------------------------------------------------------------------
# inference cost


def test_inference_cost_of_checkpoints(in_runs):
    result = invoke(["inference-cost", RESCOM, "--repeat", 3, "--warmup", 1])
    assert result.exit_code == 0, result.output
    summary = json_output(result)
    inference, training = summary["rows"]
    assert inference["model"] == "inference" and training["model"] == "training forward"
    assert inference["ms_median"] > 0 and training["ms_median"] > 0
    assert inference["params"] < training["params"]  # the projection head is training-only
    assert "both views (128 images)" in training["what"]
    assert summary["image_shape"] == [1, 8, 8]
    out = in_runs / "runs/rescom-folder-lt-if6-s0/analysis"
    rows = read_csv(out / "inference_cost.csv")
    assert [r["source"] for r in rows[:2]] == ["measured", "measured"] and float(rows[0]["ms_median"]) > 0
    paper_rows = rows[2:]  # Tables 5 and 8, labelled as the paper's own 2080Ti measurement
    assert len(paper_rows) == 10 and all(r["source"].startswith("paper") and "2080Ti" in r["paper_source"]
                                         for r in paper_rows)
    markdown = (out / "inference_cost.md").read_text()
    assert "| inference |" in markdown and "| ResCom (resnet50, imagenet-lt) | 8.3 |" in markdown and "threads" in markdown
    assert {"analysis/inference_cost.csv", "analysis/inference_cost.md"} <= analysis_artifacts(in_runs, RESCOM)
    measured = json.loads((out / "measured.json").read_text())  # what was timed, not the times: its DVC hash
    assert [m["model"] for m in measured["models"]] == ["inference", "training forward"]
    assert measured["image_shape"] == [1, 8, 8] and "ms_median" not in json.dumps(measured)

    result = invoke(["inference-cost", MOCO, "--repeat", 2, "--warmup", 0, "--out", "cost-moco"])
    assert result.exit_code == 0, result.output
    inference, training = json_output(result)["rows"]
    assert "momentum encoder" in training["what"]
    assert training["params"] > 2 * inference["params"]  # model + its momentum copy


def test_inference_cost_of_a_config_needs_no_checkpoint(in_runs):
    result = invoke(["inference-cost", "--method", "rescom", "--dataset", "cifar100-lt", "--set", "model.width=4",
                     "--batch", 4, "--repeat", 1, "--warmup", 0, "--out", "cost-config"])
    assert result.exit_code == 0, result.output
    summary = json_output(result)
    assert summary["image_shape"] == [3, 32, 32] and summary["mlflow"].startswith("skipped")
    assert all(r["ms_median"] > 0 for r in summary["rows"])
    assert (in_runs / "cost-config/inference_cost.md").is_file()


# ---------------------------------------------------------------------------------------------
# loading and errors


def test_load_run_gives_the_trained_model(in_runs):
    from rescom.analysis.checkpoint_analyses import load_run_state

    config, data, model, _ = load_run_state(RESCOM, "cpu")
    state = torch.load(RESCOM, weights_only=True)["components"]["model"]
    assert config.method_name == "rescom" and data.class_counts == [24, 13, 7, 4]
    assert not model.training and model.projection is not None
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("args, message", [
    (["gradients", "runs/nope/checkpoint.pt"], "no checkpoint at runs/nope/checkpoint.pt"),
    (["gradients", RESCOM, "--queue-source", "ring"], "queue_source must be one of"),
    (["gradients", CE, "--queue-source", "queue"], "has no queue"),
    (["gradients", RESCOM, "--queue-source", "batch", "--num-batches", 1], "num_batches must be >= 2"),
    (["similarity", "--run", "rescom", "--out", "x"], "expected LABEL=CHECKPOINT"),
    (["similarity", "--run", f"={RESCOM}", "--out", "x"], "expected LABEL=CHECKPOINT"),
    (["similarity", "--run", "a=runs/nope.pt", "--out", "x"], "no checkpoint at runs/nope.pt"),
    (["similarity", "--run", f"a={RESCOM}", "--run", f"a={CE}", "--out", "x"], "given twice"),
    (["similarity", "--out", "x"], "--run LABEL=CHECKPOINT is required"),
    (["inference-cost", "runs/nope.pt"], "no checkpoint at runs/nope.pt"),
    (["inference-cost"], "give a CHECKPOINT or --method"),
])
def test_bad_input_is_one_error_line_and_exit_2(in_runs, args, message):
    result = invoke(args)
    assert_one_line_error(result, message)
    assert not result.stdout.strip(), result.stdout  # bad input is refused before any work
