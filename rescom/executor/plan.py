"""Which stages `dvc repro TARGETS` would run, in what order, and recording one that finished.

Everything here goes through DVC's Python API (dvc.repo.Repo, its index graph and Stage methods),
the way dvc/repo/reproduce.py does it: stages are collected from the targets, the plan is the
post-order of the active graph (frozen stages cut from their upstream), a stage runs when
`Stage.changed()` says so at the moment its upstream stages are done, and a stage that ran is saved,
committed and dumped to dvc.lock right away. Only the controller calls these functions; a bad
target or DVC file is a one-line UsageError from `plan_stages`, before any cluster starts.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from rescom.errors import UsageError
from rescom.yaml_files import _one_line  # any exception: its problem at line and column, or first line


@dataclass
class StagePlan:
    """The stages to consider, each with the names of its upstream stages within the plan.

    order: stage names in DVC's own repro order (a post-order: upstream before downstream).
    stages: name -> dvc Stage. upstream: name -> names of the stages it depends on.
    """

    order: list[str]
    stages: dict = field(repr=False)
    upstream: dict[str, set[str]]
    locked_before: dict[str, list[str]] = field(default_factory=dict)  # lockfile -> its entries at the start
    appended: dict[str, list[str]] = field(default_factory=dict)  # lockfile -> new entries in the order written

    def downstream_of(self, name: str) -> set[str]:
        """Every stage that depends on `name`, directly or through others."""
        found, frontier = set(), {name}
        while frontier:
            frontier = {n for n in self.order if self.upstream[n] & frontier} - found
            found |= frontier
        return found


def open_repo(root: str | Path | None = None):
    from dvc.repo import Repo

    # DVC draws bars (hashing, "Waiting to acquire lock") when stderr is a terminal and these loggers
    # pass ERROR, and logs "Updating lock file": noise around the controller's one line per stage.
    for name, level in (("dvc", logging.WARNING), ("dvc.progress", logging.CRITICAL),
                        ("dvc_data.callbacks", logging.CRITICAL)):
        logging.getLogger(name).setLevel(level)
    with _one_line_errors():
        return Repo(str(root) if root is not None else None)


@contextlib.contextmanager
def _one_line_errors(repo=None):
    """DVC's error on a bad target or file (through the CLI, a traceback of hundreds of lines) as a
    one-line UsageError: its message, its cause's problem and place, and what exists instead."""
    from dvc.exceptions import DvcException
    from dvc.stage.exceptions import StageFileDoesNotExistError, StageNotFound

    try:
        yield
    except DvcException as err:
        found = ""
        if isinstance(err, StageNotFound) and repo is not None:  # main@x: main's items; else each group once
            from dvc.dvcfile import load_file

            names = list(load_file(repo, err.file).stages)
            group = [n for n in names if n.startswith(err.name.split("@")[0] + "@")]
            found = "; its stages: " + ", ".join(group or dict.fromkeys(n.split("@")[0] + "@…" * ("@" in n) for n in names))
        elif isinstance(err, StageFileDoesNotExistError) and repo is not None:
            root = Path(repo.root_dir)
            found = "; dvc.yaml files: " + ", ".join(str(p.relative_to(root)) for depth in ("", "*/", "*/*/")
                                                     for p in sorted(root.glob(depth + "dvc.yaml")))
        raise UsageError(str(err) + (f": {_one_line(err.__cause__)}" if err.__cause__ else "") + found) from None


def plan_stages(repo, targets: list[str]) -> StagePlan:
    """DVC's plan for `dvc repro TARGETS`: the targets and all their upstream stages."""
    from dvc.repo import lock_repo
    from dvc.repo.reproduce import collect_stages, get_active_graph, plan_repro

    with _one_line_errors(repo), lock_repo(repo):
        stages = collect_stages(repo, targets)
        graph = get_active_graph(repo.index.graph)
        steps = plan_repro(graph, stages)
        names = {stage: stage.addressing for stage in steps}
        # The graph's edges point from a stage to the stages it depends on.
        upstream = {names[s]: {names[u] for u in graph.successors(s) if u in names} for s in steps}
        locked_before = {path: _lock_entries(repo, path) for path in {_lockfile(s) for s in steps}}
    return StagePlan(order=[names[s] for s in steps], stages={names[s]: s for s in steps}, upstream=upstream,
                     locked_before=locked_before)


def _lockfile(stage) -> str:
    return stage.dvcfile._lockfile.path


def _lock_entries(repo, path: str) -> list[str]:
    from dvc.utils.serialize import load_yaml

    if not repo.fs.exists(path):
        return []
    return list((load_yaml(path, fs=repo.fs) or {}).get("stages", {}))


def needs_run(repo, plan: StagePlan, name: str) -> bool:
    """`Stage.changed()` as `dvc repro` asks it once the upstream stages are done. No run cache: DVC
    keeps none for the training stages (their checkpoint is `persist`) nor for stages with git-tracked
    outputs; a prepare stage it would restore from there runs again, to the same bytes."""
    from dvc.repo import lock_repo

    stage = plan.stages[name]
    upstream = [plan.stages[u] for u in plan.upstream[name]]
    with lock_repo(repo):
        return bool(stage.frozen is False and stage.cmd and stage.changed(False, upstream))


def prepare_to_run(repo, plan: StagePlan, name: str) -> None:
    """What `Stage.run` does before the command: remove the outputs that are not `persist`
    (a persisted checkpoint stays, so an interrupted run continues from it)."""
    from dvc.repo import lock_repo

    with lock_repo(repo):
        plan.stages[name].remove_outs(ignore_remove=False, force=False)


def record(repo, plan: StagePlan, name: str) -> None:
    """What `Stage.run` and `dvc repro` do after a command succeeded: hash deps and outs, commit,
    write the stage's dvc.lock entry. The controller calls this for one stage at a time."""
    from dvc.repo import lock_repo

    stage = plan.stages[name]
    with lock_repo(repo):
        stage.save(allow_missing=False, run_cache=False)
        stage.commit(allow_missing=False)
        stage.dump(update_pipeline=False)
        _keep_sequential_order(repo, plan, _lockfile(stage), stage.name)


def _keep_sequential_order(repo, plan: StagePlan, path: str, written: str) -> None:
    """dvc.lock lists entries in the order they were first written (DVC's dump updates an entry in
    place or appends it). `dvc repro` writes new ones in plan order; here they finish in any order,
    so they are put back in plan order (entries that were there before keep their places), which
    makes the file equal to a sequential run's byte for byte. While they finish in plan order (one
    worker) the file is already so and is not parsed and written a second time (a second
    round-trip of the default profile's dvc.lock is about 1 s per stage)."""
    from dvc.utils.serialize import modify_yaml

    before = plan.locked_before.get(path, [])
    appended = plan.appended.setdefault(path, [])
    if written not in before and written not in appended:
        appended.append(written)
    new_in_plan_order = [plan.stages[n].name for n in plan.order
                         if _lockfile(plan.stages[n]) == path and plan.stages[n].name not in before]
    in_plan_order = [n for n in new_in_plan_order if n in appended]
    if appended == in_plan_order:
        return
    with modify_yaml(path, fs=repo.fs) as data:
        entries = data["stages"]
        for name in [n for n in before if n in entries] + [n for n in new_in_plan_order if n in entries]:
            entries[name] = entries.pop(name)
    appended[:] = in_plan_order


def stage_record(plan: StagePlan, name: str) -> dict | None:
    """The stage's record from dvc.yaml (its `meta`, interpolated by DVC; rescom.pipeline.stage_record):
    what the stage runs, as data. None for a stage without one."""
    return plan.stages[name].meta


def stage_commands(plan: StagePlan, name: str) -> list[str]:
    """The stage's cmd from dvc.yaml, interpolated by DVC, as a list (a cmd may be several lines)."""
    cmd = plan.stages[name].cmd
    return list(cmd) if isinstance(cmd, list) else cmd.splitlines()
