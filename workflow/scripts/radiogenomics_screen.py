"""Rule radiogenomics_screen: :func:`radsurv.workflow.biology.radiogenomics_screen` (files, params)."""
from radsurv.logutil import run_rule
from radsurv.workflow.biology import radiogenomics_screen

run_rule(snakemake, radiogenomics_screen)  # noqa: F821 - `snakemake` is injected by Snakemake
