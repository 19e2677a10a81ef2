"""Rule volume_correlation: one call of :func:`radsurv.workflow.features.volume_correlation`
(the rule's files and params as keyword arguments)."""
from radsurv.logutil import run_rule
from radsurv.workflow.features import volume_correlation

run_rule(snakemake, volume_correlation)  # noqa: F821 - `snakemake` is injected by Snakemake
