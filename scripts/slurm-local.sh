#!/usr/bin/env bash
# A single-node Slurm cluster on this machine, for testing `greenprune sweep --slurm` (run as root;
# needs Debian's slurm-wlm and munge). Everything lives under one temporary folder: the munge key
# and socket, slurm.conf (proctrack/linuxproc, task/none, select/cons_tres, no cgroup.conf), the
# state and spool folders, logs and pid files; nothing under /etc is touched.
#
#   eval "$(bash scripts/slurm-local.sh start)"   # prints: export SLURM_CONF=… GREENPRUNE_SLURM_DIR=…
#   sbatch …; squeue …
#   bash scripts/slurm-local.sh stop "$GREENPRUNE_SLURM_DIR"
set -euo pipefail
cmd="${1:-}"

stop() {
  local dir="$1"
  [ -d "$dir" ] || return 0
  for p in slurmd slurmctld munged; do
    if [ -f "$dir/$p.pid" ]; then
      local pid; pid="$(cat "$dir/$p.pid")"
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$dir"
}

case "$cmd" in
start)
  for b in munged slurmctld slurmd sbatch; do
    command -v "$b" >/dev/null || { echo "slurm-local: $b not found (apt-get install -y slurm-wlm munge)" >&2; exit 1; }
  done
  dir="$(mktemp -d /tmp/greenprune-slurm.XXXXXX)"
  chmod 700 "$dir"
  mkdir -p "$dir/state" "$dir/spool" "$dir/munge"
  chmod 700 "$dir/munge"
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chmod 400 "$dir/munge/munge.key"
  munged --force --socket="$dir/munge/munge.socket" --key-file="$dir/munge/munge.key" \
    --pid-file="$dir/munged.pid" --log-file="$dir/munged.log" --seed-file="$dir/munge/munged.seed" \
    || { cat "$dir/munged.log" >&2 2>/dev/null; stop "$dir"; exit 1; }
  host="$(hostname -s)"
  node="$(slurmd -C | head -n 1)"  # NodeName=… CPUs=… RealMemory=… as slurmd sees this machine
  port=$((20000 + RANDOM % 20000))
  cat > "$dir/slurm.conf" <<CONF
ClusterName=greenprune
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$port
SlurmdPort=$((port + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
$node State=UNKNOWN
PartitionName=local Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  slurmctld -f "$SLURM_CONF" || { cat "$dir/slurmctld.log" >&2; stop "$dir"; exit 1; }
  slurmd -f "$SLURM_CONF" || { cat "$dir/slurmd.log" >&2; stop "$dir"; exit 1; }
  # Wait until the node is idle (the controller has heard from slurmd).
  for _ in $(seq 100); do
    if sinfo -h -o '%t' 2>/dev/null | grep -qx 'idle'; then
      echo "export SLURM_CONF=$SLURM_CONF GREENPRUNE_SLURM_DIR=$dir"
      exit 0
    fi
    sleep 0.2
  done
  echo "slurm-local: the node did not come up; slurmctld.log:" >&2
  tail -n 20 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
  stop "$dir"; exit 1 ;;
stop)
  stop "${2:-${GREENPRUNE_SLURM_DIR:-}}" ;;
*)
  echo "usage: $0 start | stop DIR" >&2; exit 2 ;;
esac
