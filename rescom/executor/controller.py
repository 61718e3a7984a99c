"""The controller: a short loop over Dask futures that reacts to each finished job as it comes.

It alone talks to DVC (plan.py): it decides which stages run, submits a job once a stage's upstream
stages are done and a worker slot is free, and records each stage that finished in dvc.lock before
the next result (after submitting the jobs its end let start, so workers do not wait on the write).
A failure is a value the loop handles: the stage is reported with its log, its downstream stages
are not run, the others go on. Ctrl-C stops scheduling, SIGTERMs the running
stages (reported as interrupted, not failed) and still records those that finished. Every event is
one line on the terminal (`say`): stage output goes to the stage's log, DVC's bars nowhere.
"""

from __future__ import annotations

import contextlib
import re
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from rescom.executor import packs, plan
from rescom.executor.stage_job import Job, JobResult, run_job, terminate_running
from rescom.progress import console

# After Ctrl-C, how long running stages get to end on SIGTERM (save nothing new, close MLflow).
STOP_GRACE_S = 60.0


@dataclass
class ReproSettings:
    """threads: OMP/MKL threads of every stage, whatever the worker count. CPU float results depend
    on it, so it must equal the sequential `dvc repro`'s for the same dvc.lock (default: torch's count
    in the controller's environment, which is what a sequential stage gets). pack: stages per job.
    resources: the Dask resources a job of these stages asks for (names, records -> resources),
    for clusters whose workers are of several kinds (SLURM's GPU and CPU jobs); None: any worker,
    at most as many jobs at once as the workers have slots."""

    threads: int
    pack: int = 1
    log_dir: Path = Path("logs/repro")
    tracking_uri: str | None = None
    resources: Callable[[list[str], list[dict | None]], dict] | None = None


@dataclass
class Summary:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # name -> why (with its log)
    stopped: list[str] = field(default_factory=list)  # running at Ctrl-C, stopped by SIGTERM
    not_run: list[str] = field(default_factory=list)  # downstream of a failure, or left at Ctrl-C
    stage_seconds: float = 0.0
    wall_seconds: float = 0.0
    interrupted: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed and not self.not_run and not self.interrupted


def log_path(log_dir: Path, names: list[str]) -> Path:
    stem = names[0] if len(names) == 1 else f"pack-{names[0]}-and-{len(names) - 1}-more"
    return log_dir / (re.sub(r"[^A-Za-z0-9@._-]+", "_", stem) + ".log")


def job_environment(settings: ReproSettings, repo_root: str, names: list[str]) -> dict[str, str]:
    """What a stage's command gets on top of its worker's environment: what `dvc repro` here would
    give it (the thread count, the tracking URI)."""
    env = {"OMP_NUM_THREADS": str(settings.threads), "MKL_NUM_THREADS": str(settings.threads),
            "DVC_ROOT": repo_root, "DVC_STAGE": ",".join(names), "PYTHONUNBUFFERED": "1"}
    if settings.tracking_uri:
        env["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return env


def say(message: str) -> None:
    """One line per event: rich's log wraps at the terminal's width (80 on a pipe), splitting it in a CI log."""
    console.print(f"{time.strftime('%H:%M:%S')} {message}", soft_wrap=True, highlight=False)


class Controller:
    def __init__(self, repo, client, settings: ReproSettings, after_record=None):
        self.repo, self.client, self.settings = repo, client, settings
        self.after_record = after_record  # called with a stage's name once its dvc.lock entry is written (push.py)
        self.summary = Summary()
        self.running: dict = {}  # future -> Job
        self.pending: list[str] = []
        self.runnable: list[str] = []  # changed stages whose upstream is done, waiting for a slot
        self.unrecorded: list[str] = []  # finished well, dvc.lock entry not yet written
        self.resolved: set[str] = set()  # ran or skipped: downstream stages may go

    def reproduce(self, stage_plan: plan.StagePlan) -> Summary:
        from distributed import as_completed

        start = time.monotonic()
        self.plan = stage_plan
        self.commands = {n: plan.stage_commands(self.plan, n) for n in self.plan.order}
        self.records = {n: plan.stage_record(self.plan, n) for n in self.plan.order}
        self.pending = list(self.plan.order)
        self.packing = packs.packing_module() if self.settings.pack > 1 else None
        futures = as_completed()
        try:
            self._schedule(futures)
            for future in futures:
                self._finish(future, self.running.pop(future))
                self._schedule(futures)
                self._record_finished()
        except KeyboardInterrupt:
            self._stop()
        self.summary.not_run += [n for n in self.pending + self.runnable if n not in self.summary.not_run]
        self.summary.wall_seconds = time.monotonic() - start
        return self.summary

    def _slots(self) -> int:
        """How many jobs may run at once. With resources, every ready stage is submitted: Dask
        holds it until a worker of its kind is free, and the cluster grows to what waits."""
        if self.settings.resources is not None:
            return len(self.running) + len(self.runnable)
        if not self.client.nthreads():
            self.client.wait_for_workers(1)
        return sum(self.client.nthreads().values())

    def _schedule(self, futures) -> None:
        """Settle every pending stage whose upstream is done (run or skip, as `dvc repro` would),
        then submit jobs while worker slots are free."""
        progressed = True
        while progressed:
            progressed = False
            for name in list(self.pending):
                if not self.plan.upstream[name] <= self.resolved:
                    continue
                self.pending.remove(name)
                progressed = True
                if plan.needs_run(self.repo, self.plan, name):
                    self.runnable.append(name)
                else:
                    self.summary.skipped.append(name)
                    self.resolved.add(name)
                    say(f"skipped  {name}  (unchanged)")
        free = self._slots() - len(self.running)
        if free <= 0 or not self.runnable:
            return
        jobs = packs.group_into_packs(self.runnable, self.records, self.settings.pack,
                                      self.packing.pack_key if self.packing else (lambda record: None))
        for names in jobs[:free]:
            for name in names:
                self.runnable.remove(name)
                plan.prepare_to_run(self.repo, self.plan, name)
            job = self._job(names)
            resources = (self.settings.resources(names, [self.records[n] for n in names])
                         if self.settings.resources else None)
            future = self.client.submit(run_job, job, key=f"stage-{names[0]}-{time.time_ns()}", pure=False,
                                        resources=resources)
            self.running[future] = job
            futures.add(future)
            say(f"started  {', '.join(names)}")

    def _job(self, names: list[str]) -> Job:
        log = log_path(self.settings.log_dir.resolve(), names)
        log.parent.mkdir(parents=True, exist_ok=True)
        log.unlink(missing_ok=True)
        cwd = self.plan.stages[names[0]].wdir
        env = job_environment(self.settings, self.repo.root_dir, names)
        if len(names) == 1:
            return Job(names, self.commands[names[0]], cwd, str(log), env)
        results = str(log.with_suffix(".results.json"))
        Path(results).unlink(missing_ok=True)
        command = shlex.join(self.packing.pack_command({n: self.records[n] for n in names}, results))
        return Job(names, [command], cwd, str(log), env, results_path=results)

    def _finish(self, future, job: Job) -> None:
        try:
            result: JobResult = future.result()
        except Exception as err:  # noqa: BLE001 - a lost job is a value: report it, go on
            for name in job.names:
                self._failed(name, f"{type(err).__name__}: {err}", job.log_path)
            return
        finally:
            # Read once: Dask would run a stage again to rebuild a result held by a worker that left.
            future.release()
        self.summary.stage_seconds += result.seconds
        if job.results_path is None:
            outcome = {job.names[0]: "" if result.returncode == 0 else f"exit status {result.returncode}"}
        else:
            outcome = packs.stages_that_succeeded(job.names, result.pack_results)
        for name, error in outcome.items():
            if error:
                self._failed(name, error, result.log_path)
                continue
            self.unrecorded.append(name)
            self.summary.ran.append(name)
            self.resolved.add(name)
            say(f"finished {name}  in {result.seconds:.1f} s" + (f" on {result.where}" if result.where else ""))

    def _record_finished(self) -> None:
        """Write the finished stages' dvc.lock entries, in the order they finished. Called after the
        next jobs are submitted: a round-trip of dvc.lock takes the controller about a second per
        stage on the default profile, time the worker would otherwise sit idle (a downstream stage's
        status reads its upstream's outputs from disk, not from dvc.lock)."""
        while self.unrecorded:
            plan.record(self.repo, self.plan, self.unrecorded[0])
            if self.after_record is not None:
                self.after_record(self.unrecorded[0])
            self.unrecorded.pop(0)

    def _failed(self, name: str, error: str, log: str) -> None:
        if self.summary.interrupted:  # its error is the SIGTERM we sent (training exits 143)
            self.summary.stopped.append(name)
            # A `persist` out (a training stage's checkpoint) stays for the interrupted run to continue.
            persists = any(out.persist for out in self.plan.stages[name].outs)
            kept = "; its checkpoint is kept, running again continues from it" if persists else ""
            say(f"[yellow]interrupted {name}[/yellow]{kept}; log {log}")
            return
        self.summary.failed[name] = f"{error}; log {log}"
        say(f"[red]failed   {name}[/red]: {error}; log {log}")
        for other in self.plan.downstream_of(name):
            if other in self.pending:
                self.pending.remove(other)
                self.summary.not_run.append(other)

    def _stop(self) -> None:
        """Ctrl-C: no new jobs; SIGTERM the running ones; record those that still finish well."""
        from distributed import wait

        self.summary.interrupted = True
        say(f"interrupted: stopping {len(self.running)} running job(s) with SIGTERM, recording the stages that finished")
        with contextlib.suppress(Exception):  # a second Ctrl-C or a timeout: keep what is done
            self.client.run(terminate_running)
            wait(list(self.running), timeout=STOP_GRACE_S)
        for future, job in list(self.running.items()):
            if future.done():
                self._finish(future, self.running.pop(future))
            else:  # still ending after the grace period
                future.cancel()
                for name in job.names:
                    self._failed(name, "", job.log_path)
        self.running.clear()
        self._record_finished()


def print_summary(summary: Summary) -> None:
    say(f"{len(summary.ran)} stage(s) run, {len(summary.skipped)} skipped (unchanged), {len(summary.failed)} failed, "
        f"{len(summary.stopped)} interrupted, {len(summary.not_run)} not run; "
        f"wall {summary.wall_seconds:.1f} s, summed stage time {summary.stage_seconds:.1f} s")
    for name, why in summary.failed.items():
        say(f"[red]failed[/red] {name}: {why}")
