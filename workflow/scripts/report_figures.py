"""Rule report_figures: :func:`radsurv.workflow.report.report_figures` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.report import report_figures

run_rule(snakemake, report_figures)  # noqa: F821 - `snakemake` is injected by Snakemake
