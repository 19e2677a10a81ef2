"""radsurv.modelling.classification.design: label checks, leakage-free nested CV, baselines."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from radsurv.modelling.classification.design import run_classification_cv, run_classification_split, validate_labels
from radsurv.modelling.classification.models import ClassCorrelationReducer, RadiomicsClassifier, UnivariateScreen
from radsurv.modelling.classification.settings import ClassificationSettings

FAST = dict(cv_folds=3, cv_repeats=1, inner_folds=3, learners=("logistic_l2", "rf", "svm"), n_screen=(2, 8),
            n_screen_trees=(8,), rf_trees=15, ensemble_sizes=(1, 2), n_boot=100, seed=1)


def cohort(n: int = 90, p: int = 30, seed: int = 0, signal: float = 1.5) -> tuple[pd.DataFrame, pd.Series]:
    """Features f0..f{p-1} (f0, f1 informative), volume unrelated to the label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    X = rng.normal(size=(n, p))
    X[:, 0] += signal * y
    X[:, 1] -= signal * y
    df = pd.DataFrame(X, columns=[f"f{j}" for j in range(p)], index=[f"P{i:03d}" for i in range(n)])
    df["volume"] = np.exp(rng.normal(3, 0.5, n))
    return df, pd.Series(np.where(y == 1, "HPV+", "HPV-"), index=df.index, name="hpv")


def test_labels_missing_and_unknown_values_are_reported_not_coerced():
    s = pd.Series(["pos", "neg", None, "neg", "Pos ", "n/a", "pos", "neg", "pos", "neg", "pos", "neg"],
                  index=[f"p{i}" for i in range(12)])
    y, qc = validate_labels(s, "binary", classes=["neg", "pos"], positive="pos", min_per_class=3)
    assert set(qc["patient"]) == {"p2", "p4", "p5"}  # missing, 'Pos ' (case differs), 'n/a'
    assert "missing" in qc.set_index("patient").loc["p2", "issue"]
    assert "not one of the declared classes" in qc.set_index("patient").loc["p4", "issue"]
    assert y.to_dict() == {"p0": 1, "p1": 0, "p3": 0, "p6": 1, "p7": 0, "p8": 1, "p9": 0, "p10": 1, "p11": 0}


@pytest.mark.parametrize("values,endpoint,msg", [
    (["a"] * 10, "binary", "at least two"),
    (["a"] * 10 + ["b"] * 2, "binary", "fewer than 5 patients"),
    (["a"] * 6 + ["b"] * 6 + ["c"] * 6, "binary", "exactly two classes"),
])
def test_labels_errors_are_plain(values, endpoint, msg):
    with pytest.raises(ValueError, match=msg):
        validate_labels(pd.Series(values), endpoint, min_per_class=5)


def test_settings_are_checked():
    with pytest.raises(ValueError, match="modelling.endpoint"):
        ClassificationSettings(endpoint="survival")
    with pytest.raises(ValueError, match="unknown learner"):
        ClassificationSettings(learners=("xgboost",))


def test_screen_and_reducer_keep_the_informative_feature():
    X, y = cohort()
    yy = (y == "HPV+").astype(int).to_numpy()
    X["dup"] = X["f0"] * 2 + 1e-9  # perfectly rank-correlated copy of f0
    for method in ("f", "rank"):
        assert set(UnivariateScreen(2, method).fit(X, yy).features_out_) == {"f0", "f1"} or \
            set(UnivariateScreen(2, method).fit(X, yy).features_out_) == {"dup", "f1"}
    red = ClassCorrelationReducer(0.9).fit(X.drop(columns="volume"), yy)
    assert ("f0" in red.features_out_) != ("dup" in red.features_out_)
    assert red.clusters_["f0"] == red.clusters_["dup"]


@pytest.mark.parametrize("cluster", [True, False])
def test_cluster_features_switch_and_zero_screen_means_every_feature(cluster):
    """``cluster_features`` adds the correlation step (a perfect copy of f0 is merged away);
    off, every quality-filtered feature reaches the model; ``n_screen_trees`` 0 = no screen."""
    X, y = cohort(p=10)
    yy = (y == "HPV+").astype(int).to_numpy()
    X["dup"] = X["f0"] * 2 + 1e-9
    rad = [c for c in X.columns if c != "volume"]
    s = {**FAST, "learners": ("rf",), "n_screen_trees": (0,), "ensemble_sizes": (1,), "cluster_features": cluster}
    est = RadiomicsClassifier(s, radiomic_features=rad, seed=3).fit(X, yy)
    assert ("reduce" in est.prep_.named_steps) is cluster
    screen, forest = est.members_[0]
    assert forest.n_features_in_ == len(screen.features_out_) == (len(rad) - 1 if cluster else len(rad))
    assert est.chosen_[0][1] == forest.n_features_in_


def test_every_data_dependent_step_sees_training_patients_only():
    X, y = cohort()
    yy = (y == "HPV+").astype(int).to_numpy()
    est = RadiomicsClassifier(FAST, radiomic_features=[c for c in X.columns if c != "volume"], seed=3)
    est.fit(X.iloc[:60], yy[:60])
    scale = est.prep_.named_steps["scale"]
    np.testing.assert_allclose(scale.mean_.to_numpy(), X.iloc[:60][scale.features_out_].mean().to_numpy())
    assert 0 < est.threshold_ < 1 and est.describe()
    # poison the held-out patients of outer fold 0: what fold 0 learnt (configuration,
    # inner AUC, threshold) must not move, and the volume model's fold-0 threshold neither
    s = ClassificationSettings(**FAST)
    r = run_classification_cv(X, y, s, volume_feature="volume", positive="HPV+", models=["radiomics", "volume"])
    test0 = r.predictions.query("fold == 0 and model == 'radiomics'")["patient"].tolist()
    Xp = X.copy()
    Xp.loc[test0] = Xp.loc[test0] * 50 + 100
    rp = run_classification_cv(Xp, y, s, volume_feature="volume", positive="HPV+", models=["radiomics", "volume"])
    c, cp = r.choices.iloc[0], rp.choices.iloc[0]
    assert c["chosen"] == cp["chosen"]
    assert c["inner_auc"] == pytest.approx(cp["inner_auc"], abs=1e-12)
    assert c["threshold"] == pytest.approx(cp["threshold"], abs=1e-12)
    v = r.predictions.query("fold == 0 and model == 'volume'")["threshold"].iloc[0]
    vp = rp.predictions.query("fold == 0 and model == 'volume'")["threshold"].iloc[0]
    assert v == pytest.approx(vp, abs=1e-12)
    assert not r.choices.iloc[1:].equals(rp.choices.iloc[1:])  # folds that trained on them do change


def test_outer_folds_in_worker_processes_give_the_same_result():
    """n_jobs=2 fits the outer folds (split design: the models) in worker processes; each fit has its
    own seed, so predictions, choices and metrics equal the one-process run exactly."""
    X, y = cohort(n=60)
    s = ClassificationSettings(**{**FAST, "cv_repeats": 2})
    one = run_classification_cv(X, y, s, volume_feature="volume", positive="HPV+", n_jobs=1)
    two = run_classification_cv(X, y, s, volume_feature="volume", positive="HPV+", n_jobs=2)
    assert len(one.predictions) == 2 * 60 * 3  # 2 repeats x 60 patients x 3 models
    pd.testing.assert_frame_equal(one.predictions, two.predictions, check_exact=True)
    pd.testing.assert_frame_equal(one.choices, two.choices, check_exact=True)
    pd.testing.assert_frame_equal(one.metrics, two.metrics, check_exact=True)
    dev, val = X.index[:40], X.index[40:]
    a, b = (run_classification_split(X.loc[dev], y.loc[dev], X.loc[val], y.loc[val], s, volume_feature="volume",
                                     positive="HPV+", n_jobs=j) for j in (1, 2))
    pd.testing.assert_frame_equal(a.predictions, b.predictions, check_exact=True)
    pd.testing.assert_frame_equal(a.metrics, b.metrics, check_exact=True)


def test_nested_cv_finds_signal_beats_volume_and_is_deterministic():
    X, y = cohort()
    s = ClassificationSettings(**FAST)
    r1 = run_classification_cv(X, y, s, volume_feature="volume", positive="HPV+")
    r2 = run_classification_cv(X, y, ClassificationSettings(**FAST), volume_feature="volume", positive="HPV+")
    pd.testing.assert_frame_equal(r1.predictions, r2.predictions)
    m = r1.metrics.set_index("model")
    assert list(m.index) == ["radiomics", "volume", "prevalence"]
    assert m.loc["radiomics", "auc"] > 0.8
    assert m.loc["radiomics", "diff_ci_low"] > 0  # better than volume, which carries no signal
    assert m.loc["volume", "auc"] < 0.7
    assert m.loc["radiomics", "delong_p_vs_volume"] < 0.05
    for col in ("sensitivity", "specificity", "balanced_accuracy", "brier", "cal_intercept", "cal_slope"):
        assert np.isfinite(m.loc["radiomics", col])
    # every patient predicted once per repeat, by a fold model that did not see them
    d = r1.predictions[r1.predictions["model"] == "radiomics"]
    assert d["patient"].is_unique and len(d) == len(X)
    assert roc_auc_score(d["label"], d["p_1"]) == pytest.approx(m.loc["radiomics", "auc"])
    assert len(r1.choices) == FAST["cv_folds"]
    # the per-fold AUC: each fold model scored on its own test patients, then averaged
    per_fold = [roc_auc_score(g["label"], g["p_1"]) for _, g in d.groupby("fold")]
    assert m.loc["radiomics", "auc_fold_mean"] == pytest.approx(np.mean(per_fold))
    assert m.loc["radiomics", "auc_fold_sd"] == pytest.approx(np.std(per_fold, ddof=1))
    assert m.loc["prevalence", "auc_fold_mean"] == pytest.approx(0.5)
    # the no-information model has no ranking to recalibrate: slope undefined, intercept kept
    assert np.isnan(m.loc["prevalence", "cal_slope"]) and np.isfinite(m.loc["prevalence", "cal_intercept"])


def test_permuted_labels_give_chance_auc():
    X, y = cohort(n=80, p=60, signal=0.0, seed=5)
    aucs = []
    for k in range(3):
        yp = pd.Series(np.random.default_rng(k).permutation(y.to_numpy()), index=y.index)
        r = run_classification_cv(X, yp, ClassificationSettings(**FAST), models=["radiomics"], positive="HPV+")
        aucs.append(r.metrics.loc[0, "auc"])
    assert abs(np.mean(aucs) - 0.5) < 0.12


def test_clinical_and_combined_models():
    X, y = cohort(signal=0.6)
    rng = np.random.default_rng(9)
    clin = pd.DataFrame({"stage": np.where((y == "HPV+") ^ (rng.random(len(y)) < 0.2), "III", "I"),
                         "age": rng.normal(60, 8, len(y)).round().astype(str)}, index=X.index)
    clin.iloc[3, 1] = ""  # a missing age, imputed inside each training fold
    specs = [{"name": "stage", "type": "ordinal", "levels": ["I", "II", "III"]}, {"name": "age", "type": "numeric"}]
    r = run_classification_cv(X, y, ClassificationSettings(**FAST), volume_feature="volume", clinical=clin,
                              clinical_specs=specs, positive="HPV+")
    m = r.metrics.set_index("model")
    assert list(m.index) == ["radiomics", "volume", "clinical", "clinical+radiomics", "prevalence"]
    assert m.loc["clinical", "auc"] > 0.7
    assert m.loc["clinical+radiomics", "auc"] > m.loc["radiomics", "auc"]


def test_multiclass_endpoint():
    rng = np.random.default_rng(2)
    n = 120
    y = rng.choice(["grade1", "grade2", "grade3"], n)
    X = pd.DataFrame(rng.normal(size=(n, 20)), columns=[f"f{j}" for j in range(20)], index=[f"p{i}" for i in range(n)])
    X["f0"] += 1.5 * (y == "grade2")
    X["f1"] += 1.5 * (y == "grade3")
    r = run_classification_cv(X, pd.Series(y, index=X.index), ClassificationSettings(endpoint="multiclass", **FAST),
                              models=["radiomics", "prevalence"])
    m = r.metrics.set_index("model")
    assert m.loc["radiomics", "macro_auc"] > 0.7
    assert {"auc_grade1", "auc_grade2", "auc_grade3", "balanced_accuracy"} <= set(m.columns)
    assert m.loc["prevalence", "balanced_accuracy"] == pytest.approx(1 / 3, abs=0.05)


def test_development_validation_split_scores_the_validation_cohort_only():
    X, y = cohort(n=120)
    dev, val = X.index[:80], X.index[80:]
    yv = y.copy()
    yv.loc[val[0]] = None  # a missing label in the validation cohort is reported, not guessed
    r = run_classification_split(X.loc[dev], y.loc[dev], X.loc[val], yv.loc[val], ClassificationSettings(**FAST),
                                 volume_feature="volume", positive="HPV+")
    m = r.metrics.set_index("model")
    assert set(r.predictions["patient"]) == set(val[1:])
    assert m.loc["radiomics", "auc"] > 0.75
    assert r.qc.set_index("patient").loc[val[0], "cohort"] == "validation"
    d = r.predictions.query("model == 'radiomics'")
    assert roc_auc_score(d["label"], d["p_1"]) == pytest.approx(m.loc["radiomics", "auc"])


@pytest.mark.parametrize("learner", ["logistic_l2", "logistic_l1", "elasticnet", "rf", "gb", "svm"])
def test_three_class_endpoint_runs_with_every_learner(learner):
    """Every learner fits a 3-class endpoint through the nested CV (liblinear, the binary L1
    solver, rejects more than two classes) and finds the planted signal."""
    rng = np.random.default_rng(4)
    n = 90
    y = np.repeat(["g1", "g2", "g3"], n // 3)
    X = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"f{j}" for j in range(12)], index=[f"p{i}" for i in range(n)])
    X["f0"] += 2.0 * (y == "g2")
    X["f1"] += 2.0 * (y == "g3")
    s = ClassificationSettings(**{**FAST, "endpoint": "multiclass", "learners": (learner,), "ensemble_sizes": (1,),
                                  "n_screen": (4,), "n_screen_trees": (4,), "gb_trees": 20})
    r = run_classification_cv(X, pd.Series(y, index=X.index), s, models=["radiomics"])
    assert set(r.choices["chosen"].str.split("(").str[0]) == {learner}
    p = r.predictions[["p_g1", "p_g2", "p_g3"]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert r.metrics.loc[0, "macro_auc"] > 0.75


def test_settings_defaults_are_the_schema_defaults_and_from_config_reads_the_block():
    from dataclasses import fields

    from radsurv.modelling.classification.settings import GRID_KEYS, SHARED_KEYS
    from radsurv.schema import _config_schema, default

    block = _config_schema()["properties"]["modelling"]["properties"]["classification"]["properties"]
    assert set(block) == set(GRID_KEYS)  # every grid key in the schema, nothing undocumented
    s = ClassificationSettings()
    for key in GRID_KEYS:
        v = default("modelling", "classification", key)
        assert getattr(s, key) == (tuple(v) if isinstance(v, list) else v), key
        assert block[key]["description"]
    for key, fld in SHARED_KEYS.items():
        assert getattr(s, fld) == default("modelling", key), key
    assert set(GRID_KEYS) | set(SHARED_KEYS.values()) | {"endpoint", "min_per_class", "seed"} == \
        {f.name for f in fields(ClassificationSettings)}
    c = ClassificationSettings.from_config(
        {"cv_folds": 4, "bootstrap": 50, "learner": "rsf", "classification": {"learners": ["rf"], "rf_min_leaf": [7]}},
        "multiclass", seed=11)
    assert (c.cv_folds, c.n_boot, c.learners, c.rf_min_leaf) == (4, 50, ("rf",), (7,))
    assert (c.endpoint, c.seed) == ("multiclass", 11)
    assert c.logistic_C == s.logistic_C  # absent keys keep the schema default
    with pytest.raises(ValueError, match="unknown modelling.classification key"):
        ClassificationSettings.from_config({"classification": {"trees": 5}}, "binary")


def test_config_with_a_classification_block_passes_the_schema():
    import jsonschema

    from radsurv.schema import _config_schema

    sub = _config_schema()["properties"]["modelling"]["properties"]["classification"]
    jsonschema.validate({"learners": ["rf", "svm"], "logistic_C": [0.1], "selection": "one_se"}, sub)
    for bad in ({"learners": ["xgboost"]}, {"rf_trees": 0}, {"selection": "worst"}, {"trees": 3}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, sub)


@pytest.mark.parametrize("selection", ["best", "one_se"])
def test_inner_repeats_and_selection_rule(selection):
    """inner_repeats multiplies the inner fits; ``best`` takes the highest inner AUC, ``one_se``
    the largest ensemble within one standard error of it (never a worse one than that)."""
    X, y = cohort(n=60, p=12, signal=1.0)
    yy = (y == "HPV+").astype(int).to_numpy()
    s = {**FAST, "learners": ("logistic_l2", "svm"), "n_screen": (2, 6), "logistic_C": (0.05, 0.5),
         "ensemble_sizes": (1, 3, 6), "inner_repeats": 2, "selection": selection}
    est = RadiomicsClassifier(s, radiomic_features=[c for c in X.columns if c != "volume"], seed=2).fit(X, yy)
    assert est.n_inner_fits_ == 2 * FAST["inner_folds"]
    e = est.ensemble_auc_.set_index("size")
    best = e["inner_auc"].max()
    size = len(est.chosen_)
    if selection == "best":
        assert est.inner_auc_ == pytest.approx(best) and e.loc[size, "inner_auc"] == pytest.approx(best)
    else:
        top = e["inner_auc"].idxmax()
        ok = e.index[e["inner_auc"] >= best - e.loc[top, "inner_se"]]
        assert size == max(ok) and size >= top
    assert len(est.candidate_auc_) == 2 * 2 + 2  # logistic: 2 k x 2 C; svm: 2 k x 1 C
