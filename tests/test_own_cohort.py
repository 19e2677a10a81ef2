"""A user's own cohort, run the way the README says: the config stands alone, the documented
command works verbatim, and feature extraction alone needs no clinical table.

The README's own-cohort instructions are: copy ``config/example_cohort.yaml``, point it at the
DICOM folder and the clinical table, and run ``.venv/bin/snakemake --configfile
my_cohort.yaml`` (from the repository root). The test does exactly that in a copy of the
repository layout, on a small generated cohort whose clinical table uses the example's column
names; beside the paths it changes only what a user trying a small cohort would (no filtered
images, a 2 mm grid, few folds and bootstrap resamples).
"""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, SNAKEMAKE

from radsurv.synthetic.demo import generate_demo_cohort

#: What a repository checkout holds that a run uses (the copy links to them).
LAYOUT = ("workflow", "config", "src", "profiles", ".venv")


def readme_command() -> str:
    """The own-cohort command as the README writes it."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Your own cohort", 1)[1].split("\n## ", 1)[0]
    found = re.findall(r"`(\.venv/bin/snakemake --configfile my_cohort\.yaml)`", section)
    assert found, "the README's 'Your own cohort' section no longer gives the command"
    return found[0]


def repository_copy(dest: Path) -> Path:
    """A checkout-like folder: the repository's files, linked (results/ and .snakemake/ are its own)."""
    dest.mkdir(parents=True)
    for name in LAYOUT:
        if (REPO / name).exists():
            (dest / name).symlink_to(REPO / name)
    return dest


def own_cohort(dest: Path, n_patients: int = 14, n_retest: int = 3) -> tuple[Path, Path]:
    """A small DICOM cohort and its clinical table, written the way the example's institution
    writes it (column names, time in days, T stage, histology)."""
    generate_demo_cohort(dest, n_patients=n_patients, n_retest=n_retest, seed=3)
    demo = pd.read_csv(dest / "clinical.csv", dtype=str)
    n = len(demo)
    table = pd.DataFrame({
        "PatientID": demo["patient_id"],
        "Survival.time": (demo["os_months"].astype(float) * 30.44).round().astype(int),
        "deadstatus.event": demo["os_event"],
        "age": demo["age"],
        "clinical.T.Stage": [["1", "2", "3", "4", "x"][i % 5] for i in range(n)],
        "Overall.Stage": demo["stage"],
        "Histology": [["adenocarcinoma", "Squamous cell carcinoma", "large cell", "nos"][i % 4] for i in range(n)],
    })
    clinical = dest / "nsclc_clinical.csv"
    table.to_csv(clinical, index=False)
    (dest / "clinical.csv").unlink()  # the demo's own table is not part of this cohort
    return dest / "dicom", clinical


def user_copy_of_example(dicom: Path, clinical: Path) -> dict:
    """config/example_cohort.yaml as a user edits it for a first, small run."""
    cfg = yaml.safe_load((REPO / "config" / "example_cohort.yaml").read_text())
    cfg["cohort"]["dicom_dir"] = str(dicom)
    cfg["cohort"]["clinical_table"] = str(clinical)
    cfg["preprocessing"]["spacing_mm"] = [2.0, 2.0, 2.0]
    cfg["extraction"]["filters"] = {"log_sigma_mm": [], "wavelet": False}
    cfg["modelling"].update(cv_folds=2, cv_repeats=1, inner_folds=2, max_features=[2], penalizer=[10.0],
                            bootstrap=20)
    assert cfg["seed"] == 20241105  # the example's own seed (it overflowed the old seed derivation)
    return cfg


def resolved_config(study: Path, configfile: str | None) -> dict:
    """The config the workflow runs with (after validation and defaults), from a dry run."""
    dump = study / "resolved_config.json"
    wrapper = study / "dump_config.smk"
    wrapper.write_text(textwrap.dedent(f"""
        include: {str(study / 'workflow' / 'Snakefile')!r}

        import json
        with open({str(dump)!r}, "w") as fh:
            json.dump(config, fh)
    """))
    args = ["--configfile", configfile] if configfile else []
    res = subprocess.run([SNAKEMAKE, "-s", str(wrapper), "-n", "--cores", "1", *args], cwd=study,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(dump.read_text())


MISSING = object()


def schema_default(schema: dict, key: tuple) -> object:
    node = schema
    for part in key:
        node = node.get("properties", {}).get(part, {})
    return node.get("default", MISSING)


def leaves(d: dict, prefix: tuple = ()) -> dict[tuple, object]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(leaves(v, (*prefix, k)))
        else:
            out[(*prefix, k)] = v
    return out


def test_no_key_of_the_demo_config_reaches_a_user_config(tmp_path):
    study = repository_copy(tmp_path / "radsurv")
    dicom, clinical = own_cohort(tmp_path / "cohort", n_patients=4, n_retest=0)
    user = user_copy_of_example(dicom, clinical)
    (study / "my_cohort.yaml").write_text(yaml.safe_dump(user, sort_keys=False))

    resolved = resolved_config(study, "my_cohort.yaml")
    demo = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    user_keys, got = leaves(user), leaves(resolved)
    # a demo setting the user did not write, found in the resolved config with the demo's value
    # although the schema's default is another value: it came from the demo's file
    leaked = [k for k, v in leaves(demo).items() if k not in user_keys and got.get(k, MISSING) == v
              and schema_default(schema, k) != v]
    assert "site" not in resolved
    # blocks the user left out hold the schema's defaults (validate fills them), not the demo's file
    defaults = {k: v["default"] for k, v in schema["properties"]["demo"]["properties"].items()}
    assert resolved["demo"] == defaults
    assert set(resolved["modelling"]["clinical_covariates"]) == set(user["modelling"]["clinical_covariates"])
    assert resolved["cohort"]["columns"]["covariates"] == user["cohort"]["columns"]["covariates"]
    assert resolved["robustness"]["method"] == "test-retest"
    perturbation = schema["properties"]["robustness"]["properties"]["perturbation"]["properties"]
    assert resolved["robustness"]["perturbation"] == {k: v["default"] for k, v in perturbation.items()}
    assert resolved["extraction"]["filters"] == user["extraction"]["filters"]
    assert resolved["seed"] == user["seed"] and resolved["cohort"]["name"] == user["cohort"]["name"]
    assert leaked == [], f"demo settings in the user's run: {leaked}"
    # without --configfile the demo's config is still the default
    assert resolved_config(study, None)["demo"] == {**defaults, **demo["demo"]}


@pytest.mark.e2e
def test_readme_own_cohort_command_runs_verbatim(tmp_path):
    command = readme_command()
    study = repository_copy(tmp_path / "radsurv")
    dicom, clinical = own_cohort(tmp_path / "cohort")
    (study / "my_cohort.yaml").write_text(yaml.safe_dump(user_copy_of_example(dicom, clinical), sort_keys=False))

    res = subprocess.run(command, shell=True, cwd=study, capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    results = study / "results"
    assert (results / "report" / "report.html").stat().st_size > 50_000
    metrics = json.loads((results / "model" / "metrics.json").read_text())
    assert set(metrics["by_model"]) == {"radiomics", "volume", "clinical", "combined"}
    assert metrics["n_test"] == 14
    coef = pd.read_csv(results / "model" / "coefficients.tsv", sep="\t")
    assert coef.astype(str).apply(lambda c: c.str.contains("Histology")).any().any()  # the example's covariates
    assert not (results / "demo").exists() and not (results / "robustness" / "perturbation.tsv").exists()
    features = pd.read_csv(results / "features" / "features.tsv", sep="\t")
    assert len(features) == 14 + 3 and not any(c.startswith(("log-sigma", "wavelet")) for c in features.columns)
    # the terminal shows Snakemake's progress, not the libraries' log lines (they are in results/logs/)
    terminal = res.stdout + res.stderr
    assert "radiomics.featureextractor" not in terminal and "Computing glcm" not in terminal


@pytest.mark.e2e
def test_features_target_needs_no_clinical_table(tmp_path):
    """`snakemake features` on a cohort without outcome data (the IBSI phantom, features for another tool)."""
    study = repository_copy(tmp_path / "radsurv")
    generate_demo_cohort(tmp_path / "cohort", n_patients=4, n_retest=0, seed=5)
    (study / "features_only.yaml").write_text(yaml.safe_dump({
        "seed": 1, "site": "lung_ct",
        "cohort": {"dicom_dir": str(tmp_path / "cohort" / "dicom"), "roi_pattern": "^GTV"}}))
    res = subprocess.run([str(study / ".venv" / "bin" / "snakemake"), "features", "--configfile", "features_only.yaml"],
                         cwd=study, capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    features = pd.read_csv(study / "results" / "features" / "features.tsv", sep="\t")
    assert len(features) == 4 and features["original_shape_MeshVolume"].gt(0).all()
    assert not (study / "results" / "clinical").exists() and not (study / "results" / "model").exists()

    # the full analysis says what is missing, before any job runs
    res = subprocess.run([str(study / ".venv" / "bin" / "snakemake"), "-n", "--configfile", "features_only.yaml"],
                         cwd=study, capture_output=True, text=True, timeout=600)
    assert res.returncode != 0
    assert "The models and the report need the outcome: set cohort.clinical_table and cohort.columns" in \
        res.stdout + res.stderr


def test_a_config_mistake_stops_the_run_before_the_first_job(tmp_path):
    """A stage the levels do not list, and a horizon beyond follow-up (months taken for days):
    both named in one message by `snakemake`, before any job has run."""
    study = repository_copy(tmp_path / "radsurv")
    dicom, clinical = own_cohort(tmp_path / "cohort", n_patients=4, n_retest=0)
    cfg = user_copy_of_example(dicom, clinical)
    cfg["modelling"]["clinical_covariates"]["Overall.Stage"]["levels"] = ["IV"]
    cfg["modelling"]["horizons"] = [36500]
    (study / "my_cohort.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = subprocess.run([str(study / ".venv" / "bin" / "snakemake"), "--configfile", "my_cohort.yaml"],
                         cwd=study, capture_output=True, text=True, timeout=600)
    text = res.stdout + res.stderr
    assert res.returncode != 0
    assert "The configuration has 2 problem(s):" in text
    assert "- modelling.clinical_covariates.Overall.Stage: clinical covariate 'Overall.Stage': value(s) [" in text
    assert "are not one of the levels ['IV']" in text
    assert "- modelling.horizons: 36500 days is beyond the longest follow-up in the clinical table" in text
    assert not (study / "results").exists()  # no job ran
    assert str(tmp_path / "cohort") not in text  # the message does not repeat input paths
