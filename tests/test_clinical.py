"""The clinical table: column mapping and every fault reported, none silently dropped."""

from __future__ import annotations

import pytest

from radsurv.clinical import load_clinical

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
    assert "no analysable scan" in reasons[("P9", "warning")]
    assert all(r["stage"] == "clinical" for r in qc)


def test_missing_column_names_the_columns(tmp_path):
    p = tmp_path / "clin.tsv"
    p.write_text("ID\tOS_m\n1\t3\n")
    with pytest.raises(ValueError, match=r"no column\(s\) \['dead', 'Stage'\]"):
        load_clinical(p, COLS)
