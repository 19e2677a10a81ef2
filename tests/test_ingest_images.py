"""Image units and slice geometry: PET SUV, MR native units, CT storage variants, geometry faults.

Synthetic series are built with the helpers of ``test_dicomio`` (32 x 32 pixels of
1 mm, 10 slices 2 mm apart) so that every expected value is known exactly.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from test_dicomio import make_ct, make_rtstruct, scan_for, square, z_of

from radsurv.errors import CaseError
from radsurv.ingest.convert import convert_scan
from radsurv.ingest.discovery import discover
from radsurv.ingest.pet import pet_suv_factors
from radsurv.synthetic.small_series import make_pet

PET_SOP = "1.2.840.10008.5.1.4.1.1.128"
MR_SOP = "1.2.840.10008.5.1.4.1.1.4"

#: F-18 half-life in seconds (DICOM PS3.16 / NIST: 109.77 min = 6586.2 s).
F18_HALF_LIFE_S = 6586.2
#: Fraction of F-18 activity left after exactly 1 h: 2**(-3600/6586.2) = exp(-0.378883) = 0.684633
#: (hand-computed, written here as a literal so that the test does not reuse the code's formula).
F18_LEFT_AFTER_1H = 0.684633
WEIGHT_KG, DOSE_BQ = 70.0, 370e6
#: Planted activity concentration of the synthetic PET (Bq/ml).
CONC_BQML = 9000.0
#: The expected SUVbw for CONC_BQML at 1 h after injection, decay-corrected to the scan start.
SUV_1H = CONC_BQML * WEIGHT_KG * 1000.0 / (DOSE_BQ * F18_LEFT_AFTER_1H)


def _pet_scan(tmp_path: Path, **kw: object):
    ct = make_pet(tmp_path / "pt", **kw)  # type: ignore[arg-type]
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))])])
    scan = scan_for(ct, rs, modality="PT")
    return scan


def _convert(scan, tmp_path: Path) -> tuple[np.ndarray, dict]:
    prov = convert_scan(scan, "gtv", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    return sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "i.nii.gz"))), prov


@pytest.mark.parametrize("start_dt", [True, False], ids=["StartDateTime", "StartTime-only"])
def test_pet_start_decay_corrected_suv(tmp_path: Path, start_dt: bool) -> None:
    arr, prov = _convert(_pet_scan(tmp_path, start_dt=start_dt), tmp_path)
    assert arr.dtype == np.float32
    np.testing.assert_allclose(arr, SUV_1H, rtol=2e-4)  # every slice, despite per-slice slopes
    assert prov["units"] == "SUVbw (g/ml)" and prov["decay_correction"] == "START"
    assert prov["decay_time_s"] == pytest.approx(3600.0)
    assert prov["suv_factor"] == pytest.approx(SUV_1H / CONC_BQML, rel=1e-5)
    assert 1.0 < SUV_1H < 5.0  # plausible FDG uptake: the fixture itself is sane


def test_pet_admin_none_and_post_processed_series_time(tmp_path: Path) -> None:
    # ADMIN: already corrected to the injection time -> no decay of the dose
    arr, prov = _convert(_pet_scan(tmp_path / "a", decay_correction="ADMIN"), tmp_path / "a")
    np.testing.assert_allclose(arr, CONC_BQML * WEIGHT_KG * 1000.0 / DOSE_BQ, rtol=2e-4)
    # NONE: every slice decayed to its own acquisition time (slice k acquired k minutes after 11:00)
    arr, prov = _convert(_pet_scan(tmp_path / "n", decay_correction="NONE", acq_step_s=60), tmp_path / "n")
    for k in (0, 4, 9):
        left = F18_LEFT_AFTER_1H * 2.0 ** (-60.0 * k / F18_HALF_LIFE_S)
        assert arr[k].mean() == pytest.approx(CONC_BQML * WEIGHT_KG * 1000.0 / (DOSE_BQ * left), rel=2e-4)
    assert any("DecayCorrection NONE" in w for w in prov["warnings"])
    # START, but SeriesTime rewritten by post-processing to 12:30: the acquisition start (11:00) is used
    arr, prov = _convert(_pet_scan(tmp_path / "p", series_time="123000"), tmp_path / "p")
    np.testing.assert_allclose(arr, SUV_1H, rtol=2e-4)
    assert any("post-processed" in w for w in prov["warnings"])


def test_pet_variants_that_cannot_give_suv_are_case_errors(tmp_path: Path) -> None:
    with pytest.raises(CaseError, match="PatientWeight is missing"):
        _convert(_pet_scan(tmp_path / "w", weight=None), tmp_path / "w")
    with pytest.raises(CaseError, match="Units are CNTS"):
        _convert(_pet_scan(tmp_path / "c", units="CNTS"), tmp_path / "c")
    # GML is already SUV: unchanged
    arr, prov = _convert(_pet_scan(tmp_path / "g", units="GML"), tmp_path / "g")
    np.testing.assert_allclose(arr, CONC_BQML, rtol=2e-4)
    # an injection after the scan is a header error, not a negative decay time
    hdr = pydicom.dcmread(next((tmp_path / "g" / "pt").iterdir()))
    hdr.Units = "BQML"
    hdr.RadiopharmaceuticalInformationSequence[0].RadiopharmaceuticalStartDateTime = "20220301113000"
    with pytest.raises(CaseError, match="injection time is 30.0 min after the scan start"):
        pet_suv_factors([hdr], "1.2.3")


def test_mr_native_units_and_sequence_recorded(tmp_path: Path) -> None:
    ct = make_ct(tmp_path / "mr")
    for f in ct["files"]:  # type: ignore[union-attr]
        ds = pydicom.dcmread(f)
        ds.Modality = "MR"
        ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = MR_SOP
        del ds.RescaleSlope, ds.RescaleIntercept
        ds.ScanningSequence = ["SE"]
        ds.SequenceVariant = ["SK", "SP"]
        ds.MRAcquisitionType = "2D"
        ds.RepetitionTime = 4000
        ds.EchoTime = 90
        ds.FlipAngle = 90
        ds.MagneticFieldStrength = 3
        ds.SequenceName = "*tse2d1_15"
        ds.SeriesDescription = "T2 TSE Zqmarker"  # free text: must not be copied
        ds.save_as(f)
    rs = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))])])
    disc = discover(tmp_path)
    assert disc.scans[0].modality == "MR"
    arr, prov = _convert(disc.scans[0], tmp_path)
    ref = pydicom.dcmread(ct["files"][3]).pixel_array  # type: ignore[index]
    np.testing.assert_array_equal(arr[3], ref)  # stored values, not rescaled to anything
    assert prov["units"].startswith("native scanner units")
    seq = prov["sequence"]
    assert seq["ScanningSequence"] == "SE" and seq["SequenceVariant"] == "SK\\SP"
    assert seq["EchoTime"] == 90.0 and seq["RepetitionTime"] == 4000.0 and seq["MagneticFieldStrength"] == 3.0
    assert seq["SequenceName"] == "*tse2d1_15"
    assert "Zqmarker" not in json.dumps(prov)
    assert Path(disc.scans[0].contour_file) == rs.resolve()


def test_ct_signed_storage_and_padding(tmp_path: Path) -> None:
    """Signed storage without intercept; PixelPaddingValue -> air, and a mask on padding is refused."""
    ct = make_ct(tmp_path / "ct")
    for k, f in enumerate(ct["files"]):  # type: ignore[arg-type]
        ds = pydicom.dcmread(f)
        ds.PixelRepresentation = 1
        ds.RescaleIntercept = 0
        arr = np.full((32, 32), 40, dtype=np.int16)
        arr[:, :4] = -2000  # padding: outside the reconstruction circle
        arr[5, 10] = -1000 + k
        ds.add_new(0x00280120, "SS", -2000)  # PixelPaddingValue (signed storage)
        ds.PixelData = arr.tobytes()
        ds.save_as(f)
    ok = make_rtstruct(tmp_path / "rs.dcm", ct, [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))]),
                                                 (2, "GTV-edge", [square(-16.5, -9.5, -5.5, 4.5, z_of(3))])])
    img, prov = _convert(scan_for(ct, ok), tmp_path)
    assert img.dtype == np.int16 and img[3, 5, 10] == -997 and img[0, 0, 10] == 40
    assert (img[:, :, :4] == -1024).all() and prov["padding_voxels"] == 10 * 32 * 4 and prov["units"] == "HU"
    with pytest.raises(CaseError, match="covers 40 padding voxels"):
        convert_scan(scan_for(ct, ok), "gtv-edge", tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")


def _restack(ct: dict[str, object], change) -> None:
    for k, f in enumerate(ct["files"]):  # type: ignore[arg-type]
        ds = pydicom.dcmread(f)
        change(k, ds)
        ds.save_as(f)


def test_uneven_spacing_and_mixed_orientation_are_reported(tmp_path: Path) -> None:
    rois = [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))])]
    uneven = make_ct(tmp_path / "uneven")
    _restack(uneven, lambda k, ds: setattr(ds, "ImagePositionPatient", [-16, -16, k * 2.0 + (0.7 if k >= 6 else 0)]))
    with pytest.raises(CaseError, match="slice spacing is not uniform"):
        convert_scan(scan_for(uneven, make_rtstruct(tmp_path / "r1.dcm", uneven, rois)), "gtv",
                     tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    mixed = make_ct(tmp_path / "mixed")
    _restack(mixed, lambda k, ds: setattr(ds, "ImageOrientationPatient", [1, 0, 0, 0, 0, -1]) if k == 4 else None)
    with pytest.raises(CaseError, match="inconsistent ImageOrientationPatient .*slices are not parallel"):
        convert_scan(scan_for(mixed, make_rtstruct(tmp_path / "r2.dcm", mixed, rois)), "gtv",
                     tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    tilted = make_ct(tmp_path / "tilt")
    _restack(tilted, lambda k, ds: setattr(ds, "ImagePositionPatient", [-16, -16 + 0.5 * k, k * 2.0]))
    with pytest.raises(CaseError, match="gantry tilt"):
        convert_scan(scan_for(tilted, make_rtstruct(tmp_path / "r3.dcm", tilted, rois)), "gtv",
                     tmp_path / "i.nii.gz", tmp_path / "m.nii.gz")
    assert not (tmp_path / "i.nii.gz").exists()  # never a silent resample
