"""Rule standardise_clinical: one call of :func:`radsurv.workflow.ingest.standardise_clinical`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.ingest import standardise_clinical

run_rule(snakemake, standardise_clinical)  # noqa: F821 - `snakemake` is injected by Snakemake
