"""Risk groups: cut-offs from training patients, group labels, log-rank test and hazard ratio.

A fit's cut-off(s) (:func:`choose_cutoffs`: median, tertiles or the maximally selected
log-rank statistic) come from its own training patients' risk scores and are applied
unchanged to its held-out patients (:func:`assign_groups`); :func:`group_tests`
compares the groups of a set of patients.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from lifelines import CoxPHFitter
from lifelines.statistics import multivariate_logrank_test

from radsurv.modelling.transformers import univariate_cox_score

__all__ = ["GROUP_LABELS", "choose_cutoffs", "assign_groups", "group_labels", "group_tests"]

#: Group labels of one cut-off (``median``, ``maxstat``) and of two (``tertiles``).
GROUP_LABELS: dict[str, tuple[str, ...]] = {
    "median": ("low", "high"),
    "tertiles": ("low", "intermediate", "high"),
}


def choose_cutoffs(scores: np.ndarray, time: np.ndarray, event: np.ndarray, method: str) -> list[float]:
    """Risk-score cut-off(s) from TRAINING patients only.

    ``median``; ``tertiles``; ``maxstat``: the cut maximising the log-rank statistic
    over candidate cuts between the 10th and 90th percentile of the scores (each
    group keeps >= 10% of patients). A patient whose score equals a cut-off goes to
    the lower group.
    """
    scores = np.asarray(scores, float)
    if method == "median":
        return [float(np.median(scores))]
    if method == "tertiles":
        return [float(v) for v in np.quantile(scores, [1 / 3, 2 / 3])]
    if method == "maxstat":
        # log-rank chi2 of "score > c" for every candidate c at once: the Cox score test
        # of a binary covariate (Breslow ties) is the log-rank test
        lo, hi = np.quantile(scores, [0.1, 0.9])
        cands = np.unique(scores[(scores >= lo) & (scores < hi)])
        if len(cands) == 0:
            return [float(np.median(scores))]
        ind = (scores[:, None] > cands[None, :]).astype(float)
        z, _ = univariate_cox_score(ind, np.asarray(time, float), np.asarray(event).astype(bool))
        return [float(cands[int(np.argmax(z**2))])]
    raise ValueError(f"unknown risk_cut {method!r}")


def assign_groups(scores: np.ndarray, cutoffs: Sequence[float]) -> np.ndarray:
    """Labels ``low``/``high`` (1 cut) or ``low``/``intermediate``/``high`` (2 cuts)."""
    labels = np.array(GROUP_LABELS["median" if len(cutoffs) == 1 else "tertiles"], dtype=object)
    return labels[np.searchsorted(np.asarray(cutoffs, float), np.asarray(scores, float), side="left")]


def group_labels(risk_cut: str) -> tuple[str, ...]:
    """The group labels ``risk_cut`` produces (``tertiles``: three groups, otherwise two)."""
    return GROUP_LABELS["median" if risk_cut != "tertiles" else "tertiles"]


def group_tests(pred: pd.DataFrame, labels: tuple[str, ...]) -> dict[str, Any]:
    """Log-rank test and HR (high vs low, with 95% CI) between risk groups of ``pred``."""
    out: dict[str, Any] = {"logrank_chi2": None, "logrank_p": None, "hr_high_vs_low": None,
                           "hr_ci_low": None, "hr_ci_high": None, "hr_p": None}
    present = [g for g in labels if (pred["risk_group"] == g).any()]
    if len(present) >= 2 and pred["event"].sum() > 0:
        res = multivariate_logrank_test(pred["time"], pred["risk_group"], pred["event"])
        out["logrank_chi2"] = float(res.test_statistic)
        out["logrank_p"] = float(res.p_value)
    if "low" in present and "high" in present:
        dummies = [g for g in labels if g != "low" and g in present]
        df = pd.DataFrame({"time": pred["time"].to_numpy(float), "event": pred["event"].to_numpy(int)})
        for g in dummies:
            df[g] = (pred["risk_group"].to_numpy() == g).astype(float)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")
            row = cph.summary.loc["high"]
            vals = [float(row["exp(coef)"]), float(row["exp(coef) lower 95%"]),
                    float(row["exp(coef) upper 95%"]), float(row["p"])]
            if all(math.isfinite(v) for v in vals):
                out["hr_high_vs_low"], out["hr_ci_low"], out["hr_ci_high"], out["hr_p"] = vals
        except Exception:  # no events in a group, separation, ... -> not estimable
            pass
    return out
