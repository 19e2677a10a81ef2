"""The workflow's robustness ICCs with patients nested in their harmonisation batch
(``robustness.within_batch``; rules ``test_retest_icc`` and ``select_robust_features``).

A planted multi-centre case: 12 retest patients at three centres whose scanners read 40 HU
apart. ``original_firstorder_Mean`` varies little between patients within a centre and its
scan-to-scan noise is larger (SD 3 against 1), so it is not reproducible; the centres' offsets make
it look reproducible to the crossed ICC. ``original_glcm_Contrast`` is reproducible either way.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from radsurv.workflow import robustness as wr

SETTINGS = {"icc_form": "ICC(2,1)", "threshold": 0.75, "use_lower_bound": True, "min_pairs": 5,
            "method": "test-retest", "retest_max_days": 30, "within_batch": True}
CENTRES = {"A": ("radsurv-demo", 0.0), "B": ("north", 40.0), "C": ("south", -40.0)}


def _workspace(root: Path) -> Path:
    rng = np.random.default_rng(5)
    pids = [f"P{i:02d}" for i in range(12)]
    centre = ["A", "B", "C"] * 4
    scans, rows = [], []
    for i, p in enumerate(pids):
        mean_i, contrast_i = rng.normal(0, 1.0), rng.normal(0, 5.0)
        for s in (1, 2):
            sid = f"{p}_S{s}"
            scans.append({"scan_id": sid, "patient_id": p, "session": s, "days_from_first": 7 * (s - 1)})
            rows.append({"scan_id": sid, "patient_id": p, "session": s,
                         "original_firstorder_Mean": CENTRES[centre[i]][1] + mean_i + rng.normal(0, 3.0),
                         "original_glcm_Contrast": contrast_i + rng.normal(0, 0.3)})
            conv = root / "results" / "scans" / sid / "converted"
            conv.mkdir(parents=True)
            (conv / "provenance.json").write_text(json.dumps(
                {"scan_id": sid, "patient_id": p, "modality": "CT", "manufacturer": CENTRES[centre[i]][0]}))
    res = root / "results"
    for sub in ("ingest", "features", "clinical", "robustness"):
        (res / sub).mkdir(parents=True, exist_ok=True)
    pd.DataFrame(scans).to_csv(res / "ingest" / "scans.tsv", sep="\t", index=False)
    pd.DataFrame(rows).to_csv(res / "features" / "features.tsv", sep="\t", index=False)
    pd.DataFrame({"patient_id": pids, "time": 10.0, "event": 1, "centre": centre}).to_csv(
        res / "clinical" / "clinical.tsv", sep="\t", index=False)
    return res


def _run(res: Path, name: str, **batch) -> tuple[pd.DataFrame, dict, dict]:
    rob = res / "robustness" / name
    rob.mkdir()
    wr.test_retest_icc(features=res / "features" / "features.tsv", scans=res / "ingest" / "scans.tsv",
                       settings=SETTINGS, table=rob / "tr.tsv", summary=rob / "tr.json", bland_altman=rob / "ba.png",
                       **batch)
    wr.select_robust_features(features=res / "features" / "features.tsv", analyses=["test-retest"],
                              tables=[rob / "tr.tsv"], summaries=[rob / "tr.json"], settings=SETTINGS,
                              icc=rob / "icc.tsv", robust=rob / "robust.txt", selection=rob / "sel.tsv",
                              summary=rob / "rob.json", plot=rob / "icc.png")
    table = pd.read_csv(rob / "tr.tsv", sep="\t").set_index("feature")
    return table, json.loads((rob / "tr.json").read_text()), json.loads((rob / "rob.json").read_text())


def test_centre_offsets_no_longer_make_a_feature_robust(tmp_path, monkeypatch) -> None:
    res = _workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    crossed, crossed_summary, _ = _run(res, "crossed")
    assert crossed.loc["original_firstorder_Mean", "robust"]  # fooled by the centres
    assert crossed_summary["within_batch"] is None
    harm = {"enabled": True, "batch": {"column": "centre"}}
    nested, summary, rob = _run(res, "by_centre", clinical=res / "clinical" / "clinical.tsv", harmonisation=harm)
    assert not nested.loc["original_firstorder_Mean", "robust"]
    assert nested.loc["original_firstorder_Mean", "icc"] < 0.6  # planted: 1 / (1 + 9) = 0.1
    assert nested.loc["original_glcm_Contrast", "robust"]
    assert summary["within_batch"] == {"batches": 3, "patients_per_batch": {"A": 4, "B": 4, "C": 4}}
    assert "nested in their harmonisation batch (test-retest: 3 batches)" in rob["description"]
    # the same batches from the scanners' acquisition facts (provenance.json of the first scans)
    harm_acq = {"enabled": True, "batch": {"acquisition": ["manufacturer"]}}
    converted = sorted(str(p) for p in (res / "scans").glob("*_S1/converted"))
    by_scanner, summary_acq, _ = _run(res, "by_scanner", clinical=res / "clinical" / "clinical.tsv",
                                      converted=converted, harmonisation=harm_acq)
    pd.testing.assert_series_equal(by_scanner["icc"], nested["icc"])
    assert summary_acq["within_batch"]["batches"] == 3


def test_too_few_pairs_per_batch_is_not_assessed(tmp_path, monkeypatch) -> None:
    res = _workspace(tmp_path)
    monkeypatch.chdir(tmp_path)
    clin = pd.read_csv(res / "clinical" / "clinical.tsv", sep="\t")
    clin["centre"] = [f"site{i}" for i in range(11)] + ["site0"]  # 12 patients in 11 centres
    clin.to_csv(res / "clinical" / "clinical.tsv", sep="\t", index=False)
    table, summary, _ = _run(res, "sparse", clinical=res / "clinical" / "clinical.tsv",
                             harmonisation={"enabled": True, "batch": {"column": "centre"}})
    assert summary["assessed"] is False and table["robust"].all() and table["icc"].isna().all()


def test_perturbation_icc_nested_in_centres() -> None:
    """The perturbation ICC(1,1) over 4 perturbed versions of 12 patients' scans at three centres
    40 units apart: the crossed ICC calls a feature with little between-patient variation robust,
    the ICC within centres does not."""
    from radsurv.robustness.perturbation_icc import perturbation_table
    from radsurv.robustness.selection import RobustnessSettings

    rng = np.random.default_rng(9)
    rows = []
    for i in range(12):
        centre_offset = CENTRES["ABC"[i % 3]][1]
        level = rng.normal(0, 1.0)
        for v in range(4):
            rows.append({"scan_id": f"P{i:02d}_S1", "patient_id": f"P{i:02d}", "perturbation": v,
                         "original_firstorder_Mean": centre_offset + level + rng.normal(0, 3.0)})
    long = pd.DataFrame(rows)
    rs = RobustnessSettings.from_config(SETTINGS)
    crossed, _ = perturbation_table(long, rs)
    groups = pd.Series(["ABC"[i % 3] for i in range(12)], index=[f"P{i:02d}" for i in range(12)])
    nested, assessed = perturbation_table(long, rs, groups=groups)
    assert assessed and bool(crossed["robust"].iloc[0]) and not bool(nested["robust"].iloc[0])
    assert nested["icc"].iloc[0] < 0.5
