"""Rule longitudinal_demo_cohort: the entry point of the same name in radsurv.workflow.longitudinal."""
from radsurv.logutil import run_rule
from radsurv.workflow.longitudinal import longitudinal_demo_cohort

run_rule(snakemake, longitudinal_demo_cohort)  # noqa: F821 - `snakemake` is injected by Snakemake
