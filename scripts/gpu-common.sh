# Sourced by the GPU-machine scripts (gpu-check.sh, gpu-pack.sh): environment, the log folder and
# its summary, `step` and the machine header. The caller sets `dir` (its log folder) and `name`.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}
SHAPE=${SHAPE:-}  # e.g. "--classes 10 --max-count 60 --imbalance 10" shrinks the synthetic sets for a CPU dry run
rm -rf "$dir" && mkdir -p "$dir"
summary="$dir/summary.txt"
status=0

step() {  # step NAME COMMAND...: run, log to $dir/NAME.log, record pass/FAIL and seconds
    local name=$1; shift
    local start=$SECONDS
    echo "== $name: $*"
    if "$@" >"$dir/$name.log" 2>&1; then
        echo "$name: pass ($((SECONDS - start)) s)" >>"$summary"
    else
        echo "$name: FAIL ($((SECONDS - start)) s), see $dir/$name.log" >>"$summary"; status=1
    fi
    tail -n 25 "$dir/$name.log"
}

{
    echo "# $name $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    $PY -c 'import sys, torch; name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none (CPU)"
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, cuda {torch.version.cuda}, device: {name}")'
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
} >"$summary"
cat "$summary"
