"""Test-retest pairing and the ICC filter over a feature matrix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from radsurv.robustness.discretisation import discretisation_table
from radsurv.robustness.icc_tables import icc_long
from radsurv.robustness.perturbation_icc import perturbation_long, perturbation_table
from radsurv.robustness.selection import RobustnessSettings, agreement, combine, counts_by_class, first_scans
from radsurv.robustness.testretest import retest_pairs, robustness_table


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


# That robustness never sees the outcome is shown by behaviour, not parameter names:
# tests/test_modelling.py::test_no_leakage_robust_features_do_not_depend_on_the_outcome.


# ------------------------------------------------------------------ perturbation


def test_first_scans_are_never_retest_scans():
    scans = _scans()
    first = first_scans(scans)
    assert len(first) == 12 and all(s.endswith("_S1") for s in first)
    # Session order, not file order, decides.
    shuffled = scans.sample(frac=1.0, random_state=1)
    assert first_scans(shuffled) == first


def _records(n_pat=12, k=5, seed=0, fail=()):
    rng = np.random.default_rng(seed)
    recs = []
    for i in range(n_pat):
        vol = rng.lognormal(3, 0.8)
        perts = []
        for j in range(k):
            perts.append({"params": {"index": j}, "ok": (i, j) not in fail, "reason": "x" if (i, j) in fail else "",
                          "features": {"original_shape_MeshVolume": vol * (1 + rng.normal(0, 0.03)),
                                       "wavelet-HHH_glcm_Contrast": rng.normal(0, 1),
                                       "original_firstorder_Constant": 2.0}})
        recs.append({"scan_id": f"P{i:02d}_S1", "patient_id": f"P{i:02d}", "ok": True, "reason": "",
                     "perturbations": perts})
    return recs


def test_perturbation_icc_is_one_way_over_the_copies_and_flags_the_right_features():
    long, excluded = perturbation_long(_records())
    assert excluded == [] and len(long) == 12 * 5
    table, assessed = perturbation_table(long, RobustnessSettings())
    assert assessed
    t = table.set_index("feature")
    assert set(t["form"]) == {"ICC(1,1)"} and set(t["n"]) == {12} and set(t["k"]) == {5}
    assert t.loc["original_shape_MeshVolume", "robust"]
    assert not t.loc["wavelet-HHH_glcm_Contrast", "robust"]
    assert not t.loc["original_firstorder_Constant", "robust"]
    # The same numbers as the ICC module on the long table, and as pingouin's ICC(1,1).
    ref = icc_long(long, "patient_id", "perturbation", ["original_shape_MeshVolume"], form="ICC(1,1)")
    assert t.loc["original_shape_MeshVolume", "icc"] == pytest.approx(ref["icc"].iloc[0], abs=1e-12)
    import pingouin as pg

    pgr = pg.intraclass_corr(long, targets="patient_id", raters="perturbation",
                             ratings="original_shape_MeshVolume").set_index("Type")
    assert t.loc["original_shape_MeshVolume", "icc"] == pytest.approx(pgr.loc["ICC(1,1)", "ICC"], abs=1e-6)


def test_a_scan_with_a_failed_copy_is_left_out_and_named():
    recs = _records(fail={(3, 2)})
    recs.append({"scan_id": "P99_S1", "patient_id": "P99", "ok": False, "reason": "conversion failed",
                 "perturbations": []})
    long, excluded = perturbation_long(recs)
    assert {e["scan_id"] for e in excluded} == {"P03_S1", "P99_S1"}
    assert "P03" not in set(long["patient_id"])
    table, assessed = perturbation_table(long, RobustnessSettings())
    assert assessed and set(table["n"]) == {11}


def test_too_few_perturbed_patients_is_not_assessed():
    long, _ = perturbation_long(_records(n_pat=3))
    table, assessed = perturbation_table(long, RobustnessSettings(min_pairs=5))
    assert not assessed and table["robust"].all()


# ---------------------------------------------------------------- discretisation
def _disc_long(n=15, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(0, 1, n)
    rows = []
    settings = ["bin_width=10", "bin_width=25", "bin_count=16", "bin_count=32"]
    for s_i, s in enumerate(settings):
        for p in range(n):
            rows.append({"scan_id": f"P{p}_S1", "patient_id": f"P{p}", "setting": s,
                         # monotone in the truth, scale changes with the setting: ranking kept
                         "original_firstorder_Entropy": np.exp(truth[p]) * (s_i + 1) + 10 * s_i,
                         # ranking reshuffled by the setting
                         "original_glcm_Idm": rng.normal(0, 1),
                         "original_glcm_Const": 1.0})
    return pd.DataFrame(rows)


def test_discretisation_table_reports_ranking_stability():
    from scipy import stats

    long = _disc_long()
    table, assessed = discretisation_table(long, RobustnessSettings())
    assert assessed
    t = table.set_index("feature")
    assert t.loc["original_firstorder_Entropy", "icc"] == pytest.approx(1.0)
    assert t.loc["original_firstorder_Entropy", "spearman_min"] == pytest.approx(1.0)
    assert t.loc["original_firstorder_Entropy", "robust"]
    assert not t.loc["original_glcm_Idm", "robust"] and not t.loc["original_glcm_Const", "robust"]
    assert set(t["k"].dropna()) == {4} and set(t["n"]) == {15}
    # spearman_min is the lowest pairwise Spearman correlation, and names its pair.
    wide = long.pivot(index="patient_id", columns="setting", values="original_glcm_Idm")
    rhos = {(a, b): stats.spearmanr(wide[a], wide[b])[0] for i, a in enumerate(wide) for b in list(wide)[i + 1:]}
    worst = min(rhos, key=rhos.get)
    assert t.loc["original_glcm_Idm", "spearman_min"] == pytest.approx(rhos[worst], abs=1e-9)
    assert set(t.loc["original_glcm_Idm", "worst_pair"].split(" vs ")) == set(worst)
    assert np.isfinite(t.loc["original_glcm_Idm", "icc_fixed_bin_width"])


# ------------------------------------------------------------------ combination
def _tables():
    feats = ["a_shape_x", "b_glcm_y", "c_glcm_z", "d_ngtdm_w"]
    def tab(flags):
        return pd.DataFrame({"feature": feats, "robust": flags})
    return feats, tab([True, True, False, False]), tab([True, False, True, False])


def test_combine_intersection_union_and_not_assessed():
    feats, tr, pt = _tables()
    both = {"test-retest": (tr, True), "perturbation": (pt, True)}
    sel, desc = combine(both, RobustnessSettings(method="both"), feats)
    assert sel["robust"].tolist() == [True, False, False, False] and "intersection" in desc
    sel, _ = combine(both, RobustnessSettings(method="both", combine="union"), feats)
    assert sel["robust"].tolist() == [True, True, True, False]
    ag = agreement(sel)
    assert (ag["both"], ag["test_retest_only"], ag["perturbation_only"], ag["neither"]) == (1, 1, 1, 1)
    assert ag["jaccard"] == pytest.approx(1 / 3)
    # One analysis not assessed: the other decides alone.
    sel, desc = combine({"test-retest": (tr, False), "perturbation": (pt, True)},
                        RobustnessSettings(method="both"), feats)
    assert sel["robust"].tolist() == pt["robust"].tolist() and "not be assessed" in desc
    # Nothing assessed: every feature kept, and said so.
    sel, desc = combine({"test-retest": (tr, False)}, RobustnessSettings(), feats)
    assert sel["robust"].all() and "could not be assessed" in desc
    # A feature missing from an analysis is not robust there.
    sel, _ = combine({"perturbation": (pt.iloc[:2], True)}, RobustnessSettings(method="perturbation"), feats)
    assert sel["robust"].tolist() == [True, False, False, False]


def test_settings_reject_unknown_method():
    with pytest.raises(ValueError):
        RobustnessSettings(method="retest")


# ------------------------------------------------------------ end to end (tiny run)
@pytest.mark.e2e
def test_workflow_runs_all_three_analyses_and_combines_them(tiny_run):
    import json

    from conftest import N_PATIENTS

    rob = tiny_run / "robustness"
    pert = pd.read_csv(rob / "perturbation.tsv", sep="\t")
    assert set(pert["form"]) == {"ICC(1,1)"} and set(pert["k"]) == {3} and set(pert["n"]) == {N_PATIENTS}
    # Perturbation uses each patient's first scan only: retest scans never take part.
    copies = pd.read_csv(rob / "perturbation" / "features.tsv", sep="\t")
    assert copies["scan_id"].str.endswith("_S1").all() and len(copies) == 3 * N_PATIENTS
    assert len(list((tiny_run / "benchmarks" / "perturb_scan").glob("*.tsv"))) == N_PATIENTS
    tr = pd.read_csv(rob / "test_retest.tsv", sep="\t")
    assert set(tr["k"]) == {2} and set(tr["form"]) == {"ICC(2,1)"}
    # The robust list is the intersection of the two robust sets (config: method both).
    sel = pd.read_csv(rob / "selection.tsv", sep="\t")
    expect = sel["robust_test_retest"].astype(bool) & sel["robust_perturbation"].astype(bool)
    assert sel["robust"].tolist() == expect.tolist()
    listed = (rob / "robust_features.txt").read_text().split()
    assert listed == sel.loc[sel["robust"], "feature"].tolist() and listed
    icc = pd.read_csv(rob / "icc.tsv", sep="\t")
    assert set(icc["analysis"]) == {"test-retest", "perturbation"}
    summary = json.loads((rob / "summary.json").read_text())
    assert summary["method"] == "both" and summary["n_robust"] == len(listed)
    ag = summary["agreement_test_retest_vs_perturbation"]
    assert ag["both"] + ag["test_retest_only"] + ag["perturbation_only"] + ag["neither"] == len(sel)
    assert ag["both"] == len(listed)
    disc = pd.read_csv(rob / "discretisation.tsv", sep="\t")
    assert set(disc["k"]) == {2} and "spearman_min" in disc and not disc["feature_class"].eq("shape").any()
    for png in ("icc_by_class.png", "bland_altman_test_retest.png", "bland_altman_perturbation.png",
                "discretisation_by_class.png"):
        assert (rob / png).stat().st_size > 10_000
