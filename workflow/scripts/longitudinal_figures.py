"""Rule longitudinal_figures: the entry point of the same name in radsurv.workflow.longitudinal."""
from radsurv.logutil import run_rule
from radsurv.workflow.longitudinal import longitudinal_figures

run_rule(snakemake, longitudinal_figures)  # noqa: F821 - `snakemake` is injected by Snakemake
