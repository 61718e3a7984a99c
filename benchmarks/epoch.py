"""Time a real training epoch on synthetic data of CIFAR-100-LT IF=100 shapes (no files needed).

The epoch is the one `rescom train` runs: the tensor data pipeline, the step (Eq. 7), each replayed
as a CUDA graph on a GPU (run.cuda_graphs), the loop's periodic host syncs, and evaluation amortised
over `eval_every` epochs. Launches per step (aten ops; on a GPU also kernel and graph launches) make
launch overhead visible on any device. The epoch trains with one AutoAugment policy; the other
policy's augmentation is timed too, and the epoch's time with it swapped in gives the ratio
released / torchvision (target: <= 1.1x on a GPU).
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.core_ops import environment
from benchmarks.timing import synchronize, wall_seconds
from rescom.config import TrainConfig, apply_overrides, resolve_for_data
from rescom.data.preparation.longtail import exponential_counts
from rescom.data.preparation.prepared import PreparedData
from rescom.data.sources.base import Split
from rescom.data.loading import loaders
from rescom.engine.components import build_components
from rescom.engine.evaluate import evaluation_metrics, predict
from rescom.engine.step import make_train_step, use_cuda_graphs
from rescom.engine.run import epoch_seed, train_batches
from rescom.methods import preset_config, uses_two_views
from rescom.progress import console, progress_bar

PAPER_EPOCHS = 400


def synthetic_longtail(num_classes: int = 100, max_count: int = 500, imbalance: float = 100.0,
                       test_per_class: int = 100, size: int = 32, seed: int = 0) -> PreparedData:
    """Random uint8 images with CIFAR-100-LT's shapes: n_i = exponential_counts(K, n_max, IF), a balanced test set."""
    counts = exponential_counts(num_classes, max_count, imbalance)
    rng = np.random.default_rng(seed)

    def split(per_class: list[int]) -> Split:
        labels = np.repeat(np.arange(num_classes), per_class).astype(np.int64)
        return Split(labels, images=rng.integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8))

    return PreparedData("synthetic-cifar100-lt", [f"class{k}" for k in range(num_classes)], 3,
                        split(counts), split([test_per_class] * num_classes), counts,
                        meta={"fingerprint": "synthetic"})


def write_synthetic(out_dir, **shape) -> PreparedData:
    """synthetic_longtail(**shape) written as a prepared set (train with --set data.prepared_dir=out_dir)."""
    from rescom.data.preparation.prepared import prepare
    from rescom.data.sources.base import RawDataset

    data = synthetic_longtail(**shape)
    raw = RawDataset(data.name, data.classes, data.channels, data.train, data.test)
    return prepare(raw, out_dir, imbalance_factor=None, max_count=None, seed=0)


def bench_config(method: str, device: torch.device, *, graphs: bool, eval_every: int, counts: list[int],
                 bf16: bool = False, compile: bool = False, autoaugment: str = "released") -> TrainConfig:
    """The released recipe of `method` (CIFAR recipe, batch 128) on the tensor pipeline, untracked."""
    config = apply_overrides(preset_config(method), {
        "data.dataset": "cifar100-lt", "data.recipe": "cifar", "data.pipeline": "tensor",
        "data.autoaugment": autoaugment,
        "run.device": device.type, "run.bf16": bf16, "run.compile": compile, "run.cuda_graphs": graphs,
        "run.eval_every": eval_every, "run.track": False})
    return resolve_for_data(config, counts)


def count_launches(fn, device: torch.device) -> dict[str, int]:
    """Ops of one call of fn from torch.profiler: aten ops dispatched, and on CUDA the kernel and graph launches."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    synchronize(device)
    with profile(activities=activities) as prof:
        fn()
        synchronize(device)
    names = [event.name for event in prof.events()]
    counts = {"aten_ops": sum(1 for n in names if n.startswith("aten::"))}
    if device.type == "cuda":
        counts["kernel_launches"] = sum(1 for n in names if n in ("cudaLaunchKernel", "cuLaunchKernel",
                                                                  "cudaLaunchKernelExC", "cuLaunchKernelEx"))
        counts["graph_launches"] = sum(1 for n in names if n.startswith("cudaGraphLaunch"))
    return counts


def bench_epoch(device: torch.device | str = "cpu", *, method: str = "rescom", epochs: int = 1,
                eval_every: int = 10, bf16: bool = False, compile: bool = False, graphs: bool = True,
                num_classes: int = 100, max_count: int = 500, imbalance: float = 100.0,
                test_per_class: int = 100, autoaugment: str = "released") -> dict:
    """Seconds per real epoch of `method` after one warm-up epoch; see the module docstring.

    Returns {"env", options, "steps_per_epoch", "epoch_s" (median of the timed epochs), "augment_s"
    (the epoch's batches alone), "step_s" (steps alone, on one fixed batch), "eval_s" (one
    evaluation), "per_epoch_s" (epoch + eval / eval_every), "projected_400_min", "launches" (per
    step: eager and as run), "graphs" (captured or why not), "augment_by_policy_s" (an epoch's
    augmentation under each AutoAugment policy), "released_over_torchvision" (augmentation and epoch)}.
    """
    from rescom.data.augmentation.batched.recipes import POLICIES

    device = torch.device(device)
    data = synthetic_longtail(num_classes, max_count, imbalance, test_per_class=test_per_class)
    config = bench_config(method, device, bf16=bf16, compile=compile, graphs=graphs, eval_every=eval_every,
                          counts=data.class_counts, autoaugment=autoaugment)
    parts = build_components(config, data.class_counts, data.channels, device)
    if compile:
        parts.forward_model = torch.compile(parts.model)
    step = make_train_step(config, parts, device)
    graphed = use_cuda_graphs(config, device)
    two_views = uses_two_views(config)
    batch = config.optim.batch_size
    resident: dict = {}
    test_batches = loaders.evaluation_batches(data, config.data, 256, device)

    def loader(epoch: int, data_config=config.data, cache=resident):
        return loaders.epoch_batches(data, data_config, batch, two_views, epoch_seed(0, epoch), device,
                                      cache, graphs=graphed)

    def augment(epoch: int, *policy):  # the epoch's batches alone
        return [None for _ in loader(epoch, *policy)]

    def epoch_fn(epoch: int):
        with progress_bar() as bar:
            for _ in train_batches(step, loader(epoch), device, config.run.log_every, bar, f"epoch {epoch + 1}"):
                pass

    def evaluate():
        probs, targets = predict(parts.model.inference_model(), test_batches, device)
        return evaluation_metrics(probs, targets, data.class_counts)

    console.log(f"bench epoch: warm-up epoch ({sum(data.class_counts) // batch} steps of {batch}; "
                "CUDA graph capture, compilation, autotuning)")
    epoch_fn(0)  # warm-up: CUDA graph capture, compilation, cuDNN autotuning, allocator growth
    evaluate()
    console.log(f"bench epoch: timing {epochs} epoch(s), then augmentation alone, steps alone, one evaluation")
    epoch_times = [wall_seconds(lambda e=e: epoch_fn(e), device) for e in range(1, epochs + 1)]
    epoch_s = float(np.median(epoch_times))
    augment_s = wall_seconds(lambda: augment(epochs + 1), device)
    *views, target = next(iter(loader(epochs + 2)))
    steps = len(loader(0))
    step_s = wall_seconds(lambda: [step(views, target) for _ in range(steps)], device)
    eval_s = wall_seconds(evaluate, device)
    per_epoch = epoch_s + eval_s / eval_every
    # The other policy's augmentation, built and warmed up (graph capture, allocator growth) as this one was.
    (other,) = (p for p in POLICIES if p != autoaugment)
    other_policy = (apply_overrides(config, {"data.autoaugment": other}).data, {})
    augment(0, *other_policy)
    augment_by_policy = {autoaugment: augment_s,
                         other: wall_seconds(lambda: augment(epochs + 1, *other_policy), device)}
    # the epoch under the other policy: this epoch with its augmentation time swapped for the other's
    epoch_by_policy = {policy: epoch_s - augment_s + seconds for policy, seconds in augment_by_policy.items()}
    eager_step = make_train_step(apply_overrides(config, {"run.cuda_graphs": False}), parts, device)
    launches = {"eager": count_launches(lambda: eager_step(views, target), device)}
    graph_state = "off (CPU)" if device.type != "cuda" else "off (run.cuda_graphs=false)"
    if graphed:
        launches["as run"] = count_launches(lambda: step(views, target), device)
        augment = resident.get("augment")
        reasons = [f"{c.name}: {'captured' if c.captured else 'eager, ' + str(c.disabled_reason)}"
                   for c in (step, getattr(augment, "captured", None)) if c is not None]
        graph_state = "; ".join(reasons)
    return {
        "env": environment(device), "method": method, "bf16": bf16, "compile": compile, "eval_every": eval_every,
        "shape": f"K={num_classes}, n_max={max_count}, IF={imbalance:g}",
        "images": sum(data.class_counts), "test_images": len(data.test), "batch_size": batch, "steps_per_epoch": steps,
        "epoch_times_s": epoch_times, "epoch_s": epoch_s, "augment_s": augment_s, "step_s": step_s,
        "eval_s": eval_s, "per_epoch_s": per_epoch, "projected_400_min": per_epoch * PAPER_EPOCHS / 60.0,
        "launches": launches, "graphs": graph_state, "autoaugment": autoaugment,
        "augment_by_policy_s": augment_by_policy,
        "released_over_torchvision": {
            "augmentation": augment_by_policy["released"] / augment_by_policy["torchvision"],
            "epoch": epoch_by_policy["released"] / epoch_by_policy["torchvision"]},
    }


def format_epoch(result: dict) -> str:
    """The bench_epoch result as a few labelled lines."""
    e = result["epoch_s"]
    ratio = result["released_over_torchvision"]
    by_policy = ", ".join(f"{policy} {seconds:.3f} s" for policy, seconds in sorted(result["augment_by_policy_s"].items()))
    launch_lines = [f"  {mode}: " + ", ".join(f"{k} {v}" for k, v in counts.items())
                    for mode, counts in result["launches"].items()]
    return "\n".join([
        result["env"],
        f"method={result['method']} bf16={result['bf16']} compile={result['compile']}; synthetic long-tailed set "
        f"({result['shape']}): {result['images']} images, {result['steps_per_epoch']} steps of {result['batch_size']} x 2 views",
        f"cuda graphs: {result['graphs']}",
        f"epoch (augment + step + loop): {e:.3f} s  (timed epochs: {', '.join(f'{t:.3f}' for t in result['epoch_times_s'])})",
        f"  augmentation alone: {result['augment_s']:.3f} s ({100 * result['augment_s'] / e:.0f}% of the epoch)",
        f"  steps alone:        {result['step_s']:.3f} s ({100 * result['step_s'] / e:.0f}% of the epoch)",
        f"autoaugment {result['autoaugment']} (trained); an epoch's augmentation: " + by_policy,
        f"released / torchvision: augmentation {ratio['augmentation']:.2f}x, epoch {ratio['epoch']:.2f}x",
        f"evaluation ({result['test_images']} test images): {result['eval_s']:.3f} s, every {result['eval_every']} epochs",
        f"per epoch incl. evaluation: {result['per_epoch_s']:.3f} s; projected {PAPER_EPOCHS} epochs: "
        f"{result['projected_400_min']:.1f} min",
        "launches per step:", *launch_lines,
    ])
