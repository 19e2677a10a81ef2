"""Does the change carry information? Baseline-only vs delta-only vs baseline + delta vs the classic
comparator (relative tumour volume change), on the same patients and folds.

Each model is the project's radiomics block (:func:`radsurv.modelling.learners.build_pipeline`:
quality filter, standardiser, correlation reducer and univariate Cox screen, all fit inside the
training patients of each fit) followed by a ridge-penalised Cox model
(``CoxPHSurvivalAnalysis(alpha=penalizer)``). Risks are out-of-fold over ``cv_repeats`` x
``cv_folds`` folds stratified on the event (the same folds for every model); Harrell's and
Uno's C and the paired differences to ``baseline`` come with percentile bootstrap CIs from
:func:`radsurv.modelling.metrics.bootstrap_metrics` (one patient resample shared by all models).

For a survival endpoint with deltas from a mid-treatment scan, pass the landmark table
(:func:`radsurv.longitudinal.landmark.landmark_dataset`) as the outcome: every model is then
fit on the patients at risk at the landmark, with time from the landmark.

A binary endpoint (an outcome with a ``label`` column of 0 / 1 instead of ``time`` / ``event``:
:func:`radsurv.longitudinal.landmark.label_dataset`, e.g. xerostomia) uses the classification
block of :mod:`radsurv.modelling.classification` with the same fixed settings: quality filter,
standardiser, correlation reducer and univariate screen (ANOVA F) fit on the training patients,
then an L2 logistic regression (``C = 1 / penalizer``, classes weighted by their inverse
frequency inside the fold); folds stratified on the label; out-of-fold probabilities; ROC AUC
per model (mean over repeats) and the paired difference to ``baseline``, with percentile
bootstrap CIs from :func:`radsurv.modelling.classification.metrics.paired_bootstrap_auc`
(patients resampled within each class, one resample shared by all models).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from radsurv.modelling.config import derive_seed
from radsurv.schema import default

__all__ = ["MODELS", "StudySettings", "compare_delta_models", "model_blocks"]

#: The compared models, in report order; ``baseline`` is the reference of the paired differences.
MODELS = ("baseline", "delta", "baseline_delta", "rtvc")
SEED_FOLDS, SEED_FIT, SEED_BOOT = 11, 12, 13


@dataclass(frozen=True)
class StudySettings:
    """The ``longitudinal.study`` config block (defaults from the config schema; ``seed`` is the config's ``seed``)."""

    cv_folds: int = default("longitudinal", "study", "cv_folds")
    cv_repeats: int = default("longitudinal", "study", "cv_repeats")
    n_screen: int = default("longitudinal", "study", "n_screen")
    corr_threshold: float = default("longitudinal", "study", "corr_threshold")
    penalizer: float = default("longitudinal", "study", "penalizer")
    bootstrap: int = default("longitudinal", "study", "bootstrap")
    seed: int = 42

    def __post_init__(self) -> None:
        if self.cv_folds < 2 or self.cv_repeats < 1 or self.n_screen < 1 or self.bootstrap < 0:
            raise ValueError("longitudinal.study: cv_folds >= 2, cv_repeats >= 1, n_screen >= 1, bootstrap >= 0")


def model_blocks(baseline: pd.DataFrame, delta: pd.DataFrame, rtvc: pd.Series) -> dict[str, pd.DataFrame]:
    """The feature matrix of each model (rows: patients common to all inputs, sorted)."""
    ids = sorted(set(baseline.index) & set(delta.index) & set(rtvc.dropna().index))
    b, d = baseline.loc[ids], delta.loc[ids]
    return {"baseline": b, "delta": d, "baseline_delta": pd.concat([b, d], axis=1),
            "rtvc": rtvc.loc[ids].rename("gtv__relative_volume_change").to_frame()}


def _folds(event: np.ndarray, settings: StudySettings) -> list[tuple[int, np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    out = []
    for r in range(settings.cv_repeats):
        skf = StratifiedKFold(settings.cv_folds, shuffle=True, random_state=derive_seed(settings.seed, SEED_FOLDS, r))
        out += [(r, tr, te) for tr, te in skf.split(np.zeros(len(event)), event)]
    return out


def _oof_risk(X: pd.DataFrame, y: np.ndarray, folds: list[tuple[int, np.ndarray, np.ndarray]],
              settings: StudySettings) -> list[np.ndarray]:
    """Out-of-fold risk per repeat (every step fit on the fold's training patients only)."""
    from radsurv.modelling.learners import build_pipeline

    cfg = {"n_screen": settings.n_screen, "corr_threshold": settings.corr_threshold}
    risks = [np.full(len(y), np.nan) for _ in range(settings.cv_repeats)]
    for k, (r, tr, te) in enumerate(folds):
        pipe = build_pipeline(["rad"], list(X.columns), None, [], "cox", cfg, derive_seed(settings.seed, SEED_FIT, k))
        pipe.set_params(model__alpha=settings.penalizer)
        pipe.fit(X.iloc[tr], y[tr])
        risks[r][te] = pipe.predict(X.iloc[te])
    return risks


def _oof_probability(X: pd.DataFrame, y: np.ndarray, folds: list[tuple[int, np.ndarray, np.ndarray]],
                     settings: StudySettings) -> list[np.ndarray]:
    """Out-of-fold probability of label 1 per repeat (every step fit on the fold's training patients only)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from radsurv.modelling.classification.models import ClassCorrelationReducer, UnivariateScreen
    from radsurv.modelling.transformers import QualityFilter, Standardiser

    probs = [np.full(len(y), np.nan) for _ in range(settings.cv_repeats)]
    for r, tr, te in folds:
        pipe = Pipeline([("filter", QualityFilter()), ("scale", Standardiser()),
                         ("reduce", ClassCorrelationReducer(settings.corr_threshold)),
                         ("screen", UnivariateScreen(settings.n_screen)),
                         ("model", LogisticRegression(C=1.0 / settings.penalizer, class_weight="balanced",
                                                      max_iter=5000))])
        pipe.fit(X.iloc[tr], y[tr])
        probs[r][te] = pipe.predict_proba(X.iloc[te])[:, 1]
    return probs


def _common(blocks: Mapping[str, pd.DataFrame], outcome: pd.DataFrame) -> tuple[pd.DataFrame, list[Any]]:
    """The outcome indexed by patient and the sorted patients present in it and in every block."""
    out = outcome.set_index("patient_id").sort_index()
    return out, sorted(set(out.index).intersection(*(set(b.index) for b in blocks.values())))


def _out_of_fold(blocks: Mapping[str, pd.DataFrame], ids: list[Any], y: np.ndarray,
                 folds: list[tuple[int, np.ndarray, np.ndarray]], settings: StudySettings,
                 fit: Callable[..., list[np.ndarray]]) -> tuple[dict[str, list[np.ndarray]], pd.DataFrame]:
    """``fit`` (:func:`_oof_risk` or :func:`_oof_probability`) for every model on the same folds: the
    out-of-fold scores per model and repeat, and them as the long predictions table."""
    scores, preds = {}, []
    for name, X in blocks.items():
        scores[name] = fit(X.loc[ids], y, folds, settings)
        for rep, r in enumerate(scores[name]):
            preds.append(pd.DataFrame({"patient_id": ids, "model": name, "repeat": rep, "risk": r}))
    return scores, pd.concat(preds, ignore_index=True)


def _compare_binary(blocks: Mapping[str, pd.DataFrame], outcome: pd.DataFrame,
                    settings: StudySettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`compare_delta_models` for a 0 / 1 ``label``: ROC AUC and its paired difference to baseline."""
    from radsurv.modelling.classification.metrics import paired_bootstrap_auc

    out, ids = _common(blocks, outcome)
    y = out.loc[ids, "label"].to_numpy(int)
    counts = np.bincount(y, minlength=2)
    if counts.min() < settings.cv_folds:
        raise ValueError(f"the binary endpoint has {counts[1]} patients with 1 and {counts[0]} with 0 among the "
                         f"{len(ids)} with a landmark scan; each class needs at least longitudinal.study.cv_folds "
                         f"({settings.cv_folds}) patients")
    probs, preds = _out_of_fold(blocks, ids, y, _folds(y, settings), settings, _oof_probability)
    auc = paired_bootstrap_auc(y, {k: np.vstack(v) for k, v in probs.items()}, reference="baseline",
                               n_boot=settings.bootstrap, seed=derive_seed(settings.seed, SEED_BOOT))
    interval = "95% CI: paired percentile bootstrap over patients, resampled within each class"
    rows = []
    for rec in auc.to_dict("records"):
        rows.append({"model": rec["model"], "metric": "roc_auc", "estimate": rec["auc"], "ci_low": rec["ci_low"],
                     "ci_high": rec["ci_high"], "interval": interval, "n_boot_valid": settings.bootstrap})
        if rec["model"] != "baseline":
            rows.append({"model": rec["model"], "metric": "delta_roc_auc_vs_baseline",
                         "estimate": rec["diff_vs_baseline"], "ci_low": rec["diff_ci_low"],
                         "ci_high": rec["diff_ci_high"], "interval": interval, "n_boot_valid": settings.bootstrap})
    return pd.DataFrame(rows), preds


def compare_delta_models(blocks: Mapping[str, pd.DataFrame], outcome: pd.DataFrame,
                         settings: StudySettings) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cross-validated C-index of each model and its paired difference to ``baseline``.

    Args:
        blocks: model name -> feature matrix indexed by patient (:func:`model_blocks`).
        outcome: ``patient_id``, ``time``, ``event`` (e.g. the landmark table).

    Returns:
        ``(performance, predictions)``: the long performance table of
        :func:`~radsurv.modelling.metrics.bootstrap_metrics` (``harrell_c``, ``uno_c`` and
        ``delta_harrell_c_vs_baseline`` ... per model, with CIs), and the out-of-fold risks
        (``patient_id, model, repeat, risk``). With a ``label`` column instead of ``time`` /
        ``event``: ``roc_auc`` and ``delta_roc_auc_vs_baseline``, and out-of-fold probabilities
        of label 1 as ``risk``.

    Raises:
        ValueError: a binary endpoint with fewer than ``cv_folds`` patients in a class.
    """
    if "label" in outcome.columns:
        return _compare_binary(blocks, outcome, settings)
    from radsurv.modelling.metrics import bootstrap_metrics, surv_array

    out, ids = _common(blocks, outcome)
    y = surv_array(out.loc[ids, "time"].to_numpy(float), out.loc[ids, "event"].to_numpy(int))
    risks, preds = _out_of_fold(blocks, ids, y, _folds(y["event"].astype(int), settings), settings, _oof_risk)
    sets = {name: [(r, None) for r in rs] for name, rs in risks.items()}
    perf = bootstrap_metrics(y, y, sets, np.array([]), [], None, settings.bootstrap,
                             derive_seed(settings.seed, SEED_BOOT), reference="baseline")
    perf = perf[perf["metric"].isin(["harrell_c", "uno_c", "delta_harrell_c_vs_baseline", "delta_uno_c_vs_baseline"])]
    return perf.reset_index(drop=True), preds
