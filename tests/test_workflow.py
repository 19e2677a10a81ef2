"""The Snakemake workflow: DAG, lint, and one real run on a tiny generated cohort."""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import N_PATIENTS, N_RETEST, REPO, SNAKEMAKE
from conftest import snakemake_run as _snakemake
from conftest import tiny_config as _tiny_config

from radsurv.privacy import header_uids, uid_pseudonym


def test_dry_run_lists_the_dag(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    res = _snakemake(tmp_path, "-n", "--cores", "2")
    assert res.returncode == 0, res.stderr
    for rule in ("demo_cohort", "discover", "assemble_features", "robustness", "model", "km_plot", "report"):
        assert re.search(rf"^{rule}\s+\d+$", res.stdout, re.M), f"{rule} missing from the DAG"


def test_lint_reports_no_problems(tmp_path):
    res = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr


def test_invalid_config_stops_with_a_readable_message(tmp_path):
    _tiny_config(tmp_path)
    cfg = yaml.safe_load((tmp_path / "config" / "config.yaml").read_text())
    cfg["cohort"]["roi_policy"] = "biggest"
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(cfg))
    res = _snakemake(tmp_path, "-n", "--cores", "1")
    assert res.returncode != 0
    assert "cohort -> roi_policy: 'biggest' is not allowed" in res.stdout + res.stderr


@pytest.mark.e2e
def test_one_feature_row_per_scan(tiny_run):
    scans = pd.read_csv(tiny_run / "ingest" / "scans.tsv", sep="\t")
    feats = pd.read_csv(tiny_run / "features" / "features.tsv", sep="\t", index_col="scan_id")
    assert len(scans) == N_PATIENTS + N_RETEST
    assert sorted(feats.index) == sorted(scans["scan_id"])
    assert feats["original_shape_MeshVolume"].gt(0).all()
    assert feats.shape[1] > 100  # all pyradiomics classes of the original image
    for folder in ("scan", "stages"):  # one per-scan job: its benchmark file and its stage costs
        assert len(list((tiny_run / "benchmarks" / folder).glob("*.tsv"))) == len(scans)


@pytest.mark.e2e
def test_icc_values_are_valid_and_shape_is_robust(tiny_run):
    icc = pd.read_csv(tiny_run / "robustness" / "icc.tsv", sep="\t")
    vals = icc["icc"].dropna()
    assert len(vals) > 50 and vals.between(-1, 1).all()
    assert (icc["ci_low"].dropna() <= icc["ci_high"].dropna()).all()
    robust = (tiny_run / "robustness" / "robust_features.txt").read_text().split()
    assert robust and set(robust) <= set(icc["feature"])
    assert "original_shape_MeshVolume" in robust


@pytest.mark.e2e
def test_every_held_out_patient_has_a_risk_group(tiny_run):
    pred = pd.read_csv(tiny_run / "model" / "predictions.tsv", sep="\t")
    assert pred["patient_id"].nunique() == N_PATIENTS
    test = pred[pred["set"] == "test"]
    assert len(test) >= 2 and test["risk_group"].isin(["low", "high"]).all()
    metrics = json.loads((tiny_run / "model" / "metrics.json").read_text())  # strict JSON
    assert metrics["n_test"] == len(test)
    assert set(metrics["by_model"]) == {"radiomics", "volume", "clinical", "combined"}
    sig = json.loads((tiny_run / "model" / "signature.json").read_text())
    assert sig["features"] and set(sig["models"]) == set(metrics["by_model"])
    perf = pd.read_csv(tiny_run / "model" / "performance.tsv", sep="\t")
    assert {"harrell_c", "uno_c", "ibs"} <= set(perf["metric"])
    allp = pd.read_csv(tiny_run / "model" / "predictions_all.tsv", sep="\t")
    assert len(allp) == N_PATIENTS * 4  # every patient held out once per model


@pytest.mark.e2e
def test_km_figures_are_real_pngs(tiny_run):
    for subset in ("test", "train"):
        data = (tiny_run / "model" / f"km_{subset}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.imgs: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.hrefs.append(a["href"])
        if tag == "img":
            self.imgs.append(a.get("src", ""))


@pytest.mark.e2e
def test_report_links_to_everything_and_embeds_figures(tiny_run):
    report = tiny_run / "report" / "report.html"
    parser = _Links()
    parser.feed(report.read_text())
    files = [h for h in parser.hrefs if not h.startswith("#")]
    anchors = [h[1:] for h in parser.hrefs if h.startswith("#")]
    for h in files:
        assert (report.parent / h).resolve().is_file(), f"broken link {h}"
    linked = {Path(h).name for h in files}
    for name in ("qc.tsv", "features.tsv", "icc.tsv", "predictions.tsv", "coefficients.tsv", "km_test.png"):
        assert name in linked
    html = report.read_text()
    for a in anchors:
        assert f'id="{a}"' in html
    # icc, heatmap, >= 1 robustness analysis, td-AUC, calibration, forest, two KM figures
    assert len(parser.imgs) >= 8 and all(s.startswith("data:image/png;base64,") for s in parser.imgs)
    for section in ("cohort", "qc", "settings", "features", "robustness", "model", "km", "checklist", "software"):
        assert f'id="{section}"' in html
    assert "Radiomics Quality Score" in html and "supply yourself" in html
    assert "Harrell" in html or "c_index_test" in html


@pytest.mark.e2e
def test_no_fake_phi_reaches_any_output_or_log(tiny_run):
    phi = json.loads((tiny_run / "demo" / "phi_values.json").read_text())
    values = [v for v in (phi if isinstance(phi, list) else phi.values()) if isinstance(v, str) and len(v) >= 6]
    assert len(values) >= 8
    # DICOM instance UIDs identify too (PS3.15 E.1): only their pseudonyms (radsurv.privacy) may leave
    uids = set().union(*(header_uids(f) for f in (tiny_run / "demo").rglob("*.dcm")))
    assert len(uids) > 100
    scans = pd.read_csv(tiny_run / "ingest" / "scans.tsv", sep="\t", dtype=str)
    assert len(scans) > 0 and set(scans.series_uid) | set(scans.study_uid) <= {uid_pseudonym(u) for u in uids}
    values += sorted(uids)
    needles = [v.encode() for v in values]
    checked = 0
    for path in [*tiny_run.rglob("*"), *(tiny_run.parent / ".snakemake" / "log").rglob("*")]:
        if not path.is_file() or (tiny_run / "demo") in path.parents or path == tiny_run / "demo":
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for n in needles:
            assert n not in data, f"{n!r} leaked into {path}"
        checked += 1
    assert checked > 50


def test_report_headline_states_held_out_results():
    from radsurv.report.html import headline

    text = headline({"c_index_test": 0.7812, "c_index_test_ci_low": 0.61, "c_index_test_ci_high": 0.9,
                     "n_test": 16, "events_test": 10, "c_index_volume_test": 0.66, "logrank_p_test": 0.012,
                     "hr_high_vs_low_test": 3.1, "hr_ci_low_test": 1.2, "hr_ci_high_test": 8.0,
                     "c_index_train": 0.85})
    assert "Harrell's C-index on 16 held-out patients (10 events): 0.781 (95% bootstrap CI 0.61-0.90)" in text
    assert "tumour volume alone: 0.660" in text and "hazard ratio high vs low risk: 3.10 (95% CI 1.20-8.00)" in text
    assert headline({}) == "No model metrics could be computed."
