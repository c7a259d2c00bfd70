#!/usr/bin/env bash
# A real single-node SLURM cluster for the integration tests (tests/slurm/), run as root:
# munge, MariaDB, slurmdbd (accounting, so `sacct` reports job states), slurmctld and slurmd,
# each in the foreground of a process this script starts and records, with every file under one
# state folder and non-default ports, so it never touches a system SLURM, munge or MariaDB.
#
#   tests/slurm/cluster.sh start    install missing Debian packages, start (no-op when running),
#                                   print `SLURM_CONF=<state>/etc/slurm.conf` last
#   tests/slurm/cluster.sh status   each daemon's state; exit 0 only when all run
#   tests/slurm/cluster.sh stop     cancel the cluster's jobs, stop exactly the recorded
#                                   processes, remove the state folder
#
# Environment: AUDIOTOOLS_SLURM_DIR (state folder, default ${TMPDIR:-/tmp}/audiotools-slurm),
# AUDIOTOOLS_SLURM_PORT (first of four consecutive ports, default 16817).
set -euo pipefail

STATE=${AUDIOTOOLS_SLURM_DIR:-${TMPDIR:-/tmp}/audiotools-slurm}
PORT=${AUDIOTOOLS_SLURM_PORT:-16817}
CTLD_PORT=$PORT
SLURMD_PORT=$((PORT + 1))
DBD_PORT=$((PORT + 2))
DB_PORT=$((PORT + 3))
CLUSTER=audiotools
DAEMONS=(munged mariadbd slurmdbd slurmctld slurmd)
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
export SLURM_CONF=$STATE/etc/slurm.conf

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes we started
# A pid file holds "PID STARTTIME": the start time (field 22 of /proc/PID/stat) proves the PID
# still names our process and not a later one that reused the number.
start_time() { awk '{print $22}' "/proc/$1/stat" 2>/dev/null; }

# Our process, still running (an exited one waiting to be reaped, state Z, is not).
alive() {
  local file=$STATE/pids/$1.pid pid started stat
  [ -f "$file" ] || return 1
  read -r pid started <"$file"
  [ -n "$pid" ] && stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  [ "$(awk '{print $22}' <<<"$stat")" = "$started" ] && [ "$(awk '{print $3}' <<<"$stat")" != Z ]
}

# launch NAME COMMAND...: start COMMAND in the background (its own session, output to
# logs/NAME.out) and record its PID.
launch() {
  local name=$1 pid
  shift
  setsid "$@" >"$STATE/logs/$name.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid $(start_time "$pid")" >"$STATE/pids/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...: poll COMMAND until it succeeds.
wait_for() {
  local what=$1 seconds=$2 deadline
  shift 2
  deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "$what did not come up within ${seconds}s; its log:"
      tail -n 30 "$STATE/logs/$what.out" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.2
  done
}

kill_recorded() {
  local name=$1 file=$STATE/pids/$1.pid pid started
  [ -f "$file" ] || return 0
  read -r pid started <"$file"
  if alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
      alive "$name" || break
      sleep 0.1
    done
    if alive "$name"; then
      log "$name (pid $pid) ignored SIGTERM for 10s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$file"
}

# ---------------------------------------------------------------- commands
status() {
  local name all=0
  for name in "${DAEMONS[@]}"; do
    if alive "$name"; then
      echo "$name: running (pid $(cut -d' ' -f1 "$STATE/pids/$name.pid"))"
    else
      echo "$name: stopped"
      all=1
    fi
  done
  return $all
}

stop() {
  [ -d "$STATE" ] || { log "not running (no $STATE)"; return 0; }
  if alive slurmctld; then
    # Jobs run under slurmd's slurmstepd, not under this script: end them through SLURM.
    local jobs
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      for _ in $(seq 50); do
        [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break
        sleep 0.2
      done
    fi
  fi
  local index
  for ((index = ${#DAEMONS[@]} - 1; index >= 0; index--)); do
    kill_recorded "${DAEMONS[index]}"
  done
  rm -rf "$STATE"
  log "stopped"
}

install_missing() {
  local missing=() tool
  for tool in munged mungekey mariadbd mariadb-install-db slurmdbd slurmctld slurmd sbatch sacct \
      sacctmgr; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  log "installing ${PACKAGES[*]} (missing: ${missing[*]})"
  # Keep the packages' own system services from starting: this cluster runs its own daemons.
  local policy=/usr/sbin/policy-rc.d created=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    created=1
  fi
  local rc=0
  bash "$(dirname "$0")/../../scripts/apt_install.sh" "${PACKAGES[@]}" || rc=$?
  [ $created -eq 1 ] && rm -f "$policy"
  [ $rc -eq 0 ] || die "apt-get install ${PACKAGES[*]} failed (exit $rc)"
}

check_ports_free() {
  local port
  for port in "$CTLD_PORT" "$SLURMD_PORT" "$DBD_PORT" "$DB_PORT"; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      die "port $port is in use; set AUDIOTOOLS_SLURM_PORT to a free range of four ports"
    fi
  done
}

write_configs() {
  local host node memory password
  host=$(hostname -s)
  # The machine as slurmd sees it, with 90% of its memory offered to jobs.
  node=$(slurmd -C | head -n 1)
  memory=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$node")
  node=$(sed "s/RealMemory=[0-9]*/RealMemory=$((memory * 9 / 10))/" <<<"$node")
  password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
  echo "$password" >"$STATE/db_password"
  chmod 600 "$STATE/db_password"

  cat >"$STATE/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/slurmd
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/logs/slurmctld.log
SlurmdLogFile=$STATE/logs/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# The munge socket for talking to slurmdbd (AuthInfo covers only the cluster's own daemons).
AccountingStoragePass=$STATE/munge/munge.socket
JobAcctGatherType=jobacct_gather/none
$node NodeAddr=127.0.0.1 Features=local State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

  cat >"$STATE/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$STATE/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/logs/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$password
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$STATE/etc/slurmdbd.conf"
}

db() { mariadb --no-defaults --socket="$STATE/mysql.sock" -u root "$@"; }

start_munge() {
  mungekey --create --keyfile="$STATE/munge/munge.key" >/dev/null
  chmod 400 "$STATE/munge/munge.key"
  launch munged munged --foreground --force --socket="$STATE/munge/munge.socket" \
    --key-file="$STATE/munge/munge.key" --pid-file="$STATE/run/munged.pid" \
    --log-file="$STATE/logs/munged.log" --seed-file="$STATE/munge/munged.seed"
  wait_for munged 15 bash -c "munge -n -S '$STATE/munge/munge.socket' \
    | unmunge -S '$STATE/munge/munge.socket'"
}

start_mariadb() {
  mariadb-install-db --no-defaults --user=root --datadir="$STATE/mysql" \
    --auth-root-authentication-method=socket --skip-test-db \
    >"$STATE/logs/mariadb-install.out" 2>&1 || die "mariadb-install-db failed: see $STATE/logs"
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$STATE/mysql" \
    --socket="$STATE/mysql.sock" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --pid-file="$STATE/run/mariadbd.pid" --skip-name-resolve \
    --innodb-buffer-pool-size=64M
  wait_for mariadbd 60 db -e "SELECT 1"
  db -e "CREATE DATABASE slurm_acct_db;
         CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$(cat "$STATE/db_password")';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';"
}

start_slurm() {
  launch slurmdbd slurmdbd -D
  wait_for slurmdbd 60 sacctmgr -n show cluster
  sacctmgr -i add cluster "$CLUSTER" >/dev/null
  launch slurmctld slurmctld -D -i -f "$SLURM_CONF"
  wait_for slurmctld 60 scontrol ping
  launch slurmd slurmd -D -f "$SLURM_CONF"
  wait_for slurmd 60 bash -c '[ "$(sinfo -h -o %T | head -n 1)" = idle ]'
}

start() {
  if status >/dev/null && scontrol ping >/dev/null 2>&1; then
    log "already running ($STATE)"
    echo "SLURM_CONF=$SLURM_CONF"
    return 0
  fi
  [ "$(id -u)" -eq 0 ] || die "run as root (the daemons run as root with their own state)"
  [ -d "$STATE" ] && { log "cleaning up a partial cluster in $STATE"; stop; }
  install_missing
  check_ports_free
  mkdir -p "$STATE"/{etc,pids,logs,run,ctld,slurmd,munge,mysql}
  # Readable by other users (their sbatch needs slurm.conf and the munge socket); the munge
  # key and the database password stay root's (mode 400/600).
  chmod 755 "$STATE" "$STATE/munge"
  local begin=$SECONDS
  trap 'log "start failed; logs in $STATE/logs (kept until stop)"' ERR
  write_configs
  start_munge
  start_mariadb
  start_slurm
  trap - ERR
  log "started in $((SECONDS - begin))s ($STATE)"
  echo "SLURM_CONF=$SLURM_CONF"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
