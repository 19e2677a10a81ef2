"""Honest validation (radsurv.modelling.study, pipelines, metrics, signature, clinical coding)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw, cumulative_dynamic_auc
from test_modelling import _load_lung1, planted_cohort

from radsurv.ingest.clinical import CovariateSpec, complete_case_ids
from radsurv.modelling import metrics as M
from radsurv.modelling.clinical_encoder import ClinicalEncoder
from radsurv.modelling.config import StudyConfig
from radsurv.modelling.riskgroups import assign_groups, choose_cutoffs
from radsurv.modelling.study import run_study

REPO = Path(__file__).resolve().parents[1]
#: Harrell's C of the Aerts 2014 signature on the 144 Lung1 patients (v3 outcomes), source:
#: ../shared/data/signatures/aerts_2014.yaml and ../shared/README.md ("measured, for orientation").
AERTS_LUNG1_C = (0.632, 0.005)

FAST = dict(cv_folds=3, cv_repeats=1, inner_folds=2, bootstrap=0, horizons=(12.0, 24.0),
            max_features=(3,), penalizer=(1.0,))  # one grid point: no inner loop (speed)
TUNED = dict(FAST, max_features=(2, 4))  # two grid points: inner-loop tuning


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def with_clinical(clin: pd.DataFrame, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    out = clin.copy()
    out["age"] = [str(int(v)) for v in rng.normal(65, 9, len(out))]
    out["stage"] = rng.choice(["I", "II", "IIIa", "IIIB", ""], len(out))
    return out


COVS = {"age": {"type": "numeric"}, "stage": {"type": "ordinal", "levels": ["I", "II", "IIIA", "IIIB"]}}


# --------------------------------------------------------------------------- metrics


def test_point_metrics_are_sksurvs():
    rng = np.random.default_rng(0)
    n = 80
    t = rng.exponential(20, n) + 0.5
    e = rng.random(n) < 0.7
    risk = -np.log(t) + rng.normal(0, 1, n)
    y = M.surv_array(t, e)
    got = M.point_metrics(y, y, risk, None, np.array([]), [10.0], tau=15.0)
    assert got["harrell_c"] == concordance_index_censored(e, t, risk)[0]
    assert got["uno_c"] == concordance_index_ipcw(y, y, risk, tau=15.0)[0]
    assert got["auc_10"] == cumulative_dynamic_auc(y, y, risk, [10.0])[0][0]
    assert np.isnan(got["ibs"])
    assert M.td_auc(y, y, risk, [t.max() + 1])[0] != M.td_auc(y, y, risk, [t.max() + 1])[0]  # nan outside


def test_bootstrap_ci_and_paired_delta():
    rng = np.random.default_rng(1)
    n = 120
    t = rng.exponential(20, n) + 0.5
    e = rng.random(n) < 0.7
    good, vol = -np.log(t) + rng.normal(0, 0.5, n), rng.normal(size=n)
    y = M.surv_array(t, e)
    tab = M.bootstrap_metrics(y, y, {"radiomics": [(good, None)], "volume": [(vol, None)]}, np.array([]),
                              [10.0], None, 60, 3).set_index(["model", "metric"])
    r = tab.loc[("radiomics", "harrell_c")]
    assert r["ci_low"] < r["estimate"] < r["ci_high"] and r["n_boot_valid"] == 60
    d = tab.loc[("radiomics", "delta_harrell_c_vs_volume")]
    assert d["estimate"] == pytest.approx(r["estimate"] - tab.loc[("volume", "harrell_c"), "estimate"])
    assert d["ci_low"] > 0  # clearly better than noise
    # replicates evaluated in 2 worker processes: the same table
    par = M.bootstrap_metrics(y, y, {"radiomics": [(good, None)], "volume": [(vol, None)]}, np.array([]),
                              [10.0], None, 60, 3, n_jobs=2).set_index(["model", "metric"])
    pd.testing.assert_frame_equal(tab, par)


def test_calibration_of_perfect_predictions():
    rng = np.random.default_rng(2)
    n = 2000
    t_ev = rng.exponential(10, n)
    t = np.minimum(t_ev, 40)
    e = t_ev <= 40
    s_true = np.full(n, np.exp(-12 / 10))
    tab = M.calibration_table(t, e, s_true, 12.0, 4)
    allrow = tab[tab["group"] == "all"].iloc[0]
    assert abs(allrow["observed"] - allrow["predicted"]) < 0.03
    assert allrow["observed_ci_low"] < allrow["predicted"] < allrow["observed_ci_high"]


# --------------------------------------------------------------------------- clinical covariates


def test_clinical_encoder_codes_imputes_in_training_only():
    train = pd.DataFrame({"stage": ["I", "IIIa", " iiib ", "x", "II"], "T": ["1", "2.0", "4", "3", "x"],
                          "hist": ["adeno", "squamous", "adeno", "", "large"], "age": ["60", "70", "", "80", "50"]})
    specs = [CovariateSpec("stage", "ordinal", ["I", "II", "IIIA", "IIIB"], ["x"]).to_dict(),
             CovariateSpec("T", "ordinal", [1, 2, 3, 4], ["x"]).to_dict(),
             CovariateSpec("hist", "categorical").to_dict(), CovariateSpec("age").to_dict()]
    enc = ClinicalEncoder(specs).fit(train)
    assert enc.fill_ == {"stage": 1.5, "T": 1.5, "hist": "adeno", "age": 65.0}  # training median codes / mode
    assert enc.n_missing_train_ == {"stage": 1, "T": 1, "hist": 1, "age": 1}
    assert enc.feature_names_out_ == ["stage", "T", "hist=large", "hist=squamous", "age"]
    test = pd.DataFrame({"stage": ["x", "IIIB"], "T": ["4", "1"], "hist": ["squamous", "nos"], "age": ["", "90"]})
    with pytest.warns(RuntimeWarning, match="not seen in training"):
        Z = enc.transform(test)
    raw_stage = (np.array([1.5, 3.0]) - enc.mean_[0]) / enc.scale_[0]
    np.testing.assert_allclose(Z["stage"], raw_stage)
    np.testing.assert_allclose(Z["age"].iloc[0], (65.0 - enc.mean_[4]) / enc.scale_[4])
    # the encoder's learnt values do not depend on other (test) patients
    enc2 = ClinicalEncoder(specs).fit(train)
    assert enc2.fill_ == enc.fill_ and np.array_equal(enc2.mean_, enc.mean_)


def test_unknown_values_are_never_silently_numbers():
    spec = CovariateSpec("stage", "ordinal", ["I", "II", "IIIA", "IIIB"])
    with pytest.raises(ValueError, match=r"'stage'.*\['IV'\]"):
        spec.parse(["I", "IV"])
    with pytest.raises(ValueError, match=r"'age'.*\['old'\]"):
        CovariateSpec("age").parse(["60", "old"])
    with pytest.raises(ValueError, match="ordinal"):
        CovariateSpec("stage", "ordinal")


def test_complete_case_counts_and_qc():
    tab = pd.DataFrame({"patient_id": ["a", "b", "c"], "age": ["60", "", "70"], "stage": ["I", "II", "x"]})
    specs = [CovariateSpec("age"), CovariateSpec("stage", "ordinal", ["I", "II"], ["x"])]
    keep, qc = complete_case_ids(tab, specs)
    assert keep == ["a"] and [r["patient_id"] for r in qc] == ["b", "c"]
    assert "age" in qc[0]["reason"] and "stage" in qc[1]["reason"]
    X, clin = planted_cohort(n=90, n_noise=10, seed=3)
    clin = with_clinical(clin)
    res = run_study(X, clin, [c for c in X.columns if c != "original_shape_MeshVolume"],
                    StudyConfig(**FAST, clinical_covariates=COVS, missing_covariates="complete_case"))
    n_missing = int((clin["stage"] == "").sum())
    assert res.metrics["n_dropped_incomplete_covariates"] == n_missing > 0
    assert res.metrics["n_used"] == 90 - n_missing and len(res.qc) == n_missing


# --------------------------------------------------------------------------- risk groups


def test_cutoffs_from_training_and_maxstat():
    rng = np.random.default_rng(4)
    s = rng.normal(size=200)
    t = np.where(s > 0.8, rng.exponential(5, 200), rng.exponential(30, 200))
    e = np.ones(200, int)
    (c,) = choose_cutoffs(s, t, e, "maxstat")
    assert 0.4 < c < 1.2  # finds the planted change point
    assert choose_cutoffs(s, t, e, "median") == [float(np.median(s))]
    g = assign_groups(np.array([c - 1, c, c + 1]), [c])
    assert g.tolist() == ["low", "low", "high"]


# --------------------------------------------------------------------------- designs


def test_cv_planted_signal_beats_volume_and_clinical():
    X, clin = planted_cohort(n=150, n_noise=40, seed=0)
    clin = with_clinical(clin)
    cfg = StudyConfig(**{**TUNED, "bootstrap": 30, "cv_repeats": 2}, clinical_covariates=COVS)
    res = run_study(X, clin, [c for c in X.columns if c != "original_shape_MeshVolume"], cfg)
    p = res.performance.set_index(["model", "set", "metric"])["estimate"]
    cv = "cross-validated"
    assert p[("radiomics", cv, "harrell_c")] > 0.75
    assert abs(p[("volume", cv, "harrell_c")] - 0.5) < 0.1 and abs(p[("clinical", cv, "harrell_c")] - 0.5) < 0.1
    delta = res.performance.query("model == 'radiomics' and metric == 'delta_harrell_c_vs_volume'")
    assert len(delta) == 1 and delta["ci_low"].iloc[0] > 0
    for m in ("radiomics", "volume", "clinical", "combined"):
        for k in ("uno_c", "auc_12", "auc_24", "ibs"):
            assert np.isfinite(p[(m, cv, k)]), (m, k)
    freq = res.selection_frequency.query("model == 'radiomics'").set_index("feature")["fraction_of_fits"]
    assert freq["inf_b"] == 1.0 and freq.get("inf_a", 0) + freq.get("inf_a_dup", 0) >= 1.0
    assert set(res.predictions["set"]) == {"test"} and res.predictions["patient_id"].is_unique
    assert len(res.predictions_all) == 150 * 2 * 4  # patients x repeats x models
    assert set(res.calibration["horizon"]) == {12.0, 24.0}
    json.dumps(res.final_description)  # plain JSON
    assert res.final_description["features"] == res.final_description["models"]["radiomics"]["model_inputs"]


def test_cv_fold_model_never_sees_its_test_patients():
    """Changing the outcomes of one outer fold's test patients leaves their predictions unchanged."""
    X, clin = planted_cohort(n=90, n_noise=15, seed=7)
    cands = [c for c in X.columns if c != "original_shape_MeshVolume"]
    cfg = StudyConfig(**TUNED)
    base = run_study(X, clin, cands, cfg)
    pa = base.predictions_all.query("model == 'radiomics' and repeat == 1")
    fold1 = pa.loc[pa["fold"] == 1, "patient_id"].tolist()
    clin2 = clin.set_index("patient_id")
    clin2.loc[fold1, "time"] = np.random.default_rng(0).uniform(1, 200, len(fold1))  # events kept: same folds
    res = run_study(X, clin2.reset_index(), cands, cfg)
    pb = res.predictions_all.query("model == 'radiomics' and repeat == 1")
    a = pa.set_index("patient_id")["risk_score"]
    b = pb.set_index("patient_id")["risk_score"]
    np.testing.assert_array_equal(a.loc[fold1], b.loc[fold1])
    assert not np.array_equal(a.drop(fold1), b.drop(fold1))  # other folds trained on the changed patients


def test_split_by_centre_validation_data_cannot_reach_the_model():
    X, clin = planted_cohort(n=120, n_noise=20, seed=9)
    clin = with_clinical(clin)
    clin["centre"] = np.where(np.arange(120) % 3 == 0, "B", "A")
    cands = [c for c in X.columns if c != "original_shape_MeshVolume"]
    cfg = StudyConfig(**{**FAST, "design": "split", "split_by": "centre", "validation_values": ("B",)},
                      clinical_covariates=COVS)
    base = run_study(X, clin, cands, cfg)
    val = clin.loc[clin["centre"] == "B", "patient_id"].tolist()
    assert base.metrics["n_test"] == len(val) and base.metrics["n_train"] == 120 - len(val)
    X2, clin2 = X.copy(), clin.set_index("patient_id")
    X2.loc[val, cands] = np.random.default_rng(1).normal(size=(len(val), len(cands))) * 50
    clin2.loc[val, "event"] = 1 - clin2.loc[val, "event"]
    clin2.loc[val, "stage"] = "IIIB"
    res = run_study(X2, clin2.reset_index(), cands, cfg)
    assert json.dumps(res.final_description, sort_keys=True) == json.dumps(base.final_description, sort_keys=True)
    assert res.metrics["c_index_test"] != base.metrics["c_index_test"]
    assert set(base.predictions["set"]) == {"train", "test"}


def test_same_seed_same_numbers_other_seed_differs():
    X, clin = planted_cohort(n=60, n_noise=15, seed=11)
    clin = with_clinical(clin)
    cands = [c for c in X.columns if c != "original_shape_MeshVolume"]
    cfg = StudyConfig(**{**FAST, "bootstrap": 10}, clinical_covariates=COVS, seed=5)
    r1 = run_study(X, clin, cands, cfg)
    r2 = run_study(X.iloc[::-1, ::-1], clin.iloc[::-1], cands[::-1], cfg)
    pd.testing.assert_frame_equal(r1.performance, r2.performance)
    pd.testing.assert_frame_equal(r1.predictions_all, r2.predictions_all)
    assert r1.metrics == r2.metrics
    r3 = run_study(X, clin, cands, StudyConfig(**{**FAST, "bootstrap": 10}, clinical_covariates=COVS, seed=6))
    assert not r3.predictions_all["fold"].equals(r1.predictions_all["fold"])
    # outer folds in 2 worker processes (the model rule's threads): the same numbers
    r4 = run_study(X, clin, cands, cfg, n_jobs=2)
    pd.testing.assert_frame_equal(r1.performance, r4.performance)
    pd.testing.assert_frame_equal(r1.predictions_all, r4.predictions_all)
    pd.testing.assert_frame_equal(r1.tuning, r4.tuning)
    assert r1.metrics == r4.metrics


@pytest.mark.parametrize("learner", ["coxnet", "rsf", "gbsa"])
def test_other_learners_run_and_learn(learner):
    X, clin = planted_cohort(n=120, n_noise=20, seed=13)
    cfg = StudyConfig(**{**FAST, "rsf_trees": 50, "gbsa_trees": 50, "rsf_min_leaf": (10,)}, learner=learner,
                      n_screen=8)
    res = run_study(X, clin, [c for c in X.columns if c != "original_shape_MeshVolume"], cfg)
    assert res.metrics["c_index_test"] > 0.7
    assert np.isfinite(res.performance.query("model == 'radiomics' and metric == 'ibs'")["estimate"]).all()


# --------------------------------------------------------------------------- real data


def test_lung1_shuffled_outcome_cv_c_is_chance(shared_data):
    """Outcome permuted across patients: cross-validated C, mean of 8 shuffles, is 0.50 +- 0.03.

    CI-sized (100 'original_' features, fixed hyperparameters, 5-fold x 1); the full
    1,218-feature run with inner tuning is ``tests/benchmarks/bench_modelling.py --lung1``.
    """
    feats, clin = _load_lung1(shared_data)
    cands = [c for c in feats.columns if c.startswith("original_")]
    cs = []
    for s in range(8):
        rng = np.random.default_rng(1000 + s)
        cl = clin.copy()
        cl[["time", "event"]] = cl[["time", "event"]].to_numpy()[rng.permutation(len(cl))]
        cfg = StudyConfig(cv_folds=5, cv_repeats=1, bootstrap=0, horizons=(365.0,), max_features=(4,),
                          penalizer=(1.0,), seed=s)
        res = run_study(feats, cl, cands, cfg)
        cs.append(res.metrics["c_index_test"])
    print(f"Lung1 shuffled-outcome CV C: mean {np.mean(cs):.3f}, runs {np.round(cs, 3).tolist()}")
    assert abs(np.mean(cs) - 0.5) <= 0.03, cs


def test_aerts_signature_on_lung1(shared_data):
    from radsurv.modelling.signatures import validate_signature

    feats, clin = _load_lung1(shared_data)
    tab = validate_signature(shared_data / "signatures" / "aerts_2014.yaml", feats, clin, [365, 730], None, 50, 1)
    row = tab.set_index(["model", "metric"]).loc[("signature", "harrell_c")]
    assert row["n"] == 144 and row["events"] == 128
    assert abs(row["estimate"] - AERTS_LUNG1_C[0]) <= AERTS_LUNG1_C[1]
    assert row["ci_low"] < row["estimate"] < row["ci_high"]


def test_signature_missing_feature_is_an_error(tmp_path):
    from radsurv.modelling.signatures import linear_predictor, load_signature

    p = tmp_path / "s.yaml"
    p.write_text(yaml.safe_dump({"coefficients": {"a": 1.0, "original_shape_Compactness1": 2.0}}))
    sig = load_signature(p)
    df = pd.DataFrame({"a": [1.0, 2.0], "original_shape_MeshVolume": [10.0, 20.0],
                       "original_shape_SurfaceArea": [30.0, 40.0]})
    lp = linear_predictor(df, sig["coefficients"])
    assert lp.iloc[0] == pytest.approx(1.0 + 2.0 * 10 / (np.sqrt(np.pi) * 30**1.5))
    with pytest.raises(ValueError, match="not derivable"):
        linear_predictor(df.drop(columns="a"), sig["coefficients"])


# --------------------------------------------------------------------------- stage from tables


def test_stage_starts_from_feature_and_clinical_tables(tmp_path):
    from radsurv.workflow.modelling import MODEL_OUTPUTS, fit_models, model_files

    X, clin = planted_cohort(n=70, n_noise=10, seed=17)
    X.reset_index().rename(columns={"patient_id": "ID"}).to_csv(tmp_path / "feats.csv", index=False)
    c = with_clinical(clin).rename(columns={"patient_id": "ID", "time": "OS", "event": "dead"})
    c.to_csv(tmp_path / "clin.csv", index=False)
    cfg = {**{k: list(v) if isinstance(v, tuple) else v for k, v in FAST.items()}, "features_id_column": "ID",
           "clinical_covariates": COVS, "feature_pattern": "^(inf|noise)", "bootstrap": 5}
    cols = {"id": "ID", "time": "OS", "event": "dead", "covariates": ["age", "stage"]}
    fit_models(features=tmp_path / "feats.csv", clinical=tmp_path / "clin.csv", modelling=cfg, seed=3, columns=cols,
               **model_files(tmp_path / "model"))
    for f in MODEL_OUTPUTS.values():
        assert (tmp_path / "model" / f).is_file(), f
    m = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert m["n_used"] == 70 and m["n_candidate_features"] == 13
    assert set(m["by_model"]) == {"radiomics", "volume", "clinical", "combined"}
    import joblib

    final = joblib.load(tmp_path / "model" / "final_models.joblib")
    again = final["radiomics"]["pipeline"].predict(X)
    fp = pd.read_csv(tmp_path / "model" / "final_predictions.tsv", sep="\t").query("model == 'radiomics'")
    np.testing.assert_allclose(again, fp.set_index("patient_id").loc[X.index, "risk_score"])


def test_shipped_configs_parse_as_study_config():
    for name in ("config.yaml", "example_cohort.yaml", "examples/lung1_features.yaml", "examples/owkin_nsclc.yaml"):
        block = yaml.safe_load((REPO / "config" / name).read_text())["modelling"]
        StudyConfig.from_dict(block)
    with pytest.raises(ValueError, match="unknown modelling config"):
        StudyConfig.from_dict({"desing": "cv"})


def _held_out(ids, time, event, risks):
    return pd.concat([pd.DataFrame({"patient_id": ids, "repeat": r + 1, "time": time, "event": event,
                                    "risk_score": risk}) for r, risk in enumerate(risks)], ignore_index=True)


def test_paired_c_difference_planted():
    """b ranks the patients by their true hazard, a by noise: C(b) - C(a) is the difference of the
    per-repeat mean Harrell's C, its paired bootstrap CI excludes 0; identical predictions give
    exactly 0; different patients or outcomes are refused."""
    rng = np.random.default_rng(0)
    n = 120
    hazard = rng.normal(size=n)
    time = rng.exponential(np.exp(-hazard))
    event = (rng.uniform(size=n) < 0.8).astype(int)
    ids = [f"p{i:03d}" for i in range(n)]
    a = _held_out(ids, time, event, [rng.normal(size=n) for _ in range(2)])
    b = _held_out(ids, time, event, [hazard + 0.3 * rng.normal(size=n) for _ in range(2)])
    d = M.paired_c_difference(a, b, n_boot=200, seed=1)
    c = {k: np.mean([M.harrell_c(time, event, f.loc[f["repeat"] == r, "risk_score"].to_numpy()) for r in (1, 2)])
         for k, f in (("a", a), ("b", b))}
    assert d["estimate"] == pytest.approx(c["b"] - c["a"]) and d["c_b"] == pytest.approx(c["b"])
    assert 0 < d["ci_low"] < d["estimate"] < d["ci_high"] and d["p_boot_le_0"] == 0 and d["n_boot_valid"] == 200
    same = M.paired_c_difference(a, a.sample(frac=1.0, random_state=3), n_boot=50, seed=1)  # row order free
    assert same["estimate"] == 0 and same["ci_low"] == 0 == same["ci_high"]
    with pytest.raises(ValueError, match="same patients"):
        M.paired_c_difference(a, b.iloc[1:], n_boot=10, seed=1)
    with pytest.raises(ValueError, match="outcome"):
        M.paired_c_difference(a, b.assign(event=1 - b["event"]), n_boot=10, seed=1)


def _planted_pair(n: int, repeats: int, p_event: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Held-out predictions of the same patients: ``a`` noise, ``b`` the true hazard plus noise."""
    rng = np.random.default_rng(seed)
    hazard = rng.normal(size=n)
    time = rng.exponential(np.exp(-hazard))
    event = (rng.uniform(size=n) < p_event).astype(int)
    ids = [f"p{i:03d}" for i in range(n)]
    return (_held_out(ids, time, event, [rng.normal(size=n) for _ in range(repeats)]),
            _held_out(ids, time, event, [hazard + 0.3 * rng.normal(size=n) for _ in range(repeats)]))


@pytest.mark.parametrize(("case", "n_boot", "seed", "expected"), [
    ((120, 2, 0.8, 0), 200, 1,
     {"estimate": 0.2587219651121395, "ci_low": 0.17957271062171684, "ci_high": 0.32737845487845485,
      "c_a": 0.47561409754360984, "c_b": 0.7343360626557494, "p_boot_le_0": 0.0, "n_boot_valid": 200}),
    # 12 patients, 3 events, 3 repeats: 2 replicates without an event (nan, left out)
    ((12, 3, 0.25, 5), 100, 7,
     {"estimate": -0.0317460317460318, "ci_low": -0.6858333333333334, "ci_high": 1.0,
      "c_a": 0.5079365079365079, "c_b": 0.4761904761904761, "p_boot_le_0": 0.5918367346938775,
      "n_boot_valid": 98}),
])
def test_paired_c_difference_unchanged_on_the_shared_bootstrap(case, n_boot, seed, expected):
    """paired_c_difference draws its replicates through bootstrap_replicates (as bootstrap_metrics
    does): exactly the numbers its own loop gave before (captured from that implementation, same seed)."""
    a, b = _planted_pair(*case)
    assert M.paired_c_difference(a, b, n_boot=n_boot, seed=seed) == expected


def test_bootstrap_replicates_draws_before_evaluating():
    """One rng(seed) draws every replicate's patients first, in order: the replicates do not depend
    on n_jobs (worker processes from 50 replicates on)."""
    rng = np.random.default_rng(5)
    draws = [rng.integers(0, 30, 30) for _ in range(60)]
    got = M.bootstrap_replicates(lambda rows, b: (b, rows.tolist()), 30, 60, 5)
    assert got == [(b, r.tolist()) for b, r in enumerate(draws)]
    assert M.bootstrap_replicates(lambda rows, b: (b, rows.tolist()), 30, 60, 5, n_jobs=2) == got
    assert M.bootstrap_replicates(lambda rows, b: b, 30, 0, 5) == []
