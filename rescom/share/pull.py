"""`dvc pull` of what a lab pushed: a profile's outputs, or single runs with their prepared sets.

A run is named as its folder (`runs/<profile>/<table>/<name>`, or `<table>/<name>` within the
profile); its stage is the one whose outputs hold the folder's checkpoint, found in DVC's own index
rather than rebuilt from the matrix naming. Pulled `--with-deps`, so the prepared set the stage
reads comes along and `rescom evaluate` needs no raw data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rescom.errors import MissingFileError, UsageError
from rescom.pipeline.catalogue import profile_params


@dataclass
class Pulled:
    targets: list[str]
    fetched: int
    run_dirs: list[Path]  # the run folders the targets cover


def run_stages(repo, profile: str, runs: list[str]) -> dict[str, str]:
    """{run folder: its training stage's address} for each run given as a folder or <table>/<name>."""
    dvcfile = profile_params(profile).with_name("dvc.yaml").as_posix()
    by_folder = {}
    for stage in repo.index.stages:
        if stage.dvcfile.relpath != dvcfile:
            continue
        for out in stage.outs:
            path = Path(out.def_path)
            if path.name == "checkpoint.pt":
                by_folder[path.parent.as_posix()] = stage.addressing
    found = {}
    for run in runs:
        folder = run.rstrip("/") if run.startswith("runs/") else f"runs/{profile}/{run.strip('/')}"
        if folder not in by_folder:
            tables = sorted({Path(f).parent.name for f in by_folder})
            raise UsageError(f"{run}: no run of profile {profile!r} in {dvcfile} "
                             f"(runs are runs/{profile}/<table>/<name>; tables: {', '.join(tables) or 'none'})")
        found[folder] = by_folder[folder]
    return found


def pull(profile: str, runs: list[str], remote: str | None = None, allow_missing: bool = False) -> Pulled:
    """`dvc pull` of the profile's dvc.yaml, or of the given runs' stages with their upstream stages."""
    from dvc.exceptions import DvcException
    from dvc.repo import Repo

    dvcfile = profile_params(profile).with_name("dvc.yaml")
    if not dvcfile.is_file():
        raise MissingFileError(f"unknown profile {profile!r}: {dvcfile} not found")
    targets: list[str] = [dvcfile.as_posix()]
    with Repo() as repo:
        try:
            if runs:
                stages = run_stages(repo, profile, runs)
                targets, folders = list(stages.values()), [Path(f) for f in stages]
            else:
                folders = [Path("runs") / profile]
            result = repo.pull(targets=targets, remote=remote, with_deps=bool(runs), allow_missing=allow_missing)
        except DvcException as err:  # no remote, unreachable, missing files: DVC's message in one line
            raise UsageError(f"dvc pull {' '.join(targets)}: "
                             + " ".join(str(err).split())) from None
    return Pulled(targets, int(result.get("stats", {}).get("fetched", 0)), folders)
