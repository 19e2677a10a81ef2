"""A generated faulty cohort through the real workflow: one QC row per problem, good patients complete.

One extra Snakemake run (up to the QC table and feature matrix; no modelling) on
the cohort of :mod:`radsurv.synthetic.faulty` (16 small patients).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import run_workflow, tiny_config

from radsurv.privacy import file_pseudonym as F  # QC reasons name files by pseudonym
from radsurv.synthetic.faulty import FAULTS, GOOD, generate_faulty_cohort

#: (patient, stage, status, words the reason must contain) per fault.
EXPECTED = [
    ("RSD-005", "discovery", "warning", "localizer series"),
    ("RSD-005", "discovery", "warning", f"{F('RSD-005/1/CT_LUNG/0001.dcm')}) has no RTSTRUCT or SEG referencing it"),
    ("RSD-006", "conversion", "excluded", "a slice is missing"),
    ("RSD-007", "discovery", "warning", f"{F('RSD-007/1/CT/0011.dcm')} of series"),
    ("RSD-007", "discovery", "excluded", f"ignored as truncated (e.g. {F('RSD-007/1/CT/0011.dcm')})"),
    ("RSD-008", "discovery", "excluded", "has no analysable scan: no RTSTRUCT or SEG"),
    ("RSD-009", "conversion", "excluded", "no ROI name matches pattern '^GTV'; available: 'Tumour'"),
    ("RSD-010", "discovery", "excluded", f"{F('RSD-010/1/RTSTRUCT/0001.dcm')} references series"),
    ("RSD-011", "conversion", "excluded", "'GTV-1' lies entirely outside the image field of view"),
    ("RSD-012", "clinical", "excluded", "missing or not a number"),
    ("RSD-013", "clinical", "excluded", "survival time -3.5 is negative"),
    ("RSD-014", "clinical", "excluded", "event '2'"),
    ("RSD-015", "clinical", "excluded", "has images but no row"),
    # clinical rows without an analysable scan: one summary row (issue #15), not one per patient
    ("", "clinical", "warning", "4 patient(s) in clinical.csv have no analysable scan and are not modelled "
                                "(e.g. RSD-007, RSD-008, RSD-010, RSD-099)"),
    ("", "discovery", "warning",
     "non-DICOM file(s) ignored: " + ", ".join(map(F, ["README.txt", "RSD-001/export.log", "RSD-002/IMG0001"]))),
    ("", "discovery", "warning", f"{F('RSD-016/empty.dcm')} is empty"),
]


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("faulty_run")
    generate_faulty_cohort(work / "cohort", seed=7)
    tiny_config(work, {"cohort": {"dicom_dir": str(work / "cohort" / "dicom"),
                                  "clinical_table": str(work / "cohort" / "clinical.csv")},
                       "extraction": {"feature_classes": ["shape", "firstorder"]}})
    return run_workflow(work, "--cores", "2", "results/qc/qc.tsv", "results/features/features.tsv")


@pytest.mark.e2e
def test_every_fault_has_its_qc_row(faulty_run: Path) -> None:
    qc = pd.read_csv(faulty_run / "qc" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    for pid, stage, status, words in EXPECTED:
        hit = qc[(qc.patient_id == pid) & (qc.stage == stage) & (qc.status == status)
                 & qc.reason.str.contains(words, regex=False)]
        assert len(hit) == 1, f"{pid} {stage} {status} '{words}':\n{qc.to_string()}"
    # each faulty patient is excluded exactly once, at the stage of its fault
    for fault in FAULTS:
        if fault["status"] == "excluded":
            rows = qc[(qc.patient_id == fault["patient_id"]) & (qc.status == "excluded")]
            assert len(rows) == 1 and rows.iloc[0]["stage"] == fault["stage"], (fault, rows.to_string())
    # the good patients have no excluded row at all
    assert qc[qc.patient_id.isin(GOOD) & (qc.status == "excluded")].empty


@pytest.mark.e2e
def test_every_good_patient_completes(faulty_run: Path) -> None:
    feats = pd.read_csv(faulty_run / "features" / "features.tsv", sep="\t", index_col="scan_id",
                        dtype={"patient_id": str})
    for pid in [*GOOD, "RSD-012", "RSD-013", "RSD-014", "RSD-015"]:  # clinical faults still get features
        assert pid in set(feats["patient_id"]), pid
    assert not {"RSD-006", "RSD-007", "RSD-008", "RSD-009", "RSD-010", "RSD-011"} & set(feats["patient_id"])
    scans = pd.read_csv(faulty_run / "ingest" / "scans.tsv", sep="\t", dtype={"patient_id": str}).set_index("scan_id")
    assert scans.loc["RSD-004_S2", "label"] == "follow-up" and scans.loc["RSD-004_S2", "days_from_first"] == 90
    assert (scans.loc[["RSD-001_S2", "RSD-002_S2", "RSD-003_S2"], "label"] == "retest").all()
    # the decoys were not chosen: RSD-005's scan is the series its RTSTRUCT references
    man = json.loads((faulty_run / "ingest" / "private" / "manifests" / "RSD-005_S1.json").read_text())
    assert all("/RSD-005/1/CT/" in f for f in man["image_files"])
    clin = pd.read_csv(faulty_run / "clinical" / "clinical.tsv", sep="\t", dtype={"patient_id": str})
    assert set(GOOD) <= set(clin["patient_id"]) and not {"RSD-012", "RSD-013", "RSD-014"} & set(clin["patient_id"])
