"""`rescom repro --push`: each stage's outputs go to a DVC remote once the controller has recorded
the stage, so a campaign stopped half-way (Ctrl-C, a lost machine, a failed stage) has its finished
runs on the remote for the lab to pull (docs/sharing.md).

The controller calls the pusher after each stage's dvc.lock entry is written (its outputs are in the
cache then); the stages that were already up to date are pushed in one call at the end (DVC sends
only what the remote lacks). A failed push is a value: one line, the stage stays recorded, and a
later `dvc push` sends it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rescom.errors import UsageError
from rescom.executor.controller import Summary, say


def remote_name(repo, remote: str | None) -> str:
    """The remote --push sends to: the one named, else the repository's default; a one-line UsageError
    when there is none, before any cluster starts."""
    remotes = dict(repo.config.get("remote", {}))
    name = remote or repo.config.get("core", {}).get("remote")
    if not name:
        raise UsageError("--push: this repository has no default DVC remote; add one with "
                         "`dvc remote add -d NAME URL` or give --remote NAME (docs/sharing.md)")
    if name not in remotes:
        raise UsageError(f"--push: no DVC remote {name!r}; remotes: {', '.join(sorted(remotes)) or 'none'}")
    return name


@dataclass
class StagePusher:
    repo: object
    remote: str
    pushed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)

    def push(self, names: list[str]) -> None:
        """Push the stages' cached outputs (names: DVC addresses); a failure is reported and kept, never raised."""
        from dvc.exceptions import DvcException

        try:
            count = self.repo.push(targets=names, remote=self.remote)
        except (DvcException, OSError) as err:  # an unreachable remote, a missing cache file: say it, go on
            why = " ".join(str(err).split()) or type(err).__name__
            for name in names:
                self.failed[name] = why
            say(f"[red]push failed[/red] {', '.join(names)} to {self.remote}: {why}; `dvc push` sends it later")
            return
        self.pushed += names
        say(f"pushed   {', '.join(names) if len(names) < 4 else f'{len(names)} stages'}  "
            f"({count} file(s) to {self.remote})")

    def after_record(self, name: str) -> None:
        """The controller's hook: one stage, right after its dvc.lock entry."""
        self.push([name])

    def finish(self, summary: Summary) -> None:
        """Push the stages that were up to date (not after Ctrl-C); push failures count as failures."""
        if summary.skipped and not summary.interrupted:
            self.push(list(summary.skipped))
        for name, why in self.failed.items():
            summary.failed[f"{name} (push to {self.remote})"] = why
