"""The training run: data, components, epochs, evaluation, checkpoints, tracking.

`train(config)` is the pure core of `rescom train`: it returns the final metrics and leaves the
run directory (config.yaml, checkpoint.pt, history.csv, metrics.json, per_class.csv, figures).
Each epoch's randomness is seeded from (run seed, epoch), so an epoch is a function of the
checkpoint before it: a run killed and resumed ends with exactly the metrics of one never stopped.

A run is a `Run` object (its config, data, components, step, queue, RNG state, stream, tracker and
paths) driven through `begin_epoch`, `step`, `end_epoch` and `finish` by `run_pack`, which
interleaves the steps of several runs in one process (rescom.engine.pack; docs/design.md,
"Packed runs"). A solo run is a pack of one.
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

from rescom.config import (RESUME_CHANGEABLE, ConfigError, TrainConfig, adopt_legacy_values, differing_keys, flatten,
                           resolve_for_data)
from rescom.data.preparation.prepared import PreparedData
from rescom.data.preparation import run_data
from rescom.engine import distributed
from rescom.engine.checkpoint import code_fingerprint, load_checkpoint, save_checkpoint
from rescom.engine.components import Components, build_components, learning_rate, set_learning_rate
from rescom.engine.evaluate import evaluation_metrics, predict
from rescom.engine.hardware import device_description
from rescom.engine.outputs import (RUN_LOG_NAME, confusion_matrix, plot_run_figures, read_run_log, run_log,
                                   write_config, write_history, write_json, write_per_class)
from rescom.engine.errors import NonFiniteLossError, RunExistsError  # noqa: F401  (raised here, imported from here)
from rescom.engine.step import make_step, use_cuda_graphs
from rescom.methods import uses_two_views
from rescom.progress import console, progress_bar
from rescom.tracking import NullTracker, Tracker, git_commit


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C so the MLflow run is closed and the last checkpoint stays.

    A BaseException, so no `except Exception` on the way (MLflow, DataLoader) can swallow it.
    """


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
            run = Run(config, world, RunStart(resume, overwrite, allow_change))
            outcome = run_pack([run])[0]
            if outcome.error is not None:
                raise outcome.error
            return outcome.summary
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


@dataclass(frozen=True)
class RunStart:
    """How a run begins: continue its checkpoint (resume), replace it (overwrite), or neither."""

    resume: bool = False
    overwrite: bool = False
    allow_change: tuple[str, ...] = ()


@dataclass
class Outcome:
    """What became of one run of a pack: its summary, or the error that stopped it."""

    run_dir: Path
    summary: dict | None = None
    error: BaseException | None = None


class Run:
    """One training run in this process: its own config, data, components (model, queue, optimizer),
    step (a CUDA graph on a GPU), RNG state, CUDA stream, tracker and run directory.

    Construction reads (or prepares) the data, loads a checkpoint and validates, writing no run file;
    `open` writes config.yaml, starts or continues the MLflow run and announces the run. Then, per epoch, `begin_epoch`,
    `step` until it returns False, `end_epoch` (evaluation, checkpoint, run log, metrics); at the
    end `finish` (metrics.json, figures, MLflow FINISHED) or `close(status)` after a failure.

    Everything a run does happens inside `_own_context`: torch's global CPU generator holds this
    run's state there (the PIL augmentation draws from it), and on a GPU its kernels go to its own
    stream, so the steps of several runs interleave without touching each other's draws and their
    graphs' kernels may overlap on the device.
    """

    def __init__(self, config: TrainConfig, world: distributed.World, start: RunStart = RunStart(),
                 data_cache: dict | None = None):
        self.world = world
        data = _shared_data(config, data_cache)
        config = resolve_for_data(config, data.class_counts)
        config.data.pipeline = run_data.resolve_pipeline(config.data, data)  # the resolved choice is logged
        distributed.check_batch_size(config.optim.batch_size, world)
        self.config, self.data = config, data
        self.paths = RunPaths(Path(config.run.runs_dir) / run_name(config))
        self.device = distributed.device_for(world, select_device(config.run.device))
        self.stream = torch.cuda.Stream(self.device) if self.device.type == "cuda" else None
        self._cpu_rng = torch.get_rng_state()
        self.pack_size = 1
        with self._own_context():
            self.parts = build_components(config, data.class_counts, data.channels, self.device)
            self.state, self.changes = _initial_state(config, self.paths, self.parts, start.resume, start.overwrite,
                                                      data, start.allow_change)
            distributed.prepare_components(self.parts, self.device, sync_bn=config.run.sync_bn)  # DDP when world.size > 1
            if config.run.compile:  # the training forward only; evaluation and checkpoints use the plain module
                self.parts.forward_model = torch.compile(self.parts.forward_model or self.parts.model)
            self.test_batches = run_data.evaluation_batches(data, config.data, max(256, config.optim.batch_size),
                                                            self.device)
        self.resident: dict = {}  # the tensor pipeline's device copy of the training set, made once
        self.graphs = use_cuda_graphs(config, self.device)
        self.tracker = NullTracker()
        self.step_fn = None
        self._epoch_steps = None
        self.last_eval = None
        self.hardware = device_description(self.device)  # what the run log's seconds were measured on

    @property
    def done(self) -> bool:
        return self.state["epoch"] >= self.config.optim.epochs

    @contextlib.contextmanager
    def _own_context(self):
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
        """Write config.yaml, start or continue the MLflow run, make the step; the first log line."""
        self.pack_size, self.bar = pack_size, bar
        if pack_size > 1:
            self.hardware += f", packed with {pack_size - 1} other run(s) in one process"
        main = self.world.is_main  # Multi-GPU hook: only rank 0 evaluates and writes the run dir
        if main:
            self.paths.root.mkdir(parents=True, exist_ok=True)
            write_config(self.paths.root / "config.yaml", self.config.to_dict())
            self.tracker = _open_tracker(self.config, self.data, self.paths, self.state, self.changes)
            _announce(self.config, self.data, self.paths, self.device, self.state["epoch"])
        with self._own_context():
            self.step_fn = make_step(self.config, self.parts, self.device)  # a CUDA graph is captured once, replayed every epoch
        label = "epochs" if pack_size == 1 else f"epochs {self.paths.root.name}"
        self.epochs_task = bar.add_task(label, total=self.config.optim.epochs, completed=self.state["epoch"], info="")

    def begin_epoch(self) -> None:
        config, epoch = self.config, self.state["epoch"]
        with self._own_context():
            self.lr = learning_rate(config, epoch)
            set_learning_rate(self.parts.optimizer, self.lr)
            # augmentation draws (PIL path, workers=0); distinct per rank under torchrun, unchanged in one process
            torch.manual_seed(distributed.rank_seed(epoch_seed(config.run.seed, epoch) + 1, self.world.rank))
            loader = run_data.epoch_batches(self.data, config.data, config.optim.batch_size, uses_two_views(config),
                                            epoch_seed(config.run.seed, epoch), self.device, self.resident,
                                            graphs=self.graphs)
            self.started = time.perf_counter()
            self._epoch_steps = epoch_steps(config, self.parts, self.step_fn, loader, self.device, self.bar, epoch)
            self.train_metrics = None

    def step(self) -> bool:
        """One training step of this epoch; False once the epoch's batches are used up."""
        with self._own_context():
            try:
                next(self._epoch_steps)
                return True
            except StopIteration as end:
                self.train_metrics = end.value
                return False
            except NonFiniteLossError as err:
                raise NonFiniteLossError(f"{err}. {_nan_advice(self.config, self.paths, self.state['epoch'])}") from None

    def end_epoch(self) -> None:
        """Evaluate (every run.eval_every epochs), checkpoint, write the run log, log the epoch."""
        config, state, main = self.config, self.state, self.world.is_main
        epoch, epochs = state["epoch"], config.optim.epochs
        seconds = time.perf_counter() - self.started
        row = {"epoch": epoch + 1, "lr": self.lr, **self.train_metrics}
        with self._own_context():
            if main and ((epoch + 1) % config.run.eval_every == 0 or epoch + 1 == epochs):
                probs, targets = predict(self.parts.model.inference_model(), self.test_batches, self.device,
                                         config.run.channels_last)
                self.last_eval = (probs, targets)
                evaluation = evaluation_metrics(probs, targets, self.data.class_counts)
                evaluation.pop("per_class")
                row.update(evaluation)
            state["history"].append(row)
            state["epoch_seconds"].append(seconds)
            state["epoch"] = epoch + 1
            # Checkpoint before logging: if logging fails the epoch is still safe on disk.
            if main:
                save_checkpoint({"config": config.to_dict(), "components": self.parts.state_dict(),
                                 "code": code_fingerprint(), "data_fingerprint": self.data.meta.get("fingerprint", ""),
                                 "subsample_rule": run_data.subsample_rule_of(config.data),
                                 "epoch": state["epoch"], "history": state["history"]}, self.paths.checkpoint)
                write_json(self.paths.run_log, run_log(state["mlflow_run_id"], self.hardware, state["epoch_seconds"]))
        distributed.barrier()  # the other ranks wait while rank 0 evaluates and checkpoints
        self.tracker.log_metrics({k: v for k, v in row.items() if k != "epoch" and not _nan(v)} | {"epoch_seconds": seconds},
                                 step=epoch + 1)
        self.bar.update(self.epochs_task, advance=1, info=_summary(row))
        prefix = "" if self.pack_size == 1 else f"{self.paths.root.name}: "
        console.log(f"{prefix}epoch {epoch + 1}/{epochs} " + _summary(row))

    def finish(self) -> dict:
        """metrics.json, history.csv, per_class.csv, figures and the MLflow run's last metrics; FINISHED."""
        if not self.world.is_main:
            summary = distributed.broadcast_object(None)  # rank 0's summary
        else:
            with self._own_context():
                if self.last_eval is None:  # resumed after the final epoch: evaluate once more from the checkpoint
                    self.last_eval = predict(self.parts.model.inference_model(), self.test_batches, self.device,
                                             self.config.run.channels_last)
            log = run_log(self.state["mlflow_run_id"], self.hardware, self.state["epoch_seconds"])
            summary = distributed.broadcast_object(_finish(self.config, self.data, self.paths, self.state, log,
                                                           self.tracker, *self.last_eval))
        self.tracker.finish("FINISHED")
        return summary

    def close(self, status: str) -> None:
        """End the MLflow run as KILLED or FAILED; the last checkpoint stays as it is."""
        with contextlib.suppress(Exception):  # closing must not hide the error that stopped the run
            self.tracker.finish(status)


def interleaved_epoch(runs: list[Run], guarded=None, failed=lambda run: False) -> None:
    """One epoch of every run, their steps interleaved round robin (one step of each run in turn).

    guarded(run, action) runs a run's action and returns None if it failed (run_pack records the
    failure); failed(run) says whether a run has failed, so it takes no further part.
    """
    guarded = guarded or (lambda run, action: action())
    for run in runs:
        guarded(run, run.begin_epoch)
    stepping = [run for run in runs if not failed(run)]
    while stepping:
        stepping = [run for run in stepping if guarded(run, run.step) and not failed(run)]
    for run in runs:
        if not failed(run):
            guarded(run, run.end_epoch)


def _shared_data(config: TrainConfig, cache: dict | None) -> PreparedData:
    """The run's prepared set, read once per data config in a pack (runs only read it)."""
    key = repr(sorted(config.data.__dict__.items()))
    if cache is not None and key in cache:
        return cache[key]
    with distributed.main_first():  # rank 0 prepares the data set; the others then read it
        data = run_data.get_data(config.data, check_counts=lambda counts: resolve_for_data(config, counts))
    if cache is not None:
        cache[key] = data
    return data


def run_pack(runs: list[Run], on_outcome=None) -> list[Outcome]:
    """Train the runs to their last epoch, interleaved step by step in this process; their outcomes.

    A run that fails (NaN, an error while evaluating or writing) is closed as FAILED and the others
    go on; Ctrl-C or SIGTERM closes every unfinished run (FAILED / KILLED) and propagates.
    on_outcome(run, outcome) is called as each run finishes or fails (a pack's results file).
    """
    outcomes = {id(run): Outcome(run.paths.root) for run in runs}

    def guarded(run: Run, action):
        try:
            return action()
        except Exception as error:  # noqa: BLE001  (one run's failure is a value: the pack goes on)
            run.close("FAILED")
            outcomes[id(run)].error = error
            if len(runs) > 1:
                console.log(f"{run.paths.root}: stopped, {type(error).__name__}: {error}")
            if on_outcome is not None:
                on_outcome(run, outcomes[id(run)])
            return None

    def alive() -> list[Run]:
        return [run for run in runs if outcomes[id(run)].error is None and outcomes[id(run)].summary is None]

    try:
        with progress_bar() as bar:
            for run in runs:
                guarded(run, lambda: run.open(bar, len(runs)))
            while training := [run for run in alive() if not run.done]:
                interleaved_epoch(training, guarded, failed=lambda run: outcomes[id(run)].error is not None)
            for run in alive():
                outcomes[id(run)].summary = guarded(run, run.finish)
                if on_outcome is not None and outcomes[id(run)].summary is not None:
                    on_outcome(run, outcomes[id(run)])
    except Terminated:
        for run in alive():
            run.close("KILLED")
        raise
    except BaseException:
        for run in alive():
            run.close("FAILED")
        raise
    return [outcomes[id(run)] for run in runs]


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
    adopted = adopt_legacy_values(config, saved)  # an older run continues its own schedule
    if adopted:
        console.log(f"resuming {paths.root} with what its checkpoint was trained with: {', '.join(adopted)}")
    differing = differing_keys(config, saved, allow_change)
    if differing:
        changeable = [k for k in differing if k in RESUME_CHANGEABLE]
        hint = f" (to change them on purpose: --allow-change {' --allow-change '.join(changeable)})" if changeable else ""
        raise ConfigError(f"--resume: the config differs from the checkpoint's at {', '.join(differing)}{hint}")
    run_data.check_trained_rule(checkpoint, config.data, f"--resume: {paths.checkpoint}")
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


def epoch_steps(config: TrainConfig, parts: Components, step_fn, loader, device: torch.device, bar, epoch: int):
    """One pass over the loader as a generator: it yields after every step (so a pack interleaves the
    steps of its runs) and returns the epoch's metrics. Host syncs only every run.log_every steps
    (progress + NaN check)."""
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
                bar.remove_task(task)
                raise NonFiniteLossError(f"epoch {epoch + 1}, step {step}: the loss is {loss}; the run stops")
            bar.update(task, completed=step, info=f"loss {loss:.3f} acc {100 * totals['correct'].item() / total_seen:.1f}")
        yield
    bar.remove_task(task)
    steps = max(len(loader), 1)
    out = {k: v.item() / steps for k, v in totals.items() if k != "correct"}
    out["train_acc"] = 100.0 * totals["correct"].item() / max(total_seen, 1)
    return out


def train_epoch(config: TrainConfig, parts: Components, step_fn, loader, device: torch.device, bar,
                epoch: int) -> dict:
    """One whole epoch (epoch_steps run to its end); its metrics."""
    steps = epoch_steps(config, parts, step_fn, loader, device, bar, epoch)
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


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
