"""Federated learning (issue #20, library core): exact equality with the central fits on real data.

Must-shows: federated Cox stratified by site == lifelines ``CoxPHFitter(strata=site)`` (same
penaliser) within 1e-6 on Lung1 split into three sites and on owkin-nsclc split by
``SourceDataset``; federated C-index == the pooled within-site C-index; federated logistic
regression == scikit-learn within 1e-6 on a radMLBench table; every message a site sends holds
aggregates of at least k patients and no per-patient array.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lifelines import CoxPHFitter, KaplanMeierFitter
from sklearn.linear_model import LogisticRegression

from radsurv.federated import (
    LocalFederation,
    NoiseConfig,
    PrivacyError,
    Site,
    federated_cindex,
    federated_icc,
    federated_km,
    fit_cox,
    fit_logistic,
    leave_one_site_out,
)
from radsurv.federated.evaluation import federated_auc
from radsurv.federated.privacy import gaussian_sigma, noise_effect
from radsurv.modelling.metrics import harrell_c
from radsurv.robustness import icc as central_icc

#: lifelines stops on a Newton decrement below ``precision`` *before* applying the last step;
#: a tight precision makes it take that step, so both fits are at the optimum to ~1e-11.
LIFELINES_TIGHT = {"precision": 1e-14, "r_precision": 0.0, "max_steps": 500}

LUNG1_FEATURES = [
    "original_firstorder_Energy",  # the Aerts 2014 signature's features available in pyradiomics 2.2
    "original_glrlm_GrayLevelNonUniformity",
    "wavelet-HLH_glrlm_GrayLevelNonUniformity",
    "original_shape_MeshVolume",
    "original_shape_Sphericity",
    "original_shape_SurfaceVolumeRatio",
    "original_shape_Maximum3DDiameter",
    "original_shape_Elongation",
    "original_shape_Flatness",
    "original_firstorder_Entropy",
    "original_firstorder_Kurtosis",
    "original_firstorder_Skewness",
    "original_firstorder_Mean",
    "original_glcm_Contrast",
]

OWKIN_FEATURES = [
    "original_shape_VoxelVolume",
    "original_shape_Sphericity",
    "original_shape_SurfaceVolumeRatio",
    "original_shape_Maximum3DDiameter",
    "original_firstorder_Entropy",
    "original_firstorder_Kurtosis",
    "original_firstorder_Skewness",
    "original_firstorder_Mean",
    "original_firstorder_StandardDeviation",
    "original_glcm_Contrast",
]


def load_lung1(shared: Path) -> pd.DataFrame:
    """Lung1 features joined to OS (patients with a ``_000000_GTV-1_mask`` row), one row per patient."""
    feats = pd.read_csv(shared / "lung1" / "lung1_pyradiomics_features.csv", low_memory=False)
    feats = feats[feats["Patient"].str.endswith("_000000_GTV-1_mask")]
    feats.index = pd.Index(feats["Patient"].str[:9], name="PatientID")
    cl = pd.read_csv(shared / "lung1" / "lung1_clinical_v3.csv").set_index("PatientID")
    df = feats[LUNG1_FEATURES].astype(float).join(cl[["Survival.time", "deadstatus.event"]], how="inner")
    df = df.rename(columns={"Survival.time": "time", "deadstatus.event": "event"}).dropna().sort_index()
    df["site"] = [f"site{i % 3 + 1}" for i in range(len(df))]  # deterministic: sorted ids, round robin
    return df


def load_owkin(shared: Path) -> pd.DataFrame:
    """owkin-nsclc: 3 header rows (feature family, feature name, 'PatientID'); site = SourceDataset."""
    root = shared / "owkin-nsclc"
    rad = pd.read_csv(root / "train_radiomics.csv", skiprows=[0, 2], index_col=0)
    rad.index = rad.index.astype(int).rename("PatientID")
    out = pd.read_csv(root / "train_outcome.csv", index_col="PatientID")
    clin = pd.read_csv(root / "train_clinical.csv", index_col="PatientID")
    df = rad[OWKIN_FEATURES].astype(float).join(out).join(clin["SourceDataset"]).dropna()
    return df.rename(columns={"SurvivalTime": "time", "Event": "event", "SourceDataset": "site"}).sort_index()


def survival_federation(df: pd.DataFrame, features: list[str], min_patients: int = 5) -> LocalFederation:
    return LocalFederation([
        Site(name, part[features], time=part["time"], event=part["event"], min_patients=min_patients)
        for name, part in df.groupby("site", sort=True)
    ])


def lifelines_stratified(df: pd.DataFrame, features: list[str], penalizer: float) -> CoxPHFitter:
    return CoxPHFitter(penalizer=penalizer).fit(df[[*features, "time", "event", "site"]], "time", "event",
                                                strata=["site"], fit_options=LIFELINES_TIGHT)


def within_site_c(df: pd.DataFrame, risk: np.ndarray) -> float:
    """Harrell's C over pairs of patients of the same site, by explicit pair enumeration.

    Comparable: the earlier time is an event (equal times: the event vs a censored patient);
    concordant: the earlier one has the higher risk; equal risks count 1/2.
    """
    num = den = 0.0
    for _, idx in df.reset_index(drop=True).groupby(df["site"].to_numpy()).groups.items():
        t = df["time"].to_numpy()[idx]
        e = df["event"].to_numpy()[idx].astype(bool)
        r = np.asarray(risk)[idx]
        for i in range(len(t)):
            if not e[i]:
                continue
            comp = (t > t[i]) | ((t == t[i]) & ~e)
            num += np.sum(r[i] > r[comp]) + 0.5 * np.sum(r[i] == r[comp])
            den += comp.sum()
    return num / den


@pytest.fixture(scope="module")
def lung1(shared_data):
    return load_lung1(shared_data)


@pytest.fixture(scope="module")
def owkin(shared_data):
    return load_owkin(shared_data)


# --- must-show: Cox ---------------------------------------------------------------------------

@pytest.mark.parametrize("penalizer", [0.0, 0.01, 0.1])
def test_lung1_three_sites_federated_cox_equals_lifelines_stratified(lung1, penalizer):
    assert len(lung1) >= 140 and set(lung1["site"]) == {"site1", "site2", "site3"}
    fed = survival_federation(lung1, LUNG1_FEATURES)
    res = fit_cox(fed, LUNG1_FEATURES, penalizer)
    cph = lifelines_stratified(lung1, LUNG1_FEATURES, penalizer)
    np.testing.assert_allclose(res.coef, cph.params_[LUNG1_FEATURES].to_numpy(), rtol=0, atol=1e-6)
    # on the standardised scale too (the original units make some coefficients tiny, e.g. Energy)
    np.testing.assert_allclose(res.coef_std, cph.params_[LUNG1_FEATURES].to_numpy() * cph._norm_std[LUNG1_FEATURES],
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.se, cph.standard_errors_[LUNG1_FEATURES].to_numpy(), rtol=1e-6)
    assert res.converged and res.rounds < 30

    # federated C-index == pooled within-site C of the lifelines model
    risk = lung1[LUNG1_FEATURES].to_numpy() @ cph.params_[LUNG1_FEATURES].to_numpy()
    ci = federated_cindex(fed, res)
    assert ci.pooled == pytest.approx(within_site_c(lung1, risk), abs=1e-12)
    assert ci.pooled == pytest.approx(cph.concordance_index_, abs=1e-9)  # lifelines' C also pairs within strata
    for site, part in lung1.groupby("site"):
        r = part[LUNG1_FEATURES].to_numpy() @ cph.params_[LUNG1_FEATURES].to_numpy()
        assert ci.per_site[site] == pytest.approx(harrell_c(part["time"], part["event"], r), abs=1e-12)


@pytest.mark.parametrize("penalizer", [0.0, 0.1])
def test_owkin_sites_by_source_dataset_federated_cox_equals_lifelines(owkin, penalizer):
    assert set(owkin["site"]) == {"l1", "l2"} and len(owkin) == 300
    fed = survival_federation(owkin, OWKIN_FEATURES)
    res = fit_cox(fed, OWKIN_FEATURES, penalizer)
    cph = lifelines_stratified(owkin, OWKIN_FEATURES, penalizer)
    np.testing.assert_allclose(res.coef, cph.params_[OWKIN_FEATURES].to_numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.coef_std, cph.params_[OWKIN_FEATURES].to_numpy() * cph._norm_std[OWKIN_FEATURES],
                               rtol=0, atol=1e-6)
    risk = owkin[OWKIN_FEATURES].to_numpy() @ cph.params_[OWKIN_FEATURES].to_numpy()
    pooled = federated_cindex(fed, res).pooled
    assert pooled == pytest.approx(within_site_c(owkin, risk), abs=1e-12)
    assert pooled == pytest.approx(cph.concordance_index_, abs=1e-9)


def test_leave_one_site_out_equals_central_refits(lung1):
    fed = survival_federation(lung1, LUNG1_FEATURES)
    loso = leave_one_site_out(fed, LUNG1_FEATURES, penalizer=0.1)
    assert list(loso["site"]) == ["site1", "site2", "site3"]
    for _, row in loso.iterrows():
        train = lung1[lung1["site"] != row["site"]]
        test = lung1[lung1["site"] == row["site"]]
        cph = lifelines_stratified(train, LUNG1_FEATURES, 0.1)
        central = harrell_c(test["time"], test["event"], test[LUNG1_FEATURES].to_numpy() @ cph.params_.to_numpy())
        assert row["c_index"] == pytest.approx(central, abs=1e-9)


# --- must-show: logistic ------------------------------------------------------------------------

def load_radmlbench(shared: Path, name: str = "Hosny2018A", n_features: int = 12) -> tuple[pd.DataFrame, list[str]]:
    df = pd.read_csv(shared / "radmlbench" / f"{name}.csv.gz")
    feats = [c for c in df.columns if c not in ("ID", "Target")]
    feats = [c for c in feats if df[c].std() > 0][:n_features]
    df = df.sort_values("ID").reset_index(drop=True)
    df["site"] = [f"site{i % 3 + 1}" for i in range(len(df))]
    return df, feats


@pytest.mark.parametrize("C", [0.1, 1.0, 100.0])
def test_radmlbench_federated_logistic_equals_sklearn(shared_data, C):
    df, feats = load_radmlbench(shared_data)
    fed = LocalFederation([Site(n, p[feats], label=p["Target"]) for n, p in df.groupby("site")])
    res = fit_logistic(fed, feats, C=C)
    z = res.moments.transform(df[feats].to_numpy())
    np.testing.assert_allclose(res.moments.sd, df[feats].std(ddof=1).to_numpy(), rtol=1e-12)
    sk = LogisticRegression(C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000).fit(z, df["Target"])
    np.testing.assert_allclose(res.coef_std, sk.coef_[0], rtol=0, atol=1e-6)
    assert res.intercept_std == pytest.approx(sk.intercept_[0], abs=1e-6)
    # original-unit coefficients give the same linear predictor
    np.testing.assert_allclose(df[feats].to_numpy() @ res.coef + res.intercept, sk.decision_function(z), atol=1e-6)
    # AUC from site counts == scikit-learn's AUC within each site
    from sklearn.metrics import roc_auc_score
    auc = federated_auc(fed, res)
    for site, part in df.groupby("site"):
        score = sk.decision_function(res.moments.transform(part[feats].to_numpy()))
        assert auc.per_site[site] == pytest.approx(roc_auc_score(part["Target"], score), abs=1e-12)


# --- ICC, KM, standardisation -------------------------------------------------------------------

@pytest.mark.parametrize("form", ["ICC(1,1)", "ICC(2,1)", "ICC(3,1)", "ICC(1,k)", "ICC(2,k)", "ICC(3,k)"])
def test_federated_icc_equals_central_icc_on_pooled_subjects(form):
    rng = np.random.default_rng(7)
    n_feat, k = 6, 3
    parts = []
    for n, shift in [(12, 0.0), (20, 5.0), (9, -3.0)]:  # sites differ in size and level
        subj = rng.normal(shift, 2.0, size=(n_feat, n, 1))
        parts.append(subj + rng.normal(0, 1.0, size=(n_feat, n, k)) + np.arange(k) * 0.3)
    parts[0][0] = 1.0  # feature 0 constant at site 1 only: still fine pooled
    fed = LocalFederation([Site(f"s{i}", icc_data=p) for i, p in enumerate(parts)])
    fedres = federated_icc(fed, form)
    central = central_icc.icc(np.concatenate(parts, axis=1), form)
    for attr in ("icc", "ci_low", "ci_high", "f_value", "p_value"):
        np.testing.assert_allclose(getattr(fedres, attr), getattr(central, attr), rtol=1e-10, atol=1e-12)
    assert fedres.n_subjects == 41 and fedres.k == k
    np.testing.assert_array_equal(central_icc.robust_mask(fedres), central_icc.robust_mask(central))


@pytest.mark.parametrize("form", ["ICC(1,1)", "ICC(2,1)", "ICC(3,1)"])
def test_federated_icc_within_sites_equals_central_icc_nested_in_sites(form):
    """Sites whose scanners read 5 and -3 units apart: within sites the federated ICC equals the
    central ICC with subjects nested in their site, and is lower than the pooled (crossed) one."""
    rng = np.random.default_rng(8)
    n_feat, k = 6, 2
    parts = []
    for n, shift in [(12, 0.0), (20, 5.0), (9, -3.0)]:
        subj = rng.normal(shift, 1.0, size=(n_feat, n, 1))
        parts.append(subj + rng.normal(0, 1.0, size=(n_feat, n, k)))
    fed = LocalFederation([Site(f"s{i}", icc_data=p) for i, p in enumerate(parts)])
    fedres = federated_icc(fed, form, within_sites=True)
    sites = np.repeat(["s0", "s1", "s2"], [12, 20, 9])
    central = central_icc.icc(np.concatenate(parts, axis=1), form, groups=sites)
    for attr in ("icc", "ci_low", "ci_high", "f_value", "df1", "p_value"):
        np.testing.assert_allclose(getattr(fedres, attr), getattr(central, attr), rtol=1e-10, atol=1e-12)
    assert np.all(fedres.df1 == 41 - 3)
    assert np.all(fedres.icc < federated_icc(fed, form).icc)


def test_federated_km_equals_kaplan_meier_when_censoring_falls_on_bin_ends():
    rng = np.random.default_rng(3)
    grid = np.arange(0, 31, 6.0)
    frames = []
    for s in range(3):
        n = 300
        x = rng.normal(size=(n, 2))
        t = np.ceil(rng.exponential(20 * np.exp(-0.7 * x[:, 0]))).clip(1, 30)
        e = np.ones(n, dtype=int)
        cens = rng.random(n) < 0.3  # censored patients leave exactly at a bin end
        t[cens] = grid[np.searchsorted(grid, t[cens])]
        e[cens] = 0
        frames.append(pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "time": t, "event": e, "site": f"s{s}"}))
    df = pd.concat(frames, ignore_index=True)
    fed = survival_federation(df, ["a", "b"])
    model = fit_cox(fed, ["a", "b"], 0.0)
    km = federated_km(fed, model, cutoffs=[0.0], grid=grid, labels=["low", "high"])
    assert km.bins_requested == 5 and len(km.survival) == 5
    risk = model.moments.transform(df[["a", "b"]].to_numpy()) @ model.coef_std
    for label, mask in (("low", risk <= 0), ("high", risk > 0)):
        kmf = KaplanMeierFitter().fit(df["time"][mask], df["event"][mask])
        expected = kmf.survival_function_at_times(km.survival.index).to_numpy()
        np.testing.assert_allclose(km.survival[label].to_numpy(), expected, atol=1e-12)
    assert (km.survival["high"].iloc[-1] < km.survival["low"].iloc[-1])


def test_km_bins_are_merged_until_every_cell_holds_k_patients(lung1):
    fed = survival_federation(lung1, LUNG1_FEATURES)
    model = fit_cox(fed, LUNG1_FEATURES, 0.1)
    requested = np.arange(0, 4001, 30.0)
    km = federated_km(fed, model, cutoffs=[0.0], grid=requested)
    assert km.bins_requested == 133 and len(km.survival) < 133
    assert set(km.grid) <= set(requested) | {0.0}
    for name in fed.site_names:
        last = fed.site(name).sent[-1]
        assert last["kind"] == "km"
        for key in ("at_risk", "events"):
            a = np.asarray(last[key])
            assert np.all((a == 0) | (a >= 5)), (name, key)
    s = km.survival.to_numpy()
    assert np.all(np.diff(s, axis=0) <= 1e-15) and np.all((s >= 0) & (s <= 1))
    # with k = 2 the same sites accept a finer grid (more boundaries survive)
    fed2 = survival_federation(lung1, LUNG1_FEATURES, min_patients=2)
    assert len(federated_km(fed2, model, cutoffs=[0.0], grid=requested).grid) > len(km.grid)


# --- must-show: privacy -------------------------------------------------------------------------

def _shapes_without_patient_dimension(message: dict, forbidden: set[int]) -> list[str]:
    bad = []
    for key, value in message.items():
        if isinstance(value, str):
            assert key in ("kind", "site"), f"text field {key!r} left a site"
            continue
        arr = np.asarray(value)
        if any(dim in forbidden for dim in arr.shape):
            bad.append(f"{message.get('kind')}:{key}{arr.shape}")
    return bad


def test_every_message_a_site_sends_is_an_aggregate_of_at_least_k_patients(lung1, shared_data):
    k = 5
    fed = survival_federation(lung1, LUNG1_FEATURES, min_patients=k)
    model = fit_cox(fed, LUNG1_FEATURES, 0.1)
    federated_cindex(fed, model)
    federated_km(fed, model, cutoffs=[0.0], grid=np.arange(0, 4001, 30.0))
    leave_one_site_out(fed, LUNG1_FEATURES, 0.1)
    df, feats = load_radmlbench(shared_data)
    lfed = LocalFederation([Site(n, p[feats], label=p["Target"], min_patients=k) for n, p in df.groupby("site")])
    fit_logistic(lfed, feats, C=1.0)
    ifed = LocalFederation([Site(f"s{i}", icc_data=np.random.default_rng(i).normal(size=(4, 10 + i, 2)))
                            for i in range(3)])
    federated_icc(ifed)

    kinds = set()
    for f, data_sizes in ((fed, lung1.groupby("site").size()), (lfed, df.groupby("site").size()),
                          (ifed, pd.Series({f"s{i}": 10 + i for i in range(3)}))):
        # any dimension equal to the number of patients of any site would be a per-patient array
        forbidden = set(int(n) for n in data_sizes) | {len(lung1), len(df)}
        for name in f.site_names:
            sent = f.site(name).sent
            assert sent, f"site {name} sent nothing"
            for msg in sent:
                kinds.add(msg["kind"])
                assert not _shapes_without_patient_dimension(msg, forbidden)
                for key in ("n", "n_events", "n_positive"):
                    if key in msg:
                        assert msg[key] >= k
                for key in ("at_risk", "events"):
                    if key in msg:
                        a = np.asarray(msg[key])
                        assert np.all((a == 0) | (a >= k)), f"{name} {key}: a cell of 1..{k - 1} patients"
                if "concordant" in msg:  # pair counts of a site with at least k events
                    assert msg["n"] >= k
    assert kinds == {"moments", "cox", "concordance", "km_grid", "km", "logistic", "icc_sums", "icc_squares"}


def test_site_refuses_requests_that_reveal_fewer_than_k_patients(lung1):
    small = lung1.iloc[:4]
    site = Site("tiny", small[LUNG1_FEATURES], time=small["time"], event=small["event"], min_patients=5)
    with pytest.raises(PrivacyError, match="4 patient"):
        site.handle({"kind": "moments", "features": LUNG1_FEATURES})
    few_events = lung1.iloc[:30].copy()
    few_events["event"] = 0
    few_events.iloc[:3, few_events.columns.get_loc("event")] = 1
    site = Site("few", few_events[LUNG1_FEATURES], time=few_events["time"], event=few_events["event"])
    d = len(LUNG1_FEATURES)
    with pytest.raises(PrivacyError, match="events"):
        site.handle({"kind": "cox", "features": LUNG1_FEATURES, "beta": np.zeros(d), "mean": np.zeros(d),
                     "sd": np.ones(d)})
    assert site.sent == []  # nothing left the site
    # the guard itself: a per-patient array or an identifier never leaves
    with pytest.raises(PrivacyError, match="per-patient"):
        site.guard.release({"kind": "cox", "risk": np.zeros(30)})
    with pytest.raises(PrivacyError, match="identifiers"):
        site.guard.release({"kind": "cox", "patient": "LUNG1-001"})
    # a time binning with a cell of 1..k-1 patients is refused
    full = survival_federation(lung1, LUNG1_FEATURES)
    model = fit_cox(full, LUNG1_FEATURES, 0.1)
    with pytest.raises(PrivacyError, match="wider bins"):
        full.site("site1").handle({"kind": "km", "features": LUNG1_FEATURES, **model.linear_predictor_payload(),
                                   "cutoffs": np.array([0.0]), "grid": np.arange(0, 4001, 10.0)})


def test_differential_privacy_noise_effect_on_coefficients_is_reported(lung1):
    feats = LUNG1_FEATURES[:4]

    def fit(noise):
        fed = LocalFederation([Site(n, p[feats], time=p["time"], event=p["event"], noise=noise)
                               for n, p in lung1.groupby("site")])
        return fit_cox(fed, feats, 0.1, max_rounds=8, strict=noise is None).coef_std

    small = noise_effect(fit, NoiseConfig(sigma=0.01, seed=1), repeats=3)
    large = noise_effect(fit, NoiseConfig(sigma=0.5, seed=1), repeats=3)
    assert 0 < small["mean_abs_change"] < large["mean_abs_change"]
    assert small["mean_relative_l2_change"] < 0.05
    assert noise_effect(fit, NoiseConfig(sigma=0.0), repeats=1)["max_abs_change"] == 0.0
    assert gaussian_sigma(0.5, 1e-5, 1.0) == pytest.approx(np.sqrt(2 * np.log(1.25e5)) / 0.5)
