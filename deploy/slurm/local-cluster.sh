#!/usr/bin/env bash
# Throwaway single-node Slurm cluster on this machine, for trying out
# deploy/slurm/sweep.sbatch without a real cluster.
#
# Usage:
#   deploy/slurm/local-cluster.sh [start]   bring the cluster up (default)
#   deploy/slurm/local-cluster.sh stop      cancel its jobs and stop its daemons
#   deploy/slurm/local-cluster.sh status    exit 0 if it is up, 3 if not
#   deploy/slurm/local-cluster.sh env       print the SLURM_CONF export line
#
# After `start`, point the Slurm client commands at the cluster with
#   export SLURM_CONF=${ECOLOGY_SLURM_DIR:-/tmp/ecology-slurm}/slurm.conf
# (or `eval "$(deploy/slurm/local-cluster.sh env)"`).
#
# Environment:
#   ECOLOGY_SLURM_DIR          where config, keys, state and logs live
#                              (default /tmp/ecology-slurm)
#   ECOLOGY_SLURM_CTLD_PORT    slurmctld port (default 6817)
#   ECOLOGY_SLURM_SLURMD_PORT  slurmd port (default 6818)
#
# Everything the cluster needs lives under ECOLOGY_SLURM_DIR: its own munge
# key and munged socket, slurm.conf, state and spool directories, pid files
# and logs. Nothing under /etc is touched, so a system Slurm or munge, if
# any, is left alone (as long as it does not hold the same ports).
#
# The cluster is meant for containers and CI machines without systemd or a
# usable cgroup hierarchy, so it runs everything as root and avoids every
# cgroup-based plugin: processes are tracked through /proc
# (proctrack/linuxproc), tasks are not confined (task/none) and there is no
# accounting database (so `sacct` does not work; use `squeue`/`scontrol`, or
# `sbatch --wait`). Must be run as root; Slurm and munge are installed with
# apt-get if they are missing.

set -euo pipefail
umask 022

DIR=${ECOLOGY_SLURM_DIR:-/tmp/ecology-slurm}
CTLD_PORT=${ECOLOGY_SLURM_CTLD_PORT:-6817}
SLURMD_PORT=${ECOLOGY_SLURM_SLURMD_PORT:-6818}
PARTITION=ecology

CONF=$DIR/slurm.conf
KEY_DIR=$DIR/munge        # 0700: the key must not be readable by others
RUN_DIR=$DIR/run          # 0755: munged insists its socket dir is world-executable
LOG_DIR=$DIR/log
STATE_DIR=$DIR/state
SPOOL_DIR=$DIR/spool
SOCKET=$RUN_DIR/munge.socket

MUNGED_PID=$RUN_DIR/munged.pid
CTLD_PID=$RUN_DIR/slurmctld.pid
SLURMD_PID=$RUN_DIR/slurmd.pid

say() { printf 'local-cluster: %s\n' "$*" >&2; }

die() {
    say "error: $*"
    exit 1
}

# Print the tail of the daemons' logs, to explain a failed start.
show_logs() {
    local f
    for f in "$LOG_DIR"/munged.log "$LOG_DIR"/slurmctld.log "$LOG_DIR"/slurmd.log; do
        if [[ -s $f ]]; then
            say "--- last lines of $f"
            tail -n 15 "$f" >&2
        fi
    done
}

fail_start() {
    say "error: $*"
    show_logs
    say "the cluster did not come up; stopping what was started"
    stop_daemons
    exit 1
}

# The pid recorded in pid file $1, if that process is alive and is the
# program $2 (so a stale pid file whose pid was reused does not count).
live_pid() {
    local file=$1 name=$2 pid comm
    [[ -r $file ]] || return 1
    pid=$(tr -dc '0-9' <"$file")
    [[ -n $pid ]] || return 1
    alive "$pid" || return 1
    comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
    [[ $comm == "$name" ]] || return 1
    printf '%s\n' "$pid"
}

# Wait up to $2 seconds for check $1 to succeed. A check returning 2 means
# it never will (its daemon died), and ends the wait at once.
wait_for() {
    local check=$1 secs=$2 i rc
    for ((i = 0; i < secs * 2; i++)); do
        rc=0
        "$check" || rc=$?
        case $rc in
            0) return 0 ;;
            2) return 1 ;;
        esac
        sleep 0.5
    done
    return 1
}

# Return 2 if the daemon whose pid file is $1 has written it and is gone.
# No pid file yet means it may still be starting.
died() {
    local file=$1 name=$2
    [[ -e $file ]] || return 1
    live_pid "$file" "$name" >/dev/null && return 1
    return 0
}

# Whether something already listens on 127.0.0.1:$1.
port_taken() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

munge_ok() {
    [[ -S $SOCKET ]] && munge -n -S "$SOCKET" 2>/dev/null | unmunge -S "$SOCKET" >/dev/null 2>&1
}

ctld_up() {
    SLURM_CONF=$CONF scontrol ping 2>/dev/null | grep -q 'is UP'
}

ctld_started() {
    died "$CTLD_PID" slurmctld && return 2
    ctld_up
}

node_state() {
    SLURM_CONF=$CONF sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1
}

node_idle() {
    local state
    died "$SLURMD_PID" slurmd && return 2
    state=$(node_state)
    [[ $state == idle || $state == mixed || $state == allocated ]]
}

all_running() {
    live_pid "$MUNGED_PID" munged >/dev/null &&
        live_pid "$CTLD_PID" slurmctld >/dev/null &&
        live_pid "$SLURMD_PID" slurmd >/dev/null &&
        ctld_up
}

any_running() {
    live_pid "$MUNGED_PID" munged >/dev/null ||
        live_pid "$CTLD_PID" slurmctld >/dev/null ||
        live_pid "$SLURMD_PID" slurmd >/dev/null
}

ensure_packages() {
    local missing=() cmd
    for cmd in slurmctld slurmd sbatch squeue sinfo scontrol scancel munged mungekey munge unmunge; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    ((${#missing[@]} == 0)) && return 0
    say "missing ${missing[*]}; installing slurm-wlm and munge"
    command -v apt-get >/dev/null 2>&1 ||
        die "apt-get not found; install Slurm (slurmctld, slurmd, client tools) and munge by hand"
    apt-get update -q >&2 || die "apt-get update failed"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >&2 ||
        die "apt-get install slurm-wlm munge failed"
    for cmd in "${missing[@]}"; do
        command -v "$cmd" >/dev/null 2>&1 || die "$cmd still missing after installing slurm-wlm and munge"
    done
}

# The hardware line slurmd itself detects, e.g.
#   NodeName=host CPUs=2 Boards=1 SocketsPerBoard=1 CoresPerSocket=2 ThreadsPerCore=1 RealMemory=24105
# Using it verbatim keeps the configured node identical to the real one;
# a node configured with more CPUs or memory than it has is marked invalid.
detect_node() {
    NODE_LINE=$(slurmd -C 2>/dev/null | grep -m 1 '^NodeName=' || true)
    [[ -n $NODE_LINE ]] || die "slurmd -C did not describe this machine"
    NODE=${NODE_LINE%% *}
    NODE=${NODE#NodeName=}
}

write_config() {
    cat >"$CONF" <<EOF
# Single-node Slurm cluster written by deploy/slurm/local-cluster.sh.
# Rewritten on every start; edit the script, not this file.
ClusterName=ecology-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT

# Everything runs as root, and root may submit jobs.
SlurmUser=root
SlurmdUser=root
DisableRootJobs=NO

# Our own munged, not the system one.
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET

StateSaveLocation=$STATE_DIR
SlurmdSpoolDir=$SPOOL_DIR
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# No systemd, no cgroups: track processes through /proc, do not confine
# tasks, and keep no accounting.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
MailProg=/bin/true

SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
KillWait=5

$NODE_LINE NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
}

start_munged() {
    if [[ ! -s $KEY_DIR/munge.key ]]; then
        mungekey --create --keyfile="$KEY_DIR/munge.key" >/dev/null ||
            die "could not create a munge key in $KEY_DIR"
    fi
    chmod 0600 "$KEY_DIR/munge.key"
    rm -f "$SOCKET" "$SOCKET.lock"
    munged --key-file="$KEY_DIR/munge.key" \
        --socket="$SOCKET" \
        --pid-file="$MUNGED_PID" \
        --seed-file="$KEY_DIR/munged.seed" \
        --log-file="$LOG_DIR/munged.log" ||
        fail_start "munged did not start"
    wait_for munge_ok 10 || fail_start "munged is not answering on $SOCKET"
}

start() {
    [[ $(id -u) -eq 0 ]] || die "must be run as root (the cluster runs slurmd and jobs as root)"
    ensure_packages

    if all_running; then
        detect_node
        if wait_for node_idle 10; then
            say "already running (node $NODE is $(node_state)); config $CONF"
            print_env
            return 0
        fi
        say "running but node $NODE is '$(node_state)'; restarting"
    fi
    if any_running; then
        say "some daemons of a previous start are still running; stopping them first"
        stop_daemons
    fi

    mkdir -p "$DIR" "$RUN_DIR" "$LOG_DIR" "$KEY_DIR"
    chmod 0755 "$DIR" "$RUN_DIR" "$LOG_DIR"
    chmod 0700 "$KEY_DIR"
    # A fresh cluster each time: no jobs or node state carried over.
    rm -rf "$STATE_DIR" "$SPOOL_DIR"
    mkdir -p "$STATE_DIR" "$SPOOL_DIR"
    : >"$LOG_DIR/munged.log"
    : >"$LOG_DIR/slurmctld.log"
    : >"$LOG_DIR/slurmd.log"

    local port
    for port in "$CTLD_PORT" "$SLURMD_PORT"; do
        if port_taken "$port"; then
            die "port $port is already in use (another Slurm?); choose others with ECOLOGY_SLURM_CTLD_PORT / ECOLOGY_SLURM_SLURMD_PORT"
        fi
    done
    rm -f "$MUNGED_PID" "$CTLD_PID" "$SLURMD_PID"

    detect_node
    write_config

    start_munged
    slurmctld -f "$CONF" || fail_start "slurmctld did not start"
    wait_for ctld_started 30 || fail_start "slurmctld is not answering on port $CTLD_PORT"
    slurmd -f "$CONF" || fail_start "slurmd did not start"
    if ! wait_for node_idle 30; then
        # A node that registered once with a different configuration may be
        # held down; ask for it back before giving up.
        SLURM_CONF=$CONF scontrol update nodename="$NODE" state=resume 2>/dev/null || true
        wait_for node_idle 15 || fail_start "node $NODE is '$(node_state)', not idle"
    fi
    say "up: node $NODE is $(node_state), partition $PARTITION; config $CONF"
    print_env
}

# Whether process $1 is still there (a zombie waiting to be reaped is not).
alive() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# Wait up to $2 seconds for process $1 to go away.
wait_gone() {
    local pid=$1 secs=$2 i
    for ((i = 0; i < secs * 2; i++)); do
        alive "$pid" || return 0
        sleep 0.5
    done
    ! alive "$pid"
}

# The pid file of daemon $1.
pid_file() {
    case $1 in
        munged) printf '%s\n' "$MUNGED_PID" ;;
        slurmctld) printf '%s\n' "$CTLD_PID" ;;
        slurmd) printf '%s\n' "$SLURMD_PID" ;;
    esac
}

# Stop whatever this script's pid files name, politely first. The pids are
# read up front: the daemons remove their pid files before they are gone.
stop_daemons() {
    local pids=() names=() pid name file i
    for name in slurmd slurmctld munged; do
        file=$(pid_file "$name")
        if pid=$(live_pid "$file" "$name"); then
            pids+=("$pid")
            names+=("$name")
        fi
    done
    if live_pid "$CTLD_PID" slurmctld >/dev/null; then
        # Jobs left running would keep slurmstepd processes around.
        SLURM_CONF=$CONF timeout 10 scancel --partition="$PARTITION" 2>/dev/null || true
        SLURM_CONF=$CONF timeout 10 scontrol shutdown 2>/dev/null || true
    fi
    for i in "${!pids[@]}"; do
        pid=${pids[i]}
        name=${names[i]}
        wait_gone "$pid" 5 && continue
        kill -TERM "$pid" 2>/dev/null || true
        wait_gone "$pid" 10 && continue
        say "$name (pid $pid) ignored SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
        wait_gone "$pid" 5 || say "$name (pid $pid) is still there"
    done
}

stop() {
    if ! any_running; then
        say "not running"
        return 0
    fi
    stop_daemons
    if any_running; then
        die "some daemons are still running; see $RUN_DIR/*.pid"
    fi
    say "stopped"
}

status() {
    local name file pid
    for name in munged slurmctld slurmd; do
        file=$(pid_file "$name")
        if pid=$(live_pid "$file" "$name"); then
            say "$name running (pid $pid)"
        else
            say "$name not running"
        fi
    done
    if all_running; then
        SLURM_CONF=$CONF sinfo >&2 || true
        return 0
    fi
    return 3
}

print_env() {
    printf 'export SLURM_CONF=%q\n' "$CONF"
}

case ${1:-start} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    env) print_env ;;
    -h | --help | help) sed -n '2,/^$/s/^# \{0,1\}//p' "$0" ;;
    *) die "unknown command '$1' (expected start, stop, status or env)" ;;
esac
