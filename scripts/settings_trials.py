"""Settings trials for the default profile (issue: "the main job converges").

Trains every (setting, method, seed) of a plan in scripts/settings-trials.yaml with `rescom train
--no-track`, evaluating every epoch (unless the setting says otherwise), and writes one CSV row per run: last-epoch and best-epoch All,
Few, the gap between them, and seconds per epoch. The settings are judged by criteria fixed before
looking at ResCom (docs/results.md, "Default profile settings"): for every method last All within 1.5 points
of its best epoch, CE >= 78 and BS >= 82 All on the full 10,000-image test set.

    python scripts/settings_trials.py --plan ce-bs --workers 1 --out trials/ [--data-root DIR] [--device cpu]

Runs from the source tree (PYTHONPATH), needs torch only, so it also runs on a GPU machine without
MLflow or DVC; --workers N trains N runs at once (for a GPU: never on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PLAN_FILE = Path(__file__).with_name("settings-trials.yaml")
COLUMNS = ["plan", "setting", "method", "seed", "last_all", "best_all", "best_epoch", "last_minus_best",
           "last_few", "epoch_seconds", "wall_seconds", "device", "overrides"]


def runs_of(plan: dict, plan_name: str) -> list[dict]:
    """Every (setting, method, seed) of one plan, with its full --set list."""
    base = plan["base"]
    spec = plan["plans"][plan_name]
    runs = []
    for setting, method, seed in itertools.product(spec["settings"], spec["methods"], spec["seeds"]):
        overrides = {**base, **plan["settings"][setting], **plan["methods"].get(method, {}).get("set", {})}
        runs.append({"plan": plan_name, "setting": setting, "method": method, "seed": seed,
                     "preset": plan["methods"].get(method, {}).get("preset", method), "overrides": overrides})
    return runs


def train_one(run: dict, out: Path, data_root: str | None, device: str, threads: int) -> dict:
    name = f"{run['setting']}-{run['method']}-s{run['seed']}"
    sets = [f"{k}={'null' if v is None else v}" for k, v in run["overrides"].items()]
    if "run.eval_every" not in run["overrides"]:
        sets.append("run.eval_every=1")  # every epoch: the best-vs-last criterion sees the whole curve
    sets += [f"run.seed={run['seed']}", f"run.device={device}",
             f"run.runs_dir={out / 'runs'}", f"run.run_name={name}", "run.profile=trials"]
    cmd = [sys.executable, "-m", "rescom", "train", "--no-track", "--overwrite", "--method", run["preset"],
           "--dataset", "fashion-mnist-lt", "--imbalance", "100"]
    if data_root:
        cmd += ["--data-root", data_root]
    for s in sets:
        cmd += ["--set", s]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads), "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    log = out / "logs" / f"{name}.log"
    with log.open("w") as handle:
        code = subprocess.call(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    wall = time.perf_counter() - started
    row = {k: run[k] for k in ("plan", "setting", "method", "seed")}
    row.update(wall_seconds=round(wall, 1), device=device,
               overrides=" ".join(f"{k}={v}" for k, v in run["overrides"].items()))
    if code != 0:
        print(f"FAILED {name} (exit {code}), see {log}", flush=True)
        return {**row, "last_all": None}
    m = json.loads((out / "runs" / name / "metrics.json").read_text())["metrics"]
    m["mean_epoch_seconds"] = json.loads((out / "runs" / name / "run_log.json").read_text())["mean_epoch_seconds"]
    row.update(last_all=round(m["last_test_all"], 2), best_all=round(m["best_test_all"], 2),
               best_epoch=m["best_epoch"], last_minus_best=round(m["last_test_all"] - m["best_test_all"], 2),
               last_few=round(m["last_test_few"], 2), epoch_seconds=round(m["mean_epoch_seconds"], 3))
    print(f"{name}: last {row['last_all']} best {row['best_all']} (epoch {row['best_epoch']}), "
          f"{row['epoch_seconds']} s/epoch, {wall:.0f} s", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plan", action="append", required=True, help="plan name(s) in settings-trials.yaml")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads per run")
    args = parser.parse_args()
    plan = yaml.safe_load(PLAN_FILE.read_text())
    runs = [r for name in args.plan for r in runs_of(plan, name)]
    (args.out / "logs").mkdir(parents=True, exist_ok=True)
    # Prepare the set once, before parallel runs race to create it.
    prepare = [sys.executable, "-m", "rescom", "prepare", "--dataset", "fashion-mnist-lt", "--imbalance", "100",
               "--max-count", str(plan["base"]["data.max_count"])]
    subprocess.check_call(prepare + (["--data-root", args.data_root] if args.data_root else []),
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    print(f"{len(runs)} runs, {args.workers} at once", flush=True)
    path = args.out / "trials.csv"
    lock = threading.Lock()
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, COLUMNS)
        writer.writeheader()

        def run_and_write(run: dict) -> None:  # a row as soon as its run ends: a cut-off plan keeps its results
            row = train_one(run, args.out, args.data_root, args.device, args.threads)
            with lock:
                writer.writerow(row)
                handle.flush()

        with ThreadPoolExecutor(args.workers) as pool:
            list(pool.map(run_and_write, runs))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
