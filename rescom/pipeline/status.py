"""Is each profile up to date? One line per profile, where a bare `dvc status` gathers every dvc.yaml
of the repository and lists every stage of the profiles that were never run (5,404 lines after the
main job on a fresh clone).

A profile is not run when its dvc.lock is absent, or when its lock is committed but no run of it was
trained in this workspace (no runs/<profile>/); its stages are not listed. For the others, DVC's
own status of their dvc.yaml decides which stages `dvc repro` would run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

SHOWN = 5  # stage names listed per profile; `dvc status <its dvc.yaml>` gives the rest


@dataclass(frozen=True)
class ProfileStatus:
    name: str
    dvcfile: Path               # relative to the repository's root
    not_run: str = ""           # why it counts as not run, else ""
    stages: int = 0
    changed: tuple[str, ...] = ()  # the stages `dvc repro` would run again

    def line(self) -> str:
        if self.not_run:
            state = f"not run ({self.not_run})"
        elif not self.changed:
            state = f"up to date ({self.stages} stages)"
        else:
            names = ", ".join(self.changed[:SHOWN]) + (", ..." if len(self.changed) > SHOWN else "")
            state = f"{len(self.changed)} of {self.stages} stages to run: {names} (dvc status {self.dvcfile})"
        return f"{self.name:<14}{state}"


def profile_dvcfiles(root: Path) -> dict[str, Path]:
    """{profile: its dvc.yaml relative to root}: dvc.yaml for `default`, pipelines/<profile>/dvc.yaml."""
    files = {"default": Path("dvc.yaml")} if (root / "dvc.yaml").is_file() else {}
    return files | {p.parent.name: p.relative_to(root) for p in sorted(root.glob("pipelines/*/dvc.yaml"))}


def profile_status(root: Path = Path(".")) -> list[ProfileStatus]:
    """Every profile of the repository at root, in profile_dvcfiles' order."""
    from dvc.repo import Repo

    statuses = []
    with Repo(str(root)) as repo:
        for name, dvcfile in profile_dvcfiles(root).items():
            lock = dvcfile.with_name("dvc.lock")
            if not (root / lock).is_file():
                statuses.append(ProfileStatus(name, dvcfile, not_run=f"no {lock}"))
            elif not (root / "runs" / name).is_dir():
                statuses.append(ProfileStatus(name, dvcfile, not_run=f"{lock} committed, no runs/{name}/ here"))
            else:
                target = str((root / dvcfile).resolve())  # DVC reads a relative target from the working directory
                stages = [stage.name for stage in repo.stage.collect(target)]  # in dvc.yaml's order
                changed = {address.rsplit(":", 1)[-1] for address in repo.status(targets=[target])}
                statuses.append(ProfileStatus(name, dvcfile, stages=len(stages),
                                              changed=tuple(s for s in stages if s in changed)))
    return statuses
