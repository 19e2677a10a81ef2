"""Loading and checking the clinical (outcome) table.

The user's table keeps its own column names; ``config['cohort']['columns']``
maps them onto radsurv's: ``id``, ``time``, ``event`` and ``covariates``.
Rows that cannot be used are reported in the QC table, never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radsurv.qc import qc_row

STAGE = "clinical"

#: Spellings of the event indicator that real tables use.
_EVENT_VALUES = {
    "1": 1, "1.0": 1, "true": 1, "yes": 1, "dead": 1, "deceased": 1, "event": 1,
    "0": 0, "0.0": 0, "false": 0, "no": 0, "alive": 0, "censored": 0,
}


def _read_table(path: Path) -> pd.DataFrame:
    sep = "\t" if path.suffix.lower() in {".tsv", ".tab", ".txt"} else ","
    return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)


def load_clinical(
    path: str | Path,
    columns: Mapping[str, Any],
    image_ids: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Read the clinical table and return ``(table, qc_rows)``.

    The returned table has columns ``patient_id``, ``time`` (float), ``event``
    (0/1) and the configured covariates unchanged (categorical values stay
    strings; imputation and encoding happen inside the training fold). Rows
    with a missing or negative time, an event that is not binary, or a
    duplicated id are excluded and reported. If ``image_ids`` is given, patients
    with images but no outcome and outcome rows without images are reported too
    (the latter as warnings, since they are simply not part of the image cohort).
    """
    path = Path(path)
    raw = _read_table(path)
    id_col, time_col, event_col = columns["id"], columns["time"], columns["event"]
    covariates = list(columns.get("covariates", []) or [])
    missing = [c for c in [id_col, time_col, event_col, *covariates] if c not in raw.columns]
    if missing:
        raise ValueError(
            f"The clinical table {path.name} has no column(s) {missing}; its columns are "
            f"{list(raw.columns)}. Fix cohort.columns in the config."
        )
    qc: list[dict[str, str]] = []
    keep: list[dict[str, Any]] = []
    ids = raw[id_col].str.strip()
    dup = set(ids[ids.duplicated()])
    for pid in sorted(dup):
        qc.append(qc_row(pid, "", STAGE, "excluded",
                         f"patient id {pid} appears more than once in {path.name}"))
    for i, row in raw.iterrows():
        pid = str(row[id_col]).strip()
        line = i + 2  # header is line 1
        if pid == "":
            qc.append(qc_row("", "", STAGE, "excluded", f"{path.name} line {line}: empty patient id"))
            continue
        if pid in dup:
            continue
        t_raw = str(row[time_col]).strip()
        try:
            t = float(t_raw)
        except ValueError:
            t = float("nan")
        if not np.isfinite(t):
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"{path.name} line {line}: survival time '{t_raw}' in column "
                             f"'{time_col}' is missing or not a number"))
            continue
        if t < 0:
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"{path.name} line {line}: survival time {t:g} is negative"))
            continue
        e_raw = str(row[event_col]).strip().lower()
        if e_raw not in _EVENT_VALUES:
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"{path.name} line {line}: event '{row[event_col]}' in column "
                             f"'{event_col}' is not 0/1 (or yes/no, dead/alive)"))
            continue
        rec: dict[str, Any] = {"patient_id": pid, "time": t, "event": _EVENT_VALUES[e_raw]}
        for c in covariates:
            rec[c] = row[c] if str(row[c]).strip() != "" else None
        keep.append(rec)
    table = pd.DataFrame(keep, columns=["patient_id", "time", "event", *covariates])
    table["event"] = table["event"].astype(int)
    if image_ids is not None:
        have = set(table["patient_id"])
        bad = {q["patient_id"] for q in qc}
        for pid in sorted(set(image_ids) - have - bad):
            qc.append(qc_row(pid, "", STAGE, "excluded",
                             f"patient {pid} has images but no row in {path.name}"))
        for pid in sorted(have - set(image_ids)):
            qc.append(qc_row(pid, "", STAGE, "warning",
                             f"patient {pid} is in {path.name} but has no analysable scan"))
    return table.sort_values("patient_id").reset_index(drop=True), qc
