"""Issue #15 (modelling part): seeds, category matching, the volume baseline, feature-table
shape, labelled intervals, IPCW censoring from the training patients, and the two real
feature tables (Lung1, two-source NSCLC) through the features-table route."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sksurv.metrics import concordance_index_ipcw
from test_modelling import planted_cohort

from radsurv.ingest.clinical import CovariateSpec
from radsurv.modelling import metrics as M
from radsurv.modelling.clinical_encoder import ClinicalEncoder
from radsurv.modelling.config import StudyConfig, derive_seed
from radsurv.modelling.study import run_study

REPO = Path(__file__).resolve().parents[1]
FAST = dict(cv_folds=3, cv_repeats=1, inner_folds=2, bootstrap=0, horizons=(12.0, 24.0),
            max_features=(3,), penalizer=(1.0,))
VOL = "original_shape_MeshVolume"


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def cands(X: pd.DataFrame) -> list[str]:
    return [c for c in X.columns if "Volume" not in c]


# --------------------------------------------------------------------------- item 2: seeds


def test_derive_seed_any_nonnegative_seed():
    for seed in (0, 42, 4_294_968, 20241105, 2**40, 2**70):
        v = derive_seed(seed, 2, 3)
        assert 0 <= v <= 2**32 - 1 and v == derive_seed(seed, 2, 3)
    assert derive_seed(5, 2, 0) != derive_seed(5, 2, 1) != derive_seed(5, 3, 0)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0"):
        derive_seed(-1)
    with pytest.raises(ValueError, match="seed must be a whole number >= 0"):
        StudyConfig(seed=-3)


@pytest.mark.parametrize("seed", [20241105, 2**40])
def test_large_seed_runs_every_design_deterministically(seed):
    """example_cohort.yaml's seed 20241105 crashed the last step (seed * 1000 + r > 2**32 - 1)."""
    X, clin = planted_cohort(n=60, n_noise=8, seed=3)
    cfg = StudyConfig(**{**FAST, "bootstrap": 5, "cv_repeats": 2}, seed=seed)
    r1 = run_study(X, clin, cands(X), cfg)
    r2 = run_study(X, clin, cands(X), cfg)
    pd.testing.assert_frame_equal(r1.performance, r2.performance)
    pd.testing.assert_frame_equal(r1.predictions_all, r2.predictions_all)
    assert r1.metrics["c_index_test"] > 0.6
    split = StudyConfig(**{**FAST, "bootstrap": 5}, design="split", seed=seed)
    s1, s2 = run_study(X, clin, cands(X), split), run_study(X, clin, cands(X), split)
    pd.testing.assert_frame_equal(s1.predictions, s2.predictions)
    rsf = StudyConfig(**{**FAST, "rsf_trees": 20, "rsf_min_leaf": (10,)}, learner="rsf", seed=seed)
    assert np.isfinite(run_study(X, clin, cands(X), rsf).metrics["c_index_test"])


# --------------------------------------------------------------------------- item 3: categories


def test_categorical_without_levels_ignores_case_and_spaces():
    spec = CovariateSpec("Histology", "categorical")
    vals, miss = spec.parse(["Adenocarcinoma", "adenocarcinoma ", " Squamous  cell carcinoma", "nos", ""])
    assert vals[:3] == ["adenocarcinoma", "adenocarcinoma", "squamous cell carcinoma"] and miss[-1]
    X = pd.DataFrame({"Histology": ["Adenocarcinoma", "adenocarcinoma ", "Large cell", "large  cell",
                                    "squamous cell carcinoma", "Squamous cell carcinoma"]})
    enc = ClinicalEncoder([spec.to_dict()]).fit(X)
    assert enc.levels_["Histology"] == ["adenocarcinoma", "large cell", "squamous cell carcinoma"]
    assert enc.feature_names_out_ == ["Histology=large cell", "Histology=squamous cell carcinoma"]
    Z = enc.transform(pd.DataFrame({"Histology": ["ADENOCARCINOMA", "adenocarcinoma"]}))
    assert (Z.iloc[0] == Z.iloc[1]).all()  # one level, one coding


# --------------------------------------------------------------------------- item 4: volume baseline


def _messages(res) -> str:
    return "\n".join(r["reason"] for r in res.qc)


def test_volume_column_found_automatically_and_said():
    X, clin = planted_cohort(n=60, n_noise=6, seed=4)
    X = X.rename(columns={VOL: "CT_original_shape_VoxelVolume"})
    res = run_study(X, clin, cands(X), StudyConfig(**FAST))
    assert "volume" in res.metrics["models"]
    assert res.metrics["volume_feature"] == "CT_original_shape_VoxelVolume"
    assert "modelling.volume_feature 'original_shape_MeshVolume' is not a column" in _messages(res)
    assert "uses 'CT_original_shape_VoxelVolume'" in _messages(res)
    from radsurv.modelling.data import resolve_volume_column

    assert resolve_volume_column(["a", "x_shape_MeshVolume", "x_shape_VoxelVolume"], VOL)[0] == "x_shape_MeshVolume"


@pytest.mark.parametrize("columns", [{}, {"a_original_shape_MeshVolume": 1, "b_original_shape_MeshVolume": 2}])
def test_volume_baseline_not_built_is_said_with_the_key(columns, caplog):
    X, clin = planted_cohort(n=60, n_noise=6, seed=4)
    vol = X.pop(VOL)
    for name, k in columns.items():
        X[name] = vol * k
    with caplog.at_level(logging.WARNING, logger="radsurv.modelling.data"):
        res = run_study(X, clin, cands(X), StudyConfig(**FAST))
    assert "volume" not in res.metrics["models"]
    why = res.metrics["baselines_not_built"]["volume"]
    assert why.startswith("volume-only baseline not built: modelling.volume_feature")
    assert any(r["status"] == "warning" and r["reason"] == why for r in res.qc)
    assert why in caplog.text
    assert res.metrics["by_model"].keys() == {"radiomics"}
    assert "clinical" in res.metrics["baselines_not_built"]  # no covariates configured: said too


def test_volume_zero_or_missing_excludes_the_patient_with_a_qc_row():
    X, clin = planted_cohort(n=60, n_noise=6, seed=4)
    X.loc["P0003", VOL] = 0.0
    X.loc["P0007", VOL] = np.nan
    res = run_study(X, clin, cands(X), StudyConfig(**FAST))
    assert "volume" in res.metrics["models"] and res.metrics["n_used"] == 58
    assert res.metrics["n_dropped_invalid_volume"] == 2
    rows = {r["patient_id"]: r for r in res.qc}
    assert rows["P0003"]["status"] == "excluded" and "tumour volume (original_shape_MeshVolume) is 0.0" in \
        rows["P0003"]["reason"]
    assert "is missing" in rows["P0007"]["reason"]
    assert not {"P0003", "P0007"} & set(res.predictions_all["patient_id"])
    # more than half invalid: the column is wrong, the baseline is not built (and nobody is dropped)
    X2 = X.copy()
    X2[VOL] = 0.0
    res2 = run_study(X2, clin, cands(X2), StudyConfig(**FAST))
    assert "volume" not in res2.metrics["models"] and res2.metrics["n_used"] == 60
    assert "<= 0 for 60 of 60 patients" in res2.metrics["baselines_not_built"]["volume"]


# --------------------------------------------------------------------------- item 5: feature tables


def _write_three_header_table(path: Path, X: pd.DataFrame) -> None:
    cls = [""] + [c.split("_")[0] for c in X.columns]
    lines = [",".join(cls), ",".join([""] + list(X.columns)), "PatientID" + "," * len(X.columns)]
    lines += [",".join([str(i)] + [repr(float(v)) for v in row]) for i, row in zip(X.index, X.to_numpy())]
    path.write_text("\n".join(lines) + "\n")


def test_feature_table_with_three_header_rows(tmp_path):
    from radsurv.features.table import read_feature_table

    X, _ = planted_cohort(n=12, n_noise=3, seed=1)
    X.index = [str(i) for i in range(100, 112)]
    p = tmp_path / "radiomics.csv"
    _write_three_header_table(p, X)
    with pytest.raises(ValueError, match=r"has 3 header rows, not 1: .* not numbers; 'PatientID' is in header "
                                         r"row 3\. Set modelling.features_header_rows: 3"):
        read_feature_table(p, "PatientID")
    got = read_feature_table(p, "PatientID", header_rows=3)
    assert list(got.columns) == list(X.columns) and list(got.index) == list(X.index)
    np.testing.assert_allclose(got.to_numpy(float), X.to_numpy(float))
    assert all(pd.api.types.is_float_dtype(got[c]) for c in got.columns)
    # right id column but a stray second header row below the names: named as such
    p2 = tmp_path / "two.csv"
    X.reset_index(names="PatientID").to_csv(p2, index=False)
    lines = p2.read_text().splitlines()
    p2.write_text("\n".join([lines[0], ",".join(["units"] * len(lines[0].split(",")))] + lines[1:]) + "\n")
    with pytest.raises(ValueError, match=r"first 1 row\(s\) below the column names are not numbers"):
        read_feature_table(p2, "PatientID")
    # many text columns (pyradiomics diagnostics) beside few features are not header rows
    p3 = tmp_path / "diag.csv"
    X.assign(**{f"diagnostics_{j}": "v3.1" for j in range(20)}).reset_index(names="PatientID").to_csv(p3, index=False)
    assert read_feature_table(p3, "PatientID").shape == (12, len(X.columns) + 20)


def test_feature_table_index_column_dropped_and_ids_mapped(tmp_path, caplog):
    from radsurv.features.table import candidate_columns, read_feature_table

    X, _ = planted_cohort(n=10, n_noise=2, seed=1)
    t = X.reset_index(drop=True)
    t.insert(0, "Patient", [f"LUNG1-{i:03d}_000000_GTV-1_mask" for i in range(1, 11)])
    t.insert(1, "row_number", range(10))  # a plain 0..n-1 integer column
    extra = t.iloc[[0]].assign(Patient="LUNG1-001_20180209_CT_2_GTV-1_mask", row_number=10)
    pd.concat([t, extra]).to_csv(tmp_path / "f.csv")  # writes the unnamed index column too
    qc: list[dict[str, str]] = []
    with caplog.at_level(logging.INFO, logger="radsurv.features.table"):
        got = read_feature_table(tmp_path / "f.csv", "Patient", id_pattern=r"^(LUNG1-[0-9]+)_000000_GTV-1_mask$",
                                 qc=qc)
    assert list(got.index) == [f"LUNG1-{i:03d}" for i in range(1, 11)]
    assert "Unnamed: 0" not in got.columns and "row_number" not in got.columns
    assert "row_number" not in candidate_columns(got, None)
    assert "leftover row index" in caplog.text
    assert len(qc) == 1 and qc[0]["reason"].startswith("1 row(s) of the feature table f.csv do not match")
    with pytest.raises(ValueError, match="matches none of the ids"):
        read_feature_table(tmp_path / "f.csv", "Patient", id_pattern=r"^(HN1-[0-9]+)")
    with pytest.raises(ValueError, match=r"duplicate patient ids .* \(after modelling.features_id_pattern\)"):
        read_feature_table(tmp_path / "f.csv", "Patient", id_pattern=r"^(LUNG1-[0-9]+)")
    with pytest.raises(ValueError, match=r"no patient id column 'ID'; its first columns are \['Unnamed: 0', "
                                         r"'Patient'"):
        read_feature_table(tmp_path / "f.csv", "ID")


# --------------------------------------------------------------------------- item 11: intervals, IPCW


def test_every_interval_says_what_it_is():
    X, clin = planted_cohort(n=60, n_noise=6, seed=5)
    res = run_study(X, clin, cands(X), StudyConfig(**{**FAST, "bootstrap": 20}))
    p = res.performance
    fw = p[p["metric"] == "harrell_c_foldwise_mean"]
    assert len(fw) and (fw["interval"] == M.INTERVAL_FOLD_SPREAD).all()
    assert "spread, not a CI" in M.INTERVAL_FOLD_SPREAD
    boot = p[(p["set"] == "cross-validated") & (p["metric"] == "harrell_c")]
    assert (boot["interval"] == M.INTERVAL_BOOTSTRAP).all()
    no_ci = p[p["ci_low"].isna()]
    assert (no_ci["interval"].fillna("") == "").all()


def test_ipcw_censoring_from_training_patients_split_design():
    """Split design: Uno's C of the validation cohort uses the DEVELOPMENT cohort's censoring
    distribution (sksurv's survival_train), not the validation cohort's own."""
    X, clin = planted_cohort(n=150, n_noise=6, seed=8)
    cfg = StudyConfig(**{**FAST, "horizons": (10.0,), "tau": 30.0}, design="split")
    res = run_study(X, clin, cands(X), cfg)
    pred = res.predictions[res.predictions["set"] == "test"].set_index("patient_id")
    c = clin.set_index("patient_id")
    dev = sorted(set(c.index) - set(pred.index))
    y_dev = M.surv_array(c.loc[dev, "time"], c.loc[dev, "event"])
    y_val = M.surv_array(pred["time"], pred["event"])
    t_max = y_dev["time"].max()  # sksurv needs the evaluated times inside the reference's follow-up
    late = y_val["time"] >= t_max
    y_val_in = M.surv_array(np.minimum(y_val["time"], t_max), y_val["event"] & ~late)
    want = concordance_index_ipcw(y_dev, y_val_in, pred["risk_score"].to_numpy(), tau=30.0)[0]
    own = concordance_index_ipcw(y_val, y_val, pred["risk_score"].to_numpy(), tau=30.0)[0]
    got = res.performance.query("model == 'radiomics' and set == 'validation' and metric == 'uno_c'")["estimate"]
    assert got.iloc[0] == pytest.approx(want, abs=1e-12)
    assert abs(want - own) > 1e-6  # the test can tell the two reference sets apart


def test_within_followup_censors_beyond_the_reference():
    y_ref = M.surv_array([1.0, 2.0, 5.0, 10.0], [1, 0, 1, 0])
    y = M.surv_array([3.0, 12.0, 10.0, 4.0], [1, 1, 1, 0])
    w = M.within_followup(y_ref, y)
    assert w["time"].tolist() == [3.0, 10.0, 10.0, 4.0] and w["event"].tolist() == [True, False, False, False]
    with pytest.raises(ValueError):
        concordance_index_ipcw(y_ref, y, np.array([1.0, 2.0, 3.0, 4.0]))  # what sksurv does without it
    assert np.isfinite(M.uno_c(y_ref, w, np.array([1.0, 2.0, 3.0, 4.0]), None))
    inside = M.surv_array([3.0, 4.0], [1, 0])
    assert M.within_followup(y_ref, inside) is inside


def test_external_cohort_longer_follow_up_gets_ipcw_metrics():
    X, clin = planted_cohort(n=120, n_noise=6, seed=10)
    dev, ext = X.index[:80], X.index[80:]
    c = clin.set_index("patient_id")
    ce = c.loc[ext].copy()
    ce["time"] = ce["time"] * 3  # followed much longer than the development cohort
    cfg = StudyConfig(**{**FAST, "horizons": (10.0, 30.0)})
    res = run_study(X.loc[dev], c.loc[dev].reset_index(), cands(X), cfg,
                    external={"late": (X.loc[ext], ce.reset_index())})
    p = res.performance.query("set == 'external:late' and model == 'radiomics'").set_index("metric")["estimate"]
    assert np.isfinite(p["uno_c"]) and np.isfinite(p["auc_10"])


# --------------------------------------------------------------------------- real tables


def _config(name: str) -> dict:
    return yaml.safe_load((REPO / "config" / "examples" / name).read_text())


def _run_example(name: str, tmp_path: Path, **over) -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """The example config through the features-table route (fit_models), paths resolved
    against the repository as Snakemake would; reduced CV/bootstrap for speed."""
    from radsurv.workflow.modelling import fit_models, model_files

    cfg = _config(name)
    m = {**cfg["modelling"], **over}
    m["features_table"] = str(REPO / m["features_table"])
    m["published_signatures"] = [str(REPO / p) for p in m.get("published_signatures", [])]
    ct = cfg["cohort"]["clinical_table"]
    clin = [str(REPO / p) for p in ct] if isinstance(ct, list) else str(REPO / ct)
    fit_models(features=m["features_table"], clinical=clin, modelling=m, seed=cfg["seed"],
               columns=cfg["cohort"]["columns"], **model_files(tmp_path / "model"))
    perf = pd.read_csv(tmp_path / "model" / "performance.tsv", sep="\t")
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    qc = pd.read_csv(tmp_path / "model" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    return perf, metrics, qc


REDUCED = {"cv_repeats": 1, "bootstrap": 20, "max_features": [4], "penalizer": [1.0]}


def _c(perf: pd.DataFrame, model: str) -> float:
    return float(perf.query("model == @model and set == 'cross-validated' and metric == 'harrell_c'")["estimate"]
                 .iloc[0])


def test_lung1_example_config_runs(shared_data, tmp_path):
    perf, metrics, qc = _run_example("lung1_features.yaml", tmp_path, **REDUCED)
    assert metrics["n_used"] == 144 and metrics["events"] == 128
    assert metrics["n_candidate_features"] == 1218  # the unnamed index column is not a feature
    assert metrics["volume_feature"] == "original_shape_MeshVolume" and metrics["baselines_not_built"] == {}
    print({m: round(_c(perf, m), 3) for m in ("radiomics", "volume", "clinical", "combined")})
    assert 0.57 <= _c(perf, "volume") <= 0.68  # reference: tumour volume alone 0.628 (apparent)
    assert 0.57 <= _c(perf, "radiomics") <= 0.72
    assert 0.52 <= _c(perf, "clinical") <= 0.70
    # 278 clinical-only patients: one summary row, not 278
    assert len(qc) <= 3 and qc["reason"].str.startswith("278 patient(s) in lung1_clinical_v3.csv").sum() == 1
    pub = pd.read_csv(tmp_path / "model" / "published_signatures.tsv", sep="\t").set_index(["model", "metric"])
    assert pub.loc[("signature", "harrell_c"), "estimate"] == pytest.approx(0.632, abs=0.005)  # shared/README


def test_owkin_example_config_runs(shared_data, tmp_path):
    perf, metrics, qc = _run_example("owkin_nsclc.yaml", tmp_path, **REDUCED)
    assert metrics["n_used"] == 300 and metrics["n_clinical_only"] == 0 and metrics["n_features_only"] == 0
    assert metrics["volume_feature"] == "original_shape_VoxelVolume"  # the table has no MeshVolume
    assert qc["reason"].str.contains("uses 'original_shape_VoxelVolume'").any()
    print({m: round(_c(perf, m), 3) for m in ("radiomics", "volume", "clinical", "combined")})
    for m in ("radiomics", "volume", "clinical", "combined"):
        assert 0.58 <= _c(perf, m) <= 0.72, m


def test_owkin_histology_no_longer_encodes_the_source(shared_data):
    """'Adenocarcinoma' (source l2) vs 'adenocarcinoma' (source l1): one level, so the clinical
    model cannot tell the two data sources apart by capitalisation."""
    cl = pd.read_csv(shared_data / "owkin-nsclc" / "train_clinical.csv", dtype=str, keep_default_na=False)
    spec = CovariateSpec.from_config("Histology", _config("owkin_nsclc.yaml")["modelling"]["clinical_covariates"]
                                     ["Histology"])
    enc = ClinicalEncoder([spec.to_dict()]).fit(cl)
    assert enc.levels_["Histology"] == ["adenocarcinoma", "large cell", "squamous cell carcinoma"]
    coded = enc.transform(cl)
    adeno = cl["Histology"].str.lower() == "adenocarcinoma"
    # the adenocarcinomas of both sources have one coding
    assert len(coded[adeno.to_numpy()].drop_duplicates()) == 1
    assert set(cl.loc[adeno, "SourceDataset"]) == {"l1", "l2"}
