"""The QC table: one row per case and problem, so that nothing is dropped silently.

Every stage that can exclude a case writes rows with the same columns; the
``qc_table`` rule concatenates them into ``results/qc/qc.tsv``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from radsurv.privacy import scrub_uids

if TYPE_CHECKING:  # annotations only: pandas costs a per-scan job 0.4 s to import
    import pandas as pd


QC_COLUMNS = ["patient_id", "scan_id", "stage", "status", "reason"]

#: ``status`` values. ``excluded``: the case takes no further part in the stage's
#: analysis; ``warning``: processed, but the user should look.
STATUSES = ("excluded", "warning")


def qc_row(patient_id: str, scan_id: str, stage: str, status: str, reason: str) -> dict[str, str]:
    """One QC row; ``status`` must be ``excluded`` or ``warning``; DICOM UIDs in ``reason`` become pseudonyms."""
    if status not in STATUSES:
        raise ValueError(f"QC status must be one of {STATUSES}, got {status!r}")
    return {
        "patient_id": patient_id,
        "scan_id": scan_id,
        "stage": stage,
        "status": status,
        "reason": scrub_uids(reason),
    }


def qc_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """A QC table with the standard columns (also when there are no rows)."""
    import pandas as pd
    frame = pd.DataFrame(list(rows), columns=QC_COLUMNS)
    return frame.fillna("").astype(str)


def write_qc(rows: Iterable[Mapping[str, Any]], path: str | Path) -> pd.DataFrame:
    """Write QC rows as TSV (header always present) and return the frame."""
    frame = qc_frame(rows)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=False)
    return frame


def read_qc(path: str | Path) -> pd.DataFrame:
    """Read a QC TSV written by :func:`write_qc`."""
    import pandas as pd
    return pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)


def write_status(path: str | Path, ok: bool, stage: str, reason: str = "", **extra: Any) -> None:
    """The per-scan status file each per-scan stage writes (JSON)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    payload = {"ok": ok, "stage": stage, "reason": scrub_uids(reason), **extra}
    Path(path).write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))


def read_status(path: str | Path) -> dict[str, Any]:
    """Read a per-scan status file."""
    return json.loads(Path(path).read_text())


def merge_qc(paths: Iterable[str | Path], out_path: str | Path) -> pd.DataFrame:
    """Concatenate QC TSVs of all stages into one table, stable-sorted."""
    import pandas as pd
    frames = [read_qc(p) for p in paths]
    frame = pd.concat(frames, ignore_index=True) if frames else qc_frame([])
    frame = frame.sort_values(["patient_id", "scan_id", "stage"], kind="stable")
    frame.to_csv(out_path, sep="\t", index=False)
    return frame
