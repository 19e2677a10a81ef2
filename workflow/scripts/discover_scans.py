"""Rule discover_scans: :func:`radsurv.workflow.ingest.discover_scans` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.ingest import discover_scans

run_rule(snakemake, discover_scans)  # noqa: F821 - `snakemake` is injected by Snakemake
