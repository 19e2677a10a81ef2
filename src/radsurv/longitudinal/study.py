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
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

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
        (``patient_id, model, repeat, risk``).
    """
    from radsurv.modelling.metrics import bootstrap_metrics, surv_array

    out = outcome.set_index("patient_id").sort_index()
    ids = sorted(set(out.index).intersection(*(set(b.index) for b in blocks.values())))
    y = surv_array(out.loc[ids, "time"].to_numpy(float), out.loc[ids, "event"].to_numpy(int))
    folds = _folds(y["event"].astype(int), settings)
    sets, preds = {}, []
    for name, X in blocks.items():
        risks = _oof_risk(X.loc[ids], y, folds, settings)
        sets[name] = [(r, None) for r in risks]
        for rep, r in enumerate(risks):
            preds.append(pd.DataFrame({"patient_id": ids, "model": name, "repeat": rep, "risk": r}))
    perf = bootstrap_metrics(y, y, sets, np.array([]), [], None, settings.bootstrap,
                             derive_seed(settings.seed, SEED_BOOT), reference="baseline")
    perf = perf[perf["metric"].isin(["harrell_c", "uno_c", "delta_harrell_c_vs_baseline", "delta_uno_c_vs_baseline"])]
    return perf.reset_index(drop=True), pd.concat(preds, ignore_index=True)
