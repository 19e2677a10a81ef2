"""Perturbation robustness: ICC over perturbed versions of each patient's first scan.

The perturbed images and their features come from
:mod:`radsurv.robustness.perturbation` (one job per scan, Zwanenburg et al.
2019); this module turns those per-scan records into a long table
(:func:`perturbation_long`) and the per-feature ICC table
(:func:`perturbation_table`). Usable when a cohort has no retest scans; retest
scans are not used.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from radsurv.robustness.icc_tables import batch_count, icc_long
from radsurv.robustness.selection import RobustnessSettings
from radsurv.robustness.table import finish_table, not_assessed_table

log = logging.getLogger(__name__)


def perturbation_long(records: list[dict]) -> tuple[pd.DataFrame, list[dict[str, str]]]:
    """Per-scan perturbation records -> long table and the excluded scans.

    Returns ``(long, excluded)``: ``long`` has ``scan_id, patient_id,
    perturbation`` and one column per feature, one row per perturbed version;
    only scans whose every version succeeded are kept (the ICC needs a complete
    design). ``excluded`` lists the others with the reason.
    """
    rows: list[dict] = []
    excluded: list[dict[str, str]] = []
    for rec in records:
        meta = {"scan_id": rec["scan_id"], "patient_id": str(rec["patient_id"])}
        if not rec.get("ok", False):
            excluded.append({**meta, "reason": rec.get("reason", "failed upstream")})
            continue
        bad = [p for p in rec["perturbations"] if not p["ok"]]
        if bad:
            excluded.append({**meta, "reason": f"{len(bad)} of {len(rec['perturbations'])} perturbed "
                             f"versions failed, e.g. {bad[0]['reason']}"})
            continue
        for p in rec["perturbations"]:
            rows.append({**meta, "perturbation": int(p["params"]["index"]), **p["features"]})
    long = pd.DataFrame(rows)
    if long.empty:
        long = pd.DataFrame(columns=["scan_id", "patient_id", "perturbation"])
    meta_cols = ["scan_id", "patient_id", "perturbation"]
    long = long[meta_cols + sorted(c for c in long.columns if c not in meta_cols)]
    return long.sort_values(["patient_id", "perturbation"]).reset_index(drop=True), excluded


def perturbation_table(long: pd.DataFrame, settings: RobustnessSettings,
                       form: str = "ICC(1,1)", groups: pd.Series | None = None) -> tuple[pd.DataFrame, bool]:
    """ICC over the perturbed versions of each patient (k = versions per scan).

    ``long`` is the table of :func:`perturbation_long`. Default ICC(1,1), as
    Zwanenburg et al. (2019): versions are drawn independently per patient, so
    they are not crossed raters. A feature missing (NaN) in any version is not
    robust. Fewer than ``min_pairs`` patients: not assessed (every feature kept).
    ``groups``: each patient's batch (indexed by patient id): patients nested in batches.
    """
    cols = [c for c in long.columns if c not in ("scan_id", "patient_id", "perturbation")]
    n = int(long["patient_id"].nunique()) if len(long) else 0
    k = int(long.groupby("patient_id").size().max()) if len(long) else 0
    n_batches = batch_count(groups, long["patient_id"].astype(str).unique())
    if n < max(settings.min_pairs, 2) or k < 2 or n - n_batches < 2:
        log.warning("perturbation robustness not assessed: %d complete patients (< %d)%s", n, settings.min_pairs,
                    "" if groups is None else f" in {n_batches} batches (within batches it needs patients - batches "
                    ">= 2)")
        return not_assessed_table(cols, form, n, k), False
    values = long[cols].apply(pd.to_numeric, errors="coerce")
    complete = [c for c in cols if values[c].notna().all() and np.isfinite(values[c]).all()]
    frame = pd.concat([long[["patient_id", "perturbation"]], values[complete]], axis=1)
    table = icc_long(frame, subject="patient_id", rater="perturbation", features=complete, form=form,
                     groups=groups)
    out = finish_table(cols, table, settings, table["form"].iloc[0] if len(table) else form, n, k)
    log.info("perturbation: %d of %d features robust (%s over %d patients x %d versions)",
             int(out["robust"].sum()), len(out), form, n, k)
    return out, True
