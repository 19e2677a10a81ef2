"""`radsurv init DICOM_DIR [CLINICAL_TABLE]`: a starting config that validates, says what the data
say, and runs (dry run for each input; one real run of the demo's)."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_workflow, snakemake_run

from radsurv.cli import main as radsurv_main
from radsurv.init.clinical import propose_clinical, stage_key
from radsurv.init.command import render_yaml
from radsurv.init.survey import DicomSurvey, propose_robustness, propose_roi, propose_site
from radsurv.schema import load_schema, problems

SCHEMA = load_schema(REPO / "workflow" / "schemas" / "config.schema.yaml")
UID = re.compile(r"\b\d+(\.\d+){4,}\b")  # a DICOM UID
FEATURES = "results/features/features.tsv"


def run_init(capsys, *args: str) -> tuple[dict, str, str]:
    """Run the console command in-process: (written config, its text, terminal output)."""
    out = Path(args[args.index("-o") + 1])
    assert radsurv_main(["init", *args]) == 0
    printed = capsys.readouterr().out
    text = out.read_text()
    return yaml.safe_load(text), text, printed


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict:
    from radsurv.synthetic.demo import generate_demo_cohort
    from radsurv.synthetic.faulty import GEOMETRY

    return generate_demo_cohort(tmp_path_factory.mktemp("init_demo"), 10, 5, seed=7, **GEOMETRY)


@pytest.fixture(scope="module")
def faulty(tmp_path_factory) -> dict:
    from radsurv.synthetic.faulty import generate_faulty_cohort

    out = tmp_path_factory.mktemp("init_faulty")
    generate_faulty_cohort(out)
    return {"dicom_dir": out / "dicom", "clinical_csv": out / "clinical.csv"}


def no_phi(text: str, phi_json: Path | None = None) -> None:
    assert not UID.search(text), UID.search(text).group(0)
    assert "RSD-" not in text  # no PatientID printed
    if phi_json is not None:
        for value in json.loads(phi_json.read_text()):
            if len(value) >= 6:
                assert value not in text


# ------------------------------------------------------------------------------- units
def test_stage_order_and_codes():
    vals = ["IV", "IIIb", "II", "I", "IIIA", "Stage IIIa", "T2"]
    assert sorted(vals, key=stage_key) == ["I", "II", "T2", "IIIA", "Stage IIIa", "IIIb", "IV"]
    assert stage_key("x") is None and stage_key("Tx") is None and stage_key("T4") == (4.0, "")
    assert stage_key("Tis") < stage_key("T1")


def test_clinical_proposal_on_a_real_style_table():
    """Column names as in the example config (Survival.time in days, deadstatus.event)."""
    n = 12
    table = pd.DataFrame({
        "Case": [f"P{i}" for i in range(n)],
        "PatientID": [f"LUNG1-{i:03d}" for i in range(n)],
        "age": [str(50 + 2 * i) for i in range(n)],
        "clinical.T.Stage": ["1", "2", "3", "4", "x", "2", "3", "1", "2", "4", "3", "2"],
        "Overall.Stage": ["I", "IIIb", "II", "IIIa", "IIIB", "", "I", "II", "IIIa", "IIIb", "I", "NA"],
        "Histology": ["adeno", "Adeno", "large cell", "squamous", "nos", "adeno", "squamous",
                      "large cell", "squamous", "adeno", "nos", "adeno"],
        "Survival.time": [str(100 * i + 37) for i in range(n)],
        "deadstatus.event": ["1", "0"] * 6,
        "diagnosis_date": [f"2012-01-{i + 1:02d}" for i in range(n)],
    })
    p = propose_clinical(table, [f"LUNG1-{i:03d}" for i in range(n - 2)])
    assert p.columns["id"] == "PatientID"
    assert (p.columns["time"], p.columns["event"], p.time_unit) == ("Survival.time", "deadstatus.event", "days")
    cov = p.covariates
    assert cov["age"] == {"type": "numeric"}
    assert cov["clinical.T.Stage"] == {"type": "ordinal", "levels": [1, 2, 3, 4], "missing_values": ["x"]}
    assert cov["Overall.Stage"]["type"] == "ordinal"
    assert [str(v).upper() for v in cov["Overall.Stage"]["levels"]] == ["I", "II", "IIIA", "IIIB"]
    assert cov["Histology"] == {"type": "categorical"}
    assert "diagnosis_date" not in cov and "Case" not in cov
    assert any("differ only in case" in u for u in p.undecided)
    assert not any("no row" in u for u in p.undecided)  # all 10 image ids are in the table


def test_clinical_proposal_on_lung1_and_radcure(shared_data):
    """Real public tables: Lung1 (as its own columns) and RADCURE (outcome columns are not covariates)."""
    t = pd.read_csv(shared_data / "lung1" / "lung1_clinical_v3.csv", dtype=str, keep_default_na=False)
    p = propose_clinical(t, list(t["PatientID"][:144]))
    assert p.columns["id"] == "PatientID"
    assert (p.columns["time"], p.columns["event"]) == ("Survival.time", "deadstatus.event")
    assert p.time_unit == "days"
    assert p.covariates["Overall.Stage"] == {"type": "ordinal", "levels": ["I", "II", "IIIa", "IIIb"]}
    assert p.covariates["Histology"]["type"] == "categorical" and p.covariates["age"] == {"type": "numeric"}
    t = pd.read_csv(shared_data / "radcure" / "radcure_clinical_v4.csv", dtype=str, keep_default_na=False)
    p = propose_clinical(t, list(t["patient_id"][:50]))
    assert (p.columns["time"], p.columns["event"], p.time_unit) == ("Length FU", "Status", "years")
    assert not {"Local", "Regional", "Distant", "2nd Ca", "Date of Death", "Cause of Death"} & set(p.covariates)
    assert p.covariates["Stage"]["type"] == "ordinal" and p.covariates["Stage"]["missing_values"] == ["x"]


def test_time_unit_from_values_is_reported_as_a_guess():
    table = pd.DataFrame({"id": ["a", "b", "c", "d"], "os": ["3.5", "10.2", "1.1", "7.0"],
                          "vital_status": ["dead", "alive", "dead", "alive"]})
    p = propose_clinical(table, ["a", "b", "c", "d"])
    assert (p.columns["time"], p.columns["event"], p.time_unit) == ("os", "vital_status", "years")
    assert any("guessed" in u for u in p.undecided)


def _survey(scan_rois: dict[str, list[str]], modality: str = "CT", repeat_days=None) -> DicomSurvey:
    pids = {sid: sid.rsplit("_S", 1)[0] for sid in scan_rois}
    per: dict[str, set[str]] = {}
    for sid, names in scan_rois.items():
        for n in names:
            per.setdefault(n, set()).add(pids[sid])
    return DicomSurvey(n_patients=len(set(pids.values())), n_scans=len(scan_rois),
                       modalities=Counter({modality: len(scan_rois)}),
                       roi_patients=Counter({n: len(v) for n, v in per.items()}), scan_rois=scan_rois,
                       body_parts=Counter(), repeat_days=repeat_days or {}, qc_counts=Counter(), qc_patients=0,
                       patient_ids=sorted(set(pids.values())), scan_patient=pids)


def test_roi_proposal_leaves_out_nodes_and_second_lesions():
    s = _survey({"A_S1": ["GTVp", "GTVn1", "Parotid_L"], "B_S1": ["GTVp", "GTV-N", "Mandible"],
                 "C_S1": ["gtvp", "GTVp2"], "D_S1": ["Primary tumour", "Brainstem"]})
    pattern, policy, _, todo = propose_roi(s)
    rx = re.compile(pattern, re.I)
    assert [n for n in ("GTVp", "gtvp", "Primary tumour") if rx.search(n)] == ["GTVp", "gtvp", "Primary tumour"]
    assert not any(rx.search(n) for n in ("GTVn1", "GTV-N", "GTVp2", "Parotid_L", "Brainstem"))
    assert policy == "first"
    assert propose_site(s)[0] == "hn_ct"
    assert any("'Primary tumour' is used instead of 'GTVp'" in t for t in todo)


def test_roi_policy_error_when_a_scan_has_two_matches():
    s = _survey({"A_S1": ["GTV-1", "GTV-2", "Lung"], "B_S1": ["GTV-1", "Lung"]})
    pattern, policy, why, _ = propose_roi(s)  # a second lesion in a covered patient is not added
    assert (pattern, policy) == ("^(GTV-1)$", "first") and any("'GTV-2'" in w for w in why)
    s = _survey({"A_S1": ["GTV", "Tumour"], "B_S1": ["GTV"], "C_S1": ["Tumour"]})
    pattern, policy, _, todo = propose_roi(s)
    assert pattern == "^(GTV|Tumour)$" and policy == "error" and any("several matching ROIs" in t for t in todo)


def test_robustness_method_follows_retest_patients():
    rois = {f"P{i}_S1": ["GTV"] for i in range(8)}
    assert propose_robustness(_survey(rois, repeat_days={f"P{i}": [3] for i in range(5)}))[0] == "test-retest"
    assert propose_robustness(_survey(rois, repeat_days={f"P{i}": [3] for i in range(4)}))[0] == "perturbation"
    assert propose_robustness(_survey(rois, repeat_days={f"P{i}": [90] for i in range(8)}))[0] == "perturbation"
    assert propose_site(_survey(rois, "MR"))[0] == "brain_mr" and propose_site(_survey(rois, "PT"))[0] == "fdg_pet"


def test_render_yaml_round_trips_with_comments():
    cfg = {"seed": 1, "cohort": {"roi_pattern": "^(GTV-1|Tumour)$", "columns": {"covariates": ["a b", "c"]}},
           "modelling": {"clinical_covariates": {"st": {"type": "ordinal", "levels": ["I", "II"]}}}}
    text = render_yaml(cfg, {"cohort.roi_pattern": "why", "modelling.clinical_covariates.st": "stage"}, ["hi"])
    assert yaml.safe_load(text) == cfg
    assert "  # why\n  roi_pattern:" in text and "    # stage\n    st: {type: ordinal" in text


# ------------------------------------------------------------------------------- cohorts
def test_init_demo_cohort(demo, tmp_path, capsys):
    cfg, text, printed = run_init(capsys, str(demo["dicom_dir"]), str(demo["clinical_csv"]),
                                  "-o", str(tmp_path / "my_cohort.yaml"))
    assert problems(cfg, SCHEMA) == []
    co = cfg["cohort"]
    rx = re.compile(co["roi_pattern"], re.I)
    assert rx.search("GTV-1") and not any(rx.search(n) for n in ("Lung-Left", "Lung-Right", "Body"))
    assert co["roi_policy"] == "first"
    assert co["columns"]["id"] == "patient_id"
    assert (co["columns"]["time"], co["columns"]["event"], co["time_unit"]) == ("os_months", "os_event", "months")
    # every other column is proposed as a covariate, the demo's planted biology label (#17) too:
    # init cannot tell a covariate from an endpoint, the user removes what is not one
    assert co["columns"]["covariates"] == ["age", "stage", "hpv_status"]
    seen = set(pd.read_csv(demo["clinical_csv"])["stage"])
    order = [s for s in ["I", "II", "IIIA", "IIIB"] if s in seen]
    covs = cfg["modelling"]["clinical_covariates"]
    assert {k: covs[k] for k in ("age", "stage")} == {
        "age": {"type": "numeric"}, "stage": {"type": "ordinal", "levels": order}}
    assert covs["hpv_status"]["type"] in ("categorical", "binary", "nominal")
    assert cfg["site"] == "lung_ct"
    assert cfg["robustness"]["method"] == "test-retest"  # 5 retest patients >= min_pairs 5
    assert "GTV-1 (10)" in printed and "Lung-Left (10)" in printed
    assert "5 patient(s) with more than one scan" in printed
    assert "# " in text and "test-retest ICC" in text  # each choice explained
    no_phi(printed, demo["phi_values"])
    no_phi(text, demo["phi_values"])


def test_init_faulty_cohort(faulty, tmp_path, capsys):
    cfg, text, printed = run_init(capsys, str(faulty["dicom_dir"]), str(faulty["clinical_csv"]),
                                  "-o", str(tmp_path / "faulty.yaml"))
    assert problems(cfg, SCHEMA) == []
    assert "discovery QC findings: 10 (3 excluded, 7 warnings" in printed
    co = cfg["cohort"]
    rx = re.compile(co["roi_pattern"], re.I)
    # GTV-1 everywhere but RSD-009, whose GTV is called 'Tumour': both, said as undecided
    assert rx.search("GTV-1") and rx.search("Tumour") and not rx.search("Lung-Left")
    assert "'Tumour' is used instead of 'GTV-1'" in printed
    assert cfg["robustness"]["method"] == "perturbation"  # 3 retest pairs < 5; RSD-004 is a follow-up
    assert "days after the first scan: 5, 5, 7, 90" in printed
    assert "values ['2'] that are not 0/1" in printed
    assert "4 patient(s) would be excluded" in printed
    assert re.search(r"only 9 patient\(s\) have scans and a usable outcome", printed)  # 13 with scans - 4
    no_phi(printed)
    no_phi(text)


def test_init_ibsi_phantom_features_only(shared_data, tmp_path, capsys):
    dicom = shared_data / "ibsi" / "ct_phantom" / "dicom"
    if not dicom.is_dir():
        pytest.skip("IBSI CT phantom DICOM absent")
    cfg, text, printed = run_init(capsys, str(dicom), "-o", str(tmp_path / "ibsi.yaml"))
    assert problems(cfg, SCHEMA) == []
    assert cfg["cohort"]["roi_pattern"] == "^GTV" and cfg["site"] == "lung_ct"
    assert "nothing tells the site" in text and "no clinical table given" in printed
    assert cfg["robustness"]["discretisation"]["enabled"] is False  # 1 patient < min_pairs
    no_phi(printed)


def test_init_refuses_to_overwrite(demo, tmp_path, capsys):
    out = tmp_path / "x.yaml"
    out.write_text("mine")
    with pytest.raises(SystemExit):
        radsurv_main(["init", str(demo["dicom_dir"]), "-o", str(out)])
    assert out.read_text() == "mine"


# ------------------------------------------------------------------------------- the workflow
def _dry_run(workdir: Path, config: Path, *targets: str) -> str:
    res = snakemake_run(workdir, "-n", *targets, "--configfile", str(config), timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return res.stdout + res.stderr


def test_written_configs_dry_run(demo, faulty, shared_data, tmp_path, capsys):
    """`snakemake -n --configfile <written>` builds the DAG for each input (features target without a table)."""
    inputs = {"demo": (demo["dicom_dir"], demo["clinical_csv"]),
              "faulty": (faulty["dicom_dir"], faulty["clinical_csv"])}
    ibsi = shared_data / "ibsi" / "ct_phantom" / "dicom"
    if ibsi.is_dir():
        inputs["ibsi"] = (ibsi, None)
    for name, (dicom, clinical) in inputs.items():
        work = tmp_path / name
        work.mkdir()
        cfg = work / f"{name}.yaml"
        run_init(capsys, str(dicom), *([str(clinical)] if clinical else []), "-o", str(cfg))
        out = _dry_run(work, cfg, *(() if clinical else (FEATURES,)))
        assert "discover" in out, name


@pytest.mark.e2e
def test_demo_config_runs_end_to_end(demo, tmp_path, capsys):
    """The demo's written config, made small as a user would, runs from DICOM to the report."""
    cfg, _, _ = run_init(capsys, str(demo["dicom_dir"]), str(demo["clinical_csv"]), "-o", str(tmp_path / "w.yaml"))
    cfg["modelling"].update(bootstrap=20, cv_folds=2, cv_repeats=1, inner_folds=2, horizons=[12.0])
    cfg["robustness"]["min_pairs"] = 3
    small = tmp_path / "my_cohort.yaml"
    small.write_text(yaml.safe_dump(cfg, sort_keys=False))
    results = run_workflow(tmp_path, "--cores", "2", "--configfile", str(small))
    assert (results / "report" / "report.html").is_file()
    features = pd.read_csv(results / "features" / "features.tsv", sep="\t")
    assert len(features) == 15  # 10 patients + 5 retest scans
    assert (results / "robustness" / "test_retest.tsv").is_file()
    perf = pd.read_csv(results / "model" / "performance.tsv", sep="\t")
    assert {"radiomics", "volume", "clinical", "combined"} <= set(perf["model"])
