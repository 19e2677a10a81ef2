"""Logging set-up shared by the rule adapters in ``scripts/``."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from radsurv.privacy import ScrubbingFormatter


def setup_logging(log_path: str | Path | None, level: int = logging.INFO) -> logging.Logger:
    """Send ``radsurv`` and ``radiomics`` log records to ``log_path`` (and stderr).

    Called once at the top of every rule script so that each job writes its own
    log file under ``results/logs/``; DICOM UIDs in any record (tracebacks included)
    are written as pseudonyms (:mod:`radsurv.privacy`). Returns the ``radsurv`` logger.
    """
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if log_path is not None:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w", encoding="utf-8"))
    fmt = ScrubbingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in handlers:
        h.setFormatter(fmt)
        root.addHandler(h)
    root.setLevel(level)
    # pyradiomics is chatty at INFO (one line per feature class and filter).
    logging.getLogger("radiomics").setLevel(logging.WARNING)
    logging.getLogger("matplotlib").setLevel(logging.WARNING)
    return logging.getLogger("radsurv")
