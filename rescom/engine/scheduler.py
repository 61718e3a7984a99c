"""The pack scheduler: the epochs of several runs in one process, their steps interleaved round robin.

A run that fails (NaN, an error while evaluating or writing) is closed as FAILED and the others go
on; Ctrl-C or SIGTERM closes every unfinished run (FAILED / KILLED) and propagates. Set-up and
tear-down around it (process group, SIGTERM handler) are engine/train.py's `train_pack`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

from rescom.engine.run import Run
from rescom.progress import console, progress_bar


class Terminated(BaseException):
    """SIGTERM arrived: unwind like Ctrl-C so the MLflow run is closed and the last checkpoint stays.

    A BaseException, so no `except Exception` on the way (MLflow, DataLoader) can swallow it.
    """


@contextlib.contextmanager
def sigterm_unwinds():
    """While training, SIGTERM (kill, dvc, a scheduler) raises Terminated instead of ending the process
    at once, so each MLflow run is closed as KILLED rather than left RUNNING. Only the main thread may
    set handlers."""
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


@dataclass
class Outcome:
    """What became of one run of a pack: its summary, or the error that stopped it."""

    run_dir: Path
    summary: dict | None = None
    error: BaseException | None = None


def interleaved_epoch(runs: list[Run], guarded=None) -> None:
    """One epoch of every run (Run.epoch), one train step of each run in turn, each resumed inside its
    run's own context (RNG state, CUDA stream).

    guarded(run, action, *args) runs action(*args) for the run and returns None if it failed (run_pack
    records the failure), so a failed run takes no further part.
    """
    guarded = guarded or (lambda run, action, *args: action(*args))
    epochs = {id(run): run.epoch() for run in runs}

    def next_step(run: Run) -> bool:  # False once the run's epoch has ended
        with run.own_context():
            return next(epochs[id(run)], False)

    while runs:
        runs = [run for run in runs if guarded(run, next_step, run)]


def run_pack(runs: list[Run], on_outcome=None) -> list[Outcome]:
    """Train the runs to their last epoch, one train step of each in turn, in this process; their outcomes.

    on_outcome(run, outcome) is called as each run finishes or fails (a pack's results file).
    """
    outcomes = {id(run): Outcome(run.paths.root) for run in runs}

    def guarded(run: Run, action, *args):
        try:
            return action(*args)
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
                guarded(run, run.open, bar, len(runs))
            while training := [run for run in alive() if not run.done]:
                interleaved_epoch(training, guarded)
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
