# Config validation and the scan list. Wiring only: the logic lives in radsurv.
import pandas as pd
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from radsurv.config import explain

SCHEMA = os.path.join(workflow.current_basedir, "..", "schemas", "config.schema.yaml")

try:
    validate(config, schema="../schemas/config.schema.yaml")
except WorkflowError as err:
    raise WorkflowError(explain(config, SCHEMA)) from err

DEMO_DIR = "results/demo"
ENVS = os.path.join(workflow.basedir, "envs")


wildcard_constraints:
    scan=r"[A-Za-z0-9-]+_S[0-9]+",


def scan_ids(wildcards=None):
    """Scan ids found by the discovery checkpoint."""
    scans = checkpoints.discover.get().output.scans
    return pd.read_csv(scans, sep="\t", dtype=str)["scan_id"].tolist()


def scan_feature_files(wildcards):
    return expand("results/features/scans/{scan}.json", scan=scan_ids())
