"""Training, solo or packed: `train(config)` is the pure core of `rescom train`, `train_pack(configs)`
of `rescom train --seeds` and packed pipeline stages. A solo run is a pack of one: one copy of the
set-up (process group, SIGTERM handling) and tear-down. The run itself is engine/run.py, the
interleaving engine/scheduler.py, a pack's checks (one device, memory) engine/pack.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from rescom.config import TrainConfig
from rescom.engine import distributed
from rescom.engine.hardware import emulated_bf16_warning
from rescom.engine.pack import PackTooLargeError, check_packable, measured_first_run
from rescom.engine.resume import RunStart, refuse_existing_run
from rescom.engine.run import Run, run_name
from rescom.engine.run_state import RunPaths
from rescom.engine.scheduler import Outcome, Terminated, run_pack, sigterm_unwinds
from rescom.progress import console
from rescom.tracking import check_reachable


def train(config: TrainConfig, *, resume: bool = False, overwrite: bool = False,
          allow_change: tuple[str, ...] = ()) -> dict:
    """Train and evaluate one run; returns the final metrics (last and best epoch).

    allow_change: keys of config.RESUME_CHANGEABLE that may differ from the checkpoint on resume
    (a lower optim.lr after a NaN). Under torchrun every rank calls this; rank 0 alone tracks and
    writes (engine.distributed).
    """
    outcome = train_pack([config], [RunStart(resume, overwrite, allow_change)])[0]
    if outcome.error is not None:
        raise outcome.error
    return outcome.summary


def train_pack(configs: list[TrainConfig], starts: list[RunStart], *, setup_errors_stop_all: bool = True,
               on_outcome=None) -> list[Outcome]:
    """Train the configs as one pack; one Outcome per config, in order.

    setup_errors_stop_all: a run that cannot start (bad resume, missing data) stops the whole pack
    before anything trains (`rescom train --seeds`); otherwise it is recorded as failed and the others
    train (a pipeline pack, whose stages are independent).
    """
    world = distributed.init_from_env(configs[0].run.device)  # Multi-GPU hook: World() without torchrun
    try:
        check_packable(configs, world)
        slow_bf16 = emulated_bf16_warning(configs[0])  # one device per pack: one warning
        if slow_bf16 and world.is_main:
            console.log(f"[yellow]warning:[/yellow] {slow_bf16}")
        if any(config.run.track for config in configs):  # a dead server is one line before any data
            check_reachable()
        if setup_errors_stop_all:  # every run's directory before the first run reads or prepares data
            for config, start in zip(configs, starts, strict=True):
                refuse_existing_run(RunPaths(Path(config.run.runs_dir) / run_name(config)), start)
        with sigterm_unwinds():
            runs, outcomes = build_runs(configs, starts, world, setup_errors_stop_all, on_outcome)
            trained = iter(run_pack(runs, on_outcome)) if runs else iter(())
            return [outcome if outcome is not None else next(trained) for outcome in outcomes]
    except Terminated:
        console.log("terminated (SIGTERM): the MLflow runs are marked KILLED; the last checkpoints are kept")
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        distributed.shutdown(world)


def build_runs(configs, starts, world, stop_all: bool, on_outcome) -> tuple[list[Run], list[Outcome | None]]:
    """The pack's Runs (construction only reads and checks), the first one measured for pack.check_fits
    when there are several; a run that cannot start is an Outcome in its place unless stop_all."""
    cache: dict = {}
    runs: list[Run] = []
    outcomes: list[Outcome | None] = []
    for index, (config, start) in enumerate(zip(configs, starts, strict=True)):
        try:
            if index == 0 and len(configs) > 1:
                run = measured_first_run(config, start, world, cache, len(configs))
            else:
                run = Run(config, world, start, cache)
        except PackTooLargeError:
            raise
        except Exception as error:  # noqa: BLE001  (recorded for this stage; the others train)
            if stop_all:
                raise
            failed = Outcome(Path(config.run.runs_dir) / run_name(config), error=error)
            console.log(f"{failed.run_dir}: cannot start, {type(error).__name__}: {error}")
            if on_outcome is not None:
                on_outcome(None, failed)
            outcomes.append(failed)
            continue
        runs.append(run)
        outcomes.append(None)
    return runs, outcomes
