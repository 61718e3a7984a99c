"""Where the wall time of one DVC stage goes: `dvc repro --force --single-item STAGE` sampled by py-spy
(every process, idle time included, never pausing them), each sample of a main thread put into one phase, printed as a
table of seconds. How docs/results.md's "start-up of a training stage" breakdown was measured.

Usage: python scripts/stage_breakdown.py [--tree DIR] [--stage main@ce-100-0] [--rate 200]
(needs py-spy: pip install -e '.[dev]'). --tree runs it in another checkout (a `git worktree` of an
older commit, with its own prepared data): that checkout's code is imported, whatever is installed.
The stage's outputs are rewritten (the same bytes, when the code is the committed one).

A sample goes to the innermost phase its stack names (a lazy import inside the tracker's set-up is
tracking, inside the evaluation is evaluation); samples that name none are imports when inside an
import, else "other" (argument parsing, config, process exit). DVC's own process counts while it is
not waiting for the command: before it (start-up, reading dvc.yaml, the stage's status) or after
it (hashing the outputs, writing dvc.lock).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# (phase, function-name pattern, file pattern): the innermost matching frame decides. Names of this
# code and of earlier commits (the bench compares against them), so some are alternatives.
TRAINING_PROCESS_PHASES = [
    ("evaluation", r"^predict$|^evaluation_metrics$", r"evaluate\.py"),
    ("tracking set-up and logging", r".", r"rescom/(engine/run_)?tracking\.py"),
    ("writes (checkpoint, metrics, figures)",
     r"save_checkpoint|write_json|write_history|write_per_class|plot_run_figures|_write_results|"
     r"training_code_identity|code_identity", r"."),
    ("training (steps, augmentation)", r".", r"engine/step\.py|tensor_data\.py|batched_augment|augment"),
    ("model (build, optimizer)", r"build_components|build_model|build_optimizer", r"."),
    ("data (prepared set, test tensors)", r".", r"rescom/data/"),
]
DVC_AFTER = r"(^|\.)(save|commit|dump|_dump_lockfile|dump_stages)$"
WAITING = r"communicate|waitpid|_try_wait|Popen\.wait"


def parse_raw(path: Path) -> list[tuple[list[str], list[str], int]]:
    """py-spy raw lines -> (process commands from the root process in, frames of the main thread, count)."""
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        parts = stack.split(";")
        processes = [p for p in parts if re.match(r"process \d+:", p)]
        thread = next((p for p in parts if p.startswith("thread (")), "")
        pid = re.match(r"process (\d+):", processes[-1]).group(1) if processes else None
        if pid is None or not thread.startswith(f"thread ({pid})"):
            continue  # not the process's main thread (rich's refresher, MLflow's, Dask's...)
        frames = parts[parts.index(thread) + 1:]
        samples.append((processes, frames, int(count)))
    return samples


def phase_of(processes: list[str], frames: list[str]) -> str | None:
    """The phase of one sample, None for DVC waiting on the command (that time is the command's)."""
    if len(processes) == 1:  # DVC itself
        if any(re.search(WAITING, f) for f in frames):
            return None
        names = [f.split(" (")[0] for f in frames]
        return "DVC after the command" if any(re.search(DVC_AFTER, n) for n in names) else "DVC before the command"
    if not any("python" in p for p in processes[1:]) or not frames:
        return "interpreter start and exit (no Python frame)"
    importing = next((i for i, f in enumerate(frames) if f.startswith("_find_and_load ")), len(frames))
    for frame in reversed(frames[:importing]):  # a module's body that runs on import is the import's
        name, _, where = frame.partition(" (")
        for phase, name_pattern, file_pattern in TRAINING_PROCESS_PHASES:
            if re.search(name_pattern, name) and re.search(file_pattern, where):
                return phase
    if importing < len(frames):
        return "interpreter and imports"
    return "other (arguments, config, exit)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, default=REPO, help="the checkout whose code and stage run")
    parser.add_argument("--stage", default="main@ce-100-0")
    parser.add_argument("--rate", type=int, default=25, help="samples per second (py-spy pauses the process for each: 200 slowed training by a fifth)")
    args = parser.parse_args()
    tree = args.tree.resolve()
    venv_bin = REPO / ".venv" / "bin"
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "MLFLOW_DISABLE_TELEMETRY": "true",
           "PATH": f"{venv_bin}:{os.environ['PATH']}", "PYTHONPATH": str(tree)}
    with tempfile.TemporaryDirectory() as scratch:
        raw = Path(scratch) / "samples.txt"
        command = [str(venv_bin / "py-spy"), "record", "--subprocesses", "--idle", "--threads", "--format", "raw",
                   "--rate", str(args.rate), "--output", str(raw), "--",
                   str(venv_bin / "dvc"), "repro", "--force", "--single-item", args.stage]
        try:
            done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
        except FileNotFoundError:
            sys.exit("py-spy is not installed: pip install -e '.[dev]'")
        if done.returncode != 0 or not raw.exists():
            sys.exit(f"dvc repro of {args.stage} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
        seconds = Counter()
        for processes, frames, count in parse_raw(raw):
            phase = phase_of(processes, frames)
            if phase is not None:
                seconds[phase] += count / args.rate
    total = sum(seconds.values())
    print(f"stage {args.stage} in {tree} (py-spy, {args.rate} samples/s, main threads, idle included)")
    for phase, value in seconds.most_common():
        print(f"  {value:6.1f} s  {100 * value / total:5.1f}%  {phase}")
    print(f"  {total:6.1f} s  total")


if __name__ == "__main__":
    main()
