"""Survival-model performance metrics with bootstrap confidence intervals.

All discrimination and accuracy metrics are scikit-survival's own
implementations (no re-implementation), wrapped so that a metric that cannot be
computed on a (small or resampled) set returns ``nan`` instead of raising:

* Harrell's C: :func:`sksurv.metrics.concordance_index_censored`.
* Uno's C (IPCW, truncated at ``tau``): :func:`sksurv.metrics.concordance_index_ipcw`.
* Cumulative/dynamic time-dependent AUC at fixed horizons:
  :func:`sksurv.metrics.cumulative_dynamic_auc`.
* Integrated Brier score over a time grid: :func:`sksurv.metrics.integrated_brier_score`.

The censoring distribution needed by the IPCW metrics (Uno's C, td-AUC, IBS)
is the Kaplan-Meier estimate of the censoring times of a *reference* set
(``y_ref``), which scikit-survival calls ``survival_train``: the patients the
evaluated model was trained on. :mod:`radsurv.modelling.study` passes the development
cohort: for the split design and external cohorts the patients the final models
were fit on; for cross-validation, whose pooled out-of-fold predictions come from
several fits, the union of their training sets, i.e. the whole development cohort
(one censoring estimate for the pooled predictions; every patient is a training
patient of the other folds' fits). The bootstrap keeps it fixed (it is not
resampled), so every replicate uses the same weights. A published signature
(:mod:`radsurv.modelling.signatures`) has no training patients here: its cohort is its own
reference.

scikit-survival needs the evaluated times inside the reference's follow-up (the
censoring distribution is unknown beyond it): for the IPCW metrics only,
an evaluated patient followed beyond the reference's last time is censored at
that time (:func:`within_followup`; administrative censoring, which changes no
comparison before it), and Harrell's C uses the data unchanged.

Risk scores follow scikit-survival's convention: higher = higher hazard =
shorter survival.

Bootstrap CIs (:func:`bootstrap_metrics`) are percentile intervals over
patients resampled with replacement (seeded). All models evaluated on the same
patients use the SAME resamples, so the CI of a paired difference (model minus
volume baseline) is also available.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)
from sksurv.nonparametric import kaplan_meier_estimator
from sksurv.util import Surv

from radsurv.modelling.config import parallel_map

__all__ = [
    "surv_array",
    "harrell_c",
    "uno_c",
    "td_auc",
    "ibs",
    "ibs_grid",
    "calibration_table",
    "calibration_slope",
    "point_metrics",
    "bootstrap_replicates",
    "bootstrap_metrics",
    "paired_c_difference",
    "within_followup",
    "INTERVAL_BOOTSTRAP",
    "INTERVAL_FOLD_SPREAD",
]

#: What ``ci_low``/``ci_high`` mean, in the ``interval`` column of the performance tables.
INTERVAL_BOOTSTRAP = "95% CI: paired percentile bootstrap over patients"
INTERVAL_FOLD_SPREAD = "2.5-97.5% quantiles of the fold estimates (spread, not a CI)"
INTERVAL_WALD = "95% CI: Cox model (Wald)"
#: Columns of the performance tables (``interval`` says what ``ci_low``/``ci_high`` are).
PERFORMANCE_COLUMNS = ["model", "metric", "estimate", "ci_low", "ci_high", "interval", "n_boot_valid"]

NAN = float("nan")


def surv_array(time: Sequence[float] | np.ndarray, event: Sequence[int] | np.ndarray) -> np.ndarray:
    """scikit-survival structured array ``(event: bool, time: float)``."""
    return Surv.from_arrays(event=np.asarray(event).astype(bool), time=np.asarray(time, dtype=float))


def _quiet(fn: Callable[[], float]) -> float:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            v = float(fn())
    except (ValueError, ZeroDivisionError, FloatingPointError, IndexError):
        return NAN
    return v if math.isfinite(v) else NAN


def harrell_c(time: np.ndarray, event: np.ndarray, risk: np.ndarray) -> float:
    """Harrell's C (sksurv); ``nan`` without comparable pairs."""
    event = np.asarray(event).astype(bool)
    if event.sum() == 0 or len(event) < 2:
        return NAN
    return _quiet(lambda: concordance_index_censored(event, np.asarray(time, float), np.asarray(risk, float))[0])


def within_followup(y_ref: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``y`` with every patient followed to or beyond the reference set's last time
    censored at that time (events there included: the censoring distribution may be 0
    at the last time), so that scikit-survival's IPCW metrics can weight ``y`` with
    the censoring distribution of ``y_ref``. Unchanged when ``y`` is inside it."""
    t_max = float(np.max(y_ref["time"]))
    t = np.asarray(y["time"], float)
    if not (t >= t_max).any():
        return y
    late = t >= t_max
    last_is_event = bool(np.asarray(y_ref["event"])[np.asarray(y_ref["time"], float) == t_max].all())
    if last_is_event:  # censoring distribution still positive at t_max: only later times are outside
        late = t > t_max
        if not late.any():
            return y
    ev = np.asarray(y["event"]).astype(bool).copy()
    ev[late] = False
    return surv_array(np.where(late, t_max, t), ev)


def uno_c(y_ref: np.ndarray, y: np.ndarray, risk: np.ndarray, tau: float | None) -> float:
    """Uno's IPCW C-index truncated at ``tau`` (sksurv); ``nan`` if not computable."""
    if y["event"].sum() == 0:
        return NAN
    return _quiet(lambda: concordance_index_ipcw(y_ref, y, np.asarray(risk, float), tau=tau)[0])


def td_auc(y_ref: np.ndarray, y: np.ndarray, risk: np.ndarray, horizons: Sequence[float]) -> list[float]:
    """Cumulative/dynamic AUC at each horizon (sksurv); ``nan`` where the horizon is
    outside the follow-up of ``y`` or no case/control exists."""
    t = y["time"]
    ok = [bool(t.min() <= h < t.max() and ((t <= h) & y["event"]).any() and (t > h).any()) for h in horizons]
    hs = [h for h, o in zip(horizons, ok, strict=True) if o]
    vals: dict[float, float] = {}
    if hs:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                auc = cumulative_dynamic_auc(y_ref, y, np.asarray(risk, float), hs)[0]
            vals = {h: (float(a) if math.isfinite(a) else NAN) for h, a in zip(hs, auc, strict=True)}
        except (ValueError, ZeroDivisionError, FloatingPointError, IndexError):
            vals = {h: _quiet(lambda h=h: cumulative_dynamic_auc(y_ref, y, np.asarray(risk, float), [h])[0][0])
                    for h in hs}
    return [vals.get(h, NAN) if o else NAN for h, o in zip(horizons, ok, strict=True)]


def ibs_grid(time: np.ndarray, horizon_max: float, n: int = 50) -> np.ndarray:
    """Time grid of the integrated Brier score: from the 10th percentile of the
    observed times to ``min(horizon_max, 80th percentile)`` (inside the follow-up
    of the evaluation set, as sksurv requires)."""
    time = np.asarray(time, dtype=float)
    lo = float(np.percentile(time, 10))
    hi = float(min(horizon_max, np.percentile(time, 80)))
    if not hi > lo:
        return np.array([])
    return np.linspace(lo, hi, n)


def ibs(y_ref: np.ndarray, y: np.ndarray, surv: np.ndarray, grid: np.ndarray) -> float:
    """Integrated Brier score (sksurv) of survival probabilities ``surv`` (n x len(grid))."""
    if len(grid) < 2:
        return NAN
    t = y["time"]
    keep = (grid >= t.min()) & (grid < t.max())
    if keep.sum() < 2 or not keep.all():
        return NAN
    return _quiet(lambda: integrated_brier_score(y_ref, y, np.asarray(surv, float), grid))


def point_metrics(
    y_ref: np.ndarray,
    y: np.ndarray,
    risk: np.ndarray,
    surv_grid: np.ndarray | None,
    grid: np.ndarray,
    horizons: Sequence[float],
    tau: float | None,
) -> dict[str, float]:
    """Harrell's C, Uno's C, td-AUC per horizon and IBS of one prediction set."""
    out = {"harrell_c": harrell_c(y["time"], y["event"], risk)}
    yw = within_followup(y_ref, y)  # IPCW metrics: inside the reference's follow-up
    out["uno_c"] = uno_c(y_ref, yw, risk, tau)
    for h, a in zip(horizons, td_auc(y_ref, yw, risk, horizons), strict=True):
        out[f"auc_{_h(h)}"] = a
    out["ibs"] = ibs(y_ref, yw, surv_grid, grid) if surv_grid is not None else NAN
    return out


def _h(h: float) -> str:
    return f"{h:g}"


def bootstrap_replicates[T](evaluate: Callable[[np.ndarray, int], T], n: int, n_boot: int, seed: int,
                            n_jobs: int = 1) -> list[T]:
    """The paired patient bootstrap shared by :func:`bootstrap_metrics` and :func:`paired_c_difference`:
    ``evaluate(rows, b)`` for replicates ``b = 0 .. n_boot - 1``, in order.

    ``rows`` are ``n`` patient indices drawn with replacement; all ``n_boot`` draws come from one
    ``numpy.random.default_rng(seed)`` before any is evaluated, so the replicates (and a caller's
    pairing: every model evaluated on the same ``rows``) do not depend on ``n_jobs``. With
    ``n_jobs > 1`` and at least 50 replicates they are evaluated in joblib worker processes.
    ``evaluate`` chooses what a replicate is (e.g. the CV repeat ``b mod R`` it scores)."""
    rng = np.random.default_rng(seed)
    draws = [rng.integers(0, n, n) for _ in range(int(n_boot))]
    return parallel_map(evaluate, [(rows, b) for b, rows in enumerate(draws)], n_jobs if n_boot >= 50 else 1)


def bootstrap_metrics(
    y_ref: np.ndarray,
    y: np.ndarray,
    sets: Mapping[str, Sequence[tuple[np.ndarray, np.ndarray | None]]],
    grid: np.ndarray,
    horizons: Sequence[float],
    tau: float | None,
    n_boot: int,
    seed: int,
    reference: str | None = "volume",
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Point estimates and paired percentile bootstrap CIs for several models.

    Args:
        y_ref: the censoring reference set: the evaluated model's training patients
            (see module docstring).
        y: outcomes of the evaluated patients (one row per patient).
        sets: model name -> list (one entry per CV repeat, or a single entry for a
            validation set) of ``(risk, surv_grid)``, rows aligned with ``y``.
        n_boot: bootstrap replicates (0: no CI).
        reference: model whose Harrell/Uno C is subtracted for the paired
            differences ``delta_<metric>_vs_<reference>`` (skipped if absent).
        n_jobs: worker processes for the replicates (drawn beforehand from ``seed``,
            so the result does not depend on it).

    The point estimate of a metric is the mean over the model's repeats. Bootstrap
    replicate ``b`` draws one set of patients (with replacement), used for every
    model, and evaluates repeat ``b mod R``: the CI reflects patient sampling and the
    variation between CV repeats, at the cost of one evaluation per replicate.

    Returns:
        Long table: ``model, metric, estimate, ci_low, ci_high, interval, n_boot_valid``
        (``interval``: :data:`INTERVAL_BOOTSTRAP`, empty when there is no CI).
    """
    def evaluate(rows: np.ndarray, rep: int | None) -> dict[str, dict[str, float]]:
        warnings.simplefilter("ignore", RuntimeWarning)  # (also in worker processes)
        res: dict[str, dict[str, float]] = {}
        yy = y[rows]
        for name, reps in sets.items():
            use = reps if rep is None else [reps[rep % len(reps)]]
            vals = [point_metrics(y_ref, yy, risk[rows], None if surv is None else surv[rows],
                                  grid, horizons, tau) for risk, surv in use]
            res[name] = {k: float(np.nanmean([v[k] for v in vals])) if any(np.isfinite(v[k]) for v in vals)
                         else NAN for k in vals[0]}
        if reference and reference in res:
            for name in res:
                if name == reference:
                    continue
                for k in ("harrell_c", "uno_c"):
                    res[name][f"delta_{k}_vs_{reference}"] = res[name][k] - res[reference][k]
        return res

    n = len(y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        point = evaluate(np.arange(n), None)
        boots = bootstrap_replicates(evaluate, n, n_boot, seed, n_jobs=n_jobs)
    rows = []
    for name, mets in point.items():
        for k, est in mets.items():
            vals = np.array([b[name][k] for b in boots], dtype=float)
            vals = vals[np.isfinite(vals)]
            ok = len(vals) >= max(10, n_boot // 2)
            lo, hi = (np.percentile(vals, [2.5, 97.5]) if ok else (NAN, NAN))
            rows.append({"model": name, "metric": k, "estimate": est, "ci_low": float(lo), "ci_high": float(hi),
                         "interval": INTERVAL_BOOTSTRAP if ok else "", "n_boot_valid": int(len(vals))})
    return pd.DataFrame(rows, columns=PERFORMANCE_COLUMNS)


def paired_c_difference(a: pd.DataFrame, b: pd.DataFrame, n_boot: int, seed: int) -> dict[str, float]:
    """Harrell's C of held-out predictions ``b`` minus that of ``a`` (the same patients, e.g. one
    study with and without a preprocessing step), with a paired percentile bootstrap CI.

    ``a`` and ``b``: one row per patient and CV repeat, columns ``patient_id, repeat, time, event,
    risk_score`` (one model's rows of :class:`radsurv.modelling.study.StudyResult`
    ``predictions_all``). As in :func:`bootstrap_metrics`, the point estimate is the mean over
    repeats of the pooled C, and replicate ``k`` draws one set of patients (with replacement),
    used for both, and evaluates repeat ``k mod R`` (the same draws: :func:`bootstrap_replicates`).
    Returns ``estimate, ci_low, ci_high``, ``c_a``, ``c_b``, ``p_boot_le_0`` (share of replicates
    whose difference is <= 0) and ``n_boot_valid``."""
    cols = ["patient_id", "repeat", "time", "event", "risk_score"]
    m = a[cols].merge(b[cols], on=["patient_id", "repeat"], suffixes=("_a", "_b"), validate="one_to_one")
    if len(m) != len(a) or len(m) != len(b):
        raise ValueError(f"a ({len(a)} rows) and b ({len(b)} rows) do not hold the same patients and repeats")
    if not (np.allclose(m["time_a"], m["time_b"]) and (m["event_a"] == m["event_b"]).all()):
        raise ValueError("a and b disagree on a patient's outcome")
    reps = sorted(m["repeat"].unique())
    per = [m[m["repeat"] == r].sort_values("patient_id") for r in reps]
    ids = per[0]["patient_id"].to_numpy()
    if any(not np.array_equal(p["patient_id"].to_numpy(), ids) for p in per):
        raise ValueError("every repeat must hold the same patients")
    t, e = per[0]["time_a"].to_numpy(float), per[0]["event_a"].to_numpy(int)
    ra = [p["risk_score_a"].to_numpy(float) for p in per]
    rb = [p["risk_score_b"].to_numpy(float) for p in per]

    def difference(rows: np.ndarray, k: int) -> float:
        j = k % len(reps)
        return harrell_c(t[rows], e[rows], rb[j][rows]) - harrell_c(t[rows], e[rows], ra[j][rows])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        c_a = float(np.mean([harrell_c(t, e, r) for r in ra]))
        c_b = float(np.mean([harrell_c(t, e, r) for r in rb]))
        diffs = bootstrap_replicates(difference, len(ids), n_boot, seed)
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    lo, hi = np.percentile(d, [2.5, 97.5]) if len(d) else (NAN, NAN)
    return {"estimate": c_b - c_a, "ci_low": float(lo), "ci_high": float(hi), "c_a": c_a, "c_b": c_b,
            "p_boot_le_0": float(np.mean(d <= 0)) if len(d) else NAN, "n_boot_valid": int(len(d))}


# --------------------------------------------------------------------------- calibration


def calibration_table(time: np.ndarray, event: np.ndarray, surv_h: np.ndarray, horizon: float,
                      n_groups: int = 4) -> pd.DataFrame:
    """Predicted vs observed survival at ``horizon`` in groups of predicted risk.

    Patients are cut into ``n_groups`` quantile groups of predicted ``S(horizon)``;
    per group the mean prediction is compared with the Kaplan-Meier estimate at the
    horizon (sksurv ``kaplan_meier_estimator`` with log-log 95% CI). The row
    ``group = "all"`` is calibration-in-the-large.

    Returns:
        Columns ``group, n, events, predicted, observed, observed_ci_low, observed_ci_high``.
    """
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    surv_h = np.asarray(surv_h, float)
    groups = pd.qcut(pd.Series(-surv_h).rank(method="first"), q=min(n_groups, len(surv_h)),
                     labels=False) if len(surv_h) >= n_groups else pd.Series(np.zeros(len(surv_h), int))
    rows = []
    for g, mask in [*(((str(int(k) + 1)), (groups == k).to_numpy()) for k in sorted(groups.unique())),
                    ("all", np.ones(len(time), bool))]:
        obs, lo, hi = _km_at(time[mask], event[mask], horizon)
        rows.append({"group": g, "n": int(mask.sum()), "events": int(event[mask].sum()),
                     "predicted": float(np.mean(surv_h[mask])), "observed": obs,
                     "observed_ci_low": lo, "observed_ci_high": hi})
    return pd.DataFrame(rows)


def _km_at(time: np.ndarray, event: np.ndarray, h: float) -> tuple[float, float, float]:
    if len(time) == 0 or h < 0:
        return NAN, NAN, NAN
    if h >= time.max() and not event[time == time.max()].any():
        return NAN, NAN, NAN  # beyond follow-up: KM not defined there
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t, s, ci = kaplan_meier_estimator(event, time, conf_type="log-log")
    except ValueError:
        return NAN, NAN, NAN
    i = np.searchsorted(t, h, side="right") - 1
    if i < 0:
        return 1.0, 1.0, 1.0
    return float(s[i]), float(ci[0][i]), float(ci[1][i])


def calibration_slope(time: np.ndarray, event: np.ndarray, surv_h: np.ndarray) -> tuple[float, float, float]:
    """Calibration slope: Cox coefficient of ``log(-log S_pred(h))`` (1 = ideal; < 1:
    predictions too extreme, i.e. overfitting). Returns ``(slope, ci_low, ci_high)``."""
    from lifelines import CoxPHFitter

    s = np.clip(np.asarray(surv_h, float), 1e-10, 1 - 1e-10)
    x = np.log(-np.log(s))
    if np.asarray(event).sum() < 2 or np.std(x) == 0:
        return NAN, NAN, NAN
    df = pd.DataFrame({"x": x, "time": np.asarray(time, float), "event": np.asarray(event, int)})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")
    except Exception:  # noqa: BLE001 - convergence failure -> not estimable
        return NAN, NAN, NAN
    r = cph.summary.loc["x"]
    vals = (float(r["coef"]), float(r["coef lower 95%"]), float(r["coef upper 95%"]))
    return vals if all(math.isfinite(v) for v in vals) else (NAN, NAN, NAN)


def as_plain(d: Mapping[str, Any]) -> dict[str, Any]:
    """NaN -> None for JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}
