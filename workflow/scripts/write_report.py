"""Rule write_report: :func:`radsurv.workflow.report.write_report` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.report import write_report

run_rule(snakemake, write_report)  # noqa: F821 - `snakemake` is injected by Snakemake
