"""Leakage-free classification studies: binary and multiclass endpoints (tumour biology,
nodal status, histology, response ...) with the same honest design as the survival models.

Design (every data-dependent step is learnt from the training patients of each fit):

* outer loop: repeated stratified K-fold cross-validation (``cv_folds`` x ``cv_repeats``);
  every patient is predicted by models that never saw them;
* inside each outer training set, :class:`RadiomicsClassifier` runs an inner stratified
  K-fold loop that tunes the number of screened features, the learner (penalised
  logistic regression, random forest, gradient boosting, SVM), its hyperparameters and
  whether to average the best few candidates (a small ensemble), then refits the choice
  on all outer-training patients; the decision threshold (Youden's J) is chosen on the
  inner out-of-fold predictions of the training patients;
* radiomics steps per fit: quality filter, z-scores (``radsurv.modelling.transformers``), correlation
  clustering with one representative per cluster (the most class-associated in
  training), univariate screen (ANOVA F or Mann-Whitney / Kruskal-Wallis on training
  rows); class imbalance by class weights inside the fold; clinical covariates by
  ``radsurv.modelling.clinical_encoder.ClinicalEncoder`` (imputation learnt in training);
* models: ``radiomics``, ``volume`` (logistic regression on log tumour volume),
  ``clinical``, ``clinical+radiomics`` and ``prevalence`` (the no-information model:
  the training prevalence for everyone).

Seeds are derived with :func:`radsurv.modelling.metrics.derive_seed` so results are reproducible.
This module is the library core of issue #17; it is not yet called by the workflow.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
from sklearn.feature_selection import f_classif
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.svm import SVC
from sklearn.utils.class_weight import compute_sample_weight

from radsurv.modelling.clinical_encoder import ClinicalEncoder
from radsurv.modelling.classification import metrics as cm
from radsurv.modelling.legacy import _cluster, _spearman_abs
from radsurv.modelling.metrics import derive_seed
from radsurv.modelling.transformers import LogTransform, QualityFilter, Standardiser

__all__ = [
    "ENDPOINTS",
    "LEARNERS",
    "ClassificationSettings",
    "validate_labels",
    "UnivariateScreen",
    "ClassCorrelationReducer",
    "RadiomicsClassifier",
    "VolumeClassifier",
    "ClinicalClassifier",
    "PrevalenceClassifier",
    "ClassificationResult",
    "run_classification_cv",
    "run_classification_split",
    "summarise",
    "STEP_SECONDS",
]

ENDPOINTS = ("binary", "multiclass")
LEARNERS = ("logistic_l2", "logistic_l1", "elasticnet", "rf", "gb", "svm")

#: Seconds per step since the last reset (for the benchmark's time split).
STEP_SECONDS: dict[str, float] = {}


def _tick(step: str, t0: float) -> None:
    STEP_SECONDS[step] = STEP_SECONDS.get(step, 0.0) + time.perf_counter() - t0


@dataclass
class ClassificationSettings:
    """Defaults of a classification study (the ``modelling`` block for a non-survival endpoint).

    Attributes:
        endpoint: ``binary`` or ``multiclass``.
        cv_folds, cv_repeats: outer stratified K-fold and its repeats.
        inner_folds: inner stratified folds tuning features, learner and hyperparameters.
        learners: learners the inner loop may choose from (subset of :data:`LEARNERS`).
        n_screen: numbers of screened features tried for linear models and SVM.
        n_screen_trees: numbers of screened features tried for forests and boosting.
        logistic_C: inverse penalty strengths tried for logistic regression.
        svm_C: SVM (RBF kernel) penalties tried.
        rf_trees, rf_min_leaf: random forest size and minimum leaf sizes tried.
        gb_trees, gb_learning_rate: gradient boosting stages and learning rate.
        ensemble_sizes: sizes of the "average of the best inner candidates" ensembles
            that compete with the single best candidate (1 = no ensemble).
        corr_threshold: |Spearman rho| above which features are clustered.
        screen: ``f`` (ANOVA F) or ``rank`` (Mann-Whitney / Kruskal-Wallis).
        min_per_class: fewest patients a class may have.
        n_boot: bootstrap samples of the confidence intervals.
        seed: study seed.
    """

    endpoint: str = "binary"
    cv_folds: int = 5
    cv_repeats: int = 1
    inner_folds: int = 3
    learners: tuple[str, ...] = ("logistic_l2", "logistic_l1", "rf", "gb", "svm")
    n_screen: tuple[int, ...] = (8, 32)
    n_screen_trees: tuple[int, ...] = (64,)
    logistic_C: tuple[float, ...] = (0.05, 0.5)
    svm_C: tuple[float, ...] = (1.0,)
    rf_trees: int = 150
    rf_min_leaf: tuple[int, ...] = (3,)
    gb_trees: int = 100
    gb_learning_rate: float = 0.05
    ensemble_sizes: tuple[int, ...] = (1, 3, 5)
    corr_threshold: float = 0.9
    screen: str = "f"
    min_per_class: int = 5
    n_boot: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise ValueError(f"modelling.endpoint must be one of {ENDPOINTS} (or survival), got {self.endpoint!r}")
        bad = [lr for lr in self.learners if lr not in LEARNERS]
        if bad or not self.learners:
            raise ValueError(f"unknown learner(s) {bad}; choose from {LEARNERS}")
        if self.screen not in ("f", "rank"):
            raise ValueError(f"screen must be 'f' or 'rank', got {self.screen!r}")
        if self.cv_folds < 2 or self.inner_folds < 2 or self.cv_repeats < 1:
            raise ValueError("cv_folds and inner_folds must be >= 2 and cv_repeats >= 1")
        if not 0 < self.corr_threshold <= 1:
            raise ValueError("corr_threshold must lie in (0, 1]")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- labels


def validate_labels(labels: pd.Series, endpoint: str = "binary", classes: Sequence[Any] | None = None,
                    positive: Any | None = None, min_per_class: int = 5,
                    column: str = "endpoint") -> tuple[pd.Series, pd.DataFrame]:
    """Check an endpoint column; never coerce a value.

    Missing values and values that are not one of ``classes`` (when given) are left out
    and reported; the kept labels are returned as text (multiclass) or 0/1 with
    ``positive`` = 1 (binary; ``positive`` defaults to the second of the two sorted
    classes).

    Returns:
        ``(labels kept, indexed like the input; QC table with one row per left-out patient:
        patient, column, value, issue)``.
    Raises:
        ValueError: fewer than two classes, two classes required for a binary endpoint, or a
        class with fewer than ``min_per_class`` patients (message in plain words).
    """
    if endpoint not in ENDPOINTS:
        raise ValueError(f"endpoint must be one of {ENDPOINTS}, got {endpoint!r}")
    text = labels.map(lambda v: None if pd.isna(v) or str(v).strip() == "" else str(v).strip())
    qc = []
    for pid, raw, t in zip(labels.index, labels, text, strict=True):
        if t is None:
            qc.append({"patient": pid, "column": column, "value": "" if pd.isna(raw) else str(raw),
                       "issue": "missing endpoint value: patient left out of this endpoint"})
    allowed = None if classes is None else [str(c).strip() for c in classes]
    if allowed is not None:
        for pid, t in zip(labels.index, text, strict=True):
            if t is not None and t not in allowed:
                qc.append({"patient": pid, "column": column, "value": t,
                           "issue": f"value is not one of the declared classes {allowed}: patient left out"})
    keep = text.notna() & (text.isin(allowed) if allowed is not None else True)
    kept = text[keep]
    counts = kept.value_counts()
    if len(counts) < 2:
        raise ValueError(f"{column}: only {len(counts)} class(es) among the patients with a valid value "
                         f"({dict(counts)}); a classification model needs at least two")
    if endpoint == "binary" and len(counts) != 2:
        raise ValueError(f"{column}: a binary endpoint needs exactly two classes, found {sorted(counts.index)}; "
                         "use endpoint 'multiclass' or declare the two classes")
    small = counts[counts < int(min_per_class)]
    if len(small):
        raise ValueError(f"{column}: class(es) {dict(small)} have fewer than {min_per_class} patients; "
                         "too few for cross-validated modelling (merge classes or lower min_per_class knowingly)")
    qc_df = pd.DataFrame(qc, columns=["patient", "column", "value", "issue"])
    if endpoint == "multiclass":
        return kept.astype(str), qc_df
    levels = sorted(counts.index) if allowed is None else [c for c in allowed if c in counts.index]
    pos = str(positive).strip() if positive is not None else levels[-1]
    if pos not in levels:
        raise ValueError(f"{column}: the positive class {pos!r} is not among the values {levels}")
    return (kept == pos).astype(int), qc_df


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


_CLUSTERS: dict[str, np.ndarray] = {}


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
        key = hashlib.sha1(arr.tobytes() + repr((cols, float(self.corr_threshold))).encode()).hexdigest()
        clusters = _CLUSTERS.get(key)
        if clusters is None:
            if len(cols) > 1:
                with np.errstate(invalid="ignore", divide="ignore"):
                    absrho = _spearman_abs(arr)
                # a correlation numpy cannot compute (a column whose ranks do not vary in
                # these patients) counts as "not correlated" instead of stopping the fit
                absrho = np.nan_to_num(absrho, nan=0.0)
                np.fill_diagonal(absrho, 1.0)
                clusters = _cluster(absrho, float(self.corr_threshold))
            else:
                clusters = np.ones(len(cols), dtype=int)
            if len(_CLUSTERS) >= 64:
                _CLUSTERS.pop(next(iter(_CLUSTERS)))
            _CLUSTERS[key] = clusters
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


def _learner(name: str, params: Mapping[str, Any], s: ClassificationSettings, seed: int) -> BaseEstimator:
    if name == "logistic_l2":
        return LogisticRegression(C=params["C"], l1_ratio=0.0, class_weight="balanced", max_iter=5000)
    if name == "logistic_l1":
        return LogisticRegression(C=params["C"], l1_ratio=1.0, solver="liblinear", class_weight="balanced",
                                  max_iter=5000, random_state=seed)
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
    def ks(grid: Sequence[int]) -> list[int]:
        return sorted({min(int(k), n_features) for k in grid})

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
    correlation clusters, the screen, and -- in an inner K-fold loop -- the number of
    screened features, the learner and its hyperparameters, and whether to average the
    best 1, 3 or 5 candidates; the chosen configuration is refit on all training
    patients. The decision threshold (binary) maximises Youden's J on the inner
    out-of-fold predictions of the chosen configuration.

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
        prep = Pipeline([("filter", QualityFilter()), ("scale", Standardiser()),
                         ("reduce", ClassCorrelationReducer(s.corr_threshold, s.screen))])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            prep.fit(X[self._rad_cols(X)], y)
        clin = ClinicalEncoder(list(self.clinical_specs)).fit(X) if self.clinical_specs else None
        _tick("prep", t0)
        return prep, clin

    @staticmethod
    def _apply(prep: Pipeline, clin: Any, rad_cols: list[str], X: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray | None]:
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
        return screen, _fit_learner(_learner(name, params, s, seed), M, y)

    @staticmethod
    def _member_proba(member: tuple[UnivariateScreen, BaseEstimator], Z: pd.DataFrame, C: np.ndarray | None) -> np.ndarray:
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
        splits = _folds(y, s.inner_folds, derive_seed(self.seed, 1))
        # inner loop: out-of-fold probabilities of every candidate
        n_feat_max = None
        fold_data = []
        for tr, va in splits:
            prep, clin = self._prep(X.iloc[tr], y[tr], s)
            Ztr, Ctr = self._apply(prep, clin, rad_cols, X.iloc[tr])
            Zva, Cva = self._apply(prep, clin, rad_cols, X.iloc[va])
            n_feat_max = Ztr.shape[1] if n_feat_max is None else min(n_feat_max, Ztr.shape[1])
            fold_data.append((tr, va, Ztr, Ctr, Zva, Cva))
        cands = _candidates(s, int(n_feat_max))
        oof = np.full((len(cands), len(y), len(self.classes_)), np.nan)
        for tr, va, Ztr, Ctr, Zva, Cva in fold_data:
            for ci, (name, k, params) in enumerate(cands):
                m = self._fit_member(name, k, params, Ztr, Ctr, y[tr], s, derive_seed(self.seed, 2, ci))
                oof[ci, va] = self._member_proba(m, Zva, Cva)

        def fold_auc(P: np.ndarray) -> float:
            return float(np.mean([_score(y[va], P[va], self.classes_) for _, va in splits]))

        single = np.array([fold_auc(oof[ci]) for ci in range(len(cands))])
        order = np.argsort(-single, kind="mergesort")
        best_auc, best_m = -np.inf, 1
        for m in sorted({max(1, min(int(e), len(cands))) for e in s.ensemble_sizes}):
            a = fold_auc(oof[order[:m]].mean(axis=0))
            if a > best_auc + 1e-12:
                best_auc, best_m = a, m
        self.inner_auc_ = best_auc
        self.chosen_ = [cands[i] for i in order[:best_m]]
        self.candidate_auc_ = pd.DataFrame({"learner": [c[0] for c in cands], "k": [c[1] for c in cands],
                                            "params": [repr(c[2]) for c in cands], "inner_auc": single})
        inner_P = oof[order[:best_m]].mean(axis=0)
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


# --------------------------------------------------------------------------- the study


@dataclass
class ClassificationResult:
    """Outputs of :func:`run_classification_cv`.

    Attributes:
        predictions: one row per patient x repeat x model: ``patient``, ``repeat``,
            ``fold``, ``model``, ``label``, ``threshold`` and ``p_<class>`` columns.
        metrics: one row per model (see :func:`summarise`).
        choices: one row per repeat x fold: the chosen radiomics configuration and its
            inner AUC.
        qc: patients left out of the endpoint and why.
        classes: the class labels (binary: 0, 1).
        seconds: wall time per model.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    choices: pd.DataFrame
    qc: pd.DataFrame
    classes: list[Any]
    seconds: dict[str, float] = field(default_factory=dict)

    def mean_probability(self, model: str) -> pd.DataFrame:
        """Each patient's held-out probabilities averaged over repeats (plus label)."""
        d = self.predictions[self.predictions["model"] == model]
        pcols = [c for c in d.columns if c.startswith("p_")]
        return d.groupby("patient", sort=False).agg({**{c: "mean" for c in pcols}, "label": "first"})


def _models(settings: ClassificationSettings, volume_feature: str | None,
            clinical_specs: Sequence[Mapping[str, Any]], rad_cols: list[str], seed: int) -> dict[str, BaseEstimator]:
    s = settings.to_dict()
    models: dict[str, BaseEstimator] = {"radiomics": RadiomicsClassifier(s, rad_cols, (), seed)}
    if volume_feature:
        models["volume"] = VolumeClassifier(volume_feature)
    if clinical_specs:
        models["clinical"] = ClinicalClassifier(list(clinical_specs))
        models["clinical+radiomics"] = RadiomicsClassifier(s, rad_cols, list(clinical_specs), seed)
    models["prevalence"] = PrevalenceClassifier()
    return models


def run_classification_cv(features: pd.DataFrame, labels: pd.Series, settings: ClassificationSettings | None = None,
                          volume_feature: str | None = None, clinical: pd.DataFrame | None = None,
                          clinical_specs: Sequence[Mapping[str, Any]] = (), models: Sequence[str] | None = None,
                          classes: Sequence[Any] | None = None, positive: Any | None = None,
                          endpoint_name: str = "endpoint") -> ClassificationResult:
    """Repeated nested cross-validation of every model of a classification endpoint.

    Args:
        features: radiomic features, one row per patient (index = patient id); the volume
            feature, if any, is one of these columns.
        labels: the endpoint, indexed by patient (text or numbers; validated by
            :func:`validate_labels`, problems reported in ``qc``).
        settings: study settings (defaults: :class:`ClassificationSettings`).
        volume_feature: column of ``features`` holding tumour volume (the volume model).
        clinical: clinical covariates indexed by patient (text cells; ``ClinicalEncoder``).
        clinical_specs: :class:`radsurv.ingest.clinical.CovariateSpec` dicts.
        models: subset of the model names to run (default all that the inputs allow).
        classes, positive: declared classes and, for binary endpoints, the positive one.
    """
    s = settings or ClassificationSettings()
    y_all, qc = validate_labels(labels, s.endpoint, classes, positive, s.min_per_class, endpoint_name)
    missing = [p for p in y_all.index if p not in features.index]
    if missing:
        qc = pd.concat([qc, pd.DataFrame({"patient": missing, "column": endpoint_name, "value": "",
                                          "issue": "no radiomic features for this patient: left out"})])
    ids = [p for p in y_all.index if p in features.index]
    X = features.loc[ids].copy()
    if clinical is not None and clinical_specs:
        cl = clinical.reindex(ids)
        for sp in clinical_specs:
            X[sp["name"]] = cl[sp["name"]].to_numpy()
    y = y_all.loc[ids].to_numpy()
    rad_cols = [c for c in features.columns]
    cls = np.unique(y)
    all_models = _models(s, volume_feature, clinical_specs, rad_cols, s.seed)
    names = [m for m in all_models if models is None or m in models]
    rows, choices, seconds = [], [], dict.fromkeys(names, 0.0)
    for r in range(s.cv_repeats):
        outer = StratifiedKFold(n_splits=min(s.cv_folds, int(pd.Series(y).value_counts().min())), shuffle=True,
                                random_state=derive_seed(s.seed, 10, r))
        for f, (tr, te) in enumerate(outer.split(np.zeros(len(y)), y)):
            for name in names:
                t0 = time.perf_counter()
                est = clone(all_models[name])
                if isinstance(est, RadiomicsClassifier):
                    est.set_params(seed=derive_seed(s.seed, 20, r, f))
                est.fit(X.iloc[tr], y[tr])
                P = est.predict_proba(X.iloc[te])
                seconds[name] += time.perf_counter() - t0
                for i, pid in enumerate(np.asarray(ids)[te]):
                    row = {"patient": pid, "repeat": r, "fold": f, "model": name, "label": y[te][i],
                           "threshold": est.threshold_}
                    row.update({f"p_{c}": float(P[i, j]) for j, c in enumerate(cls)})
                    rows.append(row)
                if isinstance(est, RadiomicsClassifier):
                    choices.append({"repeat": r, "fold": f, "model": name, "chosen": est.describe(),
                                    "inner_auc": est.inner_auc_, "threshold": est.threshold_})
    preds = pd.DataFrame(rows)
    res = ClassificationResult(preds, pd.DataFrame(), pd.DataFrame(choices), qc, cls.tolist(), seconds)
    res.metrics = summarise(res, n_boot=s.n_boot, seed=s.seed)
    return res


def run_classification_split(dev_features: pd.DataFrame, dev_labels: pd.Series, val_features: pd.DataFrame,
                             val_labels: pd.Series, settings: ClassificationSettings | None = None,
                             volume_feature: str | None = None, clinical: pd.DataFrame | None = None,
                             clinical_specs: Sequence[Mapping[str, Any]] = (), models: Sequence[str] | None = None,
                             classes: Sequence[Any] | None = None, positive: Any | None = None,
                             endpoint_name: str = "endpoint") -> ClassificationResult:
    """Development / validation design (a held-out split, another centre, a later period).

    Every model is tuned and fit on the development patients only (inner CV as in
    :class:`RadiomicsClassifier`) and scored once on the validation patients; the result
    has the layout of :func:`run_classification_cv` (``repeat`` 0, ``fold`` 0) and its
    metrics are those of the validation cohort. ``clinical`` covers both cohorts.
    """
    s = settings or ClassificationSettings()
    y_dev, qc_dev = validate_labels(dev_labels, s.endpoint, classes, positive, s.min_per_class, endpoint_name)
    y_val, qc_val = validate_labels(val_labels, s.endpoint, classes, positive, 1, endpoint_name)
    if s.endpoint == "binary" and set(np.unique(y_val)) != {0, 1}:
        raise ValueError(f"{endpoint_name}: the validation cohort needs patients of both classes")

    def frame(features: pd.DataFrame, ids: Sequence[Any]) -> pd.DataFrame:
        X = features.loc[list(ids)].copy()
        if clinical is not None and clinical_specs:
            cl = clinical.reindex(list(ids))
            for sp in clinical_specs:
                X[sp["name"]] = cl[sp["name"]].to_numpy()
        return X

    dev_ids = [p for p in y_dev.index if p in dev_features.index]
    val_ids = [p for p in y_val.index if p in val_features.index]
    Xd, Xv = frame(dev_features, dev_ids), frame(val_features, val_ids)
    yd, yv = y_dev.loc[dev_ids].to_numpy(), y_val.loc[val_ids].to_numpy()
    cls = np.unique(yd)
    all_models = _models(s, volume_feature, clinical_specs, list(dev_features.columns), s.seed)
    names = [m for m in all_models if models is None or m in models]
    rows, choices, seconds = [], [], dict.fromkeys(names, 0.0)
    for name in names:
        t0 = time.perf_counter()
        est = clone(all_models[name]).fit(Xd, yd)
        P = est.predict_proba(Xv)
        seconds[name] = time.perf_counter() - t0
        for i, pid in enumerate(val_ids):
            row = {"patient": pid, "repeat": 0, "fold": 0, "model": name, "label": yv[i], "threshold": est.threshold_}
            row.update({f"p_{c}": float(P[i, j]) for j, c in enumerate(cls)})
            rows.append(row)
        if isinstance(est, RadiomicsClassifier):
            choices.append({"repeat": 0, "fold": 0, "model": name, "chosen": est.describe(),
                            "inner_auc": est.inner_auc_, "threshold": est.threshold_})
    qc = pd.concat([qc_dev.assign(cohort="development"), qc_val.assign(cohort="validation")], ignore_index=True)
    res = ClassificationResult(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame(choices), qc, cls.tolist(), seconds)
    res.metrics = summarise(res, n_boot=s.n_boot, seed=s.seed)
    return res


def summarise(res: ClassificationResult, n_boot: int = 1000, seed: int = 0, reference: str = "volume") -> pd.DataFrame:
    """Model comparison table of a nested-CV result.

    Binary: AUC (mean over repeats of the pooled held-out AUC) with a paired bootstrap 95%
    CI and the CI of the difference to ``reference``; DeLong p against ``reference`` on the
    repeat-averaged probabilities; sensitivity, specificity and balanced accuracy at the
    thresholds chosen on training patients (mean over repeats); Brier score, calibration
    intercept and slope on the repeat-averaged probabilities. Multiclass: macro and
    one-vs-rest AUCs and balanced accuracy of the most probable class.
    """
    P = res.predictions
    models = list(dict.fromkeys(P["model"]))
    cls = res.classes
    pcols = [f"p_{c}" for c in cls]
    ids = list(dict.fromkeys(P["patient"]))
    if len(cls) == 2:
        mats, lab = {}, None
        for m in models:
            d = P[P["model"] == m]
            piv = d.pivot(index="repeat", columns="patient", values=pcols[1])[ids]
            mats[m] = piv.to_numpy()
            lab = d.drop_duplicates("patient").set_index("patient").loc[ids, "label"].to_numpy().astype(int)
        table = cm.paired_bootstrap_auc(lab, mats, reference if reference in mats else None, n_boot, seed)
        extra = []
        for m in models:
            d = P[P["model"] == m]
            thr = [cm.threshold_metrics(g["label"].astype(int), g[pcols[1]], g["threshold"])
                   for _, g in d.groupby("repeat")]
            mean_p = mats[m].mean(axis=0)
            row = {k: float(np.mean([t[k] for t in thr])) for k in ("sensitivity", "specificity", "balanced_accuracy")}
            row["brier"] = cm.brier(lab, mean_p)
            if np.ptp(mean_p) > 0:
                row["cal_intercept"], row["cal_slope"] = cm.calibration_intercept_slope(lab, mean_p)
            else:
                row["cal_intercept"], row["cal_slope"] = float("nan"), float("nan")
            if reference in mats and m != reference:
                row[f"delong_p_vs_{reference}"] = cm.delong_test(lab, mean_p, mats[reference].mean(axis=0)).p_value
            extra.append(row)
        return pd.concat([table, pd.DataFrame(extra)], axis=1)
    rows = []
    for m in models:
        d = P[P["model"] == m]
        per = [cm.multiclass_auc(g["label"], g[pcols].to_numpy(), cls) for _, g in d.groupby("repeat")]
        row = {"model": m, **{k: float(np.mean([p[k] for p in per])) for k in per[0]}}
        row["balanced_accuracy"] = float(np.mean([
            balanced_accuracy_score(g["label"], np.asarray(cls)[np.argmax(g[pcols].to_numpy(), axis=1)])
            for _, g in d.groupby("repeat")]))
        rows.append(row)
    return pd.DataFrame(rows)
