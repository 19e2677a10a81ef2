"""Discovery's per-file step: read one file's DICOM header and say what it contributes.

:func:`examine_all` classifies every file below the cohort folder, in one or several
processes, without looking at any other file: skipped (DICOMDIR, hidden, other
objects), a QC problem (empty, truncated, unreadable), non-DICOM, a contour object
(RTSTRUCT or DICOM-SEG with the series and images it references) or an image
instance (with its series' attributes). :func:`radsurv.ingest.discovery.discover`
then groups and pairs them.

UIDs read here are used only to pair contours with images; files are named by
:func:`radsurv.privacy.file_pseudonym` of their path, never by the path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag

from radsurv.ingest.dicomattrs import attr_str, float_tuple, int_or_none, norm_time
from radsurv.privacy import file_pseudonym

log = logging.getLogger(__name__)

IMAGE_MODALITIES = ("CT", "MR", "PT")
RTSTRUCT_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.481.3"
SEG_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
MEDIA_STORAGE_DIRECTORY_SOP_CLASS = "1.2.840.10008.1.3.10"


@dataclass
class ImageFile:
    """One image instance (file) of a series, as discovery needs it."""

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
class ImageSeries:
    """One image series (by SeriesInstanceUID) and its instances, as discovery needs it."""

    series_uid: str
    patient_id: str
    study_uid: str
    modality: str
    date: str  # YYYYMMDD or ""  (never written out)
    time: str  # HHMMSS.ffffff or ""
    series_number: int | None
    localizer: bool
    series_time: str = ""
    instances: list[ImageFile] = field(default_factory=list)


@dataclass
class ContourFile:
    """One contour object (RTSTRUCT or DICOM-SEG) and what it references."""

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


def rel_path(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` (POSIX), or the whole path when it is not below ``root``."""
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
    ts = attr_str(meta, "TransferSyntaxUID") if meta is not None else ""
    native = {"1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", ""}
    if ts not in native:
        return None
    rows, cols = int_or_none(ds.get("Rows")), int_or_none(ds.get("Columns"))
    bits = int_or_none(ds.get("BitsAllocated"))
    if not rows or not cols or not bits:
        return None
    spp = int_or_none(ds.get("SamplesPerPixel")) or 1
    frames = int_or_none(ds.get("NumberOfFrames")) or 1
    return rows * cols * spp * frames * bits // 8


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


def _add_sops(items: Any, sops: set[str]) -> None:
    """Add the ReferencedSOPInstanceUID of every item of a sequence (None = empty) to ``sops``."""
    for item in items or []:
        sop = attr_str(item, "ReferencedSOPInstanceUID")
        if sop:
            sops.add(sop)


def _add_series(item: pydicom.Dataset, series: list[str]) -> None:
    """Append the item's SeriesInstanceUID to ``series`` (once, in first-seen order)."""
    uid = attr_str(item, "SeriesInstanceUID")
    if uid and uid not in series:
        series.append(uid)


def _rtstruct_refs(ds: pydicom.Dataset) -> tuple[list[str], set[str], int, int]:
    """Referenced series UIDs, referenced SOP instance UIDs, #ROIs, #contours with data."""
    series: list[str] = []
    sops: set[str] = set()
    for frame in ds.get("ReferencedFrameOfReferenceSequence", []) or []:
        for study in frame.get("RTReferencedStudySequence", []) or []:
            for ser in study.get("RTReferencedSeriesSequence", []) or []:
                _add_series(ser, series)
                _add_sops(ser.get("ContourImageSequence", []), sops)
    n_contours = 0
    for roi in ds.get("ROIContourSequence", []) or []:
        for contour in roi.get("ContourSequence", []) or []:
            if _has_contour_data(contour):
                n_contours += 1
            _add_sops(contour.get("ContourImageSequence", []), sops)
    n_rois = len(ds.get("StructureSetROISequence", []) or [])
    return series, sops, n_rois, n_contours


def _seg_refs(ds: pydicom.Dataset) -> tuple[list[str], set[str], int]:
    """Referenced series UIDs, referenced SOP instance UIDs and #segments of a DICOM-SEG."""
    series: list[str] = []
    sops: set[str] = set()
    for ser in ds.get("ReferencedSeriesSequence", []) or []:
        _add_series(ser, series)
        _add_sops(ser.get("ReferencedInstanceSequence", []), sops)
    groups = list(ds.get("PerFrameFunctionalGroupsSequence", []) or [])
    groups += list(ds.get("SharedFunctionalGroupsSequence", []) or [])
    for group in groups:
        for deriv in group.get("DerivationImageSequence", []) or []:
            _add_sops(deriv.get("SourceImageSequence", []), sops)
    _add_sops(ds.get("SourceImageSequence", []), sops)
    return series, sops, len(ds.get("SegmentSequence", []) or [])


def _recency(ds: pydicom.Dataset, kind: str) -> str:
    """Sortable date+time of a contour object (its first dated creation attribute pair)."""
    pairs = [("ContentDate", "ContentTime")]
    if kind == "RTSTRUCT":
        pairs.insert(0, ("StructureSetDate", "StructureSetTime"))
    pairs += [("InstanceCreationDate", "InstanceCreationTime"), ("SeriesDate", "SeriesTime")]
    for dkey, tkey in pairs:
        date = attr_str(ds, dkey)
        if date:
            return date[:8] + norm_time(attr_str(ds, tkey))
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
        if meta is not None and attr_str(meta, "MediaStorageSOPClassUID") == MEDIA_STORAGE_DIRECTORY_SOP_CLASS:
            return ds, offset
        raise _TruncatedHeader("header ends before SOP Class UID / Modality")
    return ds, offset


@dataclass
class Examined:
    """What one file contributes to discovery, found without looking at any other file."""

    kind: str  # skip | qc | non_dicom | contour | image | truncated_image
    qc: tuple[str, str, str, str] | None = None  # (patient, scan, status, reason)
    contour: ContourFile | None = None
    series: ImageSeries | None = None  # the image's series, without instances
    instance: ImageFile | None = None


def _skip_by_name(path: Path, shown: str) -> Examined | None:
    """``skip`` for DICOMDIR and hidden files (by name alone), else None."""
    if path.name.upper() == "DICOMDIR":
        log.debug("skipping DICOMDIR %s", shown)
        return Examined("skip")
    if path.name.startswith("."):
        # Hidden files: OS metadata (.DS_Store, ._* resource forks) and tool markers
        # such as Snakemake's .snakemake_timestamp; never images.
        log.debug("skipping hidden file %s", shown)
        return Examined("skip")
    return None


def _read_or_problem(path: Path, shown: str) -> Examined | tuple[pydicom.Dataset, int, int]:
    """``(header, file size, pixel data offset)``, or what the file is when it has no usable header:
    a QC warning (inaccessible, empty, truncated or corrupt DICOM) or ``non_dicom``."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        return Examined("qc", ("", "", "warning", f"file {shown} cannot be accessed ({exc.strerror}); ignored"))
    if size == 0:
        return Examined("qc", ("", "", "warning", f"file {shown} is empty (0 bytes); ignored"))
    try:
        ds, pixel_offset = _read_header(path)
    except _TruncatedHeader:
        return Examined("qc", ("", "", "warning",
                               f"file {shown} has a DICOM preamble but its header is truncated; ignored"))
    except Exception as exc:  # noqa: BLE001 - any parser failure is a per-file problem
        return Examined("qc", ("", "", "warning", f"file {shown} looks like DICOM but cannot be read (truncated or "
                                                   f"corrupt: {type(exc).__name__}); ignored"))
    if ds is None:
        return Examined("non_dicom")
    return ds, size, pixel_offset


def _examine_image(ds: pydicom.Dataset, path: Path, rel: str, size: int, pixel_offset: int) -> Examined:
    """An image file: its instance and series, or a QC warning when truncated or without series UID."""
    shown = file_pseudonym(rel)
    pid = attr_str(ds, "PatientID")
    series_uid = attr_str(ds, "SeriesInstanceUID")
    instance = ImageFile(path=path.resolve(), rel=rel, sop_uid=attr_str(ds, "SOPInstanceUID"),
                         position=float_tuple(ds.get("ImagePositionPatient")),
                         orientation=float_tuple(ds.get("ImageOrientationPatient")),
                         instance_number=int_or_none(ds.get("InstanceNumber")),
                         acquisition_time=attr_str(ds, "AcquisitionTime"),
                         acquisition_date=attr_str(ds, "AcquisitionDate"),
                         multiframe=(int_or_none(ds.get("NumberOfFrames")) or 1) > 1)
    expected = _expected_pixel_bytes(ds)
    # pixel data element: tag + length (8 bytes implicit VR, 12 explicit) + values
    if expected is not None and size < pixel_offset + 8 + expected:
        return Examined("truncated_image", (pid, "", "warning",
                                            f"image file {shown} of series {series_uid} is truncated "
                                            f"({size} bytes, but the pixel data alone needs {expected}); "
                                            f"the file is ignored"), instance=instance)
    if not series_uid:
        return Examined("qc", (pid, "", "warning", f"image file {shown} has no SeriesInstanceUID; ignored"))
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    ser = ImageSeries(
        series_uid=series_uid,
        patient_id=pid,
        study_uid=attr_str(ds, "StudyInstanceUID"),
        modality=attr_str(ds, "Modality").upper(),
        date=(attr_str(ds, "StudyDate") or attr_str(ds, "SeriesDate") or attr_str(ds, "AcquisitionDate")
              or attr_str(ds, "ContentDate")),
        time=attr_str(ds, "StudyTime") or attr_str(ds, "SeriesTime"),
        series_number=int_or_none(ds.get("SeriesNumber")),
        localizer="LOCALIZER" in image_type,
        series_time=attr_str(ds, "SeriesTime"),
    )
    return Examined("image", series=ser, instance=instance)


def _examine(path: Path, root: Path) -> Examined:
    """Read one file's header and classify it (the per-file part of discovery)."""
    rel = rel_path(path, root)
    shown = file_pseudonym(rel)  # never the path: file and folder names can be UIDs or patient names
    skipped = _skip_by_name(path, shown)
    if skipped is not None:
        return skipped
    read = _read_or_problem(path, shown)
    if isinstance(read, Examined):
        return read
    ds, size, pixel_offset = read
    meta = getattr(ds, "file_meta", None)
    sop_class = attr_str(ds, "SOPClassUID") or (attr_str(meta, "MediaStorageSOPClassUID") if meta else "")
    if sop_class == MEDIA_STORAGE_DIRECTORY_SOP_CLASS or "DirectoryRecordSequence" in ds:
        log.debug("skipping DICOMDIR-type file %s", shown)
        return Examined("skip")
    modality = attr_str(ds, "Modality").upper()
    pid = attr_str(ds, "PatientID")
    sop_uid = attr_str(ds, "SOPInstanceUID")

    if sop_class == RTSTRUCT_SOP_CLASS or modality == "RTSTRUCT":
        ref_series, ref_sops, n_rois, n_cont = _rtstruct_refs(ds)
        return Examined("contour", contour=ContourFile(path, rel, "RTSTRUCT", pid, sop_uid, ref_series, ref_sops,
                                                       _recency(ds, "RTSTRUCT"), n_rois, n_cont))
    if sop_class == SEG_SOP_CLASS or modality == "SEG":
        ref_series, ref_sops, n_seg = _seg_refs(ds)
        return Examined("contour", contour=ContourFile(path, rel, "SEG", pid, sop_uid, ref_series, ref_sops,
                                                       _recency(ds, "SEG"), n_seg, n_seg))
    if modality not in IMAGE_MODALITIES or "Rows" not in ds:
        log.debug("ignoring %s object %s", modality or "unknown", shown)
        return Examined("skip")
    return _examine_image(ds, path, rel, size, pixel_offset)


def _examine_chunk(args: tuple[list[Path], Path]) -> list[Examined]:
    """:func:`_examine` the files of one chunk (the task of one worker process)."""
    paths, root = args
    return [_examine(p, root) for p in paths]


def examine_all(paths: list[Path], root: Path, workers: int) -> list[Examined]:
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
