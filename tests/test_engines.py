"""The two extraction engines (extraction.engine), their configuration and their IBSI names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import SimpleITK as sitk

from radsurv.config import load_site
from radsurv.features import engines, ibsi_names
from radsurv.features import pictologics_engine as pe
from radsurv.schema import default


def test_pyradiomics_is_the_default_engine_with_averaged_texture():
    assert default("extraction", "engine") == "pyradiomics"
    assert engines.engine_of({}) == "pyradiomics"
    assert engines.texture_aggregation({}) == "averaged"
    assert engines.texture_aggregation({"engine": "pictologics"}) == "merged"
    assert engines.texture_aggregation({"engine": "pyradiomics", "texture_aggregation": "merged"}) == "merged"
    with pytest.raises(ValueError, match="engine"):
        engines.engine_of({"engine": "matlab"})


def test_pictologics_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match="merged"):
        pe.configurations({"texture_aggregation": "averaged", "bin_width": 25}, {"resegment_range": [-1000, 400]})
    with pytest.raises(ValueError, match="3D"):
        pe.configurations({"dimensions": "2D", "bin_width": 25}, {"resegment_range": [-1000, 400]})


def test_pictologics_steps_of_ibsi_configuration_c():
    site = load_site("ibsi_c")
    steps = pe.configurations(site["extraction"], site["preprocessing"])["original"]
    assert [s["step"] for s in steps] == ["resegment", "discretise", "extract_features"]
    assert steps[0]["params"] == {"range_min": -1000.0, "range_max": 400.0, "apply_to": "intensity"}
    assert steps[1]["params"] == {"method": "FBS", "bin_width": 25.0, "min_val": -1000.0}
    feats = steps[2]["params"]
    assert feats["ivh_discretisation"] == {"method": "FBS", "bin_width": 2.5, "min_val": -1000.0}
    assert feats["ivh_params"] == {"target_range_min": -1000.0, "target_range_max": 400.0}
    assert {"morphology", "intensity", "histogram", "glcm", "gldzm", "ngldm", "ivh"} <= set(feats["families"])


def test_pictologics_filters_and_outliers():
    configs = pe.configurations({"bin_count": 16, "filters": {"log_sigma_mm": [1.5], "wavelet": True}},
                                {"resegment_range": None, "outlier_sigma": 3}, roi_min=-50.0)
    assert set(configs) == {"original", "log-sigma-1-5-mm", *(f"wavelet-{b}" for b in pe.WAVELET_BANDS)}
    log_steps = configs["log-sigma-1-5-mm"]
    assert [s["step"] for s in log_steps] == ["filter_outliers", "filter", "discretise", "extract_features"]
    assert log_steps[1]["params"] == {"type": "log", "sigma_mm": 1.5}
    assert "morphology" not in log_steps[-1]["params"]["families"]
    # without a range, fixed-size bins start at the ROI minimum (as for pyradiomics)
    fbs = pe.configurations({"bin_width": 10}, {}, roi_min=-50.0)["original"][0]["params"]
    assert fbs == {"method": "FBS", "bin_width": 10.0, "min_val": -50.0}


@pytest.mark.parametrize("key, tag", [
    ("volume_RNU0", "morph_volume"),
    ("joint_maximum_GYBY", "cm_joint_max_3D_comb"),
    ("grey_level_non_uniformity_VFT7", "dzm_glnu_3D"),
    ("volume_at_intensity_fraction_0.10_BC2M_10", "ivh_v10"),
    ("10th_discretised_intensity_percentile_1PR", "ih_p10"),
    ("local_intensity_peak_VJGA", "loc_peak_loc"),
    ("no_such_feature", None),
])
def test_pictologics_keys_to_ibsi_tags(key, tag):
    assert ibsi_names.pictologics_tag(key) == tag


def test_pyradiomics_names_to_ibsi_tags():
    assert ibsi_names.pyradiomics_tag("original_glcm_Idmn") == "cm_inv_diff_mom_norm_3D_avg"
    assert ibsi_names.pyradiomics_tag("wavelet-LLH_glcm_Idmn", "merged") == "cm_inv_diff_mom_norm_3D_comb"
    assert ibsi_names.pyradiomics_tag("original_shape_MeshVolume") == "morph_volume"
    assert ibsi_names.pyradiomics_tag("original_shape_Maximum2DDiameterSlice") is None
    assert ibsi_names.ibsi_tag("original_morph_volume", "pictologics", "merged") == "morph_volume"
    assert ibsi_names.ibsi_tag("original_shape_MeshVolume", "pyradiomics", "averaged") == "morph_volume"


def test_pyradiomics_tags_agree_with_the_shared_ibsi_mapping(shared_data):
    mapping = pd.read_csv(shared_data / "ibsi" / "pyradiomics_ibsi_mapping.csv").dropna(
        subset=["pyradiomics_name", "ibsi_tag"])
    mapping = mapping[~mapping["ibsi_tag"].str.endswith("_comb")]
    tags_of = mapping.groupby("pyradiomics_name")["ibsi_tag"].apply(set)
    assert len(mapping) == 108 and len(tags_of) == 105  # three pyradiomics features equal two IBSI features
    for name, tags in tags_of.items():
        assert ibsi_names.pyradiomics_tag(name) in tags, name


def test_every_pictologics_feature_has_an_ibsi_tag():
    pytest.importorskip("pictologics")
    from pictologics.features import FEATURE_NAMES

    keys = [k for names in FEATURE_NAMES.values() for k in names]
    assert len(keys) > 170
    assert [k for k in keys if ibsi_names.pictologics_tag(k) is None] == []
    tags = [ibsi_names.pictologics_tag(k) for k in keys]
    assert len(set(tags)) == len(tags)  # no two features share a tag


def _blob(tmp_path):
    rng = np.random.default_rng(0)
    z, y, x = np.mgrid[:24, :24, :24]
    mask = ((z - 12) ** 2 + (y - 12) ** 2 + (x - 11) ** 2 < 64).astype(np.uint8)
    image = (rng.normal(40, 30, mask.shape) + 20 * mask).round().astype(np.int16)
    paths = []
    for arr, name in ((image, "image.nii.gz"), (mask, "mask.nii.gz")):
        img = sitk.GetImageFromArray(arr)
        img.SetSpacing((1.0, 1.0, 1.0))
        sitk.WriteImage(img, str(tmp_path / name))
        paths.append(tmp_path / name)
    return paths


def test_pyradiomics_merged_texture_differs_from_averaged(tmp_path):
    image, mask = _blob(tmp_path)
    cfg = {"bin_width": 10, "feature_classes": ["glcm", "glszm"]}
    avg, _ = engines.extract(image, mask, None, cfg, {"resegment_range": [-200, 400]})
    comb, _ = engines.extract(image, mask, None, {**cfg, "texture_aggregation": "merged"},
                              {"resegment_range": [-200, 400]})
    assert avg["original_glcm_JointEntropy"] != pytest.approx(comb["original_glcm_JointEntropy"], rel=1e-6)
    assert avg["original_glszm_ZoneEntropy"] == pytest.approx(comb["original_glszm_ZoneEntropy"])  # one 3D matrix


def test_engines_agree_where_ibsi_defines_the_same_feature(tmp_path):
    """Same preprocessed scan, both engines: the features both compute line up by IBSI tag."""
    pytest.importorskip("pictologics")
    image, mask = _blob(tmp_path)
    cfg = {"bin_width": 10, "texture_aggregation": "merged"}
    pre = {"resegment_range": [-200, 400]}
    pyr, _ = engines.extract(image, mask, None, cfg, pre)
    pic, _ = engines.extract(image, mask, None, {**cfg, "engine": "pictologics"}, pre)
    pyr_tags = {ibsi_names.pyradiomics_tag(k, "merged"): v for k, v in pyr.items()}
    for tag in ("morph_volume", "stat_mean", "stat_var", "cm_joint_entr_3D_comb", "szm_sze_3D", "rlm_sre_3D_comb"):
        assert pic[f"original_{tag}"] == pytest.approx(pyr_tags[tag], rel=1e-3), tag
    assert "original_dzm_sde_3D" in pic and "original_loc_peak_glob" in pic  # IBSI features pyradiomics lacks


@pytest.mark.e2e
def test_pictologics_batches_keep_one_row_log_section_and_cost_file_per_scan(tmp_path):
    """`snakemake features` with the pictologics engine: scans extracted in batches of 2, and still
    one feature row, one stage-cost file and one log section per scan."""
    pytest.importorskip("pictologics")
    from conftest import run_workflow, tiny_config

    tiny_config(tmp_path, {"demo": {"patients": 4, "retest": 1},
                           "extraction": {"engine": "pictologics", "batch_size": 2}})
    results = run_workflow(tmp_path, "features", "--cores", "2")
    scans = sorted(p.stem for p in (results / "features" / "scans").glob("*.json"))
    assert len(scans) == 5
    batches = sorted((results / "batches").iterdir())
    assert [b.name for b in batches] == ["0", "1", "2"]
    logs = "".join((results / "logs" / "extract_scan_batch" / f"{b.name}.log").read_text() for b in batches)
    assert sorted(s for s in scans if f"== scan {s} ==" in logs) == scans
    assert logs.count("engine start-up") == 3
    for scan in scans:
        costs = pd.read_csv(results / "benchmarks" / "stages" / f"{scan}.tsv", sep="\t")
        assert list(costs["stage"]) == ["conversion", "preprocessing", "extraction"]
    table = pd.read_csv(results / "features" / "features.tsv", sep="\t", index_col=0)
    assert len(table) == 5 and table["original_morph_volume"].gt(0).all()
    assert "original_dzm_sde_3D" in table and "original_shape_MeshVolume" not in table
