"""A generated cohort with the faults of real clinical exports, for end-to-end QC tests.

:func:`generate_faulty_cohort` writes the synthetic demo cohort
(:func:`radsurv.synthetic.demo.generate_demo_cohort`) and then breaks it the way real
exports are broken, one fault per patient, so that a test can check that each
problem yields its QC row and every good patient completes. The faults (also
written to ``faults.json``):

=========  ===============================================================  =========================
patient    fault                                                            expected QC (stage)
=========  ===============================================================  =========================
RSD-004    second study 90 days after the first (a later time point)        none; label ``follow-up``
RSD-005    decoys: a localizer and a second reconstruction (lung kernel)    warnings (discovery)
           of the same study, neither referenced by the RTSTRUCT
RSD-006    a missing slice in the middle of the CT (not referenced)         excluded (conversion)
RSD-007    a truncated CT file (cut inside the pixel data)                  warning + excluded (discovery)
RSD-008    no RTSTRUCT at all                                               excluded (discovery)
RSD-009    RTSTRUCT without a matching ROI (GTV renamed 'Tumour')           excluded (conversion)
RSD-010    RTSTRUCT referencing a series that is not in the export          excluded (discovery)
RSD-011    GTV contour outside the image field of view (z + 1 m)            excluded (conversion)
RSD-012    clinical: survival time missing                                  excluded (clinical)
RSD-013    clinical: negative survival time                                 excluded (clinical)
RSD-014    clinical: event '2' (not binary)                                 excluded (clinical)
RSD-015    clinical: images but no outcome row                              excluded (clinical)
RSD-099    clinical: an outcome row without images (unknown id)             warning (clinical)
(none)     junk: text, hidden, empty, DICOMDIR and non-DICOM binary files   warnings (discovery)
=========  ===============================================================  =========================

Patients RSD-001..003 (test-retest pairs within days) and RSD-016 are good.
Everything is deterministic from ``seed``.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pydicom
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from radsurv.synthetic.demo import generate_demo_cohort
from radsurv.synthetic.dicom_writer import MEDIA_STORAGE_DIRECTORY, file_meta, set_tags
from radsurv.synthetic.truth import demo_uid

log = logging.getLogger(__name__)

N_PATIENTS, N_RETEST = 16, 4
#: A small grid (fast), large enough for the demo phantom.
GEOMETRY = {"rows": 128, "cols": 128, "pixel_spacing": 1.6, "n_slices": 34, "slice_thickness": 2.5}
GOOD = ("RSD-001", "RSD-002", "RSD-003", "RSD-004", "RSD-005", "RSD-016")

FAULTS: list[dict[str, str]] = [
    {"patient_id": "RSD-004", "fault": "second study 90 days later", "stage": "", "status": ""},
    {"patient_id": "RSD-005", "fault": "decoy localizer and second reconstruction", "stage": "discovery",
     "status": "warning"},
    {"patient_id": "RSD-006", "fault": "missing slice", "stage": "conversion", "status": "excluded"},
    {"patient_id": "RSD-007", "fault": "truncated file", "stage": "discovery", "status": "excluded"},
    {"patient_id": "RSD-008", "fault": "no RTSTRUCT", "stage": "discovery", "status": "excluded"},
    {"patient_id": "RSD-009", "fault": "no matching ROI", "stage": "conversion", "status": "excluded"},
    {"patient_id": "RSD-010", "fault": "reference to an absent series", "stage": "discovery",
     "status": "excluded"},
    {"patient_id": "RSD-011", "fault": "contour outside the field of view", "stage": "conversion",
     "status": "excluded"},
    {"patient_id": "RSD-012", "fault": "missing survival time", "stage": "clinical", "status": "excluded"},
    {"patient_id": "RSD-013", "fault": "negative survival time", "stage": "clinical", "status": "excluded"},
    {"patient_id": "RSD-014", "fault": "non-binary event", "stage": "clinical", "status": "excluded"},
    {"patient_id": "RSD-015", "fault": "images but no outcome", "stage": "clinical", "status": "excluded"},
    {"patient_id": "RSD-099", "fault": "outcome but no images", "stage": "clinical", "status": "warning"},
    {"patient_id": "", "fault": "junk files", "stage": "discovery", "status": "warning"},
]


def _ct_files(dicom: Path, pid: str, study: int = 1) -> list[Path]:
    return sorted((dicom / pid / str(study) / "CT").glob("*.dcm"))


def _rtstruct(dicom: Path, pid: str, study: int = 1) -> Path:
    return dicom / pid / str(study) / "RTSTRUCT" / "0001.dcm"


def _drop_image_refs(rs: pydicom.Dataset, drop: set[str] | None = None, replace: dict[str, str] | None = None) -> None:
    """Remove (``drop``) or rewrite (``replace``) referenced SOP instance UIDs everywhere in an RTSTRUCT."""
    def fix(seq_owner: Dataset) -> None:
        items = list(seq_owner.get("ContourImageSequence", []) or [])
        kept = []
        for it in items:
            uid = str(it.ReferencedSOPInstanceUID)
            if drop is not None and uid in drop:
                continue
            if replace is not None and uid in replace:
                it.ReferencedSOPInstanceUID = replace[uid]
            kept.append(it)
        if "ContourImageSequence" in seq_owner:
            seq_owner.ContourImageSequence = DicomSequence(kept)

    for frame in rs.ReferencedFrameOfReferenceSequence:
        for study in frame.RTReferencedStudySequence:
            for ser in study.RTReferencedSeriesSequence:
                fix(ser)
    for rc in rs.ROIContourSequence:
        for c in rc.get("ContourSequence", []) or []:
            fix(c)


def _copy_series(files: list[Path], out: Path, series_uid: str, sop: Callable[[int], str], **changes: Any) -> None:
    """Copy ``files`` into ``out`` as another series: new series UID, SOP UIDs ``sop(1)``, ... and ``changes``."""
    out.mkdir(parents=True, exist_ok=True)
    for n, f in enumerate(files, start=1):
        ds = pydicom.dcmread(f)
        ds.SeriesInstanceUID = series_uid
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop(n)
        set_tags(ds, changes)
        ds.save_as(out / f"{n:04d}.dcm", enforce_file_format=True)


def _shift_dates(folder: Path, days: int) -> None:
    """Move every date of the DICOM files under ``folder`` by ``days``."""
    for f in sorted(folder.rglob("*.dcm")):
        ds = pydicom.dcmread(f)
        for key in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "StructureSetDate"):
            if key in ds and str(ds.get(key)):
                new = datetime.strptime(str(ds.get(key)), "%Y%m%d") + timedelta(days=days)
                setattr(ds, key, new.strftime("%Y%m%d"))
        ds.save_as(f)


# ---------------------------------------------------------------------------
# one fault per patient
# ---------------------------------------------------------------------------
def _later_second_study(dicom: Path) -> None:
    """RSD-004: the second study is a later time point (90 days after the first)."""
    _shift_dates(dicom / "RSD-004" / "2", 90 - _days_apart(dicom, "RSD-004"))


def _decoy_series(dicom: Path, seed: int) -> None:
    """RSD-005: decoy series in the same study and frame of reference, not referenced by the RTSTRUCT."""
    ct5 = _ct_files(dicom, "RSD-005")
    _copy_series(ct5, dicom / "RSD-005" / "1" / "CT_LUNG", demo_uid(seed, 8, 5, 1),
                 lambda n: demo_uid(seed, 9, 5, 1, n), SeriesNumber=4, ConvolutionKernel="LUNG",
                 SeriesDescription="THORAX LUNG 2.5 mm")
    _copy_series(ct5[:1], dicom / "RSD-005" / "1" / "SCOUT", demo_uid(seed, 8, 5, 2),
                 lambda n: demo_uid(seed, 9, 5, 2, n), SeriesNumber=1, ImageType=["ORIGINAL", "PRIMARY", "LOCALIZER"])


def _missing_slice(dicom: Path) -> None:
    """RSD-006: a middle slice is missing; the RTSTRUCT does not reference it (as many TPS exports)."""
    ct6 = _ct_files(dicom, "RSD-006")
    gone = ct6[len(ct6) // 2]
    gone_uid = str(pydicom.dcmread(gone, stop_before_pixels=True).SOPInstanceUID)
    gone.unlink()
    rs = pydicom.dcmread(_rtstruct(dicom, "RSD-006"))
    _drop_image_refs(rs, drop={gone_uid})
    rs.save_as(_rtstruct(dicom, "RSD-006"))


def _truncated_file(dicom: Path) -> None:
    """RSD-007: one CT file cut inside its pixel data."""
    f7 = _ct_files(dicom, "RSD-007")[10]
    f7.write_bytes(f7.read_bytes()[: f7.stat().st_size // 2])


def _no_rtstruct(dicom: Path) -> None:
    """RSD-008: no RTSTRUCT."""
    shutil.rmtree(dicom / "RSD-008" / "1" / "RTSTRUCT")


def _renamed_gtv(dicom: Path) -> None:
    """RSD-009: the GTV was named differently: no ROI matches ^GTV."""
    rs = pydicom.dcmread(_rtstruct(dicom, "RSD-009"))
    for roi in rs.StructureSetROISequence:
        if str(roi.ROIName).startswith("GTV"):
            roi.ROIName = "Tumour"
    rs.save_as(_rtstruct(dicom, "RSD-009"))


def _absent_series(dicom: Path, seed: int) -> None:
    """RSD-010: drawn on a series that was not exported (series and image UIDs absent)."""
    rs = pydicom.dcmread(_rtstruct(dicom, "RSD-010"))
    for frame in rs.ReferencedFrameOfReferenceSequence:
        for study in frame.RTReferencedStudySequence:
            for ser in study.RTReferencedSeriesSequence:
                ser.SeriesInstanceUID = demo_uid(seed, 8, 10, 1)
    uids = [str(pydicom.dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in _ct_files(dicom, "RSD-010")]
    _drop_image_refs(rs, replace={u: demo_uid(seed, 9, 10, 1, n) for n, u in enumerate(uids, start=1)})
    rs.save_as(_rtstruct(dicom, "RSD-010"))


def _contour_outside(dicom: Path) -> None:
    """RSD-011: the GTV contour lies 1 m beyond the scanned volume."""
    rs = pydicom.dcmread(_rtstruct(dicom, "RSD-011"))
    gtv = [int(r.ROINumber) for r in rs.StructureSetROISequence if str(r.ROIName).startswith("GTV")]
    for rc in rs.ROIContourSequence:
        if int(rc.ReferencedROINumber) in gtv:
            for c in rc.ContourSequence:
                pts = [float(v) for v in c.ContourData]
                c.ContourData = [f"{v + 1000.0 if i % 3 == 2 else v:.4f}" for i, v in enumerate(pts)]
    rs.save_as(_rtstruct(dicom, "RSD-011"))


def _junk_files(dicom: Path, seed: int) -> None:
    """Text, hidden, empty, non-DICOM binary files and an empty DICOMDIR."""
    (dicom / "README.txt").write_text("exported by PACS, do not edit\n")
    (dicom / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (dicom / "RSD-016" / "empty.dcm").write_bytes(b"")
    (dicom / "RSD-001" / "export.log").write_text("transfer complete\n")
    (dicom / "RSD-002" / "IMG0001").write_bytes(bytes(range(256)) * 8)  # binary, not DICOM
    dd = Dataset()
    dd.file_meta = file_meta(MEDIA_STORAGE_DIRECTORY, demo_uid(seed, 8, 0, 0, 1))
    dd.FileSetID = "EXPORT"
    dd.DirectoryRecordSequence = DicomSequence([])
    dd.save_as(dicom / "DICOMDIR", enforce_file_format=True)


def _clinical_faults(clinical_csv: Path) -> None:
    """RSD-012..015 and RSD-099: missing, negative, non-binary, absent and image-less outcomes."""
    clin = pd.read_csv(clinical_csv, dtype=str, keep_default_na=False)
    clin.loc[clin.patient_id == "RSD-012", "os_months"] = ""
    clin.loc[clin.patient_id == "RSD-013", "os_months"] = "-3.5"
    clin.loc[clin.patient_id == "RSD-014", "os_event"] = "2"
    clin = clin[clin.patient_id != "RSD-015"]
    extra = {c: "" for c in clin.columns} | {"patient_id": "RSD-099", "os_months": "12.0", "os_event": "1"}
    clin = pd.concat([clin, pd.DataFrame([extra])], ignore_index=True)
    clin.to_csv(clinical_csv, index=False, lineterminator="\n")


def generate_faulty_cohort(out_dir: Path, seed: int = 7) -> dict[str, Any]:
    """Write the faulty cohort under ``out_dir`` (``dicom/``, ``clinical.csv``, ``faults.json``)."""
    out_dir = Path(out_dir)
    summary = generate_demo_cohort(out_dir, n_patients=N_PATIENTS, n_retest=N_RETEST, seed=seed, **GEOMETRY)
    dicom = out_dir / "dicom"
    _later_second_study(dicom)
    _decoy_series(dicom, seed)
    _missing_slice(dicom)
    _truncated_file(dicom)
    _no_rtstruct(dicom)
    _renamed_gtv(dicom)
    _absent_series(dicom, seed)
    _contour_outside(dicom)
    _junk_files(dicom, seed)
    _clinical_faults(summary["clinical_csv"])
    (out_dir / "faults.json").write_text(json.dumps(FAULTS, indent=1) + "\n")
    log.info("faulty cohort written to %s", out_dir)
    return {**summary, "faults": FAULTS, "good": list(GOOD)}


def _days_apart(dicom: Path, pid: str) -> int:
    """Days between the first and the second study of ``pid``."""
    d1 = pydicom.dcmread(_ct_files(dicom, pid, 1)[0], stop_before_pixels=True).StudyDate
    d2 = pydicom.dcmread(_ct_files(dicom, pid, 2)[0], stop_before_pixels=True).StudyDate
    return (datetime.strptime(str(d2), "%Y%m%d") - datetime.strptime(str(d1), "%Y%m%d")).days
