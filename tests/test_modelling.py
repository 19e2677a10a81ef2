"""The live survival model (radsurv.modelling: transformers, learners, design, study) and
radsurv.report.km: planted signal, the feature steps one by one, leakage, determinism, risk groups.

Ported from the tests of the removed first model (``radsurv.modelling.legacy``). Dropped
with it: the signature JSON round trip and ``Signature.risk_score`` (the live model has no
signature file: its final models are pipelines, tested here by a pickle round trip) and the
``split=`` argument of the old ``run_modelling`` (the live split design is tested through
``modelling.split_by``).
"""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from radsurv.modelling import metrics as M
from radsurv.modelling.config import StudyConfig
from radsurv.modelling.data import prepare
from radsurv.modelling.design import dev_val_split
from radsurv.modelling.learners import build_pipeline
from radsurv.modelling.riskgroups import assign_groups
from radsurv.modelling.study import run_study
from radsurv.modelling.transformers import (
    CorrelationReducer,
    LogTransform,
    QualityFilter,
    Standardiser,
    UnivariateCoxSelector,
    feature_clusters,
    univariate_cox_score,
)
from radsurv.report.km import plot_km

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: A split-design study small enough for a unit test: a random 65/35 development/validation
#: split, two numbers of features tuned in the inner loop, no bootstrap.
SPLIT = dict(design="split", cv_folds=3, inner_folds=3, bootstrap=0, horizons=(12.0, 24.0),
             max_features=(2, 4), penalizer=(1.0,))


@pytest.fixture(autouse=True)
def _quiet_fit_warnings():
    """Convergence chatter of Cox fits on noise data is expected; keep output readable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def planted_cohort(n: int = 200, n_noise: int = 50, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic cohort: 2 informative features (Weibull PH hazard), 1 near-duplicate, noise.

    log-hazard = 1.0 * inf_a + 1.0 * inf_b; Weibull shape 1.5; ~30% random censoring.
    ``inf_a_dup`` = inf_a + small noise (|rho| ~ 0.99) tests the redundancy step.
    """
    rng = np.random.default_rng(seed)
    ids = [f"P{i:04d}" for i in range(n)]
    a, b = rng.normal(size=n), rng.normal(size=n)
    X = pd.DataFrame(rng.normal(size=(n, n_noise)), index=ids, columns=[f"noise_{j:02d}" for j in range(n_noise)])
    X["inf_a"] = a
    X["inf_b"] = 10.0 * b + 50.0  # different scale: standardisation matters
    X["inf_a_dup"] = a + 0.1 * rng.normal(size=n)
    X["original_shape_MeshVolume"] = np.exp(rng.normal(size=n)) * 1e4  # uninformative volume
    X.index.name = "patient_id"
    lp = 1.0 * a + 1.0 * b
    shape, scale = 1.5, 24.0
    t_event = scale * (-np.log(rng.uniform(size=n)) / np.exp(lp)) ** (1.0 / shape)
    t_cens = rng.uniform(0, 120, size=n)
    clin = pd.DataFrame({
        "patient_id": ids,
        "time": np.minimum(t_event, t_cens),
        "event": (t_event <= t_cens).astype(int),
    })
    return X, clin


def candidates(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if c != "original_shape_MeshVolume"]


def _load_lung1(shared: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    feats = pd.read_csv(shared / "lung1" / "lung1_pyradiomics_features.csv", low_memory=False)
    feats = feats[feats["Patient"].str.endswith("_000000_GTV-1_mask")]
    feats.index = pd.Index(feats["Patient"].str[:9], name="patient_id")
    cl = pd.read_csv(shared / "lung1" / "lung1_clinical_v3.csv")
    clin = pd.DataFrame({"patient_id": cl["PatientID"], "time": cl["Survival.time"], "event": cl["deadstatus.event"]})
    return feats, clin


def _by_set(res, name: str) -> pd.DataFrame:
    p = res.predictions
    return p[p["set"] == name]


# --------------------------------------------------------------------------- signal


def test_planted_signal_recovered():
    X, clin = planted_cohort()
    res = run_study(X, clin, candidates(X), StudyConfig(**{**SPLIT, "bootstrap": 50}, seed=1))
    m = res.metrics
    assert m["c_index_test"] > 0.7, m
    radiomics = res.final_description["models"]["radiomics"]
    feats = radiomics["model_inputs"]
    assert "inf_b" in feats
    assert ("inf_a" in feats) != ("inf_a_dup" in feats), "exactly one of the duplicate pair is kept"
    # the two informative features carry the largest (positive) coefficients
    coef = res.coefficients.query("model == 'radiomics'").set_index("feature")["coef"]
    top2 = coef.abs().sort_values(ascending=False).index[:2]
    assert "inf_b" in top2 and ({"inf_a", "inf_a_dup"} & set(top2))
    assert coef["inf_b"] > 0
    # selection: 53 candidates -> redundancy merges the duplicate pair -> the screen keeps the
    # number of features tuned in the inner loop (max_features), all of which enter the model
    steps = res.selection.set_index("step")["n_features"]
    assert steps["candidates"] == 53 and steps["finite_nonconstant"] == 53
    assert steps["redundancy_reduced"] <= 52
    assert steps["univariate_screen"] == steps["in_model"] == len(feats)
    assert radiomics["hyperparameters"]["features__rad__select__k"] == len(feats) in (2, 4)
    # CI brackets the point estimate; volume baseline present and uninformative
    assert m["c_index_test_ci_low"] < m["c_index_test"] < m["c_index_test_ci_high"]
    assert m["c_index_volume_test"] is not None and abs(m["c_index_volume_test"] - 0.5) < 0.15
    assert m["hr_high_vs_low_test"] > 1 and m["logrank_p_test"] < 0.05
    json.dumps(m, allow_nan=False)  # plain JSON
    assert set(res.predictions.columns) == {"patient_id", "set", "fold", "time", "event", "risk_score",
                                            "risk_group", "surv_12", "surv_24"}
    assert list(res.coefficients.columns) == ["model", "feature", "coef", "hr_per_sd", "train_mean", "train_sd",
                                              "transform"]


def test_univariate_score_matches_bruteforce():
    rng = np.random.default_rng(3)
    n = 60
    X = rng.normal(size=(n, 3))
    t = np.round(rng.exponential(10, size=n)) + 1  # ties
    e = rng.random(n) < 0.7
    z, _ = univariate_cox_score(X, t, e)
    for j in range(3):
        U = info = 0.0
        for i in np.where(e)[0]:
            r = X[t >= t[i], j]
            U += X[i, j] - r.mean()
            info += r.var()
        assert z[j] == pytest.approx(U / np.sqrt(info), rel=1e-10)


def test_harrell_c_sign_convention():
    t = np.array([1.0, 2.0, 3.0, 4.0])
    e = np.array([1, 1, 1, 1])
    assert M.harrell_c(t, e, -t) == 1.0  # higher risk, shorter survival -> C = 1
    assert M.harrell_c(t, e, t) == 0.0


# --------------------------------------------------------------------------- the transformers, one by one


def _survival(n: int = 40) -> np.ndarray:
    """Every patient an event, at times 1..n (patient i dies at time i + 1)."""
    return M.surv_array(np.arange(1.0, n + 1), np.ones(n, bool))


def test_quality_filter_keeps_complete_nonconstant_columns():
    X = pd.DataFrame({"ok": [1.0, 2.0, 3.0, 4.0], "nan": [1.0, np.nan, 3.0, 4.0], "inf": [1.0, 2.0, np.inf, 4.0],
                      "const": [7.0, 7.0, 7.0, 7.0], "text_number": ["1", "2", "3", "5"]})
    qf = QualityFilter().fit(X)
    assert qf.features_out_ == ["ok", "text_number"]  # a number written as text is still a number
    assert qf.dropped_missing_ == ["nan", "inf"]
    assert qf.dropped_constant_ == ["const"]
    out = qf.transform(X)
    assert list(out.columns) == ["ok", "text_number"] and out["text_number"].tolist() == [1.0, 2.0, 3.0, 5.0]
    # what is dropped is decided in training: a new patient's missing value does not drop the column
    new = pd.DataFrame({"ok": [np.nan], "nan": [1.0], "inf": [1.0], "const": [1.0], "text_number": ["2"]})
    assert list(qf.transform(new).columns) == ["ok", "text_number"]
    with pytest.raises(ValueError, match="no feature is complete and non-constant"):
        QualityFilter().fit(X[["nan", "const"]])


def test_standardiser_uses_training_mean_and_sd():
    X = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "c": [5.0, 5.0, 5.0, 5.0]})
    st = Standardiser().fit(X)
    assert st.mean_["a"] == 2.5 and st.sd_["a"] == pytest.approx(np.sqrt(5 / 3), rel=1e-14)  # ddof=1
    assert st.sd_["c"] == 1.0  # a constant column is centred, not divided by 0
    new = pd.DataFrame({"a": [2.5, 2.5 + np.sqrt(5 / 3)], "c": [5.0, 6.0]})
    np.testing.assert_allclose(st.transform(new).to_numpy(), [[0.0, 0.0], [1.0, 1.0]], atol=1e-14)
    with pytest.warns(RuntimeWarning, match="set to the training mean"):
        out = st.transform(pd.DataFrame({"a": [np.nan], "c": [5.0]}))
    assert out["a"].tolist() == [0.0]


def test_log_transform_and_non_positive_values():
    lt = LogTransform().fit(pd.DataFrame({"v": [1.0, np.e]}))
    np.testing.assert_allclose(lt.transform(pd.DataFrame({"v": [1.0, np.e, np.e**2]}))["v"], [0.0, 1.0, 2.0])
    with pytest.raises(ValueError, match="non-positive"):
        lt.transform(pd.DataFrame({"v": [0.0]}))


def test_correlation_reducer_keeps_one_per_cluster():
    """``a``, its exact copy ``b_copy`` and its negation ``neg_a`` (|rho| = 1) form one cluster with
    equal |z|: the tie goes to the first name, ``a``. ``e`` (independent) is its own cluster."""
    rng = np.random.default_rng(0)
    n = 40
    a = -np.arange(n, dtype=float) + rng.normal(0, 3, n)  # prognostic: higher value, earlier death
    X = pd.DataFrame({"neg_a": -a, "e": rng.normal(size=n), "b_copy": a.copy(), "a": a})
    y = _survival(n)
    cr = CorrelationReducer(corr_threshold=0.9).fit(X, y)
    assert cr.features_out_ == ["a", "e"]  # ranked by |z|: the prognostic cluster first
    c = cr.clusters_
    assert c["a"] == c["b_copy"] == c["neg_a"] != c["e"]
    assert list(cr.transform(X).columns) == ["a", "e"]
    # input column order does not matter
    assert CorrelationReducer(0.9).fit(X[X.columns[::-1]], y).features_out_ == ["a", "e"]


def test_feature_clusters_shared_by_the_survival_and_class_reducers():
    """Both reducers cluster through ``feature_clusters``: the same clusters on the same columns; a
    column whose ranks do not vary is "not correlated" (its own cluster) instead of stopping the fit;
    one column is one cluster."""
    from radsurv.modelling.classification.models import ClassCorrelationReducer

    rng = np.random.default_rng(3)
    n = 40
    a = rng.normal(size=n)
    X = pd.DataFrame({"a": a, "a2": 2 * a + rng.normal(0, 0.01, n), "c": 1.0, "e": rng.normal(size=n)})
    got = feature_clusters(X.to_numpy(float), list(X.columns), 0.9)
    assert got[0] == got[1] and len({got[0], got[2], got[3]}) == 3
    surv = CorrelationReducer(0.9).fit(X, _survival(n))
    cls = ClassCorrelationReducer(0.9).fit(X, (a > 0).astype(int))
    assert surv.clusters_ == cls.clusters_ == dict(zip(X.columns, got.tolist(), strict=True))
    assert feature_clusters(X[["e"]].to_numpy(float), ["e"], 0.9).tolist() == [1]


def test_univariate_cox_selector_keeps_the_k_largest_abs_z():
    rng = np.random.default_rng(1)
    n = 40
    t = np.arange(1.0, n + 1)
    X = pd.DataFrame({"noise": rng.normal(size=n),
                      "protective": t + rng.normal(0, 1, n),  # longer survival with higher value: z < 0
                      "weak": -t + rng.normal(0, 25, n)})
    y = _survival(n)
    sel = UnivariateCoxSelector(k=1).fit(X, y)
    z, _ = univariate_cox_score(X[sorted(X.columns)].to_numpy(), y["time"], y["event"])
    assert dict(sel.scores_) == pytest.approx(dict(zip(sorted(X.columns), z, strict=True)), rel=1e-12)
    assert sel.features_out_ == ["protective"] and sel.scores_["protective"] < 0  # |z| counts, not the sign
    assert UnivariateCoxSelector(k=2).fit(X, y).features_out_ == ["protective", "weak"]
    assert UnivariateCoxSelector(k=10).fit(X, y).features_out_ == ["protective", "weak", "noise"]


#: scikit-learn checks the frame steps fail by design, with the reason (radsurv's steps work on
#: named DataFrame columns and validate nothing scikit-learn's ``validate_data`` would).
FRAME_STEP_FAILURES = {
    "check_n_features_in": "columns are tracked by name (features_out_), not by n_features_in_",
    "check_n_features_in_after_fitting": "columns are tracked by name (features_out_), not by n_features_in_",
    "check_complex_data": "no input validation: complex values are not rejected up front",
    "check_estimators_empty_data_messages": "empty input fails with radsurv's own message",
    "check_estimators_nan_inf": "non-finite values are handled by design (dropped, or set to the training mean)",
    "check_estimator_sparse_tag": "dense DataFrames only",
    "check_estimator_sparse_array": "dense DataFrames only",
    "check_estimator_sparse_matrix": "dense DataFrames only",
    "check_transformer_general": "columns are selected by name: extra columns in transform are ignored",
    "check_fit1d": "no input validation: 1-d input is not rejected up front",
    "check_fit2d_predict1d": "no input validation: 1-d input is not rejected up front",
}
#: LogTransform: the checks' data contain zeros, and the log of a non-positive volume is an error.
LOG_FAILURES = {k: "the checks' data contain zeros; log of a non-positive value is an error by design"
                for k in ("check_estimators_dtypes", "check_pipeline_consistency", "check_estimators_pickle",
                          "check_transformer_data_not_an_array", "check_transformer_general",
                          "check_transformer_preserve_dtypes")}
#: The Cox steps' fit needs a survival outcome (time/event structured array); the checks pass a numeric y.
SURVIVAL_FAILURES = {k: "fit needs a survival y (structured time/event array); the checks pass a numeric y"
                     for k in ("check_fit_score_takes_y", "check_estimators_overwrite_params",
                               "check_dont_overwrite_parameters", "check_estimators_fit_returns_self",
                               "check_readonly_memmap_input", "check_n_features_in_after_fitting",
                               "check_positive_only_tag_during_fit", "check_estimators_dtypes", "check_complex_data",
                               "check_dtype_object", "check_pipeline_consistency", "check_estimators_pickle",
                               "check_f_contiguous_array_estimator", "check_transformer_data_not_an_array",
                               "check_transformer_general", "check_transformer_preserve_dtypes",
                               "check_methods_sample_order_invariance", "check_methods_subset_invariance",
                               "check_fit2d_1sample", "check_fit2d_1feature", "check_dict_unchanged",
                               "check_fit_idempotent", "check_fit_check_is_fitted", "check_n_features_in",
                               "check_fit1d", "check_fit2d_predict1d")}


def _expected_failed_checks(estimator) -> dict[str, str]:
    """scikit-learn checks that cannot apply to ``estimator``, with the reason (strict: a check
    listed here that passes fails the test, so the list cannot go stale)."""
    out = dict(FRAME_STEP_FAILURES)
    if isinstance(estimator, (QualityFilter, Standardiser)):
        out["check_transformer_preserve_dtypes"] = "the steps return float64 DataFrames"
    if isinstance(estimator, QualityFilter):
        out["check_fit2d_1sample"] = "one training patient: every feature is constant, radsurv's own message"
    if isinstance(estimator, LogTransform):
        out.update(LOG_FAILURES)
    if isinstance(estimator, (CorrelationReducer, UnivariateCoxSelector)):
        out.update(SURVIVAL_FAILURES)
    return out


@parametrize_with_checks([QualityFilter(), Standardiser(), LogTransform(), CorrelationReducer(),
                          UnivariateCoxSelector()], expected_failed_checks=_expected_failed_checks,
                         xfail_strict=True)
def test_sklearn_estimator_checks(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check(estimator)


# --------------------------------------------------------------------------- leakage


def test_no_leakage_heldout_changes_do_not_change_the_final_model():
    """(a) Held-out (validation) patients' features and outcomes changed: the features, coefficients,
    training means/SDs and risk cut-offs of every final model are unchanged."""
    X, clin = planted_cohort(n=150, n_noise=20, seed=5)
    cands = candidates(X)
    cfg = StudyConfig(**SPLIT, seed=7)
    base = run_study(X, clin, cands, cfg)
    test_ids = _by_set(base, "test")["patient_id"].tolist()
    train_ids = _by_set(base, "train")["patient_id"].tolist()
    rng = np.random.default_rng(99)
    # the random split is stratified by event: keep the events so that the split is the same
    X2 = X.copy()
    X2.loc[test_ids, cands] = rng.normal(size=(len(test_ids), len(cands))) * 100
    X2.loc[test_ids, "original_shape_MeshVolume"] = rng.uniform(1, 1e6, len(test_ids))
    clin2 = clin.set_index("patient_id")
    clin2.loc[test_ids, "time"] = rng.uniform(1, 200, size=len(test_ids))
    res = run_study(X2, clin2.reset_index(), cands, cfg)
    assert _by_set(res, "test")["patient_id"].tolist() == test_ids
    assert json.dumps(res.final_description, sort_keys=True) == json.dumps(base.final_description, sort_keys=True)
    pd.testing.assert_frame_equal(res.coefficients, base.coefficients)
    assert res.metrics["cutoff_1"] == base.metrics["cutoff_1"]
    assert res.metrics["c_index_test"] != base.metrics["c_index_test"]  # the change did reach the test set
    # the scaler is the development patients' mean/SD, not the whole cohort's
    coef = base.coefficients.query("model == 'radiomics'").set_index("feature")
    for f in coef.index:
        assert coef.loc[f, "train_mean"] == pytest.approx(X.loc[train_ids, f].mean(), rel=1e-12)
        assert coef.loc[f, "train_sd"] == pytest.approx(X.loc[train_ids, f].std(ddof=1), rel=1e-12)
        assert coef.loc[f, "train_mean"] != pytest.approx(X[f].mean(), rel=1e-9)


def test_no_leakage_cv_fold_fit_ignores_its_heldout_patients():
    """(a) in CV: the features and times of one outer fold's held-out patients are changed; that
    fold's fit (inputs, hyperparameters, cut-offs, inner C) is unchanged, its predictions change."""
    X, clin = planted_cohort(n=90, n_noise=15, seed=7)
    cands = candidates(X)
    cfg = StudyConfig(cv_folds=3, cv_repeats=1, inner_folds=2, bootstrap=0, horizons=(12.0,), max_features=(2, 4),
                      penalizer=(1.0,))
    base = run_study(X, clin, cands, cfg)
    pa = base.predictions_all.query("model == 'radiomics'")
    fold1 = pa.loc[pa["fold"] == 1, "patient_id"].tolist()
    X2 = X.copy()
    X2.loc[fold1, cands] = np.random.default_rng(0).normal(size=(len(fold1), len(cands))) * 10
    clin2 = clin.set_index("patient_id")
    clin2.loc[fold1, "time"] = np.random.default_rng(1).uniform(1, 200, len(fold1))  # events kept: same folds
    res = run_study(X2, clin2.reset_index(), cands, cfg)
    pb = res.predictions_all.query("model == 'radiomics'")
    assert pb.loc[pb["fold"] == 1, "patient_id"].tolist() == fold1
    cols = ["model", "n_train", "n_test", "inner_c", "params", "cutoffs", "model_inputs"]
    t1a = base.tuning.query("fold == 1")[cols].reset_index(drop=True)
    t1b = res.tuning.query("fold == 1")[cols].reset_index(drop=True)
    pd.testing.assert_frame_equal(t1a, t1b)
    # the other folds trained on the changed patients
    assert not base.tuning.query("fold != 1")[cols].equals(res.tuning.query("fold != 1")[cols])
    a = pa.set_index("patient_id")["risk_score"]
    b = pb.set_index("patient_id")["risk_score"]
    assert not np.array_equal(a.loc[fold1], b.loc[fold1])  # new features, same model: new scores


def _robustness_workspace(root: Path, permute_outcome: bool) -> Path:
    """results/ as the workflow lays it out: scans, features (test + retest of 8 patients) and the
    clinical table with the outcome, optionally permuted across patients."""
    rng = np.random.default_rng(42)
    n = 8
    pids = [f"P{i}" for i in range(n)]
    scans = pd.DataFrame({
        "scan_id": [f"{p}_S{s}" for p in pids for s in (1, 2)],
        "patient_id": [p for p in pids for _ in (1, 2)],
        "session": [s for _ in pids for s in (1, 2)],
        "days_from_first": [d for _ in pids for d in (0, 7)],
    })
    truth = rng.normal(size=(n, 3)) * [1.0, 5.0, 0.2]
    rows = []
    for i, p in enumerate(pids):
        for s in (1, 2):
            rows.append({"scan_id": f"{p}_S{s}", "patient_id": p, "session": s,
                         "original_firstorder_Mean": truth[i, 0] + rng.normal(0, 0.01),  # stable
                         "original_glcm_Contrast": truth[i, 1] + rng.normal(0, 0.05),  # stable
                         "original_glrlm_RunEntropy": rng.normal(0, 1.0),  # noise only
                         "original_shape_Sphericity": truth[i, 2] + rng.normal(0, 2.0)})  # mostly noise
    features = pd.DataFrame(rows)
    time = rng.uniform(1, 60, n).round(1)
    event = rng.integers(0, 2, n)
    if permute_outcome:
        order = np.random.default_rng(7).permutation(n)
        time, event = time[order], event[order]
    clinical = pd.DataFrame({"patient_id": pids, "time": time, "event": event})
    res = root / "results"
    for sub in ("ingest", "features", "clinical", "robustness"):
        (res / sub).mkdir(parents=True, exist_ok=True)
    scans.to_csv(res / "ingest" / "scans.tsv", sep="\t", index=False)
    features.to_csv(res / "features" / "features.tsv", sep="\t", index=False)
    clinical.to_csv(res / "clinical" / "clinical.tsv", sep="\t", index=False)
    return res


def test_no_leakage_robust_features_do_not_depend_on_the_outcome(tmp_path, monkeypatch):
    """(b) The robust-feature list, built by the workflow's robustness stages from the feature
    table and the scans, is the same when the clinical outcome next to them is permuted."""
    from radsurv.workflow.robustness import select_robust_features, test_retest_icc

    settings = {"threshold": 0.75, "use_lower_bound": False, "min_pairs": 5, "method": "test-retest"}
    out = {}
    for permute in (False, True):
        root = tmp_path / ("permuted" if permute else "original")
        res = _robustness_workspace(root, permute)
        monkeypatch.chdir(root)  # as snakemake runs: relative paths from the workspace
        rob = res / "robustness"
        test_retest_icc(features=res / "features" / "features.tsv", scans=res / "ingest" / "scans.tsv",
                        settings=settings, table=rob / "test_retest.tsv", summary=rob / "test_retest.json",
                        bland_altman=rob / "ba.png")
        select_robust_features(features=res / "features" / "features.tsv", analyses=["test-retest"],
                               tables=[rob / "test_retest.tsv"], summaries=[rob / "test_retest.json"],
                               settings=settings, icc=rob / "icc.tsv", robust=rob / "robust_features.txt",
                               selection=rob / "selection.tsv", summary=rob / "robustness.json",
                               plot=rob / "icc.png")
        out[permute] = {f: (rob / f).read_bytes() for f in ("robust_features.txt", "icc.tsv", "selection.tsv")}
    clin_a = (tmp_path / "original" / "results" / "clinical" / "clinical.tsv").read_bytes()
    clin_b = (tmp_path / "permuted" / "results" / "clinical" / "clinical.tsv").read_bytes()
    assert clin_a != clin_b  # the outcome did change
    assert out[False] == out[True]
    robust = out[False]["robust_features.txt"].decode().split()
    # the list is a real selection, not "everything kept because nothing could be assessed"
    assert robust == ["original_firstorder_Mean", "original_glcm_Contrast"]


def test_no_leakage_shuffled_outcome_lung1(shared_data):
    """Outcome permuted across patients -> held-out C ~ 0.5 (mean of 10 shuffles, split design)."""
    feats, clin = _load_lung1(shared_data)
    cands = [c for c in feats.columns if c.startswith("original_")]
    assert len(cands) == 100
    cs = []
    for s in range(10):
        rng = np.random.default_rng(1000 + s)
        cl = clin.copy()
        cl[["time", "event"]] = cl[["time", "event"]].to_numpy()[rng.permutation(len(cl))]
        res = run_study(feats, cl, cands, StudyConfig(**{**SPLIT, "max_features": (4,)}, seed=s))
        assert res.metrics["n_used"] == 144 and res.metrics["n_clinical_only"] == 278
        cs.append(res.metrics["c_index_test"])
    mean_c = float(np.mean(cs))
    print(f"Lung1 shuffled-outcome held-out C: mean {mean_c:.3f}, runs {np.round(cs, 3).tolist()}")
    assert abs(mean_c - 0.5) <= 0.05, cs


def test_lung1_real_outcome_sanity(shared_data):
    """Unshuffled Lung1, split design: held-out C above chance for radiomics and for volume."""
    feats, clin = _load_lung1(shared_data)
    cands = [c for c in feats.columns if c.startswith("original_")]
    res = run_study(feats, clin, cands, StudyConfig(**{**SPLIT, "horizons": (365.0, 730.0)}, seed=42))
    m = res.metrics
    print(f"Lung1 held-out C {m['c_index_test']:.3f}, volume {m['c_index_volume_test']:.3f}")
    assert m["n_train"] + m["n_test"] == 144
    assert 0.55 < m["c_index_test"] < 0.8
    assert 0.5 < m["c_index_volume_test"] < 0.75


# --------------------------------------------------------------------------- determinism and the split


def test_determinism_same_seed_identical_different_seed_differs():
    X, clin = planted_cohort(n=120, n_noise=20, seed=11)
    cands = candidates(X)
    r1 = run_study(X, clin, cands, StudyConfig(**SPLIT, seed=3))
    # row/column order of the inputs must not matter either
    r2 = run_study(X.iloc[::-1, ::-1], clin.iloc[::-1], cands[::-1], StudyConfig(**SPLIT, seed=3))
    pd.testing.assert_frame_equal(r1.predictions, r2.predictions)
    pd.testing.assert_frame_equal(r1.coefficients, r2.coefficients)
    assert r1.metrics == r2.metrics
    r3 = run_study(X, clin, cands, StudyConfig(**SPLIT, seed=4))
    assert set(_by_set(r1, "test")["patient_id"]) != set(_by_set(r3, "test")["patient_id"])


def test_split_stratified_disjoint_and_deterministic():
    X, clin = planted_cohort(n=120, seed=2)
    cfg = StudyConfig(**SPLIT, seed=42)
    data, _, _ = prepare(X, clin, candidates(X), cfg)
    tr, te, how = dev_val_split(cfg, data)
    assert "stratified by event" in how
    assert not set(tr) & set(te) and len(tr) + len(te) == 120
    assert len(te) == int(np.ceil(0.35 * 120))
    ev = data.y["event"]
    assert abs(ev[te].mean() - ev[tr].mean()) < 0.05
    # the same patients whatever the row order of the inputs
    data2, _, _ = prepare(X.sample(frac=1, random_state=0), clin.sample(frac=1, random_state=1), candidates(X), cfg)
    tr2, te2, _ = dev_val_split(cfg, data2)
    assert data2.X.index[te2].tolist() == data.X.index[te].tolist()
    tr3, te3, _ = dev_val_split(StudyConfig(**SPLIT, seed=43), data)
    assert set(te3) != set(te)


# --------------------------------------------------------------------------- risk groups


def _expected_groups(s: np.ndarray, cut: list[float]) -> np.ndarray:
    """Groups by hand: a score equal to a cut-off goes to the lower group."""
    if len(cut) == 1:
        return np.where(s > cut[0], "high", "low")
    return np.where(s <= cut[0], "low", np.where(s <= cut[1], "intermediate", "high"))


@pytest.mark.parametrize("risk_cut", ["median", "tertiles", "maxstat"])
def test_risk_groups_use_training_cutoff(risk_cut):
    """Cut-offs come from the fit's training patients' scores and are applied unchanged to held-out
    patients: the final model's to the development and an external cohort, the validation fit's
    (tuning table) to the validation cohort."""
    X, clin = planted_cohort(n=150, n_noise=20, seed=21)
    Xe, ce = planted_cohort(n=60, n_noise=20, seed=22)
    res = run_study(X, clin, candidates(X), StudyConfig(**SPLIT, risk_cut=risk_cut), external={"ext": (Xe, ce)})
    fp = res.final_predictions.query("model == 'radiomics'")
    dev, ext = fp[fp["set"] == "development"], fp[fp["set"] == "external:ext"]
    cut = res.final_description["models"]["radiomics"]["cutoffs"]
    assert [res.metrics[f"cutoff_{i + 1}"] for i in range(len(cut))] == cut
    d = dev["risk_score"].to_numpy()
    counts = dev["risk_group"].value_counts()
    if risk_cut == "median":
        assert cut == [float(np.median(d))]
        assert abs(counts.get("high", 0) - counts.get("low", 0)) <= 1
    elif risk_cut == "tertiles":
        assert cut == [float(v) for v in np.quantile(d, [1 / 3, 2 / 3])]
        assert set(counts.index) == {"low", "intermediate", "high"} and counts.max() - counts.min() <= 1
    else:  # maxstat: one of the training scores between their 10th and 90th percentile
        lo, hi = np.quantile(d, [0.1, 0.9])
        assert len(cut) == 1 and lo <= cut[0] < hi and cut[0] in set(d)
    np.testing.assert_array_equal(dev["risk_group"].to_numpy(), _expected_groups(d, cut))
    e = ext["risk_score"].to_numpy()
    np.testing.assert_array_equal(ext["risk_group"].to_numpy(), _expected_groups(e, cut))
    np.testing.assert_array_equal(assign_groups(e, cut), _expected_groups(e, cut))
    assert float(np.median(e)) != cut[0]  # the held-out median is NOT what is used
    # validation cohort: the cut-offs of its own fit, written (6 significant digits) in the tuning table
    val = _by_set(res, "test")
    vcut = [float(c) for c in res.tuning.query("model == 'radiomics'")["cutoffs"].iloc[0].split(";")]
    assert len(vcut) == len(cut)
    v, g = val["risk_score"].to_numpy(), val["risk_group"].to_numpy()
    labels = ["low", "high"] if len(cut) == 1 else ["low", "intermediate", "high"]
    assert set(g) <= set(labels)
    for lower, upper, c in zip(labels, labels[1:], vcut, strict=False):
        tol = 1e-5 * abs(c) + 1e-12
        if (g == lower).any():
            assert v[g == lower].max() <= c + tol
        if (g == upper).any():
            assert v[g == upper].min() >= c - tol
    assert float(np.median(v)) not in vcut


def test_final_model_pickle_round_trip_scores_identically():
    """The live model's saved form is its fitted pipeline: after a pickle round trip it scores the
    development patients exactly as during the study, from the model columns in any order."""
    X, clin = planted_cohort(n=120, n_noise=20, seed=4)
    res = run_study(X, clin, candidates(X), StudyConfig(**SPLIT))
    fm = res.final_models["radiomics"]
    pipe = pickle.loads(pickle.dumps(fm["pipeline"]))
    dev = res.final_predictions.query("model == 'radiomics' and set == 'development'")
    Xd = X.loc[dev["patient_id"]]
    np.testing.assert_array_equal(pipe.predict(Xd), dev["risk_score"].to_numpy())
    np.testing.assert_array_equal(pipe.predict(Xd[Xd.columns[::-1]]), dev["risk_score"].to_numpy())
    np.testing.assert_array_equal(assign_groups(pipe.predict(Xd), fm["cutoffs"]), dev["risk_group"].to_numpy())
    with pytest.raises((KeyError, ValueError)):
        pipe.predict(Xd.drop(columns=fm["model_inputs"][0]))


def test_quality_filter_drops_nan_and_constant_in_train():
    X, clin = planted_cohort(n=120, n_noise=20, seed=8)
    cfg = StudyConfig(**SPLIT)
    data, _, _ = prepare(X, clin, candidates(X), cfg)
    dev, val, _ = dev_val_split(cfg, data)
    X = X.copy()
    X["const"] = 3.0
    X.loc[data.X.index[dev[0]], "noise_00"] = np.nan  # a development patient
    X.loc[data.X.index[val[0]], "noise_01"] = np.nan  # a validation patient: not seen in training
    res = run_study(X, clin, candidates(X), cfg)
    rad = res.final_description["models"]["radiomics"]
    assert rad["dropped_in_training"] == {"missing": ["noise_00"], "zero_variance": ["const"]}
    steps = res.selection.set_index("step")["n_features"]
    assert steps["candidates"] == 24 and steps["finite_nonconstant"] == 24 - 2


def test_pipeline_quality_filter_is_fit_on_training_rows_only():
    """A feature missing only for a patient outside the training rows is kept."""
    X, clin = planted_cohort(n=60, n_noise=3, seed=8)
    X.loc[X.index[-1], "noise_00"] = np.nan
    y = M.surv_array(clin["time"].to_numpy(), clin["event"].to_numpy().astype(bool))
    pipe = build_pipeline(["rad"], candidates(X), None, [], "cox", {"n_screen": 6, "corr_threshold": 0.9}, 0)
    pipe.set_params(features__rad__select__k=6)
    pipe.fit(X.iloc[:-1], y[:-1])
    flt = pipe.named_steps["features"].named_transformers_["rad"].named_steps["filter"]
    assert "noise_00" in flt.features_out_ and flt.dropped_missing_ == []


# --------------------------------------------------------------------------- KM plot


def _assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 5000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_km_figure_writes_png_test_and_train(tmp_path):
    X, clin = planted_cohort(n=120, n_noise=20, seed=9)
    res = run_study(X, clin, candidates(X), StudyConfig(**SPLIT))
    plot_km(res.predictions, tmp_path / "km_test.png")
    plot_km(res.predictions, tmp_path / "sub" / "km_train.png", subset="train", title="Train", time_unit="days")
    _assert_png(tmp_path / "km_test.png")
    _assert_png(tmp_path / "sub" / "km_train.png")


def test_km_figure_edge_groups(tmp_path):
    pred = pd.DataFrame({
        "patient_id": [f"p{i}" for i in range(8)],
        "set": "test",
        "time": [5.0, 8, 12, 20, 30, 31, 40, 3],
        "event": [1, 1, 0, 1, 0, 0, 0, 1],
        "risk_score": np.linspace(0, 1, 8),
        # "low" has zero events, "high" has a single patient
        "risk_group": ["high", "intermediate", "low", "intermediate", "low", "low", "low", "intermediate"],
    })
    pred.loc[0, "event"] = 1
    plot_km(pred, tmp_path / "edge.png")
    _assert_png(tmp_path / "edge.png")
    one_group = pred.assign(risk_group="low")
    plot_km(one_group, tmp_path / "one.png")  # log-rank n/a, must not crash
    _assert_png(tmp_path / "one.png")
    with pytest.raises(ValueError, match="no rows"):
        plot_km(pred, tmp_path / "none.png", subset="train")


# --------------------------------------------------------------------------- edge cases and config


def test_missing_candidate_features_raise():
    X, clin = planted_cohort(n=60, seed=1)
    with pytest.raises(ValueError, match=r"2 candidate feature\(s\) not in the feature table.*not_a_feature"):
        run_study(X, clin, candidates(X) + ["not_a_feature", "also_missing"], StudyConfig(**SPLIT))


def test_no_overlapping_ids_raise():
    X, clin = planted_cohort(n=60, seed=1)
    clin2 = clin.assign(patient_id="X" + clin["patient_id"])
    with pytest.raises(ValueError, match="no patient_id is present in both"):
        run_study(X, clin2, candidates(X), StudyConfig(**SPLIT))


def test_partial_overlap_uses_intersection_and_reports_counts():
    X, clin = planted_cohort(n=130, n_noise=10, seed=6)
    X2 = X.iloc[:100]  # 30 clinical patients without features
    extra = pd.DataFrame(np.ones((5, X.shape[1])), columns=X.columns,
                         index=pd.Index([f"Q{i}" for i in range(5)], name="patient_id"))
    X2 = pd.concat([X2, extra])  # 5 feature rows without clinical data
    res = run_study(X2, clin, candidates(X), StudyConfig(**SPLIT))
    m = res.metrics
    assert (m["n_used"], m["n_clinical_only"], m["n_features_only"]) == (100, 30, 5)
    assert m["n_train"] + m["n_test"] == 100
    assert set(res.predictions["patient_id"]) == set(X.index[:100])


def test_config_validation():
    with pytest.raises(ValueError, match="risk_cut"):
        StudyConfig(risk_cut="quartiles")
    with pytest.raises(ValueError, match="learner"):
        StudyConfig(learner="svm")
    with pytest.raises(ValueError, match="design"):
        StudyConfig(design="bootstrap")
    with pytest.raises(ValueError, match="test_fraction"):
        StudyConfig(test_fraction=1.0)
    with pytest.raises(ValueError, match="split_by needs"):
        StudyConfig(design="split", split_by="centre")
    with pytest.raises(ValueError, match="unknown modelling config"):
        StudyConfig.from_dict({"n_screen": 10, "max_featurs": 3})
    assert StudyConfig.from_dict({"n_screen": 10}).n_screen == 10
    assert StudyConfig.from_dict({"max_features": 3}, seed=9).max_features == (3,)
    assert StudyConfig.from_dict({}, seed=9).seed == 9


def test_pipeline_config_keys_are_study_config_fields():
    """Every key of the ``modelling`` block of config/config.yaml maps onto StudyConfig
    (``StudyConfig.from_dict`` raises on unknown keys, so a rename cannot be dropped silently)."""
    yaml = pytest.importorskip("yaml")

    cfg_path = Path(__file__).resolve().parents[1] / "config" / "config.yaml"
    if not cfg_path.is_file():
        pytest.skip("config/config.yaml not present")
    block = yaml.safe_load(cfg_path.read_text())["modelling"]
    sc = StudyConfig.from_dict(block)
    assert sc.bootstrap == block.get("bootstrap", 500)


def test_modelling_config_is_light():
    """Validating the config must not load the modelling stack (the workflow does it up front)."""
    import subprocess
    import sys

    code = ("import sys, radsurv.modelling.config, radsurv.modelling.classification.settings; "
            "print([m for m in ('sklearn', 'scipy', 'sksurv', 'lifelines', 'matplotlib', 'SimpleITK') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
