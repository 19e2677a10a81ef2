"""The shared DICOM writer (radsurv.synthetic.dicom_writer) and the tests' tiny series (.small_series)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest

from radsurv.synthetic.dicom_writer import (
    CT_IMAGE_STORAGE,
    RT_STRUCTURE_SET_STORAGE,
    Contour,
    FileStamp,
    ImageSlice,
    Roi,
    StructureSetRefs,
    write_rtstruct,
    write_series,
)
from radsurv.synthetic.small_series import circle, make_ct, make_pet, make_rtstruct, square
from radsurv.synthetic.truth import ds_str

STAMP = FileStamp("1.2.826.0.1.3680043.8.498.7.0", "RADSURV_TEST", "ISO_IR 100")


def _slices(n: int) -> list[ImageSlice]:
    return [ImageSlice(f"{k:02d}.dcm", f"1.2.3.{k + 1}", np.full((4, 4), k, "<u2").tobytes(),
                       {"InstanceNumber": k + 1, "ImagePositionPatient": ["0", "0", ds_str(2.5 * k)]})
            for k in range(n)]


HEADER = {"Modality": "CT", "PatientID": "X1", "SeriesInstanceUID": "1.2.3.0", "Rows": 4, "Columns": 4,
          "BitsAllocated": 16, "BitsStored": 16, "HighBit": 15, "PixelRepresentation": 0, "SamplesPerPixel": 1,
          "PhotometricInterpretation": "MONOCHROME2"}


def test_series_files_carry_header_slice_tags_and_stamp(tmp_path: Path) -> None:
    paths = write_series(tmp_path / "ct", CT_IMAGE_STORAGE, HEADER, _slices(3), STAMP)
    assert [p.name for p in paths] == ["00.dcm", "01.dcm", "02.dcm"]
    for k, p in enumerate(paths):
        raw = p.read_bytes()
        assert raw[:128] == b"\0" * 128 and raw[128:132] == b"DICM"
        ds = pydicom.dcmread(p)
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPClassUID == ds.SOPClassUID == CT_IMAGE_STORAGE
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == f"1.2.3.{k + 1}"
        assert ds.file_meta.ImplementationClassUID == STAMP.implementation_class_uid
        assert ds.file_meta.ImplementationVersionName == "RADSURV_TEST"
        assert ds.SpecificCharacterSet == "ISO_IR 100"
        assert (ds.PatientID, ds.SeriesInstanceUID, ds.InstanceNumber) == ("X1", "1.2.3.0", k + 1)
        assert float(ds.ImagePositionPatient[2]) == 2.5 * k
        assert (ds.pixel_array == k).all()


def test_same_arguments_give_the_same_bytes(tmp_path: Path) -> None:
    a = write_series(tmp_path / "a", CT_IMAGE_STORAGE, HEADER, _slices(2), STAMP)
    b = write_series(tmp_path / "b", CT_IMAGE_STORAGE, HEADER, _slices(2), STAMP)
    assert [p.read_bytes() for p in a] == [p.read_bytes() for p in b]
    c = write_series(tmp_path / "c", CT_IMAGE_STORAGE, {**HEADER, "PatientID": "X2"}, _slices(2), STAMP)
    assert c[0].read_bytes() != a[0].read_bytes()


def test_rtstruct_references_rois_and_contour_data(tmp_path: Path) -> None:
    poly = np.array([[1.23456, -2.5, 7.0], [3.0, -2.5, 7.0], [3.0, 0.333333, 7.0]])
    refs = StructureSetRefs("1.9.4", study_uid="1.9.1", series_uid="1.9.2", image_uids=["1.9.5.1", "1.9.5.2"])
    rois = [Roi(1, "GTV-1", [Contour(poly, "1.9.5.2")], (255, 0, 0), "GTV"),
            Roi(2, "Body", [Contour(poly[:, :]), Contour(poly + [0, 0, 2.5])], (0, 255, 0))]
    path = write_rtstruct(tmp_path / "rs" / "rs.dcm", "1.9.6", {"Modality": "RTSTRUCT", "PatientID": "X1"},
                          refs, rois, fmt=ds_str, stamp=STAMP)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == RT_STRUCTURE_SET_STORAGE and ds.SOPInstanceUID == "1.9.6"
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    study = frame.RTReferencedStudySequence[0]
    series = study.RTReferencedSeriesSequence[0]
    assert (frame.FrameOfReferenceUID, study.ReferencedSOPInstanceUID, series.SeriesInstanceUID) == (
        "1.9.4", "1.9.1", "1.9.2")
    assert [r.ReferencedSOPInstanceUID for r in series.ContourImageSequence] == ["1.9.5.1", "1.9.5.2"]
    assert [(r.ROINumber, r.ROIName, r.ReferencedFrameOfReferenceUID) for r in ds.StructureSetROISequence] == [
        (1, "GTV-1", "1.9.4"), (2, "Body", "1.9.4")]
    # only ROIs with a type get an observation
    assert [(o.ReferencedROINumber, o.RTROIInterpretedType) for o in ds.RTROIObservationsSequence] == [(1, "GTV")]
    gtv, body = ds.ROIContourSequence
    assert list(gtv.ROIDisplayColor) == [255, 0, 0] and list(body.ROIDisplayColor) == [0, 255, 0]
    c = gtv.ContourSequence[0]
    assert c.ContourImageSequence[0].ReferencedSOPInstanceUID == "1.9.5.2"
    assert c.ContourGeometricType == "CLOSED_PLANAR" and c.NumberOfContourPoints == 3
    assert [str(v) for v in c.ContourData] == ["1.2346", "-2.5", "7", "3", "-2.5", "7", "3", "0.3333", "7"]
    assert "ContourImageSequence" not in body.ContourSequence[0]
    assert [float(v) for v in body.ContourSequence[1].ContourData][2::3] == [9.5] * 3


def test_rtstruct_without_study_or_image_references(tmp_path: Path) -> None:
    rois = [Roi(3, "A", [Contour(np.zeros((0, 3)))])]
    ds = pydicom.dcmread(write_rtstruct(tmp_path / "a.dcm", "1.8.1", {}, StructureSetRefs("1.8.4"), rois))
    frame = ds.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == "1.8.4" and "RTReferencedStudySequence" not in frame
    assert "RTROIObservationsSequence" not in ds
    assert ds.ROIContourSequence[0].ContourSequence[0].NumberOfContourPoints == 0
    refs = StructureSetRefs("1.8.4", study_uid="1.8.2", series_uid="1.8.3")
    series = pydicom.dcmread(write_rtstruct(tmp_path / "b.dcm", "1.8.1", {}, refs, [])) \
        .ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert series.SeriesInstanceUID == "1.8.3" and "ContourImageSequence" not in series


def test_tiny_ct_has_the_documented_values(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct", n_slices=4, skip=(1,), dz=2.5, z0=-1.0)
    assert [f.name for f in ct["files"]] == ["ct_000.dcm", "ct_002.dcm", "ct_003.dcm"]
    assert len(set(ct["sops"])) == 3
    for f, k in zip(ct["files"], (0, 2, 3)):
        ds = pydicom.dcmread(f)
        assert ds.SeriesInstanceUID == ct["series_uid"] and ds.FrameOfReferenceUID == ct["frame_uid"]
        assert [float(v) for v in ds.ImagePositionPatient] == [-16.0, -16.0, -1.0 + 2.5 * k]
        hu = ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        assert (hu == 10 * k + np.arange(32)[:, None]).all()
    rs = pydicom.dcmread(make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [square(-2, 2, -3, 3, 0.0)]),
                                                                 (2, "C", [circle(0, 0, 5, 2.5, n=8)])]))
    series = rs.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0].RTReferencedSeriesSequence[0]
    assert [r.ReferencedSOPInstanceUID for r in series.ContourImageSequence] == ct["sops"]
    assert [str(v) for v in rs.ROIContourSequence[0].ContourSequence[0].ContourData][:3] == [
        "-2.000000", "-3.000000", "0.000000"]
    assert rs.ROIContourSequence[1].ContourSequence[0].NumberOfContourPoints == 8


def test_tiny_pet_stores_the_concentration_with_per_slice_slopes(tmp_path: Path) -> None:
    pet = make_pet(tmp_path / "pt", decay_correction="NONE", acq_step_s=60, weight=None)
    slopes = []
    for k, f in enumerate(pet["files"]):
        ds = pydicom.dcmread(f)
        assert ds.Modality == "PT" and ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.128"
        assert ds.AcquisitionTime == f"11{k:02d}00"
        assert "PatientWeight" not in ds and ds.CorrectedImage == "ATTN"
        slopes.append(float(ds.RescaleSlope))
        assert ds.pixel_array * float(ds.RescaleSlope) == pytest.approx(np.full((32, 32), 9000.0), rel=2e-4)
    assert len(set(slopes)) == len(slopes) == 10
