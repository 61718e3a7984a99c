"""The local Dask cluster a `rescom repro` runs on: one worker per GPU, or N on a CPU (an existing
scheduler is given by its address; SLURM jobs are slurm.py's).

Every worker runs one job at a time (nthreads=1): a job is a whole training process, and its own
threads are set by the job's environment (controller.job_environment), never by the worker count.
"""

from __future__ import annotations

import os


def visible_gpus() -> list[str]:
    """The GPU ids this machine offers: CUDA_VISIBLE_DEVICES if set, else every CUDA device torch sees."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [g.strip() for g in listed.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def quiet_dask_config() -> dict:
    """Dask settings for workers that each run one long shell command the controller placed: no
    statistical profiler sampling the worker's threads every 10 ms, no work stealing (nothing is
    queued on a worker to steal), event-loop and memory checks once a second instead of 50 and 10
    times. On a CPU this background work competes with training for the same cores. And no
    pre-spawn environment: a local nanny would write MALLOC_TRIM_THRESHOLD_=65536 and one BLAS thread
    into this process and its workers, settings for Dask's own tasks under which two packed
    default-profile runs took 2.2x their time; stages get what a sequential `dvc repro` gets."""
    return {"distributed.worker.profile.enabled": False, "distributed.scheduler.work-stealing": False,
            "distributed.admin.tick.interval": "1s", "distributed.worker.memory.monitor-interval": "1s",
            "distributed.nanny.pre-spawn-environ": {}}


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers and taskset narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_workers(jobs: int | None, threads: int, cores: int) -> tuple[int, str | None]:
    """(workers, why fewer) for `--jobs jobs` on a CPU when every stage runs `threads` threads.

    Workers beyond cores // threads would only share the same cores, each stage slowed by as much as
    the others run, the cores thrashing between thread pools (the smoke profile took 262 s at
    --jobs 2 against 177 s by dvc repro on 2 cores), so that many are started and `why` says so in
    one line. Packing them instead was measured and not taken as the default: it shares start-up
    (smoke: 106 s against 161 s) but the default profile's runs lose more to interleaving than that
    (1,196 s against 1,131 s), so --pack stays the user's choice.
    """
    wanted = max(1, jobs or 1)
    fit = max(1, cores // max(1, threads))
    if wanted <= fit:
        return wanted, None
    why = (f"--jobs {wanted}: {cores} CPU cores hold {fit} stage(s) at {threads} threads each (dvc repro's "
           f"count; CPU numbers depend on it), more would only slow each other: running {fit}. "
           f"--threads {max(1, cores // wanted)} splits the cores (other numbers); --pack K shares start-up "
           f"(helps runs of a few seconds, slows longer ones on a CPU)")
    return fit, why


def worker_specs(jobs: int | None, gpus: list[str]) -> dict:
    """SpecCluster worker specs: one worker per GPU with CUDA_VISIBLE_DEVICES set in its process's
    environment (so a stage on it sees only its GPU, as device 0); without GPUs, `jobs` workers.
    With GPUs, `jobs` (if given) caps how many of them are used."""
    from distributed import Nanny

    def spec(env: dict[str, str]) -> dict:
        return {"cls": Nanny, "options": {"nthreads": 1, "env": env, "host": "127.0.0.1", "silence_logs": 30,
                                          "preload": ["rescom.executor.worker_setup"]}}

    if gpus:
        used = gpus[:jobs] if jobs else gpus
        return {f"gpu{g}": spec({"CUDA_VISIBLE_DEVICES": g}) for g in used}
    return {f"cpu{i}": spec({}) for i in range(max(1, jobs or 1))}


def start_local_cluster(jobs: int | None, gpus: list[str] | None = None, dashboard_address: str = "127.0.0.1:0"):
    """A cluster of worker processes on this machine, its scheduler and dashboard on 127.0.0.1."""
    from distributed import Scheduler, SpecCluster

    scheduler = {"cls": Scheduler, "options": {"host": "127.0.0.1", "dashboard_address": dashboard_address}}
    return SpecCluster(workers=worker_specs(jobs, visible_gpus() if gpus is None else gpus),
                       scheduler=scheduler, silence_logs=40, name="rescom-repro")
