"""Performance measures for binary and multiclass endpoints (tumour biology, response ...).

Everything that scikit-learn computes is taken from scikit-learn (ROC AUC, Brier score,
balanced accuracy, confusion matrix, ROC curve); what it lacks is added here:

* DeLong's test for two correlated AUCs with the fast midrank algorithm of Sun & Xu
  (IEEE Signal Processing Letters 21(11), 2014), checked against R pROC's ``roc.test``;
* paired percentile-bootstrap 95% confidence intervals over patients, shared by all
  models, with the interval of each model's difference to a reference (tumour volume);
* a decision threshold chosen on TRAINING patients (Youden's J) and the sensitivity /
  specificity / balanced accuracy it gives on held-out patients;
* calibration intercept (calibration-in-the-large, logistic recalibration with the
  linear predictor as offset) and slope (logistic regression of the outcome on the logit
  of the prediction), without statsmodels;
* the decision curve (net benefit against treat-all and treat-none, Vickers & Elkin 2006).

Probabilities are of the positive class (label 1); labels are 0/1 integers.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit, logit
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    roc_auc_score,
    roc_curve,
)

__all__ = [
    "roc_auc",
    "delong_variance",
    "delong_test",
    "DeLongResult",
    "paired_bootstrap_auc",
    "youden_threshold",
    "threshold_metrics",
    "brier",
    "calibration_intercept_slope",
    "decision_curve",
    "multiclass_auc",
]


def _binary(y: Sequence[int] | np.ndarray) -> np.ndarray:
    y = np.asarray(y)
    vals = set(np.unique(y).tolist())
    if not vals <= {0, 1}:
        raise ValueError(f"binary outcome must be coded 0/1, got values {sorted(vals)[:10]}")
    if len(vals) < 2:
        raise ValueError("the outcome has only one class in these patients: an AUC needs both classes")
    return y.astype(int)


def roc_auc(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve (scikit-learn's ``roc_auc_score``)."""
    return float(roc_auc_score(_binary(y), np.asarray(p, dtype=float)))


# --------------------------------------------------------------------------- DeLong


def _midrank(x: np.ndarray) -> np.ndarray:
    """Midranks (1-based; ties share their average rank), as in Sun & Xu (2014)."""
    return stats.rankdata(x, method="average")


def _placements(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """AUCs and DeLong structural components (placement values) of ``k`` score vectors.

    Fast algorithm of Sun & Xu (2014): with ``m`` positives and ``n`` negatives, midranks
    of each score within positives (``tx``), within negatives (``ty``) and overall
    (``tz``) give ``V10 = (tz_pos - tx) / n`` and ``V01 = 1 - (tz_neg - ty) / m``.

    Args:
        y: 0/1 labels, shape (N,).
        scores: shape (k, N).
    Returns:
        aucs (k,), V10 (k, m), V01 (k, n).
    """
    pos = y == 1
    m, n = int(pos.sum()), int((~pos).sum())
    X, Y = scores[:, pos], scores[:, ~pos]
    k = scores.shape[0]
    tx = np.vstack([_midrank(X[r]) for r in range(k)])
    ty = np.vstack([_midrank(Y[r]) for r in range(k)])
    tz = np.vstack([_midrank(np.concatenate([X[r], Y[r]])) for r in range(k)])
    aucs = tz[:, :m].sum(axis=1) / m / n - (m + 1.0) / 2.0 / n
    v10 = (tz[:, :m] - tx) / n
    v01 = 1.0 - (tz[:, m:] - ty) / m
    return aucs, v10, v01


def _delong_cov(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    aucs, v10, v01 = _placements(y, scores)
    m, n = v10.shape[1], v01.shape[1]
    s10 = np.atleast_2d(np.cov(v10))
    s01 = np.atleast_2d(np.cov(v01))
    return aucs, s10 / m + s01 / n


def delong_variance(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """AUC and its DeLong variance (equals R pROC's ``var(roc(...))``)."""
    yb = _binary(y)
    aucs, cov = _delong_cov(yb, np.asarray(p, dtype=float)[None, :])
    return float(aucs[0]), float(cov[0, 0])


@dataclass(frozen=True)
class DeLongResult:
    """DeLong's test of two correlated AUCs (same patients, two scores)."""

    auc1: float
    auc2: float
    difference: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def delong_test(y: Sequence[int] | np.ndarray, p1: Sequence[float] | np.ndarray,
                p2: Sequence[float] | np.ndarray, alpha: float = 0.05) -> DeLongResult:
    """Two-sided DeLong test that two correlated AUCs are equal.

    ``z = (AUC1 - AUC2) / sqrt(var1 + var2 - 2 cov)``; identical scores give z = 0, p = 1
    (as pROC does). The interval is the Wald interval of the difference.
    """
    yb = _binary(y)
    s = np.vstack([np.asarray(p1, dtype=float), np.asarray(p2, dtype=float)])
    if s.shape[1] != len(yb):
        raise ValueError("the two predictions and the outcome must cover the same patients")
    aucs, cov = _delong_cov(yb, s)
    diff = float(aucs[0] - aucs[1])
    var = float(cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    if var <= 0 or not np.isfinite(var):
        z, p, half = 0.0, 1.0, 0.0
    else:
        z = diff / np.sqrt(var)
        p = float(2 * stats.norm.sf(abs(z)))
        half = float(stats.norm.ppf(1 - alpha / 2) * np.sqrt(var))
    return DeLongResult(float(aucs[0]), float(aucs[1]), diff, float(z), p, diff - half, diff + half)


# --------------------------------------------------------------------------- bootstrap


def paired_bootstrap_auc(y: Sequence[int] | np.ndarray, predictions: Mapping[str, np.ndarray],
                         reference: str | None = "volume", n_boot: int = 1000, seed: int = 0,
                         alpha: float = 0.05) -> pd.DataFrame:
    """AUC of every model with a paired percentile-bootstrap interval.

    The same bootstrap samples of patients (drawn within each class, so every sample has
    both classes, as pROC's default stratified bootstrap) are used for every model, so
    the interval of the difference to ``reference`` accounts for the correlation of the
    models. ``predictions[name]`` may be 1-D (one score per patient) or 2-D
    (repeats x patients, e.g. repeated cross-validation: the AUC is the mean over
    repeats, each repeat's AUC on the same resampled patients).

    Returns:
        one row per model: ``auc``, ``ci_low``, ``ci_high`` and, if ``reference`` is one
        of the models, ``diff_vs_<reference>``, ``diff_ci_low``, ``diff_ci_high``; with
        ``n_boot`` 0 the point estimates only (intervals NaN).
    """
    yb = _binary(y)
    preds = {k: np.atleast_2d(np.asarray(v, dtype=float)) for k, v in predictions.items()}
    for k, v in preds.items():
        if v.shape[1] != len(yb):
            raise ValueError(f"model {k!r}: {v.shape[1]} predictions for {len(yb)} patients")
    rng = np.random.default_rng(seed)
    pos, neg = np.flatnonzero(yb == 1), np.flatnonzero(yb == 0)

    def _auc(idx: np.ndarray) -> dict[str, float]:
        out = {}
        for k, v in preds.items():
            out[k] = float(np.mean([roc_auc_score(yb[idx], row[idx]) for row in v]))
        return out

    point = _auc(np.arange(len(yb)))
    boots = []
    for _ in range(int(n_boot)):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        boots.append(_auc(idx))
    B = pd.DataFrame(boots, columns=list(preds), dtype=float)
    lo, hi = 100 * alpha / 2, 100 * (1 - alpha / 2)

    def pct(x: pd.Series, q: float) -> float:
        return float(np.percentile(x, q)) if len(x) else float("nan")  # no replicates: no interval

    rows = []
    for k in preds:
        r = {"model": k, "auc": point[k], "ci_low": pct(B[k], lo), "ci_high": pct(B[k], hi)}
        if reference is not None and reference in preds:
            d = B[k] - B[reference]
            r[f"diff_vs_{reference}"] = point[k] - point[reference]
            r["diff_ci_low"] = pct(d, lo)
            r["diff_ci_high"] = pct(d, hi)
        rows.append(r)
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- threshold


def youden_threshold(y_train: Sequence[int] | np.ndarray, p_train: Sequence[float] | np.ndarray) -> float:
    """Threshold maximising Youden's J (sensitivity + specificity - 1) on TRAINING patients.

    Predictions ``>= threshold`` are called positive. Ties in J take the threshold
    closest to the training prevalence, which keeps the choice stable.
    """
    yb = _binary(y_train)
    p = np.asarray(p_train, dtype=float)
    fpr, tpr, thr = roc_curve(yb, p)
    thr = np.where(np.isinf(thr), np.nextafter(p.max(), np.inf), thr)
    j = tpr - fpr
    best = np.flatnonzero(np.isclose(j, j.max()))
    prev = yb.mean()
    return float(thr[best[np.argmin(np.abs(thr[best] - prev))]])


def threshold_metrics(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                      threshold: float | Sequence[float] | np.ndarray) -> dict[str, float]:
    """Sensitivity, specificity, balanced accuracy and the confusion counts at ``threshold``.

    ``threshold`` may be one value or one per patient (each held-out patient judged with
    the threshold chosen on the training patients of the fold that predicted them).
    """
    yb = np.asarray(y).astype(int)
    call = (np.asarray(p, dtype=float) >= np.asarray(threshold, dtype=float)).astype(int)
    tn, fp, fn, tp = confusion_matrix(yb, call, labels=[0, 1]).ravel()
    sens = tp / (tp + fn) if tp + fn else float("nan")
    spec = tn / (tn + fp) if tn + fp else float("nan")
    return {"sensitivity": float(sens), "specificity": float(spec),
            "balanced_accuracy": float(balanced_accuracy_score(yb, call)),
            "tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}


# --------------------------------------------------------------------------- calibration


def brier(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> float:
    """Brier score (scikit-learn's ``brier_score_loss``)."""
    return float(brier_score_loss(np.asarray(y).astype(int), np.asarray(p, dtype=float)))


def _lp(p: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    return logit(np.clip(np.asarray(p, dtype=float), eps, 1 - eps))


def calibration_intercept_slope(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Calibration intercept (in the large) and slope of predicted probabilities.

    Slope: coefficient of ``logit(p)`` in an unpenalised logistic regression of the
    outcome (scikit-learn ``LogisticRegression`` without penalty; 1 = ideal, < 1 =
    predictions too extreme, typical of over-fitting). Intercept: ``a`` in
    ``logit P(y=1) = a + logit(p)`` (slope fixed at 1, maximum likelihood: scipy root of the score equation;
    0 = ideal, < 0 = risks over-estimated).
    """
    yb = _binary(y)
    lp = _lp(np.asarray(p, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lr = LogisticRegression(C=np.inf, max_iter=1000).fit(lp[:, None], yb)
    slope = float(lr.coef_[0, 0])

    # maximum likelihood of the offset model: the root of its (monotone) score equation
    a = optimize.brentq(lambda a: float(np.sum(yb - expit(a + lp))), -30.0, 30.0, xtol=1e-12)
    return float(a), slope


# --------------------------------------------------------------------------- decision curve


def decision_curve(y: Sequence[int] | np.ndarray, p: Sequence[float] | np.ndarray,
                   thresholds: Sequence[float] | np.ndarray | None = None) -> pd.DataFrame:
    """Net benefit of treating patients with ``p >= t`` over threshold probabilities ``t``.

    ``NB = TP/N - FP/N * t/(1-t)``; treat-all: ``prev - (1-prev) t/(1-t)``; treat-none: 0.
    """
    yb = np.asarray(y).astype(int)
    p = np.asarray(p, dtype=float)
    t = np.linspace(0.01, 0.99, 99) if thresholds is None else np.asarray(thresholds, dtype=float)
    if ((t <= 0) | (t >= 1)).any():
        raise ValueError("decision-curve thresholds must lie strictly between 0 and 1")
    n = len(yb)
    prev = yb.mean()
    odds = t / (1 - t)
    tp = np.array([((p >= x) & (yb == 1)).sum() for x in t]) / n
    fp = np.array([((p >= x) & (yb == 0)).sum() for x in t]) / n
    return pd.DataFrame({"threshold": t, "net_benefit": tp - fp * odds,
                         "treat_all": prev - (1 - prev) * odds, "treat_none": np.zeros_like(t)})


# --------------------------------------------------------------------------- multiclass


def multiclass_auc(y: Sequence[object] | np.ndarray, proba: np.ndarray, classes: Sequence[object]) -> dict[str, float]:
    """One-vs-rest AUC of every class and their unweighted (macro) mean.

    ``proba`` has one column per entry of ``classes`` (rows sum to 1). The macro value
    equals scikit-learn's ``roc_auc_score(multi_class="ovr", average="macro")``.
    """
    y = np.asarray(y)
    P = np.asarray(proba, dtype=float)
    if P.shape[1] != len(classes):
        raise ValueError(f"{P.shape[1]} probability columns for {len(classes)} classes")
    out: dict[str, float] = {}
    for j, c in enumerate(classes):
        yy = (y == c).astype(int)
        if yy.min() == yy.max():
            raise ValueError(f"class {c!r} is absent (or alone) in these patients: no one-vs-rest AUC")
        out[f"auc_{c}"] = float(roc_auc_score(yy, P[:, j]))
    out["macro_auc"] = float(np.mean([out[f"auc_{c}"] for c in classes]))
    return out
