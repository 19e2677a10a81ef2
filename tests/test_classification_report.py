"""Issue #17, report side: the figures and report sections of a categorical endpoint (from
predictions made by the real library), the radiogenomics rule's entry point, a report without
survival endpoint, the report rules' parse-time helpers and the demo's planted biology label."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.metrics import confusion_matrix, roc_auc_score

from radsurv.modelling.classification.design import run_classification_cv
from radsurv.modelling.classification.settings import ClassificationSettings
from radsurv.qc import QC_COLUMNS, qc_row, write_qc
from radsurv.report.classification import comparison_table, confusion_counts, endpoint_headline
from radsurv.report.html import write_report
from radsurv.synthetic.truth import HPV_LEVELS, simulate_cohort
from radsurv.workflow import rules as wf
from radsurv.workflow.biology import classification_figures, radiogenomics_screen

VOLUME = "original_shape_MeshVolume"


def _table(n: int = 60, seed: int = 3) -> tuple[pd.DataFrame, pd.Series]:
    """Features (two carry the label, one is volume, the rest noise) and a text label."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    ids = [f"P{i:03d}" for i in range(n)]
    X = pd.DataFrame(rng.normal(size=(n, 8)), index=ids, columns=[f"original_firstorder_noise{j}" for j in range(8)])
    X["original_glcm_signal_a"] = rng.normal(size=n) + 1.6 * y
    X["original_glcm_signal_b"] = rng.normal(size=n) + 1.0 * y
    X[VOLUME] = np.exp(rng.normal(2.5, 0.6, n))
    labels = pd.Series(np.where(y == 1, "positive", "negative"), index=ids, name="hpv_status")
    labels.iloc[0] = None  # a missing label: left out and reported, never coerced
    return X, labels


def write_contract(folder: Path, X: pd.DataFrame, labels: pd.Series, endpoint: str = "binary",
                   positive: str | None = "positive") -> dict[str, Path]:
    """Run the real library and write rule fit_classifier's files (the #17 file contract)."""
    s = ClassificationSettings(endpoint=endpoint, cv_folds=3, cv_repeats=2, n_boot=20, seed=5,  # small: fast
                               learners=("logistic_l2",), n_screen=(4,), logistic_C=(0.5,), ensemble_sizes=(1,))
    res = run_classification_cv(X, labels, s, volume_feature=VOLUME, positive=positive, endpoint_name="hpv")
    folder.mkdir(parents=True, exist_ok=True)
    files = {k: folder / f for k, f in (("predictions", "predictions.tsv"), ("performance", "performance.tsv"),
                                        ("metrics", "metrics.json"), ("qc", "qc.tsv"))}
    res.predictions.rename(columns={"patient": "patient_id"}).assign(set="test").to_csv(
        files["predictions"], sep="\t", index=False)
    res.metrics.to_csv(files["performance"], sep="\t", index=False)
    kept = labels.dropna()
    classes = ["negative", "positive"] if endpoint == "binary" else sorted(kept.unique())
    files["metrics"].write_text(json.dumps({
        "endpoint": endpoint, "column": "hpv_status", "classes": classes, "positive_class": positive,
        "n": int(len(kept)), "n_per_class": {str(k): int(v) for k, v in kept.value_counts().sort_index().items()},
        "design": "cv", "cv_folds": 3, "cv_repeats": 2, "models": sorted(res.predictions["model"].unique()),
        "missing_models": {"clinical": "no clinical covariates configured"}}))
    write_qc([qc_row(str(r.patient), "", "fit_classifier", "excluded", r.issue) for r in res.qc.itertuples()],
             files["qc"])
    return files


@pytest.fixture(scope="module")
def binary(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("endpoints") / "hpv"
    files = write_contract(folder, *_table())
    figs = {k: folder / f"{k}.png" for k in ("roc", "calibration", "decision_curve", "confusion")}
    classification_figures(predictions=files["predictions"], metrics=files["metrics"], **figs)
    return {**files, **figs}


def test_figures_are_drawn_from_held_out_predictions(binary) -> None:
    for k in ("roc", "calibration", "decision_curve", "confusion"):
        data = binary[k].read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, k
    pred = pd.read_csv(binary["predictions"], sep="\t")
    metrics = json.loads(binary["metrics"].read_text())
    cm, names, how = confusion_counts(pred, metrics)
    assert names == ["negative", "positive"] and "own fold" in how
    # repeat 1 (the library's repeat 0), each patient judged with its own fold's training threshold
    r0 = pred[(pred["model"] == "radiomics") & (pred["repeat"] == pred["repeat"].min())]
    assert cm.sum() == len(r0) == 59
    expected = confusion_matrix(r0["label"], (r0["p_1"] >= r0["threshold"]).astype(int), labels=[0, 1])
    np.testing.assert_array_equal(cm, expected)
    # one global threshold would give other counts when the folds chose different thresholds
    assert r0.groupby("fold")["threshold"].nunique().sum() == r0["fold"].nunique()


def test_headline_and_table_carry_the_library_numbers(binary) -> None:
    perf = pd.read_csv(binary["performance"], sep="\t")
    metrics = json.loads(binary["metrics"].read_text())
    rad = perf.set_index("model").loc["radiomics"]
    text = endpoint_headline(perf, metrics)
    assert f"AUC {rad['auc']:.3f} (95% paired bootstrap CI {rad['ci_low']:.3f}-{rad['ci_high']:.3f})" in text
    assert f"{rad['diff_vs_volume']:+.3f}" in text and "DeLong" in text and f"{rad['delong_p_vs_volume']:.3g}" in text
    assert rad["auc"] > 0.75  # the planted signal is found on held-out patients
    table = comparison_table(perf)
    assert list(table["model"]) == ["radiomics", "volume", "prevalence"]
    assert {"AUC", "Brier score", "calibration slope", "sensitivity", "balanced accuracy"} <= set(table.columns)


def _survival_free_inputs(tmp: Path, binary: dict[str, Path], bio: dict[str, Path]) -> dict[str, str]:
    """The non-survival inputs of write_report (small tables) plus one endpoint and the screen."""
    pd.DataFrame({"patient_id": ["P001", "P002"], "scan_id": ["P001_S1", "P002_S1"]}).to_csv(
        tmp / "scans.tsv", sep="\t", index=False)
    pd.DataFrame({"patient_id": ["P001", "P002"]}).to_csv(tmp / "clinical.tsv", sep="\t", index=False)
    pd.DataFrame({"scan_id": ["P001_S1"], "patient_id": ["P001"], "session": [1], "f": [1.0]}).to_csv(
        tmp / "features.tsv", sep="\t", index=False)
    write_qc([qc_row("P000", "", "fit_classifier", "excluded", "missing endpoint value")], tmp / "qc.tsv")
    (tmp / "robustness.json").write_text(json.dumps({"assessed": False}))
    (tmp / "icc.tsv").write_text("feature\ticc\n")
    inputs = {"scans": tmp / "scans.tsv", "clinical": tmp / "clinical.tsv", "features": tmp / "features.tsv",
              "qc": tmp / "qc.tsv", "icc": tmp / "icc.tsv", "robustness": tmp / "robustness.json",
              "icc_plot": binary["roc"], "radiogenomics_tsv": bio["table"], "radiogenomics_png": bio["figure"]}
    inputs.update(wf.endpoint_files({"modelling": {"endpoints": {"hpv": {"endpoint": "binary", "column": "hpv"}}}},
                                    {k: str(binary[k]).replace("/hpv/", "/{endpoint}/") for k in
                                     ("predictions", "performance", "metrics", "qc", "roc", "calibration",
                                      "decision_curve", "confusion")}))
    return {k: str(v) for k, v in inputs.items()}


@pytest.fixture(scope="module")
def screen(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("biology")
    X, labels = _table()
    feats = X.reset_index(names="patient_id").assign(scan_id=lambda d: d["patient_id"] + "_S1", session=1)
    feats.to_csv(tmp / "features.tsv", sep="\t", index=False)
    (tmp / "robust.txt").write_text("\n".join(c for c in X.columns if c != VOLUME) + "\n")
    rng = np.random.default_rng(0)
    clin = pd.DataFrame({"pid": X.index, "hpv_status": labels.fillna(""), "ki67": rng.normal(20, 5, len(X)),
                         "one_level": "yes"})
    clin.to_csv(tmp / "clinical.csv", index=False)
    out = {"table": tmp / "radiogenomics.tsv", "figure": tmp / "radiogenomics.png", "qc": tmp / "qc.tsv"}
    radiogenomics_screen(features=tmp / "features.tsv", robust=tmp / "robust.txt", clinical=tmp / "clinical.csv",
                         biology={"hpv_status": "binary", "ki67": "", "one_level": "", "not_there": ""},
                         modelling={"volume_feature": VOLUME, "feature_pattern": None}, columns={"id": "pid"}, **out)
    return out


def test_radiogenomics_rule_screens_each_column_and_reports_the_rest(screen) -> None:
    t = pd.read_csv(screen["table"], sep="\t")
    assert set(t["biology"]) == {"hpv_status", "ki67"}
    hpv = t[t["biology"] == "hpv_status"]
    assert hpv.iloc[0]["feature"] == "original_glcm_signal_a" and hpv.iloc[0]["q"] < 1e-4
    assert hpv.iloc[0]["n"] == 59 and hpv["volume_adjusted"].sum() == len(hpv) - 1
    qc = pd.read_csv(screen["qc"], sep="\t", dtype=str, keep_default_na=False)
    assert list(qc.columns) == QC_COLUMNS
    reasons = " ".join(qc["reason"])
    assert "'one_level' not screened" in reasons and "'not_there' is not a column" in reasons
    assert screen["figure"].read_bytes()[:4] == b"\x89PNG"


def test_report_without_survival_endpoint(binary, screen, tmp_path) -> None:
    out = tmp_path / "report" / "report.html"
    write_report(_survival_free_inputs(tmp_path, binary, screen),
                 {"cohort": {"name": "biology only"}, "modelling": {"endpoint": "binary"}}, out)
    page = out.read_text()
    assert 'id="km"' not in page and 'id="checklist"' not in page and "Harrell" not in page
    assert "This study has no survival endpoint (modelling.endpoint is binary)" in page
    assert '<a href="#endpoints">' in page and '<a href="#radiogenomics">' in page and '<a href="#km">' not in page
    section = page[page.index('id="endpoints"'):page.index('id="radiogenomics"')]
    perf = pd.read_csv(binary["performance"], sep="\t")
    for _, row in perf.iterrows():  # every number of the comparison table is the performance.tsv value
        cells = re.search(rf"<tr><td>{re.escape(row['model'])}</td>(.*?)</tr>", section).group(1)
        shown = [c for c in re.findall(r'<td class="num">([^<]*)</td>', cells)]
        assert shown[0] == f"{row['auc']:.3g}" and f"{row['brier']:.3g}" in shown
    assert endpoint_headline(perf, json.loads(binary["metrics"].read_text())).split(";")[0] in section
    assert section.count("<img ") == 4 and "no clinical covariates configured" in section
    assert "1 patient(s) left out" in section
    assert "Benjamini-Hochberg" in page[page.index('id="radiogenomics"'):]


def test_multiclass_figures(tmp_path) -> None:
    X, _ = _table(90, seed=8)
    rng = np.random.default_rng(1)
    grade = pd.Series(np.select([X["original_glcm_signal_a"] > 1.2, X["original_glcm_signal_a"] > 0.2],
                                ["G3", "G2"], "G1"), index=X.index)
    grade[rng.random(len(grade)) < 0.1] = "G2"
    files = write_contract(tmp_path / "grade", X, grade, endpoint="multiclass", positive=None)
    figs = {k: tmp_path / f"{k}.png" for k in ("roc", "calibration", "decision_curve", "confusion")}
    classification_figures(predictions=files["predictions"], metrics=files["metrics"], **figs)
    pred = pd.read_csv(files["predictions"], sep="\t")
    cm, names, how = confusion_counts(pred, json.loads(files["metrics"].read_text()))
    assert names == ["G1", "G2", "G3"] and cm.shape == (3, 3) and "most probable" in how
    assert cm.sum() == len(X)
    assert all(figs[k].stat().st_size > 5_000 for k in figs)


# --------------------------------------------------------------------------- parse-time helpers


def test_report_rule_helpers() -> None:
    cfg = {"modelling": {"endpoint": "multiclass", "label": {"column": "grade"},
                         "endpoints": {"hpv": {"endpoint": "binary", "column": "hpv_status"}},
                         "biology_columns": ["ki67", "hpv_status"]}}
    assert wf.biology_columns(cfg) == {"grade": "categorical", "hpv_status": "binary", "ki67": ""}
    files = wf.endpoint_files(cfg, {"qc": "results/endpoints/{endpoint}/qc.tsv"})
    assert files == {"endpoint__grade__qc": "results/endpoints/grade/qc.tsv",
                     "endpoint__hpv__qc": "results/endpoints/hpv/qc.tsv"}
    assert wf.survival_only(cfg, {"a": 1}) == {} and wf.survival_only({"modelling": {}}, {"a": 1}) == {"a": 1}
    assert wf.biology_columns({"modelling": {}}) == {}
    assert wf.biology_inputs({"modelling": {"features_table": "f.csv"}, "cohort": {"clinical_table": "c.csv"}},
                             {"features": "x", "robust": "y"}) == {"features": "f.csv", "clinical": "c.csv"}


# --------------------------------------------------------------------------- the demo's planted label

#: sha256 of the seed-7, 4-patient cohort's clinical.csv and truth.csv BEFORE the label was added
#: (tests/test_demo.py's pins until then): the columns that existed must not change by a byte.
BEFORE_LABEL = {"clinical.csv": "26349167202af6b5bc32df49d457da44b5eff4fde015b400da54b157c8f9a9d4",
                "truth.csv": "e3f350b4dfffe8711d3a83b5c0526ee72db16cfdcceeec5a2477ec146d57d0fd"}


def test_planted_label_leaves_every_existing_column_unchanged() -> None:
    c = simulate_cohort(4, 2, 7)
    old = {"clinical.csv": c.clinical.drop(columns=["hpv_status"]),
           "truth.csv": c.truth.drop(columns=["hpv_latent", "hpv_status"])}
    digests = {k: hashlib.sha256(v.to_csv(index=False, lineterminator="\n").encode()).hexdigest()
               for k, v in old.items()}
    assert digests == BEFORE_LABEL
    assert list(c.clinical.columns)[-1] == "hpv_status" and list(c.truth.columns)[-2:] == ["hpv_latent", "hpv_status"]


def test_planted_label_is_balanced_tied_to_texture_not_volume() -> None:
    cohorts = [simulate_cohort(40, 15, seed) for seed in range(6)]
    truth = pd.concat([c.truth for c in cohorts], ignore_index=True)
    y = (truth["hpv_status"] == "positive").astype(int)
    assert set(truth["hpv_status"]) == set(HPV_LEVELS)
    assert all(0.3 <= (c.truth["hpv_status"] == "positive").mean() <= 0.7 for c in cohorts)
    assert roc_auc_score(y, -truth["z_heterogeneity"]) > 0.85  # texture carries the label
    assert abs(roc_auc_score(y, truth["log_volume"]) - 0.5) < 0.1  # volume does not
    assert abs(stats.spearmanr(truth["hpv_latent"], truth["log_volume"]).statistic) < 0.15
    np.testing.assert_array_equal(truth["hpv_status"] == "positive", truth["hpv_latent"] > 0)
    again = simulate_cohort(40, 15, 0)
    pd.testing.assert_frame_equal(again.truth, cohorts[0].truth)
    pd.testing.assert_series_equal(again.clinical["hpv_status"], cohorts[0].clinical["hpv_status"])


def test_endpoint_without_any_fitted_model_is_reported_not_fatal(tmp_path) -> None:
    """Too few patients in a class (e.g. a tiny cohort): fit_classifier writes empty tables; the
    figures and the section say so instead of failing the run."""
    from radsurv.report.classification import endpoint_blocks

    (tmp_path / "predictions.tsv").write_text("")
    (tmp_path / "performance.tsv").write_text("")
    (tmp_path / "metrics.json").write_text(json.dumps({"endpoint": "binary", "n": 10, "n_per_class": {"a": 6, "b": 4}}))
    write_qc([qc_row("", "", "fit_classifier", "excluded", "class b has fewer than 5 patients")], tmp_path / "qc.tsv")
    figs = {k: tmp_path / f"{k}.png" for k in ("roc", "calibration", "decision_curve", "confusion")}
    classification_figures(predictions=tmp_path / "predictions.tsv", metrics=tmp_path / "metrics.json", **figs)
    assert all(f.read_bytes()[:4] == b"\x89PNG" for f in figs.values())
    blocks = endpoint_blocks("hpv", {"metrics": tmp_path / "metrics.json", "performance": tmp_path / "performance.tsv",
                                     "qc": tmp_path / "qc.tsv", **figs})
    texts = " ".join(str(b[-1]) for b in blocks if b[0] == "p")
    assert "No model could be fitted" in texts and "1 patient(s) left out" in texts
