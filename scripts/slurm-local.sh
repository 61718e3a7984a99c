#!/usr/bin/env bash
# A one-node SLURM on this machine, for the tests, CI and a developer trying `rescom repro --slurm`:
# Debian's slurm-wlm and munge, one node `localhost` with this machine's CPUs and memory and two
# stand-in GPUs (empty files SLURM hands out as gres/gpu, so `--gres=gpu:1` jobs schedule on a CPU
# node), daemons bound to 127.0.0.1 (CommunicationParameters=NoInAddrAny), state under $RESCOM_SLURM_DIR.
#
#   bash scripts/slurm-local.sh install   # apt-get install slurm-wlm munge (root)
#   bash scripts/slurm-local.sh start     # start munged, slurmctld, slurmd; wait until a job runs
#   bash scripts/slurm-local.sh stop      # cancel every job, stop the daemons
#   bash scripts/slurm-local.sh status
#
# Clients need SLURM_CONF=$RESCOM_SLURM_DIR/slurm.conf (start prints it). Must run as root: slurmd
# starts jobs as their user.
set -euo pipefail
state=${RESCOM_SLURM_DIR:-/tmp/rescom-slurm}
conf=$state/slurm.conf
export SLURM_CONF=$conf

need_root() {
    if [ "$(id -u)" != 0 ]; then echo "slurm-local.sh: $1 needs root (slurmd runs jobs as their users)" >&2; exit 2; fi
}

# A daemon of this SLURM runs when its pid file names a live process.
running() {
    [ -f "$state/$1.pid" ] && kill -0 "$(cat "$state/$1.pid")" 2>/dev/null
}

write_config() {
    local cpus mem_mb
    cpus=$(nproc)
    # Leave a quarter of the memory (at least 2 GB) outside SLURM for the controller and the system.
    mem_mb=$(awk '/MemTotal/ {m = int($2 / 1024); r = int(m / 4); if (r < 2048) r = 2048; print m - r}' /proc/meminfo)
    # A fresh controller state each start: no node remembered as down, no job ids of a past run.
    running slurmctld || rm -rf "$state/ctld"
    mkdir -p "$state/ctld" "$state/spool" "$state/gpus"
    : > "$state/gpus/fakegpu0"
    : > "$state/gpus/fakegpu1"
    cat > "$conf" <<EOF
ClusterName=rescom-local
SlurmctldHost=localhost(127.0.0.1)
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MinJobAge=300
KillWait=10
GresTypes=gpu
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
    # SLURM reads gres.conf beside slurm.conf.
    echo "NodeName=localhost Name=gpu File=$state/gpus/fakegpu[0-1]" > "$state/gres.conf"
}

start() {
    need_root start
    for cmd in munged slurmctld slurmd; do
        command -v "$cmd" >/dev/null || { echo "slurm-local.sh: $cmd not found: bash $0 install" >&2; exit 2; }
    done
    write_config
    mkdir -p /run/munge && chown munge:munge /run/munge
    # munged answers when a credential round-trips; start it (as its own user) otherwise.
    if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        runuser -u munge -- munged
        for _ in $(seq 20); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.5; done
    fi
    running slurmctld || slurmctld -f "$conf"
    running slurmd || slurmd -f "$conf" -N localhost
    # Ready when the node takes a job (within a minute); fail saying why otherwise.
    local deadline=$((SECONDS + 60))
    while [ $SECONDS -lt $deadline ]; do
        if [ "$(sinfo -h -N -o %t 2>/dev/null)" = idle ] && timeout 10 srun -N1 -n1 --time=1 true >/dev/null 2>&1; then
            echo "one-node SLURM up: export SLURM_CONF=$conf"
            sinfo -N -o "%N %c CPUs %m MB %G %t"
            return 0
        fi
        sleep 1
    done
    echo "slurm-local.sh: SLURM did not accept a job within 60 s; logs:" >&2
    tail -n 20 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    sinfo -N -o "%N %t %E" >&2 || true
    exit 1
}

stop() {
    [ -f "$conf" ] || { echo "slurm-local.sh: not started here ($conf missing)"; return 0; }
    scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    for daemon in slurmd slurmctld; do
        if running "$daemon"; then
            kill "$(cat "$state/$daemon.pid")"
            for _ in $(seq 40); do running "$daemon" || break; sleep 0.25; done
        fi
    done
    pkill -x munged 2>/dev/null || true
    for _ in $(seq 20); do pgrep -x munged >/dev/null || break; sleep 0.5; done
    echo "one-node SLURM stopped"
}

case "${1:-}" in
    install)
        need_root install
        command -v slurmctld >/dev/null && command -v munged >/dev/null || {
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurm-wlm munge >/dev/null; }
        echo "slurm-wlm and munge installed" ;;
    start) start ;;
    stop) stop ;;
    status) squeue; sinfo -N -o "%N %c CPUs %m MB %G %t" ;;
    *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
