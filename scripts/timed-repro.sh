#!/usr/bin/env bash
# `dvc repro` with a wall-clock timestamp on every line, and the seconds each stage took at the end.
# Usage: bash scripts/timed-repro.sh [dvc.yaml path [dvc repro options]] > log, e.g. --no-run-cache for from scratch   (how the profiles' wall times in README and docs/results.md were measured)
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true PATH="$PWD/.venv/bin:$PATH"
start=$(date +%s)
dvc repro "${1:-dvc.yaml}" "${@:2}" 2>&1 | python -u -c '
import re, sys, time
start = last = time.time(); stage = None; times = {}
for line in sys.stdin:
    now = time.time()
    match = re.match(r"Running stage .(.+).:", line)
    if match:
        if stage: times[stage] = now - last
        stage, last = match.group(1), now
    print(f"[{now - start:7.1f}s] {line}", end="")
if stage: times[stage] = time.time() - last
print("\nseconds per stage:")
for name, seconds in times.items(): print(f"  {seconds:7.1f}  {name}")
'
echo "total: $(( $(date +%s) - start )) s"
