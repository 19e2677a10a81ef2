"""Rule logging: everything a job says goes to its log file (tracebacks included), the
terminal gets one line per problem, UIDs are pseudonymised, and a job dies with Snakemake."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from radsurv.privacy import uid_pseudonym

UID = "1.2.826.0.1.3680043.8.498.12345678901234567890"

ADAPTER = textwrap.dedent(f"""
    import logging, os, sys, warnings
    from radsurv.logutil import setup_logging
    log = setup_logging(sys.argv[1])
    log.info("step started")
    logging.getLogger("radiomics.featureextractor").info("Computing glcm")   # chatty library INFO
    logging.getLogger("radiomics.glcm").warning("GLCM is symmetrical")       # library warning
    logging.getLogger("radsurv.features.scan").warning("RSD-001_S1 excluded at conversion: series {UID} has a gap")
    print("printed by a library")
    os.write(2, b"written by C code to fd 2\\n")
    warnings.warn("a Python warning")
    import radiomics  # adds its own stderr handler on import
    logging.getLogger("radiomics.shape").warning("Feature Compactness1 is deprecated")
    raise ValueError("cannot read series {UID}\\nsecond line of the message")
""")


def _run_adapter(tmp_path: Path) -> tuple[subprocess.CompletedProcess[str], str]:
    script = tmp_path / "adapter.py"
    script.write_text(ADAPTER)
    log = tmp_path / "logs" / "rule.log"
    res = subprocess.run([sys.executable, str(script), str(log)], capture_output=True, text=True, timeout=120)
    return res, log.read_text()


def test_traceback_of_a_failing_job_lands_in_its_log_file(tmp_path):
    res, log = _run_adapter(tmp_path)
    assert res.returncode != 0
    assert "Traceback (most recent call last)" in log and "ValueError: cannot read series" in log
    assert 'adapter.py", line' in log  # the frame that raised
    assert UID not in log and uid_pseudonym(UID) in log  # scrubbed like every other log line
    # everything else the job wrote is in the log file too
    for text in ("step started", "GLCM is symmetrical", "printed by a library", "written by C code to fd 2",
                 "a Python warning", "RSD-001_S1 excluded at conversion"):
        assert text in log, text
    assert "Computing glcm" not in log  # pyradiomics' INFO chatter is dropped
    assert log.count("Feature Compactness1 is deprecated") == 1  # once, not again by pyradiomics' own handler


def test_terminal_gets_one_line_per_problem(tmp_path):
    res, _ = _run_adapter(tmp_path)
    lines = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    log_name = str(tmp_path / "logs" / "rule.log")
    assert lines == [
        f"WARNING radsurv.features.scan: RSD-001_S1 excluded at conversion: series {uid_pseudonym(UID)} has a gap "
        f"(log: {log_name})",
        f"ERROR ValueError: cannot read series {uid_pseudonym(UID)} (full traceback in {log_name})",
    ]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_job_dies_with_the_process_that_started_it(tmp_path):
    alive, started = tmp_path / "still_alive", tmp_path / "started"
    child = textwrap.dedent(f"""
        import time
        from radsurv.logutil import die_with_parent
        assert die_with_parent()
        open({str(started)!r}, "w").write("asked to die with the parent")
        time.sleep(5)
        open({str(alive)!r}, "w").write("the job outlived its parent")
    """)
    # the parent stands for Snakemake: it starts the job and is then killed with SIGKILL
    parent = textwrap.dedent(f"""
        import subprocess, sys, time
        p = subprocess.Popen([sys.executable, "-c", {child!r}])
        print(p.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", parent], stdout=subprocess.PIPE, text=True)
    job_pid = int(proc.stdout.readline())
    deadline = time.monotonic() + 120
    while not started.exists():  # the job has imported radsurv and asked for the signal
        assert time.monotonic() < deadline, "the job did not start"
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    time.sleep(8)
    assert not alive.exists(), "the job kept running after its parent was killed"
    state = Path(f"/proc/{job_pid}/status")
    assert not state.exists() or "zombie" in state.read_text() or "(dead)" in state.read_text()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_a_job_whose_snakemake_died_while_it_started_stops(tmp_path):
    """Snakemake killed while the job was still importing: the job has been handed to another
    parent (here: the shell that stands for init), and stops when it asks for the signal."""
    alive = tmp_path / "still_alive"
    job = textwrap.dedent(f"""
        import snakemake  # a Snakemake job: Snakemake's script preamble has imported it
        from radsurv.logutil import die_with_parent
        die_with_parent()
        open({str(alive)!r}, "w").write("the orphaned job ran on")
    """)
    res = subprocess.run([sys.executable, "-c", job], timeout=120)  # parent: pytest, not Snakemake
    assert res.returncode == -signal.SIGKILL and not alive.exists()


# ------------------------------------------------------------------ run_rule: one call per adapter
class _Named(list):
    """A stand-in for Snakemake's Namedlist where importing snakemake is not wanted (a job process
    that imported snakemake and whose parent is not Snakemake stops at once: die_with_parent)."""

    def __init__(self, fromdict: dict) -> None:
        super().__init__(fromdict.values())
        self._d = dict(fromdict)

    def items(self):
        return self._d.items()


def _fake_snakemake(tmp_path: Path, input: dict, output: dict, params: dict, wildcards: dict | None = None,
                    real: bool = True):
    """What Snakemake hands a rule's script: named input/output/params/wildcards, log, threads."""
    from types import SimpleNamespace

    if real:
        from snakemake.iocontainers import Namedlist
    else:
        Namedlist = _Named  # noqa: N806

    return SimpleNamespace(rule="demo_rule", input=Namedlist(fromdict=input), output=Namedlist(fromdict=output),
                           params=Namedlist(fromdict=params), wildcards=Namedlist(fromdict=wildcards or {}),
                           log=Namedlist(fromdict={"log": str(tmp_path / "rule.log")}), threads=3)


def test_rule_arguments_are_the_rules_named_files_and_params(tmp_path):
    from radsurv.logutil import rule_arguments

    def entry(*, table, scans, out, cut, scan, threads=1):
        return None

    def no_threads(*, table, scans, out, cut):
        return None

    smk = _fake_snakemake(tmp_path, {"table": "t.tsv", "scans": ["a.json", "b.json"]}, {"out": "o.tsv"},
                          {"cut": 0.5}, {"scan": "P1_S1", "other": "x"})
    args = rule_arguments(smk, entry)
    assert args == {"table": "t.tsv", "scans": ["a.json", "b.json"], "out": "o.tsv", "cut": 0.5, "scan": "P1_S1",
                    "threads": 3}
    assert set(rule_arguments(smk, no_threads)) == {"table", "scans", "out", "cut"}  # wildcards, threads: if asked
    clash = _fake_snakemake(tmp_path, {"table": "in.tsv"}, {"table": "out.tsv"}, {})
    with pytest.raises(TypeError, match="'table' is given twice"):
        rule_arguments(clash, entry)


def test_run_rule_logs_to_the_rules_log_and_calls_the_entry_point(tmp_path):
    """A job through run_rule: the entry point gets its keywords, its INFO lines reach the log
    file only, and a rule whose names do not match the function fails with a TypeError."""
    script = tmp_path / "adapter.py"
    script.write_text(textwrap.dedent(f"""
        import logging, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_logutil import _fake_snakemake
        from radsurv.logutil import run_rule

        def write_total(*, numbers, total, offset):
            logging.getLogger("radsurv.workflow.demo").info("adding %d numbers", len(numbers))
            Path(total).write_text(str(sum(numbers) + offset))

        tmp = Path({str(tmp_path)!r})
        smk = _fake_snakemake(tmp, {{"numbers": [1, 2, 3]}}, {{"total": str(tmp / "total.txt")}},
                              {{"offset": int(sys.argv[1])}}, real=False)
        if sys.argv[2] == "bad":
            smk.params = type(smk.params)(fromdict={{"shift": 1}})
        run_rule(smk, write_total)
    """))
    res = subprocess.run([sys.executable, str(script), "10", "good"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "total.txt").read_text() == "16"
    assert res.stdout == "" and res.stderr == ""  # INFO: log file only
    assert "adding 3 numbers" in (tmp_path / "rule.log").read_text()
    res = subprocess.run([sys.executable, str(script), "10", "bad"], capture_output=True, text=True, timeout=120)
    assert res.returncode != 0
    assert "TypeError" in res.stderr and "shift" in res.stderr and "rule.log" in res.stderr


def test_progress_only_console_keeps_progress_warnings_and_errors():
    """Snakemake's terminal handler loses the scheduler's and per-job lines, keeps the progress
    line and every warning and error; its log file handler keeps everything."""
    import enum
    import io
    import logging

    from radsurv.logutil import progress_only_console

    Event = enum.Enum("Event", "JOB_STARTED JOB_FINISHED PROGRESS JOB_ERROR")
    terminal, logfile = io.StringIO(), io.StringIO()
    logger = logging.getLogger("radsurv-test.snakemake.logging")
    logger.setLevel(logging.INFO)
    file_handler = logging.FileHandler(os.devnull)
    file_handler.stream = logfile
    for h in (logging.StreamHandler(terminal), file_handler):
        logger.addHandler(h)
    try:
        assert progress_only_console(logger.name) == 1 and progress_only_console(logger.name) == 1
        logger.info("Select jobs to execute...")
        logger.info("Execute 2 jobs...", extra={"event": Event.JOB_STARTED})
        logger.info("Finished jobid: 7 (Rule: extract_scan_features)", extra={"event": Event.JOB_FINISHED})
        logger.info("3 of 9 steps (33%) done", extra={"event": Event.PROGRESS})
        logger.error("Error in rule fit_models", extra={"event": Event.JOB_ERROR})
        logger.warning("Select jobs to execute...")  # not a scheduler round: a warning with that text
    finally:
        for h in list(logger.handlers):
            logger.removeHandler(h)
    assert terminal.getvalue().splitlines() == ["3 of 9 steps (33%) done", "Error in rule fit_models",
                                                "Select jobs to execute..."]
    assert len(logfile.getvalue().splitlines()) == 6
