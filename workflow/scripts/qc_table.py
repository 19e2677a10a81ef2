"""Rule qc_table: :func:`radsurv.workflow.report.qc_table` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.report import qc_table

run_rule(snakemake, qc_table)  # noqa: F821 - `snakemake` is injected by Snakemake
