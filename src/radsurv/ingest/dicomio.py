"""DICOM input: series discovery and conversion of (image series, contour) pairs to NIfTI.

Two steps, both free of patient-identifying information (PHI) in their outputs:

1. :func:`discover` walks an arbitrary folder tree, groups image instances
   (CT/MR/PT) by SeriesInstanceUID and pairs every RTSTRUCT / DICOM-SEG with
   the image series it *references* (never by guessing from the patient or the
   frame of reference, so localizers and second reconstructions are never
   picked). Each pair is one *scan*, numbered per patient in time order
   (``{patient}_S1``, ``_S2``, ...). Problems become QC rows, not crashes.
2. :func:`convert_scan` converts one scan to an image NIfTI and a uint8 mask
   NIfTI on exactly the same grid, after checking the slice geometry.

Only the PatientID (the cohort id), pseudonyms of the UIDs
(:func:`radsurv.privacy.uid_pseudonym`; the UIDs themselves are used only inside
this module, to pair contours with images), modality, equipment and acquisition
parameters are written anywhere. Absolute dates are used solely to order
sessions and to compute ``days_from_first``; they never leave this module.

Rasterisation of RTSTRUCT contours: each contour point is mapped to a
continuous voxel index (the same affine SimpleITK's
``TransformPhysicalPointToContinuousIndex`` uses, so oblique orientations are
handled); the contour is assigned to the slice whose plane it lies on; a voxel
is inside when its *centre* lies inside the polygon (no boundary rim is
added). Polygons on the same slice are combined with the even-odd rule (XOR),
so holes and separate islands both work.

HU for CT: SimpleITK/GDCM applies RescaleSlope/RescaleIntercept of every file
while reading. :func:`convert_scan` verifies this against pydicom's modality
LUT on the first, middle and last slice whenever pydicom can decode the pixel
data, and writes CT as int16 when all values are integral and fit, else float32.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import math
import os
import re
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import SimpleITK as sitk
from matplotlib.path import Path as MplPath
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from radsurv.errors import CaseError
from radsurv.features.preprocess import array_bbox
from radsurv.privacy import file_pseudonym, uid_pseudonym
from radsurv.qc import qc_row, write_qc

log = logging.getLogger(__name__)

STAGE_DISCOVERY = "discovery"
STAGE_CONVERSION = "conversion"

IMAGE_MODALITIES = ("CT", "MR", "PT")
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"
ROI_POLICIES = ("first", "largest", "union", "error")

#: Columns of the scans TSV: the ScanRecord fields without any path (the files are read
#: through the private manifests); ``contour_file_id`` is the contour file's
#: :func:`radsurv.privacy.file_pseudonym`.
SCAN_COLUMNS = [
    "scan_id",
    "patient_id",
    "session",
    "days_from_first",
    "hours_from_first",
    "study_number",
    "label",
    "modality",
    "series_uid",
    "study_uid",
    "n_images",
    "contour_type",
    "contour_file_id",
]


# ---------------------------------------------------------------------------
# Data classes
# ---------------------------------------------------------------------------


@dataclass
class ScanRecord:
    """One analysable scan: an image series and the contour object that references it.

    ``image_files``, ``contour_file`` and ``cohort_root`` are absolute input paths: they
    live only in the private manifest (``results/ingest/private/manifests``), never in
    scans.tsv, a QC reason or a log (which name files by :func:`shown_file`).
    """

    scan_id: str
    patient_id: str
    session: int
    days_from_first: int
    modality: str
    #: pseudonyms (:func:`radsurv.privacy.uid_pseudonym`) of the SeriesInstanceUID / StudyInstanceUID
    series_uid: str
    study_uid: str
    n_images: int
    image_files: list[str]
    contour_file: str
    contour_type: str  # "RTSTRUCT" | "SEG" | "MASK" (pre-converted image sheet)
    #: hours between the first scan's and this scan's acquisition (0.0 when undated)
    hours_from_first: float = 0.0
    #: the patient's study (visit) this scan belongs to, 1 = first study in time
    study_number: int = 1
    #: ``baseline`` | ``retest`` | ``follow-up`` | ``repeat`` | ``undated`` (see :func:`scan_label`)
    label: str = "baseline"
    #: image sheet only: the mask label value of the ROI (0 = every non-zero voxel)
    mask_label: int = 0
    #: the cohort folder (DICOM folder, or the image sheet's folder) the files were found in
    cohort_root: str = ""


def shown_file(scan: ScanRecord, path: str | Path) -> str:
    """How outputs name one of ``scan``'s input files: the pseudonym of its path relative to
    the cohort folder (:func:`radsurv.privacy.file_pseudonym`), never a name or a path."""
    p = Path(path)
    if scan.cohort_root:
        try:
            p = p.relative_to(scan.cohort_root)
        except ValueError:
            pass
    return file_pseudonym(p.as_posix())


@dataclass
class Discovery:
    """Result of :func:`discover`: the scans and the QC rows of the discovery stage."""

    scans: list[ScanRecord] = field(default_factory=list)
    qc: list[dict[str, str]] = field(default_factory=list)


@dataclass
class _Instance:
    path: Path
    rel: str
    sop_uid: str
    position: tuple[float, ...] | None
    orientation: tuple[float, ...] | None
    instance_number: int | None
    acquisition_time: str
    acquisition_date: str
    multiframe: bool

    @property
    def shown(self) -> str:
        """How outputs, QC reasons and logs name this file (:func:`radsurv.privacy.file_pseudonym`)."""
        return file_pseudonym(self.rel)


@dataclass
class _Series:
    series_uid: str
    patient_id: str
    study_uid: str
    modality: str
    date: str  # YYYYMMDD or ""  (never written out)
    time: str  # HHMMSS.ffffff or ""
    series_number: int | None
    localizer: bool
    series_time: str = ""
    instances: list[_Instance] = field(default_factory=list)


@dataclass
class _Contour:
    path: Path
    rel: str
    kind: str  # RTSTRUCT | SEG
    patient_id: str
    sop_uid: str
    ref_series: list[str]
    ref_sops: set[str]
    recency: str  # sortable date+time string (never written out)
    n_rois: int
    n_contours: int  # contours with data (RTSTRUCT) or segments (SEG)

    @property
    def shown(self) -> str:
        """How outputs, QC reasons and logs name this file (:func:`radsurv.privacy.file_pseudonym`)."""
        return file_pseudonym(self.rel)


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def safe(text: str) -> str:
    """Make ``text`` safe for file names: keep ``[A-Za-z0-9-]``, replace anything else by ``-``."""
    return re.sub(r"[^A-Za-z0-9-]", "-", str(text))


def _s(ds: pydicom.Dataset, keyword: str, default: str = "") -> str:
    """A DICOM attribute as a stripped string ('' when absent or empty)."""
    value = ds.get(keyword, None)
    if value is None:
        return default
    text = str(value).strip()
    return text if text else default


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _floats(value: Any) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out or None


def _norm_time(value: str) -> str:
    """Pad a DICOM TM so that lexicographic order is time order."""
    digits = value.replace(":", "")
    head, _, frac = digits.partition(".")
    return head.ljust(6, "0") + "." + frac.ljust(6, "0")


def _parse_date(value: str) -> _dt.date | None:
    try:
        return _dt.datetime.strptime(value[:8], "%Y%m%d").date()
    except (TypeError, ValueError):
        return None


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _looks_like_raw_dataset(path: Path) -> bool:
    """True for DICOM written without preamble/'DICM' (starts with a group 0002/0008 tag)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4)
    except OSError:
        return False
    return len(head) == 4 and head[:2] in (b"\x02\x00", b"\x08\x00") and head[3] == 0


def _expected_pixel_bytes(ds: pydicom.Dataset) -> int | None:
    """Bytes of native (uncompressed) pixel data, or None when compressed/unknown."""
    meta = getattr(ds, "file_meta", None)
    ts = _s(meta, "TransferSyntaxUID") if meta is not None else ""
    native = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", ""}
    if ts not in native:
        return None
    rows, cols = _int_or_none(ds.get("Rows")), _int_or_none(ds.get("Columns"))
    bits = _int_or_none(ds.get("BitsAllocated"))
    if not rows or not cols or not bits:
        return None
    spp = _int_or_none(ds.get("SamplesPerPixel")) or 1
    frames = _int_or_none(ds.get("NumberOfFrames")) or 1
    return rows * cols * spp * frames * bits // 8


# ---------------------------------------------------------------------------
# Discovery
# ---------------------------------------------------------------------------


CONTOUR_DATA = Tag(0x3006, 0x0050)


def _has_contour_data(contour: pydicom.Dataset) -> bool:
    """Whether a contour item holds points, without decoding them.

    ContourData is a list of decimal strings (three per vertex, often 100,000+ per
    structure set); decoding it only to test that it is not empty was most of
    discovery's time. Values already decoded (e.g. a dataset built in memory) are
    tested as they are.
    """
    elem = contour.get_item(CONTOUR_DATA)
    if elem is None:
        return False
    if isinstance(elem, RawDataElement):
        return bool(elem.value and elem.value.strip(b"\x00 \\"))
    return not elem.is_empty


def _rtstruct_refs(ds: pydicom.Dataset) -> tuple[list[str], set[str], int, int]:
    """Referenced series UIDs, referenced SOP instance UIDs, #ROIs, #contours with data."""
    series: list[str] = []
    sops: set[str] = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        for study in frame.get("RTReferencedStudySequence", []) or []:
            for ser in study.get("RTReferencedSeriesSequence", []) or []:
                uid = _s(ser, "SeriesInstanceUID")
                if uid and uid not in series:
                    series.append(uid)
                for img in ser.get("ContourImageSequence", []) or []:
                    sop = _s(img, "ReferencedSOPInstanceUID")
                    if sop:
                        sops.add(sop)
    n_contours = 0
    for roi in ds.get("ROIContourSequence", []) or []:
        for contour in roi.get("ContourSequence", []) or []:
            if _has_contour_data(contour):
                n_contours += 1
            for img in contour.get("ContourImageSequence", []) or []:
                sop = _s(img, "ReferencedSOPInstanceUID")
                if sop:
                    sops.add(sop)
    n_rois = len(ds.get("StructureSetROISequence", []) or [])
    return series, sops, n_rois, n_contours


def _seg_refs(ds: pydicom.Dataset) -> tuple[list[str], set[str], int]:
    """Referenced series UIDs, referenced SOP instance UIDs and #segments of a DICOM-SEG."""
    series: list[str] = []
    sops: set[str] = set()
    for ser in ds.get("ReferencedSeriesSequence", []) or []:
        uid = _s(ser, "SeriesInstanceUID")
        if uid and uid not in series:
            series.append(uid)
        for inst in ser.get("ReferencedInstanceSequence", []) or []:
            sop = _s(inst, "ReferencedSOPInstanceUID")
            if sop:
                sops.add(sop)
    groups = list(ds.get("PerFrameFunctionalGroupsSequence", []) or [])
    groups += list(ds.get("SharedFunctionalGroupsSequence", []) or [])
    for group in groups:
        for deriv in group.get("DerivationImageSequence", []) or []:
            for src in deriv.get("SourceImageSequence", []) or []:
                sop = _s(src, "ReferencedSOPInstanceUID")
                if sop:
                    sops.add(sop)
    for src in ds.get("SourceImageSequence", []) or []:
        sop = _s(src, "ReferencedSOPInstanceUID")
        if sop:
            sops.add(sop)
    return series, sops, len(ds.get("SegmentSequence", []) or [])


def _recency(ds: pydicom.Dataset, kind: str) -> str:
    pairs = [("ContentDate", "ContentTime")]
    if kind == "RTSTRUCT":
        pairs.insert(0, ("StructureSetDate", "StructureSetTime"))
    pairs += [("InstanceCreationDate", "InstanceCreationTime"), ("SeriesDate", "SeriesTime")]
    for dkey, tkey in pairs:
        date = _s(ds, dkey)
        if date:
            return date[:8] + _norm_time(_s(ds, tkey))
    return ""


class _TruncatedHeader(Exception):
    """A file with a DICOM preamble whose header ends before the essential attributes."""


def _read_header(path: Path) -> tuple[pydicom.Dataset | None, int]:
    """Header of a DICOM file and the byte offset where it stopped (before the pixel data).

    Returns ``(None, 0)`` for a non-DICOM file; raises for a broken DICOM file.
    """
    with open(path, "rb") as fh:
        try:
            ds = pydicom.dcmread(fh, stop_before_pixels=True)
        except InvalidDicomError:
            if not _looks_like_raw_dataset(path):
                return None, 0
            fh.seek(0)
            ds = pydicom.dcmread(fh, stop_before_pixels=True, force=True)
            if "SOPClassUID" not in ds:
                return None, 0
        offset = fh.tell()
    if "SOPClassUID" not in ds and "Modality" not in ds:
        meta = getattr(ds, "file_meta", None)
        if meta is not None and _s(meta, "MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY_SOP_CLASS:
            return ds, offset
        raise _TruncatedHeader("header ends before SOP Class UID / Modality")
    return ds, offset


@dataclass
class _Examined:
    """What one file contributes to discovery, found without looking at any other file."""

    kind: str  # skip | qc | non_dicom | contour | image | truncated_image
    qc: tuple[str, str, str, str] | None = None  # (patient, scan, status, reason)
    contour: _Contour | None = None
    series: _Series | None = None  # the image's series, without instances
    instance: _Instance | None = None


def _examine(path: Path, root: Path) -> _Examined:
    """Read one file's header and classify it (the per-file part of :func:`discover`)."""
    rel = _rel(path, root)
    shown = file_pseudonym(rel)  # never the path: file and folder names can be UIDs or patient names
    if path.name.upper() == "DICOMDIR":
        log.debug("skipping DICOMDIR %s", shown)
        return _Examined("skip")
    if path.name.startswith("."):
        # Hidden files: OS metadata (.DS_Store, ._* resource forks) and tool markers
        # such as Snakemake's .snakemake_timestamp; never images.
        log.debug("skipping hidden file %s", shown)
        return _Examined("skip")
    try:
        size = path.stat().st_size
    except OSError as exc:
        return _Examined("qc", ("", "", "warning", f"file {shown} cannot be accessed ({exc.strerror}); ignored"))
    if size == 0:
        return _Examined("qc", ("", "", "warning", f"file {shown} is empty (0 bytes); ignored"))
    try:
        ds, pixel_offset = _read_header(path)
    except _TruncatedHeader:
        return _Examined("qc", ("", "", "warning", f"file {shown} has a DICOM preamble but its header is truncated; ignored"))
    except Exception as exc:  # noqa: BLE001 - any parser failure is a per-file problem
        return _Examined("qc", ("", "", "warning", f"file {shown} looks like DICOM but cannot be read (truncated or "
                                                   f"corrupt: {type(exc).__name__}); ignored"))
    if ds is None:
        return _Examined("non_dicom")
    meta = getattr(ds, "file_meta", None)
    sop_class = _s(ds, "SOPClassUID") or (_s(meta, "MediaStorageSOPClassUID") if meta else "")
    if sop_class == MEDIA_STORAGE_DIRECTORY_SOP_CLASS or "DirectoryRecordSequence" in ds:
        log.debug("skipping DICOMDIR-type file %s", shown)
        return _Examined("skip")
    modality = _s(ds, "Modality").upper()
    pid = _s(ds, "PatientID")
    sop_uid = _s(ds, "SOPInstanceUID")

    if sop_class == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
        ref_series, ref_sops, n_rois, n_cont = _rtstruct_refs(ds)
        return _Examined("contour", contour=_Contour(path, rel, "RTSTRUCT", pid, sop_uid, ref_series, ref_sops,
                                                     _recency(ds, "RTSTRUCT"), n_rois, n_cont))
    if sop_class == SEG_SOP_CLASS or modality == "SEG":
        ref_series, ref_sops, n_seg = _seg_refs(ds)
        return _Examined("contour", contour=_Contour(path, rel, "SEG", pid, sop_uid, ref_series, ref_sops,
                                                     _recency(ds, "SEG"), n_seg, n_seg))
    if modality not in IMAGE_MODALITIES or "Rows" not in ds:
        log.debug("ignoring %s object %s", modality or "unknown", shown)
        return _Examined("skip")

    series_uid = _s(ds, "SeriesInstanceUID")
    instance = _Instance(path=path.resolve(), rel=rel, sop_uid=sop_uid,
                         position=_floats(ds.get("ImagePositionPatient")),
                         orientation=_floats(ds.get("ImageOrientationPatient")),
                         instance_number=_int_or_none(ds.get("InstanceNumber")),
                         acquisition_time=_s(ds, "AcquisitionTime"), acquisition_date=_s(ds, "AcquisitionDate"),
                         multiframe=(_int_or_none(ds.get("NumberOfFrames")) or 1) > 1)
    expected = _expected_pixel_bytes(ds)
    # pixel data element: tag + length (8 bytes implicit VR, 12 explicit) + values
    if expected is not None and size < pixel_offset + 8 + expected:
        return _Examined("truncated_image", (pid, "", "warning",
                                             f"image file {shown} of series {series_uid} is truncated "
                                             f"({size} bytes, but the pixel data alone needs {expected}); "
                                             f"the file is ignored"), instance=instance)
    if not series_uid:
        return _Examined("qc", (pid, "", "warning", f"image file {shown} has no SeriesInstanceUID; ignored"))
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    ser = _Series(
        series_uid=series_uid,
        patient_id=pid,
        study_uid=_s(ds, "StudyInstanceUID"),
        modality=modality,
        date=_s(ds, "StudyDate") or _s(ds, "SeriesDate") or _s(ds, "AcquisitionDate") or _s(ds, "ContentDate"),
        time=_s(ds, "StudyTime") or _s(ds, "SeriesTime"),
        series_number=_int_or_none(ds.get("SeriesNumber")),
        localizer="LOCALIZER" in image_type,
        series_time=_s(ds, "SeriesTime"),
    )
    return _Examined("image", series=ser, instance=instance)


def _examine_chunk(args: tuple[list[Path], Path]) -> list[_Examined]:
    paths, root = args
    return [_examine(p, root) for p in paths]


def _examine_all(paths: list[Path], root: Path, workers: int) -> list[_Examined]:
    """:func:`_examine` every file, in ``workers`` processes, results in ``paths`` order."""
    if workers <= 1 or len(paths) < 2 * DISCOVERY_CHUNK:
        return [_examine(p, root) for p in paths]
    from concurrent.futures import ProcessPoolExecutor

    chunks = [(paths[i:i + DISCOVERY_CHUNK], root) for i in range(0, len(paths), DISCOVERY_CHUNK)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return [e for chunk in pool.map(_examine_chunk, chunks) for e in chunk]


#: Files per task when discovery reads headers in several processes: large enough that
#: sending the (small) results back costs little, small enough to balance the workers.
DISCOVERY_CHUNK = 200


def discover(root: Path, retest_max_days: int = 30, workers: int = 1) -> Discovery:
    """Find all analysable (image series, contour object) pairs below ``root``.

    Any depth and any file names are accepted. Non-DICOM files and DICOMDIR are
    ignored; empty, truncated or unreadable DICOM files become QC warnings.
    Scans are numbered per PatientID in acquisition date/time order; each gets
    its study (visit) number, days and hours from the patient's first scan and a
    label (``baseline``, ``retest`` within ``retest_max_days``, ``follow-up``;
    see :func:`scan_label`). A patient with images but no analysable scan gets
    one ``excluded`` row.

    ``workers`` > 1 reads the file headers in that many processes (reading is most of
    the time, and waits on the disk); the result is the same for any ``workers``.
    """
    root = Path(root)
    disc = Discovery()
    series: dict[str, _Series] = {}
    contours: list[_Contour] = []
    non_dicom: list[str] = []
    seen_sops: dict[str, str] = {}
    ignored_sops: dict[str, str] = {}  # SOP UID -> file ignored as truncated

    def add_qc(pid: str, sid: str, status: str, reason: str) -> None:
        disc.qc.append(qc_row(pid, sid, STAGE_DISCOVERY, status, reason))  # UIDs -> pseudonyms
        (log.warning if status == "excluded" else log.info)("discovery %s: %s", status, disc.qc[-1]["reason"])

    paths: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            paths.append(Path(dirpath) / name)

    for path, ex in zip(paths, _examine_all(paths, root, workers)):
        if ex.kind == "non_dicom":
            non_dicom.append(file_pseudonym(_rel(path, root)))
        elif ex.kind == "contour":
            contours.append(ex.contour)
        elif ex.kind in ("qc", "truncated_image"):
            add_qc(*ex.qc)
            if ex.kind == "truncated_image" and ex.instance.sop_uid:
                ignored_sops[ex.instance.sop_uid] = ex.instance.shown
        elif ex.kind == "image":
            inst = ex.instance
            if inst.sop_uid and inst.sop_uid in seen_sops:
                add_qc(ex.series.patient_id, "", "warning",
                       f"image file {inst.shown} is a duplicate of {seen_sops[inst.sop_uid]} (same SOP Instance "
                       f"UID {inst.sop_uid}); the duplicate is ignored")
                continue
            if inst.sop_uid:
                seen_sops[inst.sop_uid] = inst.shown
            ser = series.setdefault(ex.series.series_uid, ex.series)
            ser.instances.append(inst)

    if non_dicom:
        examples = ", ".join(non_dicom[:5]) + (", ..." if len(non_dicom) > 5 else "")
        log.info("ignored %d non-DICOM files (%s)", len(non_dicom), examples)
        add_qc("", "", "warning", f"{len(non_dicom)} non-DICOM file(s) ignored: {examples}")

    # -- pair contour objects with the image series they reference -------------
    sop_to_series: dict[str, str] = {}
    for ser in series.values():
        for inst in ser.instances:
            if inst.sop_uid:
                sop_to_series[inst.sop_uid] = ser.series_uid

    by_series: dict[str, list[_Contour]] = defaultdict(list)
    rejected_refs: set[str] = set()  # series whose contour objects were all excluded
    pending: dict[str, list[tuple[str, str]]] = defaultdict(list)  # series -> (status, reason)
    for con in contours:
        kind = con.kind
        if con.n_contours == 0:
            what = "ROIs" if kind == "RTSTRUCT" else "segments"
            add_qc(
                con.patient_id,
                "",
                "excluded",
                f"{kind} {con.shown} is empty: {con.n_rois} {what} defined but no contour data",
            )
            continue
        present = [u for u in con.ref_series if u in series]
        chosen: str | None = None
        note = ""
        if present:
            if len(present) > 1:
                # several referenced series present: the one holding most referenced images
                present.sort(key=lambda u: -sum(sop_to_series.get(s) == u for s in con.ref_sops))
            chosen = present[0]
        else:
            counts: dict[str, int] = defaultdict(int)
            for sop in con.ref_sops:
                if sop in sop_to_series:
                    counts[sop_to_series[sop]] += 1
            if counts:
                chosen = max(sorted(counts), key=lambda u: counts[u])
                if con.ref_series:
                    note = (
                        f"{kind} {con.shown} references series {', '.join(con.ref_series)} which is "
                        f"not in the input folder, but its referenced images belong to series "
                        f"{chosen}; using that series"
                    )
                else:
                    note = (
                        f"{kind} {con.shown} names no referenced series; matched to series {chosen} "
                        f"through its referenced image UIDs"
                    )
        if chosen is None:
            if con.ref_series:
                reason = (
                    f"{kind} {con.shown} references series {', '.join(con.ref_series)} which is not "
                    f"in the input folder"
                )
            else:
                reason = (
                    f"{kind} {con.shown} does not reference any image series or image instance "
                    f"(no referenced series UID and no contour image UIDs)"
                )
            add_qc(con.patient_id, "", "excluded", reason)
            continue
        ser = series[chosen]
        missing = sorted(s for s in con.ref_sops if s not in sop_to_series)
        elsewhere = sorted({sop_to_series[s] for s in con.ref_sops if sop_to_series.get(s, chosen) != chosen})
        if elsewhere and not missing:
            pending[chosen].append(
                (
                    "warning",
                    f"{kind} {con.shown} also references images of series {', '.join(elsewhere)}; "
                    f"using series {chosen}",
                )
            )
        if missing:
            rejected_refs.add(chosen)
            add_qc(
                con.patient_id or ser.patient_id,
                "",
                "excluded",
                f"{kind} {con.shown} references {len(con.ref_sops)} images of series {chosen}, "
                f"{len(missing)} of which are not in the input folder (series incomplete or "
                f"wrong references, e.g. {missing[0]})"
                + (
                    f"; {sum(m in ignored_sops for m in missing)} of them are in file(s) ignored as "
                    f"truncated (e.g. {next(ignored_sops[m] for m in missing if m in ignored_sops)})"
                    if any(m in ignored_sops for m in missing) else ""
                ),
            )
            continue
        if any(i.multiframe for i in ser.instances):
            rejected_refs.add(chosen)
            add_qc(
                ser.patient_id,
                "",
                "excluded",
                f"series {chosen} referenced by {con.shown} is an enhanced multi-frame image; "
                f"only single-frame series are supported",
            )
            continue
        if note:
            pending[chosen].append(("warning", note))
        if con.patient_id != ser.patient_id:
            pending[chosen].append(
                (
                    "warning",
                    f"{kind} {con.shown} has PatientID {con.patient_id!r} but its image series "
                    f"{chosen} has {ser.patient_id!r}; using the image's PatientID",
                )
            )
        by_series[chosen].append(con)

    # -- one contour object per series -------------------------------------------
    selected: dict[str, _Contour] = {}
    for uid, cons in by_series.items():
        cons.sort(key=lambda c: (c.recency, c.rel))
        selected[uid] = cons[-1]
        if len(cons) > 1:
            others = ", ".join(c.shown for c in cons[:-1])
            pending[uid].append(
                (
                    "warning",
                    f"series {uid} has {len(cons)} contour objects ({others}, {cons[-1].shown}); "
                    f"using the most recent one, {cons[-1].shown}, and ignoring the others",
                )
            )

    for uid, ser in sorted(series.items()):
        if uid in rejected_refs:
            continue  # its contour object's exclusion row already names this series
        if uid not in selected and uid not in pending:
            kind = " localizer" if ser.localizer else ""
            why = (
                "has no usable RTSTRUCT or SEG (its contour objects were excluded, see above)"
                if uid in rejected_refs
                else "has no RTSTRUCT or SEG referencing it"
            )
            add_qc(
                ser.patient_id,
                "",
                "warning",
                f"{ser.modality}{kind} series {uid} ({len(ser.instances)} images, e.g. "
                f"{ser.instances[0].shown}) {why}: not analysable",
            )

    # -- number sessions per patient ------------------------------------------
    per_patient: dict[str, list[str]] = defaultdict(list)
    for uid in selected:
        per_patient[series[uid].patient_id].append(uid)
    used_ids: dict[str, str] = {}
    for pid in sorted(per_patient):
        if not pid:
            for uid in per_patient[pid]:
                add_qc("", "", "excluded", f"series {uid} has no PatientID; cannot be assigned to a patient")
            continue
        spid = safe(pid)
        if spid in used_ids and used_ids[spid] != pid:
            add_qc(
                pid,
                "",
                "excluded",
                f"PatientID {pid!r} gives the same file-name-safe id {spid!r} as PatientID "
                f"{used_ids[spid]!r}; rename one of them",
            )
            continue
        used_ids[spid] = pid

        uids = sorted(per_patient[pid], key=lambda u: _series_when(series[u]))
        whens = {u: _series_when(series[u]) for u in uids}
        first_dt = whens[uids[0]][1]
        undated = [u for u in uids if whens[u][1] is None]
        study_numbers: dict[str, int] = {}
        for uid in uids:  # studies numbered by their first scan in time
            study_numbers.setdefault(series[uid].study_uid or uid, len(study_numbers) + 1)
        for n, uid in enumerate(uids, start=1):
            ser = series[uid]
            con = selected[uid]
            scan_id = f"{spid}_S{n}"
            when = whens[uid][1]
            dated = when is not None and first_dt is not None
            days = (when.date() - first_dt.date()).days if dated else 0
            hours = round((when - first_dt).total_seconds() / 3600.0, 2) if dated else 0.0
            insts = sorted(ser.instances, key=_instance_sort_key)
            disc.scans.append(
                ScanRecord(
                    scan_id=scan_id,
                    patient_id=pid,
                    session=n,
                    days_from_first=int(days),
                    modality=ser.modality,
                    series_uid=uid_pseudonym(uid),
                    study_uid=uid_pseudonym(ser.study_uid),
                    n_images=len(insts),
                    image_files=[str(i.path) for i in insts],
                    contour_file=str(con.path.resolve()),
                    contour_type=con.kind,
                    cohort_root=str(root.resolve()),
                    hours_from_first=float(hours),
                    study_number=study_numbers[ser.study_uid or uid],
                    label=scan_label(n, int(days), retest_max_days, dated or n == 1),
                )
            )
            if undated and len(uids) > 1 and uid in undated:
                add_qc(
                    pid,
                    scan_id,
                    "warning",
                    f"series {uid} has no study or acquisition date: session order, "
                    f"days_from_first (set to 0) and the retest/follow-up label are uncertain",
                )
            for status, reason in pending.get(uid, []):
                add_qc(pid, scan_id, status, reason)
        log.info("patient %s: %d scan(s)", pid, len(uids))

    # -- a patient with images but no analysable scan is excluded (once) -------------
    excluded_pids = {q["patient_id"] for q in disc.qc if q["status"] == "excluded"}
    with_scans = {sc.patient_id for sc in disc.scans}
    by_pid: dict[str, list[_Series]] = defaultdict(list)
    for ser in series.values():
        by_pid[ser.patient_id].append(ser)
    for pid in sorted(by_pid):
        if not pid or pid in with_scans or pid in excluded_pids:
            continue
        sers = sorted(by_pid[pid], key=lambda x: x.series_uid)
        listing = "; ".join(
            f"{x.modality}{' localizer' if x.localizer else ''} series {x.series_uid} "
            f"({len(x.instances)} images)" for x in sers
        )
        add_qc(pid, "", "excluded",
               f"patient {pid} has no analysable scan: no RTSTRUCT or SEG in the input folder "
               f"references any of its {len(sers)} image series ({listing})")
    return disc


def scan_label(session: int, days_from_first: int, retest_max_days: int, dated: bool = True) -> str:
    """What a patient's scan is, in words: ``baseline``, ``retest``, ``repeat``, ``follow-up``.

    The first scan (session 1) is the ``baseline``. The second scan is a ``retest``
    when it was acquired at most ``retest_max_days`` days after the first (the
    same rule as the test-retest pairing of the robustness stage), else a
    ``follow-up`` (a later time point). Third and later scans are ``repeat``
    within that window (not paired) or ``follow-up``. A scan without a date
    is ``undated``.
    """
    if session <= 1:
        return "baseline"
    if not dated:
        return "undated"
    if days_from_first <= retest_max_days:
        return "retest" if session == 2 else "repeat"
    return "follow-up"


def _when(date: str, time: str) -> _dt.datetime | None:
    day = _parse_date(date)
    if day is None:
        return None
    t = _norm_time(time) if time else "000000.000000"
    try:
        clock = _dt.datetime.strptime(t[:13], "%H%M%S.%f").time()
    except ValueError:
        clock = _dt.time()
    return _dt.datetime.combine(day, clock)


def _series_when(ser: _Series) -> tuple[Any, ...]:
    """Sort key of a series in time: (undated, acquisition datetime, series number, uid).

    The acquisition start (earliest AcquisitionDate/Time of its images) is used
    when present, else SeriesTime, else StudyDate/StudyTime: two acquisitions of
    one study (a same-visit repeat) are thereby told apart and ordered.
    """
    acq = [(i.acquisition_date or ser.date, i.acquisition_time) for i in ser.instances if i.acquisition_time]
    when = None
    if acq:
        when = min((w for w in (_when(d, t) for d, t in acq) if w is not None), default=None)
    if when is None:
        when = _when(ser.date, ser.series_time or ser.time)
    return (
        when is None,
        when or _dt.datetime.min,
        ser.series_number if ser.series_number is not None else 1 << 30,
        ser.series_uid,
    ), when


def _instance_sort_key(inst: _Instance) -> tuple[Any, ...]:
    if inst.position is not None and inst.orientation is not None and len(inst.orientation) == 6:
        normal = np.cross(inst.orientation[:3], inst.orientation[3:])
        return (0, float(np.dot(inst.position, normal)), inst.rel)
    return (1, inst.instance_number if inst.instance_number is not None else 0, inst.rel)


def write_discovery(disc: Discovery, scans_tsv: Path, manifest_dir: Path, qc_tsv: Path) -> None:
    """Write the scans TSV, one JSON manifest per scan and the discovery QC TSV."""
    scans_tsv, manifest_dir, qc_tsv = Path(scans_tsv), Path(manifest_dir), Path(qc_tsv)
    scans_tsv.parent.mkdir(parents=True, exist_ok=True)
    manifest_dir.mkdir(parents=True, exist_ok=True)
    lines = ["\t".join(SCAN_COLUMNS)]
    for scan in disc.scans:
        row = {**asdict(scan), "contour_file_id": shown_file(scan, scan.contour_file)}
        lines.append("\t".join(str(row[c]).replace("\t", " ") for c in SCAN_COLUMNS))
        (manifest_dir / f"{scan.scan_id}.json").write_text(
            json.dumps(asdict(scan), indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
    scans_tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_qc(disc.qc, qc_tsv)


def read_manifest(path: Path) -> ScanRecord:
    """Read a manifest written by :func:`write_discovery`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return ScanRecord(**data)


# ---------------------------------------------------------------------------
# Conversion: image
# ---------------------------------------------------------------------------


@dataclass
class _Geometry:
    files: list[str]
    sop_uids: list[str]
    positions: np.ndarray  # along the normal, ascending
    spacing_z: float
    normal: np.ndarray
    first: pydicom.Dataset
    headers: list[pydicom.Dataset] = field(default_factory=list)  # in slice order


def _check_geometry(scan: ScanRecord) -> _Geometry:
    """Sort the files along the slice normal and check orientation, duplicates and gaps."""
    uid = scan.series_uid
    headers: list[tuple[str, pydicom.Dataset]] = []
    for f in scan.image_files:
        try:
            headers.append((f, pydicom.dcmread(f, stop_before_pixels=True, force=True)))
        except Exception as exc:  # noqa: BLE001
            raise CaseError(
                STAGE_CONVERSION, f"image file {shown_file(scan, f)} of series {uid} cannot be read ({type(exc).__name__})"
            ) from exc
    if len(headers) < 2:
        raise CaseError(
            STAGE_CONVERSION, f"series {uid} has {len(headers)} image(s); a 3D volume needs at least 2 slices"
        )
    iop0 = _floats(headers[0][1].get("ImageOrientationPatient"))
    if iop0 is None or len(iop0) != 6:
        raise CaseError(STAGE_CONVERSION, f"series {uid} has no ImageOrientationPatient")
    rows0, cols0 = headers[0][1].get("Rows"), headers[0][1].get("Columns")
    ps0 = _floats(headers[0][1].get("PixelSpacing"))
    pos = []
    for f, ds in headers:
        iop = _floats(ds.get("ImageOrientationPatient"))
        if iop is None or len(iop) != 6 or not np.allclose(iop, iop0, atol=1e-4):
            raise CaseError(
                STAGE_CONVERSION,
                f"series {uid} has inconsistent ImageOrientationPatient (file {shown_file(scan, f)}); "
                f"slices are not parallel",
            )
        if ds.get("Rows") != rows0 or ds.get("Columns") != cols0:
            raise CaseError(STAGE_CONVERSION, f"series {uid} mixes image sizes (file {shown_file(scan, f)})")
        ps = _floats(ds.get("PixelSpacing"))
        if ps is None or ps0 is None or not np.allclose(ps, ps0, atol=1e-4):
            raise CaseError(STAGE_CONVERSION, f"series {uid} has missing or inconsistent PixelSpacing")
        ipp = _floats(ds.get("ImagePositionPatient"))
        if ipp is None or len(ipp) != 3:
            raise CaseError(STAGE_CONVERSION, f"series {uid}: file {shown_file(scan, f)} has no ImagePositionPatient")
        pos.append(ipp)
    row, col = np.array(iop0[:3]), np.array(iop0[3:])
    normal = np.cross(row, col)
    normal /= np.linalg.norm(normal)
    ipp_arr = np.array(pos)
    proj = ipp_arr @ normal
    order = np.argsort(proj, kind="stable")
    proj = proj[order]
    ipp_arr = ipp_arr[order]
    files = [headers[i][0] for i in order]
    sops = [_s(headers[i][1], "SOPInstanceUID") for i in order]

    diffs = np.diff(proj)
    dup = np.nonzero(diffs < 1e-3)[0]
    if dup.size:
        k = int(dup[0])
        raise CaseError(
            STAGE_CONVERSION,
            f"series {uid} has {dup.size + 1} or more images at the same slice position "
            f"z={proj[k]:.2f} mm (duplicate slices, e.g. {shown_file(scan, files[k])} and "
            f"{shown_file(scan, files[k + 1])})",
        )
    expected = float(np.median(diffs))
    tol = max(0.01, 0.01 * expected)
    for k, d in enumerate(diffs):
        if abs(d - expected) > tol:
            ratio = d / expected
            if ratio > 1.5 and abs(ratio - round(ratio)) * expected <= tol * max(1.0, round(ratio)):
                n_missing = int(round(ratio)) - 1
                what = "a slice is missing" if n_missing == 1 else f"{n_missing} slices are missing"
            else:
                what = "slice spacing is not uniform"
            raise CaseError(
                STAGE_CONVERSION,
                f"series {uid} has a gap between slice positions z={proj[k]:.2f} and "
                f"z={proj[k + 1]:.2f} (spacing {d:.1f} mm where {expected:.1f} expected): {what}",
            )
    # slices must be stacked along the normal (no gantry tilt / shear)
    offsets = ipp_arr - ipp_arr[0]
    inplane = offsets - np.outer(offsets @ normal, normal)
    shear_tol = max(0.05, 0.02 * min(ps0 or (1.0,)))
    if np.abs(inplane).max() > shear_tol:
        raise CaseError(
            STAGE_CONVERSION,
            f"series {uid}: slice positions are not stacked along the slice normal "
            f"(in-plane shift up to {np.abs(inplane).max():.2f} mm; gantry tilt?)",
        )
    return _Geometry(files, sops, proj, expected, normal, headers[order[0]][1], [headers[i][1] for i in order])


def _verify_rescale(image_arr: np.ndarray, geo: _Geometry, uid: str) -> bool:
    """Compare SimpleITK's values with pydicom's modality LUT on a few slices.

    Returns True when verified, False when pydicom could not decode the pixels.
    """
    from pydicom.pixels import apply_modality_lut

    n = len(geo.files)
    for k in sorted({0, n // 2, n - 1}):
        try:
            ds = pydicom.dcmread(geo.files[k], force=True)
            ref = apply_modality_lut(ds.pixel_array, ds).astype(np.float64)
        except Exception as exc:  # noqa: BLE001 - pydicom may lack a decoder; not our problem
            log.debug("rescale check skipped for series %s: %s", uid, type(exc).__name__)
            return False
        got = image_arr[k].astype(np.float64)
        if ref.shape != got.shape or not np.allclose(ref, got, atol=1e-3 * max(1.0, np.abs(ref).max()) + 1e-3):
            raise CaseError(
                STAGE_CONVERSION,
                f"series {uid}: pixel values read by SimpleITK differ from RescaleSlope/Intercept-"
                f"applied values on slice {k} (per-slice rescale not handled?)",
            )
    return True


def _read_image(scan: ScanRecord, geo: _Geometry) -> tuple[sitk.Image, list[str], dict[str, Any]]:
    """The series as a SimpleITK image in physical units, its warnings and unit provenance.

    CT: HU (padding set to air, see :func:`_ct_padding`); PT: SUVbw (see
    :func:`pet_suv_factors`); MR: the scanner's native units, with the sequence
    parameters recorded (see :func:`mr_sequence`).
    """
    warnings: list[str] = []
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(geo.files)
    try:
        img = reader.Execute()
    except RuntimeError as exc:
        raise CaseError(
            STAGE_CONVERSION, f"series {scan.series_uid} cannot be read by SimpleITK/GDCM ({str(exc)[-200:]})"
        ) from exc
    for key in img.GetMetaDataKeys():  # never carry DICOM metadata into NIfTI
        img.EraseMetaData(key)
    direction = np.array(img.GetDirection()).reshape(3, 3)
    if not np.allclose(direction[:, 2], geo.normal, atol=1e-3) or not np.isclose(
        img.GetSpacing()[2], geo.spacing_z, rtol=1e-2, atol=1e-2
    ):
        raise CaseError(
            STAGE_CONVERSION, f"series {scan.series_uid}: SimpleITK geometry disagrees with the DICOM slice positions"
        )
    arr = sitk.GetArrayViewFromImage(img)
    if not _verify_rescale(arr, geo, scan.series_uid):
        warnings.append("rescale slope/intercept could not be verified with pydicom (compressed pixel data)")
    if img.GetNumberOfComponentsPerPixel() != 1:
        raise CaseError(STAGE_CONVERSION, f"series {scan.series_uid} is not a greyscale image")
    info: dict[str, Any]
    if scan.modality == "PT":
        factors, info, pet_warn = pet_suv_factors(geo.headers, scan.series_uid)
        warnings.extend(pet_warn)
        suv = sitk.GetArrayFromImage(img).astype(np.float64) * factors[:, None, None]
        out = sitk.GetImageFromArray(suv.astype(np.float32))
        out.CopyInformation(img)
        img = out
    elif scan.modality == "CT":
        img, info = _ct_padding(img, geo, warnings)
    else:
        info = {"units": "native scanner units (MR signal intensity, not quantitative)",
                "sequence": mr_sequence(geo.first)}
        if any(0x2005100E in h for h in geo.headers[:1]):
            warnings.append("Philips private scale slope (2005,100E) present but not applied: "
                            "values are the displayed (rescaled) values")
    pid = img.GetPixelID()
    if pid in (sitk.sitkFloat64, sitk.sitkFloat32):
        vals = sitk.GetArrayViewFromImage(img)
        if (
            scan.modality == "CT"
            and np.all(np.mod(vals, 1) == 0)
            and vals.min() >= -32768
            and vals.max() <= 32767
        ):
            img = sitk.Cast(img, sitk.sitkInt16)
        elif pid == sitk.sitkFloat64:
            img = sitk.Cast(img, sitk.sitkFloat32)
    elif scan.modality == "CT" and pid != sitk.sitkInt16:
        vals = sitk.GetArrayViewFromImage(img)
        img = sitk.Cast(img, sitk.sitkInt16 if vals.min() >= -32768 and vals.max() <= 32767 else sitk.sitkFloat32)
    return img, warnings, info


def _ct_padding(img: sitk.Image, geo: _Geometry, warnings: list[str]) -> tuple[sitk.Image, dict[str, Any]]:
    """Set CT pixel padding (PixelPaddingValue, outside the reconstructed field of view) to air.

    Padding is stored as a sentinel (often -2000 or -3024 HU after rescale) that
    is not a measurement; it is replaced by -1024 HU and counted
    (``padding_voxels``) so that a mask reaching it can be reported.
    """
    info: dict[str, Any] = {"units": "HU", "padding_voxels": 0}
    first = geo.first
    pad = first.get("PixelPaddingValue", None)
    if pad is None:
        return img, info
    slope = float(first.get("RescaleSlope", 1) or 1)
    intercept = float(first.get("RescaleIntercept", 0) or 0)
    lim = first.get("PixelPaddingRangeLimit", None)
    values = [float(pad) * slope + intercept]
    if lim is not None:
        values.append(float(lim) * slope + intercept)
    lo, hi = min(values), max(values)
    if hi >= -1024:
        return img, info  # the sentinel is a plausible HU value (e.g. air itself): nothing to replace
    arr = sitk.GetArrayFromImage(img)
    padded = (arr >= lo - 1e-3) & (arr <= hi + 1e-3)
    n = int(padded.sum())
    if n:
        arr = arr.copy()
        arr[padded] = -1024
        out = sitk.GetImageFromArray(arr)
        out.CopyInformation(img)
        img = out
        warnings.append(f"{n} padding voxels (outside the reconstructed field of view, "
                        f"{lo:g}..{hi:g} HU) set to -1024 HU")
    info["padding_voxels"] = n
    info["_padding_mask"] = padded if n else None
    return img, info


def mr_sequence(ds: pydicom.Dataset) -> dict[str, Any]:
    """The MR acquisition parameters worth recording (only those present).

    Structured attributes only: free-text descriptions (SeriesDescription,
    ProtocolName) are left out because sites put names and dates in them.
    """
    keys = ["ScanningSequence", "SequenceVariant", "ScanOptions", "MRAcquisitionType", "SequenceName",
            "RepetitionTime", "EchoTime", "InversionTime", "FlipAngle", "EchoTrainLength",
            "MagneticFieldStrength", "ImagedNucleus", "PixelBandwidth"]
    out: dict[str, Any] = {}
    for k in keys:
        v = ds.get(k, None)
        if v is None or str(v).strip() == "":
            continue
        if isinstance(v, pydicom.multival.MultiValue):
            out[k] = "\\".join(str(x) for x in v)
        else:
            try:
                out[k] = float(v) if k in ("RepetitionTime", "EchoTime", "InversionTime", "FlipAngle",
                                           "MagneticFieldStrength", "PixelBandwidth") else str(v).strip()
            except (TypeError, ValueError):
                out[k] = str(v).strip()
    return out


def _dicom_datetime(dt_value: str = "", date: str = "", time: str = "") -> _dt.datetime | None:
    """A DICOM DT (``YYYYMMDDHHMMSS.ffffff&ZZXX``) or DA + TM as a naive datetime."""
    if dt_value:
        text = re.split(r"[+-]", dt_value.strip(), maxsplit=1)[0]
        return _when(text[:8], text[8:])
    if date and time:
        return _when(date, time)
    return None


def pet_suv_factors(headers: list[pydicom.Dataset], series_uid: str) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """Per-slice factors turning PET pixel values (after rescale) into SUV body weight.

    Follows the vendor-neutral SUV calculation of the QIBA/UW PET SUV
    pseudo-code: ``SUVbw = C * weight[g] / (dose * 2**(-t / T_half))`` with C the
    activity concentration (Units BQML), dose the RadionuclideTotalDose (Bq) and
    t the time from RadiopharmaceuticalStartDateTime (or SeriesDate +
    RadiopharmaceuticalStartTime) to the time the image is decay-corrected to:

    * DecayCorrection ``START``: the series start (SeriesDate/Time; the earliest
      AcquisitionDate/Time instead when the series time lies after it, as after
      post-processing);
    * ``ADMIN``: the images are already corrected to the administration time, t = 0;
    * ``NONE``: each slice's own AcquisitionDate/Time (per-slice factors).

    Units ``GML`` are already SUVbw (factor 1); ``CNTS`` with the Philips SUV scale
    factor (7053,1000) use that factor. Anything else (no weight, no dose,
    half-life or start time, other units) raises :class:`CaseError`: a PET scan
    in uncalibrated units must not enter a radiomics model.
    """
    first = headers[0]
    n = len(headers)
    units = _s(first, "Units").upper()
    corr = _s(first, "DecayCorrection").upper()
    warnings: list[str] = []
    info: dict[str, Any] = {"units": "SUVbw (g/ml)", "source_units": units or "unknown",
                            "decay_correction": corr or "unknown"}

    def fail(reason: str) -> CaseError:
        return CaseError(STAGE_CONVERSION, f"PET series {series_uid}: {reason}; SUV cannot be computed")

    if units == "GML":
        info["suv_factor"] = 1.0
        return np.ones(n), info, warnings
    if units == "CNTS":
        philips = first.get(0x70531000, None)
        if philips is not None and philips.value not in (None, ""):
            try:
                f = float(philips.value if not isinstance(philips.value, bytes) else philips.value.decode().strip())
            except ValueError as exc:
                raise fail("Units are CNTS and the Philips SUV scale factor (7053,1000) is unreadable") from exc
            info["suv_factor"] = f
            warnings.append("PET in CNTS converted with the Philips private SUV scale factor (7053,1000)")
            return np.full(n, f), info, warnings
        raise fail("Units are CNTS (counts) without a Philips SUV scale factor")
    if units != "BQML":
        raise fail(f"Units are {units or 'missing'!r}, not BQML (Bq/ml)")
    weight = first.get("PatientWeight", None)
    try:
        weight_kg = float(weight) if weight not in (None, "") else 0.0
    except (TypeError, ValueError):
        weight_kg = 0.0
    if not weight_kg > 0:
        raise fail("PatientWeight is missing or zero")
    rp_seq = first.get("RadiopharmaceuticalInformationSequence", None) or []
    if not rp_seq:
        raise fail("the RadiopharmaceuticalInformationSequence is missing")
    rp = rp_seq[0]
    try:
        dose = float(rp.get("RadionuclideTotalDose", 0) or 0)
        half_life = float(rp.get("RadionuclideHalfLife", 0) or 0)
    except (TypeError, ValueError):
        dose = half_life = 0.0
    if not dose > 0:
        raise fail("RadionuclideTotalDose is missing or zero")
    if not half_life > 0:
        raise fail("RadionuclideHalfLife is missing or zero")
    start = _dicom_datetime(_s(rp, "RadiopharmaceuticalStartDateTime"))
    time_only = False
    if start is None:
        start = _dicom_datetime("", _s(first, "SeriesDate") or _s(first, "AcquisitionDate"),
                                _s(rp, "RadiopharmaceuticalStartTime"))
        time_only = True
    if start is None:
        raise fail("the radiopharmaceutical start (injection) time is missing")

    def acq_time(h: pydicom.Dataset) -> _dt.datetime | None:
        return _dicom_datetime(_s(h, "AcquisitionDateTime"), _s(h, "AcquisitionDate") or _s(h, "SeriesDate"),
                               _s(h, "AcquisitionTime"))

    if corr == "ADMIN":
        decay = np.zeros(n)
    elif corr in ("START", ""):
        if not corr:
            warnings.append("DecayCorrection missing; assumed START (decay-corrected to the series start)")
        ref = _dicom_datetime("", _s(first, "SeriesDate"), _s(first, "SeriesTime"))
        acqs = [t for t in (acq_time(h) for h in headers) if t is not None]
        earliest = min(acqs) if acqs else None
        if ref is None or (earliest is not None and ref > earliest):
            if earliest is None:
                raise fail("neither SeriesDate/SeriesTime nor AcquisitionDate/Time is present")
            if ref is not None:
                warnings.append("SeriesTime is after the first AcquisitionTime (post-processed series?); "
                                "decay corrected to the earliest acquisition time")
            ref = earliest
        decay = np.full(n, (ref - start).total_seconds())
    elif corr == "NONE":
        times = [acq_time(h) for h in headers]
        if any(t is None for t in times):
            raise fail("DecayCorrection is NONE but a slice has no AcquisitionTime")
        decay = np.array([(t - start).total_seconds() for t in times])  # type: ignore[operator]
        warnings.append("PET not decay-corrected (DecayCorrection NONE): dose decayed to each slice's acquisition time")
    else:
        raise fail(f"DecayCorrection {corr!r} is not START, ADMIN or NONE")
    if time_only and decay.min() < 0 and decay.max() + 86400.0 < 12 * 3600.0:
        decay = decay + 86400.0  # injected before midnight, scanned after it
        warnings.append("injection time is later in the day than the scan: assumed the day before")
    if decay.min() < 0:
        raise fail(f"the injection time is {-decay.min() / 60:.1f} min after the scan start")
    if decay.max() > 10 * half_life:
        raise fail(f"the time from injection to scan ({decay.max() / 3600:.1f} h) exceeds 10 half-lives")
    decayed = dose * np.power(2.0, -decay / half_life)
    factors = weight_kg * 1000.0 / decayed
    info.update({
        "suv_factor": float(factors[0]) if np.ptp(factors) == 0 else [float(f) for f in factors],
        "decay_time_s": float(decay[0]) if np.ptp(decay) == 0 else [float(d) for d in decay],
        "half_life_s": half_life,
    })
    return factors, info, warnings


# ---------------------------------------------------------------------------
# Conversion: masks
# ---------------------------------------------------------------------------


def _index_transform(image: sitk.Image) -> tuple[np.ndarray, np.ndarray]:
    """Matrix M and origin o such that continuous index = M @ (p - o).

    Identical to ``image.TransformPhysicalPointToContinuousIndex`` but vectorised.
    """
    direction = np.array(image.GetDirection(), dtype=float).reshape(3, 3)
    spacing = np.array(image.GetSpacing(), dtype=float)
    matrix = np.linalg.inv(direction @ np.diag(spacing))
    return matrix, np.array(image.GetOrigin(), dtype=float)


def physical_to_continuous_index(image: sitk.Image, points: np.ndarray) -> np.ndarray:
    """Map (N, 3) physical points (mm, LPS) to continuous (i, j, k) indices of ``image``."""
    matrix, origin = _index_transform(image)
    return (np.asarray(points, dtype=float) - origin) @ matrix.T


def _rasterise_roi(image: sitk.Image, roi_contours: list[Any], roi_name: str) -> tuple[np.ndarray, list[str], int]:
    """Boolean mask (z, y, x) of one RTSTRUCT ROI; returns (mask, warnings, #polygons used)."""
    nx, ny, nz = image.GetSize()
    mask = np.zeros((nz, ny, nx), dtype=bool)
    warnings: list[str] = []
    skipped_type = off_plane = outside = clipped = used = 0
    for contour in roi_contours:
        gtype = _s(contour, "ContourGeometricType").upper()
        data = contour.get("ContourData")
        if gtype not in ("CLOSED_PLANAR", "CLOSEDPLANAR_XOR") or not data:
            skipped_type += 1
            continue
        pts = np.asarray([float(v) for v in data], dtype=float)
        if pts.size < 9 or pts.size % 3:
            skipped_type += 1
            continue
        idx = physical_to_continuous_index(image, pts.reshape(-1, 3))
        kz = np.rint(idx[:, 2])
        if np.ptp(kz) > 0:
            off_plane += 1
            continue
        k = int(kz[0])
        if np.abs(idx[:, 2] - k).max() > 0.25:
            off_plane_warn = f"a contour of ROI '{roi_name}' lies {np.abs(idx[:, 2] - k).max():.2f} slice off the image plane"
            if off_plane_warn not in warnings:
                warnings.append(off_plane_warn)
        if k < 0 or k >= nz:
            outside += 1
            continue
        xs, ys = idx[:, 0], idx[:, 1]
        i0, i1 = int(np.ceil(xs.min())), int(np.floor(xs.max()))
        j0, j1 = int(np.ceil(ys.min())), int(np.floor(ys.max()))
        if i1 < 0 or j1 < 0 or i0 > nx - 1 or j0 > ny - 1:
            outside += 1
            continue
        if i0 < 0 or j0 < 0 or i1 > nx - 1 or j1 > ny - 1:
            clipped += 1
        i0, j0, i1, j1 = max(i0, 0), max(j0, 0), min(i1, nx - 1), min(j1, ny - 1)
        used += 1
        if i1 < i0 or j1 < j0:
            continue  # polygon smaller than a pixel, contains no pixel centre
        verts = np.column_stack([xs, ys])
        poly = MplPath(np.vstack([verts, verts[:1]]), closed=True)
        gi, gj = np.meshgrid(np.arange(i0, i1 + 1), np.arange(j0, j1 + 1))
        inside = poly.contains_points(np.column_stack([gi.ravel(), gj.ravel()])).reshape(gi.shape)
        mask[k, j0 : j1 + 1, i0 : i1 + 1] ^= inside
    if skipped_type:
        warnings.append(f"{skipped_type} non-closed or malformed contour(s) of ROI '{roi_name}' ignored")
    if off_plane:
        warnings.append(f"{off_plane} contour(s) of ROI '{roi_name}' are not parallel to the image slices; ignored")
    if outside:
        warnings.append(f"{outside} contour(s) of ROI '{roi_name}' lie outside the image field of view")
    if clipped:
        warnings.append(f"{clipped} contour(s) of ROI '{roi_name}' are cut by the image field of view")
    if used == 0:
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI '{roi_name}' lies entirely outside the image field of view "
            f"({outside} contour(s) outside, {off_plane} not parallel to slices, {skipped_type} not closed)",
        )
    return mask, warnings, used


def _select(names: dict[int, str], roi_pattern: str, policy: str, label: str) -> list[int]:
    """Numbers of the ROIs/segments whose name matches ``roi_pattern`` (in number order)."""
    try:
        rx = re.compile(roi_pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"invalid ROI pattern {roi_pattern!r}: {exc}") from exc
    hits = [n for n in sorted(names) if rx.search(names[n])]
    if not hits:
        available = ", ".join(repr(names[n]) for n in sorted(names)) or "none"
        raise CaseError(
            STAGE_CONVERSION, f"no {label} name matches pattern {roi_pattern!r}; available: {available}"
        )
    if policy == "error" and len(hits) > 1:
        raise CaseError(
            STAGE_CONVERSION,
            f"{len(hits)} {label}s match pattern {roi_pattern!r} "
            f"({', '.join(repr(names[n]) for n in hits)}) and roi_policy is 'error'",
        )
    return hits


def _apply_policy(masks: dict[int, np.ndarray], names: dict[int, str], policy: str) -> tuple[np.ndarray, str]:
    order = sorted(masks)
    if policy == "union" and len(order) > 1:
        out = np.zeros_like(masks[order[0]])
        for n in order:
            out |= masks[n]
        return out, "+".join(names[n] for n in order)
    if policy == "largest":
        best = max(order, key=lambda n: (int(masks[n].sum()), -n))
        return masks[best], names[best]
    return masks[order[0]], names[order[0]]


def _mask_from_rtstruct(
    image: sitk.Image, scan: ScanRecord, roi_pattern: str, policy: str
) -> tuple[np.ndarray, str, list[str], list[str]]:
    try:
        rs = pydicom.dcmread(scan.contour_file, force=True)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(STAGE_CONVERSION, f"RTSTRUCT {shown_file(scan, scan.contour_file)} cannot be read") from exc
    names: dict[int, str] = {}
    for roi in rs.get("StructureSetROISequence", []) or []:
        num = _int_or_none(roi.get("ROINumber"))
        if num is not None:
            names[num] = _s(roi, "ROIName")
    contours_by_roi: dict[int, list[Any]] = defaultdict(list)
    for rc in rs.get("ROIContourSequence", []) or []:
        num = _int_or_none(rc.get("ReferencedROINumber"))
        if num is not None:
            contours_by_roi[num].extend(list(rc.get("ContourSequence", []) or []))
    available = [names[n] for n in sorted(names)]
    hits = _select(names, roi_pattern, policy, "ROI")
    with_data = [n for n in hits if any(c.get("ContourData") for c in contours_by_roi.get(n, []))]
    if not with_data:
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI(s) {', '.join(repr(names[n]) for n in hits)} matching {roi_pattern!r} have no contour data",
        )
    warnings: list[str] = []
    if len(with_data) < len(hits):
        warnings.append(
            "matching ROI(s) without contour data ignored: "
            + ", ".join(repr(names[n]) for n in hits if n not in with_data)
        )
    candidates = with_data if policy in ("largest", "union") else with_data[:1]
    masks: dict[int, np.ndarray] = {}
    for n in candidates:
        mask, warns, _ = _rasterise_roi(image, contours_by_roi[n], names[n])
        masks[n] = mask
        warnings.extend(warns)
    mask, chosen = _apply_policy(masks, names, policy)
    return mask, chosen, available, warnings


def _mask_from_seg(
    image: sitk.Image, geo: _Geometry, scan: ScanRecord, roi_pattern: str, policy: str
) -> tuple[np.ndarray, str, list[str], list[str]]:
    import highdicom as hd

    try:
        seg = hd.seg.segread(scan.contour_file)
    except Exception as exc:  # noqa: BLE001
        raise CaseError(
            STAGE_CONVERSION, f"SEG {shown_file(scan, scan.contour_file)} cannot be read ({type(exc).__name__})"
        ) from exc
    names = {int(n): seg.get_segment_description(n).SegmentLabel for n in seg.segment_numbers}
    available = [names[n] for n in sorted(names)]
    hits = _select(names, roi_pattern, policy, "segment")
    candidates = hits if policy in ("largest", "union") else hits[:1]
    warnings: list[str] = []
    kwargs: dict[str, Any] = dict(
        source_sop_instance_uids=geo.sop_uids,
        segment_numbers=candidates,
        combine_segments=False,
        assert_missing_frames_are_empty=True,
        rescale_fractional=True,
        skip_overlap_checks=True,
    )
    try:
        try:
            arr = seg.get_pixels_by_source_instance(**kwargs)
        except RuntimeError as exc:
            if "spatial locations" not in str(exc):
                raise
            # SpatialLocationsPreserved is absent: accept the frames only when their
            # own geometry coincides with the source image grid.
            problem = _seg_grid_problem(seg, image)
            if problem:
                raise CaseError(
                    STAGE_CONVERSION,
                    f"SEG {shown_file(scan, scan.contour_file)} does not state that it preserves the "
                    f"pixel grid of series {scan.series_uid}, and {problem}",
                ) from exc
            warnings.append("SEG lacks SpatialLocationsPreserved; frame geometry checked against the image grid")
            arr = seg.get_pixels_by_source_instance(ignore_spatial_locations=True, **kwargs)
    except CaseError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise CaseError(
            STAGE_CONVERSION,
            f"SEG {shown_file(scan, scan.contour_file)} cannot be mapped onto series {scan.series_uid} "
            f"({type(exc).__name__}: {str(exc)[:200]})",
        ) from exc
    nx, ny, nz = image.GetSize()
    if arr.shape[:3] != (nz, ny, nx):
        raise CaseError(
            STAGE_CONVERSION,
            f"SEG {shown_file(scan, scan.contour_file)} frames have size {arr.shape[1:3]} but the image is {(ny, nx)}",
        )
    seg_type = str(getattr(seg, "SegmentationType", "BINARY")).upper()
    masks: dict[int, np.ndarray] = {}
    for i, n in enumerate(candidates):
        plane = arr[..., i].astype(np.float64)
        masks[n] = plane >= 0.5 if seg_type == "FRACTIONAL" else plane > 0
    mask, chosen = _apply_policy(masks, names, policy)
    return mask, chosen, available, warnings


def _frame_attr(seg: pydicom.Dataset, frame: int, seq: str, keyword: str) -> Any:
    """A functional-group attribute of one SEG frame (per-frame first, then shared)."""
    per_frame = seg.get("PerFrameFunctionalGroupsSequence") or []
    shared = seg.get("SharedFunctionalGroupsSequence") or []
    candidates = ([per_frame[frame]] if frame < len(per_frame) else []) + list(shared[:1])
    for group in candidates:
        items = group.get(seq)
        if items and keyword in items[0]:
            return items[0].get(keyword)
    return None


def _seg_grid_problem(seg: pydicom.Dataset, image: sitk.Image) -> str:
    """'' when every SEG frame lies exactly on the image grid, else a description."""
    nx, ny, _ = image.GetSize()
    if int(seg.Rows) != ny or int(seg.Columns) != nx:
        return f"its frames are {seg.Rows}x{seg.Columns} pixels while the image is {ny}x{nx}"
    direction = np.array(image.GetDirection()).reshape(3, 3)
    spacing = image.GetSpacing()
    n_frames = int(seg.get("NumberOfFrames", 1) or 1)
    for f in range(n_frames):
        ps = _floats(_frame_attr(seg, f, "PixelMeasuresSequence", "PixelSpacing"))
        iop = _floats(_frame_attr(seg, f, "PlaneOrientationSequence", "ImageOrientationPatient"))
        ipp = _floats(_frame_attr(seg, f, "PlanePositionSequence", "ImagePositionPatient"))
        if ps is None or iop is None or ipp is None:
            return f"frame {f + 1} has no plane position/orientation/pixel spacing"
        # DICOM PixelSpacing is (row spacing = y, column spacing = x)
        if not np.allclose([ps[1], ps[0]], spacing[:2], rtol=1e-3, atol=1e-4):
            return f"frame {f + 1} has pixel spacing {ps[1]:.4f}x{ps[0]:.4f} mm unlike the image"
        if not (np.allclose(iop[:3], direction[:, 0], atol=1e-3) and np.allclose(iop[3:], direction[:, 1], atol=1e-3)):
            return f"frame {f + 1} is oriented differently from the image"
        idx = physical_to_continuous_index(image, np.array([ipp]))[0]
        if abs(idx[0]) > 0.05 or abs(idx[1]) > 0.05 or abs(idx[2] - round(idx[2])) > 0.05:
            return f"frame {f + 1} is not aligned with the image pixel grid"
    return ""


# ---------------------------------------------------------------------------
# Conversion: entry point
# ---------------------------------------------------------------------------


def files_sha256(paths: list[str] | list[Path]) -> str:
    """SHA-256 of the bytes of ``paths`` read in sorted path order (names not hashed, so the
    digest does not depend on where the cohort lies). Conversion records it per scan: the
    files were just read, so this costs ~0.05 s for a 100-slice CT instead of a second pass
    over the whole cohort when the report is written."""
    h = hashlib.sha256()
    for f in sorted(str(p) for p in paths):
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def roi_region(image: sitk.Image, mask_arr: np.ndarray, margin_mm: float) -> tuple[list[int], list[int]]:
    """Index and size (x, y, z) of the ROI's bounding box plus ``margin_mm`` on every side,
    clipped to the scan (``mask_arr`` is not empty: conversion has checked)."""
    box = array_bbox(mask_arr)
    assert box is not None, "empty mask"
    index, extent = [], []
    for lo, hi, sp, n in zip(*box, image.GetSpacing(), image.GetSize()):
        pad = int(math.ceil(margin_mm / sp))
        a, b = max(0, int(lo) - pad), min(n - 1, int(hi) + pad)
        index.append(a)
        extent.append(b - a + 1)
    return index, extent


def write_image_and_mask(image: sitk.Image, mask_arr: np.ndarray, image_out: Path | str,
                         mask_out: Path | str, crop_margin_mm: float | None = None) -> dict[str, Any] | None:
    """Write the converted image and its uint8 mask (same geometry), compressed.

    The format follows the file names (the workflow uses NRRD, see
    :data:`radsurv.features.preprocess.CONVERTED_IMAGE_FILE`); gzip level 1 where the format
    honours a level: level 1 is 3-4x faster than the default for CT noise at a third
    more disk.

    With ``crop_margin_mm`` only the ROI's bounding box plus that margin is stored
    (physical coordinates unchanged: the same voxels, a smaller box; see
    :func:`radsurv.features.preprocess.conversion_margin_mm`) and its region is returned as
    ``{"index", "size", "scan_size"}`` (x, y, z voxels); else the whole scan and ``None``.
    """
    region = None
    mask_arr = np.asarray(mask_arr)
    if crop_margin_mm is not None:
        index, size = roi_region(image, mask_arr, float(crop_margin_mm))
        region = {"index": index, "size": size, "scan_size": [int(s) for s in image.GetSize()],
                  "margin_mm": float(crop_margin_mm),
                  "scan_min": float(sitk.GetArrayViewFromImage(image).min())}
        image = sitk.RegionOfInterest(image, size, index)
        mask_arr = mask_arr[index[2]:index[2] + size[2], index[1]:index[1] + size[1], index[0]:index[0] + size[0]]
    mask = sitk.GetImageFromArray(mask_arr.astype(np.uint8))
    mask.CopyInformation(image)
    for img, out in ((image, Path(image_out)), (mask, Path(mask_out))):
        out.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(img, str(out), useCompression=True, compressionLevel=1)
    return region


def convert_scan(
    scan: ScanRecord, roi_pattern: str, image_out: Path, mask_out: Path, roi_policy: str = "first",
    crop_margin_mm: float | None = None,
) -> dict[str, Any]:
    """Convert one scan to ``image_out`` and ``mask_out`` and return its provenance.

    ``crop_margin_mm``: store only the ROI's neighbourhood (see :func:`write_image_and_mask`);
    ``None`` stores the whole scan.

    ``roi_pattern`` is a case-insensitive regular expression searched in the
    ROI names (RTSTRUCT ROIName / SEG SegmentLabel). ``roi_policy`` decides
    between several matches: ``first`` (lowest ROI number), ``largest`` (most
    voxels), ``union`` or ``error``. Raises :class:`CaseError` for any problem
    of this case (slice gap, ROI not found, empty mask, ...).
    """
    if roi_policy not in ROI_POLICIES:
        raise ValueError(f"roi_policy must be one of {ROI_POLICIES}, got {roi_policy!r}")
    if scan.contour_type == "MASK":
        from radsurv.ingest.sheet import convert_sheet_scan

        return convert_sheet_scan(scan, image_out, mask_out, crop_margin_mm)
    geo = _check_geometry(scan)
    image, warnings, units = _read_image(scan, geo)
    padding = units.pop("_padding_mask", None)

    if scan.contour_type == "RTSTRUCT":
        mask_arr, roi_name, available, mwarn = _mask_from_rtstruct(image, scan, roi_pattern, roi_policy)
    elif scan.contour_type == "SEG":
        mask_arr, roi_name, available, mwarn = _mask_from_seg(image, geo, scan, roi_pattern, roi_policy)
    else:
        raise CaseError(STAGE_CONVERSION, f"unknown contour type {scan.contour_type!r}")
    warnings.extend(mwarn)
    voxels = int(mask_arr.sum())
    if voxels == 0:
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI '{roi_name}' gives an empty mask on series {scan.series_uid} "
            f"(contours smaller than a voxel or outside the field of view)",
        )
    if padding is not None and bool(np.any(padding & mask_arr)):
        raise CaseError(
            STAGE_CONVERSION,
            f"ROI '{roi_name}' covers {int(np.sum(padding & mask_arr))} padding voxels of series "
            f"{scan.series_uid} (outside the reconstructed field of view)",
        )
    region = write_image_and_mask(image, mask_arr, image_out, mask_out, crop_margin_mm)

    spacing = [float(s) for s in image.GetSpacing()]
    first = geo.first
    prov: dict[str, Any] = {
        "scan_id": scan.scan_id,
        "patient_id": scan.patient_id,
        "modality": scan.modality,
        "series_uid": scan.series_uid,
        "manufacturer": _s(first, "Manufacturer"),
        "model": _s(first, "ManufacturerModelName"),
        "kernel": "\\".join(str(v) for v in first.get("ConvolutionKernel", None) or [])
        if isinstance(first.get("ConvolutionKernel", None), (list, pydicom.multival.MultiValue))
        else _s(first, "ConvolutionKernel"),
        "n_slices": int(image.GetSize()[2]),
        "spacing": spacing,
        "size": [int(s) for s in image.GetSize()],
        "roi_name": roi_name,
        "roi_names_available": available,
        "voxel_count": voxels,
        "roi_volume_ml": voxels * float(np.prod(spacing)) / 1000.0,
        "contour_type": scan.contour_type,
        "pixel_type": image.GetPixelIDTypeAsString(),
        "warnings": warnings,
        "input_sha256": files_sha256([*scan.image_files, scan.contour_file]),
        "stored_region": region,
        **units,
    }
    for w in warnings:
        log.warning("%s: %s", scan.scan_id, w)
    log.info(
        "%s: converted series %s (%s, %d slices), ROI '%s' %d voxels (%.2f ml)",
        scan.scan_id, scan.series_uid, scan.modality, prov["n_slices"], roi_name, voxels, prov["roi_volume_ml"],
    )
    return prov
