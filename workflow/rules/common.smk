# Config validation and the scan list. Wiring only: the logic lives in radsurv. Everything
# imported here is light (radsurv.config, radsurv.workflow.rules): building the DAG loads no
# scipy, SimpleITK, matplotlib, pyradiomics or scikit-learn.
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from radsurv.config import (
    apply_site,
    explain,
    format_problems,
    needs_outcome,
    preflight,
)
from radsurv.workflow import rules as wf

SCHEMAS = os.path.join(workflow.current_basedir, "..", "schemas")
SITES = os.path.join(workflow.current_basedir, "..", "..", "config", "sites")

try:  # the site preset (config/sites/<site>.yaml) fills preprocessing/extraction
    apply_site(config, SITES)
except ValueError as err:
    raise WorkflowError(
        f"The configuration has 1 problem(s):\n  - site: {err}"
    ) from err
try:  # fills every default of the schema: the defaults live there only
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    raise WorkflowError(
        explain(config, os.path.join(SCHEMAS, "config.schema.yaml"))
    ) from err

DEMO_DIR = "results/demo"
LONG_DEMO_DIR = "results/demo_longitudinal"
# Everything the config and its tables can get wrong, before the first job (radsurv.config.preflight);
# not again in the per-job processes of a cluster run.
if workflow.is_main_process:
    PROBLEMS = preflight(
        config,
        os.getcwd(),
        produced=[
            f"{DEMO_DIR}/dicom",
            f"{DEMO_DIR}/clinical.csv",
            *wf.longitudinal_demo_tables(config, LONG_DEMO_DIR),
        ],
    )
    if PROBLEMS:
        raise WorkflowError(format_problems(PROBLEMS))

# The terminal: Snakemake's progress line per job, warnings, errors, and radsurv's one line per
# problem case (radsurv.logutil); everything else of a job is in its log under results/logs/.
if workflow.is_main_process and not workflow.output_settings.verbose:
    from radsurv.logutil import progress_only_console

    progress_only_console()

# Outputs a killed run left unrecorded (still marked incomplete) are removed, so that their
# jobs run again (radsurv.resume: Snakemake ignores the marks of jobs after a checkpoint).
if workflow.is_main_process and not workflow.output_settings.dryrun:
    from radsurv.resume import clear_interrupted

    REDONE = clear_interrupted(os.getcwd())
    if REDONE:
        print(
            f"radsurv: {len(REDONE)} output(s) of jobs a killed run left unrecorded are redone",
            file=sys.stderr,
        )

try:
    COHORT_SOURCE, COHORT_INPUT = wf.cohort_source(config["cohort"])
    if COHORT_SOURCE == "sheet":
        # the image sheet, row by row, against its own schema (radsurv.ingest.sheet: only for sheets)
        from radsurv.ingest.sheet import validate_sheet

        validate_sheet(COHORT_INPUT, os.path.join(SCHEMAS, "images.schema.yaml"))
except (ValueError, OSError) as err:
    raise WorkflowError(str(err)) from err

ENVS = os.path.join(workflow.current_basedir, "..", "envs")

# The study's endpoints: survival (rule fit_models) and/or binary and multiclass endpoints
# (rule fit_classifier, one job each, results/endpoints/<name>/).
SURVIVAL = wf.survival_study(config)
try:
    ENDPOINTS = wf.classification_endpoints(config)
except ValueError as err:
    raise WorkflowError(str(err)) from err
ENDPOINT_PATTERN = "|".join(re.escape(name) for name in ENDPOINTS) or "(?!)"


wildcard_constraints:
    scan=r"[A-Za-z0-9-]+_S[0-9]+",


def scan_ids(wildcards=None):
    """Scan ids found by the discovery checkpoint."""
    return wf.scan_ids(checkpoints.discover_scans.get().output.scans)


def scan_batches(wildcards=None):
    """Batch id -> its scans (extraction.batch_size per batch; rule extract_scan_batch)."""
    return wf.scan_batches(scan_ids(), config["extraction"]["batch_size"])


def batch_of(scan):
    """The batch id of one scan (rule extract_scan_batch)."""
    return wf.batch_of(scan, scan_ids(), config["extraction"]["batch_size"])


def first_scans(wildcards=None):
    """Each patient's first scan (the one modelling uses); retest scans never take part."""
    return wf.first_scans(checkpoints.discover_scans.get().output.scans)


def clinical_table(wildcards=None):
    """The clinical table: the models and the report need it, `snakemake features` does not."""
    why = needs_outcome(config)
    if why:
        raise WorkflowError(why)
    return config["cohort"]["clinical_table"]


def model_inputs(wildcards):
    """Input files of rule fit_models (radsurv.workflow.rules.model_inputs), once the clinical table is known."""
    clinical_table()
    return wf.model_inputs(
        config,
        {
            "features": rules.assemble_features.output.features,
            "robust": rules.select_robust_features.output.robust,
            "clinical": rules.standardise_clinical.output.clinical,
        },
    )


def classifier_inputs(wildcards):
    """Input files of the fit_classifier rule, as those of fit_models but the clinical table as the user
    wrote it (an endpoint needs no survival time; radsurv.workflow.classification reads it).
    """
    return wf.model_inputs(
        config,
        {
            "features": rules.assemble_features.output.features,
            "robust": rules.select_robust_features.output.robust,
            "clinical": clinical_table(),
        },
    )


def robustness_batch_inputs(wildcards):
    """With harmonisation on and robustness.within_batch: the files that give each patient's
    batch (the clinical table; the first scans' folders when the batch uses acquisition facts).
    """
    if not wf.robustness_within_batch(config):
        return {}
    files = {"clinical": rules.standardise_clinical.output.clinical}
    if config["harmonisation"]["batch"].get("acquisition"):
        files["converted"] = expand(
            rules.extract_scan_features.output.converted, scan=first_scans()
        )
    return files
