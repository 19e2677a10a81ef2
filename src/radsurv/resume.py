"""Resuming a run that was killed: no job output is kept that Snakemake never recorded.

Snakemake marks a job's outputs *incomplete* (``.snakemake/incomplete/``) when the job starts
and records its metadata and removes the marks when it ends. If Snakemake itself is killed
between the two (``kill -9``, a closed session, the out-of-memory killer), a job that had
just finished, or that kept running and finished later, leaves complete-looking outputs
that are still marked. ``--rerun-incomplete`` redoes such jobs only if they are in the DAG
when Snakemake checks the marks, at the start; the per-scan jobs, which come after the
discovery checkpoint, are added later and their marks are never looked at: the rerun keeps
their outputs, the marks stay, and every later dry run reports "jobs have missing
provenance/metadata" (issue #15 item 9).

:func:`clear_interrupted` is called when a run starts (``workflow/rules/common.smk``, not on
dry runs and not while a lock is held): it removes every output under ``results/`` that is
still marked incomplete, so that its job runs again like any job with a missing output. (The
jobs that read such an output cannot have run yet: Snakemake starts them only after recording
it, so their outputs are missing too and the rerun asks for it. A results folder already
completed by an older rerun keeps its unrecorded outputs' content; Snakemake does not
regenerate an intermediate file that up-to-date results no longer need.) Jobs still running
when Snakemake died cannot write after this clean-up: they die with it
(:func:`radsurv.logutil.die_with_parent`).
"""

from __future__ import annotations

import base64
import binascii
import shutil
from pathlib import Path

#: Outputs are removed only under this folder of the working directory (radsurv's results).
RESULTS = "results"


def _decode(marker: Path, root: Path) -> str | None:
    """The output path of one marker file (Snakemake splits long names into ``@``-folders)."""
    parts = marker.relative_to(root).parts
    b64 = "".join(p[1:] if p.startswith("@") else p for p in parts)
    try:
        return base64.urlsafe_b64decode(b64.encode()).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def incomplete_outputs(workdir: str | Path = ".") -> list[str]:
    """Outputs (paths relative to ``workdir``) that Snakemake still marks as incomplete."""
    root = Path(workdir) / ".snakemake" / "incomplete"
    if not root.is_dir():
        return []
    out = []
    for marker in sorted(p for p in root.rglob("*") if p.is_file()):
        if marker.name == "migration_underway":
            continue
        path = _decode(marker, root)
        if path:
            out.append(path)
    return out


def locked(workdir: str | Path = ".") -> bool:
    """A Snakemake run holds (or a killed one left) the working directory's lock."""
    locks = Path(workdir) / ".snakemake" / "locks"
    return locks.is_dir() and any(locks.iterdir())


def clear_interrupted(workdir: str | Path = ".") -> list[str]:
    """Remove the outputs a killed run left marked incomplete; returns what was removed.

    Nothing is done while the working directory is locked (a run is active, or a killed
    run's lock has not been released with ``snakemake --unlock``). Only paths inside
    ``results/`` are touched; a missing output is skipped.
    """
    base = Path(workdir)
    if locked(base):
        return []
    removed = []
    results = (base / RESULTS).resolve()
    for rel in incomplete_outputs(base):
        path = (base / rel).resolve()
        if results not in path.parents or not (path.exists() or path.is_symlink()):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        else:
            path.unlink()
        removed.append(rel)
    return removed
