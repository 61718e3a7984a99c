#!/usr/bin/env bash
# Set up everything rescom needs on a fresh machine: a virtual environment in .venv with the
# pinned torch pair and the package, and Debian's offline Fashion-MNIST (the default profile's data).
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
export DVC_NO_ANALYTICS=1 MLFLOW_DISABLE_TELEMETRY=true PIP_DISABLE_PIP_VERSION_CHECK=1

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# torch/torchvision pinned to the pair that imports on the reference machines (pyproject.toml).
.venv/bin/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1 -e '.[test]' 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
.venv/bin/python -c "import torch, torchvision, rescom" >/dev/null

fmnist=/usr/share/datasets/fashion-mnist
if [ ! -d "$fmnist" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist >/dev/null
    else
        echo "note: $fmnist is missing; install Debian's dataset-fashion-mnist (sudo apt-get install" \
             "dataset-fashion-mnist) or pass --data-root with the four official Fashion-MNIST .gz files" >&2
    fi
fi
# For the tests, as root: a one-node SLURM (tests/test_slurm.py starts and stops it) and sshd for
# the SSH remote of the sharing tests (started on 127.0.0.1 and stopped by them).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    command -v slurmctld >/dev/null && command -v munged >/dev/null || missing+=(slurm-wlm munge)
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
fi
echo "setup done: $(.venv/bin/python -c 'import torch; print("torch", torch.__version__)')"
