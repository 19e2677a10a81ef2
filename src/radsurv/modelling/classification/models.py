"""The estimators of a classification study, every step fit on its training patients only.

* feature steps: :class:`UnivariateScreen` (ANOVA F or Mann-Whitney / Kruskal-Wallis) and
  :class:`ClassCorrelationReducer` (correlation clusters, the most class-associated member
  of each), after the quality filter and z-scores of :mod:`radsurv.modelling.transformers`;
* :class:`RadiomicsClassifier`: inner stratified K-fold tuning of the number of screened
  features, the learner, its hyperparameters and a small ensemble; the decision
  threshold (Youden's J) from the inner out-of-fold predictions;
* baselines: :class:`VolumeClassifier`, :class:`ClinicalClassifier` and
  :class:`PrevalenceClassifier` (the no-information model).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight

from radsurv.modelling.classification import metrics as cm
from radsurv.modelling.classification.settings import LEARNERS, ClassificationSettings
from radsurv.modelling.clinical_encoder import ClinicalEncoder
from radsurv.modelling.config import derive_seed
from radsurv.modelling.transformers import (
    LogTransform,
    QualityFilter,
    Standardiser,
    feature_clusters,
)

__all__ = [
    "STEP_SECONDS",
    "UnivariateScreen",
    "ClassCorrelationReducer",
    "RadiomicsClassifier",
    "VolumeClassifier",
    "ClinicalClassifier",
    "PrevalenceClassifier",
]

#: Seconds per step since the last reset (for the benchmark's time split).
STEP_SECONDS: dict[str, float] = {}


def _tick(step: str, t0: float) -> None:
    STEP_SECONDS[step] = STEP_SECONDS.get(step, 0.0) + time.perf_counter() - t0


# --------------------------------------------------------------------------- transformers


def _class_scores(X: np.ndarray, y: np.ndarray, method: str) -> np.ndarray:
    """Univariate association of each column with the class (training rows only)."""
    if method == "f":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            f, _ = f_classif(X, y)
        return np.nan_to_num(f, nan=0.0)
    groups = [X[y == c] for c in np.unique(y)]
    if len(groups) == 2:
        u = stats.mannwhitneyu(groups[1], groups[0], axis=0).statistic
        return np.abs(u / (len(groups[0]) * len(groups[1])) - 0.5)
    return np.nan_to_num(stats.kruskal(*groups, axis=0).statistic, nan=0.0)


class UnivariateScreen(TransformerMixin, BaseEstimator):
    """Keep the ``k`` features most associated with the class in the training rows.

    ``method``: ``f`` (ANOVA F, scikit-learn ``f_classif``) or ``rank`` (Mann-Whitney
    for two classes, Kruskal-Wallis for more; scipy). Ties are broken by name.
    """

    def __init__(self, k: int = 8, method: str = "f") -> None:
        self.k = k
        self.method = method

    def fit(self, X: pd.DataFrame, y: Any) -> UnivariateScreen:
        t0 = time.perf_counter()
        s = _class_scores(X.to_numpy(float), np.asarray(y), self.method)
        order = sorted(range(len(s)), key=lambda j: (-s[j], str(X.columns[j])))
        self.scores_ = pd.Series(s, index=X.columns)
        self.features_out_ = [X.columns[j] for j in order[: int(self.k)]]
        _tick("screen", t0)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[self.features_out_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.features_out_, dtype=object)


class ClassCorrelationReducer(TransformerMixin, BaseEstimator):
    """One feature per cluster of correlated features (average linkage on 1 - |Spearman rho|,
    the clustering of :class:`radsurv.modelling.transformers.CorrelationReducer`), keeping in each
    cluster the feature most associated with the class in the training rows."""

    def __init__(self, corr_threshold: float = 0.9, method: str = "f") -> None:
        self.corr_threshold = corr_threshold
        self.method = method

    def fit(self, X: pd.DataFrame, y: Any) -> ClassCorrelationReducer:
        t0 = time.perf_counter()
        cols = sorted(X.columns, key=str)
        arr = np.ascontiguousarray(X[cols].to_numpy(float))
        clusters = feature_clusters(arr, cols, float(self.corr_threshold))
        s = _class_scores(arr, np.asarray(y), self.method)
        uni = pd.DataFrame({"feature": cols, "score": s, "cluster": clusters})
        reps = uni.sort_values(["score", "feature"], ascending=[False, True], kind="mergesort") \
            .drop_duplicates("cluster", keep="first")
        self.clusters_ = dict(zip(cols, clusters.tolist(), strict=True))
        self.features_out_ = reps["feature"].tolist()
        _tick("reduce", t0)
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[self.features_out_]

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        return np.asarray(self.features_out_, dtype=object)


# --------------------------------------------------------------------------- learners


def _learner(name: str, params: Mapping[str, Any], s: ClassificationSettings, seed: int,
             n_classes: int = 2) -> BaseEstimator:
    """A fresh, unfitted learner ``name`` with hyperparameters ``params`` for ``n_classes`` classes."""
    if name == "logistic_l2":
        return LogisticRegression(C=params["C"], l1_ratio=0.0, class_weight="balanced", max_iter=5000)
    if name == "logistic_l1":
        # liblinear is fast for two classes but rejects more (scikit-learn >= 1.8 fits the
        # multinomial loss only); saga fits the L1-penalised multinomial model
        return LogisticRegression(C=params["C"], l1_ratio=1.0, solver="liblinear" if n_classes <= 2 else "saga",
                                  class_weight="balanced", max_iter=5000, random_state=seed)
    if name == "elasticnet":
        return LogisticRegression(C=params["C"], l1_ratio=0.5, solver="saga", class_weight="balanced",
                                  max_iter=5000, random_state=seed)
    if name == "rf":
        return RandomForestClassifier(n_estimators=s.rf_trees, min_samples_leaf=params["min_leaf"],
                                      max_features="sqrt", class_weight="balanced_subsample", random_state=seed,
                                      n_jobs=1)
    if name == "gb":
        return GradientBoostingClassifier(n_estimators=s.gb_trees, learning_rate=s.gb_learning_rate, max_depth=2,
                                          subsample=0.8, random_state=seed)
    if name == "svm":
        # probabilities by Platt scaling fitted inside the training patients (scikit-learn's
        # replacement for the deprecated SVC(probability=True))
        return CalibratedClassifierCV(SVC(C=params["C"], kernel="rbf", gamma="scale", class_weight="balanced",
                                          random_state=seed), method="sigmoid", cv=3, ensemble=False)
    raise ValueError(f"unknown learner {name!r}; choose from {LEARNERS}")


def _candidates(s: ClassificationSettings, n_features: int) -> list[tuple[str, int, dict[str, Any]]]:
    """(learner, k, params) tried in the inner loop."""
    def ks(grid: Sequence[int]) -> list[int]:  # 0 = every feature
        return sorted({min(int(k), n_features) if int(k) > 0 else n_features for k in grid})

    out: list[tuple[str, int, dict[str, Any]]] = []
    for lr in s.learners:
        if lr in ("logistic_l2", "logistic_l1", "elasticnet"):
            Cs = s.logistic_C if lr == "logistic_l2" else tuple(4 * c for c in s.logistic_C)
            out += [(lr, k, {"C": float(c)}) for k in ks(s.n_screen) for c in Cs]
        elif lr == "svm":
            out += [(lr, k, {"C": float(c)}) for k in ks(s.n_screen) for c in s.svm_C]
        elif lr == "rf":
            out += [(lr, k, {"min_leaf": int(m)}) for k in ks(s.n_screen_trees) for m in s.rf_min_leaf]
        elif lr == "gb":
            out += [(lr, k, {}) for k in ks(s.n_screen_trees)]
    return out


def _fit_learner(est: BaseEstimator, X: np.ndarray, y: np.ndarray) -> BaseEstimator:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if isinstance(est, GradientBoostingClassifier):
            est.fit(X, y, sample_weight=compute_sample_weight("balanced", y))
        else:
            est.fit(X, y)
    _tick("model", t0)
    return est


def _score(y: np.ndarray, P: np.ndarray, classes: np.ndarray) -> float:
    """Inner-loop criterion: ROC AUC (binary) or macro one-vs-rest AUC (multiclass)."""
    if len(classes) == 2:
        return float(roc_auc_score(y == classes[1], P[:, 1]))
    return float(roc_auc_score(y, P, multi_class="ovr", average="macro", labels=classes))


def _folds(y: np.ndarray, n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    smallest = int(pd.Series(y).value_counts().min())
    k = min(int(n_folds), smallest)
    if k < 2:
        raise ValueError(f"a class has only {smallest} patient(s) in this training set: too few to tune a model")
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


class RadiomicsClassifier(ClassifierMixin, BaseEstimator):
    """Radiomics (optionally + clinical) classifier tuned by an inner stratified CV.

    ``fit`` learns, from its own training patients only: the quality filter, z-scores,
    correlation clusters (``cluster_features``), the screen, and -- in an inner K-fold loop -- the number of
    screened features, the learner and its hyperparameters, and whether to average the
    best 1, 3 or 5 candidates; the chosen configuration is refit on all training
    patients. The decision threshold (binary) maximises Youden's J on the inner
    out-of-fold predictions of the chosen configuration. The inner K-fold is repeated
    ``inner_repeats`` times with new folds; ``selection`` ``best`` takes the highest mean
    inner AUC, ``one_se`` the largest ensemble within one standard error of it.

    Fitted attributes: ``chosen_`` (the averaged candidates), ``inner_auc_``,
    ``candidate_auc_`` (every candidate's inner AUC), ``ensemble_auc_`` (inner AUC and its
    standard error per ensemble size), ``n_inner_fits_``, ``threshold_``.

    Args:
        settings: :class:`ClassificationSettings` as a dict (kept clonable).
        radiomic_features: columns of ``X`` that are radiomic features (default: all
            columns not used as clinical covariates).
        clinical_specs: :class:`radsurv.ingest.clinical.CovariateSpec` dicts; their encoded
            columns are appended after the screen (always kept) for the combined model.
        seed: seed of the inner folds and of the learners.
    """

    def __init__(self, settings: Mapping[str, Any] | None = None, radiomic_features: Sequence[str] | None = None,
                 clinical_specs: Sequence[Mapping[str, Any]] = (), seed: int = 0) -> None:
        self.settings = settings
        self.radiomic_features = radiomic_features
        self.clinical_specs = clinical_specs
        self.seed = seed

    def _s(self) -> ClassificationSettings:
        return ClassificationSettings(**dict(self.settings or {}))

    def _rad_cols(self, X: pd.DataFrame) -> list[str]:
        if self.radiomic_features is not None:
            return list(self.radiomic_features)
        clin = {sp["name"] for sp in self.clinical_specs}
        return [c for c in X.columns if c not in clin]

    def _prep(self, X: pd.DataFrame, y: np.ndarray, s: ClassificationSettings) -> tuple[Pipeline, Any]:
        t0 = time.perf_counter()
        steps: list[tuple[str, Any]] = [("filter", QualityFilter()), ("scale", Standardiser())]
        if s.cluster_features:
            steps.append(("reduce", ClassCorrelationReducer(s.corr_threshold, s.screen)))
        prep = Pipeline(steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prep.fit(X[self._rad_cols(X)], y)
        clin = ClinicalEncoder(list(self.clinical_specs)).fit(X) if self.clinical_specs else None
        _tick("prep", t0)
        return prep, clin

    @staticmethod
    def _apply(prep: Pipeline, clin: Any, rad_cols: list[str],
               X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            Z = prep.transform(X[rad_cols])
        C = clin.transform(X).to_numpy(float) if clin is not None else None
        return Z, C

    def _fit_member(self, name: str, k: int, params: Mapping[str, Any], Z: pd.DataFrame, C: np.ndarray | None,
                    y: np.ndarray, s: ClassificationSettings, seed: int) -> tuple[UnivariateScreen, BaseEstimator]:
        screen = UnivariateScreen(k, s.screen).fit(Z, y)
        M = screen.transform(Z).to_numpy(float)
        if C is not None:
            M = np.hstack([M, C])
        return screen, _fit_learner(_learner(name, params, s, seed, len(np.unique(y))), M, y)

    @staticmethod
    def _member_proba(member: tuple[UnivariateScreen, BaseEstimator], Z: pd.DataFrame,
                      C: np.ndarray | None) -> np.ndarray:
        screen, est = member
        M = screen.transform(Z).to_numpy(float)
        if C is not None:
            M = np.hstack([M, C])
        return est.predict_proba(M)

    def fit(self, X: pd.DataFrame, y: Any) -> RadiomicsClassifier:
        s = self._s()
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        rad_cols = self._rad_cols(X)
        # inner loop, repeated ``inner_repeats`` times with new folds: out-of-fold
        # probabilities of every candidate, per repeat
        splits = [(rep, tr, va) for rep in range(s.inner_repeats)
                  for tr, va in _folds(y, s.inner_folds, derive_seed(self.seed, 1, *([rep] if rep else [])))]
        n_feat_max = None
        fold_data = []
        for rep, tr, va in splits:
            prep, clin = self._prep(X.iloc[tr], y[tr], s)
            Ztr, Ctr = self._apply(prep, clin, rad_cols, X.iloc[tr])
            Zva, Cva = self._apply(prep, clin, rad_cols, X.iloc[va])
            n_feat_max = Ztr.shape[1] if n_feat_max is None else min(n_feat_max, Ztr.shape[1])
            fold_data.append((rep, tr, va, Ztr, Ctr, Zva, Cva))
        cands = _candidates(s, int(n_feat_max))
        oof = np.full((s.inner_repeats, len(cands), len(y), len(self.classes_)), np.nan)
        for rep, tr, va, Ztr, Ctr, Zva, Cva in fold_data:
            for ci, (name, k, params) in enumerate(cands):
                m = self._fit_member(name, k, params, Ztr, Ctr, y[tr], s, derive_seed(self.seed, 2, ci))
                oof[rep, ci, va] = self._member_proba(m, Zva, Cva)

        def fold_aucs(P: np.ndarray) -> np.ndarray:
            """AUC of every inner (repeat, fold) on its own validation patients."""
            return np.array([_score(y[va], P[rep, va], self.classes_) for rep, _, va in splits])

        single = np.array([fold_aucs(oof[:, ci]).mean() for ci in range(len(cands))])
        order = np.argsort(-single, kind="mergesort")
        sizes = sorted({max(1, min(int(e), len(cands))) for e in s.ensemble_sizes})
        per_size = {m: fold_aucs(oof[:, order[:m]].mean(axis=1)) for m in sizes}
        means = {m: float(a.mean()) for m, a in per_size.items()}
        best_m, best_auc = sizes[0], means[sizes[0]]
        for m in sizes[1:]:  # a larger ensemble must be better by more than rounding
            if means[m] > best_auc + 1e-12:
                best_m, best_auc = m, means[m]
        if s.selection == "one_se" and len(splits) > 1:
            # one-standard-error rule: the largest (most averaged, least variable) ensemble
            # whose inner AUC is within one standard error of the best one's
            se = float(np.std(per_size[best_m], ddof=1) / np.sqrt(len(splits)))
            best_m = max(m for m in sizes if means[m] >= means[best_m] - se)
        self.inner_auc_ = means[best_m]
        self.ensemble_auc_ = pd.DataFrame({"size": sizes, "inner_auc": [means[m] for m in sizes],
                                           "inner_se": [float(np.std(per_size[m], ddof=1) / np.sqrt(len(splits)))
                                                        if len(splits) > 1 else float("nan") for m in sizes]})
        self.n_inner_fits_ = len(splits)
        self.chosen_ = [cands[i] for i in order[:best_m]]
        self.candidate_auc_ = pd.DataFrame({"learner": [c[0] for c in cands], "k": [c[1] for c in cands],
                                            "params": [repr(c[2]) for c in cands], "inner_auc": single})
        inner_P = oof[:, order[:best_m]].mean(axis=1).mean(axis=0)
        self.threshold_ = (cm.youden_threshold((y == self.classes_[1]).astype(int), inner_P[:, 1])
                           if len(self.classes_) == 2 else float("nan"))
        # refit the chosen configuration on every training patient
        self.prep_, self.clin_ = self._prep(X, y, s)
        Z, C = self._apply(self.prep_, self.clin_, rad_cols, X)
        self.members_ = [self._fit_member(name, k, params, Z, C, y, s, derive_seed(self.seed, 3, j))
                         for j, (name, k, params) in enumerate(self.chosen_)]
        self.rad_cols_ = rad_cols
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        Z, C = self._apply(self.prep_, self.clin_, self.rad_cols_, X)
        return np.mean([self._member_proba(m, Z, C) for m in self.members_], axis=0)

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        P = self.predict_proba(X)
        if len(self.classes_) == 2:
            return np.where(P[:, 1] >= self.threshold_, self.classes_[1], self.classes_[0])
        return self.classes_[np.argmax(P, axis=1)]

    def describe(self) -> str:
        """The chosen configuration in words, e.g. ``mean of 3: rf(k=32, min_leaf=5), ...``."""
        parts = [f"{n}(k={k}{''.join(f', {a}={b}' for a, b in p.items())})" for n, k, p in self.chosen_]
        return parts[0] if len(parts) == 1 else f"mean of {len(parts)}: " + ", ".join(parts)


class _Simple(ClassifierMixin, BaseEstimator):
    """Logistic regression on a fixed block; threshold by Youden's J on training patients."""

    def _pipe(self) -> Pipeline:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit(self, X: pd.DataFrame, y: Any) -> _Simple:
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.pipe_ = self._pipe().fit(X, y)
        P = self.pipe_.predict_proba(X)
        self.threshold_ = (cm.youden_threshold((y == self.classes_[1]).astype(int), P[:, 1])
                           if len(self.classes_) == 2 else float("nan"))
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.pipe_.predict_proba(X)


class _Columns(TransformerMixin, BaseEstimator):
    def __init__(self, columns: Sequence[str] = ()) -> None:
        self.columns = columns

    def fit(self, X: pd.DataFrame, y: Any = None) -> _Columns:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        return X[list(self.columns)]


class VolumeClassifier(_Simple):
    """Logistic regression on tumour volume (log volume when every training volume is
    positive; tables that are already standardised are used as they are)."""

    def __init__(self, volume_feature: str = "original_shape_MeshVolume") -> None:
        self.volume_feature = volume_feature

    def _pipe(self) -> Pipeline:
        return Pipeline([("col", _Columns([self.volume_feature])), ("log", _MaybeLog()), ("scale", Standardiser()),
                         ("model", LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))])


class _MaybeLog(TransformerMixin, BaseEstimator):
    def fit(self, X: pd.DataFrame, y: Any = None) -> _MaybeLog:
        v = X.apply(pd.to_numeric, errors="coerce").to_numpy(float)
        self.log_ = bool(np.all(v[np.isfinite(v)] > 0))
        self.fill_ = float(np.nanmedian(v))
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        v = X.apply(pd.to_numeric, errors="coerce").astype(float).fillna(self.fill_)
        return LogTransform().fit(v).transform(v) if self.log_ else v


class ClinicalClassifier(_Simple):
    """Logistic regression (L2, C=1) on clinical covariates (``ClinicalEncoder``)."""

    def __init__(self, clinical_specs: Sequence[Mapping[str, Any]] = ()) -> None:
        self.clinical_specs = clinical_specs

    def _pipe(self) -> Pipeline:
        if not self.clinical_specs:
            raise ValueError("the clinical model needs clinical covariates")
        return Pipeline([("clin", ClinicalEncoder(list(self.clinical_specs))),
                         ("model", LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000))])


class PrevalenceClassifier(ClassifierMixin, BaseEstimator):
    """No-information model: every patient gets the training class frequencies."""

    def fit(self, X: pd.DataFrame, y: Any) -> PrevalenceClassifier:
        y = np.asarray(y)
        self.classes_, counts = np.unique(y, return_counts=True)
        self.freq_ = counts / counts.sum()
        self.threshold_ = float(self.freq_[1]) if len(self.classes_) == 2 else float("nan")
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        return np.tile(self.freq_, (len(X), 1))
