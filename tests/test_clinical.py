"""The clinical table: column mapping and every fault reported, none silently dropped."""

from __future__ import annotations

import pytest

from radsurv.ingest.clinical import load_clinical

COLS = {"id": "ID", "time": "OS_m", "event": "dead", "covariates": ["Stage"]}


def test_faults_become_qc_rows(tmp_path):
    p = tmp_path / "clin.csv"
    p.write_text(
        "ID,OS_m,dead,Stage\n"
        "P1,12.5,1,IIIA\n"
        "P2,30,0,I\n"
        "P3,,1,II\n"          # missing time
        "P4,-3,1,II\n"        # negative time
        "P5,10,2,II\n"        # non-binary event
        "P6,8,yes,\n"         # text event, missing stage kept as missing
        "P7,5,1,I\n"
        "P7,6,0,I\n"          # duplicated id
        "P9,20,0,IV\n"        # no images
    )
    table, qc = load_clinical(p, COLS, image_ids=["P1", "P2", "P3", "P6", "P8"])
    assert list(table["patient_id"]) == ["P1", "P2", "P6", "P9"]
    assert table.set_index("patient_id").loc["P6", "event"] == 1
    assert table.set_index("patient_id").loc["P1", "Stage"] == "IIIA"  # categorical kept as text
    reasons = {(r["patient_id"], r["status"]): r["reason"] for r in qc}
    assert "missing" in reasons[("P3", "excluded")]
    assert "negative" in reasons[("P4", "excluded")]
    assert "not 0/1" in reasons[("P5", "excluded")]
    assert "more than once" in reasons[("P7", "excluded")]
    assert "no row" in reasons[("P8", "excluded")]          # images but no outcome
    assert "1 patient(s)" in reasons[("", "warning")] and "no analysable scan" in reasons[("", "warning")]
    assert "P9" in reasons[("", "warning")]
    assert all(r["stage"] == "clinical" for r in qc)


def test_clinical_only_patients_are_one_summary_row(tmp_path):
    """Lung1: 422 clinical rows, features for 144 -> one warning row, not 278 (issue #15 item 5)."""
    p = tmp_path / "clin.csv"
    p.write_text("ID,OS_m,dead,Stage\n" + "".join(f"P{i:03d},{i + 1},1,I\n" for i in range(300)))
    imaged = [f"P{i:03d}" for i in range(0, 300, 10)] + ["X1", "X2"]
    _, qc = load_clinical(p, COLS, image_ids=imaged)
    warn = [r for r in qc if r["status"] == "warning"]
    assert len(warn) == 1 and warn[0]["reason"].startswith("270 patient(s) in clin.csv have no analysable scan")
    assert "P001, P002, P003, P004, P005, ..." in warn[0]["reason"]
    # the pipeline's own scans without an outcome stay one exclusion row each
    assert sorted(r["patient_id"] for r in qc if r["status"] == "excluded") == ["X1", "X2"]
    # a feature table's patients without an outcome: one summary row as well
    _, qc2 = load_clinical(p, COLS, image_ids=imaged, image_source="feature table")
    assert [(r["patient_id"], r["status"]) for r in qc2] == [("", "excluded"), ("", "warning")]
    assert qc2[0]["reason"].startswith("2 patient(s) of the feature table have no row in clin.csv")
    assert "have no row in the feature table" in qc2[1]["reason"]


def test_outcome_and_covariates_in_two_tables_are_joined(tmp_path):
    (tmp_path / "outcome.csv").write_text("ID,OS_m,dead\nP1,10,1\nP2,20,0\nP3,5,1\n")
    (tmp_path / "clin.csv").write_text("ID,Stage\nP2,II\nP1,I\nP4,III\n")
    table, qc = load_clinical([tmp_path / "outcome.csv", tmp_path / "clin.csv"], COLS)
    t = table.set_index("patient_id")
    assert list(t.index) == ["P1", "P2", "P3"] and t.loc["P1", "Stage"] == "I" and t.loc["P2", "Stage"] == "II"
    assert t.loc["P3", "Stage"] is None  # no covariate row: missing, imputed later
    assert [r["patient_id"] for r in qc] == ["P4"] and "survival time" in qc[0]["reason"]
    (tmp_path / "dup.csv").write_text("ID,OS_m\nP1,3\n")
    with pytest.raises(ValueError, match="more than one of the clinical tables"):
        load_clinical([tmp_path / "outcome.csv", tmp_path / "dup.csv"], COLS)


def test_missing_column_names_the_columns(tmp_path):
    p = tmp_path / "clin.tsv"
    p.write_text("ID\tOS_m\n1\t3\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['dead', 'Stage'\]"):
        load_clinical(p, COLS)
