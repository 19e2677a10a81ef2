"""Categorical endpoints in the workflow (issue #17): the entry point ``fit_classifier``, the
clinical table without survival columns, the checks before the first job and the DAG."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import REPO
from conftest import snakemake_run as _snakemake

from radsurv.config import preflight
from radsurv.ingest.clinical import load_clinical
from radsurv.schema import load_schema, problems
from radsurv.workflow.classification import CLASSIFIER_OUTPUTS, classifier_files, fit_classifier

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"

#: Tiny learner grids and designs: each entry-point call takes a few seconds.
FAST = {"learners": ["logistic_l2"], "n_screen": [4], "logistic_C": [0.5], "ensemble_sizes": [1]}
MODELLING = {"endpoint": "binary", "label": {"column": "hpv", "positive_class": "positive"},
             "features_table": "features.csv", "features_id_column": "patient_id", "cv_folds": 3, "cv_repeats": 1,
             "inner_folds": 2, "bootstrap": 20, "volume_feature": "original_shape_MeshVolume",
             "classification": FAST}
COLUMNS = {"id": "patient_id", "covariates": ["age"]}


def _cohort(tmp_path: Path, n: int = 60, seed: int = 0) -> tuple[Path, Path, pd.DataFrame]:
    """A feature table (tumour volume, 12 noise features, one texture feature carrying the planted
    labels) and a clinical table with a binary ``hpv`` and a 3-class ``grade`` column, no survival."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    hpv = np.array(["positive", "negative"] * (n // 2))
    grade = np.array(["G1", "G2", "G3"] * (n // 3))
    feats = pd.DataFrame(rng.normal(size=(n, 12)), columns=[f"original_firstorder_F{i}" for i in range(12)])
    feats["original_glcm_Contrast"] = (hpv == "positive") * 2.0 + rng.normal(scale=0.7, size=n)
    feats["original_glszm_Zone"] = pd.Series(grade).map({"G1": 0.0, "G2": 2.0, "G3": 4.0}).to_numpy() + \
        rng.normal(scale=0.7, size=n)
    feats["original_shape_MeshVolume"] = rng.lognormal(3, 0.5, size=n)
    feats.insert(0, "patient_id", ids)
    clin = pd.DataFrame({"patient_id": ids, "hpv": hpv, "grade": grade,
                         "age": rng.integers(40, 80, size=n).astype(str)})
    fp, cp = tmp_path / "features.csv", tmp_path / "clinical.csv"
    feats.to_csv(fp, index=False)
    clin.to_csv(cp, index=False)
    return fp, cp, clin


def _run(tmp_path: Path, modelling: dict, spec: dict, name: str = "hpv", clinical: Path | None = None,
         features: Path | None = None, columns: dict | None = None, out: str = "out") -> dict[str, Path]:
    files = classifier_files(tmp_path / out)
    fit_classifier(features=str(features or tmp_path / "features.csv"),
                   clinical=str(clinical or tmp_path / "clinical.csv"), modelling=modelling, seed=7,
                   columns=columns or COLUMNS, endpoint=name, spec=spec, **{k: str(v) for k, v in files.items()})
    return files


def test_binary_endpoint_writes_the_contract_files_and_recovers_the_planted_label(tmp_path):
    _cohort(tmp_path)
    files = _run(tmp_path, MODELLING, {"endpoint": "binary", "column": "hpv", "positive_class": "positive"})
    assert set(files) == set(CLASSIFIER_OUTPUTS) and all(p.is_file() for p in files.values())
    pred = pd.read_csv(files["predictions"], sep="\t")
    assert list(pred.columns[:6]) == ["patient_id", "repeat", "fold", "model", "label", "threshold"]
    assert {"p_0", "p_1", "set"} <= set(pred.columns) and set(pred["set"]) == {"test"}
    assert len(pred) == 60 * pred["model"].nunique()  # every patient held out once per model
    perf = pd.read_csv(files["performance"], sep="\t")
    assert perf.columns[0] == "model"
    auc = perf.set_index("model")["auc"]
    assert auc["radiomics"] > 0.8 and abs(auc["prevalence"] - 0.5) < 1e-9
    m = json.loads(files["metrics"].read_text())
    assert m["endpoint"] == "binary" and m["column"] == "hpv" and m["classes"] == ["negative", "positive"]
    assert m["positive_class"] == "positive" and m["n"] == 60 and m["n_per_class"] == {"negative": 30, "positive": 30}
    assert m["design"] == "cv" and m["cv_folds"] == 3 and m["cv_repeats"] == 1
    # label 1 = the positive class
    lab = pred.drop_duplicates("patient_id").set_index("patient_id")["label"]
    clin = pd.read_csv(tmp_path / "clinical.csv").set_index("patient_id")
    assert (lab == (clin.loc[lab.index, "hpv"] == "positive").astype(int)).all()
    # no clinical covariate configured: named with the reason and a QC row, never silently skipped
    assert set(m["missing_models"]) == {"clinical", "clinical+radiomics"}
    qc = pd.read_csv(files["qc"], sep="\t")
    assert (qc["stage"] == "fit_classifier").all()
    assert qc["reason"].str.contains("the clinical model is not fit").any()
    final = joblib.load(files["final_models"])
    assert set(final["models"]) == set(m["models"]) == {"radiomics", "volume", "prevalence"}


def test_multiclass_endpoint(tmp_path):
    _cohort(tmp_path)
    mod = {**MODELLING, "endpoint": "multiclass", "label": {"column": "grade"}}
    files = _run(tmp_path, mod, {"endpoint": "multiclass", "column": "grade"}, name="grade")
    pred = pd.read_csv(files["predictions"], sep="\t")
    assert {"p_G1", "p_G2", "p_G3"} <= set(pred.columns)
    perf = pd.read_csv(files["performance"], sep="\t").set_index("model")
    assert perf.loc["radiomics", "macro_auc"] > 0.75
    assert json.loads(files["metrics"].read_text())["classes"] == ["G1", "G2", "G3"]


def test_missing_and_unknown_labels_become_qc_rows_never_coerced(tmp_path):
    _, cp, clin = _cohort(tmp_path)
    clin.loc[0, "hpv"] = ""
    clin.loc[1, "hpv"] = "Positive?"
    clin.to_csv(cp, index=False)
    spec = {"endpoint": "binary", "column": "hpv", "positive_class": "positive", "classes": ["negative", "positive"]}
    files = _run(tmp_path, MODELLING, spec)
    qc = pd.read_csv(files["qc"], sep="\t", dtype=str, keep_default_na=False)
    rows = qc[qc["patient_id"].isin(["P000", "P001"])]
    assert len(rows) == 2 and (rows["status"] == "excluded").all()
    assert "missing" in rows.iloc[0]["reason"] and "Positive?" in rows.iloc[1]["reason"]
    pred = pd.read_csv(files["predictions"], sep="\t")
    assert not pred["patient_id"].isin(["P000", "P001"]).any() and pred["patient_id"].nunique() == 58


def test_too_few_patients_in_a_class_leaves_that_endpoint_out_with_a_qc_row(tmp_path):
    """Bad input never kills the run: the endpoint is not studied, its QC row says why, its tables
    are empty, metrics.json names the reason and the report section says so."""
    from radsurv.report.classification import endpoint_blocks

    _, cp, clin = _cohort(tmp_path)
    clin.loc[clin.index[3:], "hpv"] = "negative"  # 2 positives left
    clin.to_csv(cp, index=False)
    files = _run(tmp_path, MODELLING, {"endpoint": "binary", "column": "hpv", "positive_class": "positive"})
    qc = pd.read_csv(files["qc"], sep="\t", dtype=str, keep_default_na=False)
    row = qc[qc["status"] == "excluded"]
    assert len(row) == 1 and re.search(r"endpoint hpv .*not studied.*fewer than 5 patients", row.iloc[0]["reason"])
    assert pd.read_csv(files["predictions"], sep="\t").empty
    assert "fewer than 5 patients" in json.loads(Path(files["metrics"]).read_text())["not_studied"]
    blocks = endpoint_blocks("hpv", {k: str(v) for k, v in files.items()})
    assert any(b[0] == "p" and "not studied" in b[2] for b in blocks)


def test_endpoint_and_clinical_columns_never_become_features(tmp_path):
    """The leakage guard: a feature table holding the label (as radMLBench's ``Target``) and a
    clinical column; the label must not reach the models (else the AUC would be ~1)."""
    fp, cp, clin = _cohort(tmp_path)
    feats = pd.read_csv(fp).drop(columns=["original_glcm_Contrast"])  # no real signal left
    feats["hpv"] = (clin["hpv"] == "positive").astype(int)  # the endpoint, numeric
    feats["age"] = clin["age"].astype(float)
    feats.to_csv(fp, index=False)
    files = _run(tmp_path, MODELLING, {"endpoint": "binary", "column": "hpv", "positive_class": "positive"})
    final = joblib.load(files["final_models"])
    assert "hpv" not in final["features"] and "age" not in final["features"]
    assert pd.read_csv(files["performance"], sep="\t").set_index("model").loc["radiomics", "auc"] < 0.8
    qc = pd.read_csv(files["qc"], sep="\t")
    assert qc["reason"].str.contains("never model inputs").any()
    # the same file as feature AND clinical table (radMLBench): its id and label columns are left out
    both = tmp_path / "both.csv"
    feats.assign(hpv=clin["hpv"]).to_csv(both, index=False)
    mod = {**MODELLING, "features_table": str(both)}
    files = _run(tmp_path, mod, {"endpoint": "binary", "column": "hpv", "positive_class": "positive"},
                 clinical=both, features=both, columns={"id": "patient_id"}, out="both")
    feats_used = joblib.load(files["final_models"])["features"]
    assert "hpv" not in feats_used and "patient_id" not in feats_used and "original_firstorder_F0" in feats_used


def test_split_design_by_a_clinical_column(tmp_path):
    _, cp, clin = _cohort(tmp_path)
    clin["centre"] = np.where(np.arange(60) < 40, "A", "B")
    clin.to_csv(cp, index=False)
    mod = {**MODELLING, "design": "split", "split_by": "centre", "validation_values": ["B"],
           "classification": {"learners": ["rf"], "n_screen_trees": [4], "rf_trees": 20, "rf_min_leaf": [3],
                              "ensemble_sizes": [1]}}  # a seeded learner: a refit with another seed differs
    files = _run(tmp_path, mod, {"endpoint": "binary", "column": "hpv", "positive_class": "positive"},
                 columns={"id": "patient_id", "covariates": ["age", "centre"]})
    pred = pd.read_csv(files["predictions"], sep="\t", dtype={"patient_id": str})
    assert set(pred["patient_id"]) == set(clin.loc[clin["centre"] == "B", "patient_id"])
    m = json.loads(files["metrics"].read_text())
    assert m["design"] == "split" and m["n"] == 20 and m["n_development"] == 40
    assert "centre" in m["design_description"]
    # the saved final models are the validated ones: they reproduce the validation predictions
    final = joblib.load(files["final_models"])
    val = pred[pred["model"] == "radiomics"].set_index("patient_id")
    X = pd.read_csv(tmp_path / "features.csv", dtype={"patient_id": str}).set_index("patient_id")
    p = final["models"]["radiomics"].predict_proba(X.loc[val.index, final["features"]])[:, 1]
    np.testing.assert_allclose(val["p_1"].to_numpy(), p)


def test_external_cohort_is_scored_by_the_final_models_unchanged(tmp_path):
    _cohort(tmp_path)
    ext = tmp_path / "ext"
    ext.mkdir()
    efp, ecp, _ = _cohort(ext, n=30, seed=3)
    mod = {**MODELLING, "external_cohorts": [{"name": "centreB", "features_table": str(efp),
                                              "clinical_table": str(ecp)}]}
    files = _run(tmp_path, mod, {"endpoint": "binary", "column": "hpv", "positive_class": "positive"})
    pred = pd.read_csv(files["predictions"], sep="\t")
    ext_rows = pred[pred["set"] == "centreB"]
    assert ext_rows["patient_id"].nunique() == 30
    # the saved final models give exactly these probabilities on the external table
    final = joblib.load(files["final_models"])
    X = pd.read_csv(efp).set_index("patient_id")[final["features"]]
    p = final["models"]["radiomics"].predict_proba(X)[:, 1]
    got = ext_rows[ext_rows["model"] == "radiomics"].set_index("patient_id").loc[X.index, "p_1"].to_numpy()
    np.testing.assert_allclose(got, p)
    assert json.loads(files["metrics"].read_text())["external"]["centreB"]["n"] == 30


def test_same_inputs_same_outputs(tmp_path):
    _cohort(tmp_path)
    spec = {"endpoint": "binary", "column": "hpv", "positive_class": "positive"}
    a = _run(tmp_path, MODELLING, spec, out="a")
    b = _run(tmp_path, MODELLING, spec, out="b")
    for k in ("predictions", "performance", "choices", "metrics", "qc"):
        assert a[k].read_bytes() == b[k].read_bytes(), k  # byte-identical: no wall time in any output


def test_threads_give_the_same_outputs_as_one_thread(tmp_path):
    """The rule's threads parallelise the outer folds and the final fits (worker processes); every
    fit carries its own seed, so 1 and 2 threads write byte-identical files and equal final models."""
    _cohort(tmp_path)
    ext = tmp_path / "ext"
    ext.mkdir()
    efp, ecp, _ = _cohort(ext, n=30, seed=3)
    mod = {**MODELLING, "cv_repeats": 2, "clinical_covariates": {"age": {"type": "numeric"}},
           "classification": {"learners": ["rf", "logistic_l2"], "rf_trees": 20, "rf_min_leaf": [1, 5],
                              "n_screen": [4], "n_screen_trees": [0], "logistic_C": [0.5], "ensemble_sizes": [1, 2]},
           "external_cohorts": [{"name": "centreB", "features_table": str(efp), "clinical_table": str(ecp)}]}
    spec = {"endpoint": "binary", "column": "hpv", "positive_class": "positive"}
    out = {}
    for threads in (1, 2):
        files = classifier_files(tmp_path / f"t{threads}")
        fit_classifier(features=str(tmp_path / "features.csv"), clinical=str(tmp_path / "clinical.csv"),
                       modelling=mod, seed=7, columns=COLUMNS, endpoint="hpv", spec=spec, threads=threads,
                       **{k: str(v) for k, v in files.items()})
        out[threads] = files
    pred = pd.read_csv(out[1]["predictions"], sep="\t")
    assert {"radiomics", "clinical+radiomics", "volume", "clinical"} <= set(pred["model"])
    assert set(pred["set"]) == {"test", "centreB"} and set(pred["repeat"].dropna()) == {0, 1}
    assert "rf(" in pd.read_csv(out[1]["choices"], sep="\t")["chosen"].str.cat()
    for k in ("predictions", "performance", "choices", "metrics", "qc"):
        assert out[1][k].read_bytes() == out[2][k].read_bytes(), k
    m1, m2 = (joblib.load(out[t]["final_models"])["models"] for t in (1, 2))
    X = pd.read_csv(efp).set_index("patient_id")
    X["age"] = pd.read_csv(ecp).set_index("patient_id")["age"].astype(str)
    for name in ("radiomics", "clinical+radiomics"):
        np.testing.assert_array_equal(m1[name].predict_proba(X), m2[name].predict_proba(X))


def test_clinical_table_without_survival_columns_carries_the_endpoint(tmp_path):
    _, cp, _ = _cohort(tmp_path)
    table, qc = load_clinical(cp, {"id": "patient_id"}, labels=["hpv", "grade"])
    assert list(table.columns) == ["patient_id", "hpv", "grade"] and len(table) == 60 and not qc
    with pytest.raises(ValueError, match="time"):
        load_clinical(cp, {"id": "patient_id"}, survival=True)


# --------------------------------------------------------------------------- config and DAG
def _config(tmp_path: Path, modelling: dict, columns: dict | None = None) -> dict:
    """A schema-valid config (defaults filled) for the generated cohort."""
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["cohort"]["clinical_table"] = "clinical.csv"
    cfg["cohort"]["columns"] = columns or dict(COLUMNS)
    cfg["modelling"] = {k: v for k, v in modelling.items() if k != "classification"}
    found = problems(cfg, load_schema(SCHEMA))
    assert not found, found
    return cfg


def _preflight(cfg: dict, base: Path) -> list[str]:
    """preflight as the workflow calls it: on the validated config, the schema's defaults filled."""
    from snakemake.utils import validate

    filled = copy.deepcopy(cfg)
    validate(filled, schema=str(SCHEMA))
    return preflight(filled, base, produced=["results/demo/dicom"])


def test_survival_free_config_is_valid_and_passes_preflight(tmp_path):
    _cohort(tmp_path)
    cfg = _config(tmp_path, MODELLING)
    assert _preflight(cfg, tmp_path) == []


def test_preflight_names_each_endpoint_problem(tmp_path):
    _, cp, clin = _cohort(tmp_path)
    clin.loc[clin.index[3:], "hpv"] = "negative"
    clin.to_csv(cp, index=False)
    mod = {**MODELLING, "label": {"column": "hpv", "positive_class": "yes"},
           "endpoints": {"grade": {"endpoint": "binary", "column": "grade"},
                         "nodes": {"endpoint": "binary", "column": "n_stage"}}}
    found = _preflight(_config(tmp_path, mod), tmp_path)
    text = "\n".join(found)
    assert re.search(r"modelling\.label\.positive_class: 'yes' never occurs", text)
    assert re.search(r"modelling\.label: class\(es\) positive \(2\) .*fewer than 5", text)
    assert re.search(r"modelling\.endpoints\.grade: .*3 classes .*binary", text)
    assert re.search(r"modelling\.endpoints\.nodes: column 'n_stage' is not in the clinical table", text)
    # survival: time and event are required, in plain words
    found = _preflight(_config(tmp_path, {"features_table": "features.csv"}), tmp_path)
    assert any("cohort.columns" in p and "time" in p for p in found), found


def _dry_run(tmp_path: Path, cfg: dict) -> str:
    (tmp_path / "config").mkdir(exist_ok=True)
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = _snakemake(tmp_path, "-n", "--cores", "1", "modelling_only")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout


def test_dry_run_of_a_binary_study_lists_fit_classifier_not_fit_models(tmp_path):
    _cohort(tmp_path)
    out = _dry_run(tmp_path, _config(tmp_path, MODELLING))
    assert re.search(r"^fit_classifier\s+1$", out, re.M)
    assert not re.search(r"^(fit_models|km_figure)\s+\d+$", out, re.M)


def test_dry_run_of_a_mixed_study_lists_both(tmp_path):
    _cohort(tmp_path)
    clin = pd.read_csv(tmp_path / "clinical.csv")
    clin["months"], clin["dead"] = np.arange(60) + 1.0, [0, 1] * 30
    clin.to_csv(tmp_path / "clinical.csv", index=False)
    mod = {k: v for k, v in MODELLING.items() if k not in ("endpoint", "label")}
    mod["endpoints"] = {"hpv": {"endpoint": "binary", "column": "hpv", "positive_class": "positive"},
                        "grade": {"endpoint": "multiclass", "column": "grade"}}
    out = _dry_run(tmp_path, _config(tmp_path, mod, {"id": "patient_id", "time": "months", "event": "dead"}))
    assert re.search(r"^fit_classifier\s+2$", out, re.M) and re.search(r"^fit_models\s+1$", out, re.M)


# --------------------------------------------------------------------------- real data, end to end
@pytest.mark.e2e
def test_radmlbench_example_through_the_workflow_equals_the_library(tmp_path, shared_data):
    """config/examples/radmlbench_binary.yaml (cheaper design) run by ``snakemake modelling_only``
    gives the AUCs of a direct :func:`run_classification_cv` call on the same table with the same
    settings: the entry point adds nothing (no label, id or clinical column as a feature) and loses
    nothing (every patient, every feature). The workflow orders patients by id."""
    from radsurv.modelling.classification.design import run_classification_cv
    from radsurv.modelling.classification.settings import ClassificationSettings

    table = shared_data / "radmlbench" / "HNSCC.csv.gz"
    cfg = yaml.safe_load((REPO / "config" / "examples" / "radmlbench_binary.yaml").read_text())
    cfg["cohort"]["clinical_table"] = cfg["modelling"]["features_table"] = str(table)
    cfg["modelling"].update(cv_folds=3, cv_repeats=1, inner_folds=2, bootstrap=50)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = _snakemake(tmp_path, "modelling_only", "--cores", "1")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = tmp_path / "results" / "endpoints" / "Target"
    perf = pd.read_csv(out / "performance.tsv", sep="\t").set_index("model")
    assert set(perf.index) == {"radiomics", "volume", "prevalence"}

    df = pd.read_csv(table)
    df = df.assign(ID=df["ID"].astype(str)).sort_values("ID").set_index("ID")
    settings = ClassificationSettings(endpoint="binary", cv_folds=3, cv_repeats=1, inner_folds=2, n_boot=50,
                                      seed=cfg["seed"])
    direct = run_classification_cv(df.drop(columns=["Target"]), df["Target"], settings,
                                   volume_feature="GTV_original_shape_MeshVolume", positive=1).metrics
    direct = direct.set_index("model")
    for model in perf.index:
        for col in ("auc", "ci_low", "ci_high", "brier"):
            assert perf.loc[model, col] == pytest.approx(direct.loc[model, col], abs=1e-9), (model, col)
    m = json.loads((out / "metrics.json").read_text())
    assert m["n"] == len(df) and m["n_features"] == df.shape[1] - 1 and m["classes"] == ["0", "1"]


def test_pipeline_start_uses_first_scans_and_the_robust_list(tmp_path):
    """The pipeline's own start: features.tsv (one row per scan; a retest scan is never used),
    the robust feature list, and the clinical table as the user wrote it."""
    fp, cp, _ = _cohort(tmp_path)
    feats = pd.read_csv(fp, dtype={"patient_id": str})
    first = feats.assign(scan_id=feats["patient_id"] + "_S1", session=1)
    retest = first.iloc[:10].assign(scan_id=lambda d: d["patient_id"] + "_S2", session=2,
                                    original_glcm_Contrast=1e6)  # would wreck the model if used
    table = tmp_path / "features.tsv"
    pd.concat([first, retest]).set_index("scan_id").to_csv(table, sep="\t")
    robust = tmp_path / "robust.txt"
    robust.write_text("original_glcm_Contrast\noriginal_firstorder_F0\noriginal_shape_MeshVolume\n")
    mod = {k: v for k, v in MODELLING.items() if k not in ("features_table", "features_id_column")}
    files = classifier_files(tmp_path / "out")
    fit_classifier(features=str(table), robust=str(robust), clinical=str(cp), modelling=mod, seed=7, columns=COLUMNS,
                   endpoint="hpv", spec={"endpoint": "binary", "column": "hpv", "positive_class": "positive"},
                   **{k: str(v) for k, v in files.items()})
    final = joblib.load(files["final_models"])
    assert final["features"] == ["original_firstorder_F0", "original_glcm_Contrast", "original_shape_MeshVolume"]
    assert pd.read_csv(files["performance"], sep="\t").set_index("model").loc["radiomics", "auc"] > 0.8


def test_endpoint_settings_take_the_shared_design_keys_and_the_classification_block():
    from radsurv.modelling.classification.endpoints import endpoint_settings

    s = endpoint_settings({"cv_folds": 4, "cv_repeats": 2, "inner_folds": 2, "bootstrap": 99,
                           "corr_threshold": 0.8, "classification": {"learners": ["rf"]}}, 11, "multiclass")
    assert (s.cv_folds, s.cv_repeats, s.inner_folds, s.n_boot, s.corr_threshold, s.seed, s.endpoint) == \
        (4, 2, 2, 99, 0.8, 11, "multiclass")
    assert s.learners == ("rf",)
    with pytest.raises(ValueError, match="unknown modelling.classification key"):
        endpoint_settings({"classification": {"learner": "rf"}}, 0, "binary")


def test_standardise_clinical_of_a_study_without_survival_carries_the_endpoints(tmp_path):
    from radsurv.workflow.ingest import standardise_clinical

    _, cp, clin = _cohort(tmp_path)
    clin.loc[0, "hpv"] = ""  # kept as written: the endpoint's own checks report it
    clin.to_csv(cp, index=False)
    scans = tmp_path / "scans.tsv"
    pd.DataFrame({"patient_id": clin["patient_id"], "scan_id": clin["patient_id"] + "_S1"}).to_csv(
        scans, sep="\t", index=False)
    out, qc = tmp_path / "clinical.tsv", tmp_path / "qc.tsv"
    standardise_clinical(table=str(cp), scans=str(scans), columns=COLUMNS, clinical=str(out), qc=str(qc),
                         labels=["hpv", "grade"], survival=False)
    got = pd.read_csv(out, sep="\t", dtype=str, keep_default_na=False)
    assert list(got.columns) == ["patient_id", "age", "hpv", "grade"] and len(got) == 60
    assert got.loc[got["patient_id"] == "P000", "hpv"].item() == ""
