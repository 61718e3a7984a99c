"""One training run: set-up, its epochs, its results.

A `Run` keeps what lasts the whole run. Construction reads the data, loads a checkpoint and
validates, writing no run file; `open` writes config.yaml, starts or continues the MLflow run;
`epoch()` is the next epoch, top to bottom; then `finish` (metrics.json, figures, MLflow FINISHED)
or `close(status)` after a failure. The scheduler (engine/scheduler.py) drives these.

Steps, by name: a train step (step.train_step) is one batch's forward, backward, optimizer step and
queue write; the optimizer step is the SGD update inside it; the learning rate schedule moves once
per epoch (components.learning_rate); an MLflow curve's step is the epoch number.

Each epoch's randomness is seeded from (run seed, epoch), so an epoch is a function of the
checkpoint before it: a run killed and resumed ends with exactly the metrics and checkpoint bytes
of one never stopped.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Generator, Iterator
from pathlib import Path

import torch

from rescom.config import TrainConfig, resolve_for_data
from rescom.data.loading import loaders
from rescom.data.loading.rank_sampler import rank_seed
from rescom.data.preparation import run_data
from rescom.data.preparation.prepared import PreparedData
from rescom.engine import distributed
from rescom.engine.checkpoint import save_checkpoint, training_code_identity
from rescom.engine.components import Components, build_components, learning_rate
from rescom.errors import NonFiniteLossError
from rescom.engine.evaluate import evaluation_metrics, predict
from rescom.engine.hardware import device_description, select_device
from rescom.engine.outputs import (confusion_matrix, plot_run_figures, run_log, write_config, write_history,
                                   write_json, write_per_class)
from rescom.engine.resume import RunStart, initial_state, refuse_existing_run
from rescom.engine.run_state import RunPaths
from rescom.engine.run_tracking import open_tracker
from rescom.engine.step import make_train_step, use_cuda_graphs
from rescom.methods import uses_two_views
from rescom.progress import console
from rescom.tracking import NullTracker


def run_name(config: TrainConfig) -> str:
    if config.run.run_name:
        return config.run.run_name
    factor = f"-if{config.data.imbalance:g}" if config.data.imbalance is not None else ""
    return f"{config.method_name}-{config.data.dataset}{factor}-s{config.run.seed}"


def epoch_seed(seed: int, epoch: int) -> int:
    """A distinct, reproducible seed per (run seed, epoch)."""
    return (seed * 1_000_003 + epoch) % (2**63)


class Run:
    """One training run in this process (module docstring). Everything it computes happens inside
    `own_context`: torch's global CPU generator holds this run's state there (the PIL augmentation
    draws from it), and on a GPU its kernels go to its own stream, so the train steps of several runs
    interleave without touching each other's draws."""

    def __init__(self, config: TrainConfig, world: distributed.World, start: RunStart = RunStart(),
                 data_cache: dict | None = None):
        self.world, self.paths = world, RunPaths(Path(config.run.runs_dir) / run_name(config))
        refuse_existing_run(self.paths, start)  # before any data is read or prepared
        data = shared_data(config, data_cache)
        config = resolve_for_data(config, data.class_counts)
        config.data.pipeline = loaders.resolve_pipeline(config.data, data)  # the resolved choice is logged
        distributed.check_batch_size(config.optim.batch_size, world)
        self.config, self.data = config, data
        self.device = distributed.device_for(world, select_device(config.run.device))
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._cpu_rng = torch.get_rng_state()
        with self.own_context():
            self.parts: Components = build_components(config, data.class_counts, data.channels, self.device)
            self.state, self.changes = initial_state(config, self.paths, self.parts, start, data)
            distributed.prepare_components(self.parts, self.device, sync_bn=config.run.sync_bn)  # DDP when world.size > 1
            if config.run.compile:  # the training forward only; evaluation and checkpoints use the plain module
                self.parts.forward_model = torch.compile(self.parts.forward_model or self.parts.model)
            self.test_batches = loaders.evaluation_batches(data, config.data, max(256, config.optim.batch_size),
                                                           self.device)
        self.resident: dict = {}  # the tensor pipeline's device copy of the training set, made once
        self.graphs = use_cuda_graphs(config, self.device)
        self.hardware = device_description(self.device)  # what the run log's seconds were measured on
        self.tracker = NullTracker()
        self.pack_size, self.bar, self.epochs_task = 1, None, None  # set by open
        self.train_step = None  # made by open: a CUDA graph is captured once, replayed every epoch
        self.last_eval: tuple[torch.Tensor, torch.Tensor] | None = None  # (probs, targets) of the last evaluation

    @property
    def done(self) -> bool:
        return self.state.epoch >= self.config.optim.epochs

    @contextlib.contextmanager
    def own_context(self):
        """This run's global CPU RNG state (and CUDA stream) for the duration of the block."""
        outer = torch.get_rng_state()
        torch.set_rng_state(self._cpu_rng)
        stream = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
        try:
            with stream:
                yield
        finally:
            self._cpu_rng = torch.get_rng_state()
            torch.set_rng_state(outer)

    def open(self, bar, pack_size: int = 1) -> None:
        """Write config.yaml, start or continue the MLflow run, make the train step; the first log line."""
        self.pack_size, self.bar = pack_size, bar
        if pack_size > 1:
            self.hardware += f", packed with {pack_size - 1} other run(s) in one process"
        if self.world.is_main:  # Multi-GPU hook: only rank 0 evaluates and writes the run dir
            self.paths.root.mkdir(parents=True, exist_ok=True)
            write_config(self.paths.root / "config.yaml", self.config.to_dict())
            self.tracker = open_tracker(self.config, self.data, self.paths, self.state, self.changes)
            _announce(self.config, self.data, self.paths, self.device, self.state.epoch)
        self.train_step = make_train_step(self.config, self.parts, self.device)
        label = "epochs" if pack_size == 1 else f"epochs {self.paths.root.name}"
        self.epochs_task = bar.add_task(label, total=self.config.optim.epochs, completed=self.state.epoch, info="")

    def epoch(self) -> Iterator[bool]:
        """The next epoch, top to bottom; yields after each train step, where a pack interleaves its
        runs. Its caller resumes it inside own_context (scheduler.interleaved_epoch)."""
        config, state, epoch, main = self.config, self.state, self.state.epoch, self.world.is_main
        lr = learning_rate(config, epoch)
        self.parts.optimizer.set_learning_rate(lr)
        # augmentation draws (PIL path, workers=0); distinct per rank under torchrun, unchanged in one process
        torch.manual_seed(rank_seed(epoch_seed(config.run.seed, epoch) + 1, self.world.rank))
        batches = loaders.epoch_batches(self.data, config.data, config.optim.batch_size, uses_two_views(config),
                                        epoch_seed(config.run.seed, epoch), self.device, self.resident,
                                        graphs=self.graphs)
        started = time.perf_counter()
        self.parts.model.train()
        try:
            train = yield from train_batches(self.train_step, batches, self.device, config.run.log_every,
                                             self.bar, f"epoch {epoch + 1}")
        except NonFiniteLossError as err:
            raise NonFiniteLossError(f"{err}. {_nan_advice(config, self.paths, epoch)}") from None
        seconds = time.perf_counter() - started
        row = {"epoch": epoch + 1, "lr": lr, **train}
        if main and ((epoch + 1) % config.run.eval_every == 0 or epoch + 1 == config.optim.epochs):
            self.last_eval = predict(self.parts.model.inference_model(), self.test_batches, self.device,
                                     config.run.channels_last)
            evaluation = evaluation_metrics(*self.last_eval, self.data.class_counts)
            evaluation.pop("per_class")
            row.update(evaluation)
        state.history.append(row)
        state.epoch_seconds.append(seconds)
        state.epoch = epoch + 1
        # Checkpoint before logging: if logging fails the epoch is still safe on disk.
        if main:
            save_checkpoint({"config": config.to_dict(), "components": self.parts.state_dict(),
                             "code": training_code_identity(), "data_fingerprint": self.data.meta.get("fingerprint", ""),
                             "subsample_rule": run_data.subsample_rule_of(config.data),
                             "epoch": state.epoch, "history": state.history}, self.paths.checkpoint)
            write_json(self.paths.run_log, self._run_log())
        distributed.barrier()  # the other ranks wait while rank 0 evaluates and checkpoints
        self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch" and not _nan(v)} | {"epoch_seconds": seconds},
                                 step=epoch + 1)
        self.bar.update(self.epochs_task, advance=1, info=_summary(row))
        prefix = "" if self.pack_size == 1 else f"{self.paths.root.name}: "
        console.log(f"{prefix}epoch {epoch + 1}/{config.optim.epochs} " + _summary(row))

    def finish(self) -> dict:
        """metrics.json, history.csv, per_class.csv, figures and the MLflow run's last metrics; FINISHED."""
        if not self.world.is_main:
            summary = distributed.broadcast_object(None)  # rank 0's summary
        else:
            with self.own_context():
                if self.last_eval is None:  # resumed after the final epoch: evaluate once more from the checkpoint
                    self.last_eval = predict(self.parts.model.inference_model(), self.test_batches, self.device,
                                             self.config.run.channels_last)
            summary = distributed.broadcast_object(self._write_results())
        self.tracker.finish("FINISHED")
        return summary

    def close(self, status: str) -> None:
        """End the MLflow run as KILLED or FAILED; the last checkpoint stays as it is."""
        with contextlib.suppress(Exception):  # closing must not hide the error that stopped the run
            self.tracker.finish(status)

    def _run_log(self) -> dict:
        return run_log(self.state.mlflow_run_id, self.hardware, self.state.epoch_seconds)

    def _write_results(self) -> dict:
        """The run directory's results from the last evaluation, logged to MLflow; the run's summary."""
        config, data, paths, history = self.config, self.data, self.paths, self.state.history
        probs, targets = self.last_eval
        evaluated = [row for row in history if "test_all" in row]
        last, best = evaluated[-1], max(evaluated, key=lambda row: row["test_all"])
        final = evaluation_metrics(probs, targets, data.class_counts)
        per_class = final.pop("per_class")
        metrics = {f"last_{k}": v for k, v in final.items()}
        metrics |= {f"best_{k}": best[k] for k in ("test_all", "test_many", "test_medium", "test_few", "test_ece")}
        metrics |= {"best_epoch": best["epoch"], "last_epoch": last["epoch"], "epochs": config.optim.epochs}
        # metrics.json is a DVC output: only what repeats bit for bit; seconds, hardware and run id are in the run log.
        summary = {"method": config.method_name, "dataset": config.data.dataset, "imbalance": config.data.imbalance,
                   "seed": config.run.seed, "profile": config.run.profile, "metrics": metrics}
        write_json(paths.metrics, summary)
        write_history(paths.root / "history.csv", history)
        write_per_class(paths.root / "per_class.csv", data.classes, data.class_counts, per_class)
        title = f"{config.method_name} on {config.data.dataset} (profile {config.run.profile}, seed {config.run.seed}, last epoch)"
        figures = plot_run_figures(paths.root, data.classes, data.class_counts, per_class,
                                   confusion_matrix(probs, targets, len(data.class_counts)), title)
        log = self._run_log()
        seconds = {"mean_epoch_seconds": log["mean_epoch_seconds"]} if log["mean_epoch_seconds"] is not None else {}
        self.tracker.log_summary({k: v for k, v in metrics.items() if not _nan(v)} | seconds, step=config.optim.epochs)
        self.tracker.log_artifacts([paths.root / "config.yaml", paths.root / "per_class.csv", paths.root / "history.csv",
                                    paths.metrics, *([paths.run_log] if paths.run_log.is_file() else []), *figures])
        return summary | {"run_log": log}


def train_batches(train_step, batches, device: torch.device, log_every: int, bar, label: str
                  ) -> Generator[bool, None, dict]:
    """A train step on each of the epoch's batches, yielding True after each; returns the epoch's mean
    losses and train accuracy (%). Syncs with the host only every log_every batches and after the last
    (progress and the NaN check)."""
    task = bar.add_task(label, total=len(batches), info="")
    sums: dict[str, torch.Tensor] = {}
    seen, totals, total_seen = 0, sums, 0  # totals, total_seen: all ranks' at the last sync
    for number, (*views, target) in enumerate(batches, start=1):
        views = [v.to(device, non_blocking=True) for v in views]
        target = target.to(device, non_blocking=True)
        for key, value in train_step(views, target).items():  # a CUDA graph's outputs: overwritten next replay
            sums[key] = sums[key] + value if key in sums else value.clone()
        seen += target.shape[0]
        if number % log_every == 0 or number == len(batches):
            # Multi-GPU hook: sums over all ranks (identity in one process), so every rank stops on a NaN.
            totals, total_seen = distributed.reduce_totals(sums, seen)
            loss = totals["loss"].item() / number
            if not math.isfinite(loss):
                bar.remove_task(task)
                raise NonFiniteLossError(f"{label}, batch {number}: the loss is {loss}; the run stops")
            bar.update(task, completed=number, info=f"loss {loss:.3f} acc {100 * totals['correct'].item() / total_seen:.1f}")
        yield True
    bar.remove_task(task)
    means = {k: v.item() / max(len(batches), 1) for k, v in totals.items() if k != "correct"}
    means["train_acc"] = 100.0 * totals["correct"].item() / max(total_seen, 1) if totals else 0.0
    return means


def shared_data(config: TrainConfig, cache: dict | None) -> PreparedData:
    """The run's prepared set, read once per data config in a pack (runs only read it)."""
    key = repr(sorted(config.data.__dict__.items()))
    if cache is not None and key in cache:
        return cache[key]
    with distributed.main_first():  # rank 0 prepares the data set; the others then read it
        data = run_data.get_data(config.data, check_counts=lambda counts: resolve_for_data(config, counts))
    if cache is not None:
        cache[key] = data
    return data


def _announce(config: TrainConfig, data: PreparedData, paths: RunPaths, device: torch.device, start: int) -> None:
    """A first log line (a non-interactive log shows something before the first epoch ends) and data warnings."""
    from rescom.metrics import misleading_data_warnings

    o = config.optim
    console.log(f"{paths.root}: {config.method_name} on {config.data.dataset} ({sum(data.class_counts)} training "
                f"images in {len(data.class_counts)} classes, {len(data.test)} test images), epochs {start + 1}-{o.epochs} "
                f"of {sum(data.class_counts) // o.batch_size} batches of {o.batch_size}, on {device}")
    for line in misleading_data_warnings(data.class_counts, data.test.labels):
        console.log(f"warning: {line}")


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
