"""Multi-process training (engine.distributed) on CPU / gloo: 2 ranks take the single-process step.

The step test spawns 2 processes that each take their half of a fixed global batch of 8, and checks
that, in our form (run.ddp_contrast=global, run.sync_bn=true), queue, weights, gradients and BatchNorm
statistics match one process on the whole batch; in the released form (the defaults: local contrast,
per-rank BatchNorm) each rank's loss is one process's on its half and the gradient their mean. The
end-to-end test runs the real `torchrun --nproc_per_node 2 -m rescom train` on the tiny folder set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import DataLoader, TensorDataset

from rescom.config import ConfigError, apply_overrides, resolve_for_data, validate
from rescom.data.loading import rank_sampler
from rescom.engine import distributed
from rescom.engine.components import build_components
from rescom.engine.step import train_step
from rescom.methods import preset_config

COUNTS = [24, 13, 7, 4]
WORLD = 2
STEPS = 2          # the second step also mines the queue the first one wrote
GLOBAL_BATCH = 8
METHODS = ("rescom", "moco_bs")
# Measured on the 2-core CPU (float32, both presets, both steps): queue keys differ by <= 7e-6, gradients
# by <= 1.4e-5 (values ~1), weights and BN statistics by <= 2e-6, the contrastive loss by <= 2e-6. The
# cause is float rounding: BatchNorm statistics summed per rank then across ranks, not in one pass.
# Mutations that break the algorithm differ by ~0.5 (gather backward without the sum over ranks) and
# ~0.4 (per-rank BatchNorm). One caveat for whoever changes the batches below: a pre-activation
# within float noise of a ReLU kink flips its mask and turns 1e-7 into ~1e-3 in the early layers
# (seen with manual_seed(1), moco_bs step 2: one layers.4.bn1 output at 2e-7); seeds 0, 2, 3 have none.
TOL = {"rtol": 1e-4, "atol": 1e-5}
OURS = {"run.ddp_contrast": "global", "run.sync_bn": True}
RELEASED: dict = {}  # the defaults (fidelity note 13)


def tiny_config(method: str, ddp: dict = OURS):
    """The real preset, shrunk: width-4 ResNet-32, 8x8 grey images, K=4, batch 8; ddp: multi-GPU form."""
    queue = {"method.queue_size": 4} if method == "rescom" else {"method.queue_size": 16}  # KQ = 16 keys
    config = apply_overrides(preset_config(method), {
        "model.width": 4, "optim.batch_size": GLOBAL_BATCH, "optim.lr": 0.05, "run.device": "cpu",
        "method.momentum": 0.9, **queue, **ddp})
    validate(config)
    return resolve_for_data(config, COUNTS)


def global_batches():
    """STEPS fixed random global batches: (two views [8, 1, 8, 8], labels [8] covering every class)."""
    g = torch.Generator().manual_seed(0)
    return [([torch.randn(GLOBAL_BATCH, 1, 8, 8, generator=g) for _ in range(2)],
             torch.tensor([0, 1, 2, 3, 0, 1, 0, 2])[torch.randperm(GLOBAL_BATCH, generator=g)])
            for _ in range(STEPS)]


def run_steps(method: str, rank: int = 0, world_size: int = 1, ddp: dict = OURS) -> list[dict]:
    """STEPS training steps on this rank's slice of each global batch; the state after each."""
    config = tiny_config(method, ddp)
    parts = build_components(config, COUNTS, 1, torch.device("cpu"))
    distributed.prepare_components(parts, torch.device("cpu"), sync_bn=config.run.sync_bn)
    per_rank = GLOBAL_BATCH // world_size
    rows = slice(rank * per_rank, (rank + 1) * per_rank)
    states = []
    for views, target in global_batches():
        losses = train_step(config, parts, [v[rows] for v in views], target[rows])
        states.append({
            "model": {k: v.clone() for k, v in parts.model.state_dict().items()},
            "grads": {n: p.grad.clone() for n, p in parts.model.named_parameters()},
            "queue": {k: v.clone() for k, v in parts.queue.state_dict().items()},
            "key_encoder": ({k: v.clone() for k, v in parts.key_encoder.state_dict().items()}
                            if parts.key_encoder is not None else None),
            "loss_con": losses["loss_con"].item(),
        })
    return states


def _rank_main(rank: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=WORLD)
    try:
        states = {m: run_steps(m, rank, WORLD) for m in METHODS}
        states["released"] = {m: run_steps(m, rank, WORLD, RELEASED) for m in METHODS}
        torch.save(states, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_states(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(_rank_main, args=(str(out / "init"), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]


def _assert_close(got: dict, want: dict, what: str) -> None:
    assert got.keys() == want.keys()
    for key in want:
        if want[key].is_floating_point():
            torch.testing.assert_close(got[key], want[key], **TOL, msg=lambda m, key=key: f"{what} {key}: {m}")
        else:  # labels, pointers, num_batches_tracked: exact
            assert torch.equal(got[key], want[key]), f"{what} {key}"


@pytest.mark.parametrize("method", METHODS)
def test_two_ranks_take_the_single_process_step(two_rank_states, method):
    single = run_steps(method)
    for rank, states in enumerate(two_rank_states):
        for step, (got, want) in enumerate(zip(states[method], single, strict=True), start=1):
            where = f"rank {rank}, step {step}:"
            _assert_close(got["queue"], want["queue"], f"{where} queue")
            _assert_close(got["grads"], want["grads"], f"{where} gradient")
            _assert_close(got["model"], want["model"], f"{where} model")
            if want["key_encoder"] is not None:
                _assert_close(got["key_encoder"], want["key_encoder"], f"{where} key encoder")
            assert got["loss_con"] == pytest.approx(want["loss_con"], rel=1e-5)
    # Every rank holds the same queue, bit for bit: all write the same gathered keys.
    for a, b in zip(two_rank_states[0][method], two_rank_states[1][method], strict=True):
        assert all(torch.equal(a["queue"][k], b["queue"][k]) for k in a["queue"])


def test_the_queue_received_the_whole_global_batch(two_rank_states):
    """Balanced queue, Q = 4: after one step every class's pointer advanced by its count in all 8 labels."""
    _, target = global_batches()[0]
    pointers = two_rank_states[1]["rescom"][0]["queue"]["pointers"]
    assert torch.equal(pointers, torch.minimum(torch.bincount(target, minlength=4), torch.tensor(4)) % 4)
    fifo = two_rank_states[1]["moco_bs"][0]["queue"]
    assert torch.equal(fifo["queue_labels"][:GLOBAL_BATCH], target) and int(fifo["pointer"]) == GLOBAL_BATCH


@pytest.mark.parametrize("method", METHODS)
def test_released_form_averages_the_ranks_local_steps(two_rank_states, method):
    """Step 1 of the released form: rank r's contrastive loss is one process's on its half (local
    BatchNorm, local in-batch / momentum keys, the same initial queue) and every rank's gradient is
    the mean of the halves' gradients (DDP's average of local means)."""
    halves = [run_steps(method, r, WORLD, RELEASED)[0] for r in range(WORLD)]
    mean_grads = {k: (halves[0]["grads"][k] + halves[1]["grads"][k]) / 2 for k in halves[0]["grads"]}
    for rank, states in enumerate(two_rank_states):
        got = states["released"][method][0]
        assert got["loss_con"] == pytest.approx(halves[rank]["loss_con"], rel=1e-5)
        _assert_close(got["grads"], mean_grads, f"rank {rank}, step 1: gradient")
    # The queue still receives all ranks' keys, identically on every rank (released concat_all_gather).
    for a, b in zip(two_rank_states[0]["released"][method], two_rank_states[1]["released"][method], strict=True):
        assert all(torch.equal(a["queue"][k], b["queue"][k]) for k in a["queue"])
    _, target = global_batches()[0]
    queue = two_rank_states[1]["released"][method][0]["queue"]
    if method == "rescom":
        assert torch.equal(queue["pointers"], torch.minimum(torch.bincount(target, minlength=4), torch.tensor(4)) % 4)
    else:
        assert torch.equal(queue["queue_labels"][:GLOBAL_BATCH], target)


def test_released_and_our_forms_differ(two_rank_states):
    """The switch changes the numbers: local contrast with per-rank BatchNorm is not the global step."""
    ours, released = two_rank_states[0]["rescom"][0], two_rank_states[0]["released"]["rescom"][0]
    assert abs(ours["loss_con"] - released["loss_con"]) > 1e-3


@pytest.fixture
def one_rank_group(tmp_path, monkeypatch):
    """A real 1-process gloo group with `active()` forced true: the multi-GPU code paths (DDP, the
    collectives, GlobalBatchNorm) run in this process, each collective over one rank."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    monkeypatch.setattr(distributed, "active", lambda: True)
    yield
    dist.destroy_process_group()


def _spy(monkeypatch, calls: list, name: str) -> None:
    real = getattr(distributed, name)
    monkeypatch.setattr(distributed, name, lambda *args: calls.append(name) or real(*args))


@pytest.mark.parametrize("ddp, sync_bn, gathers", [
    (RELEASED, False, ["gather_keys"]),  # default: per-rank BatchNorm, local contrast, global queue
    (OURS, True, ["gather_batch"]),
    ({"run.ddp_contrast": "local", "run.sync_bn": True}, True, ["gather_keys"]),  # independent switches
])
def test_switches_choose_batchnorm_and_gather(one_rank_group, monkeypatch, ddp, sync_bn, gathers):
    from torch.nn.parallel import DistributedDataParallel

    from rescom.engine.step import forward_losses

    config = tiny_config("rescom", ddp)
    parts = build_components(config, COUNTS, 1, torch.device("cpu"))
    distributed.prepare_components(parts, torch.device("cpu"), sync_bn=config.run.sync_bn)
    assert isinstance(parts.forward_model, DistributedDataParallel)
    synced = [m for m in parts.model.modules() if isinstance(m, distributed.GlobalBatchNorm)]
    plain = [m for m in parts.model.modules() if type(m) in (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)]
    assert (len(synced) > 0, len(plain) > 0) == (sync_bn, not sync_bn)
    calls: list = []
    _spy(monkeypatch, calls, "gather_batch")
    _spy(monkeypatch, calls, "gather_keys")
    views, target = global_batches()[0]
    loss, _, new_keys, key_labels = forward_losses(config, parts, views, target)
    assert calls == gathers
    # One rank: either form is the single-process step (GlobalBatchNorm to float rounding).
    single = build_components(config, COUNTS, 1, torch.device("cpu"))
    with monkeypatch.context() as m:
        m.setattr(distributed, "active", lambda: False)
        want, _, want_keys, want_labels = forward_losses(config, single, views, target)
    torch.testing.assert_close(loss, want, **TOL)
    torch.testing.assert_close(new_keys, want_keys, **TOL)
    assert torch.equal(key_labels, want_labels)


def test_ddp_contrast_is_validated():
    with pytest.raises(ConfigError, match="run.ddp_contrast"):
        validate(apply_overrides(preset_config("rescom"), {"run.ddp_contrast": "all"}))
    with pytest.raises(ConfigError, match="run.sync_bn"):
        apply_overrides(preset_config("rescom"), {"run.sync_bn": "sometimes"})


@pytest.mark.parametrize("size", [47, 48])
def test_rank_slices_concatenate_to_the_single_process_batches(size):
    data = TensorDataset(torch.arange(size))
    single = [b[0] for b in DataLoader(data, batch_size=8, shuffle=True, drop_last=True,
                                       generator=torch.Generator().manual_seed(5))]
    per_rank = []
    for rank in range(4):
        g = torch.Generator().manual_seed(5)
        sampler = rank_sampler.RankSliceBatchSampler(data, 8, rank, 4, g)
        per_rank.append([b[0] for b in DataLoader(data, batch_sampler=sampler, generator=g)])
        assert len(per_rank[-1]) == len(single) == size // 8
    for step, batch in enumerate(single):
        assert torch.equal(torch.cat([ranks[step] for ranks in per_rank]), batch)


def test_global_batch_must_divide_among_ranks():
    with pytest.raises(ConfigError, match="optim.batch_size"):
        rank_sampler.RankSliceBatchSampler(range(20), 10, 0, 4, torch.Generator())
    with pytest.raises(ConfigError, match="divisible by the 3"):
        distributed.check_batch_size(8, distributed.World(0, 3))


def test_single_process_helpers_are_identities():
    z, y = torch.randn(6, 4), torch.tensor([0, 1, 2])
    assert distributed.gather_batch(z, y, None) == (z, y, None)
    keys = z[:3]
    assert distributed.gather_keys(keys, y) == (keys, y)
    sums = {"loss": torch.tensor(1.0)}
    assert distributed.reduce_totals(sums, 3) == (sums, 3)
    assert rank_sampler.rank_seed(123, 0) == 123 and rank_sampler.rank_seed(123, 1) != 123


@pytest.mark.slow
def test_torchrun_two_processes_end_to_end(tmp_path, tiny_folder):
    """The real launcher: 2 gloo ranks, one run directory written by rank 0, a usable checkpoint."""
    torchrun = Path(sys.executable).with_name("torchrun")
    args = ["train", "--method", "rescom", "--dataset", "folder-lt", "--imbalance", "6",
            "--data-root", str(tiny_folder), "--epochs", "2", "--seed", "0", "--no-track",
            "--set", "optim.batch_size=8", "--set", "model.width=4", "--set", "method.queue_size=4",
            "--set", "data.recipe=none", "--set", "optim.lr=0.05", "--set", "run.device=cpu"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path}/unused.db"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "rescom", *args],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["rescom-folder-lt-if6-s0"]
    run_dir = tmp_path / "runs" / "rescom-folder-lt-if6-s0"
    assert json.loads((run_dir / "metrics.json").read_text())["metrics"]["epochs"] == 2
    assert len((run_dir / "history.csv").read_text().splitlines()) == 3
    checkpoint = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == 2
    # Saved from the plain network: same keys as a single-process checkpoint (no "module." prefix).
    assert not any(k.startswith("module.") for k in checkpoint["components"]["model"])
    assert result.stderr.count("last epoch") == 1  # the final table printed by rank 0 only
