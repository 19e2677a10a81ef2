"""radsurv.harmonisation: ComBat inside the folds, batch labels, diagnostics, volume confounds."""

from __future__ import annotations

import importlib
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from neuroCombat import neuroCombat, neuroCombatFromTraining
from sklearn.base import clone
from sksurv.linear_model import CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored

from radsurv.harmonisation.batches import (
    batch_counts,
    batch_labels,
    batch_qc_rows,
    patient_acquisition_facts,
    read_acquisition_facts,
)
from radsurv.harmonisation.combat import ComBatHarmoniser, neurocombat_fit, with_harmonisation
from radsurv.harmonisation.confounds import VolumeResidualiser, volume_association
from radsurv.harmonisation.diagnostics import (
    cross_fitted_harmonisation,
    cv_risk_scores,
    kruskal_batch_test,
    pca_figure,
    site_prediction_auc,
)
from radsurv.modelling.learners import build_pipeline
from radsurv.modelling.metrics import surv_array


def scanners(n_per: tuple[int, ...] = (60, 60, 60), p: int = 12, seed: int = 0, outcome_weight: float = 0.8,
             offsets: tuple[float, ...] = (0.0, 1.5, -1.2), scales: tuple[float, ...] = (1.0, 1.8, 0.6)
             ) -> tuple[pd.DataFrame, pd.Series, np.ndarray, np.ndarray]:
    """Feature table of a planted multi-scanner cohort: feature ``f0`` carries the
    biology (hazard exp(outcome_weight * x0)); each scanner adds its own offset and
    spread (location/scale, ComBat's model) to every feature, with a per-feature twist;
    survival is independent of the scanner."""
    rng = np.random.default_rng(seed)
    n = sum(n_per)
    bio = rng.normal(size=(n, p))
    batch = np.repeat([f"scanner{i}" for i in range(len(n_per))], n_per)
    X = np.empty_like(bio)
    for i, b in enumerate(sorted(set(batch))):
        m = batch == b
        twist = rng.uniform(0.5, 1.5, p)
        X[m] = bio[m] * scales[i] * twist ** (i > 0) + offsets[i] * twist
    t = rng.exponential(1.0 / np.exp(outcome_weight * bio[:, 0]))
    c = rng.exponential(2.0, n)
    time, event = np.minimum(t, c) * 365, (t <= c).astype(int)
    frame = pd.DataFrame(X + 10.0, columns=[f"f{j}" for j in range(p)], index=[f"p{i:03d}" for i in range(n)])
    return frame, pd.Series(batch, index=frame.index, name="batch"), time, event


# ------------------------------------------------------------------ equality with the reference package


@pytest.mark.parametrize("eb", [True, False])
def test_training_output_equals_neurocombat(eb):
    X, batch, _, _ = scanners(seed=1)
    ref = neuroCombat(dat=X.to_numpy(float).T, covars=pd.DataFrame({"batch": batch.to_numpy()}), batch_col="batch",
                      eb=eb)["data"].T
    h = ComBatHarmoniser(eb=eb).fit(X.assign(batch=batch))
    got = h.transform(X.assign(batch=batch))
    assert list(got.columns) == list(X.columns) and list(got.index) == list(X.index)
    assert np.allclose(got.to_numpy(), ref, rtol=0, atol=1e-9)
    assert not np.allclose(got.to_numpy(), X.to_numpy(), atol=0.1)  # it did correct something


def test_training_output_with_protected_covariates_equals_neurocombat():
    X, batch, _, _ = scanners(seed=2)
    rng = np.random.default_rng(2)
    age = rng.normal(65, 8, len(X))
    hist = rng.choice(["adeno", "large", "squamous"], len(X))
    X = X.assign(f1=X["f1"] + 0.05 * age, f2=X["f2"] + 1.0 * (hist == "squamous"))
    dummies = np.column_stack([(hist == "large").astype(float), (hist == "squamous").astype(float)])
    covars = pd.DataFrame({"batch": batch.to_numpy(), "age": age, "h1": dummies[:, 0], "h2": dummies[:, 1]})
    ref = neuroCombat(dat=X.to_numpy(float).T, covars=covars, batch_col="batch",
                      continuous_cols=["age", "h1", "h2"])["data"].T
    h = ComBatHarmoniser(covariates=["age"], categorical_covariates=["histology"])
    Xin = X.assign(batch=batch, age=age, histology=hist)
    got = h.fit(Xin).transform(Xin)
    assert list(got.columns) == list(X.columns)
    assert np.allclose(got.to_numpy(), ref, rtol=0, atol=1e-8)
    assert h.covariate_columns_ == ["age", "histology=large", "histology=squamous"]


class _NumpyWhereScalar:
    """numpy, except that ``where(cond)`` with one match gives a scalar index: the one
    call of neuroCombatFromTraining 0.2.12 that NumPy 2.4 rejects (``int()`` of a
    one-element array)."""

    def __getattr__(self, name):
        return getattr(np, name)

    @staticmethod
    def where(cond, *args):
        if args:
            return np.where(cond, *args)
        idx = np.flatnonzero(cond)
        return (idx[0] if len(idx) == 1 else idx,)


def test_held_out_rows_equal_neurocombat_from_training(monkeypatch):
    X, batch, _, _ = scanners(seed=3)
    train = np.arange(len(X)) % 4 != 0
    fit = neuroCombat(dat=X[train].to_numpy(float).T, covars=pd.DataFrame({"batch": batch[train].to_numpy()}),
                      batch_col="batch")
    args = dict(dat=X[~train].to_numpy(float).T, batch=batch[~train].to_numpy(), estimates=fit["estimates"])
    with pytest.raises(TypeError):  # why radsurv re-states the formula (combat_apply)
        neuroCombatFromTraining(**args)
    with monkeypatch.context() as m:
        m.setattr(importlib.import_module("neuroCombat.neuroCombat"), "np", _NumpyWhereScalar())
        ref = neuroCombatFromTraining(**args)["data"].T
    h = ComBatHarmoniser().fit(X[train].assign(batch=batch[train]))
    got = h.transform(X[~train].assign(batch=batch[~train]))
    assert np.allclose(got.to_numpy(), ref, rtol=0, atol=1e-9)
    assert not np.allclose(got.to_numpy(), X[~train].to_numpy(), atol=0.1)
    # the held-out rows' correction does not depend on which other held-out rows come along
    one = h.transform(X[~train].iloc[:1].assign(batch=batch[~train].iloc[:1]))
    assert np.allclose(one.to_numpy(), got.iloc[:1].to_numpy(), atol=1e-12)


def test_held_out_covariate_effect_is_the_patients_own():
    """ComBat's formula with each new patient's own covariate effect (neuroCombatFromTraining
    would use the training average)."""
    X, batch, _, _ = scanners(seed=4, p=6)
    age = np.random.default_rng(4).normal(65, 8, len(X))
    X = X.assign(f0=X["f0"] + 0.2 * age)
    train = np.arange(len(X)) % 3 != 0
    Xin = X.assign(batch=batch, age=age)
    h = ComBatHarmoniser(covariates=["age"]).fit(Xin[train])
    got = h.transform(Xin[~train]).to_numpy()
    est = h.estimates_
    covars = pd.DataFrame({"batch": batch[train].to_numpy(), "age": age[train]})
    fit = neuroCombat(dat=X[train].to_numpy(float).T, covars=covars, batch_col="batch", continuous_cols=["age"])
    design = np.column_stack([pd.get_dummies(batch[train]).to_numpy(float), age[train]])
    B = np.linalg.lstsq(design, X[train].to_numpy(float), rcond=None)[0]  # ComBat's own OLS step
    beta_age = B[-1]
    assert np.allclose(fit["estimates"]["mod.mean"], np.outer(beta_age, age[train]), atol=1e-7)
    levels = list(est["batches"])
    b_idx = [levels.index(b) for b in batch[~train]]
    s = est["stand.mean"][:, 0]
    vp = np.sqrt(est["var.pooled"][:, 0])
    xb = np.outer(age[~train], beta_age)
    z = (X[~train].to_numpy(float) - s - xb) / vp
    expected = (z - est["gamma.star"][b_idx]) / np.sqrt(est["delta.star"][b_idx]) * vp + s + xb
    assert np.allclose(got, expected, atol=1e-7)


# ------------------------------------------------------------------ policies and QC


def test_unseen_batch_policies():
    X, batch, _, _ = scanners(seed=5)
    train = batch != "scanner2"
    Xin = X.assign(batch=batch)
    strict = ComBatHarmoniser(unseen_batch="refuse").fit(Xin[train])
    with pytest.raises(ValueError, match="scanner2"):
        strict.transform(Xin)
    lenient = ComBatHarmoniser(unseen_batch="passthrough").fit(Xin[train])
    with pytest.warns(RuntimeWarning, match="60 patient\\(s\\) left uncorrected.*scanner2"):
        out = lenient.transform(Xin)
    assert np.allclose(out[~train].to_numpy(), X[~train].to_numpy())  # unchanged
    assert not np.allclose(out[train].to_numpy(), X[train].to_numpy(), atol=0.1)
    flags = lenient.uncorrected(Xin)
    assert flags.equals(pd.Series((~train).to_numpy(), index=X.index, name="uncorrected_batch"))
    with pytest.raises(ValueError, match="unseen_batch"):
        ComBatHarmoniser(unseen_batch="ignore").fit(Xin)


def test_small_batch_is_a_qc_record_and_follows_the_policy():
    X, batch, _, _ = scanners(n_per=(40, 40, 2), seed=6)
    Xin = X.assign(batch=batch)
    h = ComBatHarmoniser(min_batch_size=3).fit(Xin)
    assert h.batches_ == ["scanner0", "scanner1"]
    assert [r["batch"] for r in h.qc_records_] == ["scanner2"]
    assert "only 2 training patient(s)" in h.qc_records_[0]["reason"]
    with pytest.warns(RuntimeWarning, match="scanner2"):
        out = h.transform(Xin)
    small = (batch == "scanner2").to_numpy()
    assert np.allclose(out[small].to_numpy(), X[small].to_numpy())
    summary = h.summary()
    assert summary["unseen_batch_policy"] == "passthrough"
    assert {b["batch"]: b["estimated"] for b in summary["batches"]} == {"scanner0": True, "scanner1": True,
                                                                         "scanner2": False}
    with pytest.raises(ValueError, match="min_batch_size"):
        ComBatHarmoniser(min_batch_size=1).fit(Xin)


def test_constant_and_missing_features_pass_through_and_are_reported():
    X, batch, _, _ = scanners(seed=7, p=5)
    X["const"] = 3.0
    X["gap"] = X["f1"]
    X.iloc[4, X.columns.get_loc("gap")] = np.nan
    Xin = X.assign(batch=batch)
    h = ComBatHarmoniser().fit(Xin)
    assert h.unharmonised_features_ == ["const", "gap"]
    assert "constant" in h.unharmonised_reasons_["const"] and "non-finite" in h.unharmonised_reasons_["gap"]
    out = h.transform(Xin)
    assert (out["const"] == 3.0).all() and out["gap"].isna().sum() == 1
    skipped = ComBatHarmoniser(skip_features=["f0"]).fit(Xin)
    assert "f0" in skipped.unharmonised_features_ and "skip_features" in skipped.unharmonised_reasons_["f0"]
    assert np.allclose(skipped.transform(Xin)["f0"], X["f0"])
    ref = neurocombat_fit(X[[f"f{j}" for j in range(5)]].to_numpy(float).T, pd.DataFrame({"batch": batch.to_numpy()}),
                          "batch")["data"].T
    assert np.allclose(out[[f"f{j}" for j in range(5)]].to_numpy(), ref, atol=1e-9)


def test_unknown_covariate_level_and_missing_batch_column_are_clear_errors():
    X, batch, _, _ = scanners(seed=8, p=4)
    hist = np.where(np.arange(len(X)) % 2 == 0, "adeno", "squamous")
    Xin = X.assign(batch=batch, histology=hist)
    h = ComBatHarmoniser(categorical_covariates=["histology"]).fit(Xin)
    new = Xin.iloc[:3].assign(histology="small cell")
    with pytest.raises(ValueError, match="small cell"):
        h.transform(new)
    with pytest.raises(ValueError, match="batch"):
        ComBatHarmoniser().fit(X)


def test_sklearn_conventions():
    h = ComBatHarmoniser(batch_column="centre", min_batch_size=4, unseen_batch="refuse")
    assert clone(h).get_params() == h.get_params()
    X, batch, _, _ = scanners(seed=9, p=4)
    h.set_output(transform="pandas")
    out = h.fit_transform(X.assign(centre=batch))
    assert list(h.get_feature_names_out()) == list(X.columns) == list(out.columns)


# ------------------------------------------------------------------ inside the modelling pipeline


def test_harmoniser_inside_build_pipeline_is_fit_on_training_rows_only():
    X, batch, time, event = scanners(seed=10, p=8)
    y = surv_array(time, event)
    feats = list(X.columns)
    base = build_pipeline(["rad"], feats, None, [], "cox", {"n_screen": 4, "corr_threshold": 0.9}, seed=0)
    pipe = with_harmonisation(base, ComBatHarmoniser(batch_column="batch"))
    Xin = X.assign(batch=batch)
    train = np.arange(len(X)) % 5 != 0
    pipe.fit(Xin[train], y[train])
    h = pipe.named_steps["features"].named_transformers_["rad"].named_steps["harmonise"]
    assert sum(r.n_train for r in h.batch_records_) == int(train.sum())
    risk = pipe.predict(Xin[~train])
    assert np.isfinite(risk).all() and len(risk) == int((~train).sum())
    # without the batch column the harmonised pipeline refuses to run
    with pytest.raises(ValueError):
        pipe.predict(X[~train])
    # the unharmonised pipeline is unchanged by with_harmonisation (a copy)
    assert [n for n, _, _ in base.named_steps["features"].transformers] == ["rad"]
    assert "batch" not in base.named_steps["features"].transformers[0][2]
    with pytest.raises(ValueError, match="no 'clin' branch"):
        with_harmonisation(base, ComBatHarmoniser(), branch="clin")


def test_multiscanner_site_auc_falls_and_endpoint_c_is_kept():
    """Three scanners (location/scale effects), survival independent of the scanner:
    site-prediction AUC > 0.9 before, <= 0.6 after in-fold ComBat; the endpoint C-index
    moves by <= 0.02."""
    X, batch, time, event = scanners(n_per=(70, 70, 70), seed=11, p=10)
    before = site_prediction_auc(X, batch, harmonise=False, n_splits=5, n_repeats=2, n_boot=200, seed=0)
    after = site_prediction_auc(X, batch, harmonise=True, n_splits=5, n_repeats=2, n_boot=200, seed=0)
    assert before.metric == "one-vs-rest macro ROC AUC"
    assert before.estimate > 0.9 and before.ci_low <= before.estimate <= before.ci_high
    assert after.estimate <= 0.6, str(after)
    # the planted biology survives harmonisation: the C of f0 alone, in-fold
    Xh = cross_fitted_harmonisation(X, batch, n_splits=5, seed=0)
    ev = event.astype(bool)
    c_true = concordance_index_censored(ev, time, X["f0"].groupby(batch).transform(
        lambda s: (s - s.mean()) / s.std()).to_numpy())[0]
    c_harm = concordance_index_censored(ev, time, Xh["f0"].to_numpy())[0]
    assert abs(c_harm - c_true) <= 0.02, (c_harm, c_true)
    assert c_true > 0.6


def test_whole_cohort_harmonisation_is_optimistic_on_a_planted_case():
    """A centre seen only among the held-out patients (the external centre of a
    development/validation design, or a small centre that a fold leaves out entirely).
    Whole-cohort ComBat corrects it with the held-out patients' own means and spreads,
    which no new patient from that centre brings along; in-fold ComBat cannot (policy
    passthrough: uncorrected and flagged). The planted scanner of centre C inflates the
    noise features, so the honest C-index of C's patients is lower."""
    rng = np.random.default_rng(12)
    n_a, n_b, n_c, p = 150, 150, 100, 20
    n = n_a + n_b + n_c
    bio = rng.normal(size=(n, p))
    centre = np.repeat(["A", "B", "C"], [n_a, n_b, n_c])
    X = bio.copy()
    X[centre == "B"] += 1.0
    X[centre == "C", 1:] = X[centre == "C", 1:] * 8.0 + 3.0  # C's kernel/noise: noise features x8, offset
    X[centre == "C", 0] += 2.0
    t = rng.exponential(1.0 / np.exp(1.0 * bio[:, 0]))
    c = rng.exponential(2.0, n)
    y = surv_array(np.minimum(t, c), (t <= c).astype(int))
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(p)]).assign(batch=centre)
    dev, val = centre != "C", centre == "C"

    def c_on_validation(harmoniser_rows: np.ndarray) -> float:
        h = ComBatHarmoniser(unseen_batch="passthrough").fit(frame[harmoniser_rows])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            Z = h.transform(frame)
        mu, sd = Z[dev].mean(), Z[dev].std()
        Z = (Z - mu) / sd
        model = CoxPHSurvivalAnalysis(alpha=1.0).fit(Z[dev].to_numpy(), y[dev])
        risk = model.predict(Z[val].to_numpy())
        return concordance_index_censored(y["event"][val], y["time"][val], risk)[0]

    honest = c_on_validation(dev)  # fit on the development patients only
    whole = c_on_validation(np.ones(n, bool))  # fit on everyone, validation patients included
    h = ComBatHarmoniser().fit(frame[dev])
    assert h.uncorrected(frame)[val].all()
    # measured: 0.718 vs 0.551 (seeds 12-17: differences 0.09-0.17)
    assert whole - honest > 0.08, (whole, honest)


# ------------------------------------------------------------------ diagnostics


def test_kruskal_batch_test_and_fdr():
    X, batch, _, _ = scanners(seed=13, p=6)
    X["flat"] = 1.0
    rng = np.random.default_rng(13)
    X["nobatch"] = rng.normal(size=len(X))
    res = kruskal_batch_test(X, batch)
    assert list(res.columns) == ["feature", "H", "p", "q_bh", "significant"]
    r = res.set_index("feature")
    assert r.loc[[f"f{j}" for j in range(6)], "significant"].all()
    assert not r.loc["nobatch", "significant"] and np.isnan(r.loc["flat", "p"])
    assert (r["q_bh"].dropna() >= r["p"].dropna().reindex(r["q_bh"].dropna().index)).all()
    Xh = cross_fitted_harmonisation(X.drop(columns=["flat"]), batch, seed=0)
    after = kruskal_batch_test(Xh, batch).set_index("feature")
    assert after["significant"].sum() < r["significant"].sum()


def test_pca_figure(tmp_path):
    X, batch, _, _ = scanners(seed=14, p=6)
    Xh = cross_fitted_harmonisation(X, batch, seed=0)
    out = pca_figure(X, Xh, batch, tmp_path / "pca.png")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_cv_risk_scores_are_held_out():
    X, batch, time, event = scanners(seed=15, p=6)
    y = surv_array(time, event)
    pipe = build_pipeline(["rad"], list(X.columns), None, [], "cox", {"n_screen": 3}, seed=0)
    scores = cv_risk_scores(pipe, {"model__alpha": [1.0]}, X, y, n_splits=3, n_repeats=2, inner_folds=2, seed=0)
    assert len(scores) == 2 and all(np.isfinite(s).all() for s in scores)
    assert not np.allclose(scores[0], scores[1])  # different splits, different held-out models


# ------------------------------------------------------------------ volume confounds


def test_volume_association_and_residualiser():
    rng = np.random.default_rng(16)
    n = 200
    vol = np.exp(rng.normal(3, 1, n))
    X = pd.DataFrame({"size_like": 2.0 * np.log(vol) + rng.normal(0, 0.3, n),
                      "texture": rng.normal(size=n), "mixed": np.log(vol) + rng.normal(size=n)})
    assoc = volume_association(X, vol)
    assert assoc["feature"].tolist()[0] == "size_like"
    a = assoc.set_index("feature")
    assert a.loc["size_like", "rho"] > 0.9 and a.loc["size_like", "significant"]
    assert not a.loc["texture", "significant"]
    Xin = X.assign(volume=vol)
    train = np.arange(n) < 150
    r = VolumeResidualiser().fit(Xin[train])
    out = r.transform(Xin[~train])
    assert list(out.columns) == list(X.columns)
    assert abs(r.slope_["size_like"] - 2.0) < 0.1 and abs(r.slope_["texture"]) < 0.3
    after = volume_association(out, vol[~train]).set_index("feature")
    assert abs(after.loc["size_like", "rho"]) < 0.3 and abs(after.loc["mixed", "rho"]) < 0.3
    # training coefficients, applied unchanged: residuals of a held-out patient do not depend on the others
    one = r.transform(Xin[~train].iloc[[0]])
    assert np.allclose(one.to_numpy(), out.iloc[[0]].to_numpy())
    with pytest.raises(ValueError, match="positive"):
        r.transform(Xin.assign(volume=0.0))


# ------------------------------------------------------------------ batch labels


def _provenance(root: Path, scan: str, patient: str, manufacturer: str, kernel: str, dz: float) -> None:
    d = root / scan / "converted"
    d.mkdir(parents=True)
    (d / "provenance.json").write_text(json.dumps({
        "scan_id": scan, "patient_id": patient, "modality": "CT", "manufacturer": manufacturer,
        "model": "Scanner X", "kernel": kernel, "spacing": [0.9, 0.9, dz]}))


def test_batch_labels_from_provenance_and_clinical(tmp_path):
    _provenance(tmp_path, "P1_s1", "P1", "SIEMENS", "B30f", 3.0)
    _provenance(tmp_path, "P1_s2", "P1", "GE", "STANDARD", 1.25)  # retest: not the modelling scan
    _provenance(tmp_path, "P2_s1", "P2", "GE", "STANDARD", 2.9999)
    _provenance(tmp_path, "P3_s1", "P3", "", "LUNG", 3.0)  # manufacturer not recorded
    facts = read_acquisition_facts(tmp_path)
    assert len(facts) == 4 and facts.set_index("scan_id").loc["P2_s1", "slice_spacing_mm"] == pytest.approx(2.9999)
    scans = pd.DataFrame({"scan_id": ["P1_s1", "P1_s2", "P2_s1", "P3_s1"], "patient_id": ["P1", "P1", "P2", "P3"],
                          "session": [1, 2, 1, 1]})
    per = patient_acquisition_facts(facts, scans)
    assert per.loc["P1", "scan_id"] == "P1_s1"
    clin = pd.DataFrame({"patient_id": ["P1", "P2", "P3"], "centre": ["Maastro", "Stanford", "Stanford"]})
    labels, qc = batch_labels(["P1", "P2", "P3"], clinical=clin, clinical_column="centre", facts=per,
                              fields=["manufacturer", "slice_spacing_mm"])
    assert labels["P1"] == "centre=Maastro | manufacturer=SIEMENS | slice_spacing_mm=3 mm"
    assert labels["P2"] == "centre=Stanford | manufacturer=GE | slice_spacing_mm=3 mm"
    assert labels["P3"] is None and len(qc) == 1 and "manufacturer" in qc[0]["reason"]
    assert qc[0]["patient_id"] == "P3" and qc[0]["stage"] == "harmonisation"
    only_centre, qc2 = batch_labels(["P1", "P2", "P3"], clinical=clin, clinical_column="centre")
    assert only_centre.tolist() == ["Maastro", "Stanford", "Stanford"] and not qc2
    counts = batch_counts(only_centre, min_batch_size=2, event=pd.Series([1, 0, 1], index=["P1", "P2", "P3"]))
    assert counts.to_dict("records") == [
        {"batch": "Stanford", "n_patients": 2, "n_events": 1, "estimable": True},
        {"batch": "Maastro", "n_patients": 1, "n_events": 1, "estimable": False}]
    small = batch_qc_rows(only_centre, min_batch_size=2)
    assert [r["patient_id"] for r in small] == ["P1"] and "Maastro" in small[0]["reason"]
    with pytest.raises(ValueError, match="unknown acquisition field"):
        batch_labels(["P1"], facts=per, fields=["thickness"])
