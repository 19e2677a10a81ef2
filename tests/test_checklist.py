"""RQS items are claimed only for what the run did (Lambin et al. 2017, Table 2)."""

from __future__ import annotations

from radsurv.report.checklist import NOT_MET, PIPELINE, USER, StudyFacts, rqs_items, rqs_total


def _by(rows):
    return {r["rqs"]: r for r in rows}


def test_all_sixteen_components_listed_once():
    rows = rqs_items(StudyFacts())
    assert sorted(r["rqs"] for r in rows) == list(range(1, 17))


def test_minimal_run_claims_little():
    rows = _by(rqs_items(StudyFacts(feature_reduction=True, validation="internal")))
    assert rows[4]["points"] == 0 and rows[4]["status"] == NOT_MET       # no test-retest
    assert rows[10]["points"] == 0 and rows[2]["points"] == 0
    assert rows[12]["points"] == 2
    assert rows[11]["status"] == USER and rows[11]["points"] is None
    earned, open_max = rqs_total(list(rows.values()))
    assert earned == 3 + 1 + 1 + 2 + 1   # reduction, cut-off, C-index, internal validation, open code
    assert open_max == 17


def test_full_run_claims_what_it_did():
    facts = StudyFacts(test_retest_pairs=15, robustness_assessed=True, contour_perturbation=True,
                       clinical_model=True, discrimination_with_ci=True, calibration=True,
                       validation="external", n_external_cohorts=2, baseline_comparison=True)
    rows = _by(rqs_items(facts))
    assert rows[4]["status"] == PIPELINE and "15 test-retest pairs" in rows[4]["evidence"]
    assert rows[12]["points"] == 4 and rows[13]["points"] == 2 and rows[10]["points"] == 2
    earned, _ = rqs_total(list(rows.values()))
    assert earned == 1 + 1 + 3 + 1 + 1 + 2 + 2 + 4 + 2 + 1


def test_no_reduction_and_no_validation_are_penalised():
    rows = _by(rqs_items(StudyFacts(feature_reduction=False, validation="none")))
    assert rows[5]["points"] == -3 and rows[12]["points"] == -5


def test_report_pivots_robust_counts():
    import pandas as pd

    from radsurv.report.summaries import robust_counts_pivot

    by = pd.DataFrame({"image_type": ["original", "original", "wavelet-HHH"],
                       "feature_class": ["shape", "glcm", "glcm"], "robust": [11, 0, 4], "total": [17, 24, 24]})
    wide = robust_counts_pivot(by).set_index("image type")
    assert wide.loc["original", "shape"] == "11/17" and wide.loc["wavelet-HHH", "shape"] == ""
    assert wide.loc["original", "all classes"] == "11/41"
