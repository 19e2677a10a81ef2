"""Rule longitudinal_study: the entry point of the same name in radsurv.workflow.longitudinal."""
from radsurv.logutil import run_rule
from radsurv.workflow.longitudinal import longitudinal_study

run_rule(snakemake, longitudinal_study)  # noqa: F821 - `snakemake` is injected by Snakemake
