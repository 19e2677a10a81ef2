"""Issue 15, item 10: what the report says matches what the analysis did.

Each test fails on the code before the fix: RQS item 4 read a key the robustness
summary does not write; the development KM title ran off the PNG; the forest plot
had no interval at all; the headline did not say that held-out risk groups come
from repeat 1 while the C-index averages every repeat, nor that radiomics does not
beat tumour volume significantly; a final-model feature that is a volume surrogate
went unmentioned.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")


# ------------------------------------------------------------------ RQS item 4
def _summary(pairs: int, assessed: bool = True, method: str = "test-retest") -> dict:
    """robustness/summary.json as stages.robustness writes it (keys copied from that function)."""
    tr = {"analysis": "test-retest", "assessed": assessed, "pairs_found": pairs, "n": pairs, "k": 2,
          "form": "ICC(2,1)", "n_features": 100, "n_robust": 40, "by_class": []}
    return {"assessed": assessed, "pairs_found": pairs, "pairs_used": pairs, "form": "ICC(2,1)",
            "threshold": 0.75, "use_lower_bound": True, "n_features": 100, "n_robust": 40, "by_class": [],
            "method": method, "combine": None, "description": "", "analyses": {"test-retest": tr},
            "agreement_test_retest_vs_perturbation": None}


def test_rqs_item_4_counts_the_pairs_the_analysis_used() -> None:
    from radsurv.report.checklist import PIPELINE, rqs_items
    from radsurv.report.summaries import study_facts

    facts = study_facts(_summary(20), {"by_model": {"radiomics": {}}}, pd.DataFrame())
    row = {r["rqs"]: r for r in rqs_items(facts)}[4]
    assert facts.test_retest_pairs == 20
    assert row["status"] == PIPELINE and row["points"] == 1 and row["evidence"] == "ICC over 20 test-retest pairs"
    # 'both': test-retest not assessed (too few pairs) but perturbation was -> no RQS 4 point
    both = _summary(2, assessed=True, method="both")
    both["analyses"]["test-retest"]["assessed"] = False
    row = {r["rqs"]: r for r in rqs_items(study_facts(both, {}, pd.DataFrame()))}[4]
    assert row["points"] == 0


# ------------------------------------------------------------------ KM title
def test_development_km_title_is_not_cut_off(tmp_path: Path) -> None:
    from matplotlib.image import imread

    from radsurv.report.km import plot_km

    rng = np.random.default_rng(1)
    n = 40
    pred = pd.DataFrame({"set": "train", "time": rng.exponential(20, n), "event": rng.integers(0, 2, n),
                         "risk_group": np.where(np.arange(n) < n // 2, "low", "high")})
    out = tmp_path / "km.png"
    # the title stages.km_figure gives the development figure
    plot_km(pred, out, subset="train",
            title="Development cohort, final model (apparent, optimistic): radiomic risk groups")
    img = imread(out)[..., :3]
    dark = img.min(axis=2) < 0.6
    top = dark[: int(0.15 * len(dark))]  # the title band
    assert top.any(), "no title drawn"
    cols = np.flatnonzero(top.any(axis=0))
    # text cut at the figure edge touches the first or last pixel column
    assert cols.min() > 5 and cols.max() < top.shape[1] - 6, (cols.min(), cols.max(), top.shape)


def test_held_out_km_title_says_repeat_1_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from radsurv.report import km as kmplot
    from radsurv.workflow.report import km_figure

    seen: dict[str, str] = {}
    monkeypatch.setattr(kmplot, "plot_km", lambda *a, **k: seen.update(title=k["title"]))
    pred = pd.DataFrame({"patient_id": ["a", "b", "c", "d"], "set": "test", "fold": [1, 2, 1, 2],
                         "time": [1.0, 2, 3, 4], "event": [1, 0, 1, 1], "risk_group": ["low", "high"] * 2})
    pred.to_csv(tmp_path / "p.tsv", sep="\t", index=False)
    km_figure(predictions=tmp_path / "p.tsv", final_predictions=tmp_path / "none.tsv", figure=tmp_path / "km.png",
              subset="test", time_unit="months")
    assert "CV repeat 1 only" in seen["title"] and "mean over all repeats" in seen["title"]


# ------------------------------------------------------------------ forest
def _perf(delta: tuple[float, float, float] = (0.02, -0.05, 0.09)) -> pd.DataFrame:
    rows = [("radiomics", "harrell_c", 0.66, 0.58, 0.74), ("volume", "harrell_c", 0.64, 0.56, 0.72),
            ("clinical", "harrell_c", 0.60, 0.52, 0.68), ("radiomics", "delta_harrell_c_vs_volume", *delta),
            ("clinical", "delta_harrell_c_vs_volume", -0.04, -0.12, 0.05)]
    return pd.DataFrame([{"model": m, "set": "cross-validated", "metric": k, "estimate": e, "ci_low": lo,
                          "ci_high": hi, "n_boot_valid": 200} for m, k, e, lo, hi in rows])


def test_forest_plot_draws_the_intervals_that_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from matplotlib.collections import LineCollection
    from matplotlib.figure import Figure

    from radsurv.report.figures import plot_forest

    figs: list[Figure] = []
    real = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (figs.append(self), real(self, *a, **k))[1])
    coefs = pd.DataFrame({"model": "radiomics", "feature": ["original_glcm_Idm", "original_shape_Sphericity"],
                          "coef": [0.3, -0.2], "hr_per_sd": [1.35, 0.82]})
    plot_forest(coefs, tmp_path / "forest.png", performance=_perf())
    fig = figs[-1]
    titles = " ".join(ax.get_title() for ax in fig.axes)
    # penalised Cox: no CI for the coefficients, and the figure says so instead of implying one
    assert "point estimates only" in titles
    # the performance intervals: 3 C-indices + 2 differences to volume, each with its CI segment
    segs = [s for ax in fig.axes for c in ax.collections if isinstance(c, LineCollection) for s in c.get_segments()]
    spans = sorted(round(float(s[1][0] - s[0][0]), 3) for s in segs)
    assert spans == sorted([0.16, 0.16, 0.16, 0.14, 0.17]), spans
    # coefficients that do have CIs get them drawn
    figs.clear()
    plot_forest(coefs.assign(hr_ci_low=[1.1, 0.7], hr_ci_high=[1.6, 0.95]), tmp_path / "f2.png")
    ax = figs[-1].axes[0]
    assert "with 95% CI" in ax.get_title()
    assert sum(len(c.get_segments()) for c in ax.collections if isinstance(c, LineCollection)) == 2


# ------------------------------------------------------------------ headline
METRICS = {"design": "cv", "design_description": "3 x repeated stratified 5-fold CV; inner 3-fold tuning",
           "primary_model": "radiomics", "c_index_test": 0.66, "c_index_test_ci_low": 0.58,
           "c_index_test_ci_high": 0.74, "n_test": 120, "events_test": 80, "c_index_volume_test": 0.64,
           "logrank_p_test": 0.03, "hr_high_vs_low_test": 1.6, "hr_ci_low_test": 1.05, "hr_ci_high_test": 2.4}


def test_headline_says_which_repeat_and_whether_radiomics_beats_volume() -> None:
    from radsurv.report.summaries import cv_repeats, headline, versus_volume

    assert cv_repeats(METRICS) == 3 and cv_repeats(METRICS, {"modelling": {"cv_repeats": 5}}) == 5
    assert cv_repeats({**METRICS, "design": "split"}) == 1
    text = headline(METRICS, _perf(), repeats=3)
    assert "mean over the 3 repeats of the cross-validation" in text
    assert "log-rank p between held-out risk groups (repeat 1 of 3 only): 0.03" in text
    assert "hazard ratio high vs low risk (repeat 1 of 3 only): 1.60" in text
    assert ("the radiomics model does NOT discriminate significantly better than tumour volume alone "
            "(difference in C +0.020, 95% paired bootstrap CI -0.050 to +0.090, which includes 0)") in text
    assert "discriminates better than tumour volume alone" in versus_volume(_perf((0.08, 0.02, 0.15)))
    assert "WORSE" in versus_volume(_perf((-0.08, -0.15, -0.02)))
    assert versus_volume(pd.DataFrame()) == ""
    one = headline({**METRICS, "design": "split"}, _perf(), repeats=1)
    assert "repeat" not in one and "NOT discriminate significantly" in one


def test_volume_surrogate_in_final_model_is_named() -> None:
    from radsurv.report.summaries import volume_surrogates_in_model

    coefs = pd.DataFrame({"model": ["radiomics", "radiomics", "clinical"],
                          "feature": ["original_glrlm_RunLengthNonUniformity", "original_glcm_Idm", "age"]})
    volcorr = pd.DataFrame({"feature": ["original_shape_MeshVolume", "original_glrlm_RunLengthNonUniformity",
                                        "original_glcm_Idm"], "spearman_rho": [1.0, 0.97, 0.2],
                            "volume_surrogate": [True, True, False]})
    hit = volume_surrogates_in_model(coefs, volcorr)
    assert hit.to_dict(orient="records") == [{"feature": "original_glrlm_RunLengthNonUniformity",
                                              "spearman_rho": 0.97}]
    assert volume_surrogates_in_model(coefs, pd.DataFrame()).empty


@pytest.mark.e2e
def test_rendered_report_of_the_tiny_run(tiny_run: Path, tiny_report_inputs, tmp_path: Path) -> None:
    """The real report: RQS 4 counts the pairs used, repeat and volume notes, surrogate note."""
    from radsurv.report.html import write_report

    html = (tiny_run / "report" / "report.html").read_text()
    summary = json.loads((tiny_run / "robustness" / "summary.json").read_text())
    assert summary["pairs_used"] > 0
    assert f"ICC over {summary['pairs_used']} test-retest pairs" in html
    assert "no test-retest pairs analysed" not in html
    perf = pd.read_csv(tiny_run / "model" / "performance.tsv", sep="\t")
    if not perf[perf.metric == "delta_harrell_c_vs_volume"].empty:
        assert "than tumour volume alone" in html
    # a final-model feature flagged as a volume surrogate is pointed out in the model section
    coefs = pd.read_csv(tiny_run / "model" / "coefficients.tsv", sep="\t")
    feature = coefs.loc[coefs.model == "radiomics", "feature"].iloc[0]
    volcorr = pd.read_csv(tiny_run / "features" / "volume_correlation.tsv", sep="\t")
    volcorr.loc[volcorr.feature == feature, ["spearman_rho", "volume_surrogate"]] = [0.96, True]
    volcorr.to_csv(tmp_path / "volume_correlation.tsv", sep="\t", index=False)
    inputs, config = tiny_report_inputs
    inputs["volume_correlation"] = str(tmp_path / "volume_correlation.tsv")
    config.setdefault("modelling", {})["volume_surrogate_rho"] = 0.95  # the report states the configured cut
    write_report(inputs, config, tmp_path / "report.html")
    out = (tmp_path / "report.html").read_text()
    model_section = out[out.index('id="model"'):out.index('id="km"')]
    assert f"{feature} (Spearman rho +0.96)" in model_section and "volume surrogate" in model_section
    assert "tumour volume &ge; 0.95 across patients" in model_section
