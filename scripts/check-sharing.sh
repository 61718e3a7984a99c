#!/usr/bin/env bash
# The lab's flow on the smoke profile with real DVC remotes (docs/sharing.md). CI runs it right after
# `scripts/check-smoke-reports.sh dvc`: the workspace it regenerated is member A, and nothing is
# trained here. Once with a local-directory remote, once over SSH (Debian's sshd on 127.0.0.1,
# started and stopped here, key authentication, DVC's SSH plugin):
#   A pushes the profile's outputs;
#   B, a fresh clone with the remote configured, pulls, `dvc repro` runs no stage, `rescom report`
#     renders A's report byte for byte, and the pulled runs register in MLflow once;
#   C, another fresh clone, fetches one run alone (with its prepared set, no other run), and
#     `rescom evaluate` of its checkpoint gives A's metrics.
# B and C use their own checkout of the code (PYTHONPATH) and their own MLflow store (mlflow.db there).
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true PATH="$PWD/.venv/bin:$PATH"
unset MLFLOW_TRACKING_URI
a=$PWD
profile=smoke
dvcfile=pipelines/$profile/dvc.yaml
one=main/rescom-if10-s0                              # the run C fetches alone ...
one_stage=$dvcfile:main@rescom-10-0                  # ... and its stage
work=$(mktemp -d)
sshd_pid=
cleanup() {
    if [ -n "$sshd_pid" ]; then kill "$sshd_pid" 2>/dev/null || true; wait "$sshd_pid" 2>/dev/null || true; fi
    (cd "$a" && dvc remote remove --local lab >/dev/null 2>&1) || true
    rm -rf "$work"
}
trap cleanup EXIT
started=$(date +%s)
since() { echo "$(( $(date +%s) - $1 )) s"; }

status=$(dvc status "$dvcfile" 2>&1)
if ! grep -q "up to date" <<<"$status"; then
    echo "member A's workspace is not the regenerated $profile profile (run scripts/check-smoke-reports.sh dvc first):"
    echo "$status"; exit 1
fi
runs=$(find "runs/$profile" -name metrics.json | wc -l)

# A fresh clone as A leaves it after committing: HEAD, with A's dvc.lock and git-tracked report
# (the same files as HEAD's when A's machine is of the kind that made them).
clone() {
    git clone -q "$a" "$1"
    cp "$a/pipelines/$profile/dvc.lock" "$1/pipelines/$profile/dvc.lock"
    git -C "$a" ls-files -z "reports/$profile" | (cd "$a" && xargs -0 cp --parents -t "$1")
}

remote_config() {  # in .dvc/config.local: each member reaches the lab's remote their own way
    (cd "$1" && dvc remote add --local -f -d lab "$2" >/dev/null)
    if [ -n "${3:-}" ]; then (cd "$1" && dvc remote modify --local lab keyfile "$3"); fi
}

start_sshd() {
    local dir=$work/sshd
    if [ ! -x /usr/sbin/sshd ] || ! python -c "import dvc_ssh" 2>/dev/null; then
        echo "the SSH pass needs Debian's openssh-server and DVC's SSH plugin (pip install -e '.[share]')"; exit 1
    fi
    mkdir -p "$dir" && mkdir -p -m 0755 /run/sshd   # privilege separation (Debian's service makes it)
    ssh-keygen -q -t ed25519 -N "" -f "$dir/host" && ssh-keygen -q -t ed25519 -N "" -f "$dir/client"
    cp "$dir/client.pub" "$dir/authorized_keys" && chmod 600 "$dir/authorized_keys"
    sshd_port=$(python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])")
    /usr/sbin/sshd -D -e -f /dev/null -h "$dir/host" -p "$sshd_port" -o ListenAddress=127.0.0.1 \
        -o "Subsystem=sftp internal-sftp" -o AuthorizedKeysFile="$dir/authorized_keys" -o StrictModes=no \
        -o PasswordAuthentication=no 2>"$dir/sshd.log" &
    sshd_pid=$!
    for _ in $(seq 100); do grep -q "Server listening" "$dir/sshd.log" && return; sleep 0.1; done
    echo "sshd did not start:"; cat "$dir/sshd.log"; exit 1
}

stop_sshd() {
    kill "$sshd_pid" && wait "$sshd_pid" 2>/dev/null || true
    sshd_pid=
}

# share KIND URL KEYFILE: the whole flow through one remote. The local pass uses `rescom share pull`,
# the SSH pass plain `dvc pull` and `rescom share register`, so both ways are checked.
share() {
    local kind=$1 url=$2 keyfile=${3:-} t
    local b=$work/$kind-b c=$work/$kind-c
    echo "== $kind remote: $url"
    t=$(date +%s)
    remote_config "$a" "$url" "$keyfile"
    dvc push "$dvcfile"
    echo "A: dvc push in $(since "$t")"

    t=$(date +%s)
    clone "$b" && remote_config "$b" "$url" "$keyfile"
    if [ "$kind" = local ]; then
        out=$(cd "$b" && PYTHONPATH="$b" rescom share pull --profile "$profile")
    else
        (cd "$b" && dvc pull "$dvcfile")
        out=$(cd "$b" && PYTHONPATH="$b" rescom share register --profile "$profile")
    fi
    echo "$out"
    grep -q "MLflow .*: $runs run(s) registered, 0 already there" <<<"$out" || { echo "expected $runs runs registered"; exit 1; }
    echo "B: pulled and registered in $(since "$t")"
    repro=$(cd "$b" && PYTHONPATH="$b" dvc repro "$dvcfile" 2>&1)
    # Only the wall-clock inference-cost stage may run: its timings are neither cached nor committed
    # for the smoke profile (toy numbers), so B measures its own; every other stage came from the pull.
    ran=$(grep -o "Running stage '[^']*'" <<<"$repro" | grep -v "analysis_inference_cost" || true)
    if [ -n "$ran" ]; then
        echo "B's dvc repro ran stages after the pull:"; echo "$repro"; exit 1
    fi
    echo "B: dvc repro trained nothing (no stage but the wall-clock inference cost ran)"
    (cd "$b/reports/$profile" && rm -rf tables README.md curves summary.json)
    (cd "$b" && PYTHONPATH="$b" rescom report --profile "$profile")
    # timings/: wall-clock numbers from run logs, which are no DVC output (B has none)
    diff -r --exclude=timings "$a/reports/$profile" "$b/reports/$profile"
    cmp "$a/reports/README.md" "$b/reports/README.md"
    grep -q "up to date" <<<"$(cd "$b" && dvc status "$dvcfile" 2>&1)" || { echo "B's report is not what dvc.lock records"; exit 1; }
    echo "B: rescom report: byte for byte A's reports/$profile (timings/ aside); dvc status up to date"
    again=$(cd "$b" && PYTHONPATH="$b" rescom share register --profile "$profile")
    grep -q ": 0 run(s) registered, $runs already there" <<<"$again" || { echo "a second registration added runs: $again"; exit 1; }
    variants=$(cd "$b" && PYTHONPATH="$b" python -c "
from mlflow.tracking import MlflowClient
from rescom.tracking import default_tracking_uri
client = MlflowClient(default_tracking_uri())
runs = client.search_runs([client.get_experiment_by_name('$profile/main').experiment_id])
print(len(runs), len({r.data.tags['variant'] for r in runs}))")
    echo "B: a second registration added none; MLflow $profile/main: runs, variants = $variants"

    t=$(date +%s)
    clone "$c" && remote_config "$c" "$url" "$keyfile"
    if [ "$kind" = local ]; then
        (cd "$c" && PYTHONPATH="$c" rescom share pull --profile "$profile" --no-register "$one")
    else
        (cd "$c" && dvc pull --with-deps "$one_stage")
    fi
    got=$(cd "$c" && find "runs/$profile" -name checkpoint.pt | sort)
    [ "$got" = "runs/$profile/$one/checkpoint.pt" ] || { echo "C fetched other runs too: $got"; exit 1; }
    [ -d "$c/data/prepared/$profile/fmnist-if10" ] || { echo "C's pull did not bring the run's prepared set"; exit 1; }
    (cd "$c" && PYTHONPATH="$c" rescom evaluate "runs/$profile/$one/checkpoint.pt" --out "$work/evaluated.json" >/dev/null)
    python - "$a/runs/$profile/$one/metrics.json" "$work/evaluated.json" <<'PY'
import json, sys
trained = json.load(open(sys.argv[1]))["metrics"]
evaluated = json.load(open(sys.argv[2]))
for key in ("test_all", "test_many", "test_medium", "test_few", "test_ece"):
    a, c = trained[f"last_{key}"], evaluated[key]  # null: a shot group without classes (NaN)
    if (a is None) != (c is None) or (a is not None and abs(a - c) > 1e-6):
        sys.exit(f"rescom evaluate of the pulled checkpoint: {key} {evaluated[key]} against A's {trained[f'last_{key}']}")
print("C: rescom evaluate of the pulled checkpoint equals A's metrics.json (" +
      ", ".join(f"{k} {evaluated[k]:.4f}" for k in ("test_all", "test_few", "test_ece")) + ")")
PY
    echo "C: one run fetched alone and evaluated in $(since "$t")"
    (cd "$a" && dvc remote remove --local lab >/dev/null)
}

share local "$work/remote"
start_sshd
share ssh "ssh://$(id -un)@127.0.0.1:$sshd_port$work/ssh-remote" "$work/sshd/client"
stop_sshd
echo "sharing checked with a local-directory and an SSH remote in $(since "$started")"
