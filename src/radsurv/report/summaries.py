"""Summaries the report states in words and small tables: cohort counts, robust-feature counts, the
survival model's headline sentence and its comparison with tumour volume, volume surrogates among the
final model's features, and the facts of the run for the RQS checklist. Pure functions of the result
tables (:mod:`radsurv.report.html` lays them out)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["cohort_summary", "cv_repeats", "headline", "median_followup", "robust_counts_pivot", "study_facts",
           "versus_volume", "volume_surrogates_in_model"]


def median_followup(time: pd.Series, event: pd.Series) -> float:
    """Median follow-up by the reverse Kaplan-Meier method (censoring as the event)."""
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter().fit(time, 1 - event)
    return float(kmf.median_survival_time_)


def cohort_summary(scans: pd.DataFrame, features: pd.DataFrame, clinical: pd.DataFrame,
                   predictions: pd.DataFrame, robustness: Mapping[str, Any]) -> pd.DataFrame:
    """Key counts of the cohort as a two-column table (the survival rows only with ``predictions``)."""
    rows = [
        ("patients with a discovered scan", scans["patient_id"].nunique()),
        ("scans discovered", len(scans)),
        ("scans with features", len(features)),
        ("test-retest pairs used", robustness.get("pairs_used", 0)),
        ("patients in the clinical table (usable rows)", len(clinical)),
    ]
    if predictions.empty:
        return pd.DataFrame(rows, columns=["quantity", "value"])
    pats = predictions["patient_id"].nunique()
    events = int(predictions["event"].sum())
    rows += [
        ("patients modelled", pats),
        ("events among modelled patients", f"{events} ({100 * events / max(pats, 1):.0f}%)"),
        ("median follow-up (reverse Kaplan-Meier)",
         f"{median_followup(predictions['time'], predictions['event']):.1f}"),
    ]
    return pd.DataFrame(rows, columns=["quantity", "value"])


def robust_counts_pivot(by_class: pd.DataFrame) -> pd.DataFrame:
    """'robust/total' per image type (rows) and feature class (columns)."""
    cell = by_class.assign(cell=by_class["robust"].astype(int).astype(str) + "/" + by_class["total"].astype(str))
    wide = cell.pivot(index="image_type", columns="feature_class", values="cell").fillna("")
    totals = by_class.groupby("image_type")[["robust", "total"]].sum()
    wide["all classes"] = totals["robust"].astype(str) + "/" + totals["total"].astype(str)
    return wide.reset_index().rename(columns={"image_type": "image type"})


def _num(metrics: Mapping[str, Any], key: str) -> float | None:
    v = metrics.get(key)
    return None if v is None or (isinstance(v, float) and v != v) else float(v)


def cv_repeats(metrics: Mapping[str, Any], config: Mapping[str, Any] | None = None) -> int:
    """Number of repeats of the outer cross-validation (1 for a split design)."""
    if metrics.get("design", "cv") != "cv":
        return 1
    n = (config or {}).get("modelling", {}).get("cv_repeats") if config else None
    if n is None:
        m = re.match(r"\s*(\d+) x repeated", str(metrics.get("design_description", "")))
        n = int(m.group(1)) if m else 1
    return max(int(n), 1)


def versus_volume(performance: pd.DataFrame | None, model: str = "radiomics") -> str:
    """Whether ``model`` beats the volume-only baseline, from the paired bootstrap CI of the
    difference in held-out Harrell's C (``delta_harrell_c_vs_volume``); ``""`` when not computed."""
    if performance is None or performance.empty or "metric" not in performance:
        return ""
    d = performance[(performance["model"] == model) & (performance["metric"] == "delta_harrell_c_vs_volume")
                    & performance["set"].isin(["cross-validated", "validation"])]
    if d.empty:
        return ""
    e, lo, hi = (float(d.iloc[0][k]) for k in ("estimate", "ci_low", "ci_high"))
    if not all(map(math.isfinite, (e, lo, hi))):
        return f"difference in C to tumour volume alone: {e:+.3f} (no confidence interval could be computed)"
    diff = f"difference in C {e:+.3f}, 95% paired bootstrap CI {lo:+.3f} to {hi:+.3f}"
    if lo > 0:
        return f"the {model} model discriminates better than tumour volume alone ({diff})"
    if hi < 0:
        return f"the {model} model discriminates WORSE than tumour volume alone ({diff})"
    return (f"the {model} model does NOT discriminate significantly better than tumour volume alone "
            f"({diff}, which includes 0)")


def headline(metrics: Mapping[str, Any], performance: pd.DataFrame | None = None, repeats: int = 1) -> str:
    """The model's main results in one sentence (held-out data first).

    ``repeats`` > 1 (repeated cross-validation): the C-index is the mean over the repeats,
    while risk groups, log-rank p and hazard ratio are those of repeat 1 (as in the held-out
    Kaplan-Meier figure); the sentence says so. ``performance`` adds whether the model beats
    tumour volume alone (:func:`versus_volume`).
    """
    parts = []
    c = _num(metrics, "c_index_test")
    if c is not None:
        lo, hi = _num(metrics, "c_index_test_ci_low"), _num(metrics, "c_index_test_ci_high")
        ci = f" (95% bootstrap CI {lo:.2f}-{hi:.2f})" if lo is not None and hi is not None else ""
        mean = f", mean over the {repeats} repeats of the cross-validation" if repeats > 1 else ""
        parts.append(f"Harrell's C-index on {metrics.get('n_test', '?')} held-out patients "
                     f"({metrics.get('events_test', '?')} events): {c:.3f}{ci}{mean}")
    cv = _num(metrics, "c_index_volume_test")
    if cv is not None:
        parts.append(f"tumour volume alone: {cv:.3f}")
    vs = versus_volume(performance, str(metrics.get("primary_model", "radiomics")))
    if vs:
        parts.append(vs)
    p = _num(metrics, "logrank_p_test")
    which = f" (repeat 1 of {repeats} only)" if repeats > 1 else ""
    if p is not None:
        parts.append(f"log-rank p between held-out risk groups{which}: {p:.3g}")
    hr = _num(metrics, "hr_high_vs_low_test")
    if hr is not None:
        lo, hi = _num(metrics, "hr_ci_low_test"), _num(metrics, "hr_ci_high_test")
        ci = f" (95% CI {lo:.2f}-{hi:.2f})" if lo is not None and hi is not None else ""
        parts.append(f"hazard ratio high vs low risk{which}: {hr:.2f}{ci}")
    ct = _num(metrics, "c_index_train")
    if ct is not None:
        parts.append(f"training C-index (optimistic, for reference): {ct:.3f}")
    return "; ".join(parts) + "." if parts else "No model metrics could be computed."


def volume_surrogates_in_model(coefficients: pd.DataFrame, volume_correlation: pd.DataFrame,
                               model: str = "radiomics") -> pd.DataFrame:
    """Features of the final ``model`` flagged as volume surrogates (``volume_correlation.tsv``):
    feature, spearman_rho; empty when none (or either table is empty)."""
    cols = ["feature", "spearman_rho"]
    if coefficients.empty or volume_correlation.empty or "volume_surrogate" not in volume_correlation:
        return pd.DataFrame(columns=cols)
    feats = coefficients.loc[coefficients["model"] == model, "feature"] if "model" in coefficients \
        else coefficients["feature"]
    flagged = volume_correlation[volume_correlation["volume_surrogate"].astype(str).str.lower().isin(["true", "1"])]
    hit = flagged[flagged["feature"].isin(set(feats))]
    return hit[cols].reset_index(drop=True)


def _test_retest_facts(robustness: Mapping[str, Any]) -> tuple[int, bool]:
    """``(pairs used, assessed)`` of the test-retest analysis.

    robustness/summary.json (stages.robustness) has "pairs_used" at the top; the test-retest
    analysis's own summary calls the complete pairs "n" (and "pairs_found" the pairs discovered).
    """
    analyses = robustness.get("analyses") or {}
    tr = analyses.get("test-retest") if isinstance(analyses, Mapping) else None
    tr = tr if isinstance(tr, Mapping) else None
    pairs = int(robustness.get("pairs_used") or (tr or {}).get("n") or 0)
    assessed = bool(tr.get("assessed", False)) if tr is not None else bool(robustness.get("assessed", False))
    return pairs, assessed


def _contour_perturbed(robustness: Mapping[str, Any], perturbation_summary: Mapping[str, Any] | None) -> bool:
    """Whether the perturbation analysis (its summary) mentions a contour perturbation."""
    analyses = robustness.get("analyses") or {}
    pert = perturbation_summary or (analyses.get("perturbation") if isinstance(analyses, Mapping) else None)
    return bool(pert) and "contour" in json.dumps(pert).lower()


def study_facts(robustness: Mapping[str, Any], metrics: Mapping[str, Any], calibration: pd.DataFrame,
                perturbation_summary: Mapping[str, Any] | None = None) -> Any:
    """What this run did, for the RQS checklist (:mod:`radsurv.report.checklist`)."""
    from radsurv.report.checklist import StudyFacts

    method = str(robustness.get("method", "test-retest"))
    pairs, tr_assessed = _test_retest_facts(robustness)
    contour = _contour_perturbed(robustness, perturbation_summary)
    models = set((metrics.get("by_model") or {}).keys()) or set(metrics.get("models") or [])
    n_ext = int(metrics.get("n_external_cohorts", 0) or 0)
    return StudyFacts(
        test_retest_pairs=pairs,
        robustness_assessed=tr_assessed and method in ("test-retest", "both"),
        perturbation=method in ("perturbation", "both"),
        contour_perturbation=contour and method in ("perturbation", "both"),
        feature_reduction=True,
        clinical_model=bool(models & {"clinical", "combined"}),
        risk_groups=True,
        discrimination_with_ci=metrics.get("c_index_test_ci_low") is not None,
        calibration=not calibration.empty,
        validation="external" if n_ext else "internal",
        n_external_cohorts=n_ext,
        baseline_comparison=bool(models & {"clinical"}) and bool(models & {"volume"}),
    )
