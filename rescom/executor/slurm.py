"""`rescom repro --slurm`: the stages' Dask workers as SLURM jobs (dask-jobqueue), two kinds of them.

A GPU job (`--gres=gpu:G`, Dask resource `GPU=G`) runs the stages that need a GPU (the training
stages by default); a CPU job (Dask resource `CPU_STAGE=1`, no gres) runs every other stage, so
prepare, analysis and report stages never hold a GPU. The controller submits every ready stage with
its kind's resource; `JobPool` keeps as many jobs of each kind alive as there are stages of that
kind waiting or running (at most the site's limit), retiring idle ones and replacing lost ones
(a walltime, a preemption, an `scancel`), whose stage Dask gives to the next worker of its kind.
Workers retire themselves before their walltime (Dask's `--lifetime` with a stagger), so a stage
is stopped by Dask (and continues from its checkpoint on a new job), not killed mid-write by SLURM.

Scheduler and workers speak TLS with a certificate made for this run (dask-jobqueue's
`security=True`), written under the workspace's `.rescom-slurm/` (which jobs on other nodes must
see: a shared filesystem): a Dask scheduler runs code for any client that connects, so on a shared
cluster nobody without the file gets in.
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

from rescom.errors import UsageError

GPU_RESOURCE, CPU_RESOURCE = "GPU", "CPU_STAGE"
# How often the pool compares the jobs with the stages waiting for them.
POOL_PERIOD_S = 2.0


@dataclass
class SlurmSettings:
    """A site's settings (a YAML file of these keys, `--slurm-config`, then command-line options).

    Defaults run on the one-node SLURM of scripts/slurm-local.sh; a GPU cluster sets at least
    `partition`, `cores`, `memory` and `walltime`. `gpu_stages`: glob patterns of stage names that
    need a GPU (empty: the training stages). `prologue`: shell lines each job runs before its worker
    (`module load ...`, `source .venv/bin/activate`). `directives`: extra `#SBATCH` options.
    `scheduler_host`: where the controller's Dask scheduler listens (empty: 127.0.0.1 when every
    node of the cluster is this machine, else this machine's host name).
    """

    partition: str = ""
    cpu_partition: str = ""  # CPU jobs' partition (empty: `partition`)
    account: str = ""
    walltime: str = "04:00:00"
    memory: str = "4GB"  # per job
    cores: int = 1  # per job
    gpus_per_job: int = 1
    max_gpu_jobs: int = 4
    max_cpu_jobs: int = 1
    directives: list[str] = field(default_factory=list)
    prologue: list[str] = field(default_factory=list)
    gpu_stages: list[str] = field(default_factory=list)
    python: str = sys.executable
    scheduler_host: str = ""

    def check(self) -> SlurmSettings:
        walltime_seconds(self.walltime)
        for name in ("cores", "gpus_per_job", "max_gpu_jobs", "max_cpu_jobs"):
            if getattr(self, name) < (0 if name == "gpus_per_job" else 1):
                raise UsageError(f"slurm setting {name!r} must be at least {0 if name == 'gpus_per_job' else 1}, "
                                  f"got {getattr(self, name)}")
        return self


def load_settings(path: Path | None, overrides: dict) -> SlurmSettings:
    """The site file's settings (unknown keys refused by name), then the options given on the command line."""
    import yaml

    known = {f.name: f for f in fields(SlurmSettings)}
    values: dict = {}
    if path is not None:
        if not path.is_file():
            raise UsageError(f"--slurm-config {path}: no such file")
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise UsageError(f"{path}: expected a mapping of SLURM settings, got {type(loaded).__name__}")
        for key, value in loaded.items():
            if key not in known:
                raise UsageError(f"{path}: unknown SLURM setting {key!r}; known: {', '.join(known)}")
            listed = known[key].type.startswith("list")
            values[key] = ([str(v) for v in value] if isinstance(value, list) else [str(value)]) if listed else value
    values |= {k: v for k, v in overrides.items() if v not in (None, [], ())}
    try:
        return SlurmSettings(**values).check()
    except TypeError as err:
        raise UsageError(f"SLURM settings: {err}") from None


def walltime_seconds(walltime: str) -> int:
    """SLURM's [days-]hours:minutes:seconds (or minutes, minutes:seconds) in seconds."""
    match = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", walltime.strip())
    if not match:
        raise UsageError(f"slurm setting 'walltime': {walltime!r} is not [days-]hours:minutes:seconds")
    days, first, second, third = (int(g) if g else None for g in match.groups())
    if second is None:  # minutes
        hours, minutes, seconds = 0, first, 0
    elif third is None:  # minutes:seconds, or days-hours:minutes
        hours, minutes, seconds = (first, second, 0) if days is not None else (0, first, second)
    else:
        hours, minutes, seconds = first, second, third
    return (days or 0) * 86400 + hours * 3600 + minutes * 60 + seconds


def worker_lifetime(walltime: str) -> tuple[int, int]:
    """(lifetime, stagger) in seconds: a worker retires a margin before its job's walltime (a tenth
    of it, at most 10 minutes), staggered by half that margin so the workers of jobs started
    together do not all retire at once."""
    total = walltime_seconds(walltime)
    margin = max(1, min(600, total // 10))
    return total - margin, margin // 2


def slurm_nodes() -> list[str]:
    """The cluster's node names (`sinfo`), or a UsageError saying SLURM cannot be reached."""
    try:
        done = subprocess.run(["sinfo", "-h", "-N", "-o", "%N"], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise UsageError("--slurm: `sinfo` not found: run on a SLURM login or compute node "
                          "(or start a one-node SLURM: bash scripts/slurm-local.sh start)") from None
    except subprocess.TimeoutExpired:
        raise UsageError("--slurm: `sinfo` did not answer in 30 s: is slurmctld up?") from None
    if done.returncode != 0:
        raise UsageError(f"--slurm: sinfo failed: {(done.stderr.strip().splitlines() or ['no message'])[-1]}")
    return sorted(set(done.stdout.split()))


def is_this_machine(node: str) -> bool:
    return node in ("localhost", socket.gethostname(), socket.getfqdn())


def scheduler_host(settings: SlurmSettings, nodes: list[str]) -> str:
    """Where the scheduler listens: the setting, else loopback when every node is this machine
    (nothing then listens beyond it), else this machine's name, which the compute nodes resolve."""
    if settings.scheduler_host:
        return settings.scheduler_host
    return "127.0.0.1" if nodes and all(is_this_machine(n) for n in nodes) else socket.gethostname()


def needs_gpu(name: str, record: dict | None, settings: SlurmSettings) -> bool:
    """Whether a stage runs on a GPU job: its name matches `gpu_stages`, or (none given) its record
    (the stage's `meta`, rescom.pipeline.stage_record) says it trains."""
    if settings.gpu_stages:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in settings.gpu_stages)
    from rescom.pipeline.packing import train_stage

    return train_stage(name, record) is not None


def stage_resources(kind_is_gpu: bool, settings: SlurmSettings) -> dict[str, float]:
    return {GPU_RESOURCE: max(1, settings.gpus_per_job)} if kind_is_gpu else {CPU_RESOURCE: 1}


def job_options(settings: SlurmSettings, gpu: bool, host: str, job_name: str, log_dir: Path) -> dict:
    """SLURMCluster / SLURMJob keyword options for one kind of job."""
    lifetime, stagger = worker_lifetime(settings.walltime)
    worker_args = ["--nthreads", "1", "--preload", "rescom.executor.worker_setup",
                   "--lifetime", f"{lifetime}s", "--lifetime-stagger", f"{stagger}s",
                   "--resources", f"{GPU_RESOURCE}={max(1, settings.gpus_per_job)}" if gpu else f"{CPU_RESOURCE}=1"]
    if host == "127.0.0.1":  # one node: the workers listen on loopback too
        worker_args += ["--host", "127.0.0.1"]
    directives = list(settings.directives)
    if gpu and settings.gpus_per_job:
        directives.append(f"--gres=gpu:{settings.gpus_per_job}")
    partition = settings.partition if gpu else (settings.cpu_partition or settings.partition)
    return {"cores": settings.cores, "processes": 1, "memory": settings.memory, "walltime": settings.walltime,
            "queue": partition or None, "account": settings.account or None, "job_name": job_name,
            "job_extra_directives": directives, "worker_extra_args": worker_args,
            "job_script_prologue": list(settings.prologue), "python": settings.python,
            "log_directory": str(log_dir)}


def job_scripts(settings: SlurmSettings, host: str, log_dir: Path) -> dict[str, str]:
    """The two job scripts as they would be submitted (the scheduler's address and certificate
    paths are placeholders until it starts): what `--dry-run` prints."""
    from dask_jobqueue.slurm import SLURMJob

    placeholder = f"tls://{host}:<port>"
    return {kind: SLURMJob(placeholder, name=f"{kind}-N",
                           **job_options(settings, kind == "gpu", host, "rescom-repro-<run>", log_dir)).job_script()
            for kind in ("gpu", "cpu")}


class JobPool:
    """The SLURM jobs of one `rescom repro --slurm`: a SLURMCluster whose worker specs this pool
    sets by kind, every POOL_PERIOD_S seconds on the cluster's event loop, from the scheduler's own
    record of the stages waiting for or running on a worker of each kind."""

    def __init__(self, settings: SlurmSettings, root: Path, log_dir: Path):
        from dask_jobqueue import SLURMCluster

        # Importing dask_jobqueue makes SIGINT a silent sys.exit(0) (its runner module's handler):
        # Ctrl-C must reach the controller as KeyboardInterrupt (stop stages, record, cancel jobs).
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, signal.default_int_handler)

        self.settings = settings
        self.host = scheduler_host(settings, slurm_nodes())
        self.job_name = f"rescom-repro-{uuid.uuid4().hex[:8]}"
        shared = root / ".rescom-slurm"
        shared.mkdir(exist_ok=True)
        gpu = job_options(settings, True, self.host, self.job_name, log_dir)
        self.cluster = SLURMCluster(**gpu, security=True, shared_temp_directory=str(shared),
                                    scheduler_options={"host": self.host, "dashboard_address": "127.0.0.1:0"},
                                    silence_logs=40)
        cpu = job_options(settings, False, self.host, self.job_name, log_dir)
        template = self.cluster.new_spec
        self.templates = {"gpu": template, "cpu": {"cls": template["cls"], "options": {
            **template["options"], **{k: cpu[k] for k in ("queue", "job_extra_directives", "worker_extra_args")}}}}
        self.limits = {"gpu": settings.max_gpu_jobs, "cpu": settings.max_cpu_jobs}
        self.serial = 0
        self._callback = None

    def start(self) -> None:
        from tornado.ioloop import PeriodicCallback

        self._callback = PeriodicCallback(self.adjust, POOL_PERIOD_S * 1000)
        self.cluster.loop.add_callback(self._callback.start)

    def demand(self) -> dict[str, int]:
        """Stages waiting for or running on a worker, by the kind their resources ask for."""
        counts = {"gpu": 0, "cpu": 0}
        for task in self.cluster.scheduler.tasks.values():
            if task.state in ("no-worker", "queued", "processing", "waiting"):
                wanted = task.resource_restrictions or {}
                if GPU_RESOURCE in wanted:
                    counts["gpu"] += 1
                elif CPU_RESOURCE in wanted:
                    counts["cpu"] += 1
        return counts

    def adjust(self) -> None:
        """Add jobs where stages wait, retire idle jobs of a kind with fewer stages than jobs, and
        let the cluster resubmit a job whose worker was lost (SpecCluster starts a new job for a
        spec whose job is gone)."""
        # Busy: running a stage, or holding a finished one's result the controller has not read yet.
        busy = {ws.name for ws in self.cluster.scheduler.workers.values() if ws.processing or ws.has_what}
        spec = self.cluster.worker_spec
        for kind, wanted in self.demand().items():
            names = [n for n in spec if str(n).startswith(f"{kind}-")]
            target = min(self.limits[kind], wanted)
            while len(names) < target:
                name = f"{kind}-{self.serial}"
                self.serial += 1
                spec[name] = copy.deepcopy(self.templates[kind])
                names.append(name)
            for name in reversed(names[target:]):
                if name not in busy:
                    del spec[name]
        self.cluster.loop.add_callback(self.cluster._correct_state)

    def close(self) -> None:
        """Stop the pool, close the cluster (it cancels its jobs), then cancel by name whatever
        job of this run SLURM still holds (one submitted as the cluster closed)."""
        if self._callback is not None:
            self.cluster.loop.add_callback(self._callback.stop)
        try:
            self.cluster.close()
        finally:
            user = os.environ.get("USER") or os.environ.get("LOGNAME") or ""
            subprocess.run(["scancel", f"--name={self.job_name}", *([f"--user={user}"] if user else [])],
                           capture_output=True, timeout=60, check=False)
