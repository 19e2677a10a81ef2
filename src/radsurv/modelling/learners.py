"""Survival estimators, their pipelines, hyperparameter grids and the tuned fit.

:func:`build_pipeline` joins the feature branches of :mod:`radsurv.modelling.transformers`
(radiomics ``rad``, volume ``vol``, clinical ``clin``) by a
:class:`sklearn.compose.ColumnTransformer` and feeds the survival estimator
(scikit-survival): penalised Cox (``CoxPHSurvivalAnalysis``, ridge), LASSO/elastic-net
Cox (``CoxnetSurvivalAnalysis``), random survival forest or gradient-boosted Cox.
Hyperparameters (:func:`param_grid`) are tuned by
:class:`sklearn.model_selection.GridSearchCV` on folds of the training set only
(:func:`tuned_fit`).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis

from radsurv.modelling.clinical_encoder import ClinicalEncoder
from radsurv.modelling.config import LEARNERS
from radsurv.modelling.transformers import (
    STEP_SECONDS,
    CorrelationReducer,
    LogTransform,
    QualityFilter,
    Standardiser,
    UnivariateCoxSelector,
)

__all__ = ["make_estimator", "build_pipeline", "param_grid", "inner_splits", "tuned_fit", "selected_features",
           "linear_terms"]


def make_estimator(learner: str, seed: int, n_jobs: int, settings: Mapping[str, Any]) -> BaseEstimator:
    """The unfitted survival estimator of ``learner`` (its tuned hyperparameters are set by the grid)."""
    if learner == "cox":
        return CoxPHSurvivalAnalysis(alpha=1.0, ties="breslow", n_iter=200)
    if learner == "coxnet":
        return CoxnetSurvivalAnalysis(l1_ratio=float(settings.get("l1_ratio", 1.0)), alphas=[0.1],
                                      fit_baseline_model=True, max_iter=100000)
    if learner == "rsf":
        return RandomSurvivalForest(n_estimators=int(settings.get("rsf_trees", 300)), min_samples_leaf=10,
                                    max_features="sqrt", random_state=seed, n_jobs=n_jobs, low_memory=False)
    if learner == "gbsa":
        return GradientBoostingSurvivalAnalysis(loss="coxph", n_estimators=int(settings.get("gbsa_trees", 100)),
                                                learning_rate=0.1, max_depth=2, subsample=0.8, random_state=seed)
    raise ValueError(f"unknown learner {learner!r}; choose one of {LEARNERS}")


def _radiomics_branch(radiomic_features: Sequence[str], volume_feature: str | None, settings: Mapping[str, Any],
                      memory: Any) -> tuple[Pipeline, list[str]]:
    """The radiomics block and its columns. With ``settings["volume_adjust"]`` every feature is
    replaced by its residual on log tumour volume (:class:`radsurv.harmonisation.confounds.VolumeResidualiser`,
    fit on the training patients of each fit, after the quality filter): the volume column joins the
    block's columns, is read by that step and dropped, and is no radiomics candidate itself."""
    from radsurv.harmonisation.confounds import VolumeResidualiser

    steps: list[tuple[str, Any]] = [("filter", QualityFilter())]
    cols = list(radiomic_features)
    if settings.get("volume_adjust", False):
        if not volume_feature:
            raise ValueError("volume adjustment (modelling.volume_adjust) needs the volume feature")
        steps.append(("adjust", VolumeResidualiser(volume_column=volume_feature)))
        cols = [volume_feature, *(c for c in cols if c != volume_feature)]
    steps += [
        ("scale", Standardiser()),
        ("reduce", CorrelationReducer(float(settings.get("corr_threshold", 0.9)))),
        ("select", UnivariateCoxSelector(int(settings.get("n_screen", 20)))),
    ]
    return Pipeline(steps, memory=memory), cols


def build_pipeline(
    blocks: Sequence[str],
    radiomic_features: Sequence[str],
    volume_feature: str | None,
    covariate_specs: Sequence[Mapping[str, Any]],
    learner: str,
    settings: Mapping[str, Any],
    seed: int,
    n_jobs: int = 1,
    memory: Any = None,
) -> Pipeline:
    """A pipeline ``features`` (ColumnTransformer of the blocks) -> ``model``.

    Args:
        blocks: any of ``"rad"``, ``"vol"``, ``"clin"``.
        radiomic_features: candidate columns of the radiomics block.
        volume_feature: column of the volume block.
        covariate_specs: :class:`radsurv.ingest.clinical.CovariateSpec` dicts of the clinical block.
        learner: ``cox``, ``coxnet``, ``rsf`` or ``gbsa``.
        settings: the modelling config (``corr_threshold``, ``n_screen`` ...).
        memory: joblib ``Memory`` (or path) caching the radiomics steps before the screen.
    """
    parts = []
    if "rad" in blocks:
        parts.append(("rad", *_radiomics_branch(radiomic_features, volume_feature, settings, memory)))
    if "vol" in blocks:
        if not volume_feature:
            raise ValueError("the volume block needs a volume feature")
        parts.append(("vol", Pipeline([("log", LogTransform()), ("scale", Standardiser())]), [volume_feature]))
    if "clin" in blocks:
        if not covariate_specs:
            raise ValueError("the clinical block needs modelling.clinical_covariates")
        parts.append(("clin", ClinicalEncoder(list(covariate_specs)), [s["name"] for s in covariate_specs]))
    if not parts:
        raise ValueError("a model needs at least one block of features")
    ct = ColumnTransformer(parts, remainder="drop", verbose_feature_names_out=False)
    ct.set_output(transform="pandas")
    return Pipeline([("features", ct), ("model", make_estimator(learner, seed, n_jobs, settings))])


def param_grid(blocks: Sequence[str], learner: str, settings: Mapping[str, Any]) -> dict[str, list[Any]]:
    """The hyperparameter grid searched in the inner loop (from the config)."""
    grid: dict[str, list[Any]] = {}
    if learner == "cox":
        if "rad" in blocks:
            grid["features__rad__select__k"] = [int(k) for k in settings.get("max_features", [2, 4, 8])]
        grid["model__alpha"] = [float(a) for a in settings.get("penalizer", [1.0, 10.0])]
    elif learner == "coxnet":
        grid["model__alphas"] = [[float(a)] for a in settings.get("coxnet_alphas", [0.05, 0.1, 0.2])]
    elif learner == "rsf":
        grid["model__min_samples_leaf"] = [int(v) for v in settings.get("rsf_min_leaf", [5, 15])]
    elif learner == "gbsa":
        grid["model__learning_rate"] = [float(v) for v in settings.get("gbsa_learning_rate", [0.05, 0.1])]
    return grid


def inner_splits(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified (by event) K-fold splits of a training set; ``n_folds`` is reduced
    when there are too few patients in an event class."""
    ev = y["event"].astype(int)
    k = int(min(n_folds, np.bincount(ev, minlength=2).min(), len(y)))
    if k < 2:
        raise ValueError(f"too few events/censorings ({np.bincount(ev, minlength=2).tolist()}) for inner CV")
    skf = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(skf.split(np.zeros(len(y)), ev))


def tuned_fit(pipe: Pipeline, grid: Mapping[str, list[Any]], X: pd.DataFrame, y: np.ndarray,
              inner_folds: int, seed: int) -> tuple[Pipeline, dict[str, Any], float]:
    """Tune ``grid`` by inner stratified K-fold CV on ``(X, y)`` only (Harrell's C, the
    estimators' ``score``), then refit the best setting on all of ``(X, y)``.

    A single-point grid skips the inner loop. Returns ``(fitted pipeline, best
    params, mean inner C or nan)``.
    """
    t0 = time.perf_counter()
    try:
        return _tuned_fit(pipe, grid, X, y, inner_folds, seed)
    finally:
        STEP_SECONDS["tuned_fit_total"] += time.perf_counter() - t0


def _tuned_fit(pipe: Pipeline, grid: Mapping[str, list[Any]], X: pd.DataFrame, y: np.ndarray,
               inner_folds: int, seed: int) -> tuple[Pipeline, dict[str, Any], float]:
    n_cand = int(np.prod([len(v) for v in grid.values()])) if grid else 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter of Cox fits on noise
        if n_cand <= 1:
            est = clone(pipe).set_params(**{k: v[0] for k, v in grid.items()})
            est.fit(X, y)
            return est, {k: v[0] for k, v in grid.items()}, float("nan")
        gs = GridSearchCV(clone(pipe), dict(grid), cv=inner_splits(y, inner_folds, seed), refit=True,
                          n_jobs=1, error_score=np.nan)
        gs.fit(X, y)
    return gs.best_estimator_, dict(gs.best_params_), float(gs.best_score_)


def selected_features(pipe: Pipeline) -> list[str]:
    """Model input columns of a fitted pipeline (after every selection step)."""
    return [str(c) for c in pipe.named_steps["features"].get_feature_names_out()]


def linear_terms(pipe: Pipeline) -> pd.DataFrame | None:
    """Coefficients per (standardised) model input of a fitted Cox/Coxnet pipeline,
    with the training mean and SD each input was standardised with; ``None`` for
    forests/boosting."""
    model = pipe.named_steps["model"]
    if not isinstance(model, (CoxPHSurvivalAnalysis, CoxnetSurvivalAnalysis)):
        return None
    coef = np.asarray(model.coef_, float)
    if coef.ndim == 2:
        coef = coef[:, -1]
    names = selected_features(pipe)
    ct = pipe.named_steps["features"]
    mean, sd, transform = {}, {}, {}
    for name, tr, _cols in ct.transformers_:
        if name == "rad":
            sc = tr.named_steps["scale"]
            for f in tr.named_steps["select"].features_out_:
                mean[f], sd[f], transform[f] = float(sc.mean_[f]), float(sc.sd_[f]), "z"
        elif name == "vol":
            sc = tr.named_steps["scale"]
            for f in sc.features_out_:
                mean[f], sd[f], transform[f] = float(sc.mean_[f]), float(sc.sd_[f]), "z(log)"
        elif name == "clin":
            for i, f in enumerate(tr.feature_names_out_):
                mean[f], sd[f], transform[f] = float(tr.mean_[i]), float(tr.scale_[i]), "z(coded)"
    return pd.DataFrame({
        "feature": names, "coef": coef, "hr_per_sd": np.exp(coef),
        "train_mean": [mean.get(n, np.nan) for n in names], "train_sd": [sd.get(n, np.nan) for n in names],
        "transform": [transform.get(n, "") for n in names],
    })
