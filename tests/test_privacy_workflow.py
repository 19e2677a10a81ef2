"""Issue 15, item 7: a planning-system export through the whole workflow leaks no name, path or UID.

The export is the demo cohort copied into the layout treatment-planning systems write:
folders named like patients (``PHINAME^ZQX001_RSD-001/``, the demo's fake PatientName),
one folder per StudyInstanceUID, files named by their SOP Instance UID
(``CT.<uid>.dcm``, ``RS.<uid>.dcm``), a non-DICOM note per patient and one truncated CT
file (so that QC reasons have files to name). One Snakemake run (8 patients, test-retest
robustness only, one small CV) up to the report. No input UID, fake PHI value, folder or
file name of the export, or absolute input path may appear in any file under ``results/``
or Snakemake's log, except the private intermediates (``results/ingest/private/``), which
hold the paths the scan jobs read.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import snakemake_run, tiny_config

from radsurv.privacy import find_pseudonym, header_uids
from radsurv.synthetic.demo import generate_demo_cohort, tps_export

N_PATIENTS, N_RETEST = 8, 4


@pytest.fixture(scope="module")
def tps_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    work = tmp_path_factory.mktemp("tps_run")
    demo = work / "source"
    generate_demo_cohort(demo, N_PATIENTS, N_RETEST, seed=15)
    exp = tps_export(demo / "dicom", work / "DOE^JOHN exports" / "planning", truncate=1)
    tiny_config(work)
    cfg_path = work / "config" / "config.yaml"
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["cohort"]["dicom_dir"] = str(exp["dicom_dir"])
    cfg["cohort"]["clinical_table"] = str(demo / "clinical.csv")
    cfg["extraction"]["feature_classes"] = ["shape", "firstorder", "glcm"]
    cfg["robustness"]["method"] = "test-retest"
    cfg["robustness"]["discretisation"] = {"enabled": False, "bin_widths": [25], "bin_counts": [16]}
    cfg_path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = snakemake_run(work, "--cores", "2")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return work, demo, exp


@pytest.mark.e2e
def test_planning_system_export_leaks_no_name_path_or_uid(tps_run: tuple[Path, Path, dict]) -> None:
    work, demo, exp = tps_run
    results, dicom = work / "results", Path(exp["dicom_dir"])
    phi = [v for v in json.loads((demo / "phi_values.json").read_text()) if len(v) >= 6]
    uids = set().union(*(header_uids(f) for f in (demo / "dicom").rglob("*.dcm")))
    assert len(uids) > 100 and len(phi) >= 8
    # every folder and file name of the export, the export's path and the folder above it
    names = {p.name for p in dicom.rglob("*")}
    assert any("^" in n for n in names) and any(n.startswith("CT.") for n in names)
    needles = [n.encode() for n in sorted({*uids, *phi, *names}) if len(n) >= 6]
    # the configured input locations themselves: in no result, log or report (Snakemake's own
    # log in .snakemake/ prints the rules' inputs, i.e. the configured folders, as given)
    roots = [n.encode() for n in (str(dicom), str(dicom.resolve()), "DOE^JOHN exports", str(demo), str(work))]
    private = results / "ingest" / "private"
    checked = []
    for path in [*results.rglob("*"), *(work / ".snakemake" / "log").rglob("*")]:
        if not path.is_file() or private in path.parents:
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        for n in needles + (roots if results in path.parents else []):
            assert n not in data, f"{n.decode()!r} leaked into {path.relative_to(work)}"
        checked.append(path)
    assert len(checked) > 50 and any(p.name == "report.html" for p in checked)

    # the faults are still reported, naming each file by a pseudonym that leads back to it
    from radsurv.privacy import file_pseudonym

    qc = pd.read_csv(results / "qc" / "qc.tsv", sep="\t", dtype=str, keep_default_na=False)
    truncated = exp["truncated"][0].relative_to(dicom).as_posix()
    rows = qc[qc.reason.str.contains(f"image file {file_pseudonym(truncated)} of series", regex=False)]
    assert len(rows) == 1, qc.to_string()
    assert find_pseudonym(dicom, file_pseudonym(truncated)) == [truncated]
    assert qc.reason.str.contains("non-DICOM file(s) ignored: file-", regex=False).sum() == 1
    # the other patients complete; the private manifests still lead the scan jobs to the files
    feats = pd.read_csv(results / "features" / "features.tsv", sep="\t", dtype={"patient_id": str})
    assert feats.patient_id.nunique() == N_PATIENTS - 1
    manifests = sorted(private.glob("manifests/*.json"))
    assert len(manifests) == len(feats)
    assert all(Path(f).is_file() for m in manifests for f in json.loads(m.read_text())["image_files"])
