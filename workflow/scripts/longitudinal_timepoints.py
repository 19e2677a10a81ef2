"""Rule longitudinal_timepoints: the entry point of the same name in radsurv.workflow.longitudinal."""
from radsurv.logutil import run_rule
from radsurv.workflow.longitudinal import longitudinal_timepoints

run_rule(snakemake, longitudinal_timepoints)  # noqa: F821 - `snakemake` is injected by Snakemake
