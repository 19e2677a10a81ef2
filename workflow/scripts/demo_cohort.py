"""Rule demo_cohort: :func:`radsurv.workflow.demo.demo_cohort` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.demo import demo_cohort

run_rule(snakemake, demo_cohort)  # noqa: F821 - `snakemake` is injected by Snakemake
