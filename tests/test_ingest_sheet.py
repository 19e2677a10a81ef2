"""Pre-converted input: an image sheet of NIfTI/NRRD image + mask pairs as a cohort."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk
import yaml
from conftest import run_workflow, snakemake_run, tiny_config

from radsurv.errors import CaseError
from radsurv.features import scan as stages
from radsurv.features.preprocess import CONVERTED_IMAGE_FILE, CONVERTED_MASK_FILE
from radsurv.ingest.convert import convert_scan
from radsurv.ingest.records import SCAN_COLUMNS, read_manifest
from radsurv.ingest.sheet import discover_sheet, explain_sheet, read_sheet, validate_sheet
from radsurv.workflow.ingest import discover_scans
from radsurv.workflow.rules import cohort_source


def _pair(folder: Path, name: str, ext: str = ".nii.gz", *, label: int = 1, shift_mask: bool = False,
          seed: int = 0) -> tuple[str, str]:
    rng = np.random.default_rng(seed)
    img = sitk.GetImageFromArray(rng.normal(40, 20, (12, 20, 24)).round().astype(np.int16))
    img.SetSpacing((0.8, 0.8, 2.5))
    img.SetOrigin((-10.0, 5.0, 30.0))
    m = np.zeros((12, 20, 24), np.uint8)
    m[4:8, 6:12, 8:16] = label
    m[1, 1, 1] = 7  # a second structure in a multi-label mask
    mask = sitk.GetImageFromArray(m)
    mask.CopyInformation(img)
    if shift_mask:
        mask.SetOrigin((-10.0, 5.0, 31.25))  # half a slice off: must never be resampled silently
    folder.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(img, str(folder / f"{name}_img{ext}"))
    sitk.WriteImage(mask, str(folder / f"{name}_mask{ext}"))
    return f"{folder.name}/{name}_img{ext}", f"{folder.name}/{name}_mask{ext}"


def _sheet(tmp_path: Path) -> Path:
    d = tmp_path / "imgs"
    rows = [
        ("A1", *_pair(d, "a1"), "CT", 1, 0, 1),
        ("A1", *_pair(d, "a1rt", seed=1), "CT", 2, 4, 1),
        ("B2", *_pair(d, "b2", ".nrrd", label=3), "MR", 1, "", 3),
        ("B2", *_pair(d, "b2fu", seed=2), "MR", 2, 120, ""),
        ("C3", "imgs/absent_img.nii.gz", "imgs/absent_mask.nii.gz", "CT", 1, "", ""),
        ("D4", *_pair(d, "d4", shift_mask=True), "CT", "", "", ""),
    ]
    df = pd.DataFrame(rows, columns=["patient_id", "image", "mask", "modality", "session", "days_from_first",
                                     "mask_label"])
    path = tmp_path / "images.csv"
    df.to_csv(path, index=False)
    return path


def test_sheet_gives_the_same_manifests_and_checks_each_pair(tmp_path: Path) -> None:
    sheet = _sheet(tmp_path)
    out = tmp_path / "ingest"
    discover_scans(sheet=sheet, scans=out / "scans.tsv", manifests=out / "manifests", qc=tmp_path / "qc.tsv",
                   retest_max_days=30)
    scans = pd.read_csv(out / "scans.tsv", sep="\t", dtype={"patient_id": str})
    assert list(scans.columns) == SCAN_COLUMNS  # the same table as DICOM discovery
    assert scans.set_index("scan_id")["label"].to_dict() == {
        "A1_S1": "baseline", "A1_S2": "retest", "B2_S1": "baseline", "B2_S2": "follow-up", "D4_S1": "baseline"}
    qc = pd.read_csv(tmp_path / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    assert len(qc) == 1 and qc.iloc[0]["patient_id"] == "C3" and qc.iloc[0]["status"] == "excluded"
    # the sheet line locates the files; their names (often the patient's) are not repeated
    assert "images.csv line 6: image file and mask file not found" in qc.iloc[0]["reason"]
    assert "absent_img" not in qc.iloc[0]["reason"]

    res = {}
    for sid in scans["scan_id"]:
        scan = read_manifest(out / "manifests" / f"{sid}.json")
        try:
            res[sid] = convert_scan(scan, "", tmp_path / sid / "image.nii.gz", tmp_path / sid / "mask.nii.gz")
        except CaseError as err:
            res[sid] = err
    assert res["A1_S1"]["voxel_count"] == 4 * 6 * 8 and res["A1_S1"]["roi_name"] == "label 1"  # not label 7
    assert res["B2_S1"]["voxel_count"] == 4 * 6 * 8 and res["B2_S1"]["roi_name"] == "label 3"
    assert res["B2_S2"]["voxel_count"] == 4 * 6 * 8 + 1  # no mask_label: every non-zero voxel, with a warning
    assert any("2 labels" in w for w in res["B2_S2"]["warnings"])
    assert isinstance(res["D4_S1"], CaseError) and "origin differs by up to 1.250 mm" in res["D4_S1"].reason
    assert not (tmp_path / "D4_S1" / "image.nii.gz").exists()
    img = sitk.ReadImage(str(tmp_path / "A1_S1" / "image.nii.gz"))
    mask = sitk.ReadImage(str(tmp_path / "A1_S1" / "mask.nii.gz"))
    src = sitk.ReadImage(str(tmp_path / "imgs" / "a1_img.nii.gz"))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(img), sitk.GetArrayFromImage(src))
    assert mask.GetPixelID() == sitk.sitkUInt8 and mask.GetOrigin() == img.GetOrigin()
    assert img.GetSpacing() == pytest.approx((0.8, 0.8, 2.5))
    assert json.dumps(res["A1_S1"])  # provenance is plain JSON


def test_sheet_validation_messages_are_readable(tmp_path: Path) -> None:
    d = tmp_path / "imgs"
    img, msk = _pair(d, "x")
    bad = pd.DataFrame([("P1", img, msk, "XR"), ("P2", img, "imgs/x_mask.png", "CT")],
                       columns=["patient_id", "image", "mask", "modality"])
    bad.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError) as err:
        validate_sheet(tmp_path / "bad.csv")
    text = str(err.value)
    assert "The image sheet bad.csv has 2 problem(s)" in text
    assert "bad.csv line 2 (patient P1): modality: 'XR' is not allowed; choose one of 'CT', 'MR', 'PT'" in text
    assert "bad.csv line 3 (patient P2): mask: 'imgs/x_mask.png' does not match" in text
    assert "the tumour mask on exactly the same voxel grid" in text  # the column's description
    no_mask = bad.drop(columns=["mask"])
    msg = explain_sheet(no_mask, "s.csv")
    assert "s.csv has no column(s) 'mask'" in msg and msg.count("missing") == 0
    # discovery (without Snakemake) reports the same rows as excluded instead of stopping
    disc = discover_sheet(tmp_path / "bad.csv")
    assert disc.scans == [] and len(disc.qc) == 2 and "'XR' is not allowed" in disc.qc[0]["reason"]
    # good sheet: passes, values typed
    assert len(validate_sheet(_sheet(tmp_path / "ok"))) == 6
    assert read_sheet(_sheet(tmp_path / "ok2"))["patient_id"].tolist()[0] == "A1"


def test_cohort_source_is_dicom_or_sheet() -> None:
    assert cohort_source({"dicom_dir": "d", "roi_pattern": "^GTV"}) == ("dicom", "d")
    assert cohort_source({"image_sheet": "s.csv"}) == ("sheet", "s.csv")
    with pytest.raises(ValueError, match="not both"):
        cohort_source({"dicom_dir": "d", "image_sheet": "s.csv", "roi_pattern": "x"})
    with pytest.raises(ValueError, match="'dicom_dir' or 'image_sheet' is missing"):
        cohort_source({})
    with pytest.raises(ValueError, match="'roi_pattern' is missing"):
        cohort_source({"dicom_dir": "d"})


def test_workflow_stops_on_a_bad_sheet(tmp_path: Path) -> None:
    tiny_config(tmp_path)
    cfg_path = tmp_path / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    d = tmp_path / "imgs"
    img, msk = _pair(d, "x")
    pd.DataFrame([("P1", img, msk, "XR")], columns=["patient_id", "image", "mask", "modality"]).to_csv(
        tmp_path / "images.csv", index=False)
    cfg["cohort"]["image_sheet"] = "images.csv"
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = snakemake_run(tmp_path, "-n", "--cores", "1")
    assert res.returncode != 0
    assert "give either dicom_dir" in res.stdout + res.stderr
    del cfg["cohort"]["dicom_dir"]
    cfg_path.write_text(yaml.safe_dump(cfg))
    res = snakemake_run(tmp_path, "-n", "--cores", "1")
    assert res.returncode != 0
    assert "images.csv line 2 (patient P1): modality: 'XR' is not allowed" in res.stdout + res.stderr


@pytest.mark.e2e
def test_sheet_cohort_runs_the_same_later_stages(tiny_run: Path, tmp_path: Path) -> None:
    """The tiny run's scans, converted whole and given as a sheet, give the same features.

    (The run itself stores each CT as its ROI's neighbourhood and centres the IBSI grid on
    the whole scan; a sheet image is a whole scan as far as radsurv can know.)"""
    scans = pd.read_csv(tiny_run / "ingest" / "scans.tsv", sep="\t", dtype={"patient_id": str})
    keep = scans[scans["patient_id"].isin(sorted(scans["patient_id"].unique())[:3])]
    for r in keep.itertuples():
        stages.conversion(tiny_run / "ingest" / "private" / "manifests" / f"{r.scan_id}.json",
                          tmp_path / "whole" / r.scan_id, "^GTV", "first")
    rows = [(r.patient_id, str(tmp_path / "whole" / r.scan_id / CONVERTED_IMAGE_FILE),
             str(tmp_path / "whole" / r.scan_id / CONVERTED_MASK_FILE), r.modality, r.session,
             r.days_from_first) for r in keep.itertuples()]
    pd.DataFrame(rows, columns=["patient_id", "image", "mask", "modality", "session", "days_from_first"]).to_csv(
        tmp_path / "images.tsv", sep="\t", index=False)
    tiny_config(tmp_path)
    cfg_path = tmp_path / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    del cfg["cohort"]["dicom_dir"], cfg["cohort"]["roi_pattern"]
    cfg["cohort"]["image_sheet"] = "images.tsv"
    cfg["cohort"]["clinical_table"] = str(tiny_run / "demo" / "clinical.csv")
    cfg_path.write_text(yaml.safe_dump(cfg))
    run_workflow(tmp_path, "--cores", "2", "results/features/features.tsv", "results/clinical/clinical.tsv")
    got = pd.read_csv(tmp_path / "results" / "ingest" / "scans.tsv", sep="\t", dtype={"patient_id": str})
    cols = ["scan_id", "patient_id", "session", "days_from_first", "label"]
    pd.testing.assert_frame_equal(got[cols].reset_index(drop=True), keep[cols].reset_index(drop=True))
    ours = pd.read_csv(tmp_path / "results" / "features" / "features.tsv", sep="\t", index_col="scan_id")
    ref = pd.read_csv(tiny_run / "features" / "features.tsv", sep="\t", index_col="scan_id").loc[ours.index]
    num = [c for c in ref.columns if c.startswith("original_") and pd.api.types.is_numeric_dtype(ref[c])]
    assert len(num) > 100
    pd.testing.assert_frame_equal(ours[num], ref[num], rtol=1e-6)
