"""Landmark survival data: survival counted from a mid-treatment time point (no immortal-time bias).

A delta feature at ``fx10`` exists only for patients alive and followed at ``fx10``; using it
with survival counted from the start of treatment credits the model with the time every
patient had to survive to be measured (immortal-time bias). The landmark data set therefore
starts the clock at each patient's landmark scan and keeps only patients still at risk then:

* patients with an event or censoring at or before their landmark (time <= landmark) are
  excluded, one QC row each (which, and when);
* patients without a scan at the landmark time point are excluded (QC row): their delta
  does not exist, and imputing it would be a guess;
* for the others, ``time`` = outcome time - landmark time, ``event`` unchanged.

A binary endpoint (for example xerostomia after treatment) has no clock: :func:`label_dataset`
keeps the patients with a landmark scan and a label of 0 or 1; a missing or other label is a QC
row, never coerced.

Outcome times are in ``time_unit_days`` days (30.4375: months) from the baseline scan, as the
clinical table of the cohort gives them; the landmark time is the landmark scan's
``days_from_first`` in the same unit.
"""

from __future__ import annotations

import pandas as pd

from radsurv.qc import qc_frame, qc_row

__all__ = ["STAGE_LANDMARK", "label_dataset", "landmark_dataset"]

STAGE_LANDMARK = "longitudinal_landmark"
LANDMARK_COLUMNS = ["patient_id", "landmark", "landmark_time", "time", "event"]
LABEL_COLUMNS = ["patient_id", "landmark", "landmark_time", "label"]


def _landmark_days(assigned: pd.DataFrame, landmark: str) -> pd.Series:
    """Each patient's landmark scan's ``days_from_first`` (patients without one are absent)."""
    lm = assigned[(assigned["role"] == "timepoint") & (assigned["timepoint"] == landmark)]
    return lm.set_index("patient_id")["days_from_first"].astype(float)


def landmark_dataset(clinical: pd.DataFrame, assigned: pd.DataFrame, landmark: str, time_column: str = "os_months",
                     event_column: str = "os_event", time_unit_days: float = 30.4375
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The landmark survival table and the QC rows of the patients it leaves out.

    Args:
        clinical: one row per patient: ``patient_id``, ``time_column`` (from the baseline scan,
            in ``time_unit_days`` days), ``event_column`` (1 event, 0 censored).
        assigned: :func:`radsurv.longitudinal.timepoints.assign_timepoints` output (``role``
            ``timepoint`` rows give each patient's landmark scan and its ``days_from_first``).
        landmark: the landmark time point's name.

    Returns:
        ``(table, qc)``: ``table`` has ``patient_id, landmark, landmark_time, time, event`` (time
        from the landmark, > 0), sorted by patient; ``qc`` one row per excluded patient.
    """
    lm_days = _landmark_days(assigned, landmark)
    rows, qc = [], []
    for rec in clinical.sort_values("patient_id").to_dict("records"):
        pid = str(rec["patient_id"])
        t, e = float(rec[time_column]), int(rec[event_column])
        if pid not in lm_days.index:
            qc.append(qc_row(pid, "", STAGE_LANDMARK, "excluded",
                             f"no scan at the landmark time point {landmark!r}: not in the landmark analysis"))
            continue
        t_lm = float(lm_days[pid]) / time_unit_days
        if t <= t_lm:
            what = "event" if e else "censoring"
            qc.append(qc_row(pid, "", STAGE_LANDMARK, "excluded",
                             f"{what} at {t:.2f} before or at the landmark {landmark!r} ({t_lm:.2f}): not at "
                             "risk at the landmark, excluded (no immortal-time bias)"))
            continue
        rows.append({"patient_id": pid, "landmark": landmark, "landmark_time": t_lm, "time": t - t_lm, "event": e})
    return pd.DataFrame(rows, columns=LANDMARK_COLUMNS), qc_frame(qc)


def _binary_label(value: object) -> int | None:
    """0 or 1 for 0 / 1 / "0" / "1" / 0.0 / 1.0; None for anything else (missing included)."""
    try:
        x = float(str(value).strip())
    except ValueError:
        return None
    return int(x) if x in (0.0, 1.0) else None


def label_dataset(clinical: pd.DataFrame, assigned: pd.DataFrame, landmark: str, label_column: str,
                  time_unit_days: float = 30.4375) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The binary-endpoint table: patients with a scan at ``landmark`` and a label of 0 or 1.

    Returns:
        ``(table, qc)``: ``table`` has ``patient_id, landmark, landmark_time, label``, sorted by
        patient; ``qc`` one row per patient left out (no landmark scan; label missing or not 0 / 1).

    Raises:
        ValueError: the clinical table has no ``label_column``.
    """
    if label_column not in clinical.columns:
        raise ValueError(f"longitudinal.label_column: the clinical table has no column {label_column!r} "
                         f"(its columns: {', '.join(map(str, clinical.columns))})")
    lm_days = _landmark_days(assigned, landmark)
    rows, qc = [], []
    for rec in clinical.sort_values("patient_id").to_dict("records"):
        pid = str(rec["patient_id"])
        if pid not in lm_days.index:
            qc.append(qc_row(pid, "", STAGE_LANDMARK, "excluded",
                             f"no scan at the landmark time point {landmark!r}: not in the delta models"))
            continue
        value = rec.get(label_column)
        label = _binary_label(value)
        if label is None:
            what = "missing" if pd.isna(value) else f"{value!r}, not 0 or 1"
            qc.append(qc_row(pid, "", STAGE_LANDMARK, "excluded", f"{label_column} is {what}: left out, not guessed"))
            continue
        rows.append({"patient_id": pid, "landmark": landmark, "landmark_time": float(lm_days[pid]) / time_unit_days,
                     "label": label})
    return pd.DataFrame(rows, columns=LABEL_COLUMNS), qc_frame(qc)
