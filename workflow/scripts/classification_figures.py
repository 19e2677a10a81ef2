"""Rule classification_figures: :func:`radsurv.workflow.biology.classification_figures` (files, params)."""
from radsurv.logutil import run_rule
from radsurv.workflow.biology import classification_figures

run_rule(snakemake, classification_figures)  # noqa: F821 - `snakemake` is injected by Snakemake
