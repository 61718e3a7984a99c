"""The device paths on a GPU (marked `cuda`; skipped, with the reason shown, where none is available).

Run on a machine with a GPU by scripts/gpu-check.sh (no MLflow or DVC needed: runs use --no-track).
Covered: a 2-epoch training of every preset on the tensor pipeline with the step and the
augmentation (the released AutoAugment, as the paper profile) replayed as CUDA graphs; evaluate;
the three analyses; resume; the tensor augmentation (both policies) against its per-image reference
on the GPU, and as a captured graph; a captured step against the eager step.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

pytestmark = pytest.mark.cuda
if not torch.cuda.is_available():
    pytest.skip("no CUDA device: the cuda tests run on a GPU machine (scripts/gpu-check.sh)", allow_module_level=True)

from rescom.cli import app  # noqa: E402  (imported only where the module is not skipped)
from rescom.cli.analysis import analysis_app  # noqa: E402  (as above)
from rescom.data.preparation.prepared import prepare  # noqa: E402  (as above)
from rescom.data.sources.base import RawDataset, Split  # noqa: E402  (as above)

runner = CliRunner()
CUDA = torch.device("cuda")
CLASSES = 4


@pytest.fixture(scope="module")
def cifar_like(tmp_path_factory):
    """A prepared in-memory set of 32x32 RGB images (counts 64, 32, 16, 8; 16 test images per class)."""
    rng = np.random.default_rng(0)

    def split(per_class):
        labels = np.repeat(np.arange(CLASSES), per_class).astype(np.int64)
        images = rng.integers(0, 80, (len(labels), 32, 32, 3), dtype=np.uint8)
        for i, label in enumerate(labels):  # a bright band whose row encodes the class: learnable
            images[i, 8 * label:8 * label + 8] += 150
        return Split(labels, images=images)

    raw = RawDataset("cifar-like", [f"class{k}" for k in range(CLASSES)], 3, split([64, 32, 16, 8]), split([16] * CLASSES))
    out = tmp_path_factory.mktemp("cifar-like") / "prepared"
    prepare(raw, out, imbalance_factor=None, max_count=None, seed=0)
    return out


def train_args(prepared, method="rescom", epochs=2, name=None, extra=()):
    args = ["train", "--method", method, "--dataset", "cifar10", "--epochs", str(epochs), "--seed", "0", "--no-track",
            "--set", f"data.prepared_dir={prepared}", "--set", "data.pipeline=tensor", "--set", "data.recipe=cifar",
            "--set", "data.autoaugment=released",
            "--set", "run.device=cuda", "--set", "optim.batch_size=16", "--set", "model.width=8",
            "--set", "method.queue_size=4", "--set", "optim.lr=0.05"]
    if method == "moco_bs":
        args += ["--set", "method.queue_size=32"]
    if name:
        args += ["--set", f"run.run_name={name}"]
    return [str(a) for a in [*args, *extra]]


def invoke(application, args):
    result = runner.invoke(application, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("method", ["ce", "bs", "supcon_bs", "moco_bs", "rescom"])
def test_every_preset_trains_two_epochs_on_the_gpu(in_tmp, cifar_like, method):
    invoke(app, train_args(cifar_like, method, name=method))
    summary = json.loads((in_tmp / "runs" / method / "metrics.json").read_text())
    m = summary["metrics"]
    assert m["last_epoch"] == 2 and 0.0 <= m["last_test_all"] <= 100.0
    history = (in_tmp / "runs" / method / "history.csv").read_text().splitlines()
    assert len(history) == 3 and all("nan" not in row.lower() for row in history[1:])


def test_evaluate_analyses_and_resume_on_the_gpu(in_tmp, cifar_like, monkeypatch):
    invoke(app, train_args(cifar_like, "rescom", epochs=3, name="full"))
    ckpt = in_tmp / "runs/full/checkpoint.pt"
    evaluated = invoke(app, ["evaluate", ckpt, "--out", in_tmp / "eval.json"])
    metrics = json.loads((in_tmp / "eval.json").read_text())
    assert metrics["epoch"] == 3 and 0.0 <= metrics["test_all"] <= 100.0, evaluated.output
    # The PIL loader of `evaluate` and the resident test set of training agree on the same model.
    final = json.loads((in_tmp / "runs/full/metrics.json").read_text())["metrics"]
    assert abs(final["last_test_all"] - metrics["test_all"]) < 1e-6

    invoke(analysis_app, ["gradients", ckpt, "--out", in_tmp / "grad", "--num-batches", 2, "--batch-size", 16,
                          "--device", "cuda"])
    invoke(analysis_app, ["similarity", "--run", f"rescom={ckpt}", "--out", in_tmp / "sim", "--device", "cuda"])
    invoke(analysis_app, ["inference-cost", ckpt, "--out", in_tmp / "cost", "--device", "cuda", "--repeat", 3])
    for folder in ("grad", "sim", "cost"):
        assert any((in_tmp / folder).iterdir()), folder

    import rescom.engine.run as engine

    original = engine.Run.epoch

    def killed_in_third_epoch(run):
        if run.state.epoch == 2:
            raise KeyboardInterrupt
        yield from original(run)

    monkeypatch.setattr(engine.Run, "epoch", killed_in_third_epoch)
    killed = runner.invoke(app, train_args(cifar_like, "rescom", epochs=3, name="resumed"))
    assert killed.exit_code != 0
    monkeypatch.setattr(engine.Run, "epoch", original)
    invoke(app, train_args(cifar_like, "rescom", epochs=3, name="resumed", extra=["--resume"]))
    history = (in_tmp / "runs/resumed/history.csv").read_text().splitlines()
    assert len(history) == 4  # header + epochs 1-3, two before the kill and one after the resume


def test_tensor_augmentation_on_the_gpu_equals_the_pil_reference():
    from test_fast_path_step import MEAN, STD, reference_path
    from rescom.data.augmentation.batched.recipes import BatchedAugment

    augment = BatchedAugment(MEAN, STD)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8, generator=g)
    params = augment.sample_params(images.shape, g, "cpu")
    reference = reference_path(images, {"crop": (params["crop_dy"], params["crop_dx"]), "flip": params["flip"],
                                        "aa": {"op": params["aa_op"], "apply": params["aa_apply"],
                                               "magnitude": params["aa_magnitude"]},
                                        "hole": (params["cutout_cy"], params["cutout_cx"])})
    on_gpu = augment.apply(images.to(CUDA), {k: v.to(CUDA) for k, v in params.items()}).cpu()
    differing = (on_gpu - reference).abs().gt(1e-5).float().mean().item()
    # Every op is exact but the geometric ones, whose float coordinates may round a border pixel differently.
    assert differing < 1e-3, f"{differing:.2%} of values differ from torchvision"


def test_released_policy_on_the_gpu_equals_the_pil_port():
    """The batched released AutoAugment on CUDA, fed the PIL port's draws, gives the port's images."""
    from PIL import Image

    from rescom.data.augmentation.batched import released_autoaugment as rb
    from rescom.data.augmentation.pil import released_autoaugment as ra

    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (256, 3, 32, 32), dtype=torch.uint8, generator=g)
    params = rb.sample_released_params(len(images), g, "cpu")
    policy = ra.ReleasedCifar10Policy()
    reference = torch.stack([
        torch.from_numpy(np.asarray(policy.apply_drawn(Image.fromarray(img.permute(1, 2, 0).numpy(), "RGB"),
                                                       int(params["policy"][i]), params["apply"][i].tolist(),
                                                       params["sign"][i].tolist())).copy()).permute(2, 0, 1)
        for i, img in enumerate(images)])
    on_gpu = rb.apply_released_autoaugment(images.to(CUDA), {k: v.to(CUDA) for k, v in params.items()}).cpu()
    diff = (on_gpu.int() - reference.int()).abs()
    assert (diff <= 1).float().mean().item() >= 0.999, f"{(diff > 1).float().mean().item():.3%} off by more than 1"
    assert (diff == 0).float().mean().item() >= 0.999, f"{(diff > 0).float().mean().item():.3%} differ"


@pytest.mark.parametrize("policy", ["released", "torchvision"])
def test_captured_augmentation_equals_the_eager_recipe(policy):
    """GraphedAugment (the application replayed as a CUDA graph) gives the eager recipe's batches."""
    from rescom.data.loading.tensor_data import GraphedAugment, batched_recipe

    augment = batched_recipe("cifar", 3, policy)
    graphed = GraphedAugment(augment)
    x = torch.randint(0, 256, (128, 3, 32, 32), dtype=torch.uint8, device=CUDA,
                      generator=torch.Generator(device=CUDA).manual_seed(0))
    eager_gen, graph_gen = (torch.Generator(device=CUDA).manual_seed(3) for _ in range(2))
    for _ in range(6):  # eager warm-up calls, then the capture, then replays
        torch.testing.assert_close(graphed(x, graph_gen), augment(x, eager_gen), rtol=0, atol=1e-6)
    assert graphed.captured.captured, graphed.captured.disabled_reason


def test_training_with_cuda_graphs_learns_the_banded_task(in_tmp, cifar_like):
    """The replayed step really trains: 4 classes (chance 25%), a class-coded bright band."""
    invoke(app, train_args(cifar_like, "rescom", epochs=10, name="learns"))
    m = json.loads((in_tmp / "runs/learns/metrics.json").read_text())["metrics"]
    assert m["best_test_all"] >= 50.0, m


def test_captured_step_equals_the_eager_step(monkeypatch):
    from rescom.config import apply_overrides, resolve_for_data
    from rescom.engine.components import build_components
    from rescom.engine.cuda_graph import CapturedCall
    from rescom.engine.step import train_step
    from rescom.methods import preset_config

    # Deterministic kernels on both sides: mining (top-k) amplifies any float difference into a
    # different key choice, so equal inputs must give bit-equal embeddings for a fair comparison.
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    counts = [64, 32, 16, 8]
    config = resolve_for_data(apply_overrides(preset_config("rescom"), {"optim.batch_size": 16, "method.queue_size": 4}), counts)
    parts = build_components(config, counts, 3, CUDA)
    twin = copy.deepcopy(parts)
    captured = CapturedCall(lambda v, t: train_step(config, twin, v, t), warmup=2)
    g = torch.Generator(device=CUDA).manual_seed(0)
    for _ in range(6):
        views = [torch.randn(16, 3, 32, 32, device=CUDA, generator=g) for _ in range(2)]
        target = torch.randint(0, 4, (16,), device=CUDA, generator=g)
        eager = train_step(config, parts, views, target)
        replayed = captured(views, target)
        for key in eager:
            torch.testing.assert_close(replayed[key].float(), eager[key].float(), rtol=1e-5, atol=1e-6,
                                       msg=lambda text, key=key: f"{key}: {text}")
    assert captured.captured, captured.disabled_reason
    torch.testing.assert_close(twin.queue.keys, parts.queue.keys, rtol=1e-5, atol=1e-6)


def test_pack_graphs_replayed_on_their_own_streams_equal_their_eager_steps(monkeypatch):
    """Two runs' steps, each captured as a CUDA graph and replayed on its own stream, interleaved (as
    rescom train --seeds runs them), equal the same steps run eagerly one run after the other."""
    from rescom.config import apply_overrides, resolve_for_data
    from rescom.engine.components import build_components
    from rescom.engine.cuda_graph import CapturedCall
    from rescom.engine.step import train_step
    from rescom.methods import preset_config

    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    counts = [64, 32, 16, 8]
    runs = []
    for seed in (0, 1):
        config = resolve_for_data(apply_overrides(preset_config("rescom"), {"optim.batch_size": 16,
                                                                            "method.queue_size": 4, "run.seed": seed}), counts)
        eager_parts = build_components(config, counts, 3, CUDA)
        stream = torch.cuda.Stream()
        with torch.cuda.stream(stream):
            packed_parts = copy.deepcopy(eager_parts)
        captured = CapturedCall(lambda v, t, c=config, p=packed_parts: train_step(c, p, v, t), warmup=2)
        runs.append((config, eager_parts, packed_parts, stream, captured))
    torch.cuda.synchronize()
    g = torch.Generator(device=CUDA).manual_seed(0)
    batches = [[([torch.randn(16, 3, 32, 32, device=CUDA, generator=g) for _ in range(2)],
                 torch.randint(0, 4, (16,), device=CUDA, generator=g)) for _ in range(6)] for _ in runs]
    torch.cuda.synchronize()
    replayed = [[] for _ in runs]
    for step in range(6):  # interleaved: one step of each run in turn, each on its own stream
        for r, (_, _, _, stream, captured) in enumerate(runs):
            with torch.cuda.stream(stream):
                views, target = batches[r][step]
                replayed[r].append({k: v.clone() for k, v in captured(views, target).items()})
    torch.cuda.synchronize()
    for r, (config, eager_parts, packed_parts, _, captured) in enumerate(runs):
        assert captured.captured, captured.disabled_reason
        for step in range(6):
            eager = train_step(config, eager_parts, *batches[r][step])
            for key in eager:
                torch.testing.assert_close(replayed[r][step][key].float(), eager[key].float(), rtol=1e-5, atol=1e-6,
                                           msg=lambda text, r=r, step=step, key=key: f"run {r}, step {step}, {key}: {text}")
        torch.testing.assert_close(packed_parts.queue.keys, eager_parts.queue.keys, rtol=1e-5, atol=1e-6)


def without_seed(args):
    at = args.index("--seed")
    return [*args[:at], *args[at + 2:]]


def test_pack_trains_on_the_gpu_each_run_named_and_resumable_as_its_solo_run(in_tmp, cifar_like):
    packed = runner.invoke(app, [*without_seed(train_args(cifar_like, "rescom", epochs=2)), "--seeds", "0,1,2"])
    assert packed.exit_code == 0, packed.output + repr(packed.exception)
    assert "one run's measured peak" in " ".join(packed.output.split())  # the memory check ran first
    solo = invoke(app, train_args(cifar_like, "rescom", epochs=2, extra=["--set", "run.runs_dir=solo"]))
    for seed in (0, 1, 2):
        run_dir = in_tmp / f"runs/rescom-cifar10-if100-s{seed}"
        history = (run_dir / "history.csv").read_text().splitlines()
        assert len(history) == 3 and all("nan" not in row.lower() for row in history[1:])
        assert "packed with 2 other run(s)" in json.loads((run_dir / "run_log.json").read_text())["hardware"]
    # The same function on CUDA, not the same bits: cuDNN autotuning picks kernels by timing, which
    # the other runs' kernels change. Seed 0 packed against seed 0 alone: close, not equal.
    import pandas as pd

    packed_loss = pd.read_csv(in_tmp / "runs/rescom-cifar10-if100-s0/history.csv")["loss"][0]
    solo_loss = pd.read_csv(in_tmp / "solo/rescom-cifar10-if100-s0/history.csv")["loss"][0]
    assert abs(packed_loss - solo_loss) <= 1e-2 * abs(solo_loss), (packed_loss, solo_loss, solo.output)
    resumed = invoke(app, [*without_seed(train_args(cifar_like, "rescom", epochs=3)), "--seed", "1", "--resume",
                           "--allow-change", "optim.epochs"])
    assert "epoch 3/3" in resumed.output


def test_pack_too_large_for_the_gpu_is_refused_before_training(in_tmp, cifar_like, monkeypatch):
    free, total = torch.cuda.mem_get_info()
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (2**20, total))  # 1 MiB free
    result = runner.invoke(app, [*without_seed(train_args(cifar_like, "rescom", epochs=2)), "--seeds", "0,1"])
    assert result.exit_code == 2, result.output
    assert "pack at most 0 runs" in " ".join(result.output.split())
    assert not (in_tmp / "runs").exists()
