"""Issue #19 in the workflow: a small Snakemake run of the multi-centre demo (three scanners,
in-fold ComBat) with the ``randomized`` and ``moved_roi`` negative controls. Checks that every
control's per-scan features and study outputs exist, that the controls kept the tumour's shape
and changed its intensities, and that the report's "Confound controls" table lists each control
with a held-out C-index and a 95% CI beside the real and volume-only models."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_workflow, write_config

CONTROLS = ["randomized", "moved_roi"]


def multicentre_config(workdir: Path) -> Path:
    """config/examples/multicentre_demo.yaml made small: 12 patients at 3 centres (6 with a retest
    scan, so the within-centre ICC has 6 - 3 subject df), no filters, test-retest robustness, one
    untuned 2-fold CV, 20 bootstrap resamples, two controls."""
    cfg = yaml.safe_load((REPO / "config" / "examples" / "multicentre_demo.yaml").read_text())
    cfg["demo"].update(patients=12, retest=6)  # three scanners, grain texture as the example
    cfg["extraction"] = {"filters": {"log_sigma_mm": [], "wavelet": False}}
    cfg["robustness"]["min_pairs"] = 3
    cfg["modelling"].update(cv_folds=2, cv_repeats=1, inner_folds=2, max_features=[2], penalizer=[10.0],
                            horizons=[12.0], bootstrap=20)
    cfg["harmonisation"].update(min_batch_size=2, negative_controls=CONTROLS)
    return write_config(workdir, cfg, "multicentre.yaml")


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("multicentre_run")
    cfg = multicentre_config(work)
    return run_workflow(work, "--configfile", str(cfg), "--cores", "2")


@pytest.mark.e2e
def test_controls_features_and_studies_exist_with_the_real_shape(run):
    first = pd.read_csv(run / "features" / "features.tsv", sep="\t")
    first = first[first["session"] == first.groupby("patient_id")["session"].transform("min")] \
        if "session" in first.columns else first.drop_duplicates("patient_id")
    for control in CONTROLS:
        d = run / "controls" / control
        jsons = sorted((d / "features").glob("*.json"))
        assert len(jsons) == first["patient_id"].nunique(), (control, [p.name for p in jsons])
        for name in ("features.tsv", "performance.tsv", "metrics.json"):
            assert (d / name).is_file(), (control, name)
        assert (run / "qc" / f"control_{control}.tsv").is_file()
        table = pd.read_csv(d / "features.tsv", sep="\t")
        merged = table.merge(first, on="patient_id", suffixes=("_control", "_real"))
        assert len(merged) == first["patient_id"].nunique()
        # shape kept (both controls keep the ROI's shape and volume; the moved ROI is resampled from
        # another grid origin: partial-volume changes at its boundary, up to 6% seen), intensities changed
        vol = merged["original_shape_VoxelVolume_control"] / merged["original_shape_VoxelVolume_real"]
        assert vol.between(0.9, 1.1).all(), (control, vol.tolist())
        mean_diff = (merged["original_firstorder_Mean_control"] - merged["original_firstorder_Mean_real"]).abs()
        assert (mean_diff > 1.0).all(), (control, mean_diff.tolist())
        m = json.loads((d / "metrics.json").read_text())
        assert 0.0 <= m["c_index_test_ci_low"] <= m["c_index_test"] <= m["c_index_test_ci_high"] <= 1.0


@pytest.mark.e2e
def test_robustness_icc_nested_in_centres_and_combat_protects_volume(run):
    summary = json.loads((run / "robustness" / "test_retest_summary.json").read_text())
    assert summary["assessed"] is True and summary["n"] == 6
    nested = summary["within_batch"]
    assert nested["batches"] == len(nested["patients_per_batch"]) and sum(nested["patients_per_batch"].values()) == 6
    assert "nested in their harmonisation batch" in json.loads((run / "robustness" / "summary.json").read_text())[
        "description"]
    settings = json.loads((run / "harmonisation" / "settings.json").read_text())
    assert "tumour_log_volume" in settings["description"]["protect"]


@pytest.mark.e2e
def test_report_confound_controls_table_lists_each_control_with_c_and_ci(run):
    page = (run / "report" / "report.html").read_text()
    assert '<h2 id="negative-controls">Confound controls</h2>' in page
    section = page.split('<h2 id="negative-controls">', 1)[1].split("<h2", 1)[0]
    part = section.split("<h3>Negative controls</h3>", 1)[1]
    head = re.findall(r"<th>(.*?)</th>", part)
    assert head == ["model", "held-out Harrell&#x27;s C", "95% CI", "minus volume-only C (paired 95% CI)"], head
    table = pd.DataFrame([[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", row)]
                          for row in re.findall(r"<tr>(<td>.*?)</tr>", part)],
                         columns=["model", "held-out Harrell's C", "95% CI", "minus volume"])
    volume_c = float(table.loc[table["model"] == "tumour volume alone", "held-out Harrell's C"].iloc[0])
    models = table["model"].tolist()
    for control in CONTROLS:
        row = table[table["model"].str.startswith(f"control {control}:")]
        assert len(row) == 1, (control, models)
        c = float(row["held-out Harrell's C"].iloc[0])
        lo, hi = (float(x) for x in re.fullmatch(r"(\d\.\d{3})-(\d\.\d{3})", row["95% CI"].iloc[0]).groups())
        m = json.loads((run / "controls" / control / "metrics.json").read_text())
        assert c == pytest.approx(m["c_index_test"], abs=5e-4) and lo <= c <= hi
        # the paired difference to the volume-only model of the same patients and folds
        d, d_lo, d_hi = (float(x) for x in re.fullmatch(r"([+-]\d\.\d{3}) \((-?\d\.\d{3}) to (-?\d\.\d{3})\)",
                                                       row["minus volume"].iloc[0]).groups())
        assert d == pytest.approx(c - volume_c, abs=2e-3) and d_lo <= d <= d_hi
        assert d == pytest.approx(m["delta_harrell_c_vs_volume"]["estimate"], abs=5e-4)
    # beside the real model and the volume-only model, each with its C and CI
    for name in ("radiomics model (real images)", "tumour volume alone"):
        row = table[table["model"] == name]
        assert len(row) == 1, (name, models)
        assert re.fullmatch(r"\d\.\d{3}", row["held-out Harrell's C"].iloc[0])
        assert re.fullmatch(r"\d\.\d{3}-\d\.\d{3}", row["95% CI"].iloc[0])
    assert len(models) == 2 + len(CONTROLS), models
