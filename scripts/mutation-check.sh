#!/usr/bin/env bash
# Mutation testing of the method core and the verdict rule (mutmut 3.x; config: [tool.mutmut] in
# pyproject.toml). Mutates rescom/losses, queue.py, mining.py, report/claims.py, report/paired.py
# and metrics.py one change at a time and runs the fast tests that cover each mutant; a mutant
# that no test kills is a survivor, and docs/mutation-survivors.md must explain every survivor.
#
#   scripts/mutation-check.sh                 all six targets
#   scripts/mutation-check.sh rescom.queue    one module or function (a mutmut name prefix); the
#                                             parts can be run one after another: each reuses mutants/
#                                             and the results of the parts before it
#   MUTATION_JOBS=4 scripts/mutation-check.sh parallel test processes (default 2)
#
# Exit status: 0 when every survivor is listed in docs/mutation-survivors.md, 1 otherwise (the
# unexplained ones are printed). Not run in CI: it takes minutes, not seconds (docs/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
[ -x .venv/bin/python ] && export PATH="$root/.venv/bin:$PATH"
# mutmut puts its mutated copy (mutants/) first on sys.path and removes the checkout; a PYTHONPATH
# pointing at the checkout would let the tests import the unmutated package instead.
unset PYTHONPATH
export OMP_NUM_THREADS=1 MLFLOW_DISABLE_TELEMETRY=true DVC_NO_ANALYTICS=1
# A full run starts from a fresh copy: a stale mutants/ could keep results of code that has since
# changed (mutmut re-copies mutated files it sees changed, not the others). A part keeps the copy so
# that parts add up; MUTATION_FRESH=1 starts a part afresh too.
if [ $# -eq 0 ] || [ "${MUTATION_FRESH:-0}" = 1 ]; then rm -rf mutants; fi
mkdir -p mutants
patterns=()
for module in "$@"; do patterns+=("${module}*"); done
start=$(date +%s)
nice mutmut run --max-children "${MUTATION_JOBS:-2}" "${patterns[@]}" > mutants/run-$$.log 2>&1 || {
    tail -n 40 mutants/run-$$.log; exit 2; }
seconds=$(( $(date +%s) - start ))
mutmut results --all true > mutants/results.txt 2>&1 || mutmut results > mutants/results.txt 2>&1
python - "$seconds" "${patterns[@]}" <<'PY'
"""Count the outcomes and compare the survivors with those docs/mutation-survivors.md explains."""
import fnmatch, re, sys
from pathlib import Path

seconds, patterns = sys.argv[1], sys.argv[2:] or ["*"]
outcome = {}
for line in Path("mutants/results.txt").read_text().splitlines():
    match = re.match(r"\s*(\S+__mutmut_\d+): (.+)$", line)
    if match and any(fnmatch.fnmatch(match[1], p) for p in patterns):
        outcome[match[1]] = match[2].strip()
counts = {}
for status in outcome.values():
    counts[status] = counts.get(status, 0) + 1
explained = set(re.findall(r"`(\S+__mutmut_\d+)`", Path("docs/mutation-survivors.md").read_text()))
survivors = sorted(name for name, status in outcome.items() if status != "killed")
unexplained = [name for name in survivors if name not in explained]
print(f"{len(outcome)} mutants in {seconds} s: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
print(f"{len(survivors)} not killed, {len(survivors) - len(unexplained)} explained in docs/mutation-survivors.md")
for name in unexplained:
    print(f"  unexplained: {name} ({outcome[name]})  -> mutmut show {name}")
sys.exit(1 if unexplained else 0)
PY
