"""A real SLURM run: the tiny demo through snakemake-executor-plugin-slurm on a one-node
cluster started on localhost, with the repository's SLURM profile.

tests/slurm/install.sh installs Debian's slurmctld, slurmd, slurm-client and munge (root +
apt-get); tests/slurm/start_cluster.sh starts munge, slurmctld and slurmd from a private
directory; tests/slurm/stop_cluster.sh stops exactly those daemons (by pid file) at the end,
whatever happened. Skips when SLURM cannot be installed (not root, no apt-get) -- except in
CI (CI=true), where it must run.

Proof that the jobs went through SLURM: slurmctld's log records one batch submission per
job Snakemake reports as submitted, its allocation and exit status 0; squeue (MinJobAge=3600
keeps finished jobs) shows them all COMPLETED under this run's job name, and per-scan rules were submitted as group jobs
(fewer submissions than scans). The outputs equal those of the local ``tiny_run``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, SNAKEFILE, SNAKEMAKE, tiny_config
from test_resume import assert_same_outputs

HERE = Path(__file__).resolve().parent / "slurm"
IN_CI = os.environ.get("CI", "").lower() == "true"

#: Options a cluster without slurmdbd needs (see workflow/profiles/slurm/config.yaml).
NO_DBD = ["--slurm-status-command", "squeue", "--slurm-no-account",
          "--slurm-init-seconds-before-status-checks", "2"]


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"SLURM test cannot run in CI: {reason}")
    pytest.skip(reason)


#: One test cluster per machine at a time: srun inside a job reads /etc/slurm/slurm.conf
#: (see start_cluster.sh), so concurrent test sessions (several pytest runs on one shared
#: machine) would send each other's jobs to the wrong controller.
LOCK = Path("/tmp/radsurv-slurm-test.lock")


@contextlib.contextmanager
def _machine_lock(timeout_s: float = 3600):
    with LOCK.open("a") as fh:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another SLURM test cluster held {LOCK} for {timeout_s:.0f} s")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory):
    """A running one-node SLURM cluster; yields its environment (SLURM_CONF)."""
    if sys.platform != "linux" or shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        _unavailable("needs Linux with Debian's SLURM packages or apt-get")
    with _machine_lock():
        yield from _cluster(tmp_path_factory)


def _cluster(tmp_path_factory):
    inst = subprocess.run(["timeout", "-k", "10", "600", "bash", str(HERE / "install.sh")],
                          capture_output=True, text=True)
    if inst.returncode == 3:
        _unavailable(inst.stderr.strip())
    assert inst.returncode == 0, f"installing SLURM failed:\n{inst.stdout[-2000:]}\n{inst.stderr[-2000:]}"
    cdir = tmp_path_factory.mktemp("slurm_cluster")
    try:
        start = subprocess.run(["timeout", "-k", "10", "120", "bash", str(HERE / "start_cluster.sh"), str(cdir)],
                               capture_output=True, text=True)
        if start.returncode == 4:
            _unavailable(start.stderr.strip())
        assert start.returncode == 0, f"starting SLURM failed:\n{start.stdout}\n{start.stderr}"
        yield {"dir": cdir, "env": {**os.environ, "SLURM_CONF": str(cdir / "slurm.conf")}}
    finally:
        subprocess.run(["timeout", "-k", "5", "60", "bash", str(HERE / "stop_cluster.sh"), str(cdir)],
                       capture_output=True, text=True)
    # The daemons are gone: their pid files name no live process.
    for pidfile in (cdir / "slurmctld.pid", cdir / "slurmd.pid", cdir / "munge" / "munged.pid"):
        if pidfile.is_file() and pidfile.read_text().strip():
            pid = int(pidfile.read_text())
            assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text(), \
                f"{pidfile.name}: process {pid} still running"


@pytest.mark.e2e
def test_tiny_demo_on_slurm_equals_local_run(slurm_cluster, tiny_run, tmp_path):
    env = slurm_cluster["env"]
    tiny_config(tmp_path)
    cmd = ["timeout", "-k", "30", "1500", SNAKEMAKE, "-s", str(SNAKEFILE),
           "--workflow-profile", str(REPO / "workflow" / "profiles" / "slurm"), *NO_DBD]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True)
    log = res.stdout + res.stderr
    (tmp_path / "snakemake_slurm.log").write_text(log)
    assert res.returncode == 0, log[-6000:]

    # 1. Every job Snakemake ran was submitted with sbatch, allocated on the node and ended
    #    with exit status 0, as slurmctld itself recorded it.
    submitted = re.findall(r"has been submitted with SLURM jobid (\d+)", log)
    assert submitted, "no job was submitted to SLURM:\n" + log[-3000:]
    ctld_log = (slurm_cluster["dir"] / "log" / "slurmctld.log").read_text()
    for event in (r"_slurm_rpc_submit_batch_job: JobId=(\d+)",
                  r"(?:sched: Allocate|sched/backfill: _start_job: Started) JobId=(\d+)\s.*localhost",
                  r"_job_complete: JobId=(\d+) WEXITSTATUS 0"):
        seen = set(re.findall(event, ctld_log))
        assert set(submitted) <= seen, f"slurmctld did not log {event!r} for {sorted(set(submitted) - seen)}"
    # squeue (MinJobAge=3600 keeps finished jobs) knows them under this run's name.
    run_uuid = re.search(r"SLURM run ID: ([0-9a-f-]{36})", log)
    assert run_uuid, log[:3000]
    sq = subprocess.run(["squeue", "--states=all", "--noheader", "--name", run_uuid.group(1),
                         "--format=%i|%T|%k"], env=env, capture_output=True, text=True, check=True)
    jobs = {line.split("|")[0]: line.split("|")[1:] for line in sq.stdout.split()}
    assert set(submitted) <= set(jobs), f"squeue does not know all submitted jobs: {sq.stdout}"
    assert all(jobs[j][0] == "COMPLETED" for j in submitted), sq.stdout

    # 2. Per-scan rules ran as group jobs: fewer submissions than scans (profile grouping).
    n_scans = len((tiny_run / "ingest" / "scans.tsv").read_text().strip().splitlines()) - 1
    groups = [j for j in submitted if jobs[j][1].startswith("rule_scan_batch")]
    assert groups, f"no group job in {sq.stdout}"
    assert len(groups) < n_scans
    assert len(list((tmp_path / "results" / "benchmarks" / "extract_scan_features").glob("*.tsv"))) == n_scans

    # 3. Same outputs as the local run.
    assert_same_outputs(tiny_run, tmp_path / "results")
