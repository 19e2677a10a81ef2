"""Tests of radsurv.privacy: UID pseudonyms, scrubbing free text and the way back."""

from __future__ import annotations

import logging
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from test_dicomio import make_ct

from radsurv.errors import CaseError
from radsurv.privacy import ScrubbingFormatter, find_pseudonym, header_uids, main, scrub_uids, uid_pseudonym
from radsurv.qc import qc_row, read_status, write_status

# Reference values: `printf %s UID | sha256sum | cut -c1-16` (coreutils), not this module.
RTUTILS_SERIES = "2.16.840.1.114362.1.11940992.23790159890.563423471.893.88"
RTUTILS_SERIES_PSEUDONYM = "uid-a2c69962fd525add"
PYDICOM_SERIES = "1.2.826.0.1.3680043.8.498.2010020400001.2.1.1"
PYDICOM_SERIES_PSEUDONYM = "uid-09e58a35196d608b"


def test_pseudonym_reference_values() -> None:
    assert uid_pseudonym(RTUTILS_SERIES) == RTUTILS_SERIES_PSEUDONYM
    assert uid_pseudonym(PYDICOM_SERIES) == PYDICOM_SERIES_PSEUDONYM
    # DICOM pads odd-length UIDs with NUL; the padded and unpadded value are one UID
    assert uid_pseudonym(PYDICOM_SERIES + "\x00") == PYDICOM_SERIES_PSEUDONYM
    assert uid_pseudonym("") == ""
    assert uid_pseudonym("1.2.3.4") != uid_pseudonym("1.2.3.5")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # named cases: (free text, what must come out)
        (f"series {RTUTILS_SERIES} cannot be read", f"series {RTUTILS_SERIES_PSEUDONYM} cannot be read"),
        (f"ends with a UID {PYDICOM_SERIES}.", f"ends with a UID {PYDICOM_SERIES_PSEUDONYM}."),
        (f"references series {PYDICOM_SERIES}, {RTUTILS_SERIES}",
         f"references series {PYDICOM_SERIES_PSEUDONYM}, {RTUTILS_SERIES_PSEUDONYM}"),
        (f"(UID {RTUTILS_SERIES})", f"(UID {RTUTILS_SERIES_PSEUDONYM})"),
        # PACS export layout: study/series folders and SOP-UID file names are the same identifiers
        (f"image file {PYDICOM_SERIES}/{RTUTILS_SERIES}.dcm is truncated",
         f"image file {PYDICOM_SERIES_PSEUDONYM}/{RTUTILS_SERIES_PSEUDONYM}.dcm is truncated"),
        # UUID-derived UID (PS3.5 B.2) has only three components
        ("SOP 2.25.329800735698586629295641978511506172918 missing",
         f"SOP {uid_pseudonym('2.25.329800735698586629295641978511506172918')} missing"),
        # the DICOM standard's own UIDs identify nobody: kept
        ("transfer syntax 1.2.840.10008.1.2.4.90 is not supported",
         "transfer syntax 1.2.840.10008.1.2.4.90 is not supported"),
        # not UIDs: versions, floats, IP addresses, sizes
        ("numpy 1.26.4, pyradiomics 3.1.4, spacing 0.977 mm, host 10.0.0.1",
         "numpy 1.26.4, pyradiomics 3.1.4, spacing 0.977 mm, host 10.0.0.1"),
        ("P-1_S2 has 2.5 ml", "P-1_S2 has 2.5 ml"),
    ],
    ids=["plain", "sentence-end", "list", "parentheses", "pacs-layout", "uuid-derived", "standard-uid", "not-uids",
         "float"],
)
def test_scrub_named_cases(text: str, expected: str) -> None:
    assert scrub_uids(text) == expected
    assert scrub_uids(expected) == expected  # idempotent: a pseudonym is not UID-shaped


def test_reasons_and_logs_carry_pseudonyms(tmp_path: Path) -> None:
    uid = generate_uid()
    assert CaseError("conversion", f"series {uid} broke").reason == f"series {uid_pseudonym(uid)} broke"
    assert uid not in str(CaseError("conversion", f"series {uid} broke"))
    assert qc_row("P1", "P1_S1", "conversion", "warning", f"file {uid}")["reason"] == f"file {uid_pseudonym(uid)}"
    write_status(tmp_path / "status.json", False, "conversion", f"SOP {uid} missing")
    assert uid not in (tmp_path / "status.json").read_text()
    assert read_status(tmp_path / "status.json")["reason"] == f"SOP {uid_pseudonym(uid)} missing"

    record = logging.LogRecord("radsurv", logging.ERROR, __file__, 1, "series %s", (uid,), None)
    try:
        raise ValueError(f"GDCM could not read {uid}")
    except ValueError:
        import sys
        record.exc_info = sys.exc_info()
    text = ScrubbingFormatter("%(message)s").format(record)
    assert uid not in text and text.count(uid_pseudonym(uid)) == 2 and "Traceback" in text


def test_find_pseudonym_leads_back_to_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ct = make_ct(tmp_path / "in" / "ct", n_slices=3)
    files = [Path(f) for f in ct["files"]]  # type: ignore[union-attr]
    named = tmp_path / "in" / "export" / f"{ct['sops'][0]}.dcm"  # type: ignore[index]
    named.parent.mkdir(parents=True)
    named.write_bytes(b"not DICOM, found by its name")
    root = tmp_path / "in"
    rel = sorted(f.relative_to(root).as_posix() for f in files)
    assert find_pseudonym(root, uid_pseudonym(str(ct["series_uid"]))) == rel
    assert find_pseudonym(root, uid_pseudonym(str(ct["study_uid"]))) == rel
    sop0 = pydicom.dcmread(files[0], stop_before_pixels=True).SOPInstanceUID
    assert header_uids(files[0]) == {str(ct["study_uid"]), str(ct["series_uid"]), sop0, str(ct["frame_uid"])}
    assert header_uids(named) == set()  # not DICOM
    assert find_pseudonym(root, uid_pseudonym(sop0)) == sorted([files[0].relative_to(root).as_posix(),
                                                                named.relative_to(root).as_posix()])
    assert main([str(root), uid_pseudonym(str(ct["series_uid"]))]) == 0
    assert capsys.readouterr().out.split() == rel
    assert main([str(root), "uid-0000000000000000"]) == 1


def test_unexpected_library_error_reaches_the_scan_record_as_a_pseudonym() -> None:
    """stages.guard_case turns any exception into a case's reason; features/robustness JSON write it as is."""
    from radsurv.features.scan import guard_case

    uid = generate_uid()

    def boom() -> dict[str, object]:
        raise RuntimeError(f"source image {uid} not found")

    ok, reason, info = guard_case("extraction", "P1_S1", boom)
    assert not ok and info == {"stage": "extraction"}
    assert reason == f"unexpected error during extraction: RuntimeError: source image {uid_pseudonym(uid)} not found"


# ------------------------------------------------- planning-system exports (issue 15, item 7)
TPS_SOP = "1.2.246.352.71.3.1634561234.2089765.20241105120000"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"file CT.{TPS_SOP}.dcm is empty", f"file CT.{uid_pseudonym(TPS_SOP)}.dcm is empty"),
        (f"RS.{TPS_SOP}.dcm references", f"RS.{uid_pseudonym(TPS_SOP)}.dcm references"),
        (f"RS_{TPS_SOP}.dcm", f"RS_{uid_pseudonym(TPS_SOP)}.dcm"),
        (f"DOE^JOHN/{TPS_SOP}/CT.{TPS_SOP}.dcm", f"DOE^JOHN/{uid_pseudonym(TPS_SOP)}/CT.{uid_pseudonym(TPS_SOP)}.dcm"),
    ],
    ids=["ct-prefix", "rs-prefix", "underscore", "study-folder"],
)
def test_scrub_finds_uids_inside_planning_system_file_names(text: str, expected: str) -> None:
    assert scrub_uids(text) == expected


def test_file_pseudonym_hides_names_and_leads_back(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from radsurv.privacy import file_pseudonym

    root = tmp_path / "export"
    f = root / "DOE^JOHN_12345" / f"CT.{TPS_SOP}.dcm"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x")
    # reference value: printf %s 'DOE^JOHN_12345/CT.<uid>.dcm' | sha256sum | cut -c1-16
    import hashlib
    rel = f"DOE^JOHN_12345/CT.{TPS_SOP}.dcm"
    assert file_pseudonym(rel) == "file-" + hashlib.sha256(rel.encode()).hexdigest()[:16]
    assert file_pseudonym(Path(rel)) == file_pseudonym(rel)
    shown = file_pseudonym(rel)
    assert "DOE" not in shown and TPS_SOP not in shown and scrub_uids(shown) == shown
    assert find_pseudonym(root, shown) == [rel]
    assert main([str(root), shown]) == 0 and capsys.readouterr().out.split() == [rel]
    assert find_pseudonym(root, uid_pseudonym(TPS_SOP)) == [rel]  # UID in the name, file not DICOM


def test_discovery_of_a_planning_system_export_names_no_path_name_or_uid(tmp_path: Path) -> None:
    """Patient-name folders and UID file names (CT.<uid>.dcm): no part reaches scans.tsv, QC or the log."""
    import json

    from radsurv.synthetic.demo import generate_demo_cohort, tps_export
    from radsurv.workflow.ingest import discover_scans

    generate_demo_cohort(tmp_path / "demo", n_patients=3, n_retest=1, seed=11,
                         n_slices=16, slice_thickness=5.0)
    exp = tps_export(tmp_path / "demo" / "dicom", tmp_path / "export", truncate=1)
    dicom = exp["dicom_dir"]
    uids = set().union(*(header_uids(f) for f in (tmp_path / "demo" / "dicom").rglob("*.dcm")))
    phi = json.loads((tmp_path / "demo" / "phi_values.json").read_text())
    names = [n for f in dicom.rglob("*") for n in (f.name,) if f.is_file() or f.is_dir()]
    needles = {*uids, *phi, *names, *exp["folders"], str(dicom), str(dicom.resolve()), str(tmp_path)}
    out, log_file = tmp_path / "results", tmp_path / "results" / "discover.log"
    out.mkdir()
    handler = logging.FileHandler(log_file)
    handler.setFormatter(ScrubbingFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.getLogger("radsurv").addHandler(handler)
    logging.getLogger("radsurv").setLevel(logging.DEBUG)
    try:
        discover_scans(dicom=dicom, scans=out / "scans.tsv", manifests=out / "private" / "manifests",
                       qc=out / "discovery.tsv", retest_max_days=30)
    finally:
        logging.getLogger("radsurv").removeHandler(handler)
        handler.close()
    qc = (out / "discovery.tsv").read_text()
    shareable = [out / "scans.tsv", out / "discovery.tsv", log_file]
    assert log_file.read_text().count("\n") > 3
    for path in shareable:
        text = path.read_text()
        leaked = sorted(n for n in needles if n and n in text)
        assert not leaked, f"{path.name} names {len(leaked)} input name(s)/UID(s)/path(s), e.g. {leaked[:3]}"
    # the faults are reported, each naming the file by its pseudonym, which leads back to it
    from radsurv.privacy import file_pseudonym

    truncated = exp["truncated"][0].relative_to(dicom).as_posix()
    assert f"image file {file_pseudonym(truncated)} of series" in qc
    assert "non-DICOM file(s) ignored: file-" in qc
    assert find_pseudonym(dicom, file_pseudonym(truncated)) == [truncated]
    scans = (out / "scans.tsv").read_text().splitlines()
    assert len(scans) == 1 + 3 and "contour_file_id" in scans[0] and "file-" in scans[1]
    # only the private manifests hold the real paths (needed to read the files)
    man = json.loads(next((out / "private" / "manifests").glob("*.json")).read_text())
    assert all(Path(f).is_file() for f in man["image_files"])


def test_library_messages_quoting_an_input_path_carry_its_pseudonym(tmp_path: Path) -> None:
    """A library error or traceback that quotes an input file's path (GDCM, ITK, highdicom)."""
    from radsurv import privacy
    from radsurv.features.scan import guard_case
    from radsurv.privacy import file_pseudonym, register_input_root

    root = tmp_path / "DOE^JOHN exports"
    rel = f"DOE^JOHN_12345/CT.{TPS_SOP}.dcm"
    old = list(privacy._INPUT_ROOTS)
    try:
        register_input_root(root)

        def boom() -> dict[str, object]:
            raise RuntimeError(f"ImageSeriesReader: cannot read '{root / rel}': no such file")

        ok, reason, _ = guard_case("conversion", "P1_S1", boom)
        assert not ok and reason == ("unexpected error during conversion: RuntimeError: ImageSeriesReader: "
                                     f"cannot read '{file_pseudonym(rel)}': no such file")
        assert scrub_uids(f"reading {root}, then {root}2/x") == f"reading <cohort folder>, then {root}2/x"
        record = logging.LogRecord("radsurv", logging.ERROR, __file__, 1, "failed on %s", (str(root / rel),), None)
        text = ScrubbingFormatter("%(message)s").format(record)
        assert text == f"failed on {file_pseudonym(rel)}" and "DOE" not in text
    finally:
        privacy._INPUT_ROOTS[:] = old
