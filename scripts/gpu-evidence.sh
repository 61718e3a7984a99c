#!/usr/bin/env bash
# Paper-scale evidence (issue 22) in one GPU window, for a machine with a GPU and torch, torchvision,
# pandas, matplotlib, typer and pillow, but no network, DVC, MLflow or dask:
#   bash scripts/gpu-evidence.sh [TARBALL]      (TARBALL: the CIFAR-10 JPEG stand-in, cifar10-jpeg.tar.gz)
# In this order: (a) scripts/gpu-check.sh; (b) unpack TARBALL into data/raw/ (unless the profile's data
# root is already there), prepare the set and train the profile's runs with the profile's own stage
# commands (`rescom pipeline prepare` / `train`, as its dvc.yaml runs them), packed when
# `rescom pipeline train-pack` exists, else one after another; finished runs (metrics.json) are
# skipped, an interrupted one continues from its checkpoint (same code only: a checkpoint is continued
# by the code that wrote it, so keep the commit between windows); (c) `rescom report`, and this
# window's wall clock appended to reports/<profile>/timings/windows.md; (d) copy what must
# come back into $OUT as at most 8 files (the device tool returns 8 at most, 16 MiB each).
# Training stops by SIGTERM (the checkpoint of the last finished epoch stays) when BUDGET - RESERVE
# seconds of this script have passed, so the reports and the copy always happen; the next window
# resumes. Tracking is off in the profile (run.track false): MLflow is not needed.
#
# Device call (the device tool's `run`; 15 min of device time per session, machine start included,
# at most 600 s per command). Copy the tarball into the ignored data/raw/ first, carry it, and carry
# the runs of earlier windows (unpack a previous runs.tar.gz here first) so they continue:
#   mkdir -p data/raw && cp /work/shared/data/cifar10-jpeg.tar.gz data/raw/
#   run(command="BUDGET=540 bash scripts/gpu-evidence.sh data/raw/cifar10-jpeg.tar.gz",
#       carry=["data/raw/cifar10-jpeg.tar.gz", "runs/cifar10-jpeg"], timeout_s=600)
# Later windows (gpu-check already passed on this commit): prefix GPU_CHECK=0 (about 3.5 min more training).
# Back here: tar -xzf <files_at>/reports.tar.gz; tar -xzf <files_at>/runs.tar.gz; and, for runs to
# continue, cat <files_at>/checkpoints.tar.gz.part-* | tar -xz (unfinished runs' checkpoints only).
#
# Settings (environment): BUDGET seconds for the whole script (default 540); RESERVE seconds kept for
# reports and copy (default 75); GPU_CHECK=0 skips (a), GPU_CHECK_LIMIT caps it (default 300 s);
# PACK=0 trains one run after another; PACK_SIZE runs per pack (default 4: BS and ResCom x 2 seeds,
# then SupCon+BS and MoCo+BS); MIN_TRAIN (no run starts with less time left, default 45 s); PARAMS
# (default pipelines/cifar10-jpeg/params.yaml); DEVICE (cuda; cpu for a dry run: gpu-check's cuda
# tests skip and no GPU is required; the params file decides the training device); PYTHON;
# EVIDENCE_DIR (logs, default gpu-evidence/, git-ignored); OUT (default $EVIDENCE_DIR/out, emptied).
# CPU dry run with a tiny copy of the profile and mlflow/dvc/dask made unimportable: tests/test_gpu_evidence.py.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
PARAMS=${PARAMS:-pipelines/cifar10-jpeg/params.yaml}
BUDGET=${BUDGET:-540}
RESERVE=${RESERVE:-75}
GPU_CHECK=${GPU_CHECK:-1}
GPU_CHECK_LIMIT=${GPU_CHECK_LIMIT:-300}  # seconds; gpu-check takes about 3-4 minutes on one H100/H200
PACK=${PACK:-1}
PACK_SIZE=${PACK_SIZE:-4}
MIN_TRAIN=${MIN_TRAIN:-45}  # no run is started with less training time left than this (compilation alone takes about that)
dir=${EVIDENCE_DIR:-gpu-evidence}
if [ -z "${OUT:-}" ]; then OUT=$dir/out; rm -rf "$OUT"; fi  # the device tool's $OUT comes empty
mkdir -p "$dir" "$OUT"
log="$dir/evidence.log"
stop_at=$((SECONDS + BUDGET - RESERVE))
status=0
rescom() { "$PY" -m rescom "$@"; }
say() { echo "[$(date -u +%H:%M:%S) +${SECONDS}s] $*" | tee -a "$log"; }
left() { echo $((stop_at - SECONDS)); }
window="$dir/window.md"  # this window's wall clock, appended to reports/<profile>/timings/windows.md
: >"$window"
note() { echo "- $*" >>"$window"; }

say "gpu-evidence: commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), params $PARAMS, budget ${BUDGET}s (reserve ${RESERVE}s), device $DEVICE"
if [ "$DEVICE" != cpu ] && ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    say "no CUDA device: stopping (DEVICE=cpu runs a dry run)"; exit 2
fi
# What the profile trains, in its params order: "table<TAB>item args<TAB>run dir", and its data root.
plan="$dir/plan.tsv"
if ! "$PY" - "$PARAMS" >"$plan" 2>>"$log" <<'PY'
import sys
from rescom.pipeline.catalogue import expand_table, format_value, load_profile, training_tables
profile = load_profile(sys.argv[1])
for key, spec in profile.params["datasets"].items():
    print("data", key, spec.get("root") or "", sep="\t")
print("profile", profile.name, "", sep="\t")
for table in training_tables(profile):
    for spec in expand_table(profile, table):
        items = ",".join(f"{k}={format_value(v)}" for k, v in spec.item.items())
        print("run", f"{table}:{items}", spec.run_dir(profile.name).as_posix(), sep="\t")
PY
then
    say "cannot read $PARAMS (see $log)"; exit 2
fi
profile=$(awk -F'\t' '$1 == "profile" {print $2}' "$plan")
gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
echo "## window $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), ${gpu:-no GPU ($DEVICE)}" >>"$window"

# (a) the GPU check of the current commit
if [ "$GPU_CHECK" = 1 ]; then
    say "(a) scripts/gpu-check.sh"
    if DEVICE=$DEVICE PYTHON=$PY timeout --signal=TERM --kill-after=10 "$GPU_CHECK_LIMIT" \
            bash scripts/gpu-check.sh >"$dir/gpu-check.log" 2>&1; then
        say "gpu-check: pass"; note "gpu-check: pass (${SECONDS} s)"
    else
        rc=$?
        [ $rc -eq 124 ] && say "gpu-check: stopped at GPU_CHECK_LIMIT=${GPU_CHECK_LIMIT}s (its summary so far below)" \
            || say "gpu-check: FAIL, exit $rc (see gpu-check/summary.txt)"
        status=1; note "gpu-check: not passed, exit $rc (${SECONDS} s)"
    fi
else
    say "(a) gpu-check skipped (GPU_CHECK=0)"
fi

# (b) data: unpack the tarball where the profile's datasets expect their root, then prepare
while IFS=$'\t' read -r kind key root; do
    [ "$kind" = data ] || continue
    if [ -n "$root" ] && [ ! -d "$root/train" ]; then
        if [ $# -lt 1 ]; then say "no $root and no TARBALL given"; exit 2; fi
        mkdir -p "$(dirname "$root")"
        say "unpacking $1 into $(dirname "$root")/"
        tar -xzf "$1" -C "$(dirname "$root")" || { say "cannot unpack $1"; exit 2; }
        [ -d "$root/train" ] || { say "$1 did not unpack to $root/train"; exit 2; }
    fi
    say "(b) rescom pipeline prepare --params $PARAMS --key $key"
    rescom pipeline prepare --params "$PARAMS" --key "$key" >>"$log" 2>&1 || { say "prepare $key failed (see $log)"; exit 2; }
done <"$plan"

# (b) training: the runs without metrics.json, in params order, in packs or one by one
todo=()
while IFS=$'\t' read -r kind run run_dir; do
    [ "$kind" = run ] || continue
    if [ -f "$run_dir/metrics.json" ]; then say "done already: $run"; else todo+=("$run"); fi
done <"$plan"
packed=0
if [ "$PACK" = 1 ] && help=$(rescom pipeline train-pack --help 2>&1); then packed=1; fi
say "to train: ${#todo[@]} run(s); $([ $packed = 1 ] && echo "packed, $PACK_SIZE per pack" || echo 'one after another')"

stage_json() {  # main:method=bs,seed=0 -> that run as train-pack's --stage takes it
    "$PY" -c 'import json, sys; table, _, items = sys.argv[1].partition(":")
print(json.dumps({"name": sys.argv[1], "table": table, "item": dict(p.split("=", 1) for p in items.split(","))}))' "$1"
}
train_group() {  # train_group RUN...: one pack (or one run), stopped by SIGTERM at the budget
    local limit; limit=$(left)
    if [ "$limit" -lt "$MIN_TRAIN" ]; then say "budget: not starting $* (${limit}s left)"; return 3; fi
    local cmd=()
    if [ $packed = 1 ]; then
        cmd=("$PY" -m rescom pipeline train-pack --params "$PARAMS" --results "$dir/pack-results-$SECONDS.json")
        for r in "$@"; do
            if grep -q -- "--stage" <<<"$help"; then cmd+=(--stage "$(stage_json "$r")"); else cmd+=(--run "$r"); fi
        done
    else
        local table=${1%%:*} items=${1#*:}
        cmd=("$PY" -m rescom pipeline train --params "$PARAMS" --table "$table")
        IFS=, read -ra pairs <<<"$items"
        for p in "${pairs[@]}"; do cmd+=(--item "$p"); done
    fi
    say "train (${limit}s left): $*"
    local started=$SECONDS rc
    timeout --signal=TERM --kill-after=30 "$limit" "${cmd[@]}" >>"$dir/train.log" 2>&1
    rc=$?
    if [ $rc -eq 124 ]; then
        say "stopped at the budget after $((SECONDS - started))s (SIGTERM; checkpoints kept, the next window resumes): $*"
        note "stopped at the budget after $((SECONDS - started)) s wall clock: $*"
        return 3
    fi
    say "exit $rc after $((SECONDS - started))s: $*"
    note "$([ $rc -eq 0 ] && echo trained || echo "FAILED (exit $rc)") in $((SECONDS - started)) s wall clock (start-up, compilation, evaluations included): $*"
    [ $rc -eq 0 ] || status=1
    return 0
}
if [ $packed = 1 ]; then
    for ((i = 0; i < ${#todo[@]}; i += PACK_SIZE)); do
        train_group "${todo[@]:i:PACK_SIZE}" || break
    done
else
    for run in "${todo[@]}"; do train_group "$run" || break; done
fi
tail -n 5 "$dir/train.log" 2>/dev/null

# (c) reports from every finished run (unfinished ones are listed as not yet trained)
say "(c) rescom report --params $PARAMS"
rescom report --params "$PARAMS" >>"$log" 2>&1 || { say "report failed (see $log)"; status=1; }
note "$([ $packed = 1 ] && echo "packed, $PACK_SIZE per pack" || echo 'one run after another'); script ${SECONDS} s up to the report; budget ${BUDGET} s"
mkdir -p "reports/$profile/timings" && { echo; cat "$window"; } >>"reports/$profile/timings/windows.md"

# (d) what must come back: reports, each run's small files, checkpoints if small enough, the logs
say "(d) copying to $OUT"
tar -czf "$OUT/reports.tar.gz" "reports/$profile" reports/README.md 2>>"$log" || status=1
small=$(find "runs/$profile" -type f \( -name metrics.json -o -name history.csv -o -name config.yaml \
        -o -name run_log.json -o -name per_class.csv -o -name '*.png' \) 2>/dev/null | sort)
[ -n "$small" ] && tar -czf "$OUT/runs.tar.gz" $small
# Checkpoints only of unfinished runs (a finished run's metrics.json is all the report and the skip
# need; about 5-8 MiB each at ResNet-32), in 15 MiB parts: cat checkpoints.tar.gz.part-* | tar -xz
checkpoints=$(for c in $(find "runs/$profile" -name checkpoint.pt 2>/dev/null | sort); do
    [ -f "$(dirname "$c")/metrics.json" ] || echo "$c"; done)
if [ -n "$checkpoints" ]; then
    tar -cz $checkpoints | split -b 15M -a 1 - "$OUT/checkpoints.tar.gz.part-"
    parts=$(ls "$OUT"/checkpoints.tar.gz.part-* | wc -l)
    if [ "$parts" -gt 3 ]; then  # the device tool returns 8 files: 5 others and 3 parts
        rm -f "$OUT"/checkpoints.tar.gz.part-*; say "unfinished checkpoints over 45 MiB: not copied (they retrain)"
    else
        say "unfinished runs' checkpoints: $parts part(s) of checkpoints.tar.gz"
    fi
fi
say "done: status $status, ${SECONDS}s in all"
{ [ -f gpu-check/summary.txt ] && cat gpu-check/summary.txt; echo "-- evidence"; cat "$log"; } >"$OUT/summary.txt"
tar -czf "$OUT/logs.tar.gz" "$dir"/*.log "$dir"/*.tsv $(ls "$dir"/pack-results-*.json 2>/dev/null) \
    $(ls gpu-check/*.log gpu-check/summary.txt 2>/dev/null) 2>/dev/null
cat "$OUT/summary.txt"
exit $status
