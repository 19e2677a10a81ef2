"""The longitudinal chain on a cohort folder: time points -> ROI features -> deltas -> landmark -> study.

:func:`cohort_features` reads a longitudinal image sheet (``images.tsv``: ``patient_id``,
``scan_id``, ``image``, ``days_from_first`` [, ``session``, ``fraction``, ``timepoint``]) and a
contour sheet (``contours.tsv``: ``scan_id``, ``structure``, ``mask``), as written by
:func:`radsurv.synthetic.longitudinal.write_longitudinal_cohort`, assigns time points, matches the
ROIs and extracts every ROI's features (own contour, else the propagated baseline).
:func:`delta_study` runs the rest of the chain. Both are what the future rules will call
piecewise; here they are the library's end-to-end check on the generated cohort.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import SimpleITK as sitk

from radsurv.longitudinal.delta import (
    DeltaSettings,
    delta_matrix,
    delta_table,
    missing_baseline_qc,
    rc_from_retest,
    select_delta_features,
)
from radsurv.longitudinal.features import scan_features
from radsurv.longitudinal.landmark import landmark_dataset
from radsurv.longitudinal.propagation import PropagationSettings
from radsurv.longitudinal.rois import RoiSpec, match_rois
from radsurv.longitudinal.study import StudySettings, compare_delta_models, model_blocks
from radsurv.longitudinal.timepoints import TimePointSettings, assign_timepoints
from radsurv.qc import qc_frame

__all__ = ["CohortFeatures", "cohort_features", "delta_study"]

KEYS = ["patient_id", "scan_id", "timepoint", "timepoint_index", "role", "days"]


@dataclass
class CohortFeatures:
    """Feature rows (one per assigned scan), propagation quality, QC rows and the assignment."""

    features: pd.DataFrame
    propagation: pd.DataFrame
    qc: pd.DataFrame
    assigned: pd.DataFrame


def _masks(scan_id: str, contours: pd.DataFrame, root: Path, specs: Sequence[RoiSpec], pid: str, tp: str
           ) -> tuple[dict[str, sitk.Image | None], list[dict[str, str]]]:
    rows = contours[contours["scan_id"] == scan_id]
    found, qc = match_rois(pid, scan_id, list(rows["structure"]), specs, timepoint=tp)
    path = dict(zip(rows["structure"], rows["mask"], strict=True))
    return {s.name: (sitk.ReadImage(str(root / path[found[s.name]])) if s.name in found else None)
            for s in specs}, qc


def cohort_features(root: str | Path, tp: TimePointSettings, specs: Sequence[RoiSpec], params: Mapping[str, Any],
                    prop: PropagationSettings, validate: bool = False) -> CohortFeatures:
    """Assign time points and extract every ROI at every assigned scan (see the module docstring)."""
    root = Path(root)
    sheet = pd.read_csv(root / "images.tsv", sep="\t", dtype={"patient_id": str, "scan_id": str})
    contours = pd.read_csv(root / "contours.tsv", sep="\t", dtype=str)
    assigned, qc_tp = assign_timepoints(sheet, tp)
    image_of = sheet.set_index("scan_id")["image"]
    rows, prop_rows, qc = [], [], list(qc_tp.to_dict("records"))
    for pid, grp in assigned.groupby("patient_id", sort=True):
        baseline = None
        for rec in grp.to_dict("records"):  # baseline first (sorted by time point index, then day)
            img = sitk.ReadImage(str(root / image_of[rec["scan_id"]]))
            masks, q = _masks(rec["scan_id"], contours, root, specs, str(pid), rec["timepoint"])
            qc += q
            is_base = rec["timepoint_index"] == 0 and rec["role"] == "timepoint"
            sf = scan_features(str(pid), rec["scan_id"], img, masks, None if is_base or rec["role"] == "retest"
                               else baseline, params, prop, validate)
            if is_base:
                baseline = (img, masks)
            rows.append({"patient_id": pid, "scan_id": rec["scan_id"], "timepoint": rec["timepoint"],
                         "timepoint_index": rec["timepoint_index"], "role": rec["role"],
                         "days": rec["days_from_first"], **sf.features})
            prop_rows += [{**r, "timepoint": rec["timepoint"]} for r in sf.propagation]
            qc += sf.qc
    return CohortFeatures(pd.DataFrame(rows), pd.DataFrame(prop_rows), qc_frame(qc), assigned)


@dataclass
class DeltaStudy:
    """Everything :func:`delta_study` computed, for tables and the report."""

    rc: pd.DataFrame
    delta: pd.DataFrame
    selection: pd.DataFrame
    landmark: pd.DataFrame
    performance: pd.DataFrame
    predictions: pd.DataFrame
    qc: pd.DataFrame


def delta_study(cf: CohortFeatures, clinical: pd.DataFrame, landmark: str, delta_settings: DeltaSettings,
                study: StudySettings, tumour: str = "gtv", time_column: str = "os_months",
                event_column: str = "os_event") -> DeltaStudy:
    """RC from the retest pairs, deltas to ``landmark``, feature selection, landmark outcome and the
    four-model comparison (baseline / delta / baseline + delta / relative tumour volume change)."""
    f = cf.features
    feats = [c for c in f.columns if c not in KEYS and not c.endswith("__propagated")]
    base = f[(f["role"] == "timepoint") & (f["timepoint_index"] == 0)].set_index("patient_id")
    ret = f[f["role"] == "retest"].set_index("patient_id")
    pairs = sorted(set(base.index) & set(ret.index))
    rc = rc_from_retest(base.loc[pairs, feats], ret.loc[pairs, feats])
    tp = f[f["role"] == "timepoint"][["patient_id", "timepoint", "timepoint_index", "days", *feats]]
    delta = delta_table(tp, rc, delta_settings)
    qc_base = qc_frame(missing_baseline_qc(tp))
    sel = select_delta_features(delta, delta_settings)
    kept = sel.loc[sel["kept"], "feature"].tolist()
    dm = delta_matrix(delta, landmark, kept)
    vol = f"{tumour}__original_shape_MeshVolume"
    rtvc = delta[(delta["timepoint"] == landmark) & (delta["feature"] == vol)].set_index("patient_id")["rel_change"]
    lm, qc_lm = landmark_dataset(clinical, cf.assigned, landmark, time_column, event_column)
    blocks = model_blocks(base[feats], dm, rtvc)
    perf, preds = compare_delta_models(blocks, lm, study)
    return DeltaStudy(rc, delta, sel, lm, perf, preds, pd.concat([qc_base, qc_lm], ignore_index=True))
