"""Tests of DICOM ingestion (radsurv.ingest.discovery, .images, .rtstruct, .seg, .convert): discovery,
geometry checks, rasterisation, SEG and PHI hygiene."""

from __future__ import annotations

import gzip
import logging
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from radsurv.errors import CaseError
from radsurv.ingest.contours import physical_to_continuous_index
from radsurv.ingest.convert import convert_scan
from radsurv.ingest.discovery import discover
from radsurv.ingest.records import Discovery, ScanRecord, read_manifest, safe, write_discovery
from radsurv.privacy import file_pseudonym as F
from radsurv.privacy import header_uids, uid_pseudonym
from radsurv.qc import read_qc
from radsurv.synthetic.small_series import circle, make_ct, make_rtstruct, square

CT_SOP = "1.2.840.10008.5.1.4.1.1.2"
RTSTRUCT_SOP = "1.2.840.10008.5.1.4.1.1.481.3"

# geometry of the synthetic CT: 32x32 pixels of 1 mm, origin (-16, -16), 2 mm slices from z=0
NPIX = 32
ORIGIN_XY = (-16.0, -16.0)
DZ = 2.0


# ---------------------------------------------------------------------------
# builders
# ---------------------------------------------------------------------------


def scan_for(ct: dict[str, object], rs: Path, modality: str = "CT") -> ScanRecord:
    files = [str(f) for f in ct["files"]]  # type: ignore[union-attr]
    return ScanRecord("P001_S1", "P001", 1, 0, modality, str(ct["series_uid"]), str(ct["study_uid"]),
                      len(files), files, str(rs), "RTSTRUCT")


def z_of(k: int) -> float:
    return k * DZ


def reasons(disc: Discovery) -> str:
    return "\n".join(f"{q['status']}: {q['reason']}" for q in disc.qc)


# ---------------------------------------------------------------------------
# IBSI CT phantom
# ---------------------------------------------------------------------------


def test_ibsi_phantom_matches_reference_nifti(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "ibsi" / "ct_phantom"
    disc = discover(root)
    assert len(disc.scans) == 1, reasons(disc)
    scan = disc.scans[0]
    assert scan.contour_type == "RTSTRUCT" and scan.modality == "CT" and scan.n_images == 60
    assert not [q for q in disc.qc if q["status"] == "excluded"]

    prov = convert_scan(scan, r"^gtv-1$", tmp_path / "img.nii.gz", tmp_path / "mask.nii.gz")
    img = sitk.ReadImage(str(tmp_path / "img.nii.gz"))
    ref = sitk.ReadImage(str(root / "nifti" / "image" / "phantom.nii.gz"))
    assert img.GetSize() == ref.GetSize()
    np.testing.assert_allclose(img.GetOrigin(), ref.GetOrigin(), atol=1e-3)
    np.testing.assert_allclose(img.GetSpacing(), ref.GetSpacing(), atol=1e-3)
    np.testing.assert_allclose(img.GetDirection(), ref.GetDirection(), atol=1e-6)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(ref))
    assert img.GetPixelID() == sitk.sitkInt16  # HU, rescale applied
    # the bytes of the 60 CT files + the RTSTRUCT, hashed where conversion read them
    import hashlib

    h = hashlib.sha256()
    for f in sorted([*scan.image_files, scan.contour_file]):
        h.update(Path(f).read_bytes())
    assert prov["input_sha256"] == h.hexdigest()

    mask = sitk.ReadImage(str(tmp_path / "mask.nii.gz"))
    ref_mask = sitk.ReadImage(str(root / "nifti" / "mask" / "mask.nii.gz"))
    assert mask.GetPixelID() == sitk.sitkUInt8
    np.testing.assert_allclose(mask.GetOrigin(), img.GetOrigin(), atol=1e-6)
    np.testing.assert_allclose(mask.GetSpacing(), img.GetSpacing(), atol=1e-6)
    a = sitk.GetArrayFromImage(mask) > 0
    b = sitk.GetArrayFromImage(ref_mask) > 0
    dice = 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())
    print(f"IBSI CT phantom GTV-1: Dice={dice:.5f}, voxels ours={a.sum()} IBSI={b.sum()}")
    assert dice >= 0.98
    assert abs(int(a.sum()) - int(b.sum())) <= 0.01 * b.sum()
    assert prov["voxel_count"] == int(a.sum())
    assert prov["roi_name"] == "GTV-1" and prov["roi_names_available"] == ["GTV-1"]
    assert prov["n_slices"] == 60 and prov["size"] == [204, 201, 60]


# ---------------------------------------------------------------------------
# public sample data with broken references
# ---------------------------------------------------------------------------


def test_dicom_samples_broken_references(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "dicom-samples"
    disc = discover(root)  # must not raise
    text = reasons(disc)
    # rt-utils: wrong image references and missing series reference
    # files are named by the pseudonym of their path relative to the cohort folder (radsurv.privacy)
    assert f"{F('rt-utils/mock_data/invalid_reference_rt.dcm')} references 5 images" in text
    assert f"{F('rt-utils/mock_data/non_existent_reference_rt.dcm')} references 3 images" in text
    # pydicom: structure set on a series that is not there
    # (UIDs appear as pseudonyms: radsurv.privacy)
    missing_series = uid_pseudonym("1.2.826.0.1.3680043.8.498.2010020400001.2.1.1")
    assert (f"{F('pydicom/rtstruct.dcm')} references series {missing_series} "
            "which is not in the input folder") in text
    # dicompyler: 97 of 98 slices are missing
    assert "97 of which are not in the input folder" in text
    # non-DICOM files ignored (one summary row)
    assert "non-DICOM file(s) ignored: file-" in text and "LICENSE" not in text
    # the valid rt-utils structure set is paired with its two-slice CT
    by_file = {Path(s.contour_file).name: s for s in disc.scans}
    assert "rt.dcm" in by_file
    assert by_file["rt.dcm"].series_uid == uid_pseudonym("2.16.840.1.114362.1.11940992.23790159890.563423471.893.88")
    assert by_file["rt.dcm"].scan_id == "PHANTOM-EXAMPLE_S1"
    for q in disc.qc:
        assert q["stage"] == "discovery" and q["status"] in ("excluded", "warning")


def test_empty_rtstruct_reason(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "in" / "ct")
    make_rtstruct(tmp_path / "in" / "rs_empty.dcm", ct, [(1, "GTV", [])])
    disc = discover(tmp_path / "in")
    assert disc.scans == []
    text = reasons(disc)
    assert f"excluded: RTSTRUCT {F('rs_empty.dcm')} is empty: 1 ROIs defined but no contour data" in text
    assert "has no RTSTRUCT or SEG referencing it: not analysable" in text


def test_seg_dcmqi_liver(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "dicom-samples" / "dcmqi" / "segmentations"
    disc = discover(root)
    assert len(disc.scans) == 1
    scan = disc.scans[0]
    assert scan.contour_type == "SEG" and scan.n_images == 3
    assert "2 contour objects" in reasons(disc)
    liver = ScanRecord(**{**asdict(scan), "contour_file": str(root / "liver.dcm")})
    prov = convert_scan(liver, "liver", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    ours = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "m.nii.gz"))) > 0
    ref_img = sitk.ReadImage(str(root / "liver_seg.nrrd"))
    ref = sitk.GetArrayFromImage(ref_img) > 0
    assert prov["voxel_count"] == int(ref.sum())
    np.testing.assert_array_equal(ours, ref)
    with pytest.raises(CaseError, match="available: 'Liver'"):
        convert_scan(liver, "spleen", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")


# ---------------------------------------------------------------------------
# synthetic rasterisation
# ---------------------------------------------------------------------------


def test_exact_voxel_counts(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct")
    # edges on half-pixel positions: pixel centres are at integer mm
    sq = [square(-5.5, 4.5, -5.5, 4.5, z_of(k)) for k in (2, 3, 4)]  # 10x10 on 3 slices
    hole = [square(-5.5, 4.5, -5.5, 4.5, z_of(6)), square(-2.5, 1.5, -2.5, 1.5, z_of(6))]  # 100-16
    two = [square(-10.5, -7.5, -10.5, -7.5, z_of(8)), square(5.5, 7.5, 5.5, 7.5, z_of(8))]  # 9+4
    circ = [circle(0.0, 0.0, 5.3, z_of(1))]
    tiny = [square(-0.5, 1.5, -0.5, 1.5, z_of(5))]  # exactly 2x2 pixel centres: no rim allowed
    rs = make_rtstruct(
        tmp_path / "rs.dcm",
        ct,
        [(1, "GTV-square", sq), (2, "GTV-hole", hole), (3, "GTV-two", two), (4, "GTV-circle", circ),
         (5, "GTV-tiny", tiny)],
    )
    scan = scan_for(ct, rs)
    a, b = np.meshgrid(np.arange(-16, 16), np.arange(-16, 16))
    circle_count = int((a**2 + b**2 < 5.3**2).sum())
    expected = {"square": 300, "hole": 84, "two": 13, "circle": circle_count, "tiny": 4}
    for name, count in expected.items():
        prov = convert_scan(scan, f"gtv-{name}$", tmp_path / "i.nii.gz", tmp_path / f"m_{name}.nii.gz")
        assert prov["voxel_count"] == count, name
        m = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / f"m_{name}.nii.gz")))
        assert int(m.sum()) == count
    # hole: the centre pixel (x=0,y=0 -> index 16,16) of slice 6 is empty, the ring is full
    m = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "m_hole.nii.gz")))
    assert m[6, 16, 16] == 0 and m[6, 16 - 4, 16] == 1
    # geometry of the mask equals the image and HU are applied
    img = sitk.ReadImage(str(tmp_path / "i.nii.gz"))
    mask = sitk.ReadImage(str(tmp_path / "m_hole.nii.gz"))
    assert mask.GetOrigin() == img.GetOrigin() and mask.GetSpacing() == img.GetSpacing()
    assert mask.GetDirection() == img.GetDirection()
    arr = sitk.GetArrayFromImage(img)
    assert arr.dtype == np.int16
    assert arr[3, 5, 0] == 10 * 3 + 5  # stored 1024 + 10k + row, intercept -1024
    np.testing.assert_allclose(img.GetOrigin(), (-16, -16, 0))
    np.testing.assert_allclose(img.GetSpacing(), (1, 1, DZ))
    assert prov["kernel"] == "B30f" and prov["manufacturer"] == "SynthCo"


def test_contour_slightly_off_plane_and_outside_fov(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct")
    polys = [square(-5.5, 4.5, -5.5, 4.5, z_of(3) + 0.3)]  # 0.15 slice off-plane: accepted
    outside = [square(-5.5, 4.5, -5.5, 4.5, z_of(30))]  # beyond the last slice
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", polys), (2, "Far", outside)])
    prov = convert_scan(scan_for(ct, rs), "^gtv$", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    assert prov["voxel_count"] == 100
    with pytest.raises(CaseError, match="outside the image field of view"):
        convert_scan(scan_for(ct, rs), "far", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")


def test_roi_policies_and_not_found(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct")
    small = [square(-1.5, 1.5, -1.5, 1.5, z_of(2))]  # 9
    big = [square(-5.5, 4.5, -5.5, 4.5, z_of(4))]  # 100
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTVp", small), (2, "GTVn", big), (3, "Body", big)])
    scan = scan_for(ct, rs)
    out = (tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    assert convert_scan(scan, "gtv", *out, roi_policy="first")["voxel_count"] == 9
    prov = convert_scan(scan, "gtv", *out, roi_policy="largest")
    assert prov["voxel_count"] == 100 and prov["roi_name"] == "GTVn"
    prov = convert_scan(scan, "gtv", *out, roi_policy="union")
    assert prov["voxel_count"] == 109 and prov["roi_name"] == "GTVp+GTVn"
    with pytest.raises(CaseError, match="'GTVp', 'GTVn'"):
        convert_scan(scan, "gtv", *out, roi_policy="error")
    with pytest.raises(CaseError) as err:
        convert_scan(scan, "^PTV", *out)
    assert err.value.stage == "conversion"
    assert "'GTVp', 'GTVn', 'Body'" in err.value.reason


def test_missing_slice_is_a_gap(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct", skip=(5,))
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))])])
    with pytest.raises(CaseError) as err:
        convert_scan(scan_for(ct, rs), "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    reason = err.value.reason
    assert "gap between slice positions z=8.00 and z=12.00" in reason
    assert "spacing 4.0 mm where 2.0 expected" in reason and "a slice is missing" in reason
    assert not (tmp_path / "i.nii.gz").exists()


def test_duplicate_slice_position(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "ct", n_slices=4)
    extra = make_ct(tmp_path / "dup", n_slices=1, series_uid=str(ct["series_uid"]), study_uid=str(ct["study_uid"]))
    scan = scan_for(ct, tmp_path / "none.dcm")
    scan.image_files.append(str(extra["files"][0]))  # type: ignore[index]
    with pytest.raises(CaseError, match="same slice position"):
        convert_scan(scan, "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")


def test_index_mapping_matches_simpleitk_oblique() -> None:
    img = sitk.Image(5, 6, 7, sitk.sitkUInt8)
    img.SetSpacing((0.7, 0.9, 2.5))
    img.SetOrigin((-10.0, 3.0, 7.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, 0.0, s, 0.0, 1.0, 0.0, -s, 0.0, c))
    pts = np.array([[1.0, 2.0, 3.0], [-4.0, 7.5, 20.0], [0.0, 0.0, 0.0]])
    ours = physical_to_continuous_index(img, pts)
    ref = np.array([img.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in pts])
    np.testing.assert_allclose(ours, ref, atol=1e-9)


# ---------------------------------------------------------------------------
# discovery on a messy tree
# ---------------------------------------------------------------------------


def test_discovery_picks_referenced_series_and_orders_sessions(tmp_path: Path) -> None:
    root = tmp_path / "cohort"
    # patient P/1: baseline study (plus decoys), follow-up 35 days later
    study1 = generate_uid()
    base = make_ct(root / "a" / "b" / "c", patient_id="P/1", study_uid=study1, study_date="20210110",
                   study_time="101500", names="IMG{k}", series_number=2)
    make_ct(root / "a" / "decoy_recon", patient_id="P/1", study_uid=study1, frame_uid=str(base["frame_uid"]),
            study_date="20210110", study_time="101500", dz=1.0, n_slices=6, series_number=3)
    make_ct(root / "scout", patient_id="P/1", study_uid=study1, frame_uid=str(base["frame_uid"]),
            study_date="20210110", study_time="101500", n_slices=1, series_number=1,
            image_type=("ORIGINAL", "PRIMARY", "LOCALIZER"))
    follow = make_ct(root / "zz_follow", patient_id="P/1", study_date="20210214", study_time="080000")
    gtv = [square(-5.5, 4.5, -5.5, 4.5, z_of(3))]
    # files are walked in name order: the follow-up RTSTRUCT comes first on disk
    make_rtstruct(root / "0_rs_follow", follow, [(1, "GTV", gtv)], patient_id="P/1")
    make_rtstruct(root / "a" / "rs_base.dcm", base, [(1, "GTV", gtv)], patient_id="P/1", ss_date="20210111")
    # an older structure set on the same baseline series: must not become a second scan
    make_rtstruct(root / "a" / "rs_base_old.dcm", base, [(1, "GTV", gtv)], patient_id="P/1", ss_date="20210110")
    # a structure set matched only through its contour image UIDs
    other = make_ct(root / "q", patient_id="Q2")
    make_rtstruct(root / "q_rs.dcm", other, [(1, "GTV", gtv)], patient_id="Q2", ref_series=False)
    rs_q = pydicom.dcmread(root / "q_rs.dcm")
    for c in rs_q.ROIContourSequence[0].ContourSequence:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_SOP
        item.ReferencedSOPInstanceUID = other["sops"][3]  # type: ignore[index]
        c.ContourImageSequence = Sequence([item])
    rs_q.save_as(root / "q_rs.dcm")
    # RTSTRUCT referencing a series that is not there
    make_rtstruct(root / "orphan.dcm", None, [(1, "GTV", gtv)], patient_id="R3")
    # junk
    (root / "notes.txt").write_text("hello")
    (root / "empty.dcm").write_bytes(b"")
    raw = Path(str(base["files"][0])).read_bytes()  # type: ignore[index]
    (root / "a" / "truncated.dcm").write_bytes(raw[:300])
    (root / "a" / "cut_pixels.dcm").write_bytes(raw[:-500])
    dicomdir = Dataset()
    dicomdir.file_meta = FileMetaDataset()
    dicomdir.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    dicomdir.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dicomdir.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dicomdir.FileSetID = "SET"
    dicomdir.DirectoryRecordSequence = Sequence([])
    dicomdir.save_as(root / "DICOMDIR", enforce_file_format=True)
    dicomdir.save_as(root / "a" / "index_file", enforce_file_format=True)

    disc = discover(root)
    text = reasons(disc)
    scans = {s.scan_id: s for s in disc.scans}
    assert set(scans) == {"P-1_S1", "P-1_S2", "Q2_S1"}, text
    s1, s2 = scans["P-1_S1"], scans["P-1_S2"]
    assert s1.series_uid == uid_pseudonym(str(base["series_uid"])) and s1.session == 1 and s1.days_from_first == 0
    assert s2.series_uid == uid_pseudonym(str(follow["series_uid"])) and s2.session == 2 and s2.days_from_first == 35
    assert Path(s1.contour_file).name == "rs_base.dcm"  # the most recent structure set
    assert s1.n_images == 10 and all(Path(f).is_absolute() for f in s1.image_files)
    assert scans["Q2_S1"].series_uid == uid_pseudonym(str(other["series_uid"]))
    assert "matched to series" in text
    assert "has 2 contour objects" in text and F("a/rs_base_old.dcm") in text
    assert f"{F('orphan.dcm')} references series" in text and "which is not in the input folder" in text
    assert f"{F('empty.dcm')} is empty" in text
    assert f"{F('a/truncated.dcm')} has a DICOM preamble but its header is truncated" in text
    assert F("a/cut_pixels.dcm") in text and "is truncated" in text
    assert "localizer series" in text and "not analysable" in text
    assert f"1 non-DICOM file(s) ignored: {F('notes.txt')}" in text
    assert ".dcm" not in text and "notes" not in text  # no file name, only pseudonyms
    assert "DICOMDIR" not in text and "index_file" not in text
    warn_rows = [q for q in disc.qc if "contour objects" in q["reason"]]
    assert warn_rows[0]["scan_id"] == "P-1_S1" and warn_rows[0]["patient_id"] == "P/1"

    out = tmp_path / "out"
    write_discovery(disc, out / "scans.tsv", out / "manifests", out / "qc.tsv")
    back = read_manifest(out / "manifests" / "P-1_S2.json")
    assert back == s2
    header = (out / "scans.tsv").read_text().splitlines()[0].split("\t")
    assert "image_files" not in header and "scan_id" in header and "contour_file" not in header
    assert str(root) not in (out / "scans.tsv").read_text()  # no path: the contour file by pseudonym
    assert F("a/rs_base.dcm") in (out / "scans.tsv").read_text()
    assert len(read_qc(out / "qc.tsv")) == len(disc.qc)


def test_write_discovery_empty(tmp_path: Path) -> None:
    write_discovery(Discovery(), tmp_path / "s.tsv", tmp_path / "m", tmp_path / "qc.tsv")
    assert (tmp_path / "qc.tsv").read_text().startswith("patient_id\tscan_id\tstage\tstatus\treason")
    assert (tmp_path / "s.tsv").read_text().startswith("scan_id\t")


def test_safe() -> None:
    assert safe("LUNG1-001") == "LUNG1-001"
    assert safe("HN_01/a b") == "HN-01-a-b"


# ---------------------------------------------------------------------------
# PHI
# ---------------------------------------------------------------------------


def _all_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data += gzip.decompress(data)
    return data


def test_no_phi_in_outputs_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    phi = {"name": "Zyxmarker^Qwopname", "birth": "19230517", "accession": "ACCZQ98765",
           "institution": "Hospmarker Inst"}
    markers = ["Zyxmarker", "Qwopname", "19230517", "ACCZQ98765", "Hospmarker", "20190303", "20190407"]
    root = tmp_path / "in"
    ct = make_ct(root / "ct", patient_id="PHI01", phi=phi, study_date="20190303")
    ct2 = make_ct(root / "ct2", patient_id="PHI01", phi=phi, study_date="20190407")
    gtv = [square(-5.5, 4.5, -5.5, 4.5, z_of(3))]
    make_rtstruct(root / "rs.dcm", ct, [(1, "GTV", gtv)], patient_id="PHI01", phi=phi)
    make_rtstruct(root / "rs2.dcm", ct2, [(1, "GTV", gtv)], patient_id="PHI01", phi=phi)
    make_ct(root / "decoy", patient_id="PHI01", phi=phi, study_date="20190303")
    out = tmp_path / "out"
    with caplog.at_level(logging.DEBUG):
        disc = discover(root)
        assert [s.scan_id for s in disc.scans] == ["PHI01_S1", "PHI01_S2"]
        assert disc.scans[1].days_from_first == 35
        write_discovery(disc, out / "scans.tsv", out / "manifests", out / "qc.tsv")
        provs = []
        for scan in disc.scans:
            provs.append(convert_scan(scan, "gtv", out / f"{scan.scan_id}_img.nii.gz",
                                      out / f"{scan.scan_id}_mask.nii.gz"))
        try:
            convert_scan(disc.scans[0], "nothing", out / "x.nii.gz", out / "y.nii.gz")
        except CaseError as exc:
            logging.getLogger("radsurv.test").error("%s", exc)
    # the instance UIDs of every input file are identifiers too (PS3.15 E.1): only pseudonyms leave
    uids = set().union(*(header_uids(f) for f in root.rglob("*.dcm")))
    assert len(uids) >= 2 * 10 + 10 + 2 + 3  # slices of three CTs, two structure sets, three studies
    markers += sorted(uids)
    written = [p for p in out.rglob("*") if p.is_file()]
    assert len(written) >= 7
    for path in written:
        data = _all_bytes(path)
        for m in markers:
            assert m.encode() not in data, f"{m} found in {path.name}"
    log_text = caplog.text + repr(provs) + repr(disc.qc)
    for m in markers:
        assert m not in log_text
    scans_tsv = (out / "scans.tsv").read_text()
    assert uid_pseudonym(str(ct["series_uid"])) in scans_tsv and uid_pseudonym(str(ct2["study_uid"])) in scans_tsv


def test_phi_free_after_copying_ibsi_headers(shared_data: Path, tmp_path: Path) -> None:
    """The IBSI phantom carries a PatientName ('PAT1'); it must not reach the NIfTI files."""
    src = shared_data / "ibsi" / "ct_phantom" / "dicom"
    root = tmp_path / "in"
    shutil.copytree(src, root)
    disc = discover(root)
    convert_scan(disc.scans[0], "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    for p in (tmp_path / "i.nii.gz", tmp_path / "m.nii.gz"):
        assert b"PAT1" not in _all_bytes(p)


def test_per_slice_rescale_pet(tmp_path: Path) -> None:
    """GDCM applies each file's RescaleSlope (PET slopes differ per slice); output is float32."""
    ct = make_ct(tmp_path / "pt")
    for k, f in enumerate(ct["files"]):  # type: ignore[arg-type]
        ds = pydicom.dcmread(f)
        ds.Modality = "PT"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
        ds.RescaleSlope = f"{0.5 + 0.37 * k:.4f}"
        ds.RescaleIntercept = 0
        ds.Units = "GML"  # already SUVbw: values pass unchanged (SUV conversion: test_ingest_images.py)
        ds.save_as(f)
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))])])
    disc = discover(tmp_path)
    assert disc.scans[0].modality == "PT"
    prov = convert_scan(disc.scans[0], "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    assert prov["modality"] == "PT" and prov["pixel_type"] == "32-bit float"
    arr = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "i.nii.gz")))
    for k in (0, 5, 9):
        ds = pydicom.dcmread(ct["files"][k])  # type: ignore[index]
        assert arr[k, 3, 0] == pytest.approx(float(ds.pixel_array[3, 0]) * float(ds.RescaleSlope), rel=1e-6)
    assert Path(disc.scans[0].contour_file) == rs.resolve()


def test_contour_data_presence_is_read_without_decoding(tmp_path):
    """Discovery counts contours with points from the raw element (no decoding of
    100,000s of decimal strings); empty, missing and filled ContourData all read right."""
    import pydicom
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from radsurv.ingest.headers import _has_contour_data

    items = []
    for data in ([1.5, -2.25, 3.0] * 2, [], None):
        c = Dataset()
        if data is not None:
            c.ContourData = data
        items.append(c)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.481.3"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    roi = Dataset()
    roi.ContourSequence = Sequence(items)
    ds.ROIContourSequence = Sequence([roi])
    path = tmp_path / "rs.dcm"
    ds.save_as(path, enforce_file_format=True)
    back = pydicom.dcmread(path)
    contours = back.ROIContourSequence[0].ContourSequence
    assert isinstance(contours[0].get_item(0x30060050), RawDataElement)  # still undecoded
    assert [_has_contour_data(c) for c in contours] == [True, False, False]
    assert [_has_contour_data(c) for c in items] == [True, False, False]  # decoded, in memory


@pytest.mark.parametrize("workers", [2, 3])
def test_discovery_in_several_processes_gives_the_same_result(tmp_path: Path, monkeypatch, workers: int) -> None:
    """Headers read in worker processes: the same scans and QC rows, in the same order, as
    one process -- on a cohort with every discovery fault (truncated, empty, non-DICOM,
    duplicate, unreferenced, localizer) and with chunks small enough that every worker
    gets files of several patients."""
    import radsurv.ingest.headers as headers
    from radsurv.synthetic.faulty import generate_faulty_cohort

    generate_faulty_cohort(tmp_path / "cohort", seed=7)
    dicom = tmp_path / "cohort" / "dicom"
    one = discover(dicom)
    monkeypatch.setattr(headers, "DISCOVERY_CHUNK", 7)
    calls = []
    real = headers._examine
    monkeypatch.setattr(headers, "_examine", lambda path, root: calls.append(path) or real(path, root))
    many = discover(dicom, workers=workers)
    assert not calls  # every header was read in a worker process (they append to their own copy)
    assert len(one.scans) >= 10 and len(one.qc) >= 8
    assert [asdict(s) for s in many.scans] == [asdict(s) for s in one.scans]
    assert many.qc == one.qc
