#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster (munge + slurmctld + slurmd) on localhost.
#
#   tests/slurm/start_cluster.sh DIR
#
# Everything lives in DIR: slurm.conf, the munge key and socket, state, spool, logs and the
# pid files that tests/slurm/stop_cluster.sh uses to stop exactly these daemons. Nothing is
# written to /etc; clients find the cluster through SLURM_CONF=DIR/slurm.conf.
# Needs root and Debian's slurmctld, slurmd, slurm-client and munge (tests/slurm/install.sh).
#
# What a single node without slurmdbd or systemd needs (measured):
#   - ProctrackType=proctrack/linuxproc and TaskPlugin=task/none: no cgroups, no systemd.
#   - AccountingStorageType=accounting_storage/none: there is no slurmdbd, so `sacct` fails;
#     snakemake must use `--slurm-status-command squeue --slurm-no-account`.
#   - MinJobAge=3600: finished jobs stay visible to squeue for an hour, long enough for the
#     executor plugin (it falls back to sacct when MinJobAge < 3 x the first status-check
#     delay) and for the test's own squeue check at the end of the run.
#   - EnforcePartLimits=ALL: a job asking more CPUs/memory than the node has is rejected at
#     sbatch time instead of pending forever.
#   - slurmd -N <NodeName>: the node is called "localhost" whatever the machine's hostname is.
set -euo pipefail
DIR="$(mkdir -p "$1" && cd "$1" && pwd)"
CPUS="${SLURM_TEST_CPUS:-$(nproc)}"
# Memory offered to jobs: 80 % of the machine, in MB.
MEM_MB="${SLURM_TEST_MEM_MB:-$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.8}' /proc/meminfo)}"
CTLD_HOST="$(hostname -s)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
CTLD_PORT="$(free_port)"
SLURMD_PORT="$(free_port)"

mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log" "$DIR/munge"
chmod 700 "$DIR/munge"

# --- munge: a private daemon with its own key and socket -------------------------------
dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$DIR/munge/munge.key"
munged --force \
    --key-file="$DIR/munge/munge.key" \
    --socket="$DIR/munge/munge.socket" \
    --pid-file="$DIR/munge/munged.pid" \
    --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed"
munge --socket="$DIR/munge/munge.socket" -n | unmunge --socket="$DIR/munge/munge.socket" >/dev/null

# --- slurm.conf --------------------------------------------------------------------------
cat > "$DIR/slurm.conf" <<CONF
# radsurv test cluster (tests/slurm/start_cluster.sh); removed by stop_cluster.sh
ClusterName=radsurvtest
SlurmctldHost=${CTLD_HOST}(127.0.0.1)
SlurmctldPort=${CTLD_PORT}
SlurmdPort=${SLURMD_PORT}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=${DIR}/munge/munge.socket
StateSaveLocation=${DIR}/state
SlurmdSpoolDir=${DIR}/spool/%n
SlurmctldPidFile=${DIR}/slurmctld.pid
SlurmdPidFile=${DIR}/slurmd.pid
SlurmctldLogFile=${DIR}/log/slurmctld.log
SlurmdLogFile=${DIR}/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
EnforcePartLimits=ALL
ReturnToService=2
MinJobAge=3600
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM_MB} State=UNKNOWN
PartitionName=main Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$DIR/slurm.conf"

# The executor plugin's job step (snakemake-executor-plugin-slurm-jobstep) removes every
# SLURM_* variable, SLURM_CONF included, before it calls srun inside the job, so srun
# only finds the default /etc/slurm/slurm.conf. Link it there, unless the machine has a
# slurm.conf of its own (then refuse: this is a test cluster, not a site installation).
ETC_CONF=/etc/slurm/slurm.conf
if [ -e "$ETC_CONF" ] || [ -L "$ETC_CONF" ]; then
    if [ -L "$ETC_CONF" ] && { [ ! -e "$ETC_CONF" ] || grep -q '^# radsurv test cluster' "$ETC_CONF"; }; then
        rm -f "$ETC_CONF"   # a stale link left by an earlier (killed) test cluster
    else
        echo "refusing to start: $ETC_CONF exists (a real SLURM installation?)" >&2
        exit 4
    fi
fi
mkdir -p /etc/slurm
ln -s "$DIR/slurm.conf" "$ETC_CONF"

# --- daemons -----------------------------------------------------------------------------
slurmctld -i            # -i: ignore (absent) saved state
slurmd -N localhost

# Wait until the node accepts jobs.
for _ in $(seq 1 60); do
    state="$(sinfo -h -N -n localhost -o '%T' 2>/dev/null || true)"
    case "$state" in
        idle*) echo "slurm cluster up in $DIR (node localhost: ${CPUS} CPUs, ${MEM_MB} MB)"; exit 0 ;;
    esac
    sleep 0.5
done
echo "slurm node did not become idle (state: '${state:-none}'); logs:" >&2
tail -n 30 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
exit 1
