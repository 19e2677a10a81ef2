"""Rule longitudinal_delta_table: the entry point of the same name in radsurv.workflow.longitudinal."""
from radsurv.logutil import run_rule
from radsurv.workflow.longitudinal import longitudinal_delta_table

run_rule(snakemake, longitudinal_delta_table)  # noqa: F821 - `snakemake` is injected by Snakemake
