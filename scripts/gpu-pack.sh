#!/usr/bin/env bash
# Issue 21's target on one GPU: K `rescom` runs packed in one process against one run.
#   bash scripts/gpu-pack.sh
# Needs a torch install (torchvision, pandas, matplotlib, typer, pillow) but no network, MLflow, DVC or Dask
# (runs use run.track=false). In this order: 1. the cuda tests of packing (tests/test_cuda.py -k pack:
# graphs replayed on their own streams equal eager steps, a pack trains, a pack too large is refused);
# 2. `python -m benchmarks pack --runs $RUNS` on synthetic CIFAR-100-LT IF 100 shapes: seconds per epoch of the
# pack, aggregate epochs/s, the ratio to one run, memory per run (target: 8 runs >= 4x, 16 runs >= 8x);
# 3. a real packed training, `rescom train --seeds 0,...,7` for $EPOCHS_TRAIN epochs on the synthetic set,
# every run's metrics.json checked. About 3-5 minutes on one H100/H200. Logs go to $GPU_PACK_DIR
# (default gpu-pack/); the summary with the table comes last.
# CPU dry run: DEVICE=cpu RUNS=2 EPOCHS=1 EPOCHS_TRAIN=1 PACK_TRAIN=2 SHAPE="--classes 4 --max-count 64 --imbalance 2 --test-per-class 4"
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-2,4,8,16}
EPOCHS=${EPOCHS:-2}
EPOCHS_TRAIN=${EPOCHS_TRAIN:-5}
PACK_TRAIN=${PACK_TRAIN:-8}
dir=${GPU_PACK_DIR:-gpu-pack}
name=gpu-pack
. scripts/gpu-common.sh

if [ "$DEVICE" = cpu ]; then
    echo "cuda-pack-tests: not run (DEVICE=cpu dry run)" >>"$summary"
else
    step cuda-pack-tests $PY -m pytest -q -p no:cacheprovider -m cuda -rs tests/test_cuda.py -k pack
fi
step bench-pack $PY -m benchmarks pack --device "$DEVICE" --runs "$RUNS" --epochs "$EPOCHS" $SHAPE
step synthetic-data $PY -m benchmarks synthetic-data "$dir/synthetic-cifar100-lt" $SHAPE
seeds=$(seq -s, 0 $((PACK_TRAIN - 1)))
step train-pack $PY -m rescom train --method rescom --dataset cifar100-lt --imbalance 100 --epochs "$EPOCHS_TRAIN" \
    --seeds "$seeds" --no-track --set "data.prepared_dir=$dir/synthetic-cifar100-lt" --set run.device="$DEVICE" \
    --set data.pipeline=tensor --set data.autoaugment=torchvision --set run.eval_every=5 --set run.runs_dir="$dir/runs"

{
    echo "-- bench pack (aggregate epochs per second of K packed runs against one run)"
    sed -n '/^device /,$p' "$dir/bench-pack.log"
    echo "-- train --seeds $seeds"
    $PY - "$dir/runs" "$PACK_TRAIN" <<'PY'
import json, sys
from pathlib import Path
runs = sorted(Path(sys.argv[1]).glob("*/metrics.json"))
print(f"{len(runs)} of {sys.argv[2]} runs finished")
for path in runs:
    m = json.loads(path.read_text())["metrics"]
    log = json.loads((path.parent / "run_log.json").read_text())
    print(f"{path.parent.name}: {m['epochs']} epochs, {log['mean_epoch_seconds']:.3f} s per (pack) epoch, "
          f"last-epoch top-1 {m['last_test_all']:.2f}, on {log['hardware']}")
sys.exit(0 if len(runs) == int(sys.argv[2]) else 1)
PY
    [ $? -eq 0 ] || status=1
} >>"$summary" 2>&1
echo
echo "================ summary ================"
cat "$summary"
exit $status
