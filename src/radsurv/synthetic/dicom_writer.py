"""The one DICOM writer of the synthetic cohorts and the tests: image series and RT structure sets.

Everything is given as plain arguments (UIDs, header tags, pixel bytes, polygons in
patient mm); nothing here draws a random number or invents a UID, so the same
arguments give byte-identical files. Used by :mod:`radsurv.synthetic.demo` (the demo
cohort), :mod:`radsurv.synthetic.faulty` (its broken exports) and
:mod:`radsurv.synthetic.small_series` (the tiny known-value series of the unit tests).

* :func:`new_dataset` / :func:`file_meta`: a dataset (or a bare file meta) of an SOP class,
  Explicit VR Little Endian, optionally stamped with an implementation UID
  (:class:`FileStamp`);
* :func:`write_series`: an image series, one file per :class:`ImageSlice` (shared header
  tags + the slice's own tags and pixel bytes);
* :func:`write_rtstruct`: an RT Structure Set of :class:`Roi` (CLOSED_PLANAR contours)
  with its references (:class:`StructureSetRefs`) to a frame of reference, study, series
  and images.

Tag order does not matter: pydicom writes a dataset's elements sorted by tag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian

__all__ = [
    "CT_IMAGE_STORAGE",
    "DETACHED_STUDY_MANAGEMENT",
    "MEDIA_STORAGE_DIRECTORY",
    "MR_IMAGE_STORAGE",
    "PET_IMAGE_STORAGE",
    "RT_STRUCTURE_SET_STORAGE",
    "Contour",
    "FileStamp",
    "ImageSlice",
    "Roi",
    "StructureSetRefs",
    "file_meta",
    "fixed6",
    "image_ref",
    "new_dataset",
    "raw_decimal_strings",
    "set_tags",
    "write_rtstruct",
    "write_series",
]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"
RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
CONTOUR_DATA_TAG = Tag(0x3006, 0x0050)
#: The image pixel module of every synthetic image: one 16-bit unsigned grey-level sample.
MONOCHROME_16BIT: dict[str, Any] = {"SamplesPerPixel": 1, "PhotometricInterpretation": "MONOCHROME2",
                                    "BitsAllocated": 16, "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 0}


# ---------------------------------------------------------------------------
# datasets
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class FileStamp:
    """What a writer puts in every file besides the content: the file meta's implementation
    class UID and version name and the dataset's SpecificCharacterSet. ``None`` leaves the
    element out (pydicom then writes its own implementation UID and version)."""

    implementation_class_uid: str | None = None
    implementation_version: str | None = None
    character_set: str | None = None


def file_meta(sop_class: str, sop_uid: str, stamp: FileStamp | None = None) -> FileMetaDataset:
    """The file meta information of an Explicit VR Little Endian file of ``sop_class``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if stamp is not None and stamp.implementation_class_uid is not None:
        meta.ImplementationClassUID = stamp.implementation_class_uid
    if stamp is not None and stamp.implementation_version is not None:
        meta.ImplementationVersionName = stamp.implementation_version
    return meta


def set_tags(ds: Dataset, tags: Mapping[str, Any]) -> Dataset:
    """Set each keyword of ``tags`` on ``ds`` (values as pydicom accepts them); ``ds``."""
    for keyword, value in tags.items():
        setattr(ds, keyword, value)
    return ds


def new_dataset(sop_class: str, sop_uid: str, tags: Mapping[str, Any] | None = None,
                stamp: FileStamp | None = None) -> FileDataset:
    """A file dataset (zero preamble) of ``sop_class`` / ``sop_uid`` with ``tags`` set."""
    ds = FileDataset("", {}, file_meta=file_meta(sop_class, sop_uid, stamp), preamble=b"\0" * 128)
    if stamp is not None and stamp.character_set is not None:
        ds.SpecificCharacterSet = stamp.character_set
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return set_tags(ds, tags or {})


# ---------------------------------------------------------------------------
# image series
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageSlice:
    """One image file of a series: its name, SOP instance UID, pixel bytes and own tags
    (InstanceNumber, ImagePositionPatient, ...)."""

    file_name: str
    sop_uid: str
    pixel_data: bytes
    tags: Mapping[str, Any]


def write_series(folder: Path, sop_class: str, header: Mapping[str, Any], slices: Iterable[ImageSlice],
                 stamp: FileStamp | None = None) -> list[Path]:
    """Write one file per slice into ``folder`` (created): ``header`` tags, then the slice's
    tags and pixel data. Returns the paths written, in order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for s in slices:
        ds = new_dataset(sop_class, s.sop_uid, header, stamp)
        set_tags(ds, s.tags)
        ds.PixelData = s.pixel_data
        path = folder / s.file_name
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------
# RT structure sets
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Contour:
    """A closed planar polygon, ``points`` (n, 3) x, y, z in patient mm, optionally drawn on
    the image ``image_uid`` (then listed in the contour's ContourImageSequence)."""

    points: np.ndarray
    image_uid: str | None = None


@dataclass(frozen=True)
class Roi:
    """A structure: number, name, contours, display colour and (if given) its RT ROI
    interpreted type (GTV, ORGAN, EXTERNAL; an RTROIObservationsSequence item)."""

    number: int
    name: str
    contours: Sequence[Contour]
    colour: Sequence[int] = (255, 0, 0)
    interpreted_type: str | None = None


@dataclass(frozen=True)
class StructureSetRefs:
    """What the structure set refers to: always its frame of reference; the study and series
    (RTReferencedStudySequence) when ``study_uid`` is given; the series' images
    (ContourImageSequence) when ``image_uids`` is given."""

    frame_uid: str
    study_uid: str | None = None
    series_uid: str | None = None
    image_uids: Sequence[str] | None = None
    image_class: str = CT_IMAGE_STORAGE


def fixed6(v: float) -> str:
    """A coordinate with 6 decimals (the tests' ContourData format)."""
    return f"{v:.6f}"


def raw_decimal_strings(tag: Any, values: Iterable[str]) -> RawDataElement:
    """A DS element of ready-formatted ``values``, already encoded (building ~10^4 DS objects is slow)."""
    raw = "\\".join(values).encode("ascii")
    if len(raw) % 2:
        raw += b" "
    return RawDataElement(Tag(tag), "DS", len(raw), raw, 0, False, True)


def image_ref(sop_uid: str, sop_class: str = CT_IMAGE_STORAGE) -> Dataset:
    """A ContourImageSequence item: the referenced image's SOP class and instance UID."""
    r = Dataset()
    r.ReferencedSOPClassUID = sop_class
    r.ReferencedSOPInstanceUID = sop_uid
    return r


def _referenced_frame(refs: StructureSetRefs) -> Dataset:
    """The ReferencedFrameOfReferenceSequence item (frame -> study -> series -> images)."""
    frame = Dataset()
    frame.FrameOfReferenceUID = refs.frame_uid
    if refs.study_uid is not None:
        series = Dataset()
        series.SeriesInstanceUID = refs.series_uid
        if refs.image_uids is not None:
            series.ContourImageSequence = DicomSequence([image_ref(u, refs.image_class) for u in refs.image_uids])
        study = Dataset()
        study.ReferencedSOPClassUID = DETACHED_STUDY_MANAGEMENT
        study.ReferencedSOPInstanceUID = refs.study_uid
        study.RTReferencedSeriesSequence = DicomSequence([series])
        frame.RTReferencedStudySequence = DicomSequence([study])
    return frame


def _roi_contour(roi: Roi, fmt: Callable[[float], str], image_class: str) -> Dataset:
    """The ROIContourSequence item of ``roi``; ContourData already encoded (see :func:`raw_decimal_strings`)."""
    rc = Dataset()
    rc.ROIDisplayColor = list(roi.colour)
    rc.ReferencedROINumber = roi.number
    contours = []
    for contour in roi.contours:
        c = Dataset()
        if contour.image_uid is not None:
            c.ContourImageSequence = DicomSequence([image_ref(contour.image_uid, image_class)])
        c.ContourGeometricType = "CLOSED_PLANAR"
        c.NumberOfContourPoints = len(contour.points)
        c[CONTOUR_DATA_TAG] = raw_decimal_strings(CONTOUR_DATA_TAG, map(fmt, np.ravel(contour.points)))
        contours.append(c)
    rc.ContourSequence = DicomSequence(contours)
    return rc


def _roi_items(rois: Sequence[Roi], frame_uid: str) -> tuple[list[Dataset], list[Dataset]]:
    """StructureSetROISequence and RTROIObservationsSequence items (the latter for ROIs with a type)."""
    ss_rois, observations = [], []
    for roi in rois:
        r = Dataset()
        r.ROINumber = roi.number
        r.ReferencedFrameOfReferenceUID = frame_uid
        r.ROIName = roi.name
        r.ROIGenerationAlgorithm = "MANUAL"
        ss_rois.append(r)
        if roi.interpreted_type is not None:
            ob = Dataset()
            ob.ObservationNumber = roi.number
            ob.ReferencedROINumber = roi.number
            ob.RTROIInterpretedType = roi.interpreted_type
            ob.ROIInterpreter = ""
            observations.append(ob)
    return ss_rois, observations


def write_rtstruct(path: Path, sop_uid: str, tags: Mapping[str, Any], refs: StructureSetRefs,
                   rois: Sequence[Roi], fmt: Callable[[float], str] = fixed6,
                   stamp: FileStamp | None = None) -> Path:
    """Write an RT Structure Set to ``path`` (folder created): ``tags`` (patient, study, series,
    StructureSetLabel, ...), the references ``refs`` and the ``rois``, each coordinate
    formatted by ``fmt``. Returns ``path``."""
    path = Path(path)
    ds = new_dataset(RT_STRUCTURE_SET_STORAGE, sop_uid, tags, stamp)
    ds.ReferencedFrameOfReferenceSequence = DicomSequence([_referenced_frame(refs)])
    ss_rois, observations = _roi_items(rois, refs.frame_uid)
    ds.StructureSetROISequence = DicomSequence(ss_rois)
    ds.ROIContourSequence = DicomSequence([_roi_contour(r, fmt, refs.image_class) for r in rois])
    for rc in ds.ROIContourSequence:  # keep the raw ContourData as it is when writing
        for c in rc.ContourSequence:
            c.set_original_encoding(False, True, c._character_set)
    if observations:
        ds.RTROIObservationsSequence = DicomSequence(observations)
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path
