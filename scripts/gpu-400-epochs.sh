#!/usr/bin/env bash
# The paper-scale timing target (issue 9): 400 epochs of `rescom` (released recipe: batch 128, two
# views, AutoAugment + Cutout on the GPU) on CIFAR-100-LT IF=100 with evaluation every 10 epochs,
# timed end to end (start-up, compilation, evaluations and checkpoints included).
#   bash scripts/gpu-400-epochs.sh [DATA_ROOT]     (synthetic CIFAR-100-LT-shaped data without it)
# Extra train options via TRAIN_ARGS (default: CUDA graphs + torch.compile of the model, fp32).
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
PY=${PYTHON:-python3}
dir=${GPU_CHECK_DIR:-gpu-check}
mkdir -p "$dir"
data_args=(--dataset cifar100-lt --imbalance 100)
if [ $# -ge 1 ]; then
    data_args+=(--data-root "$1")
else
    $PY -m benchmarks synthetic-data "$dir/synthetic-cifar100-lt"
    data_args+=(--set "data.prepared_dir=$dir/synthetic-cifar100-lt")
fi
start=$SECONDS
$PY -m rescom train --method rescom "${data_args[@]}" --epochs 400 --no-track --overwrite \
    --set run.device=cuda --set run.eval_every=10 --set run.runs_dir="$dir/runs" --set run.run_name=rescom-400 \
    ${TRAIN_ARGS:---set run.compile=true}
rc=$?
echo "400-epoch run: exit $rc, $((SECONDS - start)) s wall clock (start-up, compilation, 40 evaluations, checkpoints included)"
exit $rc
