from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
#: The workflow (the snakemake-workflows layout: workflow/Snakefile, found from the repository root).
SNAKEFILE = REPO / "workflow" / "Snakefile"
#: The default profile a run from the repository root uses (profiles/default links to it).
DEFAULT_PROFILE = REPO / "workflow" / "profiles" / "default"

#: Size of the tiny cohort of the shared end-to-end run.
N_PATIENTS, N_RETEST = 10, 5


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data in ../shared/data; tests using it skip when absent."""
    if not SHARED.is_dir():
        pytest.skip(f"reference data not found at {SHARED} (../shared is absent on this machine)")
    return SHARED


def snakemake_run(cwd: Path, *args: str, timeout: int = 1200,
                  profile: Path | str = "none") -> subprocess.CompletedProcess[str]:
    """Run the repository's workflow with ``cwd`` as working directory (no profile unless given)."""
    cmd = [SNAKEMAKE, "-s", str(SNAKEFILE), "--workflow-profile", str(profile), *args]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def run_workflow(workdir: Path, *args: str, timeout: int = 1200, profile: Path | str = "none") -> Path:
    """Run the workflow in ``workdir`` (:func:`snakemake_run`; ``args``: targets and options such as
    ``--configfile``), keep what it wrote to the terminal in ``workdir/console.txt`` (stdout, then
    stderr) and fail with its last lines unless it succeeded; ``workdir/results``."""
    res = snakemake_run(workdir, *args, timeout=timeout, profile=profile)
    (workdir / "console.txt").write_text(res.stdout + res.stderr)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return workdir / "results"


def tiny_config(workdir: Path, overrides: Mapping[str, Any] | None = None) -> Path:
    """``config/config.yaml`` of a tiny, fast demo run (no filters) under ``workdir``, with
    ``overrides`` laid onto it (:func:`radsurv.config.deep_merge`: nested blocks merged key by key)."""
    from radsurv.config import deep_merge

    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg["demo"] = {"patients": N_PATIENTS, "retest": N_RETEST}
    cfg["extraction"]["filters"] = {"log_sigma_mm": [], "wavelet": False}
    cfg["robustness"]["min_pairs"] = 3
    cfg["robustness"]["method"] = "both"
    cfg["robustness"]["perturbation"] = {**cfg["robustness"].get("perturbation", {}), "n": 3}
    cfg["robustness"]["discretisation"] = {"enabled": True, "bin_widths": [25], "bin_counts": [16]}
    cfg["modelling"].update(bootstrap=20, cv_folds=2, cv_repeats=1, inner_folds=2, max_features=[2],
                            penalizer=[10.0], horizons=[12.0])  # 10 patients: one small, untuned CV
    # the planted HPV-like endpoint on 10 patients: the smallest honest design (2 per class, no tuning)
    cfg["modelling"]["classification"] = {"learners": ["logistic_l2"], "n_screen": [4], "logistic_C": [0.5],
                                          "ensemble_sizes": [1], "min_per_class": 2}
    return write_config(workdir, deep_merge(cfg, overrides or {}))


def write_config(workdir: Path, cfg: Mapping[str, Any], name: str = "config.yaml") -> Path:
    """``cfg`` written as ``workdir/config/<name>`` (YAML, keys in their order); its path."""
    path = workdir / "config" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(dict(cfg), sort_keys=False))
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """One real Snakemake run of the whole workflow on a tiny demo cohort; its ``results/``.

    Shared by every end-to-end assertion in the suite (it takes about a minute). It runs with
    the repository's default profile (the console a user sees); what it wrote to the terminal
    is kept beside ``results/`` in ``console.txt`` (stdout, then stderr).
    """
    workdir = tmp_path_factory.mktemp("tiny_run")
    tiny_config(workdir)
    return run_workflow(workdir, "--cores", "2", profile=DEFAULT_PROFILE)


#: write_report's survival inputs, as the tiny run's files (relative to its results/).
TINY_REPORT_FILES = {
    "qc": "qc/qc.tsv", "scans": "ingest/scans.tsv", "clinical": "clinical/clinical.tsv",
    "features": "features/features.tsv", "icc": "robustness/icc.tsv", "robustness": "robustness/summary.json",
    "icc_plot": "robustness/icc_by_class.png", "predictions": "model/predictions.tsv",
    "metrics": "model/metrics.json", "coefficients": "model/coefficients.tsv",
    "selection": "model/selection.tsv", "km_test": "model/km_test.png", "km_train": "model/km_train.png",
    "performance": "model/performance.tsv", "calibration": "model/calibration.tsv"}


@pytest.fixture
def tiny_report_inputs(tiny_run: Path) -> tuple[dict[str, str], dict]:
    """``(inputs, config)`` to call ``radsurv.report.html.write_report`` on the tiny run's files (fresh
    copies per test, so a test may add inputs or change the config)."""
    config = yaml.safe_load((tiny_run.parent / "config" / "config.yaml").read_text())
    return {k: str(tiny_run / v) for k, v in TINY_REPORT_FILES.items()}, config


def one_demo_scan(tmp_path: Path, seed: int) -> Path:
    """A one-patient demo cohort, discovered: the manifest of its scan (under ``tmp_path``)."""
    import pandas as pd

    from radsurv.synthetic.demo import generate_demo_cohort
    from radsurv.workflow.ingest import discover_scans

    generate_demo_cohort(tmp_path / "demo", n_patients=1, n_retest=0, seed=seed)
    ingest = tmp_path / "ingest"
    discover_scans(dicom=tmp_path / "demo" / "dicom", scans=ingest / "scans.tsv", manifests=ingest / "manifests",
                   qc=tmp_path / "qc.tsv", retest_max_days=30)
    sid = pd.read_csv(ingest / "scans.tsv", sep="\t")["scan_id"][0]
    return ingest / "manifests" / f"{sid}.json"
