"""Repeat scans: told apart by study and acquisition date/time, and labelled."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pydicom
from pydicom.uid import generate_uid
from test_dicomio import make_ct, make_rtstruct, square, z_of

from radsurv.ingest.discovery import discover
from radsurv.ingest.records import scan_label
from radsurv.workflow.ingest import discover_scans

GTV = [(1, "GTV", [square(-5.5, 4.5, -5.5, 4.5, z_of(3))])]


def _set_acquisition(ct: dict[str, object], date: str, time: str) -> None:
    for f in ct["files"]:  # type: ignore[union-attr]
        ds = pydicom.dcmread(f)
        ds.AcquisitionDate, ds.AcquisitionTime, ds.SeriesTime = date, time, time
        ds.save_as(f)


def _cohort(root: Path) -> None:
    # A: two acquisitions in ONE study 25 min apart (same-visit repeat), then a follow-up 90 days later.
    study = generate_uid()
    late = make_ct(root / "A" / "late", patient_id="A", study_uid=study, study_date="20210110", study_time="100000",
                   series_number=5)
    early = make_ct(root / "A" / "early", patient_id="A", study_uid=study, study_date="20210110",
                    study_time="100000", series_number=9)  # higher series number, but acquired first
    _set_acquisition(early, "20210110", "101000")
    _set_acquisition(late, "20210110", "103500")
    follow = make_ct(root / "A" / "fu", patient_id="A", study_date="20210410", study_time="080000")
    for name, ct in (("early", early), ("late", late), ("fu", follow)):
        make_rtstruct(root / "A" / f"rs_{name}.dcm", ct, GTV, patient_id="A")
    # B: baseline and a retest study 6 days later; C: a single scan; D: second scan 31 days later
    for pid, dates in (("B", ["20220301", "20220307"]), ("C", ["20220505"]), ("D", ["20220101", "20220201"])):
        for n, d in enumerate(dates):
            ct = make_ct(root / pid / str(n), patient_id=pid, study_date=d, study_time="120000")
            make_rtstruct(root / pid / f"rs{n}.dcm", ct, GTV, patient_id=pid)


def test_sessions_are_ordered_numbered_and_labelled(tmp_path: Path) -> None:
    _cohort(tmp_path / "in")
    out = tmp_path / "ingest"
    discover_scans(dicom=tmp_path / "in", scans=out / "scans.tsv", manifests=out / "manifests", qc=tmp_path / "qc.tsv",
                   retest_max_days=30)
    scans = pd.read_csv(out / "scans.tsv", sep="\t", dtype={"patient_id": str}).set_index("scan_id")
    got = scans[["session", "study_number", "days_from_first", "hours_from_first", "label"]]
    expected = pd.DataFrame(
        [
            ("A_S1", 1, 1, 0, 0.0, "baseline"),
            ("A_S2", 2, 1, 0, 0.42, "retest"),  # same study, 25 min later
            ("A_S3", 3, 2, 90, 2157.83, "follow-up"),
            ("B_S1", 1, 1, 0, 0.0, "baseline"),
            ("B_S2", 2, 2, 6, 144.0, "retest"),
            ("C_S1", 1, 1, 0, 0.0, "baseline"),
            ("D_S1", 1, 1, 0, 0.0, "baseline"),
            ("D_S2", 2, 2, 31, 744.0, "follow-up"),  # beyond retest_max_days
        ],
        columns=["scan_id", "session", "study_number", "days_from_first", "hours_from_first", "label"],
    ).set_index("scan_id")
    pd.testing.assert_frame_equal(got.sort_index(), expected, check_dtype=False)
    # the same-study pair is ordered by acquisition time, not by series number or folder name
    a1 = pd.read_json(out / "manifests" / "A_S1.json", typ="series")
    assert "/A/early/" in a1["image_files"][0]
    # the robustness stage pairs exactly the scans labelled retest
    from radsurv.robustness.testretest import retest_pairs

    pairs = retest_pairs(scans.reset_index(), 30)
    assert sorted(pairs["retest_scan"]) == sorted(scans.index[scans["label"] == "retest"])


def test_scan_label_rule() -> None:
    assert scan_label(1, 0, 30) == "baseline"
    assert scan_label(2, 30, 30) == "retest" and scan_label(2, 31, 30) == "follow-up"
    assert scan_label(3, 2, 30) == "repeat" and scan_label(2, 0, 30, dated=False) == "undated"


def test_discover_default_window_and_undated_warning(tmp_path: Path) -> None:
    root = tmp_path / "in"
    for n, d in enumerate(["20200101", ""]):
        ct = make_ct(root / str(n), patient_id="U", study_date=d)
        if not d:
            for f in ct["files"]:  # type: ignore[union-attr]
                ds = pydicom.dcmread(f)
                for k in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
                    if k in ds:
                        delattr(ds, k)
                ds.save_as(f)
        make_rtstruct(root / f"rs{n}.dcm", ct, GTV, patient_id="U")
    disc = discover(root)
    labels = {s.scan_id: s.label for s in disc.scans}
    assert labels == {"U_S1": "baseline", "U_S2": "undated"}
    assert any("no study or acquisition date" in q["reason"] for q in disc.qc)
