#!/usr/bin/env bash
# Regenerate the smoke profile from scratch with DVC and compare it with the committed reports/smoke.
# Fails, printing a per-cell diff, when a number moved beyond report.tolerance of
# pipelines/smoke/params.yaml (the one place the tolerance is stated). Then checks DVC's contract:
# a second `dvc repro` runs nothing, and changing one ablation value invalidates only its stages.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true PATH="$PWD/.venv/bin:$PATH"
params=pipelines/smoke/params.yaml
committed=$(mktemp -d)
trap 'rm -rf "$committed"' EXIT
cp -r reports/smoke/. "$committed/"

rm -rf runs/smoke data/prepared/smoke reports/smoke
start=$(date +%s)
dvc repro pipelines/smoke/dvc.yaml
echo "smoke profile regenerated in $(( $(date +%s) - start )) s"
# Numbers are compared cell by cell against reports made on the same kind of machine (instruction
# set, torch, threads: tables/machine.json); CPU float kernels differ between kinds, and two epochs
# on toy data turn last-bit differences into different accuracies. On another kind only the
# structure (files, rows, columns) is compared; tests/test_train_cli.py checks reproducibility.
if cmp -s "$committed/tables/machine.json" reports/smoke/tables/machine.json; then
    rescom report diff "$committed" reports/smoke --params "$params"
    # Every DVC output repeats bit for bit here, and wall-clock numbers live outside them (run_log.json,
    # reports/smoke/timings/, both ignored): regenerating must leave the committed files untouched.
    dirty=$(git status --porcelain -- pipelines/smoke reports/smoke reports/README.md)
    if [ -n "$dirty" ]; then
        echo "regenerating the smoke profile changed committed files:"; echo "$dirty"
        git diff --stat -- pipelines/smoke reports; exit 1
    fi
    echo "git status: clean after regeneration"
else
    echo "reports/smoke was made on another kind of machine:"
    cat "$committed/tables/machine.json" 2>/dev/null || echo "(no tables/machine.json committed)"
    echo "this machine:"; cat reports/smoke/tables/machine.json
    echo "comparing structure only (the numbers differ across CPU instruction sets)"
    rescom report diff "$committed" reports/smoke --params "$params" --structure-only
fi

second=$(dvc repro pipelines/smoke/dvc.yaml 2>&1)
if ! grep -q "Data and pipelines are up to date" <<<"$second"; then
    echo "a second dvc repro was not a no-op:"; echo "$second"; exit 1
fi
echo "second dvc repro: no-op"

# Change one ablation value; only that run and the report may need rerunning.
cp "$params" "$committed/params.yaml.bak"
python - "$params" <<'PY'
import sys, yaml
path = sys.argv[1]
params = yaml.safe_load(open(path))
params["beta"]["axes"]["beta"][-1] = 0.99
open(path, "w").write(yaml.safe_dump(params, sort_keys=False))
PY
changed=$(dvc status pipelines/smoke/dvc.yaml --json | python -c "import json,sys; print(' '.join(sorted(k.split(':')[-1] for k in json.load(sys.stdin))))")
cp "$committed/params.yaml.bak" "$params"
echo "after changing beta.axes.beta[-1]: stages to rerun: $changed"
if [ "$changed" != "beta@0.99-0 report" ]; then
    echo "expected only beta@0.99-0 and report to need rerunning"; exit 1
fi
