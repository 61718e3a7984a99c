"""Toy DVC projects for the executor's tests: stages are one-line Python commands, so a whole
pipeline runs in a second and what the executor decides (order, skips, failures, dvc.lock) shows."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

PY = Path(sys.executable).as_posix()


def write_stage_script(root: Path) -> None:
    """step.py OUT [IN ...] [--sleep S] [--fail] [--resumable N]: OUT = concatenation of IN plus its
    name. --resumable N writes N progress lines to OUT.progress, one per 0.3 s, continuing from the
    lines already there (the toy's 'last checkpoint'), and records the worker pid that ran it."""
    (root / "step.py").write_text('''
import argparse, os, signal, sys, time
from pathlib import Path
def terminated(signum, frame):
    print("terminated by SIGTERM", flush=True); sys.exit(143)
signal.signal(signal.SIGTERM, terminated)
p = argparse.ArgumentParser()
p.add_argument("out"); p.add_argument("inputs", nargs="*")
p.add_argument("--sleep", type=float, default=0.0); p.add_argument("--fail", action="store_true")
p.add_argument("--resumable", type=int, default=0)
a = p.parse_args()
time.sleep(a.sleep)
if a.fail:
    print("failing on purpose", flush=True); sys.exit(3)
if a.resumable:
    progress = Path(a.out + ".progress")
    done = len(progress.read_text().splitlines()) if progress.exists() else 0
    print(f"resuming at step {done}", flush=True)
    Path(a.out + ".pids").open("a").write(os.environ["RESCOM_WORKER_PID"] + "\\n")
    for step in range(done, a.resumable):
        time.sleep(0.3)
        progress.open("a").write(f"step {step}\\n")
text = "".join(Path(i).read_text() for i in a.inputs) + Path(a.out).stem
Path(a.out).write_text(text)
''')


def make_repo(root: Path, stages: dict[str, dict]) -> Path:
    """stages: name -> {"out": file, "deps": [files], "args": extra step.py args, "meta": the stage's record}."""
    from dvc.repo import Repo

    root.mkdir(parents=True, exist_ok=True)
    Repo.init(str(root), no_scm=True).close()
    write_stage_script(root)
    dvc = {"stages": {}}
    for name, spec in stages.items():
        deps = spec.get("deps", [])
        cmd = " ".join([PY, "step.py", spec["out"], *deps, *spec.get("args", [])])
        entry = {"cmd": cmd, "deps": ["step.py", *deps], "outs": [spec["out"]]}
        if spec.get("persist"):
            entry["outs"] = [{spec["out"]: {"persist": True}}]
        if "meta" in spec:
            entry["meta"] = spec["meta"]
        dvc["stages"][name] = entry
    (root / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    return root


DIAMOND = {  # a -> b -> d <- c, with c independent of a and b
    "a": {"out": "a.txt", "args": ["--sleep", "0.5"]},
    "b": {"out": "b.txt", "deps": ["a.txt"]},
    "c": {"out": "c.txt", "args": ["--sleep", "0.5"]},
    "d": {"out": "d.txt", "deps": ["b.txt", "c.txt"]},
}
