"""Delta radiomics library (issue #18): time points, ROIs, deltas gated by the RC, landmark data."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from radsurv.longitudinal.delta import (
    RC_FACTOR,
    DeltaSettings,
    delta_matrix,
    delta_table,
    missing_baseline_qc,
    rc_from_perturbation,
    rc_from_retest,
    select_delta_features,
    slope_table,
)
from radsurv.longitudinal.landmark import landmark_dataset
from radsurv.longitudinal.rois import RoiSpec, match_rois, prefix_features, roi_of_column, rois_from_config
from radsurv.longitudinal.timepoints import (
    TimePointSettings,
    assign_timepoints,
    retest_pairs_longitudinal,
)
from radsurv.synthetic.longitudinal import simulate_longitudinal, truth_table

WINDOWS = {"planning": {"days": [0, 0], "fractions": [0, 0]}, "fx5": {"days": [5, 9], "fractions": [5, 5]},
           "fx10": {"days": [12, 16], "fractions": [10, 10]}, "fx15": {"days": [19, 23], "fractions": [15, 15]},
           "fx20": {"days": [26, 30], "fractions": [20, 20]}, "post": {"days": [42, 56], "fractions": [25, 35]}}


def _settings(assign_by: str = "days") -> TimePointSettings:
    return TimePointSettings.from_config({"timepoints": WINDOWS, "assign_by": assign_by, "retest_max_days": 3})


def _scans(days: list[int], pid: str = "P1") -> pd.DataFrame:
    return pd.DataFrame({"scan_id": [f"{pid}_S{i + 1}" for i in range(len(days))], "patient_id": pid,
                         "session": range(1, len(days) + 1), "days_from_first": days})


# --------------------------------------------------------------------------- time points
@pytest.mark.parametrize("assign_by", ["days", "fraction", "session"])
def test_every_generated_scan_gets_its_planted_timepoint(assign_by):
    truth = truth_table(simulate_longitudinal(12, 4, seed=3))
    scans = truth.rename(columns={"timepoint": "true_tp"}).assign(
        session=lambda d: d.groupby("patient_id").cumcount() + 1,
        timepoint=lambda d: np.where(d["role"] == "retest", "retest", d["true_tp"]))
    assigned, qc = assign_timepoints(scans, _settings(assign_by))
    assert qc.empty
    merged = assigned.merge(truth[["scan_id", "timepoint", "role"]], on="scan_id", suffixes=("", "_true"))
    assert len(merged) == len(truth)  # every scan assigned
    assert (merged["timepoint"] == merged["timepoint_true"]).all()
    assert (merged["role"] == merged["role_true"]).all()
    # the missed fraction stays missing (patient index 1 has no fx15), never filled by a neighbour
    assert "fx15" not in set(assigned.loc[assigned["patient_id"] == "LONG-002", "timepoint"])
    pairs = retest_pairs_longitudinal(assigned)
    assert sorted(pairs["patient_id"]) == [f"LONG-{i:03d}" for i in range(1, 5)]


def test_scan_outside_every_window_and_two_scans_in_one_window_are_qc_rows():
    scans = _scans([0, 7, 8, 11, 14])  # day 7 and 8 share fx5; day 11 fits no window
    assigned, qc = assign_timepoints(scans, _settings())
    assert list(assigned["timepoint"]) == ["planning", "fx10"]
    assert set(qc["scan_id"]) == {"P1_S2", "P1_S3", "P1_S4"}
    assert "fits no time-point window" in qc.set_index("scan_id").loc["P1_S4", "reason"]
    assert "2 scans" in qc.set_index("scan_id").loc["P1_S2", "reason"]
    assert (qc["status"] == "excluded").all()


def test_retest_stays_a_retest_only_when_discovery_and_the_window_agree():
    scans = _scans([0, 2, 7]).assign(label=["baseline", "retest", "follow-up"])
    assigned, qc = assign_timepoints(scans, _settings())
    assert list(assigned["role"]) == ["timepoint", "retest", "timepoint"] and qc.empty
    # a second scan 6 days later is fx5 (inside its window), even though within robustness' 30 days
    assigned, _ = assign_timepoints(_scans([0, 6]).assign(label=["baseline", "retest"]), _settings())
    assert list(assigned["timepoint"]) == ["planning", "fx5"] and list(assigned["role"]) == ["timepoint"] * 2
    # the third scan within 3 days is not a retest: QC row (no window), never a guess
    assigned, qc = assign_timepoints(_scans([0, 1, 2]), _settings())
    assert list(assigned["role"]) == ["timepoint", "retest"] and list(qc["scan_id"]) == ["P1_S3"]


def test_timepoint_settings_reject_overlapping_windows_and_unknown_rule():
    bad = {**WINDOWS, "fx5": {"days": [5, 13]}}
    with pytest.raises(ValueError, match="overlap"):
        TimePointSettings.from_config({"timepoints": bad})
    with pytest.raises(ValueError, match="assign_by"):
        TimePointSettings.from_config({"timepoints": WINDOWS, "assign_by": "week"})
    with pytest.raises(ValueError, match="empty"):
        TimePointSettings.from_config({"timepoints": {**WINDOWS, "fx5": {"days": [9, 5]}}})


# --------------------------------------------------------------------------- ROIs
def test_rois_matched_by_own_pattern_absent_roi_is_one_qc_row():
    specs = rois_from_config({"gtv": {"pattern": r"gtv.*", "tumour": True},
                              "parotid_l": {"pattern": r"parotid[_ ]?l(eft)?"},
                              "parotid_r": {"pattern": r"parotid[_ ]?r(ight)?"}})
    found, qc = match_rois("P1", "P1_S3", ["GTV_p", "Parotid_R", "Body"], specs, timepoint="fx10")
    assert found == {"gtv": "GTV_p", "parotid_r": "Parotid_R"}
    assert len(qc) == 1 and "'parotid_l' at time point 'fx10'" in qc[0]["reason"]
    found, qc = match_rois("P1", "P1_S3", ["GTVp", "GTVn", "Parotid L", "Parotid R"], specs)
    assert set(found) == {"parotid_l", "parotid_r"} and "2 structures" in qc[0]["reason"]
    assert prefix_features({"original_shape_MeshVolume": 3}, "gtv") == {"gtv__original_shape_MeshVolume": 3.0}
    assert roi_of_column("parotid_l__original_firstorder_Mean") == ("parotid_l", "original_firstorder_Mean")
    with pytest.raises(ValueError, match="lower-case"):
        RoiSpec("GTV", "gtv")
    with pytest.raises(ValueError, match="exactly one"):
        rois_from_config({"a": {"pattern": "a"}})


# --------------------------------------------------------------------------- deltas
def _long_table(values: dict[str, list[float]], days=(0, 7, 14)) -> pd.DataFrame:
    rows = []
    n = len(next(iter(values.values()))) // len(days)
    for i in range(n):
        for k, d in enumerate(days):
            row = {"patient_id": f"P{i}", "timepoint": ["planning", "fx5", "fx10"][k], "timepoint_index": k,
                   "days": d}
            row.update({f: v[i * len(days) + k] for f, v in values.items()})
            rows.append(row)
    return pd.DataFrame(rows)


def test_repeatability_coefficient_from_retest_and_perturbation():
    test = pd.DataFrame({"f": [10.0, 20.0, 30.0]})
    retest = pd.DataFrame({"f": [11.0, 19.0, 32.0]})
    rc = rc_from_retest(test, retest).set_index("feature")
    wsd = math.sqrt((1 + 1 + 4) / 3 / 2)
    assert rc.loc["f", "wsd"] == pytest.approx(wsd) and rc.loc["f", "rc"] == pytest.approx(2.77 * wsd, rel=1e-3)
    copies = pd.DataFrame({"scan_id": ["a", "a", "b", "b"], "f": [1.0, 3.0, 5.0, 5.0]})
    rcp = rc_from_perturbation(copies).set_index("feature")
    assert rcp.loc["f", "wsd"] == pytest.approx(1.0) and rcp.loc["f", "source"] == "perturbation"
    assert rcp.loc["f", "rc"] == pytest.approx(RC_FACTOR)


def test_change_below_the_noise_is_no_change_and_the_feature_is_dropped():
    rng = np.random.default_rng(0)
    n = 30
    noise_sd = 2.0
    # test-retest pairs measure the noise of both features
    test = pd.DataFrame({"gtv__big": rng.normal(100, 10, n), "gtv__small": rng.normal(100, 10, n)})
    retest = test + rng.normal(0, noise_sd, (n, 2))
    rc = rc_from_retest(test, retest)
    base = rng.normal(100, 10, n)
    big, small = [], []
    for i in range(n):  # planted change: big -20 by fx10 (>> RC ~5.5), small -1 (< RC)
        big += [base[i], base[i] - 10, base[i] - 20]
        small += [base[i], base[i] - 0.5, base[i] - 1.0]
    feats = _long_table({"gtv__big": big, "gtv__small": small})
    d = delta_table(feats, rc, DeltaSettings())
    fx10 = d[d["timepoint"] == "fx10"].set_index("feature")
    assert fx10.loc["gtv__small", "changed"].sum() == 0  # inside the noise: reported as no change
    assert (fx10.loc["gtv__small", "abs_change_gated"] == 0).all()
    assert fx10.loc["gtv__small", "abs_change"].to_numpy() == pytest.approx(-1.0)  # raw value kept
    assert fx10.loc["gtv__big", "changed"].all()
    sel = select_delta_features(d, DeltaSettings(min_changed_fraction=0.2)).set_index("feature")
    assert bool(sel.loc["gtv__big", "kept"]) and not bool(sel.loc["gtv__small", "kept"])
    assert "dropped before modelling" in sel.loc["gtv__small", "reason"]
    m = delta_matrix(d, "fx10", features=["gtv__big"])
    assert list(m.columns) == ["gtv__big__delta_fx10"] and len(m) == n
    sl = slope_table(feats, rc, DeltaSettings()).set_index(["feature", "patient_id"])
    assert sl.loc[("gtv__big", "P0"), "slope"] == pytest.approx(-20 / 14)
    assert sl.loc["gtv__small", "changed"].sum() == 0 and (sl.loc["gtv__small", "slope_gated"] == 0).all()


def test_relative_change_guarded_near_zero_and_log_ratio_only_for_positive_values():
    feats = _long_table({"gtv__f": [100.0, 50.0, 25.0, 1e-9, 5.0, 6.0, -2.0, -1.0, 3.0]})
    rc = pd.DataFrame({"feature": ["gtv__f"], "rc": [0.0]})
    d = delta_table(feats, rc, DeltaSettings(relative_floor=0.01)).set_index(["patient_id", "timepoint"])
    assert d.loc[("P0", "fx5"), "rel_change"] == pytest.approx(-0.5)
    assert d.loc[("P0", "fx10"), "log_ratio"] == pytest.approx(math.log(0.25))
    assert bool(d.loc[("P1", "fx5"), "rel_guarded"]) and math.isnan(d.loc[("P1", "fx5"), "rel_change"])
    assert d.loc[("P2", "fx5"), "rel_change"] == pytest.approx(0.5)  # (-1 - -2) / |-2|
    assert math.isnan(d.loc[("P2", "fx10"), "log_ratio"])  # negative baseline: no log-ratio
    with pytest.raises(ValueError, match="relative_floor"):
        DeltaSettings(relative_floor=1.5)


def test_missing_change_is_no_change_and_a_patient_without_baseline_is_a_qc_row():
    feats = _long_table({"gtv__f": [10.0, np.nan, 30.0, 10.0, 12.0, 14.0]})
    rc = pd.DataFrame({"feature": ["gtv__f"], "rc": [5.0]})
    d = delta_table(feats, rc, DeltaSettings()).set_index(["patient_id", "timepoint"])
    assert not bool(d.loc[("P0", "fx5"), "changed"]) and bool(d.loc[("P0", "fx10"), "changed"])
    assert not bool(d.loc[("P1", "fx10"), "changed"])  # 4 <= RC 5
    qc = missing_baseline_qc(feats[feats["patient_id"] != "P1"].assign(
        timepoint_index=lambda x: np.where(x["patient_id"] == "P0", x["timepoint_index"] + 1, x["timepoint_index"])))
    assert [r["patient_id"] for r in qc] == ["P0"] and "no usable baseline" in qc[0]["reason"]


# --------------------------------------------------------------------------- landmark
def test_landmark_named_case_hand_computed():
    """Landmark fx10. P-A: event at 0.3 months (day 9) before its fx10 scan (day 14): excluded.
    P-B: censored at 2 months, fx10 on day 15.21875 (0.5 months): kept, time 1.5, event 0.
    P-C: event at 10 months, fx10 on day 30.4375 (1 month): kept, time 9, event 1.
    P-D: no fx10 scan (missed fraction): excluded. P-E: censored exactly at its landmark: excluded."""
    clinical = pd.DataFrame({"patient_id": ["P-A", "P-B", "P-C", "P-D", "P-E"],
                             "os_months": [0.3, 2.0, 10.0, 5.0, 14 / 30.4375],
                             "os_event": [1, 0, 1, 1, 0]})
    assigned = pd.DataFrame({"patient_id": ["P-A", "P-B", "P-C", "P-D", "P-E"],
                             "scan_id": ["a", "b", "c", "d", "e"],
                             "timepoint": ["fx10", "fx10", "fx10", "fx5", "fx10"],
                             "role": "timepoint", "days_from_first": [14, 15.21875, 30.4375, 7, 14]})
    table, qc = landmark_dataset(clinical, assigned, "fx10")
    assert list(table["patient_id"]) == ["P-B", "P-C"]
    assert table["time"].to_numpy() == pytest.approx([1.5, 9.0])
    assert list(table["event"]) == [0, 1]
    assert table["landmark_time"].to_numpy() == pytest.approx([0.5, 1.0])
    reasons = qc.set_index("patient_id")["reason"]
    assert sorted(reasons.index) == ["P-A", "P-D", "P-E"]
    assert "event at 0.30 before or at the landmark" in reasons["P-A"]
    assert "no scan at the landmark" in reasons["P-D"]
    assert "censoring" in reasons["P-E"]


def test_waterfall_bars_sorted_and_coloured_by_the_outcome_after_the_landmark(tmp_path):
    """P1 shrinks 40 % and has an event after fx10, P2 shrinks 20 % and is censored, P3 changes
    inside the RC (no change, whatever its outcome), P4 shrinks but had an event before fx10 (not in
    the landmark table: not at risk); the planning time point and another ROI are ignored."""
    from radsurv.report.longitudinal import plot_waterfall, waterfall_bars

    vol = "gtv__original_shape_MeshVolume"
    delta = pd.DataFrame({"patient_id": ["P1", "P2", "P3", "P4", "P1", "P1"],
                          "feature": [vol, vol, vol, vol, vol, "parotid_l__original_shape_MeshVolume"],
                          "timepoint": ["fx10", "fx10", "fx10", "fx10", "fx5", "fx10"],
                          "rel_change": [-0.4, -0.2, -0.01, -0.3, -0.1, -0.5],
                          "changed": [True, True, False, True, True, True]})
    outcome = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "event": [1, 0, 1]})
    bars = waterfall_bars(delta, "gtv", "fx10", outcome)
    assert list(bars["patient_id"]) == ["P3", "P2", "P4", "P1"]
    assert bars["change_pct"].to_numpy() == pytest.approx([-1.0, -20.0, -30.0, -40.0])
    assert list(bars["category"]) == ["no change (within RC)", "censored", "not at risk", "event"]
    plot_waterfall(delta, "gtv", "fx10", outcome, tmp_path / "w.png")
    assert (tmp_path / "w.png").stat().st_size > 5000


# --------------------------------------------------------------------------- study
def test_delta_model_beats_baseline_when_the_change_carries_the_outcome_and_is_deterministic():
    from radsurv.longitudinal.study import StudySettings, compare_delta_models, model_blocks

    rng = np.random.default_rng(1)
    n = 80
    ids = [f"P{i:03d}" for i in range(n)]
    response = rng.normal(size=n)  # planted: hazard driven by the change only
    time = rng.exponential(np.exp(-1.5 * response))
    event = (rng.uniform(size=n) < 0.8).astype(int)
    baseline = pd.DataFrame(rng.normal(size=(n, 4)), index=ids, columns=[f"gtv__b{j}" for j in range(4)])
    delta = pd.DataFrame({"gtv__d0__delta_fx10": response + rng.normal(0, 0.3, n),
                          "gtv__d1__delta_fx10": rng.normal(size=n)}, index=ids)
    rtvc = pd.Series(rng.normal(size=n), index=ids)
    outcome = pd.DataFrame({"patient_id": ids, "time": time, "event": event})
    settings = StudySettings(cv_folds=3, cv_repeats=1, n_screen=2, bootstrap=30, seed=3)
    blocks = model_blocks(baseline, delta, rtvc)
    assert list(blocks) == ["baseline", "delta", "baseline_delta", "rtvc"]
    perf, preds = compare_delta_models(blocks, outcome, settings)
    est = perf.set_index(["model", "metric"])
    assert est.loc[("delta", "harrell_c"), "estimate"] > 0.7
    assert abs(est.loc[("baseline", "harrell_c"), "estimate"] - 0.5) < 0.12
    diff = est.loc[("delta", "delta_harrell_c_vs_baseline")]
    assert diff["ci_low"] > 0  # paired bootstrap CI of the difference excludes 0
    assert set(preds["model"]) == set(blocks) and preds["risk"].notna().all()
    _, preds2 = compare_delta_models(blocks, outcome, StudySettings(cv_folds=3, cv_repeats=1, n_screen=2,
                                                                    bootstrap=0, seed=3))
    pd.testing.assert_frame_equal(preds, preds2)  # same seed, same folds and risks


def test_binary_endpoint_label_table_named_case():
    """Landmark fx10, label xerostomia. P-A 1 and P-B "0": kept; P-C missing, P-E 2: left out
    (QC, never coerced); P-D has no fx10 scan (missed fraction): left out."""
    from radsurv.longitudinal.landmark import label_dataset

    clinical = pd.DataFrame({"patient_id": ["P-A", "P-B", "P-C", "P-D", "P-E"],
                             "xerostomia": [1, "0", None, 1, 2]})
    assigned = pd.DataFrame({"patient_id": ["P-A", "P-B", "P-C", "P-D", "P-E"],
                             "scan_id": ["a", "b", "c", "d", "e"],
                             "timepoint": ["fx10", "fx10", "fx10", "fx5", "fx10"],
                             "role": "timepoint", "days_from_first": [14, 15.21875, 14, 7, 14]})
    table, qc = label_dataset(clinical, assigned, "fx10", "xerostomia")
    assert list(table["patient_id"]) == ["P-A", "P-B"] and list(table["label"]) == [1, 0]
    assert table["landmark_time"].to_numpy() == pytest.approx([14 / 30.4375, 0.5])
    reasons = qc.set_index("patient_id")["reason"]
    assert sorted(reasons.index) == ["P-C", "P-D", "P-E"]
    assert "xerostomia is missing" in reasons["P-C"] and "xerostomia is 2, not 0 or 1" in reasons["P-E"]
    assert "no scan at the landmark" in reasons["P-D"]
    with pytest.raises(ValueError, match="no column 'grade'"):
        label_dataset(clinical, assigned, "fx10", "grade")


def test_binary_endpoint_delta_model_beats_baseline_in_auc_and_is_deterministic():
    """Planted: the label follows the change of one parotid feature (xerostomia from the parotid's
    shrinkage); the baseline features are noise. The delta model's held-out AUC is high, the
    baseline's near 0.5, the paired bootstrap CI of the difference excludes 0; a class smaller than
    the number of folds is refused."""
    from radsurv.longitudinal.study import StudySettings, compare_delta_models, model_blocks

    rng = np.random.default_rng(2)
    n = 80
    ids = [f"P{i:03d}" for i in range(n)]
    shrink = rng.normal(size=n)
    label = (rng.uniform(size=n) < 1 / (1 + np.exp(-2.5 * shrink))).astype(int)
    baseline = pd.DataFrame(rng.normal(size=(n, 4)), index=ids, columns=[f"parotid_l__b{j}" for j in range(4)])
    delta = pd.DataFrame({"parotid_l__vol__delta_fx10": shrink + rng.normal(0, 0.3, n),
                          "parotid_l__d1__delta_fx10": rng.normal(size=n)}, index=ids)
    rtvc = pd.Series(rng.normal(size=n), index=ids)
    outcome = pd.DataFrame({"patient_id": ids, "label": label})
    settings = StudySettings(cv_folds=3, cv_repeats=2, n_screen=2, bootstrap=50, seed=3)
    blocks = model_blocks(baseline, delta, rtvc)
    perf, preds = compare_delta_models(blocks, outcome, settings)
    est = perf.set_index(["model", "metric"])
    assert set(perf["metric"]) == {"roc_auc", "delta_roc_auc_vs_baseline"}
    assert est.loc[("delta", "roc_auc"), "estimate"] > 0.75
    assert abs(est.loc[("baseline", "roc_auc"), "estimate"] - 0.5) < 0.15
    assert est.loc[("delta", "delta_roc_auc_vs_baseline"), "ci_low"] > 0
    assert ("baseline", "delta_roc_auc_vs_baseline") not in est.index
    assert preds["risk"].between(0, 1).all() and len(preds) == 4 * 2 * n
    perf2, preds2 = compare_delta_models(blocks, outcome, replace(settings, bootstrap=0))
    pd.testing.assert_frame_equal(preds, preds2)  # same seed, same folds and probabilities
    assert perf2["estimate"].to_numpy() == pytest.approx(perf["estimate"].to_numpy()) and perf2["ci_low"].isna().all()
    few = outcome.assign(label=[1, 1] + [0] * (n - 2))
    with pytest.raises(ValueError, match="at least longitudinal.study.cv_folds"):
        compare_delta_models(blocks, few, settings)
