#!/usr/bin/env bash
# Stop the daemons that tests/slurm/start_cluster.sh DIR started, by their pid files only.
#
#   tests/slurm/stop_cluster.sh DIR
set -uo pipefail
DIR="$1"
stop() {  # stop PIDFILE: TERM, wait up to 10 s, then KILL
    local pidfile="$1" pid
    [ -s "$pidfile" ] || return 0
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
}
stop "$DIR/slurmd.pid"
stop "$DIR/slurmctld.pid"
stop "$DIR/munge/munged.pid"
# Remove /etc/slurm/slurm.conf only if it is our link into DIR.
if [ "$(readlink /etc/slurm/slurm.conf 2>/dev/null || true)" = "$(cd "$DIR" && pwd)/slurm.conf" ]; then
    rm -f /etc/slurm/slurm.conf
fi
exit 0
