"""Issue #18 in the workflow: ``snakemake longitudinal`` on a small generated longitudinal demo.

One real run (8 patients, 3 with a test-retest planning scan, 40 x 40 x 20 voxels, 2 cores) is
shared by the checks; then the longitudinal rules are forced to run again on the same cohort and
every table must come out byte-identical.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import run_workflow, snakemake_run

from radsurv.report.html import _blocks_html
from radsurv.report.longitudinal import REPORT_INPUTS, longitudinal_blocks, propagation_quality

REPO = Path(__file__).resolve().parents[1]
OUT = Path("results/longitudinal")
TABLES = ("assigned.tsv", "features.tsv", "propagation.tsv", "repeatability.tsv", "delta.tsv", "delta_selection.tsv",
          "landmark.tsv", "performance.tsv", "predictions.tsv", "qc.tsv")
IDS = {"patient_id": str, "scan_id": str}


def _config(workdir: Path) -> Path:
    cfg = yaml.safe_load((REPO / "config" / "examples" / "longitudinal_demo.yaml").read_text())
    cfg["demo"].update(longitudinal_patients=8, longitudinal_retest=3, longitudinal_size=[40, 40, 20])
    cfg["longitudinal"]["feature_classes"] = ["firstorder", "shape"]
    cfg["longitudinal"]["propagation"].update(rigid_iterations=100, demons_iterations=50)
    cfg["longitudinal"]["study"].update(cv_folds=2, cv_repeats=1, n_screen=2, bootstrap=20)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("longitudinal")
    cfg = _config(work)
    run_workflow(work, "--configfile", str(cfg), "--cores", "2", "longitudinal")
    first = work / "first"
    shutil.copytree(work / OUT, first)
    run_workflow(work, "--configfile", str(cfg), "--cores", "2", "--forcerun", "longitudinal_timepoints",
                 "longitudinal")
    return work, first


def _read(work: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(work / OUT / name, sep="\t", dtype=IDS)


def test_every_scan_is_assigned_to_its_planted_time_point(run):
    work, _ = run
    truth = pd.read_csv(work / "results" / "demo_longitudinal" / "truth.tsv", sep="\t", dtype=IDS)
    assigned = _read(work, "assigned.tsv")
    got = assigned.set_index("scan_id")[["timepoint", "role"]].sort_index()
    assert got.equals(truth.set_index("scan_id")[["timepoint", "role"]].sort_index())
    assert len(pd.read_csv(work / OUT / "timepoints_qc.tsv", sep="\t")) == 0
    assert "fx15" not in set(assigned.loc[assigned["patient_id"] == "LONG-002", "timepoint"])  # the missed fraction


def test_features_mark_propagated_masks_and_qc_names_the_absent_roi(run):
    work, _ = run
    f = _read(work, "features.tsv").set_index("scan_id")
    truth = pd.read_csv(work / "results" / "demo_longitudinal" / "truth.tsv", sep="\t", dtype=IDS)
    no_gtv = truth.loc[~truth["own_contours"].str.contains("GTV"), "scan_id"].tolist()
    assert no_gtv and (f.loc[no_gtv, "gtv__propagated"] == 1).all()
    assert (f.drop(index=no_gtv)["gtv__propagated"] == 0).all()
    assert f["gtv__original_shape_MeshVolume"].notna().all() and f.filter(like="parotid_r__").shape[1] > 10
    qc = _read(work, "qc.tsv")
    rows = qc[qc["scan_id"].isin(no_gtv)]
    assert len(rows) == len(no_gtv) and (rows["status"] == "warning").all()
    assert rows["reason"].str.contains("ROI 'gtv' at time point 'fx15'.*propagated instead").all()
    prop = _read(work, "propagation.tsv")
    used = prop[prop["used"]]
    assert set(used["scan_id"]) >= set(no_gtv) and used["dice"].isna().all()
    quality = propagation_quality(prop).set_index("ROI")
    assert (quality["Dice median"] > 0.7).all() and (quality["Jacobian min"] > 0).all()
    assert prop["rigid_bounded"].isin([True, False]).all() and (prop["rigid_rotation_deg"] >= 0).all()
    assert (quality["rigid rotation rejected"] == prop.groupby("roi")["rigid_bounded"].sum()).all()


def test_study_outputs_compare_four_models_on_the_landmark_patients(run):
    work, _ = run
    perf = _read(work, "performance.tsv")
    c = perf[perf["metric"] == "harrell_c"].set_index("model")
    assert list(c.index) == ["baseline", "delta", "baseline_delta", "rtvc"] and c["ci_low"].le(c["estimate"]).all()
    assert set(perf.loc[perf["metric"] == "delta_harrell_c_vs_baseline", "model"]) == {"delta", "baseline_delta",
                                                                                     "rtvc"}
    lm = _read(work, "landmark.tsv")
    assert (lm["landmark"] == "fx10").all() and (lm["time"] > 0).all()
    qc = _read(work, "qc.tsv")
    excluded = set(qc.loc[qc["stage"] == "longitudinal_landmark", "patient_id"])
    assert excluded | set(lm["patient_id"]) == {f"LONG-{i:03d}" for i in range(1, 9)}
    assert (work / OUT / "trajectories.png").stat().st_size > 5000 and (work / OUT / "waterfall.png").is_file()


def test_report_section_and_deterministic_rerun(run):
    work, first = run
    files = {"longitudinal_features": "features.tsv", "longitudinal_propagation": "propagation.tsv",
             "longitudinal_selection": "delta_selection.tsv", "longitudinal_landmark": "landmark.tsv",
             "longitudinal_performance": "performance.tsv", "longitudinal_predictions": "predictions.tsv",
             "longitudinal_trajectories_png": "trajectories.png", "longitudinal_waterfall_png": "waterfall.png",
             "longitudinal_qc": "qc.tsv"}
    assert set(files) == set(REPORT_INPUTS)
    html = "\n".join(_blocks_html(longitudinal_blocks({k: str(work / OUT / v) for k, v in files.items()}), work))
    assert '<h2 id="longitudinal">Delta radiomics</h2>' in html and "Dice median" in html
    assert "relative tumour volume change" in html and "paired 95% bootstrap CI" in html
    assert longitudinal_blocks({}) == []
    for name in TABLES:
        assert (first / name).read_bytes() == (work / OUT / name).read_bytes(), name


def test_write_report_takes_the_section_when_enabled(run):
    """The report and the run's QC table take the longitudinal outputs (dry run of the full workflow)."""
    work, _ = run
    res = snakemake_run(work, "--configfile", str(work / "config.yaml"), "-n", "--forceall", "write_report")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "longitudinal_figures" in res.stdout + res.stderr and "qc_table" in res.stdout + res.stderr


def test_binary_endpoint_is_a_config_edit_that_reruns_only_the_study(run, tmp_path):
    """``longitudinal.endpoint: binary`` on the same cohort (a copy of the run): only the study and
    its figures run again; the performance table holds ROC AUCs with paired CIs, the label table
    the modelled patients, and the report's comparison says AUC. The label is a column added to
    the clinical table, alternating 1 / 0 (the 8-patient cohort has too few xerostomia cases for
    2 folds; the demo's xerostomia is measured in the README), with one missing value: a QC row."""
    work, _ = run
    bwork = tmp_path / "binary"
    shutil.copytree(work, bwork, ignore=shutil.ignore_patterns("first"))
    clinical = bwork / "results/demo_longitudinal/clinical.tsv"
    table = pd.read_csv(clinical, sep="\t", dtype=IDS)
    table["grade2"] = [1, 0] * (len(table) // 2) + [1] * (len(table) % 2)
    table.loc[0, "grade2"] = None
    table.to_csv(clinical, sep="\t", index=False)
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["longitudinal"].update(endpoint="binary", label_column="grade2")
    (bwork / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    run_workflow(bwork, "--configfile", str(bwork / "config.yaml"), "--cores", "2", "longitudinal")
    console = (bwork / "console.txt").read_text()
    assert "longitudinal_study" in console and "longitudinal_scan_features" not in console
    perf = pd.read_csv(bwork / OUT / "performance.tsv", sep="\t")
    assert set(perf["metric"]) == {"roc_auc", "delta_roc_auc_vs_baseline"}
    assert (perf["ci_low"] <= perf["estimate"]).all() and (perf["estimate"] <= perf["ci_high"]).all()
    lm = pd.read_csv(bwork / OUT / "landmark.tsv", sep="\t", dtype=IDS)
    clin = table.set_index("patient_id")
    assert list(lm["label"]) == clin.loc[lm["patient_id"], "grade2"].astype(int).tolist()
    qc = pd.read_csv(bwork / OUT / "qc.tsv", sep="\t", dtype=str)
    missing = qc[(qc["stage"] == "longitudinal_landmark") & qc["reason"].str.contains("grade2 is missing")]
    assert list(missing["patient_id"]) == [table.loc[0, "patient_id"]]
    files = {k: str(bwork / OUT / v) for k, v in (
        ("longitudinal_features", "features.tsv"), ("longitudinal_propagation", "propagation.tsv"),
        ("longitudinal_selection", "delta_selection.tsv"), ("longitudinal_landmark", "landmark.tsv"),
        ("longitudinal_performance", "performance.tsv"), ("longitudinal_predictions", "predictions.tsv"),
        ("longitudinal_trajectories_png", "trajectories.png"), ("longitudinal_waterfall_png", "waterfall.png"),
        ("longitudinal_qc", "qc.tsv"))}
    html = "\n".join(_blocks_html(longitudinal_blocks(files), bwork))
    assert "ROC AUC (95% bootstrap CI)" in html and "Binary endpoint" in html
