"""Real two-centre data: ../shared/data/owkin-nsclc (300 NSCLC patients, Lung1 and
NSCLC-Radiogenomics as ``SourceDataset`` l1 / l2, 53 original pyradiomics features).

Site-prediction AUC from the features before and after in-fold ComBat, the per-feature
batch test, the PCA figure, and the survival Harrell C of a penalised Cox radiomics
model (radsurv.modelling.transformers, nested CV) without and with ComBat inside the folds, next to
tumour volume alone. The numbers are written to
``test-artifacts/harmonisation/owkin_nsclc.json`` (and the PCA figure beside it).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from radsurv.harmonisation.combat import ComBatHarmoniser, with_harmonisation
from radsurv.harmonisation.confounds import volume_association
from radsurv.harmonisation.diagnostics import (
    compare_survival_models,
    cross_fitted_harmonisation,
    cv_risk_scores,
    kruskal_batch_test,
    pca_figure,
    site_prediction_auc,
)
from radsurv.modelling.learners import build_pipeline, param_grid
from radsurv.modelling.metrics import harrell_c, surv_array

REPO = Path(__file__).resolve().parents[1]
ART = REPO / "test-artifacts" / "harmonisation"
VOLUME = "original_shape_VoxelVolume"
SETTINGS = {"n_screen": 20, "corr_threshold": 0.9, "max_features": [2, 4, 8], "penalizer": [1.0, 10.0]}
SEED = 19


def load_owkin(root: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Features (3 header rows: feature class, feature name, then a row naming the id
    column) and clinical + outcome, both indexed by PatientID."""
    path = root / "train_radiomics.csv"
    head = pd.read_csv(path, header=None, nrows=3, dtype=str, keep_default_na=False)
    assert head.iloc[2, 0] == "PatientID" and head.iloc[1, 0] == ""
    names = ["PatientID", *head.iloc[1, 1:].tolist()]
    feats = pd.read_csv(path, header=None, skiprows=3, names=names).set_index("PatientID")
    clin = pd.read_csv(root / "train_clinical.csv").set_index("PatientID")
    out = pd.read_csv(root / "train_outcome.csv").set_index("PatientID")
    clin = clin.join(out, how="inner")
    ids = feats.index.intersection(clin.index).sort_values()
    return feats.loc[ids].astype(float), clin.loc[ids]


@pytest.fixture(scope="module")
def owkin(shared_data):
    root = shared_data / "owkin-nsclc"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return load_owkin(root)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _save(name: str, payload: dict) -> None:
    ART.mkdir(parents=True, exist_ok=True)
    path = ART / "owkin_nsclc.json"
    doc = json.loads(path.read_text()) if path.is_file() else {}
    doc[name] = payload
    path.write_text(json.dumps(doc, indent=2, sort_keys=True, default=float))


def test_owkin_table_is_read_as_documented(owkin):
    X, clin = owkin
    assert X.shape == (300, 53)
    assert all(c.startswith("original_") for c in X.columns) and VOLUME in X.columns
    assert clin["SourceDataset"].value_counts().to_dict() == {"l1": 199, "l2": 101}
    assert np.isfinite(X.to_numpy()).all()
    assert set(clin["Event"].unique()) <= {0, 1} and (clin["SurvivalTime"] > 0).all()


def test_owkin_site_prediction_before_and_after_in_fold_combat(owkin, tmp_path):
    X, clin = owkin
    batch = clin["SourceDataset"]
    before = site_prediction_auc(X, batch, harmonise=False, n_splits=5, n_repeats=5, n_boot=1000, seed=SEED)
    after = site_prediction_auc(X, batch, harmonise=True, n_splits=5, n_repeats=5, n_boot=1000, seed=SEED)
    print("\nowkin-nsclc", before, "\nowkin-nsclc", after)
    kw_before = kruskal_batch_test(X, batch)
    Xh = cross_fitted_harmonisation(X, batch, n_splits=5, seed=SEED)
    kw_after = kruskal_batch_test(Xh, batch)
    fig = pca_figure(X, Xh, batch, ART / "owkin_nsclc_pca.png", title="owkin-nsclc: 53 original features by centre")
    vol = volume_association(X.drop(columns=[VOLUME]), X[VOLUME])
    _save("site_prediction", {
        "before": before.as_dict(), "after": after.as_dict(),
        "kruskal_significant_before": int(kw_before["significant"].sum()),
        "kruskal_significant_after": int(kw_after["significant"].sum()),
        "n_features": int(X.shape[1]), "pca_figure": str(fig.relative_to(REPO)),
        "volume_association_abs_rho_gt_0.5": int((vol["abs_rho"] > 0.5).sum()),
    })
    print(f"owkin-nsclc Kruskal-Wallis batch differences (BH q < 0.05): {int(kw_before['significant'].sum())}/53 "
          f"before, {int(kw_after['significant'].sum())}/53 after (cross-fitted); "
          f"|Spearman rho| with log volume > 0.5: {int((vol['abs_rho'] > 0.5).sum())}/52 features")
    # the two sources are told apart from the raw features ...
    assert before.ci_low > 0.75
    # ... far less after in-fold ComBat: the CIs do not overlap
    assert after.ci_high < before.ci_low
    assert kw_after["significant"].sum() < kw_before["significant"].sum()


def test_owkin_survival_c_before_and_after_in_fold_combat(owkin):
    X, clin = owkin
    y = surv_array(clin["SurvivalTime"].to_numpy(float), clin["Event"].to_numpy(int))
    feats = [c for c in X.columns if c != VOLUME]
    Xin = X.assign(batch=clin["SourceDataset"].to_numpy())
    rad = build_pipeline(["rad"], feats, None, [], "cox", SETTINGS, seed=SEED)
    rad_combat = with_harmonisation(rad, ComBatHarmoniser(batch_column="batch", unseen_batch="refuse"))
    shape = [c for c in feats if "_shape_" in c]
    rad_combat_shape_kept = with_harmonisation(rad, ComBatHarmoniser(batch_column="batch", unseen_batch="refuse",
                                                                     skip_features=shape))
    vol = build_pipeline(["vol"], [], VOLUME, [], "cox", SETTINGS, seed=SEED)
    grid = param_grid(["rad"], "cox", SETTINGS)
    cv = dict(n_splits=5, n_repeats=3, inner_folds=3, seed=SEED)
    scores = {
        "radiomics": cv_risk_scores(rad, grid, Xin, y, **cv),
        "radiomics_combat_in_fold": cv_risk_scores(rad_combat, grid, Xin, y, **cv),
        "radiomics_combat_in_fold_shape_unharmonised": cv_risk_scores(rad_combat_shape_kept, grid, Xin, y, **cv),
        "volume": cv_risk_scores(vol, param_grid(["vol"], "cox", SETTINGS), Xin, y, **cv),
    }
    perf = compare_survival_models(scores, y, n_boot=1000, seed=SEED, reference="radiomics")
    tab = perf[perf["metric"].isin(["harrell_c", "delta_harrell_c_vs_radiomics"])]
    # context: the centre itself predicts survival (l2, NSCLC-Radiogenomics: smaller tumours, longer survival),
    # so ComBat, which removes every mean difference between centres, also removes case-mix signal
    centre_c = harrell_c(clin["SurvivalTime"].to_numpy(float), clin["Event"].to_numpy(int),
                         (clin["SourceDataset"] == "l1").to_numpy(float))
    print("\nowkin-nsclc survival (5-fold CV x 3 repeats, inner 3-fold tuning; paired bootstrap 95% CI):")
    print(tab.to_string(index=False))
    print(f"Harrell C of the centre alone (l1 = higher risk): {centre_c:.3f}")
    _save("survival_c", {"design": "repeated stratified 5-fold CV x 3, hyperparameters by inner 3-fold CV; "
                                   "Harrell C pooled per repeat, mean over repeats; 95% CI: paired percentile "
                                   "bootstrap over patients (1000)",
                         "table": tab.to_dict("records"), "centre_alone_harrell_c": centre_c})
    c = tab.set_index(["model", "metric"])["estimate"]
    lo = tab.set_index(["model", "metric"])["ci_low"]
    hi = tab.set_index(["model", "metric"])["ci_high"]
    for m in scores:
        assert lo[(m, "harrell_c")] < c[(m, "harrell_c")] < hi[(m, "harrell_c")]
    # radiomics predicts survival better than chance with and without harmonisation
    assert lo[("radiomics", "harrell_c")] > 0.5 and lo[("radiomics_combat_in_fold", "harrell_c")] > 0.5
    d = ("radiomics_combat_in_fold", "delta_harrell_c_vs_radiomics")
    assert lo[d] <= c[d] <= hi[d]
    # leaving the scanner-independent shape features out of ComBat keeps more of the signal
    shape_out = c[("radiomics_combat_in_fold_shape_unharmonised", "harrell_c")]
    assert shape_out > c[("radiomics_combat_in_fold", "harrell_c")]
    assert centre_c > 0.55
