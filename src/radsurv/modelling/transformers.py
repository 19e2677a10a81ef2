"""scikit-learn / scikit-survival pipelines of the survival models.

Every data-dependent step is a scikit-learn transformer, so it is fit inside
whatever training set the pipeline is fit on (an inner CV fold, an outer CV
fold, the development cohort) and applied unchanged to other patients:

radiomics branch (``rad``)
    :class:`QualityFilter` (drop features with a missing/non-finite value or zero
    variance in training) -> :class:`Standardiser` (training mean/SD, ddof=1) ->
    :class:`CorrelationReducer` (average-linkage clusters of ``1 - |Spearman rho|``
    cut at ``1 - corr_threshold``; the member with the largest univariate Cox
    ``|z|`` represents each cluster) -> :class:`UnivariateCoxSelector` (top ``k``
    by the Cox score test ``|z|``).
volume branch (``vol``)
    log(volume) -> :class:`Standardiser`.
clinical branch (``clin``)
    :class:`radsurv.modelling.clinical_encoder.ClinicalEncoder` (imputation, ordinal/one-hot coding,
    standardisation, all learnt in training).

The branches are joined by a :class:`sklearn.compose.ColumnTransformer` and feed
the survival estimator (scikit-survival): penalised Cox
(``CoxPHSurvivalAnalysis``, ridge), LASSO/elastic-net Cox (``CoxnetSurvivalAnalysis``),
random survival forest or gradient-boosted Cox. Hyperparameters are tuned by
:class:`sklearn.model_selection.GridSearchCV` on folds of the training set only
(:func:`tuned_fit`); the clustering of a given training set is memoised (it does
not depend on the hyperparameters), so each inner fold computes it once.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin, clone
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sksurv.ensemble import GradientBoostingSurvivalAnalysis, RandomSurvivalForest
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis

from radsurv.modelling.clinical_encoder import ClinicalEncoder
from radsurv.modelling.config import LEARNERS
from radsurv.modelling.legacy import _cluster, _spearman_abs, univariate_cox_score

__all__ = [
    "QualityFilter",
    "Standardiser",
    "CorrelationReducer",
    "UnivariateCoxSelector",
    "LogTransform",
    "build_pipeline",
    "param_grid",
    "tuned_fit",
    "selected_features",
    "linear_terms",
]


#: Seconds spent per pipeline step since the last :func:`reset_step_times` (for the
#: benchmark's time split; the model fit is ``tuned_fit`` minus the transformer steps).
STEP_SECONDS: Counter[str] = Counter()


def reset_step_times() -> None:
    STEP_SECONDS.clear()


@contextmanager
def _timed(step: str) -> Iterator[None]:
    t0 = time.perf_counter()
    try:
        yield
    finally:
        STEP_SECONDS[step] += time.perf_counter() - t0


def _frame(X: Any) -> pd.DataFrame:
    if isinstance(X, pd.DataFrame):
        return X
    return pd.DataFrame(np.asarray(X, dtype=float))


class _NamesMixin:
    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.features_out_, dtype=object)


class QualityFilter(_NamesMixin, TransformerMixin, BaseEstimator):
    """Keep features that are finite for every training patient and not constant."""

    def _fit(self, X: pd.DataFrame, y: Any = None) -> QualityFilter:
        X = _frame(X)
        try:
            X = X.astype(float)
        except (TypeError, ValueError):
            X = X.apply(pd.to_numeric, errors="coerce").astype(float)
        arr = X.to_numpy()
        finite = np.isfinite(arr).all(axis=0)
        sd = np.nanstd(np.where(np.isfinite(arr), arr, np.nan), axis=0, ddof=1) if len(X) > 1 else np.zeros(X.shape[1])
        ok = finite & (np.nan_to_num(sd) > 0)
        self.features_in_ = list(X.columns)
        self.dropped_missing_ = [c for c, f in zip(X.columns, finite, strict=True) if not f]
        self.dropped_constant_ = [c for c, f, o in zip(X.columns, finite, ok, strict=True) if f and not o]
        self.features_out_ = [c for c, o in zip(X.columns, ok, strict=True) if o]
        if not self.features_out_:
            raise ValueError("no feature is complete and non-constant in the training patients")
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> QualityFilter:
        with _timed("filter"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _frame(X)[self.features_out_]
        try:
            return pd.DataFrame(X.to_numpy(dtype=float), index=X.index, columns=self.features_out_)
        except (TypeError, ValueError):
            return X.apply(pd.to_numeric, errors="coerce").astype(float)


class Standardiser(_NamesMixin, TransformerMixin, BaseEstimator):
    """Z-scores with the training mean and SD (ddof=1); a non-finite value in a new
    patient is set to the training mean (0) with a warning."""

    def _fit(self, X: pd.DataFrame, y: Any = None) -> Standardiser:
        X = _frame(X)
        arr = X.to_numpy(dtype=float)
        self.features_out_ = list(X.columns)
        sd = arr.std(axis=0, ddof=1) if len(arr) > 1 else np.zeros(arr.shape[1])
        self.mean_ = pd.Series(arr.mean(axis=0), index=self.features_out_)
        self.sd_ = pd.Series(np.where(sd > 0, sd, 1.0), index=self.features_out_)
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> Standardiser:
        with _timed("scale"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _frame(X)
        Z = (X[self.features_out_].to_numpy(dtype=float) - self.mean_.to_numpy()) / self.sd_.to_numpy()
        bad = ~np.isfinite(Z)
        if bad.any():
            warnings.warn(f"{int(bad.sum())} missing/non-finite feature value(s) set to the training mean",
                          RuntimeWarning, stacklevel=2)
            Z[bad] = 0.0
        return pd.DataFrame(Z, index=X.index, columns=self.features_out_)


class LogTransform(_NamesMixin, TransformerMixin, BaseEstimator):
    """Natural log (for tumour volume; non-positive values are an error)."""

    def fit(self, X: pd.DataFrame, y: Any = None) -> LogTransform:
        self.features_out_ = list(_frame(X).columns)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        X = _frame(X).apply(pd.to_numeric, errors="coerce").astype(float)
        if (X.to_numpy() <= 0).any():
            raise ValueError(f"log transform of non-positive values in {self.features_out_}")
        return np.log(X)


def _zscores(X: pd.DataFrame, y: np.ndarray) -> np.ndarray:
    z, _ = univariate_cox_score(X.to_numpy(float), y["time"], y["event"])
    return z


#: Clusters depend only on the (training) data and the threshold, not on the outcome,
#: so inner-loop fits of the same fold reuse them (key: SHA-1 of the data).
_CLUSTER_CACHE: dict[str, np.ndarray] = {}


class CorrelationReducer(_NamesMixin, TransformerMixin, BaseEstimator):
    """One representative per cluster of correlated features (training data only)."""

    def __init__(self, corr_threshold: float = 0.9) -> None:
        self.corr_threshold = corr_threshold

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> CorrelationReducer:
        X = _frame(X)
        cols = sorted(X.columns)  # input-order invariant
        X = X[cols]
        z = _zscores(X, y)
        arr = np.ascontiguousarray(X.to_numpy(float))
        key = hashlib.sha1(arr.tobytes() + "\x00".join(map(str, cols)).encode()
                           + repr(float(self.corr_threshold)).encode()).hexdigest()
        clusters = _CLUSTER_CACHE.get(key)
        if clusters is None:
            clusters = _cluster(_spearman_abs(arr), self.corr_threshold)
            if len(_CLUSTER_CACHE) >= 64:
                _CLUSTER_CACHE.pop(next(iter(_CLUSTER_CACHE)))
            _CLUSTER_CACHE[key] = clusters
        uni = pd.DataFrame({"feature": cols, "absz": np.abs(z), "cluster": clusters})
        ranked = uni.sort_values(["absz", "feature"], ascending=[False, True], kind="mergesort")
        reps = ranked.drop_duplicates("cluster", keep="first")
        self.clusters_ = dict(zip(cols, clusters.tolist(), strict=True))
        self.features_out_ = reps["feature"].tolist()
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> CorrelationReducer:
        with _timed("reduce"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return _frame(X)[self.features_out_]


class UnivariateCoxSelector(_NamesMixin, TransformerMixin, BaseEstimator):
    """The ``k`` features with the largest univariate Cox score-test ``|z|`` in training."""

    def __init__(self, k: int = 5) -> None:
        self.k = k

    def _fit(self, X: pd.DataFrame, y: np.ndarray) -> UnivariateCoxSelector:
        X = _frame(X)
        cols = sorted(X.columns)
        z = _zscores(X[cols], y)
        uni = pd.DataFrame({"feature": cols, "z": z, "absz": np.abs(z)})
        ranked = uni.sort_values(["absz", "feature"], ascending=[False, True], kind="mergesort")
        self.scores_ = ranked.set_index("feature")["z"]
        self.features_out_ = ranked["feature"].head(int(self.k)).tolist()
        return self

    def fit(self, X: pd.DataFrame, y: Any = None) -> UnivariateCoxSelector:
        with _timed("screen"):
            return self._fit(X, y)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return _frame(X)[self.features_out_]


def _estimator(learner: str, seed: int, n_jobs: int, settings: Mapping[str, Any]) -> BaseEstimator:
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
        rad = Pipeline([
            ("filter", QualityFilter()),
            ("scale", Standardiser()),
            ("reduce", CorrelationReducer(float(settings.get("corr_threshold", 0.9)))),
            ("select", UnivariateCoxSelector(int(settings.get("n_screen", 20)))),
        ], memory=memory)
        parts.append(("rad", rad, list(radiomic_features)))
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
    return Pipeline([("features", ct), ("model", _estimator(learner, seed, n_jobs, settings))])


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
