"""What a Dask worker runs: the shell commands of one job (one stage, or one pack of stages).

A worker gets a plain `Job` and returns a plain `JobResult`; it never touches DVC. The commands run
as DVC runs a stage's cmd (the user's shell without rc files, the stage's wdir, DVC_ROOT and
DVC_STAGE set), with stdout and stderr to the job's log file. Each command runs in its own session
so a Ctrl-C at the controller's terminal does not reach it: the controller stops running jobs with
SIGTERM (`terminate_running`, called on every worker), which training handles by marking its MLflow
run KILLED and keeping its last checkpoint. If the worker process itself dies (kill -9), the kernel
tells the command's guard (orphan_guard.py, PR_SET_PDEATHSIG), which stops the command's whole
process group, so the job's retry does not race an orphan.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from rescom.executor.orphan_guard import die_with_parent, guarded

# Commands running in this worker process, so `terminate_running` can reach them.
_RUNNING: dict[int, subprocess.Popen] = {}


@dataclass
class Job:
    """names: the DVC stages this job runs. commands: shell lines, run in order, each must exit 0.
    results_path: where a pack command writes its per-stage JSON ({stage name: {"ok", "error"}}), else None."""

    names: list[str]
    commands: list[str]
    cwd: str
    log_path: str
    env: dict[str, str] = field(default_factory=dict)
    results_path: str | None = None


@dataclass
class JobResult:
    returncode: int
    seconds: float
    log_path: str
    worker: str = ""
    pack_results: dict | None = None  # the pack command's JSON, when the job is a pack
    slurm_job: str = ""  # the SLURM job the worker ran in, and the GPUs SLURM gave it
    slurm_gpus: str = ""

    @property
    def where(self) -> str:
        """'gpu-0 (SLURM job 12, 1 GPU)', 'cpu0', or '' when the worker is unnamed."""
        if not self.slurm_job:
            return self.worker
        gpus = f", {self.slurm_gpus} GPU" if self.slurm_gpus else ", no GPU"
        return f"{self.worker} (SLURM job {self.slurm_job}{gpus})"


# Seconds an orphaned command gets between SIGTERM and SIGKILL (training saves its state on SIGTERM).
ORPHAN_GRACE_SECONDS = 30.0


def guarded_argv(command: str) -> list[str]:
    """The guard (the worker's direct child), then the user's shell running `command` without reading
    rc files, as `dvc repro` runs a cmd."""
    shell = os.environ.get("SHELL") or "/bin/sh"
    options = {"bash": ["--noprofile", "--norc"], "zsh": ["--no-rcs"]}.get(Path(shell).name, [])
    return guarded([shell, *options, "-c", command], ORPHAN_GRACE_SECONDS)


def dask_worker_settings() -> set[str]:
    """The variables a Dask nanny puts into its worker's environment (distributed.nanny.pre-spawn-environ):
    MALLOC_TRIM_THRESHOLD_=65536 and one BLAS/OpenMP thread, settings for Dask's own tasks."""
    import dask
    import distributed  # noqa: F401 - its import loads the defaults this reads

    return set(dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {})


def run_job(job: Job) -> JobResult:
    """Run the job's commands in order, stopping at the first that fails. A command sees the worker's
    environment without Dask's worker settings, plus the job's. A worker of a remote cluster (SLURM)
    gets them from its own nanny: under MALLOC_TRIM_THRESHOLD_=65536 glibc hands freed memory back to
    the kernel and faults it in again every step (two packed default-profile runs took 2.2x their time)."""
    start = time.monotonic()
    inherited = {k: v for k, v in os.environ.items() if k not in dask_worker_settings()}
    env = {**inherited, **job.env, "RESCOM_WORKER_PID": str(os.getpid()),
           # `rescom` and `dvc` of the worker's own environment first, as if it were activated.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    Path(job.log_path).parent.mkdir(parents=True, exist_ok=True)
    returncode = 0
    slurm_job, slurm_gpus = os.environ.get("SLURM_JOB_ID", ""), os.environ.get("SLURM_GPUS_ON_NODE", "")
    with open(job.log_path, "a") as log:
        if slurm_job:  # which allocation ran the stage, as SLURM set it for the worker's job
            log.write(f"# worker {_worker_name()}, SLURM job {slurm_job}, GPUs {slurm_gpus or 0}\n")
        for command in job.commands:
            log.write(f"$ {command}\n")
            log.flush()
            process = subprocess.Popen(guarded_argv(command), cwd=job.cwd, env=env, stdout=log,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       start_new_session=True, preexec_fn=die_with_parent)
            _RUNNING[process.pid] = process
            try:
                returncode = process.wait()
            finally:
                _RUNNING.pop(process.pid, None)
            if returncode != 0:
                log.write(f"exit status {returncode}\n")
                break
    pack_results = None
    if job.results_path is not None and Path(job.results_path).is_file():
        pack_results = json.loads(Path(job.results_path).read_text())
    return JobResult(returncode, time.monotonic() - start, job.log_path, _worker_name(), pack_results,
                     slurm_job, slurm_gpus)


def terminate_running() -> None:
    """SIGTERM to every command this worker process is running (their whole process groups)."""
    for pid in list(_RUNNING):
        with contextlib.suppress(ProcessLookupError):  # ended meanwhile
            os.killpg(pid, signal.SIGTERM)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return ""
