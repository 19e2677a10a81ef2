"""Bad scans never stop the cohort: each failure reaches the QC table with its stage and reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from conftest import one_demo_scan

from radsurv.features import scan
from radsurv.synthetic.demo import generate_demo_cohort
from radsurv.workflow.features import assemble_features
from radsurv.workflow.ingest import discover_scans
from radsurv.workflow.report import qc_table


def test_faulty_scans_are_reported_and_the_rest_completes(tmp_path):
    generate_demo_cohort(tmp_path / "demo", n_patients=4, n_retest=0, seed=3)
    dicom = tmp_path / "demo" / "dicom"
    ingest = tmp_path / "ingest"
    discover_scans(dicom=dicom, scans=ingest / "scans.tsv", manifests=ingest / "manifests",
                   qc=tmp_path / "qc0.tsv", retest_max_days=30)
    before = pd.read_csv(ingest / "scans.tsv", sep="\t")
    first, second = before.scan_id[0], before.scan_id[1]
    # Fault 1: a middle slice of the first CT is missing (the RTSTRUCT references it).
    m1 = json.loads((ingest / "manifests" / f"{first}.json").read_text())
    Path(sorted(m1["image_files"])[len(m1["image_files"]) // 2]).unlink()
    # Fault 2: the second patient's GTV was named differently, so no ROI matches '^GTV'.
    m2 = json.loads((ingest / "manifests" / f"{second}.json").read_text())
    rs = pydicom.dcmread(m2["contour_file"])
    for roi in rs.StructureSetROISequence:
        roi.ROIName = roi.ROIName.replace("GTV", "Tumour")
    rs.save_as(m2["contour_file"])

    ingest2 = tmp_path / "ingest2"
    discover_scans(dicom=dicom, scans=ingest2 / "scans.tsv", manifests=ingest2 / "manifests",
                   qc=tmp_path / "qc_disc.tsv", retest_max_days=30)
    scans = pd.read_csv(ingest2 / "scans.tsv", sep="\t")
    assert first not in set(scans.scan_id) and len(scans) == 3
    outs = []
    for sid in scans["scan_id"]:
        conv, prep = tmp_path / "scans" / sid / "converted", tmp_path / "scans" / sid / "preprocessed"
        scan.conversion(ingest2 / "manifests" / f"{sid}.json", conv, "^GTV", "first")
        scan.preprocessing(conv, prep, {"spacing_mm": [2.0, 2.0, 2.0]})
        out = tmp_path / "features" / f"{sid}.json"
        scan.extraction(prep, out, {"bin_width": 25, "feature_classes": ["shape", "firstorder"]})
        outs.append(out)
    assemble_features(scans=outs, features=tmp_path / "f.tsv",
                      diagnostics=tmp_path / "d.tsv", qc=tmp_path / "qc_ext.tsv")
    qc_table(parts=[tmp_path / "qc_disc.tsv", tmp_path / "qc_ext.tsv"], table=tmp_path / "qc.tsv")

    feats = pd.read_csv(tmp_path / "f.tsv", sep="\t", index_col="scan_id")
    qc = pd.read_csv(tmp_path / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert sorted(feats.index) == sorted(set(before.scan_id) - {first, second})
    excluded = qc[qc["status"] == "excluded"]
    r1 = excluded[(excluded["stage"] == "discovery") & excluded["reason"].str.contains("RTSTRUCT")]
    assert len(r1) == 1 and r1.iloc[0]["patient_id"] == before.patient_id[0]
    r2 = excluded[excluded["scan_id"] == second]
    assert len(r2) == 1 and r2.iloc[0]["stage"] == "conversion"
    assert "Tumour-1" in r2.iloc[0]["reason"]  # names the ROIs that do exist
    # the failed scan wrote only its status, no images, in every later stage
    assert not (tmp_path / "scans" / second / "preprocessed" / "image.nii.gz").exists()
    assert json.loads((tmp_path / "scans" / second / "preprocessed" / "status.json").read_text())["ok"] is False


def test_report_digest_of_converted_inputs(tmp_path):
    """The report's input checksum is a digest of every converted scan's input_sha256 (from
    provenance.json), independent of folder order; scans that failed conversion have none."""
    import hashlib
    import json

    from radsurv.report.provenance import converted_inputs_sha256

    dirs = []
    for sid, digest in (("B_S1", "bb"), ("A_S1", "aa"), ("C_S1", None)):
        d = tmp_path / sid / "converted"
        d.mkdir(parents=True)
        if digest:
            (d / "provenance.json").write_text(json.dumps({"scan_id": sid, "input_sha256": digest}))
        dirs.append(d)
    n, digest = converted_inputs_sha256(dirs)
    assert n == 2 and digest == hashlib.sha256(b"A_S1\taa\nB_S1\tbb").hexdigest()
    assert converted_inputs_sha256(dirs[::-1]) == (n, digest)
    assert converted_inputs_sha256([dirs[2]]) is None


def test_cropped_conversion_gives_the_same_features_as_the_whole_scan(tmp_path):
    """Conversion stores CT as the ROI's neighbourhood (preprocessing margin + 40 mm) with its
    place in the scan; preprocessing then centres the IBSI grid on the whole scan, so every
    feature equals the one computed from the scan stored whole."""
    import SimpleITK as sitk

    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, conversion_margin_mm

    generate_demo_cohort(tmp_path / "demo", n_patients=2, n_retest=0, seed=5)
    ingest = tmp_path / "ingest"
    discover_scans(dicom=tmp_path / "demo" / "dicom", scans=ingest / "scans.tsv", manifests=ingest / "manifests",
                   qc=tmp_path / "qc.tsv", retest_max_days=30)
    pre = {"spacing_mm": [1.7, 1.7, 1.7], "crop_margin_mm": 10.0, "resegment_range": [-1000, 400],
           "round_intensities": True}
    ext = {"bin_width": 25, "feature_classes": ["shape", "firstorder", "glcm", "glszm"],
           "filters": {"log_sigma_mm": [2.0], "wavelet": False}}
    for sid in pd.read_csv(ingest / "scans.tsv", sep="\t")["scan_id"]:
        feats = {}
        for how, settings in (("whole", None), ("cropped", pre)):
            conv, prep = tmp_path / how / sid / "converted", tmp_path / how / sid / "preprocessed"
            scan.conversion(ingest / "manifests" / f"{sid}.json", conv, "^GTV", "first", settings)
            scan.preprocessing(conv, prep, pre)
            scan.extraction(prep, tmp_path / how / f"{sid}.json", ext, pre)
            feats[how] = json.loads((tmp_path / how / f"{sid}.json").read_text())["features"]
        whole = sitk.ReadImage(str(tmp_path / "whole" / sid / "converted" / CONVERTED_IMAGE_FILE))
        crop = sitk.ReadImage(str(tmp_path / "cropped" / sid / "converted" / CONVERTED_IMAGE_FILE))
        prov = json.loads((tmp_path / "cropped" / sid / "converted" / "provenance.json").read_text())
        region = prov["stored_region"]
        assert region["margin_mm"] == conversion_margin_mm("CT", pre) == 50.0
        assert list(whole.GetSize()) == region["scan_size"] == prov["size"]
        assert all(c < w for c, w in zip(crop.GetSize()[:2], whole.GetSize()[:2]))  # really smaller
        # only the stored region is cast to the storage type, decided on the whole scan: the same
        # voxels, type and geometry as the whole scan's conversion
        assert crop.GetPixelID() == whole.GetPixelID() == sitk.sitkInt16
        assert prov["pixel_type"] == whole.GetPixelIDTypeAsString()
        sub = sitk.RegionOfInterest(whole, region["size"], region["index"])
        assert crop.GetOrigin() == sub.GetOrigin() and crop.GetDirection() == sub.GetDirection()
        np.testing.assert_array_equal(sitk.GetArrayViewFromImage(crop), sitk.GetArrayViewFromImage(sub))
        assert json.loads((tmp_path / "whole" / sid / "converted" / "provenance.json").read_text())[
            "stored_region"] is None
        assert len(feats["whole"]) > 120 and feats["whole"].keys() == feats["cropped"].keys()
        for name, value in feats["whole"].items():
            assert feats["cropped"][name] == pytest.approx(value, rel=1e-9, abs=1e-9), name


@pytest.mark.parametrize("outlier,expected", [(None, "int16"), (40000, "float32"), (0.5, "float32")])
def test_conversion_casts_only_the_stored_region_with_the_whole_scans_type(tmp_path, outlier, expected):
    """The storage type (int16 CT when every value is integral and fits, else float32) is decided
    on the whole scan, even when the value that decides it lies outside the stored region; the
    stored voxels equal those of the whole scan cast first."""
    import SimpleITK as sitk

    from radsurv.ingest.converted import write_image_and_mask
    from radsurv.ingest.images import _storage_type, storage_pixel_type
    from radsurv.ingest.records import ScanRecord

    rng = np.random.default_rng(0)
    arr = rng.integers(-1024, 2000, size=(30, 64, 64))
    arr = arr.astype(np.float64) if isinstance(outlier, float) else arr.astype(np.int32)
    if outlier is not None:
        arr[0, 0, 0] = outlier  # far from the ROI: outside the stored region
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((0.9, 0.9, 3.0))
    img.SetOrigin((-20.0, 5.0, 100.0))
    mask = np.zeros(arr.shape, dtype=bool)
    mask[14:17, 30:36, 28:33] = True
    scan = ScanRecord(scan_id="s", patient_id="p", session=1, days_from_first=0, modality="CT", series_uid="u",
                      study_uid="v", n_images=30, image_files=[], contour_file="", contour_type="RTSTRUCT")
    pid = storage_pixel_type(scan, img)
    assert sitk.GetPixelIDValueAsString(pid) == {"int16": "16-bit signed integer", "float32": "32-bit float"}[expected]
    region = write_image_and_mask(img, mask, tmp_path / "i.nrrd", tmp_path / "m.nrrd", 5.0, pid)
    stored = sitk.ReadImage(str(tmp_path / "i.nrrd"))
    whole = sitk.RegionOfInterest(_storage_type(scan, img), region["size"], region["index"])
    assert stored.GetPixelID() == whole.GetPixelID() == pid
    assert stored.GetOrigin() == whole.GetOrigin() and stored.GetSize() < img.GetSize()
    np.testing.assert_array_equal(sitk.GetArrayViewFromImage(stored), sitk.GetArrayViewFromImage(whole))


def test_mr_and_normalised_scans_are_stored_whole():
    from radsurv.features.preprocess import conversion_margin_mm

    assert conversion_margin_mm("CT", {"crop_margin_mm": 20}) == 60.0
    assert conversion_margin_mm("PT", {}) == 60.0
    assert conversion_margin_mm("MR", {"crop_margin_mm": 20}) is None  # N4 / normalisation use the whole image
    assert conversion_margin_mm("CT", {"modality": "MR"}) is None
    assert conversion_margin_mm("CT", {"normalisation": "zscore"}) is None
    assert conversion_margin_mm("CT", {"bias_field_correction": True}) is None


def test_scan_job_is_the_three_stages_with_their_costs_and_the_rules_threads(tmp_path):
    """The per-scan job (rule scan) gives what conversion, preprocessing and extraction give
    called one by one, writes one cost row per stage, keeps SimpleITK to the rule's threads,
    and passes a conversion failure on to the feature record (QC) instead of raising."""
    import SimpleITK as sitk

    from radsurv.features.preprocess import CONVERTED_IMAGE_FILE

    manifest = one_demo_scan(tmp_path, seed=4)
    pre = {"spacing_mm": [2.0, 2.0, 2.0], "crop_margin_mm": 10.0, "resegment_range": [-1000, 400]}
    ext = {"bin_width": 25, "feature_classes": ["shape", "firstorder", "glcm"]}

    one = tmp_path / "one_by_one"
    scan.conversion(manifest, one / "converted", "^GTV", "first", pre)
    scan.preprocessing(one / "converted", one / "preprocessed", pre)
    scan.extraction(one / "preprocessed", one / "f.json", ext, pre)

    job = tmp_path / "job"
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    try:
        scan.run_scan(manifest, job / "converted", job / "preprocessed", job / "f.json", job / "costs.tsv",
                    "^GTV", "first", pre, ext, threads=1)
        assert sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() == 1
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)
    assert (job / "f.json").read_text() == (one / "f.json").read_text()
    assert json.loads((job / "f.json").read_text())["ok"] is True
    # conversion got the preprocessing settings: the scan is stored cropped, as one by one
    assert (sitk.ReadImage(str(job / "converted" / CONVERTED_IMAGE_FILE)).GetSize()
            == sitk.ReadImage(str(one / "converted" / CONVERTED_IMAGE_FILE)).GetSize())
    costs = pd.read_csv(job / "costs.tsv", sep="\t")
    assert list(costs.columns) == list(scan.STAGE_COST_COLUMNS)
    assert list(costs["stage"]) == ["conversion", "preprocessing", "extraction"]
    assert (costs["s"] > 0).all() and (costs["cpu_time"] > 0).all()
    assert costs["max_rss"].is_monotonic_increasing and costs["max_rss"].iloc[0] > 10  # MB, not kB

    bad = tmp_path / "bad"
    scan.run_scan(manifest, bad / "converted", bad / "preprocessed", bad / "f.json", None, "^NoSuchROI", "first",
                pre, ext)
    rec = json.loads((bad / "f.json").read_text())
    assert rec["ok"] is False and rec["stage"] == "conversion" and "NoSuchROI" in rec["reason"]
    assert not (bad / "preprocessed" / "image.nii.gz").exists()
