#!/usr/bin/env bash
# The one command for a machine with a GPU and a torch install, but no network, MLflow or DVC:
#   bash scripts/gpu-check.sh [DATA_ROOT]
# 1. the cuda tests (tests/test_cuda.py: every preset trains 2 epochs on the tensor pipeline with
#    CUDA graphs and the released AutoAugment, evaluate, analyses, resume, tensor augmentation vs
#    the PIL reference, captured vs eager step, packed runs); 2. `python -m benchmarks step`, `core`,
#    `epoch` (fp32 and bf16; released and torchvision AutoAugment) and `pack` (8 packed
#    runs against one; scripts/gpu-pack.sh measures 2-16); 3. a short real
#    training of rescom (10 epochs, evaluation every 5) on synthetic CIFAR-100-LT-shaped data, or
#    on CIFAR-100-LT from DATA_ROOT (the official archive or its extracted folder) when given.
# Runs from the source tree (PYTHONPATH), installs nothing, tracks nothing (--no-track). Logs go
# to $GPU_CHECK_DIR (default gpu-check/, git-ignored); the summary comes last. About 3-4 minutes
# on one H100/H200. DEVICE=cpu runs the same script on a CPU (the cuda tests then skip): a dry run.
set -uo pipefail
cd "$(dirname "$0")/.."
EPOCHS=${EPOCHS:-10}
dir=${GPU_CHECK_DIR:-gpu-check}
name=gpu-check
. scripts/gpu-common.sh

if [ "$DEVICE" = cpu ]; then
    echo "cuda-tests: not run (DEVICE=cpu dry run)" >>"$summary"
else
    step cuda-tests $PY -m pytest -q -p no:cacheprovider -m cuda -rs tests/test_cuda.py
fi
STEPS=${STEPS:-20}
step bench-step $PY -m benchmarks step --device "$DEVICE" --steps "$STEPS"
step bench-step-bf16 $PY -m benchmarks step --device "$DEVICE" --steps "$STEPS" --bf16
step bench-core $PY -m benchmarks core --device "$DEVICE" --repeat 5
step bench-epoch $PY -m benchmarks epoch --device "$DEVICE" --epochs 2 $SHAPE
# the same epoch trained with torchvision's AutoAugment: with bench-epoch (the released policy) the
# measured cost of the released policy, epoch against epoch (issue 20's target: <= 1.1x)
step bench-epoch-torchvision $PY -m benchmarks epoch --device "$DEVICE" --epochs 2 --autoaugment torchvision $SHAPE
step bench-epoch-eager $PY -m benchmarks epoch --device "$DEVICE" --epochs 1 --no-graphs $SHAPE
step bench-epoch-bf16 $PY -m benchmarks epoch --device "$DEVICE" --epochs 2 --bf16 $SHAPE
step bench-pack $PY -m benchmarks pack --device "$DEVICE" --runs "${PACK_RUNS:-8}" --epochs 2 $SHAPE

data_args=(--dataset cifar100-lt --imbalance 100)
if [ $# -ge 1 ]; then
    data_args+=(--data-root "$1")
else
    step synthetic-data $PY -m benchmarks synthetic-data "$dir/synthetic-cifar100-lt" $SHAPE
    data_args+=(--set "data.prepared_dir=$dir/synthetic-cifar100-lt")
fi
step train $PY -m rescom train --method rescom "${data_args[@]}" --epochs "$EPOCHS" --no-track \
    --set run.device="$DEVICE" --set run.eval_every=5 --set run.runs_dir="$dir/runs" --set run.run_name=rescom-check

# DDP on NCCL: one process (CUDA graphs stay on: a world of one has no collectives in the step).
step torchrun $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m rescom train --method rescom \
    "${data_args[@]}" --epochs 2 --no-track --set run.device="$DEVICE" --set run.runs_dir="$dir/runs" \
    --set run.run_name=rescom-torchrun

{
    echo "-- numbers"
    grep -h -E "^(rescom|plain) |rescom / plain" "$dir/bench-step.log" | sed 's/^/bench step fp32: /'
    grep -h -E "^(rescom|plain) |rescom / plain" "$dir/bench-step-bf16.log" | sed 's/^/bench step bf16: /'
    for f in bench-epoch bench-epoch-torchvision bench-epoch-eager bench-epoch-bf16; do
        grep -h -E "^(cuda graphs|epoch|  augmentation|  steps alone|autoaugment|released / torchvision|per epoch|  eager|  as run)" \
            "$dir/$f.log" | sed "s/^/$f: /"
    done
    grep -h -E "^ +[0-9]+ +[0-9.]+ |^target " "$dir/bench-pack.log" | sed 's/^/bench pack (runs, s\/epoch, epochs\/s, x one run, GiB\/run): /'
    grep -h -E "epoch $EPOCHS/$EPOCHS" "$dir/train.log" | tail -n 1 | sed 's/^/train: /'
    [ -f "$dir/runs/rescom-check/metrics.json" ] && $PY - "$dir/runs/rescom-check" <<'PY'
import json, sys
m = json.load(open(sys.argv[1] + "/metrics.json"))
log = json.load(open(sys.argv[1] + "/run_log.json"))  # wall-clock seconds and hardware live beside the DVC outputs
k = m["metrics"]
print(f"train: {m['dataset']} on {log['hardware']}: {k['epochs']} epochs, {log['mean_epoch_seconds']:.3f} s per epoch "
      f"(training, evaluation excluded), last-epoch top-1 {k['last_test_all']:.2f}")
PY
} >>"$summary" 2>&1
echo
echo "================ summary ================"
cat "$summary"
exit $status
