"""pyradiomics extraction on a preprocessed scan, and the cohort matrix."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from radsurv import features as feat


@pytest.fixture(scope="module")
def sphere_case(tmp_path_factory):
    """A 2 mm isotropic image with a sphere of radius 10 mm (ROI) in noise."""
    d = tmp_path_factory.mktemp("sphere")
    z, y, x = np.indices((30, 30, 30)).astype(float)
    r = np.sqrt((x - 14.5) ** 2 + (y - 14.5) ** 2 + (z - 14.5) ** 2) * 2.0
    rng = np.random.default_rng(0)
    arr = np.round(np.where(r < 10, 30.0, -700.0) + rng.normal(0, 20, r.shape))
    img = sitk.GetImageFromArray(arr.astype(np.float32))
    img.SetSpacing((2.0, 2.0, 2.0))
    m = sitk.GetImageFromArray((r < 10).astype(np.uint8))
    m.CopyInformation(img)
    sitk.WriteImage(img, str(d / "image.nii.gz"))
    sitk.WriteImage(m, str(d / "mask.nii.gz"))
    return d, int((r < 10).sum())


def test_params_switch_off_pyradiomics_resampling():
    p = feat.pyradiomics_params({"bin_width": 25, "resegment_range": [-1000, 400],
                                 "filters": {"log_sigma_mm": [1.0], "wavelet": True}})
    s = p["setting"]
    assert s["resampledPixelSpacing"] is None and s["normalize"] is False and s["correctMask"] is False
    assert s["binWidth"] == 25 and s["resegmentRange"] == [-1000, 400]
    assert set(p["imageType"]) == {"Original", "LoG", "Wavelet"}
    assert set(p["featureClass"]) == set(feat.FEATURE_CLASSES)
    with pytest.raises(ValueError, match="unknown"):
        feat.pyradiomics_params({"feature_classes": ["shape", "glcmm"]})
    assert "binWidth" not in feat.pyradiomics_params({"bin_width": 25, "bin_count": 32})["setting"]


def test_extract_sphere_volume_and_separates_diagnostics(sphere_case):
    d, nvox = sphere_case
    params = feat.pyradiomics_params({"bin_width": 25, "feature_classes": ["shape", "firstorder", "glcm"]})
    f, diag = feat.extract(d / "image.nii.gz", d / "mask.nii.gz", params)
    assert all(not k.startswith("diagnostics_") for k in f)
    assert diag and all(k.startswith("diagnostics_") for k in diag)
    assert f["original_shape_VoxelVolume"] == pytest.approx(nvox * 8.0)
    assert f["original_shape_MeshVolume"] == pytest.approx(4 / 3 * np.pi * 1000, rel=0.08)
    assert f["original_firstorder_Mean"] == pytest.approx(30.0, abs=3.0)
    assert all(isinstance(v, float) for v in f.values())
    assert feat.feature_class("original_glcm_Contrast") == "glcm"
    assert feat.image_type("wavelet-LLH_glcm_Contrast") == "wavelet-LLH"


def test_assemble_keeps_failures_in_qc(tmp_path, sphere_case):
    good = {"original_shape_MeshVolume": 4188.0, "original_firstorder_Mean": 30.0}
    feat.write_scan_features(tmp_path / "A_S1.json", "A_S1", "A", 1, True, features=good,
                             diagnostics={"diagnostics_x": 1})
    feat.write_scan_features(tmp_path / "B_S1.json", "B_S1", "B", 1, False,
                             reason="series 1.2.3 has a gap between slices")
    rec = json.loads((tmp_path / "B_S1.json").read_text())
    rec["stage"] = "conversion"
    (tmp_path / "B_S1.json").write_text(json.dumps(rec))
    fdf, ddf, qc = feat.assemble(sorted(tmp_path.glob("*.json")))
    assert list(fdf.index) == ["A_S1"]
    assert feat.feature_columns(fdf) == sorted(good)
    assert len(qc) == 1 and qc[0]["scan_id"] == "B_S1" and qc[0]["stage"] == "conversion"
    assert "gap" in qc[0]["reason"] and qc[0]["status"] == "excluded"
    assert list(ddf.index) == ["A_S1"]
