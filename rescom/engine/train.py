"""The training run: data, components, epochs, evaluation, checkpoints, tracking.

`train(config)` is the pure core of `rescom train`: it returns the final metrics and leaves the
run directory (config.yaml, checkpoint.pt, history.csv, metrics.json, per_class.csv, figures).
Each epoch's randomness is seeded from (run seed, epoch), so an epoch is a function of the
checkpoint before it: a run killed and resumed ends with exactly the metrics of one never stopped.
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rescom.config import RESUME_CHANGEABLE, ConfigError, TrainConfig, differing_keys, flatten, resolve_for_data
from rescom.data.prepared import PreparedData
from rescom.engine import data as run_data
from rescom.engine import distributed
from rescom.engine.checkpoint import code_fingerprint, load_checkpoint, save_checkpoint
from rescom.engine.components import Components, build_components, learning_rate, set_learning_rate
from rescom.engine.evaluate import evaluation_metrics, predict
from rescom.engine.hardware import device_description
from rescom.engine.outputs import (RUN_LOG_NAME, confusion_matrix, plot_run_figures, read_run_log, run_log,
                                   write_config, write_history, write_json, write_per_class)
from rescom.engine.step import make_step, use_cuda_graphs
from rescom.methods import uses_two_views
from rescom.progress import console, progress_bar
from rescom.tracking import NullTracker, Tracker, git_commit


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or inf; the run stops and keeps its last good checkpoint."""


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C so the MLflow run is closed and the last checkpoint stays.

    A BaseException, so no `except Exception` on the way (MLflow, DataLoader) can swallow it.
    """


class RunExistsError(RuntimeError):
    """A run directory already holds a checkpoint and neither resume nor overwrite was asked for."""


@dataclass
class RunPaths:
    root: Path

    @property
    def checkpoint(self) -> Path:
        return self.root / "checkpoint.pt"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.json"

    @property
    def run_log(self) -> Path:
        """Wall-clock seconds, hardware and MLflow run id: not a DVC output (see outputs.run_log)."""
        return self.root / RUN_LOG_NAME


def run_name(config: TrainConfig) -> str:
    if config.run.run_name:
        return config.run.run_name
    factor = f"-if{config.data.imbalance:g}" if config.data.imbalance is not None else ""
    return f"{config.method_name}-{config.data.dataset}{factor}-s{config.run.seed}"


def select_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("run.device: cuda requested but no CUDA device is available")
    return torch.device(name)


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch)."""
    return (seed * 1_000_003 + epoch) % (2**63)


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          allow_change: tuple[str, ...] = ()) -> dict:
    """Train and evaluate one run; returns the final metrics (last and best epoch).

    allow_change: keys of config.RESUME_CHANGEABLE that may differ from the checkpoint on resume
    (a lower optim.lr after a NaN). Under torchrun every rank calls this; rank 0 alone tracks and
    writes (engine.distributed).
    """
    world = distributed.init_from_env(config.run.device)  # Multi-GPU hook: World() without torchrun
    try:
        with _sigterm_unwinds():
            return _train(config, world, resume, overwrite, allow_change)
    except Terminated:
        console.log("terminated (SIGTERM): the MLflow run is marked KILLED; the last checkpoint is kept")
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        distributed.shutdown(world)


@contextlib.contextmanager
def _sigterm_unwinds():
    """While training, SIGTERM (kill, dvc, a scheduler) raises Terminated instead of ending the process
    at once, which left the MLflow run RUNNING forever. Only the main thread may set handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train(config: TrainConfig, world: distributed.World, resume: bool, overwrite: bool,
           allow_change: tuple[str, ...]) -> dict:
    with distributed.main_first():  # rank 0 prepares the data set; the others then read it
        data = run_data.get_data(config.data, check_counts=lambda counts: resolve_for_data(config, counts))
    config = resolve_for_data(config, data.class_counts)
    config.data.pipeline = run_data.resolve_pipeline(config.data, data)  # the resolved choice is logged
    distributed.check_batch_size(config.optim.batch_size, world)
    paths = RunPaths(Path(config.run.runs_dir) / run_name(config))
    device = distributed.device_for(world, select_device(config.run.device))
    parts = build_components(config, data.class_counts, data.channels, device)
    state, changes = _initial_state(config, paths, parts, resume, overwrite, data, allow_change)
    distributed.prepare_components(parts, device, sync_bn=config.run.sync_bn)  # DDP (+ SyncBatchNorm) when world.size > 1
    if config.run.compile:  # the training forward only; evaluation and checkpoints use the plain module
        parts.forward_model = torch.compile(parts.forward_model or parts.model)
    tracker = _open_tracker(config, data, paths, state, changes) if world.is_main else NullTracker()
    if world.is_main:
        _announce(config, data, paths, device, state["epoch"])
    try:
        metrics = _run_epochs(config, data, parts, device, paths, state, tracker)
    except Terminated:
        tracker.finish("KILLED")
        raise
    except BaseException:
        tracker.finish("FAILED")
        raise
    tracker.finish("FINISHED")
    return metrics


def _announce(config: TrainConfig, data: PreparedData, paths: RunPaths, device: torch.device, start: int) -> None:
    """A first log line (a non-interactive log shows something before the first epoch ends) and data warnings."""
    from rescom.metrics import misleading_data_warnings

    o = config.optim
    console.log(f"{paths.root}: {config.method_name} on {config.data.dataset} ({sum(data.class_counts)} training "
                f"images in {len(data.class_counts)} classes, {len(data.test)} test images), epochs {start + 1}-{o.epochs} "
                f"of {sum(data.class_counts) // o.batch_size} steps x {o.batch_size}, on {device}")
    for line in misleading_data_warnings(data.class_counts, data.test.labels):
        console.log(f"warning: {line}")


def _initial_state(config: TrainConfig, paths: RunPaths, parts: Components, resume: bool, overwrite: bool,
                   data: PreparedData, allow_change: tuple[str, ...]) -> tuple[dict, str]:
    """(state to continue from, the allowed changes made on resume in words, '' if none).

    The state is the checkpoint's (epoch, history) plus the run log's MLflow run id and epoch seconds,
    which the checkpoint does not hold so that it is the same file every time the run is repeated.
    """
    fresh = {"epoch": 0, "history": [], "mlflow_run_id": None, "epoch_seconds": []}
    if not resume:
        if paths.checkpoint.exists() and not overwrite:
            raise RunExistsError(f"{paths.root} already holds a run; pass --resume to continue it or --overwrite")
        return fresh, ""
    checkpoint = load_checkpoint(paths.checkpoint)
    saved = checkpoint["config"]
    differing = differing_keys(config, saved, allow_change)
    if differing:
        changeable = [k for k in differing if k in RESUME_CHANGEABLE]
        hint = f" (to change them on purpose: --allow-change {' --allow-change '.join(changeable)})" if changeable else ""
        raise ConfigError(f"--resume: the config differs from the checkpoint's at {', '.join(differing)}{hint}")
    trained_on = checkpoint.get("data_fingerprint")
    if trained_on and trained_on != data.meta.get("fingerprint"):
        raise run_data.DataMismatchError(
            f"--resume: the prepared data {run_data.prepared_dir(config.data)} is not the set {paths.checkpoint} "
            "was trained on (dataset fingerprints differ); check data.root and the raw files")
    parts.load_state_dict(checkpoint["components"])
    saved_flat, now = flatten(saved), config.flat()
    changes = "; ".join(f"{k}: {saved_flat.get(k)} -> {now[k]}" for k in allow_change if saved_flat.get(k) != now[k])
    if changes:
        console.log(f"resuming {paths.root} after epoch {checkpoint['epoch']} with {changes}")
        changes = f"after epoch {checkpoint['epoch']}: {changes}"
    log = read_run_log(paths.run_log)
    # Checkpoints written before the run log existed carry the run id themselves.
    run_id = log.get("mlflow_run_id") or checkpoint.get("mlflow_run_id")
    seconds = list(log.get("epoch_seconds", []))[:checkpoint["epoch"]]
    return {"epoch": checkpoint["epoch"], "history": checkpoint["history"], "mlflow_run_id": run_id,
            "epoch_seconds": seconds}, changes


def _open_tracker(config: TrainConfig, data: PreparedData, paths: RunPaths, state: dict, changes: str = ""):
    if not config.run.track:
        return NullTracker()
    tracker = Tracker(config.run.experiment)
    if state["mlflow_run_id"]:
        tracker.resume(state["mlflow_run_id"])
        if changes:  # MLflow params cannot change; the run says what the continuation changed
            tracker.set_tags({f"resume_change_epoch_{state['epoch']}": changes})
    else:
        tags = {
            "git_commit": git_commit(), "profile": config.run.profile, "method": config.method_name,
            "dataset": config.data.dataset, "dataset_fingerprint": data.meta.get("fingerprint", ""),
            "class_counts": ",".join(map(str, data.class_counts)), "run_dir": str(paths.root.resolve()),
            "dvc_stage": _dvc_stage(),
        }
        state["mlflow_run_id"] = tracker.start(paths.root.name, config.flat(), tags)
        prepared = run_data.prepared_dir(config.data)
        tracker.log_dataset(prepared.name, data.meta.get("fingerprint", ""), str(prepared), config.run.profile)
    return tracker


def _dvc_stage() -> str:
    import os

    return os.environ.get("DVC_STAGE", "")


def _run_epochs(config: TrainConfig, data: PreparedData, parts: Components, device: torch.device,
                paths: RunPaths, state: dict, tracker) -> dict:
    main = distributed.world().is_main  # Multi-GPU hook: only rank 0 evaluates and writes the run dir
    if main:
        paths.root.mkdir(parents=True, exist_ok=True)
        write_config(paths.root / "config.yaml", config.to_dict())
    two_views = uses_two_views(config)
    test_batches = run_data.evaluation_batches(data, config.data, max(256, config.optim.batch_size), device)
    resident: dict = {}  # the tensor pipeline's device copy of the training set, made once
    graphs = use_cuda_graphs(config, device)
    step = make_step(config, parts, device)  # made once: a CUDA graph is captured once, replayed every epoch
    o = config.optim
    last_eval = None
    hardware = device_description(device)  # what the run log's seconds were measured on
    with progress_bar() as bar:
        epochs_task = bar.add_task("epochs", total=o.epochs, completed=state["epoch"], info="")
        for epoch in range(state["epoch"], o.epochs):
            lr = learning_rate(config, epoch)
            set_learning_rate(parts.optimizer, lr)
            # augmentation draws (PIL path, workers=0); distinct per rank under torchrun, unchanged in one process
            torch.manual_seed(distributed.rank_seed(epoch_seed(config.run.seed, epoch) + 1, distributed.world().rank))
            loader = run_data.epoch_batches(data, config.data, o.batch_size, two_views,
                                            epoch_seed(config.run.seed, epoch), device, resident, graphs=graphs)
            started = time.perf_counter()
            try:
                train_metrics = train_epoch(config, parts, step, loader, device, bar, epoch)
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"{err}. {_nan_advice(config, paths, state['epoch'])}") from None
            seconds = time.perf_counter() - started
            row = {"epoch": epoch + 1, "lr": lr, **train_metrics}
            if main and ((epoch + 1) % config.run.eval_every == 0 or epoch + 1 == o.epochs):
                probs, targets = predict(parts.model.inference_model(), test_batches, device, config.run.channels_last)
                last_eval = (probs, targets)
                evaluation = evaluation_metrics(probs, targets, data.class_counts)
                evaluation.pop("per_class")
                row.update(evaluation)
            state["history"].append(row)
            state["epoch_seconds"].append(seconds)
            state["epoch"] = epoch + 1
            # Checkpoint before logging: if logging fails the epoch is still safe on disk.
            if main:
                save_checkpoint({"config": config.to_dict(), "components": parts.state_dict(), "code": code_fingerprint(),
                                 "data_fingerprint": data.meta.get("fingerprint", ""),
                                 "epoch": state["epoch"], "history": state["history"]}, paths.checkpoint)
                write_json(paths.run_log, run_log(state["mlflow_run_id"], hardware, state["epoch_seconds"]))
            distributed.barrier()  # the other ranks wait while rank 0 evaluates and checkpoints
            tracker.log_metrics({k: v for k, v in row.items() if k != "epoch" and not _nan(v)} | {"epoch_seconds": seconds},
                                step=epoch + 1)
            bar.update(epochs_task, advance=1, info=_summary(row))
            console.log(f"epoch {epoch + 1}/{o.epochs} " + _summary(row))
    if not main:
        return distributed.broadcast_object(None)  # rank 0's summary
    if last_eval is None:  # resumed after the final epoch: evaluate once more from the checkpoint
        last_eval = predict(parts.model.inference_model(), test_batches, device, config.run.channels_last)
    log = run_log(state["mlflow_run_id"], hardware, state["epoch_seconds"])
    return distributed.broadcast_object(_finish(config, data, paths, state, log, tracker, *last_eval))


def _nan_advice(config: TrainConfig, paths: RunPaths, saved_epoch: int) -> str:
    """What is kept after a NaN and how to go on; true for a run stopped in its first epoch too."""
    lower = f"{config.optim.lr / 10:g}"
    if saved_epoch == 0:
        return (f"No checkpoint of this run was written (it stopped in its first epoch); lower optim.lr "
                f"(now {config.optim.lr:g}, e.g. --set optim.lr={lower}) or check the data, and start again with --overwrite")
    return (f"{paths.checkpoint} keeps epoch {saved_epoch}; to continue from it with a lower learning rate add "
            f"--resume --allow-change optim.lr --set optim.lr={lower}")


def _nan(value) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _summary(row: dict) -> str:
    parts = [f"loss {row['loss']:.3f}", f"train acc {row['train_acc']:.1f}"]
    if "test_all" in row:
        parts.append(f"test {row['test_all']:.1f} (many {row['test_many']:.1f} / med {row['test_medium']:.1f} / few {row['test_few']:.1f})")
    return ", ".join(parts)


def train_epoch(config: TrainConfig, parts: Components, step_fn, loader, device: torch.device, bar,
                 epoch: int) -> dict:
    """One pass over the loader. Host syncs only every run.log_every steps (progress + NaN check)."""
    parts.model.train()
    task = bar.add_task(f"epoch {epoch + 1}", total=len(loader), info="")
    sums: dict[str, torch.Tensor] = {}
    seen = 0
    totals, total_seen = sums, seen
    for step, batch in enumerate(loader, start=1):
        *views, target = batch
        views = [v.to(device, non_blocking=True) for v in views]
        target = target.to(device, non_blocking=True)
        losses = step_fn(views, target)
        for key, value in losses.items():
            sums[key] = sums[key] + value if key in sums else value.clone()
        seen += target.shape[0]
        if step % config.run.log_every == 0 or step == len(loader):
            # Multi-GPU hook: sums over all ranks (identity in one process), so every rank stops on a NaN.
            totals, total_seen = distributed.reduce_totals(sums, seen)
            loss = totals["loss"].item() / step
            if not math.isfinite(loss):
                raise NonFiniteLossError(f"epoch {epoch + 1}, step {step}: the loss is {loss}; the run stops")
            bar.update(task, completed=step, info=f"loss {loss:.3f} acc {100 * totals['correct'].item() / total_seen:.1f}")
    bar.remove_task(task)
    steps = max(len(loader), 1)
    out = {k: v.item() / steps for k, v in totals.items() if k != "correct"}
    out["train_acc"] = 100.0 * totals["correct"].item() / max(total_seen, 1)
    return out


def _finish(config: TrainConfig, data: PreparedData, paths: RunPaths, state: dict, log: dict, tracker,
            probs: torch.Tensor, targets: torch.Tensor) -> dict:
    history = state["history"]
    evaluated = [row for row in history if "test_all" in row]
    last, best = evaluated[-1], max(evaluated, key=lambda row: row["test_all"])
    final = evaluation_metrics(probs, targets, data.class_counts)
    per_class = final.pop("per_class")
    metrics = {f"last_{k}": v for k, v in final.items()}
    metrics |= {f"best_{k}": best[k] for k in ("test_all", "test_many", "test_medium", "test_few", "test_ece")}
    metrics["best_epoch"] = best["epoch"]
    metrics["last_epoch"] = last["epoch"]
    metrics["epochs"] = config.optim.epochs
    # metrics.json is a DVC output: only what repeats bit for bit; seconds, hardware and run id are in the run log.
    summary = {"method": config.method_name, "dataset": config.data.dataset, "imbalance": config.data.imbalance,
               "seed": config.run.seed, "profile": config.run.profile, "metrics": metrics}
    write_json(paths.metrics, summary)
    write_history(paths.root / "history.csv", history)
    write_per_class(paths.root / "per_class.csv", data.classes, data.class_counts, per_class)
    title = f"{config.method_name} on {config.data.dataset} (profile {config.run.profile}, seed {config.run.seed}, last epoch)"
    figures = plot_run_figures(paths.root, data.classes, data.class_counts, per_class,
                               confusion_matrix(probs, targets, len(data.class_counts)), title)
    seconds = {"mean_epoch_seconds": log["mean_epoch_seconds"]} if log["mean_epoch_seconds"] is not None else {}
    tracker.log_summary({k: v for k, v in metrics.items() if not _nan(v)} | seconds, step=config.optim.epochs)
    tracker.log_artifacts([paths.root / "config.yaml", paths.root / "per_class.csv", paths.root / "history.csv",
                           paths.metrics, *([paths.run_log] if paths.run_log.is_file() else []), *figures])
    return summary | {"run_log": log}
