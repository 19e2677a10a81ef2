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
from dataclasses import dataclass, replace
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
from radsurv.longitudinal.landmark import label_dataset, landmark_dataset
from radsurv.longitudinal.propagation import PropagationSettings
from radsurv.longitudinal.rois import RoiSpec, match_rois
from radsurv.longitudinal.study import StudySettings, compare_delta_models, model_blocks
from radsurv.longitudinal.timepoints import TimePointSettings, assign_timepoints
from radsurv.qc import qc_frame

__all__ = ["CohortFeatures", "DeltaTables", "ScanInputs", "cohort_features", "delta_models", "delta_study",
           "delta_tables", "feature_columns", "scan_inputs", "scan_row"]

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


def read_sheets(images: str | Path, contours: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The scan table and the contour table (ids as text)."""
    sheet = pd.read_csv(images, sep="\t", dtype={"patient_id": str, "scan_id": str})
    return sheet, pd.read_csv(contours, sep="\t", dtype=str)


@dataclass(frozen=True)
class ScanInputs:
    """Where one cohort's scans and contours are: the two tables and the folders their paths start from."""

    sheet: pd.DataFrame
    contours: pd.DataFrame
    image_root: Path
    contour_root: Path


def scan_inputs(images: str | Path, contours: str | Path) -> ScanInputs:
    """:class:`ScanInputs` of the two tables (file paths in them are relative to each table's folder)."""
    sheet, cont = read_sheets(images, contours)
    return ScanInputs(sheet, cont, Path(images).parent, Path(contours).parent)


def scan_row(inputs: ScanInputs, assigned: pd.DataFrame, scan_id: str, specs: Sequence[RoiSpec],
             params: Mapping[str, Any], prop: PropagationSettings, validate: bool = False
             ) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, str]]]:
    """One assigned scan: its feature row (keys + ROI-prefixed features), propagation rows and QC rows.

    A later time point (not the baseline, not a retest) propagates the patient's baseline
    contours where it has none of its own (and, with ``validate``, also where it has, for Dice).
    """
    rec = assigned.set_index("scan_id").loc[scan_id]
    pid = str(rec["patient_id"])
    image_of = inputs.sheet.set_index("scan_id")["image"]
    img = sitk.ReadImage(str(inputs.image_root / image_of[scan_id]))
    masks, qc = _masks(scan_id, inputs.contours, inputs.contour_root, specs, pid, str(rec["timepoint"]))
    is_base = int(rec["timepoint_index"]) == 0
    baseline = None
    if not is_base:
        base = assigned[(assigned["patient_id"] == pid) & (assigned["role"] == "timepoint")
                        & (assigned["timepoint_index"] == 0)]
        if len(base):
            b_id = str(base["scan_id"].iloc[0])
            b_masks, _ = _masks(b_id, inputs.contours, inputs.contour_root, specs, pid, "")
            baseline = (sitk.ReadImage(str(inputs.image_root / image_of[b_id])), b_masks)
    roi_prop = {s.name: replace(prop, **dict(s.propagation)) for s in specs if s.propagation}
    sf = scan_features(pid, scan_id, img, masks, baseline, params, prop, validate, roi_prop)
    qc = [_propagated_instead(q, sf.features) for q in qc]
    row = {"patient_id": pid, "scan_id": scan_id, "timepoint": rec["timepoint"],
           "timepoint_index": int(rec["timepoint_index"]), "role": rec["role"], "days": rec["days_from_first"],
           **sf.features}
    return row, [{**r, "timepoint": rec["timepoint"]} for r in sf.propagation], qc + sf.qc


def _propagated_instead(row: dict[str, str], features: Mapping[str, float]) -> dict[str, str]:
    """An absent ROI whose planning contour was propagated: a warning saying so, not an exclusion."""
    roi = row["reason"].split("'")[1] if row["reason"].startswith("ROI '") else ""
    if features.get(f"{roi}__propagated") == 1.0:
        return {**row, "status": "warning", "reason": row["reason"] + "; the planning contour was propagated instead"}
    return row


def cohort_features(root: str | Path, tp: TimePointSettings, specs: Sequence[RoiSpec], params: Mapping[str, Any],
                    prop: PropagationSettings, validate: bool = False) -> CohortFeatures:
    """Assign time points and extract every ROI at every assigned scan (see the module docstring)."""
    root = Path(root)
    inputs = scan_inputs(root / "images.tsv", root / "contours.tsv")
    assigned, qc_tp = assign_timepoints(inputs.sheet, tp)
    rows, prop_rows, qc = [], [], list(qc_tp.to_dict("records"))
    for scan_id in assigned["scan_id"]:
        row, p, q = scan_row(inputs, assigned, scan_id, specs, params, prop, validate)
        rows.append(row)
        prop_rows += p
        qc += q
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


@dataclass
class DeltaTables:
    """The delta stage: repeatability coefficients, changes, the feature selection and QC rows."""

    rc: pd.DataFrame
    delta: pd.DataFrame
    selection: pd.DataFrame
    qc: pd.DataFrame


def feature_columns(features: pd.DataFrame) -> list[str]:
    """The ROI-prefixed feature columns of a longitudinal feature table (not the keys, not the flags)."""
    return [c for c in features.columns if c not in KEYS and not c.endswith("__propagated")]


def delta_tables(features: pd.DataFrame, settings: DeltaSettings) -> DeltaTables:
    """RC from the retest pairs, gated changes from baseline and the features kept for modelling."""
    feats = feature_columns(features)
    base = features[(features["role"] == "timepoint") & (features["timepoint_index"] == 0)].set_index("patient_id")
    ret = features[features["role"] == "retest"].set_index("patient_id")
    pairs = sorted(set(base.index) & set(ret.index))
    rc = rc_from_retest(base.loc[pairs, feats], ret.loc[pairs, feats])
    tp = features[features["role"] == "timepoint"][["patient_id", "timepoint", "timepoint_index", "days", *feats]]
    delta = delta_table(tp, rc, settings)
    return DeltaTables(rc, delta, select_delta_features(delta, settings), qc_frame(missing_baseline_qc(tp)))


def delta_models(features: pd.DataFrame, tables: DeltaTables, assigned: pd.DataFrame, clinical: pd.DataFrame,
                 landmark: str, study: StudySettings, tumour: str = "gtv", time_column: str = "os_months",
                 event_column: str = "os_event", endpoint: str = "survival", label_column: str = "xerostomia",
                 ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Landmark outcome and the four-model comparison (baseline / delta / baseline + delta / relative
    tumour volume change): survival from the landmark (``endpoint`` ``survival``) or the 0 / 1
    ``label_column`` (``binary``). Returns ``(landmark table, performance, predictions, qc)``."""
    feats = feature_columns(features)
    base = features[(features["role"] == "timepoint") & (features["timepoint_index"] == 0)].set_index("patient_id")
    kept = tables.selection.loc[tables.selection["kept"], "feature"].tolist()
    dm = delta_matrix(tables.delta, landmark, kept)
    vol = f"{tumour}__original_shape_MeshVolume"
    d = tables.delta
    rtvc = d[(d["timepoint"] == landmark) & (d["feature"] == vol)].set_index("patient_id")["rel_change"]
    if endpoint == "binary":
        lm, qc_lm = label_dataset(clinical, assigned, landmark, label_column)
    else:
        lm, qc_lm = landmark_dataset(clinical, assigned, landmark, time_column, event_column)
    perf, preds = compare_delta_models(model_blocks(base[feats], dm, rtvc), lm, study)
    return lm, perf, preds, qc_lm


def delta_study(cf: CohortFeatures, clinical: pd.DataFrame, landmark: str, delta_settings: DeltaSettings,
                study: StudySettings, tumour: str = "gtv", time_column: str = "os_months",
                event_column: str = "os_event", endpoint: str = "survival", label_column: str = "xerostomia",
                ) -> DeltaStudy:
    """:func:`delta_tables` then :func:`delta_models` on a :class:`CohortFeatures`."""
    t = delta_tables(cf.features, delta_settings)
    lm, perf, preds, qc_lm = delta_models(cf.features, t, cf.assigned, clinical, landmark, study, tumour,
                                          time_column, event_column, endpoint, label_column)
    return DeltaStudy(t.rc, t.delta, t.selection, lm, perf, preds, pd.concat([t.qc, qc_lm], ignore_index=True))
