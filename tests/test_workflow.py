"""The Snakemake workflow: DAG, lint, and one real run on a tiny generated cohort."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import N_PATIENTS, N_RETEST, REPO, SNAKEFILE, SNAKEMAKE
from conftest import snakemake_run as _snakemake
from conftest import tiny_config as _tiny_config

from radsurv.privacy import header_uids, uid_pseudonym


def test_dry_run_lists_the_dag(tmp_path):
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    res = _snakemake(tmp_path, "-n", "--cores", "2")
    assert res.returncode == 0, res.stderr
    for rule in ("demo_cohort", "discover_scans", "assemble_features", "select_robust_features", "fit_models",
                 "km_figure", "write_report"):
        assert re.search(rf"^{rule}\s+\d+$", res.stdout, re.M), f"{rule} missing from the DAG"


def test_lint_reports_no_problems(tmp_path):
    res = subprocess.run([SNAKEMAKE, "--lint"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Congratulations" in res.stdout + res.stderr


def test_the_workflow_is_usable_as_a_snakemake_module(tmp_path):
    """Another workflow imports this one (snakemake-workflows catalogue usage): workflow files
    are found relative to workflow/Snakefile, not to the working directory."""
    _tiny_config(tmp_path)
    outer = tmp_path / "workflow" / "Snakefile"
    outer.parent.mkdir()
    outer.write_text(textwrap.dedent(f"""
        configfile: "config/config.yaml"


        module radsurv:
            snakefile:
                {str(SNAKEFILE)!r}
            config:
                config


        use rule * from radsurv
    """))
    res = subprocess.run([SNAKEMAKE, "-s", str(outer), "-n", "--cores", "1", "--workflow-profile", "none"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    for rule in ("demo_cohort", "discover_scans", "write_report"):
        assert re.search(rf"^{rule}\s+\d+$", res.stdout, re.M), f"{rule} missing from the module's DAG"
    # the outer workflow has no copy of the repository's folders
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snakemake", "config", "workflow"]


#: Libraries the main Snakemake process must not import while it builds the DAG.
HEAVY = ("scipy", "SimpleITK", "matplotlib", "radiomics", "sklearn", "sksurv")

SITECUSTOMIZE = """
import atexit, json, os, sys

def _record():
    with open(os.environ["RADSURV_IMPORT_RECORD"], "a") as fh:
        fh.write(json.dumps({"argv": sys.argv[:1], "heavy": sorted(m for m in HEAVY if m in sys.modules)}) + "\\n")

atexit.register(_record)
""".replace("HEAVY", repr(HEAVY))


def test_parsing_the_dag_imports_no_heavy_library(tmp_path):
    """``snakemake -n`` (config validation, preflight, the DAG) in a process that records, at
    its exit, which heavy libraries it imported: none of them."""
    _tiny_config(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    record = tmp_path / "imports.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])),
           "RADSURV_IMPORT_RECORD": str(record)}
    res = subprocess.run([SNAKEMAKE, "-s", str(SNAKEFILE), "-n", "--cores", "2", "--workflow-profile", "none"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    runs = [json.loads(line) for line in record.read_text().splitlines()]
    main = [r for r in runs if r["argv"][0].endswith("snakemake")]
    assert len(main) == 1, runs
    assert main[0]["heavy"] == []


def test_sitecustomize_probe_sees_heavy_imports(tmp_path):
    """The probe of the test above can fail: a process that imports scipy is recorded as such."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    record = tmp_path / "imports.jsonl"
    env = {**os.environ, "PYTHONPATH": str(site), "RADSURV_IMPORT_RECORD": str(record)}
    subprocess.run([sys.executable, "-c", "import radsurv.robustness.icc"], check=True, env=env)
    assert "scipy" in json.loads(record.read_text().splitlines()[-1])["heavy"]


def _rules_and_entry_points(tmp_path: Path) -> dict[str, dict]:
    """Each script rule of the workflow: its script and the names of its input, output, params."""
    _tiny_config(tmp_path)
    dump = tmp_path / "rules.json"
    wrapper = tmp_path / "dump_rules.smk"
    wrapper.write_text(textwrap.dedent(f"""
        include: {str(SNAKEFILE)!r}

        import json
        with open({str(dump)!r}, "w") as fh:
            json.dump({{r.name: {{"script": r.script, "names": [n for part in (r.input, r.output, r.params)
                                                               for n in part._names],
                                  "wildcards": sorted(r.wildcard_names),
                                  "unpacked": any(callable(f) or f.is_callable() for f in r.input)}}
                       for r in workflow.rules if r.script}}, fh)
    """))
    res = subprocess.run([SNAKEMAKE, "-s", str(wrapper), "-n", "--cores", "1", "--workflow-profile", "none"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(dump.read_text())


def test_each_rule_calls_the_entry_point_of_its_own_name(tmp_path):
    """workflow/scripts/<rule>.py calls radsurv.workflow.<stage>.<rule> through run_rule, and that
    function accepts exactly the rule's named files and params (and its wildcards where used)."""
    import importlib
    import inspect

    rules = _rules_and_entry_points(tmp_path)
    assert len(rules) >= 17
    for name, rule in rules.items():
        script = (REPO / "workflow" / "rules" / rule["script"]).resolve()
        assert script == REPO / "workflow" / "scripts" / f"{name}.py", name
        text = script.read_text()
        module = re.search(rf"^from (radsurv\.workflow\.\w+) import {name}$", text, re.M)
        assert module and f"run_rule(snakemake, {name})" in text, f"{script.name} does not call {name}"
        params = inspect.signature(getattr(importlib.import_module(module.group(1)), name)).parameters
        takes_more = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        for arg in rule["names"]:
            assert arg in params or takes_more, f"{name}() has no parameter {arg!r}"
        required = [p for p, v in params.items() if v.default is inspect.Parameter.empty
                    and v.kind is inspect.Parameter.KEYWORD_ONLY]
        for arg in required:
            # rules whose inputs come from an input function (unpack): not visible before the DAG
            assert arg in rule["names"] or arg in rule["wildcards"] or rule["unpacked"], \
                f"rule {name} does not give {name}() its {arg!r}"


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
    for folder in ("extract_scan_features", "stages"):  # one per-scan job: its benchmark file and its stage costs
        assert len(list((tiny_run / "benchmarks" / folder).glob("*.tsv"))) == len(scans)


@pytest.mark.e2e
def test_console_shows_progress_and_at_most_one_line_per_problem(tiny_run):
    """The terminal of a run with the default profile: Snakemake's progress lines, no INFO
    records of radsurv or pyradiomics (those are in results/logs/), a few lines per job."""
    lines = (tiny_run.parent / "console.txt").read_text().splitlines()
    progress = [ln.strip() for ln in lines if re.fullmatch(r"\d+ of \d+ steps \(\d+%\) done", ln.strip())]
    assert progress, "no progress lines"
    n_steps = int(re.search(r"of (\d+) steps", progress[-1]).group(1))
    assert progress[-1].endswith("(100%) done") and len(progress) == n_steps
    assert n_steps > (N_PATIENTS + N_RETEST) + 2 * N_PATIENTS  # per-scan jobs included
    assert not [ln for ln in lines if re.search(r"\b(INFO|DEBUG)\b", ln)]
    assert not [ln for ln in lines if re.search(r"radiomics|featureextractor|PyRadiomics", ln)]
    problems = [ln for ln in lines if re.match(r"(WARNING|ERROR) radsurv", ln)]
    assert all("(log: results/logs/" in ln for ln in problems)  # one line, naming the job's log
    # no per-job blocks (input/output/reason), no scheduler chatter: one line per job, plus the header
    assert not [ln for ln in lines if ln.strip().startswith(("input:", "output:", "reason:", "resources:"))]
    assert not [ln for ln in lines if ln.startswith(("Select jobs to execute", "Execute ", "Finished jobid"))]
    assert len(lines) - len(problems) <= n_steps + 40, len(lines)


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
    from radsurv.report.summaries import headline

    text = headline({"c_index_test": 0.7812, "c_index_test_ci_low": 0.61, "c_index_test_ci_high": 0.9,
                     "n_test": 16, "events_test": 10, "c_index_volume_test": 0.66, "logrank_p_test": 0.012,
                     "hr_high_vs_low_test": 3.1, "hr_ci_low_test": 1.2, "hr_ci_high_test": 8.0,
                     "c_index_train": 0.85})
    assert "Harrell's C-index on 16 held-out patients (10 events): 0.781 (95% bootstrap CI 0.61-0.90)" in text
    assert "tumour volume alone: 0.660" in text and "hazard ratio high vs low risk: 3.10 (95% CI 1.20-8.00)" in text
    assert headline({}) == "No model metrics could be computed."
