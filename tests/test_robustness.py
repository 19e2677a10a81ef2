"""Test-retest pairing and the ICC filter over a feature matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd

from radsurv.robustness import RobustnessSettings, counts_by_class, retest_pairs, robustness_table


def _scans():
    rows = []
    for i in range(12):
        rows.append({"scan_id": f"P{i}_S1", "patient_id": f"P{i}", "session": 1, "days_from_first": 0})
        if i < 10:
            days = 3 if i < 9 else 200  # P9's second scan is a follow-up, not a retest
            rows.append({"scan_id": f"P{i}_S2", "patient_id": f"P{i}", "session": 2, "days_from_first": days})
    return pd.DataFrame(rows)


def _features(scans, seed=0):
    rng = np.random.default_rng(seed)
    truth = {p: rng.normal(0, 1) for p in scans["patient_id"].unique()}
    f = pd.DataFrame(index=scans["scan_id"])
    f["patient_id"] = scans["patient_id"].to_numpy()
    f["session"] = scans["session"].to_numpy()
    f["original_shape_MeshVolume"] = [truth[p] + rng.normal(0, 0.05) for p in scans["patient_id"]]
    f["wavelet-HHH_glcm_Contrast"] = rng.normal(0, 1, len(scans))  # pure noise
    f["original_firstorder_Constant"] = 1.0
    f.index.name = "scan_id"
    return f


def test_retest_pairs_respect_the_day_window():
    pairs = retest_pairs(_scans(), max_days=30)
    assert len(pairs) == 9 and "P9" not in set(pairs["patient_id"])
    assert set(pairs["test_scan"].str.endswith("_S1")) == {True}


def test_stable_feature_robust_noise_feature_not():
    scans = _scans()
    table, assessed = robustness_table(_features(scans), retest_pairs(scans, 30), RobustnessSettings())
    assert assessed
    t = table.set_index("feature")
    assert t.loc["original_shape_MeshVolume", "robust"]
    assert t.loc["original_shape_MeshVolume", "ci_low"] > 0.75
    assert not t.loc["wavelet-HHH_glcm_Contrast", "robust"]
    assert not t.loc["original_firstorder_Constant", "robust"]  # zero variance: NaN, never robust
    assert ((t["icc"].dropna() >= -1) & (t["icc"].dropna() <= 1)).all()
    assert set(t["n"]) == {9}
    counts = counts_by_class(table).set_index(["image_type", "feature_class"])
    assert counts.loc[("original", "shape"), "robust"] == 1


def test_too_few_pairs_keeps_all_features_and_says_so():
    scans = _scans()
    pairs = retest_pairs(scans, 30).head(3)
    table, assessed = robustness_table(_features(scans), pairs, RobustnessSettings(min_pairs=5))
    assert not assessed and table["robust"].all() and table["icc"].isna().all()


def test_outcome_is_not_an_input():
    import inspect

    params = inspect.signature(robustness_table).parameters
    assert list(params) == ["features", "pairs", "settings"]
