"""pyradiomics extraction on a preprocessed scan, feature names, and the cohort matrix."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radsurv.features import extract as feat
from radsurv.features import matrix, names


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
    p = feat.pyradiomics_params({"bin_width": 25, "filters": {"log_sigma_mm": [1.0], "wavelet": True}},
                                {"resegment_range": [-1000, 400]})
    s = p["setting"]
    assert s["resampledPixelSpacing"] is None and s["normalize"] is False and s["correctMask"] is False
    assert s["binWidth"] == 25 and "resegmentRange" not in s  # re-segmentation is done by preprocessing
    assert p["radsurv"]["bin_origin"] == -1000.0  # IBSI: bins counted from the range's lower bound
    assert set(p["imageType"]) == {"Original", "LoG", "Wavelet"}
    assert set(p["featureClass"]) == set(feat.FEATURE_CLASSES)
    assert set(feat.IBSI_SHAPE_EXTRAS) <= set(p["featureClass"]["shape"])
    assert s["force2D"] is False
    with pytest.raises(ValueError, match="unknown"):
        feat.pyradiomics_params({"feature_classes": ["shape", "glcmm"]})
    assert "binWidth" not in feat.pyradiomics_params({"bin_width": 25, "bin_count": 32})["setting"]
    assert feat.pyradiomics_params({"bin_width": 25})["radsurv"]["bin_origin"] == feat.ROI_MIN
    assert feat.pyradiomics_params({"dimensions": "2D"})["setting"]["force2D"] is True
    # a legacy extraction.resegment_range still sets the origin
    assert feat.pyradiomics_params({"bin_width": 25, "resegment_range": [-500, 400]})["radsurv"]["bin_origin"] == -500


def _uniform_roi(tmp_path, value, n=8):
    """A cube ROI of one intensity inside a different background."""
    arr = np.full((n + 4, n + 4, n + 4), -700.0, np.float32)
    arr[2:-2, 2:-2, 2:-2] = value
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((2.0, 2.0, 2.0))
    m = sitk.GetImageFromArray((arr == value).astype(np.uint8))
    m.CopyInformation(img)
    return img, m


def test_fixed_bin_size_counts_from_the_lower_bound(tmp_path):
    """IBSI: bin = floor((x - low) / w) + 1. A ROI of -940 HU with low -1000, w 25 is bin 3."""
    img, m = _uniform_roi(tmp_path, -940.0)
    cfg = {"bin_width": 25, "feature_classes": ["glszm", "firstorder"]}
    ibsi_f, _ = feat.extract(img, m, feat.pyradiomics_params(cfg, {"resegment_range": [-1000, 400]}))
    assert ibsi_f["original_glszm_HighGrayLevelZoneEmphasis"] == pytest.approx(9.0)  # 3 ** 2
    # no range: counted from the ROI minimum -> bin 1
    roi_min, _ = feat.extract(img, m, feat.pyradiomics_params(cfg))
    assert roi_min["original_glszm_HighGrayLevelZoneEmphasis"] == pytest.approx(1.0)
    # the wrapper is inert for plain pyradiomics (no radsurv key): pyradiomics' own bin 1
    from radiomics.featureextractor import RadiomicsFeatureExtractor

    plain = RadiomicsFeatureExtractor({k: v for k, v in feat.pyradiomics_params(
        cfg, {"resegment_range": [-1000, 400]}).items() if k != "radsurv"})
    res = plain.execute(img, m, label=1)
    assert float(res["original_glszm_HighGrayLevelZoneEmphasis"]) == pytest.approx(1.0)


def test_filtered_images_count_bins_from_their_own_minimum(tmp_path):
    img, m = _uniform_roi(tmp_path, -940.0, n=10)
    cfg = {"bin_width": 25, "feature_classes": ["glszm"], "filters": {"log_sigma_mm": [2.0]}}
    params = feat.pyradiomics_params(cfg, {"resegment_range": [-1000, 400]})
    before = copy.deepcopy(params)
    f, _ = feat.extract(img, m, params)
    assert f["original_glszm_HighGrayLevelZoneEmphasis"] == pytest.approx(9.0)
    assert f["log-sigma-2-0-mm-3D_glszm_LowGrayLevelZoneEmphasis"] <= 1.0  # lowest bin is 1
    # the caller's parameters are left as they were, so they can be used again (pyradiomics keeps the
    # image-type dicts it is given; the bin-origin key once leaked into them and failed validation)
    assert params == before
    assert feat.extract(img, m, params)[0] == f


def test_shape_from_morphological_mask_rest_from_intensity_mask(sphere_case):
    """Two masks: shape keeps the contour, intensity features see only re-segmented voxels."""
    d, nvox = sphere_case
    morph = sitk.ReadImage(str(d / "mask.nii.gz"))
    img = sitk.ReadImage(str(d / "image.nii.gz"))
    arr = sitk.GetArrayFromImage(img)
    inten_arr = sitk.GetArrayFromImage(morph).astype(bool) & (arr >= 30)
    inten = sitk.GetImageFromArray(inten_arr.astype(np.uint8))
    inten.CopyInformation(morph)
    params = feat.pyradiomics_params({"bin_width": 25, "feature_classes": ["shape", "firstorder"]},
                                     {"resegment_range": [30, None]})
    f, diag = feat.extract(img, morph, params, inten)
    assert f["original_shape_VoxelVolume"] == pytest.approx(nvox * 8.0)
    assert f["original_firstorder_Minimum"] >= 30
    assert f["original_firstorder_Mean"] == pytest.approx(arr[inten_arr].mean(), rel=1e-6)
    assert diag["diagnostics_Mask-original_VoxelNum"] == int(inten_arr.sum())
    assert diag["diagnostics_MorphologicalMask-original_VoxelNum"] == nvox
    # an intensity mask that was not re-segmented as the bin origin says is refused
    with pytest.raises(ValueError, match="below the bin origin"):
        feat.extract(img, morph, params, morph)
    # identical masks: one pyradiomics call, same result as without the intensity mask
    plain = feat.pyradiomics_params({"bin_width": 25, "feature_classes": ["shape", "firstorder"]})
    assert feat.extract(img, morph, plain, morph)[0] == feat.extract(img, morph, plain)[0]


def test_volume_correlation_flags_volume_surrogates():
    rng = np.random.default_rng(3)
    vol = rng.uniform(1e3, 1e5, 40)
    frame = pd.DataFrame({
        "patient_id": [f"P{i}" for i in range(40)],
        "original_shape_MeshVolume": vol,
        "original_glszm_SizeZoneNonUniformity": vol ** 0.8 * rng.uniform(0.98, 1.02, 40),
        "original_firstorder_Mean": rng.normal(0, 1, 40),
        "original_glcm_Const": np.ones(40),
    }).set_index("patient_id")
    t = matrix.volume_correlation(frame, "original_shape_MeshVolume", 0.9).set_index("feature")
    assert t.loc["original_shape_MeshVolume", "spearman_rho"] == pytest.approx(1.0)
    assert t.loc["original_glszm_SizeZoneNonUniformity", "volume_surrogate"]
    assert not t.loc["original_firstorder_Mean", "volume_surrogate"]
    assert np.isnan(t.loc["original_glcm_Const", "spearman_rho"])
    assert not t.loc["original_glcm_Const", "volume_surrogate"]
    assert t.loc["original_glszm_SizeZoneNonUniformity", "feature_class"] == "glszm"
    # Spearman p-values with Benjamini-Hochberg FDR across the features (the volume itself untested)
    assert t.loc["original_glszm_SizeZoneNonUniformity", "volume_associated"]
    assert t.loc["original_glszm_SizeZoneNonUniformity", "q_bh"] < 1e-10
    assert not t.loc["original_firstorder_Mean", "volume_associated"]
    assert np.isnan(t.loc["original_shape_MeshVolume", "p"]) and np.isnan(t.loc["original_glcm_Const", "q_bh"])
    from scipy.stats import false_discovery_control
    tested = t["p"].dropna()
    assert np.allclose(t.loc[tested.index, "q_bh"], false_discovery_control(tested.to_numpy(), method="bh"))
    ref = frame["original_firstorder_Mean"].corr(frame["original_shape_MeshVolume"], method="spearman")
    assert t.loc["original_firstorder_Mean", "spearman_rho"] == pytest.approx(ref)
    with pytest.raises(ValueError, match="volume feature"):
        matrix.volume_correlation(frame, "original_shape_VoxelVolume")


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
    assert names.feature_class("original_glcm_Contrast") == "glcm"
    assert names.image_type("wavelet-LLH_glcm_Contrast") == "wavelet-LLH"


def test_assemble_keeps_failures_in_qc(tmp_path, sphere_case):
    good = {"original_shape_MeshVolume": 4188.0, "original_firstorder_Mean": 30.0}
    matrix.write_scan_features(tmp_path / "A_S1.json", "A_S1", "A", 1, True, features=good,
                               diagnostics={"diagnostics_x": 1})
    matrix.write_scan_features(tmp_path / "B_S1.json", "B_S1", "B", 1, False,
                               reason="series 1.2.3 has a gap between slices")
    rec = json.loads((tmp_path / "B_S1.json").read_text())
    rec["stage"] = "conversion"
    (tmp_path / "B_S1.json").write_text(json.dumps(rec))
    fdf, ddf, qc = matrix.assemble(sorted(tmp_path.glob("*.json")))
    assert list(fdf.index) == ["A_S1"]
    assert names.feature_columns(fdf) == sorted(good)
    assert len(qc) == 1 and qc[0]["scan_id"] == "B_S1" and qc[0]["stage"] == "conversion"
    assert "gap" in qc[0]["reason"] and qc[0]["status"] == "excluded"
    assert list(ddf.index) == ["A_S1"]


def test_volume_correlation_stage_writes_one_row_per_feature_from_first_scans(tmp_path):
    from radsurv.workflow.features import volume_correlation

    rng = np.random.default_rng(1)
    rows = []
    for i in range(12):
        vol = float(rng.uniform(1e3, 1e5))
        for session in (1, 2) if i < 4 else (1,):
            rows.append({"scan_id": f"P{i:02d}_S{session}", "patient_id": f"P{i:02d}", "session": session,
                         "original_shape_MeshVolume": vol * (1 + 0.01 * session),
                         "original_firstorder_Mean": float(rng.normal())})
    pd.DataFrame(rows).to_csv(tmp_path / "features.tsv", sep="\t", index=False)
    volume_correlation(features=tmp_path / "features.tsv", table=tmp_path / "vc.tsv",
                       volume_feature="original_shape_MeshVolume", threshold=0.9)
    t = pd.read_csv(tmp_path / "vc.tsv", sep="\t")
    assert set(t["feature"]) == {"original_shape_MeshVolume", "original_firstorder_Mean"}
    assert (t["n"] == 12).all()  # one scan per patient, retests not double-counted
    assert t.set_index("feature").loc["original_shape_MeshVolume", "volume_surrogate"]


def test_volume_correlation_stage_takes_the_pictologics_volume_column(tmp_path):
    """With the pictologics engine the table has ``original_morph_volume``, not the configured
    pyradiomics name: the stage takes it (as modelling does) instead of failing the whole run."""
    from radsurv.workflow.features import volume_correlation

    rng = np.random.default_rng(2)
    vol = rng.uniform(1e3, 1e5, 10)
    pd.DataFrame({"scan_id": [f"P{i}_S1" for i in range(10)], "patient_id": [f"P{i}" for i in range(10)],
                  "session": 1, "original_morph_volume": vol, "original_morph_area_mesh": vol ** (2 / 3),
                  "original_stat_mean": rng.normal(size=10)}).to_csv(tmp_path / "f.tsv", sep="\t", index=False)
    volume_correlation(features=tmp_path / "f.tsv", table=tmp_path / "vc.tsv",
                       volume_feature="original_shape_MeshVolume", threshold=0.9)
    t = pd.read_csv(tmp_path / "vc.tsv", sep="\t").set_index("feature")
    assert t.loc["original_morph_area_mesh", "volume_surrogate"]
    assert not t.loc["original_stat_mean", "volume_surrogate"]
    pd.DataFrame({"scan_id": ["A_S1"], "patient_id": ["A"], "session": 1,
                  "original_stat_mean": [1.0]}).to_csv(tmp_path / "none.tsv", sep="\t", index=False)
    with pytest.raises(ValueError, match="no tumour-volume column"):
        volume_correlation(features=tmp_path / "none.tsv", table=tmp_path / "vc2.tsv",
                           volume_feature="original_shape_MeshVolume", threshold=0.9)
