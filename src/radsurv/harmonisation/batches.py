"""Batch labels for harmonisation: a clinical column and/or the scanner facts ingestion records.

Ingestion writes one ``results/scans/<scan>/converted/provenance.json`` per scan
(:func:`radsurv.ingest.convert.convert_scan`) with, among others, ``manufacturer``
(DICOM Manufacturer), ``model`` (ManufacturerModelName), ``kernel``
(ConvolutionKernel), ``slice_thickness_mm`` (the SliceThickness tag) and ``spacing``
(x, y, z in mm; the slice *spacing* ``spacing[2]``, the distance between reconstructed
slices, is offered as ``slice_spacing_mm``). Image-sheet scans have empty scanner fields.

Modelling uses each patient's first analysable scan (lowest ``session``; see
:func:`radsurv.features.table.modelling_matrix`), so a patient's acquisition facts are taken
from that same scan.

A batch label combines the chosen sources into one text, e.g.
``centre=A | manufacturer=SIEMENS | kernel=B30f``; a patient with any chosen fact
missing gets no label and a QC row. :func:`batch_counts` gives the patients per batch
(for the report) and marks batches too small to estimate.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from radsurv.qc import qc_row

__all__ = ["ACQUISITION_FIELDS", "UNKNOWN", "read_acquisition_facts", "patient_acquisition_facts",
           "converted_acquisition_facts", "batch_labels", "batch_counts", "batch_qc_rows", "robustness_groups"]

#: The batch of a patient whose batch is not known, where every patient needs one (robustness ICC).
UNKNOWN = "(unknown)"

#: Acquisition facts a batch can be built from (keys of provenance.json, plus the slice spacing).
ACQUISITION_FIELDS = ("manufacturer", "model", "kernel", "slice_thickness_mm", "slice_spacing_mm")

#: Fields that are numbers in mm (rounded to ``spacing_decimals`` in a label).
_MM_FIELDS = ("slice_thickness_mm", "slice_spacing_mm")

STAGE = "harmonisation"


def _fact(prov: Mapping[str, Any], field: str) -> Any:
    if field == "slice_spacing_mm":
        sp = prov.get("spacing") or []
        return float(sp[2]) if len(sp) >= 3 and sp[2] is not None else np.nan
    if field == "slice_thickness_mm":
        v = prov.get("slice_thickness_mm")
        return float(v) if v is not None else np.nan
    v = prov.get(field, "")
    return str(v).strip() if v is not None else ""


def read_acquisition_facts(scans_dir: str | Path, scan_ids: Iterable[str] | None = None) -> pd.DataFrame:
    """Acquisition facts of every converted scan under ``scans_dir`` (``results/scans``).

    Args:
        scans_dir: folder with one ``<scan>/converted/provenance.json`` per scan.
        scan_ids: only these scans (default: every scan with a provenance file).

    Returns:
        One row per scan: ``scan_id, patient_id, modality`` and :data:`ACQUISITION_FIELDS`
        (text; slice spacing in mm as a number). Scans without a provenance file
        (conversion failed) are absent.
    """
    root = Path(scans_dir)
    files = ([root / s / "converted" / "provenance.json" for s in scan_ids] if scan_ids is not None
             else sorted(root.glob("*/converted/provenance.json")))
    rows = []
    for f in files:
        if not f.is_file():
            continue
        prov = json.loads(f.read_text())
        row = {"scan_id": str(prov.get("scan_id", f.parent.parent.name)), "patient_id": str(prov.get("patient_id", "")),
               "modality": str(prov.get("modality", ""))}
        row.update({k: _fact(prov, k) for k in ACQUISITION_FIELDS})
        rows.append(row)
    return pd.DataFrame(rows, columns=["scan_id", "patient_id", "modality", *ACQUISITION_FIELDS])


def patient_acquisition_facts(facts: pd.DataFrame, scans: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: the facts of the scan modelling uses (lowest ``session``).

    Args:
        facts: :func:`read_acquisition_facts`.
        scans: ``scan_id, patient_id, session`` of the analysable scans (the feature
            table's index columns, or ``results/ingest/scans.tsv``).

    Returns:
        Indexed by ``patient_id``, with ``scan_id`` and the acquisition fields.
    """
    s = scans[["scan_id", "patient_id", "session"]].copy()
    s["scan_id"] = s["scan_id"].astype(str)
    s["session"] = pd.to_numeric(s["session"], errors="coerce")
    m = s.merge(facts.drop(columns=["patient_id"]), on="scan_id", how="inner")
    first = m.sort_values(["patient_id", "session", "scan_id"], kind="mergesort").groupby("patient_id").head(1)
    return first.set_index("patient_id").drop(columns=["session"]).sort_index()


def converted_acquisition_facts(converted: Sequence[str | Path] | str | None, scans: pd.DataFrame) -> pd.DataFrame:
    """Each patient's acquisition facts from the rule's ``converted`` scan folders
    (``results/scans/<scan>/converted``; none given: every scan under ``results/scans``), taken
    from the scan modelling uses (:func:`patient_acquisition_facts` with ``scans``)."""
    dirs = [converted] if isinstance(converted, (str, Path)) else list(converted or [])
    facts = read_acquisition_facts(Path(dirs[0]).parent.parent if dirs else "results/scans",
                                   [Path(d).parent.name for d in dirs] if dirs else None)
    return patient_acquisition_facts(facts, scans)


def _spacing_text(v: Any, decimals: int) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return ""
    return "" if not np.isfinite(f) else f"{round(f, decimals):g} mm"


def batch_labels(
    patients: Sequence[str],
    clinical: pd.DataFrame | None = None,
    clinical_column: str | None = None,
    id_column: str = "patient_id",
    facts: pd.DataFrame | None = None,
    fields: Sequence[str] = (),
    spacing_decimals: int = 1,
) -> tuple[pd.Series, list[dict[str, str]]]:
    """Each patient's batch label from a clinical column and/or acquisition facts.

    Args:
        patients: patient ids to label (the modelling cohort).
        clinical: clinical table (one row per patient) with ``id_column``.
        clinical_column: its batch column, e.g. the centre.
        facts: :func:`patient_acquisition_facts` (indexed by patient id).
        fields: which of :data:`ACQUISITION_FIELDS` to combine.
        spacing_decimals: slice spacing is rounded to this many decimals (so 2.9999 and
            3.0 mm are one batch).

    Returns:
        ``(labels, qc_rows)``: a Series indexed by patient (``None`` where a chosen fact
        is missing) and one QC warning row per unlabelled patient.
    """
    unknown = [f for f in fields if f not in ACQUISITION_FIELDS]
    if unknown:
        raise ValueError(f"unknown acquisition field(s) {unknown}; choose from {list(ACQUISITION_FIELDS)}")
    if not clinical_column and not fields:
        raise ValueError("a batch needs a clinical column (e.g. the centre) and/or acquisition fields")
    if fields and facts is None:
        raise ValueError("acquisition fields were chosen but no acquisition facts were given")
    ids = [str(p) for p in patients]
    parts: dict[str, pd.Series] = {}
    if clinical_column:
        if clinical is None or clinical_column not in clinical.columns:
            raise ValueError(f"the clinical table has no column {clinical_column!r} for the batch")
        c = clinical.assign(_id=clinical[id_column].astype(str)).drop_duplicates("_id").set_index("_id")
        parts[clinical_column] = c[clinical_column].reindex(ids).map(
            lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip())
    for f in fields:
        col = facts[f].reindex(ids)  # type: ignore[index]
        parts[f] = (col.map(lambda v: _spacing_text(v, spacing_decimals)) if f in _MM_FIELDS
                    else col.map(lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)))
    labels: dict[str, str | None] = {}
    qc: list[dict[str, str]] = []
    for pid in ids:
        vals = {k: s.get(pid, "") for k, s in parts.items()}
        vals = {k: ("" if v is None or (isinstance(v, float) and np.isnan(v)) else v) for k, v in vals.items()}
        missing = [k for k, v in vals.items() if v == ""]
        if missing:
            labels[pid] = None
            qc.append(qc_row(pid, "", STAGE, "warning",
                             f"batch unknown: {', '.join(missing)} not recorded for this patient, so its features "
                             f"cannot be harmonised"))
        else:
            joined = " | ".join(f"{k}={v}" for k, v in vals.items())
            labels[pid] = joined if len(vals) > 1 else next(iter(vals.values()))
    return pd.Series(labels, name="batch", dtype=object), qc


def batch_counts(labels: pd.Series, min_batch_size: int = 3, event: pd.Series | None = None) -> pd.DataFrame:
    """Patients (and events, when given) per batch, for the report.

    Returns:
        ``batch, n_patients, [n_events,] estimable`` (``n_patients >= min_batch_size``),
        largest batch first; unlabelled patients as batch ``(unknown)``.
    """
    lab = labels.astype(object).where(labels.notna(), "(unknown)")
    out = lab.value_counts().rename_axis("batch").reset_index(name="n_patients")
    if event is not None:
        ev = pd.Series(np.asarray(event, dtype=float), index=labels.index)
        out["n_events"] = out["batch"].map(ev.groupby(lab).sum()).astype(int)
    out["estimable"] = (out["n_patients"] >= int(min_batch_size)) & (out["batch"] != "(unknown)")
    return out.sort_values(["n_patients", "batch"], ascending=[False, True], kind="mergesort").reset_index(drop=True)


def batch_qc_rows(labels: pd.Series, min_batch_size: int = 3) -> list[dict[str, str]]:
    """One QC warning per patient of a batch smaller than ``min_batch_size`` (the whole cohort)."""
    counts = labels.dropna().value_counts()
    small = counts[counts < int(min_batch_size)]
    return [qc_row(str(pid), "", STAGE, "warning",
                   f"batch '{b}' has only {int(small[b])} patient(s) (< {int(min_batch_size)}): too small for ComBat "
                   f"to estimate, these features stay uncorrected or the patient is refused (unseen-batch policy)")
            for pid, b in labels.dropna().items() if b in small.index]


def robustness_groups(patients: Sequence[str], clinical: pd.DataFrame | None, settings: Any,
                      facts: pd.DataFrame | None = None) -> pd.Series:
    """Each patient's batch for the robustness ICCs (subjects nested in batches).

    The label is the one ComBat uses (:func:`batch_labels` with the harmonisation settings'
    clinical column and acquisition fields; ``facts`` from :func:`patient_acquisition_facts`);
    a patient without one is put in the batch :data:`UNKNOWN` (the ICC needs every patient in
    a batch; such patients are QC rows of rule ``harmonisation_batches``).
    """
    labels, _ = batch_labels(patients, clinical, settings.batch_column, "patient_id", facts, settings.acquisition)
    return labels.fillna(UNKNOWN).astype(object).rename("batch")
