"""Tiny synthetic series with known values for unit tests: CT, PET and RT structure sets.

The CT is ``NPIX x NPIX`` pixels of 1 mm with its first pixel centre at ``ORIGIN_XY``
and slices ``dz`` mm apart from ``z0`` (default 32 x 32, origin (-16, -16), 2 mm from
z = 0); stored value ``1024 + 10 * k + row`` with RescaleIntercept -1024, so every voxel
value is known exactly. UIDs not given are random (:func:`pydicom.uid.generate_uid`),
as in a real export. The files are written by :mod:`radsurv.synthetic.dicom_writer`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import generate_uid

from radsurv.synthetic.dicom_writer import (
    CT_IMAGE_STORAGE,
    MONOCHROME_16BIT,
    PET_IMAGE_STORAGE,
    Contour,
    ImageSlice,
    Roi,
    StructureSetRefs,
    write_rtstruct,
    write_series,
)

__all__ = ["circle", "make_ct", "make_pet", "make_rtstruct", "square"]

NPIX = 32
ORIGIN_XY = (-16.0, -16.0)
DZ = 2.0

#: The planted PET: F-18 FDG, injected 10:00:00, series start 11:00:00.
F18_HALF_LIFE_S = 6586.2
PET_WEIGHT_KG, PET_DOSE_BQ = 70.0, 370e6
PET_CONC_BQML = 9000.0


def base_tags(modality: str, patient_id: str, study_uid: str, series_uid: str, study_date: str, study_time: str,
              phi: dict[str, str] | None) -> dict[str, Any]:
    """Patient, study and series tags of every file; ``phi`` may give name, birth, accession, institution."""
    phi = phi or {}
    return {
        "Modality": modality,
        "PatientID": patient_id,
        "PatientName": phi.get("name", "Anon^Synthetic"),
        "PatientBirthDate": phi.get("birth", ""),
        "AccessionNumber": phi.get("accession", ""),
        "InstitutionName": phi.get("institution", ""),
        "StudyInstanceUID": study_uid,
        "SeriesInstanceUID": series_uid,
        "StudyDate": study_date,
        "StudyTime": study_time,
        "Manufacturer": "SynthCo",
        "ManufacturerModelName": "Synth-1",
    }


def _ct_header(base: dict[str, Any], frame_uid: str, image_type: tuple[str, ...], series_number: int,
               study_time: str, dz: float) -> dict[str, Any]:
    """The tags shared by every slice of the tiny CT."""
    return {
        **base,
        "ImageType": list(image_type),
        "FrameOfReferenceUID": frame_uid,
        "SeriesNumber": series_number,
        "AcquisitionTime": study_time,
        "ImageOrientationPatient": [1, 0, 0, 0, 1, 0],
        "PixelSpacing": [1.0, 1.0],
        "SliceThickness": dz,
        "ConvolutionKernel": "B30f",
        "Rows": NPIX,
        "Columns": NPIX,
        **MONOCHROME_16BIT,
        "RescaleIntercept": -1024,
        "RescaleSlope": 1,
    }


def _ct_pixels(k: int) -> bytes:
    """Stored values of slice ``k``: ``1024 + 10 * k + row``."""
    return (1024 + 10 * k + np.arange(NPIX)[:, None] + np.zeros((1, NPIX))).astype(np.uint16).tobytes()


def _ct_series(
    *, patient_id: str, study_uid: str | None, series_uid: str | None, frame_uid: str | None, study_date: str,
    study_time: str, n_slices: int, skip: tuple[int, ...], dz: float, z0: float, image_type: tuple[str, ...],
    phi: dict[str, str] | None, names: str, series_number: int,
) -> tuple[dict[str, Any], dict[str, Any], list[ImageSlice]]:
    """The UIDs (study, series, frame), the shared header and the slices of :func:`make_ct`."""
    uids = {"study_uid": study_uid or generate_uid(), "series_uid": series_uid or generate_uid(),
            "frame_uid": frame_uid or generate_uid()}
    base = base_tags("CT", patient_id, uids["study_uid"], uids["series_uid"], study_date, study_time, phi)
    header = _ct_header(base, uids["frame_uid"], image_type, series_number, study_time, dz)
    slices = [ImageSlice(names.format(k=k), generate_uid(), _ct_pixels(k),
                         {"InstanceNumber": k + 1, "ImagePositionPatient": [ORIGIN_XY[0], ORIGIN_XY[1], z0 + k * dz]})
              for k in range(n_slices) if k not in skip]
    return uids, header, slices


def make_ct(
    folder: Path,
    *,
    patient_id: str = "P001",
    study_uid: str | None = None,
    series_uid: str | None = None,
    frame_uid: str | None = None,
    study_date: str = "20200101",
    study_time: str = "120000",
    n_slices: int = 10,
    skip: tuple[int, ...] = (),
    dz: float = DZ,
    z0: float = 0.0,
    image_type: tuple[str, ...] = ("ORIGINAL", "PRIMARY", "AXIAL"),
    phi: dict[str, str] | None = None,
    names: str = "ct_{k:03d}.dcm",
    series_number: int = 1,
) -> dict[str, object]:
    """A tiny CT series; stored value = 1024 + 10*k + row, RescaleIntercept = -1024.

    Slices in ``skip`` are not written. Returns the study, series and frame UIDs and the
    written slices' SOP instance UIDs (``sops``) and paths (``files``).
    """
    uids, header, slices = _ct_series(
        patient_id=patient_id, study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
        study_date=study_date, study_time=study_time, n_slices=n_slices, skip=skip, dz=dz, z0=z0,
        image_type=image_type, phi=phi, names=names, series_number=series_number)
    files = write_series(Path(folder), CT_IMAGE_STORAGE, header, slices)
    return {**uids, "sops": [s.sop_uid for s in slices], "files": files}


def square(x0: float, x1: float, y0: float, y1: float, z: float) -> np.ndarray:
    """The axis-aligned rectangle ``[x0, x1] x [y0, y1]`` at height ``z`` as a (4, 3) polygon."""
    return np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]], dtype=float)


def circle(cx: float, cy: float, r: float, z: float, n: int = 720) -> np.ndarray:
    """A circle of radius ``r`` around ``(cx, cy)`` at height ``z`` as an (n, 3) polygon."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t), np.full(n, z)])


def make_rtstruct(
    path: Path,
    ct: dict[str, object] | None,
    rois: list[tuple[int, str, list[np.ndarray]]],
    *,
    patient_id: str = "P001",
    ss_date: str = "20200102",
    ss_time: str = "090000",
    ref_series: bool = True,
    ref_images: bool = True,
    series_uid_override: str | None = None,
    phi: dict[str, str] | None = None,
) -> Path:
    """An RTSTRUCT on ``ct`` (a :func:`make_ct` result, or None for one referring to nothing
    that exists) with ``rois`` ``(number, name, polygons)``.

    ``ref_series`` False leaves out the referenced study / series, ``ref_images`` False the
    referenced images; ``series_uid_override`` refers to another series.
    """
    sop = generate_uid()
    study_uid = str(ct["study_uid"]) if ct else generate_uid()
    tags = {**base_tags("RTSTRUCT", patient_id, study_uid, generate_uid(), "20200101", "120000", phi),
            "StructureSetLabel": "synthetic", "StructureSetDate": ss_date, "StructureSetTime": ss_time}
    refs = StructureSetRefs(frame_uid=str(ct["frame_uid"]) if ct else generate_uid())
    if ref_series:
        series_uid = series_uid_override or (str(ct["series_uid"]) if ct else generate_uid())
        images = list(ct["sops"]) if ref_images and ct else None  # type: ignore[call-overload]
        refs = StructureSetRefs(refs.frame_uid, study_uid, series_uid, images)
    return write_rtstruct(Path(path), sop, tags, refs,
                          [Roi(number, name, [Contour(poly) for poly in polys]) for number, name, polys in rois])


def _pet_tags(k: int, *, decay_correction: str, units: str, weight: float | None, start_dt: bool,
              series_time: str, acq_step_s: int) -> dict[str, Any]:
    """The PET tags of slice ``k``: its own RescaleSlope, AcquisitionTime, units, decay correction
    and the radiopharmaceutical."""
    rp = Dataset()
    rp.Radiopharmaceutical = "Fluorodeoxyglucose"
    rp.RadionuclideTotalDose = PET_DOSE_BQ
    rp.RadionuclideHalfLife = F18_HALF_LIFE_S
    rp.RadiopharmaceuticalStartTime = "100000"
    if start_dt:
        rp.RadiopharmaceuticalStartDateTime = "20220301100000"
    t = 11 * 3600 + k * acq_step_s
    tags = {
        "Modality": "PT",
        "RescaleSlope": f"{0.5 + 0.25 * k:g}",
        "RescaleIntercept": 0,
        "Units": units,
        "DecayCorrection": decay_correction,
        "CorrectedImage": ["ATTN", "DECY"] if decay_correction != "NONE" else ["ATTN"],
        "SeriesDate": "20220301",
        "SeriesTime": series_time,
        "AcquisitionDate": "20220301",
        "AcquisitionTime": f"{t // 3600:02d}{t % 3600 // 60:02d}{t % 60:02d}",
        "RadiopharmaceuticalInformationSequence": DicomSequence([rp]),
    }
    if weight is not None:
        tags["PatientWeight"] = weight
    return tags


def make_pet(folder: Path, *, decay_correction: str = "START", units: str = "BQML",
             weight: float | None = PET_WEIGHT_KG, start_dt: bool = True, series_time: str = "110000",
             acq_step_s: int = 0) -> dict[str, object]:
    """A constant ``PET_CONC_BQML`` PET series on the tiny CT grid, injected 10:00:00, series start 11:00:00.

    Each slice stores CONC/slope with its own RescaleSlope (as scanners do).
    ``acq_step_s`` spaces the slices' AcquisitionTime (for DecayCorrection NONE).
    Returns what :func:`make_ct` returns.
    """
    uids, header, ct_slices = _ct_series(
        patient_id="P001", study_uid=None, series_uid=None, frame_uid=None, study_date="20220301",
        study_time="093000", n_slices=10, skip=(), dz=DZ, z0=0.0, image_type=("ORIGINAL", "PRIMARY", "AXIAL"),
        phi=None, names="ct_{k:03d}.dcm", series_number=1)
    slices = []
    for k, s in enumerate(ct_slices):
        tags = _pet_tags(k, decay_correction=decay_correction, units=units, weight=weight, start_dt=start_dt,
                         series_time=series_time, acq_step_s=acq_step_s)
        pixels = np.full((NPIX, NPIX), round(PET_CONC_BQML / (0.5 + 0.25 * k)), dtype=np.uint16).tobytes()
        slices.append(ImageSlice(s.file_name, s.sop_uid, pixels, {**s.tags, **tags}))
    files = write_series(Path(folder), PET_IMAGE_STORAGE, header, slices)
    return {**uids, "sops": [s.sop_uid for s in slices], "files": files}
