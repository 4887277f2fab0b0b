#!/usr/bin/env bash
# A one-node Slurm on this machine (Debian, as root, no systemd), for testing the Slurm profile for real:
#   scripts/local_slurm.sh start   # installs slurm-wlm + munge if missing, writes slurm.conf, starts the daemons
#   scripts/local_slurm.sh stop    # stops the daemons `start` started (by their recorded PIDs)
# tests/test_slurm.py calls both; CI (.ci/run) installs the packages first.
# No accounting storage: Snakemake must use `--slurm-status-command squeue` (see profiles/slurm/config.yaml).
set -euo pipefail
STATE=/run/local-slurm
case "${1:-}" in
start)
  if command -v sinfo >/dev/null && sinfo -h -o %T 2>/dev/null | grep -qx idle; then exit 0; fi   # already up
  if ! command -v slurmctld >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
  fi
  mkdir -p /run/munge /var/spool/slurmctld /var/spool/slurmd /var/log/slurm /run/slurm "$STATE"
  chown munge:munge /run/munge && chmod 755 /run/munge
  if ! munge -n >/dev/null 2>&1; then   # no munged answering: started here, stopped by `stop`
    su -s /bin/sh munge -c /usr/sbin/munged && cp /run/munge/munged.pid "$STATE/munged.pid"
  fi
  host=$(hostname -s); cpus=$(nproc); mem=$(( $(free -m | awk '/^Mem:/{print $2}') - 1024 ))
  cat > /etc/slurm/slurm.conf <<CONF
ClusterName=local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
  setsid slurmctld -D >/dev/null 2>&1 & echo $! > "$STATE/slurmctld.pid"
  setsid slurmd -D >/dev/null 2>&1 & echo $! > "$STATE/slurmd.pid"
  for _ in $(seq 30); do sinfo -h -o %T 2>/dev/null | grep -qx idle && exit 0; sleep 1; done
  echo "local slurm did not come up; see /var/log/slurm/" >&2; exit 1
  ;;
stop)
  for d in slurmd slurmctld munged; do [ -f "$STATE/$d.pid" ] && kill "$(cat "$STATE/$d.pid")" 2>/dev/null || true; rm -f "$STATE/$d.pid"; done
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
