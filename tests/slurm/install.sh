#!/usr/bin/env bash
# Install Debian's SLURM (controller, node daemon, client commands) and munge, if missing.
# Needs root and apt-get; exits 3 when that is not possible (the test then skips).
set -euo pipefail
need=()
for cmd in slurmctld slurmd sbatch squeue munged; do
    command -v "$cmd" >/dev/null || need+=("$cmd")
done
[ "${#need[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null; then
    echo "SLURM is not installed (missing: ${need[*]}) and apt-get as root is not available" >&2
    exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# a machine left with an interrupted install (dpkg "returned an error code") is finished first, and once more on failure
dpkg --configure -a >/dev/null 2>&1 || true
apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null \
    || { dpkg --configure -a >/dev/null 2>&1 || true; apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; }
