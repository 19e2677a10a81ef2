"""The Radiomics Quality Score (RQS) items the pipeline can answer, and those it cannot.

Lambin P. et al. "Radiomics: the bridge between medical imaging and personalized
medicine." Nat Rev Clin Oncol 14, 749-762 (2017), Table 2: 16 components,
-8 to +36 points. radsurv fills an item only from what it did in this run
(``StudyFacts``); items that depend on things outside the pipeline (protocol
documentation, phantom studies, prospective registration, clinical utility,
data sharing) are listed with what the user still has to supply. Points are
never claimed for something the run did not do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PIPELINE = "met by this run"
NOT_MET = "not met by this run"
USER = "supply yourself"


@dataclass(frozen=True)
class StudyFacts:
    """What the run did, as read from its result files."""

    test_retest_pairs: int = 0
    robustness_assessed: bool = False
    perturbation: bool = False
    contour_perturbation: bool = False
    feature_reduction: bool = True
    clinical_model: bool = False
    risk_groups: bool = True
    discrimination_with_ci: bool = False
    calibration: bool = False
    validation: str = "internal"          # "none" | "internal" | "external"
    n_external_cohorts: int = 0
    baseline_comparison: bool = False


def _row(n: int, item: str, criterion: str, points: int | None, status: str, evidence: str) -> dict[str, Any]:
    return {"rqs": n, "item": item, "criterion": criterion, "points": points, "status": status,
            "evidence": evidence}


def _met(done: bool, points: int) -> tuple[int, str]:
    """``(points, status)`` of an item the pipeline earns when it did the thing."""
    return (points, PIPELINE) if done else (0, NOT_MET)


def _imaging_items(f: StudyFacts) -> list[dict[str, Any]]:
    """Items 1-4: protocol, segmentation variability, phantom, test-retest."""
    seg = f.contour_perturbation
    tr = f.robustness_assessed and f.test_retest_pairs > 0
    return [
        _row(1, "Image protocol quality", "+1 protocol well documented; +1 public protocol used", None, USER,
             "acquisition protocols are not in DICOM headers radsurv reads; describe them"),
        _row(2, "Multiple segmentations", "+1 robustness to segmentation variability analysed", *_met(seg, 1),
             "contour randomisation in the perturbation analysis" if seg
             else "no contour perturbation or second observer in this run"),
        _row(3, "Phantom study on all scanners", "+1 feature variability across scanners on a phantom", None, USER,
             "radsurv's IBSI phantom compliance test concerns the software, not your scanners"),
        _row(4, "Imaging at multiple time points", "+1 test-retest (or time-point) robustness analysed",
             *_met(tr, 1),
             f"ICC over {f.test_retest_pairs} test-retest pairs" if tr else "no test-retest pairs analysed"),
    ]


def _analysis_items(f: StudyFacts) -> list[dict[str, Any]]:
    """Items 5-11: feature reduction, multivariable model, biology, cut-off, discrimination,
    calibration, prospective registration."""
    reduction = (3, PIPELINE) if f.feature_reduction else (-3, NOT_MET)
    return [
        _row(5, "Feature reduction or adjustment for multiple testing", "-3 if not done; +3 if done", *reduction,
             "robustness filter, correlation clustering and univariate screen inside the training data"),
        _row(6, "Multivariable analysis with non-radiomics features", "+1 clinical/genomic features combined",
             *_met(f.clinical_model, 1),
             "clinical + radiomics model fitted" if f.clinical_model else "no combined clinical model in this run"),
        _row(7, "Detect and discuss biological correlates", "+1", None, USER,
             "biological interpretation is the authors' work"),
        _row(8, "Cut-off analyses", "+1 risk groups with a pre-specified cut-off (median, tertiles...)",
             *_met(f.risk_groups, 1),
             "cut-off chosen on training scores and applied unchanged to held-out patients"),
        _row(9, "Discrimination statistics", "+1 statistic and significance; +1 resampling method",
             2 if f.discrimination_with_ci else 1, PIPELINE,
             "C-index with bootstrap 95% CI" if f.discrimination_with_ci else "C-index without CI"),
        _row(10, "Calibration statistics", "+1 calibration statistic; +1 resampling method",
             *_met(f.calibration, 2),
             "calibration at the configured horizons" if f.calibration else "no calibration in this run"),
        _row(11, "Prospective study registered in a trial database", "+7", None, USER, "study design"),
    ]


def _validation_item(f: StudyFacts) -> dict[str, Any]:
    """Item 12: none (-5), internal (+2) or external validation (+3 to +5 by the number of cohorts)."""
    criterion = "-5 none; +2 internal; +3..+5 external"
    if f.validation == "external":
        pts = 3 if f.n_external_cohorts <= 1 else (4 if f.n_external_cohorts == 2 else 5)
        ev = f"validated on {f.n_external_cohorts} external cohort(s)"
        return _row(12, "Validation", criterion, pts, PIPELINE, ev)
    if f.validation == "internal":
        return _row(12, "Validation", criterion, 2, PIPELINE,
                    "internal validation only (held-out split or cross-validation of one cohort)")
    return _row(12, "Validation", criterion, -5, NOT_MET, "no validation")


def _utility_items(f: StudyFacts) -> list[dict[str, Any]]:
    """Items 13-16: gold standard, clinical utility, cost-effectiveness, open science."""
    return [
        _row(13, "Comparison to 'gold standard'", "+2 compared with the current clinical standard",
             *_met(f.baseline_comparison, 2),
             "compared with clinical-only and volume-only baselines" if f.baseline_comparison
             else "only the volume-only baseline was reported" if not f.clinical_model else "no baseline"),
        _row(14, "Potential clinical utility", "+2 (e.g. decision curve analysis)", None, USER, "not computed"),
        _row(15, "Cost-effectiveness analysis", "+1", None, USER, "not computed"),
        _row(16, "Open science and data", "+1 each: scans, segmentations, code, features open", 1, PIPELINE,
             "code: radsurv is open source and the report records its version and config (+1); "
             "sharing scans, segmentations and the feature table is up to you"),
    ]


def rqs_items(f: StudyFacts) -> list[dict[str, Any]]:
    """One row per RQS component: criterion, points this run earns, status, evidence."""
    return [*_imaging_items(f), *_analysis_items(f), _validation_item(f), *_utility_items(f)]


def rqs_total(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(points earned by the run, the most the user could still add from the open items)."""
    earned = sum(r["points"] for r in rows if isinstance(r["points"], int))
    open_max = {1: 2, 3: 1, 7: 1, 11: 7, 14: 2, 15: 1, 16: 3}
    return earned, sum(v for k, v in open_max.items() if any(r["rqs"] == k for r in rows))
