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

Seeds are derived with :func:`radsurv.modelling.config.derive_seed` so results are reproducible.
The workflow reaches it through :mod:`radsurv.modelling.classification.study` (rule ``fit_classifier``).
"""


from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.metrics import balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from radsurv.modelling.classification import metrics as cm
from radsurv.modelling.classification.models import (
    ClinicalClassifier,
    PrevalenceClassifier,
    RadiomicsClassifier,
    VolumeClassifier,
)
from radsurv.modelling.classification.settings import ENDPOINTS, ClassificationSettings
from radsurv.modelling.config import derive_seed, parallel_map

__all__ = [
    "validate_labels",
    "ClassificationResult",
    "run_classification_cv",
    "run_classification_split",
    "summarise",
]


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


def _model_frame(features: pd.DataFrame, ids: Sequence[Any], clinical: pd.DataFrame | None,
                 clinical_specs: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """The rows ``ids`` of ``features``, plus the clinical covariate columns (text) if any."""
    X = features.loc[list(ids)].copy()
    if clinical is not None and clinical_specs:
        cl = clinical.reindex(list(ids))
        for sp in clinical_specs:
            X[sp["name"]] = cl[sp["name"]].to_numpy()
    return X


def _fit_and_score(est: BaseEstimator, name: str, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame,
                   test_ids: Sequence[Any], y_test: np.ndarray, repeat: int, fold: int,
                   classes: np.ndarray) -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Fit ``est`` on the training patients and score the test patients of one repeat and fold.

    Returns one prediction row per test patient (``patient, repeat, fold, model, label,
    threshold, p_<class>``), for a :class:`RadiomicsClassifier` its chosen configuration (one
    ``choices`` row, else none), and the seconds the fit and prediction took.
    """
    t0 = time.perf_counter()
    est.fit(X_train, y_train)
    P = est.predict_proba(X_test)
    seconds = time.perf_counter() - t0
    rows = []
    for i, pid in enumerate(test_ids):
        row = {"patient": pid, "repeat": repeat, "fold": fold, "model": name, "label": y_test[i],
               "threshold": est.threshold_}
        row.update({f"p_{c}": float(P[i, j]) for j, c in enumerate(classes)})
        rows.append(row)
    choices = []
    if isinstance(est, RadiomicsClassifier):
        choices.append({"repeat": repeat, "fold": fold, "model": name, "chosen": est.describe(),
                        "inner_auc": est.inner_auc_, "threshold": est.threshold_})
    return rows, choices, seconds


def _outer_fold(models: Mapping[str, BaseEstimator], names: Sequence[str], X: pd.DataFrame, y: np.ndarray,
                ids: np.ndarray, tr: np.ndarray, te: np.ndarray, repeat: int, fold: int, classes: np.ndarray,
                seed: int) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], float]]:
    """Every model of one outer fold: ``(name, prediction rows, choices, seconds)`` per model.

    The radiomics models' seed is derived from the study seed, the repeat and the fold, never
    from global state, so the fold gives the same result in any process and in any order."""
    out = []
    for name in names:
        est = clone(models[name])
        if isinstance(est, RadiomicsClassifier):
            est.set_params(seed=derive_seed(seed, 20, repeat, fold))
        out.append((name, *_fit_and_score(est, name, X.iloc[tr], y[tr], X.iloc[te], ids[te], y[te], repeat, fold,
                                          classes)))
    return out


def run_classification_cv(features: pd.DataFrame, labels: pd.Series, settings: ClassificationSettings | None = None,
                          volume_feature: str | None = None, clinical: pd.DataFrame | None = None,
                          clinical_specs: Sequence[Mapping[str, Any]] = (), models: Sequence[str] | None = None,
                          classes: Sequence[Any] | None = None, positive: Any | None = None,
                          endpoint_name: str = "endpoint", n_jobs: int = 1) -> ClassificationResult:
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
        n_jobs: worker processes; the outer folds (each with its own seed) are fit in parallel,
            so the result is the same for any ``n_jobs``.
    """
    s = settings or ClassificationSettings()
    y_all, qc = validate_labels(labels, s.endpoint, classes, positive, s.min_per_class, endpoint_name)
    missing = [p for p in y_all.index if p not in features.index]
    if missing:
        qc = pd.concat([qc, pd.DataFrame({"patient": missing, "column": endpoint_name, "value": "",
                                          "issue": "no radiomic features for this patient: left out"})])
    ids = [p for p in y_all.index if p in features.index]
    X = _model_frame(features, ids, clinical, clinical_specs)
    y = y_all.loc[ids].to_numpy()
    rad_cols = [c for c in features.columns]
    cls = np.unique(y)
    all_models = _models(s, volume_feature, clinical_specs, rad_cols, s.seed)
    names = [m for m in all_models if models is None or m in models]
    tasks = []
    for r in range(s.cv_repeats):
        outer = StratifiedKFold(n_splits=min(s.cv_folds, int(pd.Series(y).value_counts().min())), shuffle=True,
                                random_state=derive_seed(s.seed, 10, r))
        tasks += [(all_models, names, X, y, np.asarray(ids), tr, te, r, f, cls, s.seed)
                  for f, (tr, te) in enumerate(outer.split(np.zeros(len(y)), y))]
    rows, choices, seconds = [], [], dict.fromkeys(names, 0.0)
    for fold_out in parallel_map(_outer_fold, tasks, n_jobs):  # in (repeat, fold, model) order for any n_jobs
        for name, fold_rows, fold_choices, sec in fold_out:
            rows += fold_rows
            choices += fold_choices
            seconds[name] += sec
    preds = pd.DataFrame(rows)
    res = ClassificationResult(preds, pd.DataFrame(), pd.DataFrame(choices), qc, cls.tolist(), seconds)
    res.metrics = summarise(res, n_boot=s.n_boot, seed=s.seed)
    return res


def run_classification_split(dev_features: pd.DataFrame, dev_labels: pd.Series, val_features: pd.DataFrame,
                             val_labels: pd.Series, settings: ClassificationSettings | None = None,
                             volume_feature: str | None = None, clinical: pd.DataFrame | None = None,
                             clinical_specs: Sequence[Mapping[str, Any]] = (), models: Sequence[str] | None = None,
                             classes: Sequence[Any] | None = None, positive: Any | None = None,
                             endpoint_name: str = "endpoint", n_jobs: int = 1) -> ClassificationResult:
    """Development / validation design (a held-out split, another centre, a later period).

    Every model is tuned and fit on the development patients only (inner CV as in
    :class:`RadiomicsClassifier`) and scored once on the validation patients; the result
    has the layout of :func:`run_classification_cv` (``repeat`` 0, ``fold`` 0) and its
    metrics are those of the validation cohort. ``clinical`` covers both cohorts. ``n_jobs``:
    worker processes over the models (results the same for any ``n_jobs``).
    """
    s = settings or ClassificationSettings()
    y_dev, qc_dev = validate_labels(dev_labels, s.endpoint, classes, positive, s.min_per_class, endpoint_name)
    y_val, qc_val = validate_labels(val_labels, s.endpoint, classes, positive, 1, endpoint_name)
    if s.endpoint == "binary" and set(np.unique(y_val)) != {0, 1}:
        raise ValueError(f"{endpoint_name}: the validation cohort needs patients of both classes")

    dev_ids = [p for p in y_dev.index if p in dev_features.index]
    val_ids = [p for p in y_val.index if p in val_features.index]
    Xd = _model_frame(dev_features, dev_ids, clinical, clinical_specs)
    Xv = _model_frame(val_features, val_ids, clinical, clinical_specs)
    yd, yv = y_dev.loc[dev_ids].to_numpy(), y_val.loc[val_ids].to_numpy()
    cls = np.unique(yd)
    all_models = _models(s, volume_feature, clinical_specs, list(dev_features.columns), s.seed)
    names = [m for m in all_models if models is None or m in models]
    rows, choices, seconds = [], [], dict.fromkeys(names, 0.0)
    fits = parallel_map(_fit_and_score, [(clone(all_models[name]), name, Xd, yd, Xv, val_ids, yv, 0, 0, cls)
                                         for name in names], n_jobs)
    for name, (model_rows, model_choices, sec) in zip(names, fits, strict=True):  # in model order
        rows += model_rows
        choices += model_choices
        seconds[name] = sec
    qc = pd.concat([qc_dev.assign(cohort="development"), qc_val.assign(cohort="validation")], ignore_index=True)
    res = ClassificationResult(pd.DataFrame(rows), pd.DataFrame(), pd.DataFrame(choices), qc, cls.tolist(), seconds)
    res.metrics = summarise(res, n_boot=s.n_boot, seed=s.seed)
    return res


def _fold_auc(d: pd.DataFrame, pcol: str) -> tuple[float, float]:
    """Mean and SD of the per-fold held-out AUCs (each fold model scored on its own test
    patients only, so fold models that are calibrated differently are never ranked against
    each other); folds whose test patients hold one class only are skipped."""
    aucs = [roc_auc_score(g["label"].astype(int), g[pcol]) for _, g in d.groupby(["repeat", "fold"])
            if g["label"].nunique() == 2]
    if not aucs:
        return float("nan"), float("nan")
    return float(np.mean(aucs)), float(np.std(aucs, ddof=1)) if len(aucs) > 1 else float("nan")


def summarise(res: ClassificationResult, n_boot: int = 1000, seed: int = 0, reference: str = "volume") -> pd.DataFrame:
    """Model comparison table of a nested-CV result.

    Binary: AUC (``auc``: mean over repeats of the pooled held-out AUC, every patient's
    held-out probability ranked against every other's) with a paired bootstrap 95% CI and
    the CI of the difference to ``reference``; ``auc_fold_mean`` / ``auc_fold_sd``: mean and
    SD of the per-fold held-out AUCs (each fold model ranks only its own test patients; the
    estimator compared by Airola et al. 2011, reported beside the pooled one); DeLong p against ``reference`` on the
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
            row["auc_fold_mean"], row["auc_fold_sd"] = _fold_auc(d, pcols[1])
            row["brier"] = cm.brier(lab, mean_p)
            if np.ptp(mean_p) > 0:
                row["cal_intercept"], row["cal_slope"] = cm.calibration_intercept_slope(lab, mean_p)
            else:
                row["cal_intercept"], row["cal_slope"] = float("nan"), float("nan")
            if m == "prevalence":  # no ranking to recalibrate: its fold-to-fold prevalence wobble
                row["cal_slope"] = float("nan")  # would give a large, meaningless (negative) slope
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
