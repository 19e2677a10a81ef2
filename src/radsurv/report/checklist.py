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


def rqs_items(f: StudyFacts) -> list[dict[str, Any]]:
    """One row per RQS component: criterion, points this run earns, status, evidence."""
    rows: list[dict[str, Any]] = []

    def add(n: int, item: str, criterion: str, points: int | None, status: str, evidence: str) -> None:
        rows.append({"rqs": n, "item": item, "criterion": criterion, "points": points,
                     "status": status, "evidence": evidence})

    add(1, "Image protocol quality", "+1 protocol well documented; +1 public protocol used", None, USER,
        "acquisition protocols are not in DICOM headers radsurv reads; describe them")
    seg = f.contour_perturbation
    add(2, "Multiple segmentations", "+1 robustness to segmentation variability analysed",
        1 if seg else 0, PIPELINE if seg else NOT_MET,
        "contour randomisation in the perturbation analysis" if seg
        else "no contour perturbation or second observer in this run")
    add(3, "Phantom study on all scanners", "+1 feature variability across scanners on a phantom", None, USER,
        "radsurv's IBSI phantom compliance test concerns the software, not your scanners")
    tr = f.robustness_assessed and f.test_retest_pairs > 0
    add(4, "Imaging at multiple time points", "+1 test-retest (or time-point) robustness analysed",
        1 if tr else 0, PIPELINE if tr else NOT_MET,
        f"ICC over {f.test_retest_pairs} test-retest pairs" if tr else "no test-retest pairs analysed")
    add(5, "Feature reduction or adjustment for multiple testing", "-3 if not done; +3 if done",
        3 if f.feature_reduction else -3, PIPELINE if f.feature_reduction else NOT_MET,
        "robustness filter, correlation clustering and univariate screen inside the training data")
    add(6, "Multivariable analysis with non-radiomics features", "+1 clinical/genomic features combined",
        1 if f.clinical_model else 0, PIPELINE if f.clinical_model else NOT_MET,
        "clinical + radiomics model fitted" if f.clinical_model else "no combined clinical model in this run")
    add(7, "Detect and discuss biological correlates", "+1", None, USER,
        "biological interpretation is the authors' work")
    add(8, "Cut-off analyses", "+1 risk groups with a pre-specified cut-off (median, tertiles...)",
        1 if f.risk_groups else 0, PIPELINE if f.risk_groups else NOT_MET,
        "cut-off chosen on training scores and applied unchanged to held-out patients")
    disc = 2 if f.discrimination_with_ci else 1
    add(9, "Discrimination statistics", "+1 statistic and significance; +1 resampling method",
        disc, PIPELINE, "C-index with bootstrap 95% CI" if f.discrimination_with_ci else "C-index without CI")
    add(10, "Calibration statistics", "+1 calibration statistic; +1 resampling method",
        2 if f.calibration else 0, PIPELINE if f.calibration else NOT_MET,
        "calibration at the configured horizons" if f.calibration else "no calibration in this run")
    add(11, "Prospective study registered in a trial database", "+7", None, USER, "study design")
    if f.validation == "external":
        pts = 3 if f.n_external_cohorts <= 1 else (4 if f.n_external_cohorts == 2 else 5)
        ev = f"validated on {f.n_external_cohorts} external cohort(s)"
        add(12, "Validation", "-5 none; +2 internal; +3..+5 external", pts, PIPELINE, ev)
    elif f.validation == "internal":
        add(12, "Validation", "-5 none; +2 internal; +3..+5 external", 2, PIPELINE,
            "internal validation only (held-out split or cross-validation of one cohort)")
    else:
        add(12, "Validation", "-5 none; +2 internal; +3..+5 external", -5, NOT_MET, "no validation")
    add(13, "Comparison to 'gold standard'", "+2 compared with the current clinical standard",
        2 if f.baseline_comparison else 0, PIPELINE if f.baseline_comparison else NOT_MET,
        "compared with clinical-only and volume-only baselines" if f.baseline_comparison
        else "only the volume-only baseline was reported" if not f.clinical_model else "no baseline")
    add(14, "Potential clinical utility", "+2 (e.g. decision curve analysis)", None, USER, "not computed")
    add(15, "Cost-effectiveness analysis", "+1", None, USER, "not computed")
    add(16, "Open science and data", "+1 each: scans, segmentations, code, features open", 1, PIPELINE,
        "code: radsurv is open source and the report records its version and config (+1); "
        "sharing scans, segmentations and the feature table is up to you")
    return rows


def rqs_total(rows: list[dict[str, Any]]) -> tuple[int, int]:
    """(points earned by the run, the most the user could still add from the open items)."""
    earned = sum(r["points"] for r in rows if isinstance(r["points"], int))
    open_max = {1: 2, 3: 1, 7: 1, 11: 7, 14: 2, 15: 1, 16: 3}
    return earned, sum(v for k, v in open_max.items() if any(r["rqs"] == k for r in rows))
