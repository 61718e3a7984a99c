"""Wall time of a sample of DVC stages at two commits on this machine, in one sitting, and their ratio.

Usage: python scripts/stage_speed.py --old 81e20c7 [--new HEAD] [--stage main@ce-100-0 ...] [--rounds 1]

Each commit is checked out as a `git worktree` in a scratch folder and runs its own code (PYTHONPATH
puts that checkout first, whatever is installed) with this checkout's .venv; each prepares the data
its stages need with its own prepare stage, untimed. Then every sampled stage runs from scratch
(outputs removed) as its commit's dvc.yaml spells the command, old and new alternating so that a
machine that slows down during the sitting slows both. Default sample: the main table's seed-0
stages of the default profile (ce, bs, supcon_bs, moco_bs, rescom), about 5 minutes per commit on 2
CPU cores. Times are of the stage's command alone; `bash scripts/timed-repro.sh` times the whole
main job, DVC's work between stages included.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = [f"main@{m}-100-0" for m in ("ce", "bs", "supcon_bs", "moco_bs", "rescom")]


def git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def environment(tree: Path) -> dict[str, str]:
    venv_bin = REPO / ".venv" / "bin"
    return {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "PYTHONPATH": str(tree),
            "PATH": f"{venv_bin}:{os.environ['PATH']}"}


def stage_commands(tree: Path, names: list[str]) -> dict[str, tuple[str, list[str], list[str]]]:
    """name -> (command, output paths, upstream stages whose outputs it needs) in that checkout's dvc.yaml."""
    from dvc.repo import Repo

    found = {}
    with contextlib.chdir(tree), Repo(str(tree)) as repo:  # DVC reads stage targets relative to the cwd
        producers = {str(out.fs_path): s.addressing for s in repo.index.stages for out in s.outs}
        for name in names:
            (stage,) = repo.stage.collect(name)
            upstream = [producers[str(dep.fs_path)] for dep in stage.deps if str(dep.fs_path) in producers]
            outs = [os.path.relpath(out.fs_path, tree) for out in stage.outs]
            found[name] = (stage.cmd, outs, upstream)
    return found


def run(tree: Path, command: str, log) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, shell=True, cwd=tree, env=environment(tree), stdout=log, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"`{command}` failed in {tree} (exit {done.returncode}); its output is in {log.name}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", required=True, help="the baseline commit")
    parser.add_argument("--new", default="HEAD", help="the commit compared with it (default HEAD)")
    parser.add_argument("--stage", action="append", dest="stages", help="a stage name (repeat); default: "
                        + ", ".join(SAMPLE))
    parser.add_argument("--rounds", type=int, default=1, help="runs of each stage at each commit")
    args = parser.parse_args()
    stages = args.stages or SAMPLE
    commits = {"old": git("rev-parse", "--short", args.old), "new": git("rev-parse", "--short", args.new)}
    scratch = Path(tempfile.mkdtemp(prefix="rescom-stage-speed-"))
    trees = {label: scratch / f"{label}-{sha}" for label, sha in commits.items()}
    log = open(scratch / "stages.log", "w")
    try:
        commands = {}
        for label, tree in trees.items():
            git("worktree", "add", "--detach", str(tree), commits[label])
            commands[label] = stage_commands(tree, stages)
            for upstream in sorted({u for _, _, ups in commands[label].values() for u in ups}):
                print(f"{label} {commits[label]}: preparing {upstream} (untimed)", flush=True)
                run(tree, f"dvc repro --single-item {upstream}", log)
        seconds = {label: {name: [] for name in stages} for label in trees}
        for round_ in range(args.rounds):
            for name in stages:
                for label, tree in trees.items():
                    command, outs, _ = commands[label][name]
                    for out in outs:
                        path = tree / out
                        shutil.rmtree(path.parent if path.suffix else path, ignore_errors=True)
                    seconds[label][name].append(run(tree, command, log))
                    print(f"round {round_ + 1} {label} {commits[label]} {name}: {seconds[label][name][-1]:.1f} s",
                          flush=True)
        print(f"\nstage wall time, mean of {args.rounds} round(s), this machine "
              f"({os.cpu_count()} CPUs), old {commits['old']} vs new {commits['new']}")
        totals = {label: 0.0 for label in trees}
        for name in stages:
            old, new = (sum(seconds[label][name]) / args.rounds for label in ("old", "new"))
            totals["old"] += old
            totals["new"] += new
            print(f"  {name:28s} {old:7.1f} s {new:7.1f} s  {new / old:5.2f}x")
        print(f"  {'sum':28s} {totals['old']:7.1f} s {totals['new']:7.1f} s  "
              f"ratio new/old {totals['new'] / totals['old']:.3f}")
    finally:
        log.close()
        for tree in trees.values():
            if tree.exists():
                subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO, capture_output=True)
        print(f"(stage output: {scratch / 'stages.log'})")


if __name__ == "__main__":
    main()
