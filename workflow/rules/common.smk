# Config validation and the scan list. Wiring only: the logic lives in radsurv.
import sys

import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from radsurv.config import apply_site, explain, format_problems, needs_outcome, preflight

SCHEMA = os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml")

try:  # the site preset (config/sites/<site>.yaml) fills preprocessing/extraction
    apply_site(config, os.path.join(workflow.basedir, "config", "sites"))
except ValueError as err:
    raise WorkflowError(f"The configuration has 1 problem(s):\n  - site: {err}") from err
try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    raise WorkflowError(explain(config, SCHEMA)) from err

DEMO_DIR = "results/demo"
# Everything the config and its tables can get wrong, before the first job (radsurv.config.preflight);
# not again in the per-job processes of a cluster run.
if workflow.is_main_process:
    PROBLEMS = preflight(config, os.getcwd(), produced=[f"{DEMO_DIR}/dicom", f"{DEMO_DIR}/clinical.csv"])
    if PROBLEMS:
        raise WorkflowError(format_problems(PROBLEMS))

# Outputs a killed run left unrecorded (still marked incomplete) are removed, so that their
# jobs run again (radsurv.resume: Snakemake ignores the marks of jobs after a checkpoint).
if workflow.is_main_process and not workflow.output_settings.dryrun:
    from radsurv.resume import clear_interrupted

    REDONE = clear_interrupted(os.getcwd())
    if REDONE:
        print(f"radsurv: {len(REDONE)} output(s) of jobs a killed run left unrecorded are redone", file=sys.stderr)

from radsurv.ingest.sheet import cohort_source, validate_sheet
from radsurv.stages import model_inputs as _model_inputs

try:
    COHORT_SOURCE, COHORT_INPUT = cohort_source(config["cohort"])
    if COHORT_SOURCE == "sheet":  # the image sheet, row by row, against its own schema
        validate_sheet(COHORT_INPUT, os.path.join(workflow.current_basedir, "..", "schemas", "images.schema.yaml"))
except (ValueError, OSError) as err:
    raise WorkflowError(str(err)) from err

ENVS = os.path.join(workflow.basedir, "envs")


wildcard_constraints:
    scan=r"[A-Za-z0-9-]+_S[0-9]+",


def scan_ids(wildcards=None):
    """Scan ids found by the discovery checkpoint."""
    scans = checkpoints.discover.get().output.scans
    return pd.read_csv(scans, sep="\t", dtype=str)["scan_id"].tolist()


def clinical_table(wildcards=None):
    """The clinical table: the models and the report need it, `snakemake features` does not."""
    why = needs_outcome(config)
    if why:
        raise WorkflowError(why)
    return config["cohort"]["clinical_table"]


def model_inputs(wildcards):
    """Input files of rule model (radsurv.stages.model_inputs), once the clinical table is known."""
    clinical_table()
    return _model_inputs(config)


def scan_feature_files(wildcards):
    return expand("results/features/scans/{scan}.json", scan=scan_ids())
