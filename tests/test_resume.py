"""Resume: a run killed in the middle (SIGKILL) and started again ends with the outputs of
an uninterrupted run.

The whole process group is killed (Snakemake and the jobs it runs), as a power cut, an
out-of-memory kill of the session or a cluster node failure would: jobs die half-way
through writing their outputs, and Snakemake's lock stays behind. The restart is what a
user does: ``snakemake --unlock`` then ``snakemake --rerun-incomplete`` (the default
profile sets rerun-incomplete). Snakemake reruns the jobs it had marked incomplete and
keeps the finished ones.

:func:`assert_same_outputs` (also used by tests/test_slurm.py) compares every file under
``results/`` except logs and benchmark timings, byte for byte.
"""

from __future__ import annotations

import gzip
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import SNAKEFILE, SNAKEMAKE, snakemake_run, tiny_config

#: Not compared: run logs and timings (they differ by nature), and Snakemake's own files.
SKIP_DIRS = {"logs", "benchmarks"}
#: Snakemake's marker of a directory output's time stamp. It is touched after the job has
#: been recorded as finished, so a kill between the two leaves a finished directory (all
#: its files written) without it; Snakemake then uses the directory's own time stamp.
SKIP_NAMES = {".snakemake_timestamp"}


def result_files(results: Path) -> set[str]:
    """Relative paths of the files a run produced under ``results/`` that are compared."""
    return {str(p.relative_to(results)) for p in results.rglob("*")
            if p.is_file() and p.relative_to(results).parts[0] not in SKIP_DIRS and p.name not in SKIP_NAMES}


def assert_same_outputs(reference: Path, results: Path) -> None:
    """Every compared file exists in both runs with identical bytes.

    Text outputs that record absolute input paths (the discovery manifests and scan list)
    are compared with each run's own directory masked, so runs in different directories
    can be compared.

    Gzipped NIfTI files are compared byte for byte too (ITK writes no time stamp into the
    gzip header, so identical images give identical files); if a .gz file differs, the
    message says whether its decompressed content is equal, to tell a header difference
    from a data difference.
    """
    ref, new = result_files(reference), result_files(results)
    assert ref == new, f"files only in reference: {sorted(ref - new)[:10]}; only in new: {sorted(new - ref)[:10]}"
    assert any(f.endswith("report.html") for f in ref) and any(f.endswith(".nii.gz") for f in ref)
    differ = []
    for rel in sorted(ref):
        a, b = (reference / rel).read_bytes(), (results / rel).read_bytes()
        if a != b and not rel.endswith(".gz"):
            # Discovery records where it found the DICOM files (manifests, scans.tsv): the
            # absolute path of each run's own directory. Compare with that path masked.
            a = a.replace(str(reference.parent.resolve()).encode(), b"<RUN>")
            b = b.replace(str(results.parent.resolve()).encode(), b"<RUN>")
        if a != b:
            note = ""
            if rel.endswith(".gz"):
                note = " (content equal, gzip header differs)" if gzip.decompress(a) == gzip.decompress(b) \
                    else " (decompressed content differs)"
            differ.append(rel + note)
    assert not differ, f"{len(differ)} output(s) differ from the reference run: {differ[:20]}"


def _count(workdir: Path, pattern: str) -> int:
    return len(list((workdir / "results").glob(pattern)))


@pytest.mark.e2e
def test_killed_run_resumes_to_identical_outputs(tiny_run, tmp_path):
    tiny_config(tmp_path)
    cmd = [SNAKEMAKE, "-s", str(SNAKEFILE), "--workflow-profile", "none", "--cores", "2"]
    with (tmp_path / "killed_run.log").open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            # Kill once some scans are extracted and others still run: mid-way through the
            # per-scan stages, long before the report.
            deadline = time.monotonic() + 900
            while _count(tmp_path, "features/scans/*.json") < 3:
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and every job it started
            proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "results" / "report" / "report.html").exists()
    assert list((tmp_path / ".snakemake" / "locks").iterdir()), "a killed run leaves its lock"
    kept = {p: p.stat().st_mtime_ns for p in (tmp_path / "results" / "features" / "scans").glob("*.json")}

    unlock = snakemake_run(tmp_path, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    res = snakemake_run(tmp_path, "--cores", "2", "--rerun-incomplete")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]

    # Resumed, not restarted: finished per-scan outputs of the killed run were kept.
    assert any(p.stat().st_mtime_ns == m for p, m in kept.items()), "every extraction was redone"
    assert_same_outputs(tiny_run, tmp_path / "results")


def _children(pid: int) -> dict[int, tuple[str, float]]:
    """Processes whose parent is ``pid``: their command line and age in seconds (Linux /proc)."""
    uptime = float(Path("/proc/uptime").read_text().split()[0])
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmd = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields[1] is the ppid, fields[19] the start time in ticks
            out[int(stat.parent.name)] = (cmd, uptime - int(fields[19]) / ticks)
    return out


def _logging(pid: int) -> bool:
    """The job has set up its log (radsurv.logutil.setup_logging: its stderr is its log file)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/2").endswith(".log")
    except OSError:
        return False


@pytest.mark.e2e
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_snakemake_killed_alone_leaves_no_job_half_recorded(tiny_run, tmp_path):
    """kill -9 of the Snakemake process only (its jobs are not signalled), as when a terminal
    or an ssh session dies with Snakemake but not its children, or an out-of-memory kill.

    The jobs it had started must not finish their outputs unrecorded: they die with it
    (radsurv.logutil.die_with_parent), the rerun redoes them, and afterwards a dry run has
    nothing to do and no job with missing metadata; the outputs equal an uninterrupted run's.
    """
    tiny_config(tmp_path)
    cmd = [SNAKEMAKE, "-s", str(SNAKEFILE), "--workflow-profile", "none", "--cores", "2"]
    with (tmp_path / "killed_run.log").open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 900
            while True:  # some scans extracted, and scan jobs running that are past their start-up
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run made no progress"
                jobs = {p: c for p, (c, _) in _children(proc.pid).items() if "scan.py" in c and _logging(p)}
                if _count(tmp_path, "features/scans/*.json") >= 2 and jobs:
                    break
                time.sleep(0.2)
        finally:
            proc.kill()  # SIGKILL to Snakemake alone
            proc.wait(timeout=60)
    time.sleep(5)
    orphans = [p for p in jobs if Path(f"/proc/{p}").exists() and "zombie" not in
               Path(f"/proc/{p}/status").read_text()]
    assert not orphans, f"{len(orphans)} job(s) kept running after Snakemake was killed"

    unlock = snakemake_run(tmp_path, "--unlock")
    assert unlock.returncode == 0, unlock.stderr[-3000:]
    res = snakemake_run(tmp_path, "--cores", "2", "--rerun-incomplete")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    dry = snakemake_run(tmp_path, "-n", "--cores", "2")
    assert dry.returncode == 0, dry.stderr[-3000:]
    text = dry.stdout + dry.stderr
    assert "Nothing to be done" in text, text[-3000:]
    assert "missing provenance" not in text and "metadata" not in text, text[-3000:]
    markers = tmp_path / ".snakemake" / "incomplete"
    assert not markers.exists() or not [p for p in markers.rglob("*") if p.is_file()], "incomplete markers left"
    assert_same_outputs(tiny_run, tmp_path / "results")
