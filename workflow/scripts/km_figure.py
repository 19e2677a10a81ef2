"""Rule km_figure: :func:`radsurv.workflow.report.km_figure` with the rule's files and params as keywords."""
from radsurv.logutil import run_rule
from radsurv.workflow.report import km_figure

run_rule(snakemake, km_figure)  # noqa: F821 - `snakemake` is injected by Snakemake
