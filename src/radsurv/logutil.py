"""Logging set-up and the call of a rule's entry point, shared by the adapters in ``workflow/scripts/``.

Each job of the workflow writes everything it has to say into its own log file
(``results/logs/...``): radsurv's log records, pyradiomics' and other libraries'
messages, Python warnings, anything written to stdout/stderr (C++ libraries included)
and, if the job fails, the full traceback. The terminal, which Snakemake uses for
its progress, gets at most one line per problem: radsurv's WARNING and ERROR records
(first line only) and, for a failing job, the error with the name of the log file.
DICOM UIDs are written as pseudonyms everywhere (:mod:`radsurv.privacy`).

A job also dies with the Snakemake process that started it (Linux), so that a killed
Snakemake leaves no job behind that writes its outputs without being recorded; the
rerun (``--rerun-incomplete``) then redoes it (README, "Running on SLURM").
"""

from __future__ import annotations

import inspect
import io
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from radsurv.privacy import ScrubbingFormatter, scrub_uids

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Libraries whose INFO records are not worth a log line (pyradiomics: one per feature class and image).
QUIET_LOGGERS = ("radiomics", "matplotlib", "pykwalify", "PIL", "numexpr")


class _QuietLibraries(logging.Filter):
    """Drop INFO/DEBUG records of :data:`QUIET_LOGGERS` (their warnings pass)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.WARNING:
            return True
        return not any(record.name == n or record.name.startswith(n + ".") for n in QUIET_LOGGERS)


class _OnlyRadsurv(logging.Filter):
    """radsurv's own records, except those meant for the log file only (``extra={"terminal": False}``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "terminal", True):
            return False
        return record.name == "radsurv" or record.name.startswith("radsurv.")


class _OneLineFormatter(logging.Formatter):
    """``WARNING radsurv.x: first line of the message (log: <file>)``: no traceback, UIDs scrubbed."""

    def __init__(self, log_name: str) -> None:
        super().__init__()
        self.log_name = log_name

    def format(self, record: logging.LogRecord) -> str:
        lines = scrub_uids(record.getMessage()).strip().splitlines()
        return f"{record.levelname} {record.name}: {lines[0] if lines else ''} (log: {self.log_name})"


class _NoOwnStreamLogger(logging.Logger):
    """pyradiomics adds its own stderr handler when imported; its records already reach the
    log file through the root logger, so that handler would only write them a second time."""

    def addHandler(self, hdlr: logging.Handler) -> None:  # noqa: N802 - logging's name
        if type(hdlr) is logging.StreamHandler:
            return
        super().addHandler(hdlr)


def _no_duplicate_library_handlers() -> None:
    name = "radiomics"
    existing = logging.root.manager.loggerDict.get(name)
    if isinstance(existing, logging.Logger):  # already imported: drop its stderr handler
        for h in list(existing.handlers):
            if type(h) is logging.StreamHandler:
                existing.removeHandler(h)
        return
    logging.setLoggerClass(_NoOwnStreamLogger)
    try:
        logging.getLogger(name)
    finally:
        logging.setLoggerClass(logging.Logger)


class ScrubbingStream(io.TextIOBase):
    """A text stream that writes whole lines, UIDs pseudonymised, to ``raw``."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw
        self._buf = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self._buf += text
        if "\n" in self._buf:
            done, self._buf = self._buf.rsplit("\n", 1)
            self.raw.write(scrub_uids(done) + "\n")
            self.raw.flush()
        return len(text)

    def flush(self) -> None:
        if self._buf:
            self.raw.write(scrub_uids(self._buf))
            self._buf = ""
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()

    def isatty(self) -> bool:
        return False


def die_with_parent(sig: int = signal.SIGKILL) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent (Snakemake) dies.

    Snakemake starts each job's Python directly (``python script.py``), so the parent is
    Snakemake itself; if Snakemake is killed (``kill -9``, out-of-memory killer, a closed
    session), its jobs stop instead of finishing their outputs unrecorded. Returns False
    where this is not available (not Linux). A Snakemake job (Snakemake's script preamble
    has imported ``snakemake``) whose Snakemake died while it was starting, before this
    call, has been handed to another parent: it stops at once too.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        PR_SET_PDEATHSIG = 1
        if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent or _orphaned_snakemake_job(parent):
        os.kill(os.getpid(), sig)
    return True


def _orphaned_snakemake_job(parent: int) -> bool:
    """True for a job started by Snakemake whose parent is no longer a Snakemake process."""
    if "snakemake" not in sys.modules:
        return False
    try:
        cmdline = Path(f"/proc/{parent}/cmdline").read_bytes()
    except OSError:
        return False
    return b"snakemake" not in cmdline


def _install_excepthook(log_name: str, terminal: TextIO | None) -> None:
    """Uncaught exceptions: full traceback (UIDs scrubbed) into the log file, one line on the terminal."""
    def hook(exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logging.getLogger("radsurv").critical("the step stopped with an error: %s: %s", exc_type.__name__, exc,
                                              exc_info=(exc_type, exc, tb), extra={"terminal": False})
        if terminal is not None:
            first = scrub_uids(str(exc)).strip().splitlines()
            msg = f"{exc_type.__name__}: {first[0] if first else ''}"
            terminal.write(f"ERROR {msg} (full traceback in {log_name})\n")
            terminal.flush()
        for h in logging.getLogger().handlers:
            h.flush()

    sys.excepthook = hook


def setup_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send every message of this job to ``log_path`` (one line per problem to the terminal).

    Called once at the top of every rule script, so that each job writes its own log
    file under ``results/logs/``. With a log file: radsurv and library records go to it
    (INFO and above; pyradiomics and other chatty libraries only WARNING and above), and
    so do stdout/stderr (Python warnings, C++ library messages) and the traceback of an
    uncaught exception; the terminal gets radsurv's WARNING/ERROR records and the error
    of a failing job, one line each, naming the log file. Without a log file (interactive
    use), records go to stderr. DICOM UIDs are written as pseudonyms (:mod:`radsurv.privacy`).
    The job also dies with its parent (:func:`die_with_parent`). Returns the ``radsurv`` logger.
    """
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.setLevel(level)
    fmt = ScrubbingFormatter(FORMAT)
    quiet = _QuietLibraries()
    if log_path is None:
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(fmt)
        handler.addFilter(quiet)
        root.addHandler(handler)
        return logging.getLogger("radsurv")

    die_with_parent()
    path = Path(log_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("", encoding="utf-8")  # a fresh log per run of the job
    log_name = str(log_path)

    # The terminal keeps a copy of the original stderr; fds 1 and 2 then go to the log file
    # (append mode, so that the handler and raw writes interleave instead of overwriting).
    sys.stdout.flush()
    sys.stderr.flush()
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    raw = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="replace")
    sys.stdout = sys.stderr = ScrubbingStream(raw)

    file_handler = logging.FileHandler(path, mode="a", encoding="utf-8")
    file_handler.setFormatter(fmt)
    file_handler.addFilter(quiet)
    root.addHandler(file_handler)
    term_handler = logging.StreamHandler(terminal)
    term_handler.setLevel(logging.WARNING)
    term_handler.addFilter(_OnlyRadsurv())
    term_handler.setFormatter(_OneLineFormatter(log_name))
    root.addHandler(term_handler)
    logging.captureWarnings(True)
    _no_duplicate_library_handlers()
    _install_excepthook(log_name, terminal)
    return logging.getLogger("radsurv")


def rule_arguments(smk: Any, func: Callable[..., Any]) -> dict[str, Any]:
    """The keyword arguments of a rule's entry point ``func`` from Snakemake's ``snakemake`` object.

    Every named input, output and param by its name; the rule's wildcards and ``threads``
    only where ``func`` has a parameter of that name. A name used twice (say an input and an
    output both named ``table``) is an error in the rule, reported as such.
    """
    accepted = inspect.signature(func).parameters
    kwargs: dict[str, Any] = {}
    for part in (smk.input, smk.output, smk.params):
        for name, value in part.items():
            if name in kwargs:
                raise TypeError(f"rule {smk.rule}: the name {name!r} is given twice (input, output or params)")
            kwargs[name] = value
    for name, value in smk.wildcards.items():
        if name in accepted and name not in kwargs:
            kwargs[name] = value
    if "threads" in accepted:
        kwargs["threads"] = smk.threads
    return kwargs


def run_rule(smk: Any, func: Callable[..., Any]) -> Any:
    """Run one job: log to the rule's log file (:func:`setup_logging`) and call the rule's
    entry point ``func`` with the rule's named files and params (:func:`rule_arguments`).

    Each adapter in ``workflow/scripts/`` is this one call.
    """
    setup_logging(smk.log[0] if smk.log else None)
    return func(**rule_arguments(smk, func))


# ------------------------------------------------------------------ Snakemake's own terminal
#: Snakemake's log events whose terminal lines repeat what the progress line after each job
#: says: the start of a scheduling round's jobs ("Execute N jobs...") and, per job, a time
#: stamp with "Finished jobid: N (Rule: x)" (names as in ``snakemake.logging.LogEvent``).
REPEATED_EVENTS = ("JOB_STARTED", "JOB_FINISHED")
#: Scheduler messages without an event, one per scheduling round.
REPEATED_MESSAGES = ("Select jobs to execute...",)


class _ProgressOnly(logging.Filter):
    """Drop Snakemake's per-round and per-job terminal lines that the progress line repeats."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.INFO:
            return True
        event = getattr(getattr(record, "event", None), "name", None)
        if event in REPEATED_EVENTS:
            return False
        return not (event is None and record.getMessage() in REPEATED_MESSAGES)


def progress_only_console(logger_name: str = "snakemake.logging") -> int:
    """Keep Snakemake's terminal to its progress ("N of M steps (x%) done"), warnings and errors.

    Called by the workflow (``workflow/rules/common.smk``) in the main Snakemake process: with
    the profiles' ``quiet: [rules, host]`` a job then costs one terminal line instead of five
    (scheduler round, start, time stamp, "Finished jobid", progress), so that a 40-patient demo
    (about 150 jobs) fits on a few hundred lines. Only the terminal handlers are filtered;
    Snakemake's own log file (``.snakemake/log/``) keeps every line. Returns the number of
    handlers filtered (0 when Snakemake's logging is not set up, e.g. outside a run).
    """
    n = 0
    for handler in logging.getLogger(logger_name).handlers:
        if isinstance(handler, logging.FileHandler) or not isinstance(handler, logging.StreamHandler):
            continue
        if not any(isinstance(f, _ProgressOnly) for f in handler.filters):
            handler.addFilter(_ProgressOnly())
        n += 1
    return n
